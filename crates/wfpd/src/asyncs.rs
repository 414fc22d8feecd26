//! The inline side of asynchronous classify, injection and editing (wfp-reference §10.1, §10.4,
//! §9.2): what a worker does with a packet whose classify was pended, with an edited packet, and
//! with the packets callouts inject.
//!
//! ```text
//!  handle: verdict ABSORB + Reason::Pended ──► HELD: the NFQUEUE id is kept, no verdict yet
//!          verdict PERMIT + edited          ──► ACCEPT with NFQA_PAYLOAD (checksums fixed)
//!  end of batch / timer (AsyncPath::run):
//!    host.worker.run(engine)      built-in callouts' work outside classifyFn (pend decisions,
//!                                 out-of-band stream edits)
//!    shim.handle_async(now)       completions, reauthorizations, injections
//!    shim.poll_output():
//!      Released (a held packet)   ──► its held id: ACCEPT (+ payload if edited) / DROP
//!      Released (not ours), Injected, permitted ──► RawSender (SO_MARK = self mark) ──► kernel
//!    held ids whose operation completed without releasing them (refused, flushed) ──► DROP
//!    held ids of flows that ended ──► DROP
//!  timer: a held id older than the verdict deadline ──► posture.pended (fail-closed DROP,
//!         fail-open ACCEPT, counted); the shim drops the operation at the same deadline
//! ```
//!
//! Every queued packet gets exactly one verdict: now, when released, when refused, when its flow
//! ends, at the deadline, or when the worker stops ([`AsyncPath::finish`]).
//!
//! **The self mark** (`[rules] self_mark`): injected packets leave through raw sockets whose
//! packets carry it, and the daemon's own queue rules return for it before NFQUEUE. That mark is
//! how the engine knows a packet is its own (§10.4 injection state "injected by self"): the
//! packet was classified once, when the shim ran the injection with its provenance
//! (`PacketContext::injection`), and the kernel does not queue it a second time. Consequence on
//! loopback: a packet injected toward a local address is not classified again on its receive
//! side.
//!
//! Limits:
//! * Several queues: each has its own shim, with its own share of flow ids and completion
//!   handles ([`wfp_shim::IdShare`]), and takes only the engine's events and injections of its
//!   own flows (an injection of a packet a callout allocated, of no flow, goes to the first
//!   queue's worker). The kernel's fanout keeps a connection on one queue; a packet injected
//!   into a connection another queue sees is classified by the injecting flow's shim.
//! * Work a callout does on its own threads (a completion, an injection) is picked up every
//!   [`ASYNC_TICK`] while packets are held, otherwise after the next batch or timer (at most
//!   the worker's idle wait, 500 ms).
//! * A receive injection (network / transport receive) reaches the stack through the raw
//!   socket's route to its local destination (loopback), not on the interface it names; an
//!   IPv6 link-local destination has no scope to route by and fails (counted).
//! * A length-changing stream edit is translated as the kernel's NAT helper does: one previous
//!   shift is remembered, so acknowledgements older than the edit before the latest one are
//!   moved by the wrong amount.

