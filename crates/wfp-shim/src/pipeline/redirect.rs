//! Connect and bind redirection: ALE_BIND_REDIRECT_V4/V6 and ALE_CONNECT_REDIRECT_V4/V6
//! (wfp-reference §10.3; §8.2 "TCP client connect: (BIND_REDIRECT) → RESOURCE_ASSIGNMENT →
//! (CONNECT_REDIRECT) → AUTH_CONNECT"; §8.3 field order).
//!
//! ```text
//!  handle_packet_into
//!    parse ─► known redirected tuple? ─► rewrite (both ways) ─► the layers see the new tuple
//!          └► a pended redirect's tuple? ─► held (ABSORB, Reason::Pended)
//!    direction ─► outbound connect (TCP SYN, a UDP flow's first packet) and a redirect layer
//!                 has filters:
//!        BIND_REDIRECT (FWPS_BIND_REQUEST0) ─► CONNECT_REDIRECT (FWPS_CONNECT_REQUEST0)
//!        ├─ BLOCK: the connect fails (TCP: remembered as refused)
//!        ├─ pended (FwpsPendClassify0): packets held until FwpsCompleteClassify0
//!        └─ request changed: the connection's packets are rewritten from now on, both ways
//! ```
//!
//! * **What is rewritten**: a redirected connection is a translation of its 5-tuple, like a NAT:
//!   the application's packets to the original destination leave to the new one (and from the
//!   new local endpoint after a bind redirect), the peer's answers come back as if from the
//!   original destination. The flow is tracked, authorized and indicated with the new tuple, so
//!   AUTH_CONNECT, FLOW_ESTABLISHED, STREAM/DATAGRAM_DATA and the transport and IP layers see the
//!   new remote address and port; the packet's [`super::PacketVerdict::edited`] holds the
//!   rewritten bytes.
//! * **Metadata**: the redirected flow's ALE, stream/datagram and transport classifies carry
//!   ORIGINAL_DESTINATION, REDIRECT_RECORD_HANDLE (the records, for
//!   `FwpsQueryConnectionRedirectState0`) and LOCAL_REDIRECT_TARGET_PID when the request set it;
//!   AUTH_CONNECT and FLOW_ESTABLISHED add FWP_CONDITION_FLAG_IS_CONNECTION_REDIRECTED.
//! * **Loop prevention** (the proxy's own connection): a new outbound connection to the original
//!   destination of a live redirected connection is the proxy's leg (what
//!   SIO_SET_WFP_CONNECTION_REDIRECT_RECORDS tells Windows): its redirect classifies carry that
//!   connection's records, so the redirector's query answers REDIRECTED_BY_SELF and it lets the
//!   connection go.
//! * **Chaining**: the engine passes each callout the version the ones before it applied
//!   (`previousVersion`, `modifierFilterId`); the final request decides the new tuple.
//! * **Fragments** (IPv4 and IPv6): a redirected connection's fragments are rewritten like its
//!   whole packets, so the datagram they reassemble into is the translated one: every fragment
//!   gets the new addresses (IPv4: header checksum recomputed; IPv6 has none, the fragment header
//!   and extension headers stay); the first one (offset 0) also the new ports, and its TCP/UDP
//!   checksum — which covers the whole datagram and the pseudo-header's addresses — is adjusted
//!   incrementally for the changed addresses and ports (RFC 1624). Later fragments are matched
//!   by (protocol, source, destination, identification) learned from their first fragment
//!   ([`FRAGMENT_IDS`] remembered); one arriving before it is rewritten when every live
//!   translation of its address pair goes to the same new pair (ports are not in it), else left
//!   as is.
//! * **TIME_WAIT**: a redirected TCP connection closed by FINs keeps its translation while the
//!   flow table keeps its tombstone (`FlowTimeouts::tcp_time_wait`, RFC 9293's 2·MSL): late
//!   retransmissions of its last segments are still rewritten. A bare SYN on the same tuple, or
//!   the tombstone gone (expired, evicted, replaced), ends it; at most [`TIME_WAIT_REDIRECTS`]
//!   are kept (the oldest goes first).
//! * **Not modelled**: the first
//!   packet of a connection arriving fragmented is not classified at the redirect layers; a pend
//!   at BIND_REDIRECT completes the whole redirect (CONNECT_REDIRECT is not classified after it);
//!   with several queues, redirect pends are applied by the first queue's shim.

use std::collections::{HashMap, HashSet, VecDeque};
use std::net::{IpAddr, SocketAddr};
use std::ops::ControlFlow::{self, Break, Continue};
use std::sync::Arc;

use wfp_core::callout::{ClassifyOut, Metadata};
use wfp_core::constants::{ActionType, MetadataFields};
use wfp_core::pend::{ClassifyHandle, PendEvent};
use wfp_core::redirect::{RedirectRecords, RedirectRequest};
use wfp_core::{LayerId, Value};

