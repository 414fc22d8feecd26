//! ALE stage: ALE_AUTH_CONNECT_V4/V6, ALE_AUTH_RECV_ACCEPT_V4/V6, ALE_FLOW_ESTABLISHED_V4/V6 and,
//! at flow end, ALE_ENDPOINT_CLOSURE_V4/V6 (wfp-reference §8.2: the ALE rows, "ALE stateful
//! model", "Reauthorization"; brief decision 10).
//!
//! * **Authorization**: a new flow's first packet is classified at AUTH_CONNECT when the flow was
//!   opened outbound, AUTH_RECV_ACCEPT when inbound; a TCP connect passes no packet. A BLOCK ends
//!   the flow (and a refused TCP connection is remembered, see `flows.rs`).
//! * **The ALE cache**: later packets skip the AUTH layers. One epoch comparison per packet tells
//!   whether the policy moved; only then is the authorizing layer's generation read.
//! * **Reauthorization**: when the filters at the authorizing layer changed, the flow's next
//!   packet, in either direction, is classified there again with IS_REAUTHORIZE and
//!   REAUTHORIZE_REASON POLICY_CHANGE.
//! * **Mid-stream connections** (a TCP connection picked up without its handshake: a capture
//!   that starts mid-connection, a daemon started while connections exist): WFP authorized them
//!   before the shim could see it, so their first authorization is a reauthorization —
//!   IS_REAUTHORIZE with REAUTHORIZE_REASON MID_STREAM_INSPECTION (0x40, the reason WFP gives
//!   callouts attached to existing streams, §9) — at the layer of the side that sent the first
//!   packet seen (the responder's side for a SYN-ACK seen first). Unless
//!   [`super::ShimConfig::require_handshake`].
//! * **FLOW_ESTABLISHED** once: when the TCP handshake completes, right after authorization for
//!   other protocols. Values are oriented by the connection, DIRECTION = who initiated it.

use std::net::IpAddr;
use std::ops::ControlFlow::{self, Break, Continue};

use wfp_core::callout::{LayerData, Metadata};
use wfp_core::catalogue::layers;
use wfp_core::constants::{ConditionFlags, ReauthorizeReason};
use wfp_core::LayerId;

use super::classify::Step;
use super::flows::{connection_direction, flow_facts, FlowExtra};
use super::packet::Packet;
use super::slab::ExtraRef;
use super::{Reason, Shim};
use crate::flow::{Direction, FlowId, FlowKey, FlowState, TcpState};
use crate::values::PacketFacts;

/// What the ALE layers have to do for one packet of a flow the ALE cache did not answer.
struct AleWork {
    /// The flow.
    id: FlowId,
    /// Where its state lives.
    at: ExtraRef,
    /// The transport facts oriented by the connection.
    facts: PacketFacts,
    /// Who initiated the flow.
    initiator: Direction,
    /// The layer to authorize at, if the flow needs (re)authorization.
    auth: Option<Auth>,
}

/// An authorization to classify.
#[derive(Clone, Copy)]
struct Auth {
    /// AUTH_CONNECT or AUTH_RECV_ACCEPT.
    layer: LayerId,
    /// A reauthorization, and why: the flow was authorized under other filters
    /// (POLICY_CHANGE), or existed before the shim saw it (MID_STREAM_INSPECTION).
    reauthorize: Option<ReauthorizeReason>,
}

impl Shim {
    /// The ALE layers for a tracked flow's packet. `Break` when authorization or FLOW_ESTABLISHED
    /// blocked it: the flow has then ended.
    pub(super) fn ale(&mut self, pkt: &mut Packet<'_>) -> ControlFlow<()> {
        let Some(at) = pkt.extra else {
            return Continue(());
        };
        let Some(work) = self.ale_work(at, pkt) else {
            return Continue(());
        };
        if let Some(auth) = work.auth {
            self.authorize(pkt, &work, auth)?;
        }
        self.establish(pkt, work)
    }

    /// The ALE cache: `None` when the flow is authorized under the current filters and
    /// established, else what is left to do.
    fn ale_work(&mut self, at: ExtraRef, pkt: &Packet<'_>) -> Option<AleWork> {
        let epoch = self.policy_epoch;
        let e = self.extra.at_mut(at)?;
        // Nothing to do for an authorized, established flow unless the policy moved (one epoch
        // comparison per packet; the layer's own generation only when it did).
        if e.auth_layer.is_some() && e.established && e.auth_epoch == epoch {
            return None;
        }
        if let Some(l) = e.auth_layer {
            if e.auth_epoch != epoch && self.engine.layer_generation(l) == e.auth_generation {
                e.auth_epoch = epoch;
                if e.established {
                    return None;
                }
            }
        }
        let auth = match e.auth_layer {
            // A connection picked up mid-stream existed before the shim saw it: WFP would have
            // authorized it already, so its first authorization here is a reauthorization.
            None => Some(Auth {
                layer: auth_layer(e.initiator, pkt.v6()),
                reauthorize: e
                    .midstream
                    .then_some(ReauthorizeReason::MID_STREAM_INSPECTION),
            }),
            Some(layer) if self.engine.layer_generation(layer) != e.auth_generation => Some(Auth {
                layer,
                reauthorize: Some(ReauthorizeReason::POLICY_CHANGE),
            }),
            Some(_) => None,
        };
        Some(AleWork {
            id: at.id(),
            at,
            facts: connection_facts(&pkt.transport, &e.key),
            initiator: e.initiator,
            auth,
        })
    }

