//! # `wfp.pending-inspector` — hold a connection until a worker decides (the WDK "inspect" sample)
//!
//! | layer | filter action | what it does |
//! |---|---|---|
//! | `ALE_AUTH_CONNECT_V4/V6` | `FWP_ACTION_CALLOUT_TERMINATING` | a new connection to the target: `FwpsPendOperation0`, BLOCK+ABSORB, an [`Inspection`] queued on the host's [`Worker`]; the reauthorization that completion triggers (IS_REAUTHORIZE, CLASSIFY_COMPLETION) answers the decision |
//! | `ALE_AUTH_RECV_ACCEPT_V4/V6` | `FWP_ACTION_CALLOUT_TERMINATING` | the same pend for an inbound connection from the target, and the pended packet cloned and retreated to its IP header; §10.1: completion triggers no reauthorization, so the decision re-injects the clone (`FwpsInjectTransportReceiveAsync0`) — its classify, injected by self, gets the decision and authorizes the connection — or frees it |
//! | `OUTBOUND_TRANSPORT_V4/V6` | `FWP_ACTION_CALLOUT_TERMINATING` | packets of an inspected flow: allowed → cloned (`FwpsAllocateCloneNetBufferList0`), the original absorbed, the clone re-injected (`FwpsInjectNetworkSendAsync0`; it comes back as injected by self and is permitted); blocked → BLOCK |
//! | `INBOUND_TRANSPORT_V4/V6` | `FWP_ACTION_CALLOUT_TERMINATING` | packets of an allowed inspected flow: the layerData is the transport payload (§8.2), so the clone is retreated by `ipHeaderSize + transportHeaderSize` to the whole packet (as WFP callouts retreat the NET_BUFFER_LIST), the original absorbed, the clone re-injected (`FwpsInjectTransportReceiveAsync0`, at the bottom of the inbound path; it comes back injected by self and is permitted); blocked → BLOCK; undecided → no opinion |
//!
//! Every instance of a host (one per layer it is installed at) injects through the host worker's
//! handles, one per address family, so a packet one instance re-injected is injected by self to
//! all of them.
//!
//! Registration: no flags, **with** flowDeleteFn (the decision for a flow is forgotten at its
//! end). Parameters: `remote` (an IP address; absent: any), `port` (the remote port; absent: any),
//! `decision` = `allow` (default) | `block` — what [`Worker::run`] decides; a host can take the
//! inspections and decide itself ([`Worker::take_inspections`], [`Worker::decide`]).
//!
//! ```text
//!  SYN ─► AUTH_CONNECT: pend ─► ABSORB (the shim holds the flow's packets) ─► Inspection queued
//!  host: worker.run(&engine) ─► decision recorded, FwpsCompleteOperation0
//!  shim.handle_async ─► AUTH_CONNECT again (IS_REAUTHORIZE): PERMIT / BLOCK as decided
//!     PERMIT ─► held packets classified again ─► OUTBOUND_TRANSPORT: clone, absorb, re-inject
//!     BLOCK  ─► held packets dropped, connection refused
//! ```
//!
//! A flow the inspector never decided (the data path's pend deadline dropped it) gets the
//! configured decision at a later reauthorization.

use std::net::IpAddr;
use std::sync::Arc;

use wfp_core::callout::{ClassifyContext, ClassifyOut, IncomingValues, LayerData, Metadata};
use wfp_core::catalogue::{self, LayerId};
use wfp_core::constants::{ClassifyOutFlags, ConditionFlags};
use wfp_core::inject::{Inject, InjectionHandle, InjectionKind, PacketId};
use wfp_core::{ActionType, Callout, CalloutId, RtFilter, Status};

use crate::support::{addr, block, field, injected_by_self, no_opinion, permit, port};
use crate::worker::{Decision, Inspection, Worker};

/// Which connections the inspector holds, and what [`Worker::run`] decides for them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InspectorConfig {
    /// IP_REMOTE_ADDRESS to inspect (`None`: any).
    pub remote: Option<IpAddr>,
    /// IP_REMOTE_PORT to inspect (`None`: any).
    pub port: Option<u16>,
    /// The decision the worker applies.
    pub decision: Decision,
}

impl Default for InspectorConfig {
    fn default() -> Self {
        Self {
            remote: None,
            port: None,
            decision: Decision::Allow,
        }
    }
}

