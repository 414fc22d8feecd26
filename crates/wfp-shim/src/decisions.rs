//! Per-flow reuse of classify answers at a flow's per-packet layers (TRANSPORT, DATAGRAM_DATA,
//! the IP-packet layers).
//!
//! ```text
//!  packet of flow F at layer L, facts X, policy epoch E
//!     │ F's entry (L, E, X) ──hit──► the stored Answer (no value vector, no classify, no copy
//!     │                              of a ClassifyResult)
//!     │ miss
//!     ▼
//!  Engine::classify_cacheable ──Some(E')──► store (L, E', X) in F's entries
//! ```
//!
//! Sound because the engine says when an answer may be reused: only static PERMIT/BLOCK filters
//! matched (no callout ran, no veto event was raised), so the result is a function of the values,
//! which are a function of (layer, facts) under one policy epoch (the field masks change only with
//! the epoch). Callout filters therefore still see every packet, and any commit changes the epoch,
//! so an answer never outlives the policy it came from. Not used while tracing.
//!
//! The key is compact: the facts a flow's packets at one layer share by construction are not
//! compared. The addresses are the flow key's (both come from the packet's IP header, oriented
//! by the direction, which the layer fixes — DATAGRAM_DATA carries it in DIRECTION); the
//! IPFORWARD, ICMP-error and ALE-only facts are empty at these layers. What is compared is what
//! can differ from packet to packet of one flow: protocol, ports (ICMP type and code), FLAGS,
//! DIRECTION, interface, loopback, socket owner. Debug builds keep the whole facts and check
//! that a hit had the same ones.

use std::sync::Arc;

use wfp_core::security::Token;
use wfp_core::{ActionType, ClassifyResult, FilterId, Hardness, LayerId};

use crate::values::PacketFacts;

/// Answers kept per flow: inbound and outbound TRANSPORT, DATAGRAM_DATA both ways, inbound and
/// outbound IPPACKET (a flow whose facts vary, e.g. by interface, replaces its oldest answers).
const PER_FLOW: usize = 6;

/// What a layer visit needs of a reusable [`ClassifyResult`] (a static filter decided, so there
/// is no stream verdict and no callout flag but ABSORB).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Answer {
    /// The action.
    pub(crate) action: ActionType,
    /// Hard or soft.
    pub(crate) hardness: Hardness,
    /// The deciding filter.
    pub(crate) filter: Option<FilterId>,
    /// A veto of a hard permit.
    pub(crate) vetoed: bool,
    /// A BLOCK with FWPS_CLASSIFY_OUT_FLAG_ABSORB.
    pub(crate) absorbed: bool,
}

impl Answer {
    /// The answer of `r`.
    pub(crate) fn of(r: &ClassifyResult) -> Self {
        Self {
            action: r.action,
            hardness: r.hardness,
            filter: r.deciding_filter,
            vetoed: r.vetoed,
            absorbed: r.absorbed(),
        }
    }
}

/// One reusable answer.
#[derive(Debug)]
struct Entry {
    layer: LayerId,
    epoch: u64,
    key: FactsKey,
    answer: Answer,
    /// The facts the answer came from (checked against a hit's).
    #[cfg(debug_assertions)]
    facts: PacketFacts,
}

/// The facts of a classify at one of a flow's per-packet layers that can differ between the
/// flow's packets (see the module doc).
#[derive(Debug)]
struct FactsKey {
    protocol: u8,
    loopback: bool,
    flags: u32,
    ports: (Option<u16>, Option<u16>),
    direction: Option<u32>,
    ifindex: Option<u32>,
    app_id: Option<Arc<[u8]>>,
    user: Option<Arc<Token>>,
}

impl FactsKey {
    fn of(f: &PacketFacts) -> Self {
        Self {
            protocol: f.protocol,
            loopback: f.loopback,
            flags: f.flags,
            ports: (f.local_port, f.remote_port),
            direction: f.direction,
            ifindex: f.ifindex,
            app_id: f.app_id.clone(),
            user: f.user.clone(),
        }
    }

    /// Whether `f` has these facts (without building a key).
    #[inline]
    fn matches(&self, f: &PacketFacts) -> bool {
        self.flags == f.flags
            && self.ports == (f.local_port, f.remote_port)
            && self.protocol == f.protocol
            && self.loopback == f.loopback
            && self.direction == f.direction
            && self.ifindex == f.ifindex
            && self.app_id == f.app_id
            && self.user == f.user
    }
}