use std::collections::{HashSet, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use wfp_nfqueue::{Decision, Deferred, PacketId, RawSender, Verdict as NfVerdict};
use wfp_shim::{FlowId, OutputOrigin, Reason, Shim, ShimOutput, Verdict};

use crate::config::Posture;

/// How often held packets make the worker wake up for completions callouts make from their own
/// threads (the built-in worker's completions are applied right after the batch that queued them).
pub const ASYNC_TICK: Duration = Duration::from_millis(10);

/// Counters of the asynchronous path of one worker (shared with the statistics).
#[derive(Debug, Default)]
pub struct AsyncCounters {
    /// Queued packets held while their flow's classify was pended.
    pub held: AtomicU64,
    /// Held packets released by a completion (then accepted or dropped by their classify).
    pub released: AtomicU64,
    /// Held packets dropped: the completion refused the connection or flushed them (§10.1
    /// RECV_ACCEPT), or their flow ended.
    pub held_dropped: AtomicU64,
    /// Held packets still pended at the verdict deadline (or when the worker stopped).
    pub expired: AtomicU64,
    /// Of those, accepted (`posture.pended = "fail-open"`): fail-open events.
    pub expired_accepted: AtomicU64,
    /// Packets accepted with new bytes (NFQA_PAYLOAD): stream edits and their renumbering.
    pub edited: AtomicU64,
    /// Injected packets sent through the raw socket.
    pub injected_sent: AtomicU64,
    /// Injected packets a layer blocked (not sent).
    pub injected_blocked: AtomicU64,
    /// Injected packets the raw socket could not send (or no raw socket: `self_mark = 0`).
    pub injected_failed: AtomicU64,
}

/// A queued packet without a verdict yet.
#[derive(Debug)]
struct Held {
    id: PacketId,
    mark: Option<u32>,
    flow: Option<FlowId>,
    /// The packet as queued (what the shim's Released output carries).
    bytes: Vec<u8>,
    since: Duration,
}

/// The inline asynchronous path of one worker (see the module doc).
pub struct AsyncPath {
    held: VecDeque<Held>,
    ready: VecDeque<Deferred>,
    raw: Option<RawSender>,
    deadline: Duration,
    expiry: Posture,
    counters: std::sync::Arc<AsyncCounters>,
}

impl AsyncPath {
    /// Holds packets up to `deadline`, then applies `expiry`; sends injected packets through
    /// `raw` (none: they are counted as failed).
    pub fn new(
        raw: Option<RawSender>,
        (deadline, expiry): (Duration, Posture),
        counters: std::sync::Arc<AsyncCounters>,
    ) -> Self {
        Self {
            held: VecDeque::new(),
            ready: VecDeque::new(),
            raw,
            deadline,
            expiry,
            counters,
        }
    }

    /// Holds packet `id` (its classify was pended).
    pub fn hold(
        &mut self,
        now: Duration,
        (id, mark, flow): (PacketId, Option<u32>, Option<FlowId>),
        bytes: &[u8],
    ) {
        self.counters.held.fetch_add(1, Ordering::Relaxed);
        self.held.push_back(Held {
            id,
            mark,
            flow,
            bytes: bytes.to_vec(),
            since: now,
        });
    }

    /// Counts a packet accepted with new bytes.
    pub fn note_edited(&self) {
        self.counters.edited.fetch_add(1, Ordering::Relaxed);
    }

    /// Packets held now.
    pub fn held_count(&self) -> usize {
        self.held.len()
    }

    /// When the asynchronous path next needs the worker: the oldest held packet's deadline, or
    /// the next [`ASYNC_TICK`] while anything is held.
    pub fn poll_timeout(&self, last_run: Duration) -> Option<Duration> {
        let oldest = self.held.front()?;
        Some((oldest.since + self.deadline).min(last_run + ASYNC_TICK))
    }

    /// Runs the callouts' work and the shim's asynchronous step at `now`, and turns their outputs
    /// into verdicts for held packets and raw sends.
    pub fn run(&mut self, now: Duration, shim: &mut Shim, host: &wfp_callouts::Host) {
        host.worker.run(shim.engine());
        // Operations completed before handle_async are applied by it: a held packet of such a
        // flow that is not released below was refused or flushed.
        let completed: HashSet<FlowId> = self
            .held
            .iter()
            .filter_map(|h| h.flow)
            .filter(|f| shim.engine().pending_operations_of_flow(f.get()).is_empty())
            .collect();
        shim.handle_async(wfp_shim::Timestamp::from_duration(now));
        while let Some(o) = shim.poll_output() {
            self.output(&o);
        }
        // (A packet released and pended again by a new operation stays held.)
        let engine = shim.engine();
        let dropped: Vec<Held> = self.take_held(|h| {
            h.flow.is_some_and(|f| {
                completed.contains(&f) && engine.pending_operations_of_flow(f.get()).is_empty()
            })
        });
        for h in dropped {
            self.answer(&h, NfVerdict::Drop, None);
            self.counters.held_dropped.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// A flow ended: its held packets are dropped.
    pub fn flow_ended(&mut self, flow: FlowId) {
        for h in self.take_held(|h| h.flow == Some(flow)) {
            self.answer(&h, NfVerdict::Drop, None);
            self.counters.held_dropped.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Held packets older than the deadline at `now` get the `pended` posture.
    pub fn expire(&mut self, now: Duration) {
        let deadline = self.deadline;
        // A flow's packets expire together, with its oldest (the shim drops the operation then).
        let due: HashSet<Option<FlowId>> = self
            .held
            .iter()
            .filter(|h| h.since + deadline <= now)
            .map(|h| h.flow)
            .collect();
        if due.is_empty() {
            return;
        }
        for h in self.take_held(|h| due.contains(&h.flow)) {
            self.expire_one(&h);
        }
    }

    /// The worker stops: everything still held gets the `pended` posture.
    pub fn finish(&mut self) {
        for h in std::mem::take(&mut self.held) {
            self.expire_one(&h);
        }
    }

    /// The shim was replaced after a panic: its held operations are gone; every held packet gets
    /// `verdict` (the internal-error posture).
    pub fn abandon(&mut self, verdict: NfVerdict) {
        for h in std::mem::take(&mut self.held) {
            self.answer(&h, verdict, None);
            self.counters
                .held_dropped
                .fetch_add(u64::from(verdict == NfVerdict::Drop), Ordering::Relaxed);
        }
    }

    /// The next verdict for a held packet.
    pub fn poll_verdict(&mut self) -> Option<Deferred> {
        self.ready.pop_front()
    }

    fn expire_one(&mut self, h: &Held) {
        self.counters.expired.fetch_add(1, Ordering::Relaxed);
        let verdict = match self.expiry {
            Posture::FailOpen => {
                self.counters
                    .expired_accepted
                    .fetch_add(1, Ordering::Relaxed);
                NfVerdict::Accept
            }
            Posture::FailClosed => NfVerdict::Drop,
        };
        tracing::debug!(
            packet = h.id.0,
            ?verdict,
            "held packet reached the verdict deadline"
        );
        self.answer(h, verdict, None);
    }

    /// One output of `Shim::handle_async`.
    fn output(&mut self, o: &ShimOutput) {
        // A redirected connection's packet is dropped (`worker.rs`, `refuse_redirected`).
        let permit = o.verdict.verdict == Verdict::Permit && o.verdict.redirected.is_none();
        let edited = o.verdict.edited.as_ref().map(|e| e.bytes.clone());
        if let OutputOrigin::Released { .. } = o.origin {
            if let Some(at) = self.held.iter().position(|h| h.bytes == o.bytes) {
                if o.verdict.reason == Reason::Pended {
                    // Pended again (a new operation): still held.
                    return;
                }
                let Some(h) = self.held.remove(at) else {
                    return;
                };
                self.counters.released.fetch_add(1, Ordering::Relaxed);
                let verdict = if permit {
                    NfVerdict::Accept
                } else {
                    NfVerdict::Drop
                };
                if permit && edited.is_some() {
                    self.note_edited();
                }
                self.answer(&h, verdict, edited.filter(|_| permit));
                return;
            }
        }
        // An injected packet (or one the shim held on its way in): it leaves through the raw
        // socket, or, held by a pend, comes back later as Released.
        if o.verdict.reason == Reason::Pended {
            return;
        }
        if !permit {
            self.counters
                .injected_blocked
                .fetch_add(1, Ordering::Relaxed);
            return;
        }
        let bytes = edited.as_deref().unwrap_or(&o.bytes);
        let sent = match &self.raw {
            Some(raw) => raw.send(bytes).map_err(|e| e.to_string()),
            None => Err("no raw socket (rules.self_mark = 0)".to_owned()),
        };
        match sent {
            Ok(()) => self.counters.injected_sent.fetch_add(1, Ordering::Relaxed),
            Err(e) => {
                tracing::debug!(error = %e, len = bytes.len(), "injected packet not sent");
                self.counters
                    .injected_failed
                    .fetch_add(1, Ordering::Relaxed)
            }
        };
    }

    fn take_held(&mut self, pick: impl Fn(&Held) -> bool) -> Vec<Held> {
        let (taken, kept): (Vec<Held>, Vec<Held>) = self.held.drain(..).partition(|h| pick(h));
        self.held = kept.into();
        taken
    }

    fn answer(&mut self, h: &Held, verdict: NfVerdict, payload: Option<Vec<u8>>) {
        self.ready.push_back(Deferred {
            id: h.id,
            decision: Decision {
                verdict,
                mark: None,
            },
            packet_mark: h.mark,
            payload,
        });
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use wfp_shim::{EditedPacket, PacketDirection, PacketVerdict, Timestamp};

    use super::*;

    fn flow(n: u64) -> Option<FlowId> {
        FlowId::from_handle(n)
    }

    fn path(posture: Posture) -> (AsyncPath, Arc<AsyncCounters>) {
        let counters = Arc::new(AsyncCounters::default());
        let p = AsyncPath::new(
            None,
            (Duration::from_millis(100), posture),
            Arc::clone(&counters),
        );
        (p, counters)
    }

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    fn drain(p: &mut AsyncPath) -> Vec<(u32, NfVerdict, Option<Vec<u8>>)> {
        std::iter::from_fn(|| p.poll_verdict())
            .map(|d| (d.id.0, d.decision.verdict, d.payload))
            .collect()
    }

    fn count(c: &AtomicU64) -> u64 {
        c.load(Ordering::Relaxed)
    }

    fn output(bytes: &[u8], verdict: Verdict, origin: OutputOrigin) -> ShimOutput {
        let mut v = PacketVerdict::new(PacketDirection::Outbound);
        v.verdict = verdict;
        ShimOutput {
            now: Timestamp::from_secs(1),
            bytes: bytes.to_vec(),
            verdict: v,
            origin,
        }
    }

    #[test]
    fn a_flows_held_packets_expire_together_with_the_posture_and_are_counted() {
        let (mut p, c) = path(Posture::FailOpen);
        p.hold(ms(0), (PacketId(1), Some(7), flow(1)), b"a1");
        p.hold(ms(50), (PacketId(2), None, flow(2)), b"b1");
        p.hold(ms(90), (PacketId(3), None, flow(1)), b"a2");
        assert_eq!(p.poll_timeout(ms(0)), Some(ms(10)), "the async tick");
        assert_eq!(p.poll_timeout(ms(95)), Some(ms(100)), "the oldest deadline");
        p.expire(ms(99));
        assert!(drain(&mut p).is_empty());
        p.expire(ms(100));
        assert_eq!(
            drain(&mut p),
            [(1, NfVerdict::Accept, None), (3, NfVerdict::Accept, None)]
        );
        p.finish();
        assert_eq!(drain(&mut p), [(2, NfVerdict::Accept, None)]);
        assert_eq!((count(&c.expired), count(&c.expired_accepted)), (3, 3));
        assert_eq!(p.held_count(), 0);
        assert_eq!(p.poll_timeout(ms(0)), None);
    }

    #[test]
    fn fail_closed_expiry_drops_and_ended_flows_drop_their_held_packets() {
        let (mut p, c) = path(Posture::FailClosed);
        p.hold(ms(0), (PacketId(1), None, flow(1)), b"a");
        p.hold(ms(0), (PacketId(2), None, flow(2)), b"b");
        p.hold(ms(0), (PacketId(3), None, flow(3)), b"c");
        p.flow_ended(FlowId::from_handle(2).expect("id"));
        assert_eq!(drain(&mut p), [(2, NfVerdict::Drop, None)]);
        p.expire(ms(100));
        assert_eq!(
            drain(&mut p),
            [(1, NfVerdict::Drop, None), (3, NfVerdict::Drop, None)]
        );
        p.abandon(NfVerdict::Accept);
        p.finish();
        assert!(drain(&mut p).is_empty(), "nothing held is answered twice");
        assert_eq!(count(&c.held), 3);
        assert_eq!(count(&c.held_dropped), 1);
        assert_eq!((count(&c.expired), count(&c.expired_accepted)), (2, 0));
    }

    #[test]
    fn a_released_packet_answers_its_held_id_once_with_its_edited_bytes() {
        let (mut p, c) = path(Posture::FailClosed);
        p.hold(ms(0), (PacketId(4), None, flow(1)), b"syn");
        p.hold(ms(0), (PacketId(5), None, flow(1)), b"data");
        let released = || OutputOrigin::Released { flow: flow(1) };
        // Pended again: still held.
        let mut again = output(b"syn", Verdict::Absorb, released());
        again.verdict.reason = Reason::Pended;
        p.output(&again);
        assert!(drain(&mut p).is_empty());
        let mut edited = output(b"data", Verdict::Permit, released());
        edited.verdict.edited = Some(EditedPacket {
            bytes: b"DATA!".to_vec(),
            injectors: Vec::new(),
        });
        p.output(&edited);
        p.output(&output(b"syn", Verdict::Absorb, released()));
        assert_eq!(
            drain(&mut p),
            [
                (5, NfVerdict::Accept, Some(b"DATA!".to_vec())),
                (4, NfVerdict::Drop, None)
            ]
        );
        // Not a held packet any more: an injected one, here without a raw socket.
        p.output(&output(b"syn", Verdict::Permit, released()));
        assert!(drain(&mut p).is_empty());
        assert_eq!(count(&c.released), 2);
        assert_eq!(count(&c.edited), 1);
        assert_eq!(count(&c.injected_failed), 1);
        assert_eq!(p.held_count(), 0);
    }

    /// §10.3: a held connect a pended redirect released rewritten is dropped, never replaced
    /// (docs/semantics.md, "Redirection").
    #[test]
    fn a_released_packet_of_a_redirected_connection_is_dropped() {
        let (mut p, _) = path(Posture::FailOpen);
        p.hold(ms(0), (PacketId(9), None, flow(1)), b"syn");
        let mut o = output(
            b"syn",
            Verdict::Permit,
            OutputOrigin::Released { flow: flow(1) },
        );
        o.verdict.edited = Some(EditedPacket {
            bytes: b"SYN to the proxy".to_vec(),
            injectors: Vec::new(),
        });
        let a = "192.0.2.1:1".parse().expect("address");
        o.verdict.redirected = Some(wfp_shim::Redirected {
            connection: Arc::new(wfp_shim::Redirection {
                protocol: 6,
                original_local: a,
                original_remote: a,
                local: a,
                remote: "192.0.2.2:2".parse().expect("address"),
                filter: None,
                layer: wfp_core::LayerId(66),
                local_redirect_target_pid: 0,
                records: Arc::default(),
            }),
            first: false,
        });
        p.output(&o);
        assert_eq!(drain(&mut p), [(9, NfVerdict::Drop, None)]);
    }
}

#[cfg(test)]
mod config_tests {
    use crate::config::{Config, Posture};

    #[test]
    fn self_mark_and_pended_posture_are_configured_and_checked() {
        let base = "[policy]\nfiles = [\"/etc/wfpd/policy.toml\"]\n";
        let c = Config::parse(base, "t").expect("defaults");
        assert_eq!(c.rules.self_mark, 0x2000_0000);
        assert_eq!(c.posture.pended, Posture::FailClosed);
        assert_eq!(c.rule_set().self_mark, Some(0x2000_0000));
        let c = Config::parse(
            &format!("{base}[rules]\nself_mark = 0x100\n[posture]\npended = \"fail-open\"\n"),
            "t",
        )
        .expect("set");
        assert_eq!(c.rule_set().self_mark, Some(0x100));
        assert_eq!(c.posture.pended, Posture::FailOpen);
        let off = Config::parse(&format!("{base}[rules]\nself_mark = 0\n"), "t").expect("off");
        assert_eq!(off.rule_set().self_mark, None);
        let clash = Config::parse(&format!("{base}[rules]\nself_mark = 0x40000000\n"), "t");
        assert!(clash.is_err(), "shares the accounting bit");
    }
}