use super::meta::{add_owner, ip_layer_meta, transport_layer_meta};
use super::packet::{ip_facts, Seen};
use super::pend::HeldPacket;
use super::transport::transport_facts;
use super::{
    LayerVisit, PacketContext, PacketDirection, PacketVerdict, Reason, Redirected, Redirection,
    Shim,
};
use crate::flow::{Direction, FlowId, FlowKey};
use crate::time::Timestamp;
use crate::values::PacketFacts;
use crate::wire::{self, build, IpVersion, ParseConfig, ParsedPacket, Transport};

/// FWPS_LAYER_ALE_CONNECT_REDIRECT_V4 (§8.1 run-time id 66).
pub(super) const CONNECT_REDIRECT_V4: LayerId = LayerId(66);
/// FWPS_LAYER_ALE_CONNECT_REDIRECT_V6 (67).
pub(super) const CONNECT_REDIRECT_V6: LayerId = LayerId(67);
/// FWPS_LAYER_ALE_BIND_REDIRECT_V4 (68).
pub(super) const BIND_REDIRECT_V4: LayerId = LayerId(68);
/// FWPS_LAYER_ALE_BIND_REDIRECT_V6 (69).
pub(super) const BIND_REDIRECT_V6: LayerId = LayerId(69);

/// A packet's addresses and ports as sent (not oriented by direction).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
struct Tuple {
    protocol: u8,
    src: SocketAddr,
    dst: SocketAddr,
}

impl Tuple {
    /// The tuple of a whole TCP / UDP packet.
    fn of(p: &ParsedPacket) -> Option<Self> {
        if p.ip.fragment.is_some() {
            return None;
        }
        let (sp, dp) = match &p.transport {
            Transport::Tcp(t) => (t.src_port, t.dst_port),
            Transport::Udp(u) => (u.src_port, u.dst_port),
            _ => return None,
        };
        Some(Self {
            protocol: p.ip.protocol,
            src: SocketAddr::new(p.ip.src, sp),
            dst: SocketAddr::new(p.ip.dst, dp),
        })
    }

    fn reversed(self) -> Self {
        Self {
            src: self.dst,
            dst: self.src,
            ..self
        }
    }
}

/// A redirect classify a callout pended: the connection's packets wait for its completion.
struct PendingRedirect {
    /// The connect's tuple as the application sent it.
    tuple: Tuple,
    /// The layer that pended.
    layer: LayerId,
    /// The packets held, oldest first.
    held: Vec<HeldPacket>,
}

/// The shim's redirect state (see the module doc).
#[derive(Default)]
pub(super) struct RedirectTable {
    /// A tuple as sent → the tuple it becomes, with its connection.
    rewrite: HashMap<Tuple, (Tuple, Arc<Redirection>)>,
    /// The redirected flow's key (as rewritten, local/remote oriented) → its connection.
    by_flow: HashMap<FlowKey, Arc<Redirection>>,
    /// (protocol, original destination) of live redirected connections → their records.
    by_destination: HashMap<(u8, SocketAddr), Arc<RedirectRecords>>,
    /// Pended redirect classifies.
    pending: HashMap<ClassifyHandle, PendingRedirect>,
    /// The tuples of pended connects (both ways) → their handle.
    pending_tuples: HashMap<Tuple, ClassifyHandle>,
    /// Connects whose pended redirect classify completed with a decision and no change: their
    /// released packet goes on without another redirect classify (taken once).
    decided: HashSet<Tuple>,
    /// Datagrams of redirected connections seen fragmented: (protocol, source,
    /// destination, identification) as sent → the tuple they become, oldest first in
    /// `fragment_order` (at most [`FRAGMENT_IDS`]).
    fragments: HashMap<FragmentKey, Tuple>,
    fragment_order: VecDeque<FragmentKey>,
    /// Redirected connections closed by FINs whose translation outlives the flow while its
    /// TIME_WAIT tombstone lasts (module doc): the application's tuple → (flow id, flow key),
    /// oldest first in `time_wait_order` (at most [`TIME_WAIT_REDIRECTS`]).
    time_wait: HashMap<Tuple, (FlowId, FlowKey)>,
    time_wait_order: VecDeque<Tuple>,
}

/// How many closed redirected connections keep their translation through TIME_WAIT.
pub(super) const TIME_WAIT_REDIRECTS: usize = 1024;

/// A fragmented datagram as sent: protocol, source, destination, identification.
type FragmentKey = (u8, IpAddr, IpAddr, u32);

/// How many fragmented datagrams' translations are remembered (the oldest goes first).
pub(super) const FRAGMENT_IDS: usize = 256;

impl RedirectTable {
    /// Nothing redirected and nothing pended (the per-packet fast path).
    #[inline]
    pub(super) fn is_empty(&self) -> bool {
        self.rewrite.is_empty() && self.pending_tuples.is_empty() && self.decided.is_empty()
    }