/// `wfp.pending-inspector` (see the module doc).
pub struct PendingInspector {
    worker: Arc<Worker>,
    config: InspectorConfig,
}

impl PendingInspector {
    /// Queues its inspections on `worker`.
    pub fn new(worker: Arc<Worker>, config: InspectorConfig) -> Self {
        Self { worker, config }
    }

    fn targets(&self, values: &IncomingValues<'_>) -> bool {
        let remote = addr(field(values, "IP_REMOTE_ADDRESS"));
        let rport = port(field(values, "IP_REMOTE_PORT"));
        self.config.remote.is_none_or(|a| remote == Some(a))
            && self.config.port.is_none_or(|p| p == rport)
    }

    /// ALE_AUTH_CONNECT / RECV_ACCEPT.
    fn authorize(&self, call: &Call<'_, '_>, layer_data: &LayerData<'_>, out: &mut ClassifyOut) {
        let Some(flow) = call.meta.flow() else {
            return no_opinion(out, call.filter);
        };
        if !self.targets(call.values) {
            return no_opinion(out, call.filter);
        }
        let flags = field(call.values, "FLAGS").as_u64().unwrap_or(0);
        let reauthorize = flags & u64::from(ConditionFlags::IS_REAUTHORIZE.0) != 0;
        let decided = self.worker.decision(flow);
        if reauthorize || decided.is_some() {
            return self.answer(flow, decided.unwrap_or(self.config.decision), call, out);
        }
        match call.ctx.pend_operation(call.meta) {
            Ok(context) => {
                let packet = self.clone_whole(call, layer_data);
                self.worker.queue_inspection(Inspection {
                    context,
                    flow,
                    layer: call.values.layer,
                    remote: addr(field(call.values, "IP_REMOTE_ADDRESS")),
                    remote_port: port(field(call.values, "IP_REMOTE_PORT")),
                    proposed: self.config.decision,
                    packet,
                });
                out.action_type = ActionType::BLOCK;
                out.flags |= ClassifyOutFlags::ABSORB;
                out.clear_write();
            }
            // Not pendable here (no completion handle): decide now.
            Err(_) => self.answer(flow, self.config.decision, call, out),
        }
    }

    fn answer(&self, flow: u64, d: Decision, call: &Call<'_, '_>, out: &mut ClassifyOut) {
        match d {
            Decision::Allow => {
                permit(out, call.filter);
                // Tie the decision to the flow's end (flowDeleteFn forgets it).
                let _ = call.ctx.engine().flow_associate_context(
                    flow,
                    call.values.layer,
                    call.ctx.callout_id(),
                    flow,
                );
            }
            Decision::Block => {
                self.worker.forget(flow);
                block(out);
            }
        }
    }

    /// OUTBOUND_TRANSPORT: clone, absorb and re-inject packets of allowed inspected flows.
    fn outbound(&self, call: &Call<'_, '_>, packet: &[u8], out: &mut ClassifyOut) {
        let decided = call.meta.flow().and_then(|f| self.worker.decision(f));
        match decided {
            None => return no_opinion(out, call.filter),
            Some(Decision::Block) => return block(out),
            Some(Decision::Allow) => {}
        }
        let Some(handle) = self
            .worker
            .inspector_handles
            .for_packet(call.ctx.engine(), packet)
        else {
            return permit(out, call.filter);
        };
        if injected_by_self(call.ctx.engine(), handle, call.meta) {
            return permit(out, call.filter);
        }
        let Ok(clone) = call.ctx.clone_packet(call.meta, packet) else {
            return permit(out, call.filter);
        };
        let st = call.ctx.engine().inject(Inject {
            handle,
            context: call.meta.flow().unwrap_or(0),
            kind: InjectionKind::NetworkSend {
                compartment: call.meta.compartment_id,
            },
            packet: clone,
            completion: None,
        });
        if st != Status::SUCCESS {
            let _ = call.ctx.engine().free_packet(clone);
            return permit(out, call.filter);
        }
        out.action_type = ActionType::BLOCK;
        out.flags |= ClassifyOutFlags::ABSORB;
        out.clear_write();
    }
}

