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
    facts: PacketFacts,
    answer: Answer,
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
        self.entries
            .iter()
            .find(|e| e.layer == layer && e.epoch == epoch && e.facts == *facts)
            .map(|e| e.answer)
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
            facts: facts.clone(),
            answer: Answer::of(result),
        };
        let slot = self
            .entries
            .iter()
            .position(|e| e.layer == layer && e.facts == *facts)
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