    /// The redirection of the flow whose (rewritten) key is `key`.
    #[inline]
    pub(super) fn of_flow(&self, key: &FlowKey) -> Option<&Arc<Redirection>> {
        if self.by_flow.is_empty() {
            return None;
        }
        self.by_flow.get(key)
    }

    /// Redirected connections currently translated.
    pub(super) fn len(&self) -> usize {
        self.by_flow.len()
    }
}

/// What the redirect stage did to a packet.
pub(super) enum Stage {
    /// Nothing: classify the packet as it is.
    Unchanged,
    /// Classify these bytes (the packet rewritten) instead; `parsed` was replaced.
    Rewritten(Vec<u8>),
}

/// The connect a new outbound packet makes, with what the redirect classifies need.
struct Connect<'a> {
    now: Timestamp,
    given: PacketDirection,
    loopback: bool,
    ctx: &'a PacketContext,
    bytes: &'a [u8],
    tuple: Tuple,
}

impl Shim {
    /// The redirect stage (module doc), before the packet's layers: `Break` when the packet is
    /// decided here (held, blocked at a redirect layer, not rewritable).
    pub(super) fn redirect(
        &mut self,
        now: Timestamp,
        given: PacketDirection,
        parsed: &mut ParsedPacket,
        (bytes, ctx): (&[u8], &PacketContext),
        v: &mut PacketVerdict,
    ) -> ControlFlow<(), Stage> {
        let known = !self.redirects.is_empty();
        if !known && !self.redirect_layers_have_filters(parsed) {
            return Continue(Stage::Unchanged);
        }
        if known && parsed.ip.fragment.is_some() {
            return self.redirect_fragment(parsed, bytes, ctx, v);
        }
        let tuple = Tuple::of(parsed);
        if let (Some(t), true) = (tuple, known) {
            if self.redirects.decided.remove(&t) {
                return Continue(Stage::Unchanged);
            }
            if let Some(h) = self.redirects.pending_tuples.get(&t).copied() {
                self.hold_redirect(h, HeldPacket::new(now, given, ctx, bytes), v);
                return Break(());
            }
            if !self.redirects.time_wait.is_empty() {
                // A translation whose TIME_WAIT is over goes: the packet is a new connection's.
                self.time_wait_over(t, parsed, ctx);
            }
            if let Some((to, c)) = self.redirects.rewrite.get(&t).cloned() {
                v.redirected = Some(Redirected {
                    connection: c,
                    first: false,
                });
                return self.rewrite_to(parsed, bytes, ctx, to, v);
            }
        }
        let Some(tuple) = tuple.filter(|_| self.redirect_layers_have_filters(parsed)) else {
            return Continue(Stage::Unchanged);
        };
        let (dir, loopback) = match self.direction_of(given, parsed) {
            super::packet::Way::One(d) => (d, false),
            super::packet::Way::Loopback => (Direction::Outbound, true),
        };
        if dir != Direction::Outbound || !self.is_connect(parsed, ctx) {
            return Continue(Stage::Unchanged);
        }
        let c = Connect {
            now,
            given,
            loopback,
            ctx,
            bytes,
            tuple,
        };
        self.classify_connect(&c, parsed, v)
    }

    /// A fragment while connections are redirected (module doc, "Fragments"): rewritten when it
    /// belongs to a redirected connection.
    fn redirect_fragment(
        &mut self,
        parsed: &mut ParsedPacket,
        bytes: &[u8],
        ctx: &PacketContext,
        v: &mut PacketVerdict,
    ) -> ControlFlow<(), Stage> {
        let Some(f) = parsed.ip.fragment.as_ref() else {
            return Continue(Stage::Unchanged);
        };
        let protocol = f.next_header;
        let key = (protocol, parsed.ip.src, parsed.ip.dst, f.id);
        let ports = (f.offset == 0)
            .then(|| fragment_ports(bytes, f.data_offset, protocol))
            .flatten();
        let to = match ports {
            Some((sp, dp)) => {
                let t = Tuple {
                    protocol,
                    src: SocketAddr::new(key.1, sp),
                    dst: SocketAddr::new(key.2, dp),
                };
                let Some((to, c)) = self.redirects.rewrite.get(&t).cloned() else {
                    return Continue(Stage::Unchanged);
                };
                self.remember_fragment(key, to);
                v.redirected = Some(Redirected {
                    connection: c,
                    first: false,
                });
                to
            }
            None => match self.redirects.fragments.get(&key).copied() {
                Some(to) => to,
                None => match self.same_address_translation(protocol, key.1, key.2) {
                    Some(to) => to,
                    None => return Continue(Stage::Unchanged),
                },
            },
        };
        let config = ParseConfig {
            truncated: self.config.parse.truncated || ctx.truncated,
            ..self.config.parse
        };
        let Some((p, b)) = rewrite_fragment(bytes, f.data_offset, ports.map(|_| to), to)
            .and_then(|b| Some((wire::parse_with(&b, &config).ok()?, b)))
        else {
            v.block(Reason::RedirectFailed);
            return Break(());
        };
        *parsed = p;
        Continue(Stage::Rewritten(b))
    }