impl PendingInspector {
    /// INBOUND_TRANSPORT: clone (retreated to the IP header), absorb and re-inject packets of
    /// allowed inspected flows.
    fn inbound(&self, call: &Call<'_, '_>, payload: &[u8], out: &mut ClassifyOut) {
        let decided = call.meta.flow().and_then(|f| self.worker.decision(f));
        match decided {
            None => return no_opinion(out, call.filter),
            Some(Decision::Block) => return block(out),
            Some(Decision::Allow) => {}
        }
        let engine = call.ctx.engine();
        let Some(handle) = self
            .worker
            .inspector_handles
            .for_family(engine, call.values.layer)
        else {
            return permit(out, call.filter);
        };
        if injected_by_self(engine, handle, call.meta) {
            return permit(out, call.filter);
        }
        let Some(clone) = self.retreated_clone(call, payload) else {
            return permit(out, call.filter);
        };
        let st = engine.inject(Inject {
            handle,
            context: call.meta.flow().unwrap_or(0),
            kind: InjectionKind::TransportReceive {
                compartment: call.meta.compartment_id,
                interface: call.meta.source_interface_index,
                sub_interface: 0,
            },
            packet: clone,
            completion: None,
        });
        if st != Status::SUCCESS {
            let _ = engine.free_packet(clone);
            return permit(out, call.filter);
        }
        out.action_type = ActionType::BLOCK;
        out.flags |= ClassifyOutFlags::ABSORB;
        out.clear_write();
    }

    /// The pended RECV_ACCEPT packet as a whole-packet clone, with the handle to re-inject it.
    fn clone_whole(
        &self,
        call: &Call<'_, '_>,
        layer_data: &LayerData<'_>,
    ) -> Option<(InjectionHandle, PacketId)> {
        let LayerData::Packet(p) = layer_data else {
            return None;
        };
        let name = catalogue::layer(call.values.layer).map_or("", |l| l.name);
        if !name.starts_with("ALE_AUTH_RECV_ACCEPT") {
            return None;
        }
        let handle = self
            .worker
            .inspector_handles
            .for_family(call.ctx.engine(), call.values.layer)?;
        Some((handle, self.retreated_clone(call, p)?))
    }

    /// `FwpsAllocateCloneNetBufferList0` of the indicated payload, retreated by `ipHeaderSize +
    /// transportHeaderSize` (§8.2: inbound layerData starts at the payload) to the IP header.
    fn retreated_clone(&self, call: &Call<'_, '_>, payload: &[u8]) -> Option<PacketId> {
        let engine = call.ctx.engine();
        let clone = call.ctx.clone_packet(call.meta, payload).ok()?;
        let back = call.meta.ip_header_size as usize + call.meta.transport_header_size as usize;
        let whole = engine.retreat_packet(clone, back) == Status::SUCCESS
            && engine
                .packet_data(clone)
                .is_some_and(|d| matches!(d.first(), Some(b) if b >> 4 == 4 || b >> 4 == 6));
        if !whole {
            // The data path gave no headers behind the payload: nothing to re-inject.
            let _ = engine.free_packet(clone);
            return None;
        }
        Some(clone)
    }
}

/// One classifyFn's inputs.
struct Call<'c, 'a> {
    ctx: &'c ClassifyContext<'a>,
    values: &'c IncomingValues<'a>,
    meta: &'c Metadata,
    filter: &'c RtFilter,
}

impl Callout for PendingInspector {
    fn classify(
        &self,
        ctx: &ClassifyContext<'_>,
        values: &IncomingValues<'_>,
        meta: &Metadata,
        layer_data: &mut LayerData<'_>,
        filter: &RtFilter,
        _flow_context: u64,
        out: &mut ClassifyOut,
    ) {
        let call = Call {
            ctx,
            values,
            meta,
            filter,
        };
        let name = catalogue::layer(values.layer).map_or("", |l| l.name);
        if name.starts_with("ALE_AUTH_CONNECT") || name.starts_with("ALE_AUTH_RECV_ACCEPT") {
            return self.authorize(&call, layer_data, out);
        }
        match (name.starts_with("OUTBOUND_TRANSPORT"), &*layer_data) {
            (true, LayerData::Packet(p)) => self.outbound(&call, p, out),
            (false, LayerData::Packet(p)) if name.starts_with("INBOUND_TRANSPORT") => {
                self.inbound(&call, p, out)
            }
            _ => match meta.flow().and_then(|f| self.worker.decision(f)) {
                Some(Decision::Block) => block(out),
                _ => no_opinion(out, filter),
            },
        }
    }

    fn flow_delete(&self, _layer: LayerId, _callout_id: CalloutId, flow_context: u64) {
        self.worker.forget(flow_context);
    }
}