impl Entry {
    /// Whether this entry answers `facts` at `layer`.
    #[inline]
    fn is_for(&self, layer: LayerId, facts: &PacketFacts) -> bool {
        self.layer == layer && self.key.matches(facts)
    }
}

/// A flow's reusable answers (empty, and unallocated, until its first reusable classify).
#[derive(Debug, Default)]
pub(crate) struct FlowDecisions {
    entries: Vec<Entry>,
    /// Next entry to replace when full.
    next: usize,
}

impl FlowDecisions {
    /// The stored answer for `facts` at `layer` under policy `epoch`.
    #[inline]
    pub(crate) fn get(&self, layer: LayerId, epoch: u64, facts: &PacketFacts) -> Option<Answer> {
        let e = self
            .entries
            .iter()
            .find(|e| e.epoch == epoch && e.is_for(layer, facts))?;
        #[cfg(debug_assertions)]
        debug_assert_eq!(
            &e.facts, facts,
            "a flow's facts differ only where the key looks"
        );
        Some(e.answer)
    }

    /// Stores an answer the engine called reusable under `epoch`, replacing the same (layer,
    /// facts) or an answer from an older epoch first, else the oldest slot.
    pub(crate) fn put(
        &mut self,
        layer: LayerId,
        epoch: u64,
        facts: &PacketFacts,
        result: &ClassifyResult,
    ) {
        let entry = Entry {
            layer,
            epoch,
            key: FactsKey::of(facts),
            answer: Answer::of(result),
            #[cfg(debug_assertions)]
            facts: facts.clone(),
        };
        let slot = self
            .entries
            .iter()
            .position(|e| e.is_for(layer, facts))
            .or_else(|| self.entries.iter().position(|e| e.epoch != epoch));
        let slot = match slot {
            Some(i) => i,
            None if self.entries.len() < PER_FLOW => {
                self.entries.push(entry);
                return;
            }
            None => {
                let i = self.next % PER_FLOW;
                self.next = i + 1;
                i
            }
        };
        if let Some(e) = self.entries.get_mut(slot) {
            *e = entry;
        }
    }

    /// Number of stored answers.
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.entries.len()
    }
}

#[cfg(test)]
mod tests {
    use std::net::{IpAddr, Ipv4Addr};

    use wfp_core::catalogue::layers;
    use wfp_core::{ActionType, ClassifyOutFlags, Hardness};

    use super::*;

    fn result(action: ActionType) -> ClassifyResult {
        ClassifyResult {
            action,
            hardness: Hardness::Soft,
            deciding_filter: None,
            flags: ClassifyOutFlags::default(),
            vetoed: false,
            stream: None,
        }
    }

    fn facts(port: u16) -> PacketFacts {
        PacketFacts {
            protocol: 6,
            local: Some(IpAddr::V4(Ipv4Addr::new(10, 0, 0, 1))),
            local_port: Some(port),
            ..PacketFacts::default()
        }
    }

    #[test]
    fn answers_only_the_same_layer_facts_and_epoch() {
        let mut d = FlowDecisions::default();
        d.put(
            layers::INBOUND_TRANSPORT_V4,
            3,
            &facts(80),
            &result(ActionType::BLOCK),
        );
        let hit = d.get(layers::INBOUND_TRANSPORT_V4, 3, &facts(80));
        assert_eq!(hit.map(|r| r.action), Some(ActionType::BLOCK));
        assert!(d.get(layers::INBOUND_TRANSPORT_V4, 4, &facts(80)).is_none());
        assert!(d.get(layers::INBOUND_TRANSPORT_V4, 3, &facts(81)).is_none());
        assert!(d
            .get(layers::OUTBOUND_TRANSPORT_V4, 3, &facts(80))
            .is_none());
    }

    #[test]
    fn a_newer_epoch_replaces_older_answers_and_the_size_is_bounded() {
        let mut d = FlowDecisions::default();
        for port in 0..20 {
            d.put(
                layers::DATAGRAM_DATA_V4,
                1,
                &facts(port),
                &result(ActionType::PERMIT),
            );
            assert!(d.len() <= PER_FLOW);
        }
        d.put(
            layers::DATAGRAM_DATA_V4,
            2,
            &facts(5),
            &result(ActionType::BLOCK),
        );
        assert_eq!(d.len(), PER_FLOW);
        let hit = d.get(layers::DATAGRAM_DATA_V4, 2, &facts(5));
        assert_eq!(hit.map(|r| r.action), Some(ActionType::BLOCK));
    }
}