    /// Remembers the translation of a fragmented datagram (bounded, oldest out first).
    fn remember_fragment(&mut self, key: FragmentKey, to: Tuple) {
        let r = &mut self.redirects;
        if r.fragments.insert(key, to).is_none() {
            r.fragment_order.push_back(key);
        }
        while r.fragment_order.len() > FRAGMENT_IDS {
            if let Some(old) = r.fragment_order.pop_front() {
                r.fragments.remove(&old);
            }
        }
    }

    /// The translation (addresses only) every live redirected connection of `protocol` from
    /// `src` to `dst` agrees on, if any.
    fn same_address_translation(&self, protocol: u8, src: IpAddr, dst: IpAddr) -> Option<Tuple> {
        let mut found: Option<Tuple> = None;
        for (from, (to, _)) in &self.redirects.rewrite {
            if from.protocol != protocol || from.src.ip() != src || from.dst.ip() != dst {
                continue;
            }
            match found {
                Some(f) if f.src.ip() != to.src.ip() || f.dst.ip() != to.dst.ip() => return None,
                _ => found = Some(*to),
            }
        }
        found
    }

    /// Whether ALE_BIND_REDIRECT or ALE_CONNECT_REDIRECT of the packet's family has filters.
    fn redirect_layers_have_filters(&self, p: &ParsedPacket) -> bool {
        let (bind, connect) = layers_of(p);
        self.has_filters(bind) || self.has_filters(connect)
    }

    /// A packet that opens a connection: a TCP SYN or a UDP packet of no tracked flow, not
    /// injected.
    fn is_connect(&self, p: &ParsedPacket, ctx: &PacketContext) -> bool {
        if ctx.injection.is_some() {
            return false;
        }
        let opens = match &p.transport {
            Transport::Tcp(t) => t.flags.syn() && !t.flags.ack(),
            Transport::Udp(_) => true,
            _ => false,
        };
        opens
            && FlowKey::from_packet(Direction::Outbound, p)
                .is_some_and(|k| self.flows.lookup(&k).is_none())
    }

    /// BIND_REDIRECT then CONNECT_REDIRECT for the connect `c`.
    fn classify_connect(
        &mut self,
        c: &Connect<'_>,
        parsed: &mut ParsedPacket,
        v: &mut PacketVerdict,
    ) -> ControlFlow<(), Stage> {
        let seen = Seen {
            now: c.now,
            dir: Direction::Outbound,
            ctx: c.ctx,
            loopback: c.loopback,
            mtu: self.config.mtu,
        };
        let mut facts = transport_facts(ip_facts(parsed, &seen), parsed, Direction::Outbound);
        let mut meta = transport_layer_meta(ip_layer_meta(parsed, &seen), parsed, &seen, seen.mtu);
        if let Some(o) = &c.ctx.owner {
            facts.app_id = o.app_id.clone();
            facts.user = o.user.clone();
            add_owner(&mut meta, o);
        }
        // The proxy's own connection to a redirected connection's original destination
        // carries that connection's records (loop prevention).
        let records = self
            .redirects
            .by_destination
            .get(&(c.tuple.protocol, c.tuple.dst))
            .cloned();
        if let Some(r) = &records {
            meta.redirect_records = Some(Arc::clone(r));
            meta.present |= MetadataFields::REDIRECT_RECORD_HANDLE;
        }
        let (bind, connect) = layers_of(parsed);
        let request = RedirectRequest::bind(c.tuple.src).with_records(records);
        let bound = self.redirect_layer(c, (bind, &facts, &meta), request, v)?;
        facts.local_port = Some(bound.local.port());
        facts.local = Some(bound.local.ip());
        let request = RedirectRequest::connect(bound.local, c.tuple.dst)
            .with_records(Some(Arc::clone(&bound.records)));
        let mut last = self.redirect_layer(c, (connect, &facts, &meta), request, v)?;
        if !bound.is_modified() || last.is_modified() {
            return self.redirected(c.tuple, connect, last, parsed, (c.bytes, c.ctx), v);
        }
        // Only the bind changed the connection.
        last.modifier_filter_id = bound.modifier_filter_id;
        self.redirected(c.tuple, bind, last, parsed, (c.bytes, c.ctx), v)
    }