    /// AUTH_CONNECT / AUTH_RECV_ACCEPT (`auth`). A BLOCK ends the flow.
    fn authorize(&mut self, pkt: &mut Packet<'_>, work: &AleWork, auth: Auth) -> ControlFlow<()> {
        let (id, layer) = (work.id, auth.layer);
        let mut f = work.facts.clone();
        if pkt.redirected {
            f.flags |= ConditionFlags::IS_CONNECTION_REDIRECTED.0;
        }
        if let Some(reason) = auth.reauthorize {
            f.flags |= ConditionFlags::IS_REAUTHORIZE.0;
            f.reauth_reason = Some(reason.0);
            self.stats.reauthorizations += 1;
        }
        let generation = self.engine.layer_generation(layer);
        let tcp = pkt.parsed.ip.protocol == 6;
        // TCP connect has no packet at AUTH_CONNECT; everything else passes it.
        let tcp_connect =
            tcp && (layer == layers::ALE_AUTH_CONNECT_V4 || layer == layers::ALE_AUTH_CONNECT_V6);
        let data = if tcp_connect && auth.reauthorize.is_none() {
            LayerData::None
        } else {
            LayerData::Packet(pkt.payload())
        };
        // §10.1: an initial authorization can be pended (COMPLETION_HANDLE in the metadata).
        let pend = if auth.reauthorize.is_none() {
            self.with_completion(layer, pkt.meta.get())
        } else {
            None
        };
        let meta = pend.as_ref().map_or_else(|| pkt.meta.get(), |(m, _)| m);
        if self
            .classify_step(Step::new(layer, &f, meta, data), pkt.verdict)
            .is_break()
        {
            if let Some((_, h)) = pend {
                if self.was_pended(h) {
                    self.start_pending(pkt, id, layer, h);
                    return Break(());
                }
            }
            if tcp {
                if let Some(key) = self.extra.at(work.at).map(|e| e.key) {
                    let filter = pkt.verdict.filter;
                    self.remember_ended(key, Reason::ConnectionRefused, layer, filter);
                }
            }
            self.end_flow_now(id);
            return Break(());
        }
        self.authorized(id, layer, generation);
        Continue(())
    }

    /// ALE_FLOW_ESTABLISHED, once per flow: when the TCP handshake completes, at once for other
    /// protocols. A BLOCK ends the flow.
    fn establish(&mut self, pkt: &mut Packet<'_>, work: AleWork) -> ControlFlow<()> {
        let Some(u) = pkt.update else {
            return Continue(());
        };
        let id = work.id;
        let established_now = self.extra.at(work.at).is_some_and(|e| !e.established)
            && (pkt.parsed.ip.protocol != 6
                || u.established
                || u.state == FlowState::Tcp(TcpState::Established));
        if !established_now {
            return Continue(());
        }
        if let Some(e) = self.extra.at_mut(work.at) {
            e.established = true;
        }
        let layer = if pkt.v6() {
            layers::ALE_FLOW_ESTABLISHED_V6
        } else {
            layers::ALE_FLOW_ESTABLISHED_V4
        };
        let mut f = work.facts;
        f.direction = Some(connection_direction(work.initiator));
        if pkt.redirected {
            f.flags |= ConditionFlags::IS_CONNECTION_REDIRECTED.0;
        }
        let step = Step::new(layer, &f, &pkt.meta, LayerData::Packet(pkt.payload()));
        if self.classify_step(step, pkt.verdict).is_break() {
            self.end_flow_now(id);
            return Break(());
        }
        Continue(())
    }

    /// ALE_ENDPOINT_CLOSURE for an authorized flow `e` (key `key`) that ended.
    pub(super) fn endpoint_closure(&self, key: &FlowKey, e: &FlowExtra) {
        let layer = if matches!(key.local_addr(), IpAddr::V6(_)) {
            layers::ALE_ENDPOINT_CLOSURE_V6
        } else {
            layers::ALE_ENDPOINT_CLOSURE_V4
        };
        let mut values = Vec::new();
        crate::values::fill(layer, &flow_facts(key, e.initiator, &e.owner), &mut values);
        let _ = self.engine.classify(
            layer,
            &values,
            &Metadata::default(),
            &mut LayerData::None,
            None,
        );
    }
}

/// The layer that authorizes a new flow opened `initiator`.
fn auth_layer(initiator: Direction, v6: bool) -> LayerId {
    match (initiator, v6) {
        (Direction::Outbound, false) => layers::ALE_AUTH_CONNECT_V4,
        (Direction::Outbound, true) => layers::ALE_AUTH_CONNECT_V6,
        (Direction::Inbound, false) => layers::ALE_AUTH_RECV_ACCEPT_V4,
        (Direction::Inbound, true) => layers::ALE_AUTH_RECV_ACCEPT_V6,
    }
}

/// The transport facts `tf` oriented by the connection `key`, not the packet.
fn connection_facts(tf: &PacketFacts, key: &FlowKey) -> PacketFacts {
    let mut af = tf.clone();
    af.local = Some(key.local_addr());
    af.remote = Some(key.remote_addr());
    if key.protocol() == 6 || key.protocol() == 17 {
        af.local_port = Some(key.local_port());
        af.remote_port = Some(key.remote_port());
    }
    af
}