    /// One redirect layer's classify of `request`: the final request, or `Break` when it blocked
    /// or pended the connect.
    fn redirect_layer(
        &mut self,
        c: &Connect<'_>,
        (layer, facts, meta): (LayerId, &PacketFacts, &Metadata),
        request: RedirectRequest,
        v: &mut PacketVerdict,
    ) -> ControlFlow<(), RedirectRequest> {
        if !self.has_filters(layer) {
            return Continue(request);
        }
        let mut values: Vec<Value> = Vec::new();
        crate::values::fill(layer, facts, &mut values);
        let out = self.engine.classify_redirect(layer, &values, meta, request);
        let visit = LayerVisit::of(layer, &out.result, None);
        if self.record(visit, out.result.absorbed(), v).is_continue() {
            return Continue(out.request);
        }
        if out.pended {
            if let Some(h) = self.pended_redirect(layer) {
                self.stats.redirects_pended += 1;
                let p = PendingRedirect {
                    tuple: c.tuple,
                    layer,
                    held: Vec::new(),
                };
                self.redirects.pending.insert(h, p);
                self.redirects.pending_tuples.insert(c.tuple, h);
                self.redirects.pending_tuples.insert(c.tuple.reversed(), h);
                let held = HeldPacket::new(c.now, c.given, c.ctx, c.bytes);
                self.hold_redirect(h, held, v);
                return Break(());
            }
        }
        self.connect_refused(c.tuple, layer, v.filter);
        Break(())
    }

    /// The classify handle `FwpsPendClassify0` pended at `layer` during the classify that just
    /// ran (other pend events are kept for [`Shim::handle_async`]).
    fn pended_redirect(&mut self, layer: LayerId) -> Option<ClassifyHandle> {
        let mut found = None;
        let ids = self.config.flow.ids;
        while let Some(e) = self
            .engine
            .poll_pend_event_where(|e| super::pend::owns_pend_event(ids, e))
        {
            match e {
                PendEvent::ClassifyPended {
                    handle,
                    layer: l,
                    flow: None,
                    ..
                } if l == layer && found.is_none() => found = Some(handle),
                other => self.asyncs.events.push_back(other),
            }
        }
        found
    }

    /// Holds a packet of the connect pended under `h`: ABSORB, [`Reason::Pended`].
    fn hold_redirect(&mut self, h: ClassifyHandle, held: HeldPacket, v: &mut PacketVerdict) {
        v.verdict = super::Verdict::Absorb;
        v.reason = Reason::Pended;
        let max = self.config.max_held_packets;
        match self.redirects.pending.get_mut(&h) {
            Some(p) if p.held.len() < max => {
                p.held.push(held);
                self.stats.held += 1;
            }
            _ => self.stats.held_dropped += 1,
        }
    }

    /// A connect blocked at a redirect layer: a TCP connection is remembered as refused.
    fn connect_refused(&mut self, t: Tuple, layer: LayerId, filter: Option<wfp_core::FilterId>) {
        if t.protocol == 6 {
            let key = FlowKey::new(6, t.src.ip(), t.src.port(), t.dst.ip(), t.dst.port());
            self.remember_ended(key, Reason::ConnectionRefused, layer, filter);
        }
    }

    /// The final request `last` of the connect `t`: when it changed the tuple, the translation
    /// is installed and the packet rewritten.
    fn redirected(
        &mut self,
        t: Tuple,
        layer: LayerId,
        last: RedirectRequest,
        parsed: &mut ParsedPacket,
        (bytes, ctx): (&[u8], &PacketContext),
        v: &mut PacketVerdict,
    ) -> ControlFlow<(), Stage> {
        let Some((to, c)) = self.install(t, layer, &last) else {
            return Continue(Stage::Unchanged);
        };
        v.redirected = Some(Redirected {
            connection: c,
            first: true,
        });
        self.rewrite_to(parsed, bytes, ctx, to, v)
    }

    /// Installs the translation `t` → the endpoints of `last` (both ways); `None` when the
    /// request did not change them.
    fn install(
        &mut self,
        t: Tuple,
        layer: LayerId,
        last: &RedirectRequest,
    ) -> Option<(Tuple, Arc<Redirection>)> {
        let remote = last.remote.unwrap_or(t.dst);
        if last.local == t.src && remote == t.dst {
            return None;
        }
        let to = Tuple {
            protocol: t.protocol,
            src: last.local,
            dst: remote,
        };
        let c = Arc::new(Redirection {
            protocol: t.protocol,
            original_local: t.src,
            original_remote: t.dst,
            local: to.src,
            remote: to.dst,
            filter: (last.modifier_filter_id != 0)
                .then_some(wfp_core::FilterId(last.modifier_filter_id)),
            layer,
            local_redirect_target_pid: last.local_redirect_target_pid,
            records: Arc::clone(&last.records),
        });
        self.stats.redirected += 1;
        let r = &mut self.redirects;
        r.rewrite.insert(t, (to, Arc::clone(&c)));
        r.rewrite
            .insert(t.reversed(), (to.reversed(), Arc::clone(&c)));
        let key = FlowKey::new(
            t.protocol,
            to.src.ip(),
            to.src.port(),
            to.dst.ip(),
            to.dst.port(),
        );
        r.by_flow.insert(key, Arc::clone(&c));
        r.by_destination
            .insert((t.protocol, t.dst), Arc::clone(&last.records));
        Some((to, c))
    }

    /// `parsed` (from `bytes`) sent as `to` instead: the rewritten bytes, `parsed` replaced.
    /// `Break` (blocked, [`Reason::RedirectFailed`]) when the packet cannot be rewritten.
    fn rewrite_to(
        &mut self,
        parsed: &mut ParsedPacket,
        bytes: &[u8],
        ctx: &PacketContext,
        to: Tuple,
        v: &mut PacketVerdict,
    ) -> ControlFlow<(), Stage> {
        let config = ParseConfig {
            truncated: self.config.parse.truncated || ctx.truncated,
            ..self.config.parse
        };
        let out = build::rewrite_endpoints(bytes, to.src, to.dst)
            .ok()
            .and_then(|b| Some((wire::parse_with(&b, &config).ok()?, b)));
        let Some((p, b)) = out else {
            v.block(Reason::RedirectFailed);
            return Break(());
        };
        *parsed = p;
        Continue(Stage::Rewritten(b))
    }

    /// A pended redirect classify completed (`FwpsCompleteClassify0`): a BLOCK decision refuses
    /// the connect and drops its held packets; otherwise the final request's translation (if it
    /// changed the tuple) is installed and the held packets go through the layers again. With no
    /// decision (NULL classifyOut) and no change, that classifies the connect at the redirect
    /// layers again (the indication is reauthorized, §10.2); with a decision, it goes on.
    pub(super) fn redirect_completed(
        &mut self,
        now: Timestamp,
        handle: ClassifyHandle,
        decision: Option<ClassifyOut>,
        request: Option<RedirectRequest>,
    ) {
        let Some(p) = self.redirects.pending.remove(&handle) else {
            return;
        };
        self.redirects.pending_tuples.remove(&p.tuple);
        self.redirects.pending_tuples.remove(&p.tuple.reversed());
        self.stats.redirects_completed += 1;
        if decision.is_some_and(|d| d.action_type == ActionType::BLOCK) {
            self.stats.held_dropped += p.held.len() as u64;
            let filter = request
                .as_ref()
                .filter(|r| r.modifier_filter_id != 0)
                .map(|r| wfp_core::FilterId(r.modifier_filter_id));
            self.connect_refused(p.tuple, p.layer, filter);
            return;
        }
        let installed = request
            .as_ref()
            .and_then(|r| self.install(p.tuple, p.layer, r))
            .is_some();
        if decision.is_some() && !installed {
            // Decided without a change: the connect goes on (not classified at the redirect
            // layers again).
            self.redirects.decided.insert(p.tuple);
        }
        self.release(now, p.held);
    }

    /// Flow `key` ended: its translation goes — unless `closed` (its id: a TCP connection both
    /// FINs closed, not a refused, reset or aborted one), when it stays through TIME_WAIT
    /// (module doc). Translations whose TIME_WAIT is over go too.
    pub(super) fn redirect_flow_ended(&mut self, closed: Option<FlowId>, key: &FlowKey) {
        self.expire_time_wait();
        let Some(c) = self.redirects.by_flow.get(key).cloned() else {
            return;
        };
        let Some(id) = closed else {
            self.forget_redirect(key);
            return;
        };
        let from = Tuple {
            protocol: c.protocol,
            src: c.original_local,
            dst: c.original_remote,
        };
        let r = &mut self.redirects;
        if r.time_wait.insert(from, (id, *key)).is_none() {
            r.time_wait_order.push_back(from);
        }
        while self.redirects.time_wait_order.len() > TIME_WAIT_REDIRECTS {
            if let Some(old) = self.redirects.time_wait_order.pop_front() {
                if let Some((_, k)) = self.redirects.time_wait.remove(&old) {
                    self.forget_redirect(&k);
                }
            }
        }
    }

    /// Forgets the translations whose flow's tombstone is gone.
    fn expire_time_wait(&mut self) {
        if self.redirects.time_wait.is_empty() {
            return;
        }
        let flows = &self.flows;
        let over: Vec<Tuple> = self
            .redirects
            .time_wait
            .iter()
            .filter(|(_, (id, _))| !flows.flow_by_id(*id).is_some_and(|f| f.is_ended()))
            .map(|(t, _)| *t)
            .collect();
        for t in over {
            self.end_time_wait(t);
        }
    }

    /// Whether packet tuple `t` belonged to a connection in TIME_WAIT that is over now (its
    /// tombstone gone, or a new connect on the tuple): then its translation is forgotten.
    fn time_wait_over(&mut self, t: Tuple, parsed: &ParsedPacket, ctx: &PacketContext) -> bool {
        let from = if self.redirects.time_wait.contains_key(&t) {
            t
        } else if self.redirects.time_wait.contains_key(&t.reversed()) {
            t.reversed()
        } else {
            return false;
        };
        let Some(&(id, _)) = self.redirects.time_wait.get(&from) else {
            return false;
        };
        let alive = self.flows.flow_by_id(id).is_some_and(|f| f.is_ended());
        if alive && !(from == t && self.is_connect(parsed, ctx)) {
            return false;
        }
        self.end_time_wait(from);
        true
    }

    fn end_time_wait(&mut self, from: Tuple) {
        let r = &mut self.redirects;
        if let Some((_, key)) = r.time_wait.remove(&from) {
            r.time_wait_order.retain(|t| *t != from);
            self.forget_redirect(&key);
        }
    }

    /// Removes flow `key`'s translation.
    fn forget_redirect(&mut self, key: &FlowKey) {
        let Some(c) = self.redirects.by_flow.remove(key) else {
            return;
        };
        let from = Tuple {
            protocol: c.protocol,
            src: c.original_local,
            dst: c.original_remote,
        };
        let r = &mut self.redirects;
        r.rewrite.remove(&from);
        r.rewrite.remove(&from.reversed());
        let to = Tuple {
            protocol: c.protocol,
            src: c.local,
            dst: c.remote,
        };
        r.fragments.retain(|_, t| *t != to && *t != to.reversed());
        let left = &r.fragments;
        r.fragment_order.retain(|k| left.contains_key(k));
        let dest = (c.protocol, c.original_remote);
        if r.by_destination
            .get(&dest)
            .is_some_and(|x| Arc::ptr_eq(x, &c.records))
        {
            r.by_destination.remove(&dest);
        }
    }

    /// The metadata and flags a redirected flow's classifies carry (see the module doc).
    pub(super) fn redirect_meta(c: &Redirection, meta: &mut Metadata) {
        meta.original_destination = Some(c.original_remote);
        meta.redirect_records = Some(Arc::clone(&c.records));
        meta.present |=
            MetadataFields::ORIGINAL_DESTINATION | MetadataFields::REDIRECT_RECORD_HANDLE;
        if c.local_redirect_target_pid != 0 {
            meta.local_redirect_target_pid = c.local_redirect_target_pid;
            meta.present |= MetadataFields::LOCAL_REDIRECT_TARGET_PID;
        }
    }
}

/// The ports of a first fragment's TCP/UDP header at `data` in `bytes`, when it holds them.
fn fragment_ports(bytes: &[u8], data: usize, protocol: u8) -> Option<(u16, u16)> {
    if !matches!(protocol, 6 | 17) {
        return None;
    }
    let h = bytes.get(data..data.checked_add(4)?)?;
    Some((
        u16::from_be_bytes([h[0], h[1]]),
        u16::from_be_bytes([h[2], h[3]]),
    ))
}

/// A fragment sent as `to` instead: new addresses (IPv4: header checksum recomputed; IPv6:
/// the fixed header's, no checksum); with `ports` (a first fragment), new ports too and its
/// TCP/UDP checksum adjusted for every changed address and port word (RFC 1624
/// `HC' = ~(~HC + ~m + m')`: the checksum covers the pseudo-header and the whole datagram, most
/// of it in later fragments). `None` when the fragment is too short to rewrite.
fn rewrite_fragment(bytes: &[u8], data: usize, ports: Option<Tuple>, to: Tuple) -> Option<Vec<u8>> {
    let (addrs, new): (std::ops::Range<usize>, Vec<u8>) = match (to.src.ip(), to.dst.ip()) {
        (IpAddr::V4(s), IpAddr::V4(d)) => (12..20, [s.octets(), d.octets()].concat()),
        (IpAddr::V6(s), IpAddr::V6(d)) => (8..40, [s.octets(), d.octets()].concat()),
        _ => return None,
    };
    let v4 = addrs.start == 12;
    let ihl = if v4 {
        usize::from(bytes.first()? & 0x0f) * 4
    } else {
        40
    };
    if bytes.first()? >> 4 != if v4 { 4 } else { 6 } || ihl < 20 || data < ihl || bytes.len() < data
    {
        return None;
    }
    let mut out = bytes.to_vec();
    let old: Vec<u8> = out.get(addrs.clone())?.to_vec();
    out[addrs.clone()].copy_from_slice(&new);
    if v4 {
        out[10..12].copy_from_slice(&[0, 0]);
        let c = !fold(sum16(&out[..ihl], 0));
        out[10..12].copy_from_slice(&c.to_be_bytes());
    }
    let Some(p) = ports else {
        return Some(out);
    };
    let seg = out.get_mut(data..)?;
    let at = match p.protocol {
        6 => 16,
        _ => 6,
    };
    let old_ports = seg.get(0..4)?.to_vec();
    seg[0..2].copy_from_slice(&p.src.port().to_be_bytes());
    seg[2..4].copy_from_slice(&p.dst.port().to_be_bytes());
    let Some(check) = seg
        .get(at..at + 2)
        .map(|c| u16::from_be_bytes([c[0], c[1]]))
    else {
        // The checksum is not in this (tiny) first fragment: it cannot be adjusted.
        return None;
    };
    if p.protocol == 17 && check == 0 {
        return Some(out); // no UDP checksum (IPv4 only)
    }
    let new_words = [&out[addrs], &out[data..data + 4]].concat();
    let old_words = [&old[..], &old_ports[..]].concat();
    let mut acc = u32::from(!check);
    acc = sum16(&new_words, acc);
    acc = old_words
        .chunks(2)
        .fold(acc, |a, w| a + u32::from(!u16::from_be_bytes([w[0], w[1]])));
    let mut c = !fold(acc);
    if p.protocol == 17 && c == 0 {
        c = 0xffff;
    }
    out[data + at..data + at + 2].copy_from_slice(&c.to_be_bytes());
    Some(out)
}

/// The 16-bit one's complement sum of `data` onto `acc` (not folded).
fn sum16(data: &[u8], acc: u32) -> u32 {
    data.chunks(2).fold(acc, |a, c| {
        a + u32::from(u16::from_be_bytes([c[0], c.get(1).copied().unwrap_or(0)]))
    })
}

/// `acc` folded to 16 bits.
fn fold(mut acc: u32) -> u16 {
    while acc >> 16 != 0 {
        acc = (acc & 0xffff) + (acc >> 16);
    }
    acc as u16
}

/// ALE_BIND_REDIRECT and ALE_CONNECT_REDIRECT of `p`'s family.
fn layers_of(p: &ParsedPacket) -> (LayerId, LayerId) {
    match p.ip.version {
        IpVersion::V4 => (BIND_REDIRECT_V4, CONNECT_REDIRECT_V4),
        IpVersion::V6 => (BIND_REDIRECT_V6, CONNECT_REDIRECT_V6),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 1624: a TCP datagram split in two IPv4 fragments, both rewritten to another 5-tuple
    /// (the first with its ports and an adjusted checksum), reassembles into the datagram built
    /// for the new tuple.
    #[test]
    fn fragment_rewrite_adjusts_the_transport_checksum_for_the_whole_datagram() {
        let from = Tuple {
            protocol: 6,
            src: "10.0.0.1:40000".parse().unwrap(),
            dst: "192.0.2.7:80".parse().unwrap(),
        };
        let to = Tuple {
            protocol: 6,
            src: "10.0.0.9:41000".parse().unwrap(),
            dst: "10.0.0.5:3128".parse().unwrap(),
        };
        let seg = |t: Tuple| {
            let mut s = vec![0u8; 20];
            s[0..2].copy_from_slice(&t.src.port().to_be_bytes());
            s[2..4].copy_from_slice(&t.dst.port().to_be_bytes());
            s[12] = 0x50;
            s.extend((0u8..60).map(|i| i.wrapping_mul(7)));
            build::ip_packet(t.src.ip(), t.dst.ip(), 6, &s).unwrap()
        };
        let (orig, want) = (seg(from), seg(to));
        // Fragment: 20-byte header + 32 data bytes (MF), then the remaining 48.
        let frag = |data: &[u8], off: u16, more: bool| {
            let mut p = orig[..20].to_vec();
            p[2..4].copy_from_slice(&((20 + data.len()) as u16).to_be_bytes());
            p[6..8].copy_from_slice(&((off / 8) | if more { 0x2000 } else { 0 }).to_be_bytes());
            p.extend_from_slice(data);
            p
        };
        let first = frag(&orig[20..52], 0, true);
        let last = frag(&orig[52..], 32, false);
        let a = rewrite_fragment(&first, 20, Some(to), to).unwrap();
        let b = rewrite_fragment(&last, 20, None, to).unwrap();
        for f in [&a, &b] {
            assert_eq!(fold(sum16(&f[..20], 0)), 0xffff, "IP header checksum");
            assert_eq!(&f[12..20], &want[12..20]);
        }
        let data = [&a[20..], &b[20..]].concat();
        assert_eq!(
            data,
            want[20..],
            "the datagram for the new tuple, checksum included"
        );
    }

    #[test]
    fn redirect_layer_ids_are_the_catalogue_ones() {
        for (id, name) in [
            (CONNECT_REDIRECT_V4, "ALE_CONNECT_REDIRECT_V4"),
            (CONNECT_REDIRECT_V6, "ALE_CONNECT_REDIRECT_V6"),
            (BIND_REDIRECT_V4, "ALE_BIND_REDIRECT_V4"),
            (BIND_REDIRECT_V6, "ALE_BIND_REDIRECT_V6"),
        ] {
            let l = wfp_core::catalogue::layer_by_name(name).expect(name);
            assert_eq!(l.id, id.0, "{name}");
        }
    }
}
