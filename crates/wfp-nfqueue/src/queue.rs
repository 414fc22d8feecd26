//! One NFQUEUE queue: socket setup, batched receive, buffered verdicts, stop.
//!
//! Call order for a worker loop:
//!
//! 1. [`Queue::open`] (binds the queue number and applies the [`QueueConfig`] atomically);
//! 2. repeatedly [`Queue::recv_batch`], then one [`Queue::verdict`] per packet (or a
//!    [`Queue::verdict_batch`] where that is safe). Verdicts are buffered and sent in one
//!    `sendto(2)` per batch: `recv_batch` flushes them before it waits, and [`Queue::flush`]
//!    sends them at once;
//! 3. [`StopHandle::stop`] from any thread makes the next (or the current, blocked)
//!    `recv_batch` return [`RecvStatus::Stopped`];
//! 4. drop the queue: pending verdicts are flushed and the socket closed, which unbinds the
//!    queue. The kernel drops packets still waiting in it.

use std::collections::VecDeque;
use std::os::fd::{AsRawFd, RawFd};
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::config::{QueueConfig, QueueFlags};
use crate::error::NfqError;
use crate::packet::{PacketId, QueuedPacket, Verdict};
use crate::sys::{self, Fd, Op, RecvScratch, RecvSlot, SockOpt, SysError, SysOk};
use crate::wire::{self, ConfigCmd, NlMsg, NlMsgIter};

/// Largest accepted [`QueueConfig::verdict_flush_bytes`]: netlink refuses datagrams larger than
/// the socket send buffer (default ~208 KiB).
pub(crate) const MAX_FLUSH_BYTES: usize = 128 << 10;

/// What [`Queue::recv_batch`] returned.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum RecvStatus {
    /// This many packets are in the output vector (at least one).
    Packets(usize),
    /// The queue's [`StopHandle`] was signalled; the output vector is empty.
    Stopped,
    /// [`QueueConfig::recv_timeout`] passed without a packet; the output vector is empty.
    TimedOut,
}

/// Counters of one queue. Every packet-derived anomaly is counted here rather than reported as
/// an error.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub struct QueueStats {
    /// Packets handed to the caller.
    pub packets: u64,
    /// Datagrams received from the socket (packets, acks, errors).
    pub datagrams: u64,
    /// `recvmmsg(2)` calls that returned at least one datagram.
    pub recv_calls: u64,
    /// Messages that could not be parsed (malformed or truncated).
    pub malformed: u64,
    /// Datagrams cut short because they did not fit a receive slot (`MSG_TRUNC`).
    pub truncated: u64,
    /// Malformed packets whose id was readable, given [`QueueConfig::malformed_verdict`].
    pub auto_verdicts: u64,
    /// `ENOBUFS` from the socket (or `NLMSG_OVERRUN`): the kernel could not deliver some packets.
    /// Without `fail_open` those were dropped; with it, accepted. Reading continues.
    pub enobufs: u64,
    /// Packet ids that were skipped: the kernel assigned them but the messages never arrived
    /// (socket overflow). With `fail_open` each one is a packet accepted without inspection.
    /// Queue-full events consume no id and are invisible here; see
    /// [`crate::kernel_queue_stats`].
    pub id_gaps: u64,
    /// Single-packet verdict messages queued for sending.
    pub verdicts: u64,
    /// Batch verdict messages queued for sending.
    pub batch_verdicts: u64,
    /// `sendto(2)` calls that carried verdicts.
    pub send_calls: u64,
    /// Error messages from the kernel outside configuration requests (e.g. `ENOENT` for a
    /// verdict naming an unknown packet id).
    pub kernel_errors: u64,
    /// Packet messages addressed to another queue number (never expected; ignored).
    pub foreign_queue: u64,
    /// Messages of a type this crate does not expect (ignored).
    pub unexpected: u64,
    /// Panics of a worker's packet handler (see [`crate::run_worker`]).
    pub handler_panics: u64,
    /// Single verdicts that went out as part of the previous verdict message, widened into a
    /// batch verdict, instead of as a message of their own ([`QueueConfig::coalesce_verdicts`]).
    /// Messages sent = `verdicts - coalesced + batch_verdicts`.
    pub coalesced: u64,
}

/// Stops one or more queues from another thread. Cheap to clone.
///
/// Backed by an eventfd that the queue polls together with its socket, plus a flag checked on
/// every [`Queue::recv_batch`], so a stop is seen both by an idle (blocked) and by a busy queue.
/// Once stopped, always stopped.
#[derive(Clone, Debug)]
pub struct StopHandle {
    inner: Arc<StopInner>,
}

#[derive(Debug)]
struct StopInner {
    event: Fd,
    stopped: AtomicBool,
}

impl StopHandle {
    /// Creates a new, unsignalled handle.
    pub fn new() -> Result<Self, NfqError> {
        let event = sys::call(Op::EventFd)
            .and_then(|ok| Fd::from_ok(ok, "eventfd"))
            .map_err(SysError::into_nfq)?;
        Ok(Self {
            inner: Arc::new(StopInner {
                event,
                stopped: AtomicBool::new(false),
            }),
        })
    }

    /// Signals every queue using this handle. Idempotent.
    pub fn stop(&self) {
        self.inner.stopped.store(true, Ordering::Release);
        // The eventfd write can only fail if the counter is saturated (then it is readable
        // already); the flag above is set regardless.
        let _ = sys::call(Op::SignalEventFd {
            fd: self.inner.event.raw(),
        });
    }

    /// True once [`StopHandle::stop`] was called.
    pub fn is_stopped(&self) -> bool {
        self.inner.stopped.load(Ordering::Acquire)
    }

    fn raw(&self) -> RawFd {
        self.inner.event.raw()
    }
}

/// Sends verdicts for one queue from another thread, on a duplicate of the queue's socket (the
/// kernel accepts verdicts only from the socket that bound the queue; a duplicate descriptor is
/// that socket). Made by [`Queue::verdict_sender`]; `Send + Sync`.
///
/// Meant for a watchdog that must decide packets a stuck worker holds: each call is sent at
/// once (no buffering). A verdict for a packet that was already decided is answered by the
/// kernel with `ENOENT`, which the queue's owner reads and counts in
/// [`QueueStats::kernel_errors`]; it is harmless.
#[derive(Debug)]
pub struct VerdictSender {
    socket: Fd,
    queue_num: u16,
    seq: AtomicU32,
}

impl VerdictSender {
    /// The queue number.
    pub fn queue_num(&self) -> u16 {
        self.queue_num
    }

    /// Sends a verdict for one packet now.
    pub fn verdict(
        &self,
        id: PacketId,
        verdict: Verdict,
        mark: Option<u32>,
    ) -> Result<(), NfqError> {
        self.send(false, id.0, verdict, mark)
    }

    /// Sends a batch verdict now: `verdict` for **every** packet of the queue still waiting with
    /// an id up to and including `up_to` (see [`Queue::verdict_batch`] for when that is safe).
    pub fn verdict_batch(
        &self,
        up_to: PacketId,
        verdict: Verdict,
        mark: Option<u32>,
    ) -> Result<(), NfqError> {
        self.send(true, up_to.0, verdict, mark)
    }

    fn send(
        &self,
        batch: bool,
        id: u32,
        verdict: Verdict,
        mark: Option<u32>,
    ) -> Result<(), NfqError> {
        // Sequence numbers of verdicts only label kernel error answers; they need not be unique
        // across the two descriptors. The high bit keeps them apart from the queue's own.
        let seq = self.seq.fetch_add(1, Ordering::Relaxed) | 0x8000_0000;
        let mut buf = Vec::with_capacity(48);
        wire::verdict(
            &mut buf,
            batch,
            seq,
            self.queue_num,
            id,
            verdict.code(),
            mark,
        );
        sys::call(Op::Send {
            fd: self.socket.raw(),
            buf: &buf,
        })
        .map_err(SysError::into_nfq)?;
        Ok(())
    }
}

/// What one receive call produced.
enum Received {
    /// This many datagrams are in the slab.
    Datagrams(usize),
    /// Nothing waiting.
    Empty,
    /// The kernel reported a receive-buffer overflow; read again.
    Overrun,
}

/// One bound NFQUEUE queue (one netlink socket). Not shared between threads: run one queue per
/// worker thread (see [`crate::spawn_workers`]).
pub struct Queue {
    config: QueueConfig,
    flags: QueueFlags,
    socket: Fd,
    stop: StopHandle,
    slab: Vec<u8>,
    slots: Vec<RecvSlot>,
    scratch: RecvScratch,
    slot_size: usize,
    tx: Vec<u8>,
    /// The verdict message at the end of `tx` that the next in-order verdict with the same
    /// verdict code and mark may widen into a batch verdict: (offset in `tx`, code, mark).
    tail: Option<(usize, u32, Option<u32>)>,
    /// Ids of received packets without a verdict yet, oldest first (only while `tracking`).
    undecided: VecDeque<u32>,
    /// True while every packet the kernel may hold for this queue with an id below the newest
    /// received one is known (received, hence in `undecided` or decided). False for good once a
    /// packet message without a readable id arrives, or when `undecided` overflows: coalescing
    /// stops then.
    tracking: bool,
    seq: u32,
    pending: VecDeque<QueuedPacket>,
    last_id: Option<u32>,
    last_kernel_error: Option<i32>,
    /// The previous receive filled every slot, so more is probably waiting: try `recvmmsg`
    /// before `poll` (saves a syscall per batch under load; when idle, `poll` comes first).
    last_batch_full: bool,
    stats: QueueStats,
}

impl Queue {
    /// Opens a netlink socket and binds queue `config.queue_num` with the configured copy mode,
    /// maximum length and flags, with its own [`StopHandle`].
    ///
    /// Needs `CAP_NET_ADMIN` in the current network namespace. Fails with
    /// [`NfqError::Config`] (`EBUSY`) if another socket owns the queue.
    pub fn open(config: QueueConfig) -> Result<Self, NfqError> {
        let stop = StopHandle::new()?;
        Self::open_with_stop(config, stop)
    }

    /// Like [`Queue::open`], sharing an existing [`StopHandle`] (one stop for many queues).
    pub fn open_with_stop(config: QueueConfig, stop: StopHandle) -> Result<Self, NfqError> {
        config.validate()?;
        let socket = sys::call(Op::NetlinkSocket)
            .and_then(|ok| Fd::from_ok(ok, "socket"))
            .map_err(SysError::into_nfq)?;
        let fd = socket.raw();
        sys::call(Op::BindNetlink { fd }).map_err(SysError::into_nfq)?;
        let bytes = config.recv_buffer_bytes;
        if sys::call(Op::SetSockOpt {
            fd,
            opt: SockOpt::RcvBufForce(bytes),
        })
        .is_err()
        {
            sys::call(Op::SetSockOpt {
                fd,
                opt: SockOpt::RcvBuf(bytes),
            })
            .map_err(SysError::into_nfq)?;
        }
        if config.no_enobufs {
            sys::call(Op::SetSockOpt {
                fd,
                opt: SockOpt::NoEnobufs(true),
            })
            .map_err(SysError::into_nfq)?;
        }
        // Smaller acknowledgements; kernels before 4.3 lack the option, which is harmless.
        let _ = sys::call(Op::SetSockOpt {
            fd,
            opt: SockOpt::CapAck(true),
        });
        let slot_size = config.slot_size();
        let slots = config.batch_slots;
        let mut queue = Self {
            flags: config.flags,
            socket,
            stop,
            slab: vec![0; slot_size * slots],
            slots: vec![RecvSlot::default(); slots],
            scratch: RecvScratch::default(),
            slot_size,
            tx: Vec::with_capacity(config.verdict_flush_bytes + 64),
            tail: None,
            undecided: VecDeque::new(),
            tracking: config.coalesce_verdicts,
            seq: 0,
            pending: VecDeque::new(),
            last_id: None,
            last_kernel_error: None,
            last_batch_full: false,
            stats: QueueStats::default(),
            config,
        };
        queue.bind_pf()?;
        queue.bind()?;
        Ok(queue)
    }

    /// Waits for packets and fills `out` with the next batch (as many as one `recvmmsg(2)`
    /// returns, up to [`QueueConfig::batch_slots`]).
    ///
    /// Buffered verdicts are sent first. `out` is overwritten: on return it holds exactly this
    /// batch, reusing the payload buffers of its previous elements. Every packet returned needs
    /// a verdict. Receive-buffer overflows (`ENOBUFS`) and malformed messages are counted in
    /// [`Queue::stats`] and do not end the call.
    pub fn recv_batch(&mut self, out: &mut Vec<QueuedPacket>) -> Result<RecvStatus, NfqError> {
        self.flush()?;
        if !self.pending.is_empty() {
            out.clear();
            out.extend(self.pending.drain(..));
            return Ok(RecvStatus::Packets(out.len()));
        }
        let mut deadline: Option<Instant> = None;
        let mut receive_first = self.last_batch_full;
        loop {
            if self.stop.is_stopped() {
                out.clear();
                return Ok(RecvStatus::Stopped);
            }
            if receive_first {
                match self.receive()? {
                    Received::Datagrams(count) => {
                        self.last_batch_full = count >= self.slots.len();
                        let mut used = 0;
                        self.process(count, out, &mut used, None);
                        if used > 0 {
                            out.truncate(used);
                            return Ok(RecvStatus::Packets(used));
                        }
                        continue;
                    }
                    Received::Overrun => continue,
                    Received::Empty => {}
                }
            }
            receive_first = true;
            // Auto-verdicts for malformed packets must not wait for the next packet.
            self.flush()?;
            let timeout_ms = match self.config.recv_timeout {
                None => -1,
                Some(timeout) => {
                    let end = *deadline.get_or_insert_with(|| Instant::now() + timeout);
                    let left = end.saturating_duration_since(Instant::now());
                    if left.is_zero() && self.config.recv_timeout != Some(Duration::ZERO) {
                        out.clear();
                        return Ok(RecvStatus::TimedOut);
                    }
                    poll_millis(left)
                }
            };
            let ready = self.poll(timeout_ms)?;
            if ready.stop {
                out.clear();
                return Ok(RecvStatus::Stopped);
            }
            if !ready.socket && timeout_ms >= 0 && deadline.is_some_and(|end| Instant::now() >= end)
            {
                out.clear();
                return Ok(RecvStatus::TimedOut);
            }
        }
    }

    /// Queues a verdict for one packet, optionally setting its mark (`NFQA_MARK`).
    ///
    /// The verdict is buffered; it is sent when the buffer reaches
    /// [`QueueConfig::verdict_flush_bytes`], on [`Queue::flush`], before
    /// [`Queue::recv_batch`] waits, and on drop. Each packet must get exactly one verdict; a
    /// verdict for an unknown id is answered by the kernel with `ENOENT` and counted in
    /// [`QueueStats::kernel_errors`].
    ///
    /// With [`QueueConfig::coalesce_verdicts`] (the default), a verdict for the oldest received
    /// packet still undecided that has the same verdict and mark as the verdict message buffered
    /// just before it is merged into that message, which becomes a batch verdict up to this id.
    /// That is exact, not an approximation: every other packet the kernel may hold with a lower
    /// id was received and already decided by an earlier message (see
    /// [`QueueConfig::coalesce_verdicts`] for the argument).
    pub fn verdict(
        &mut self,
        id: PacketId,
        verdict: Verdict,
        mark: Option<u32>,
    ) -> Result<(), NfqError> {
        self.stats.verdicts += 1;
        if !self.tracking {
            self.push_verdict(false, id.0, verdict, mark);
            return self.flush_if_full();
        }
        let oldest = self.settle(id.0);
        let code = verdict.code();
        if oldest {
            if let Some((start, c, m)) = self.tail {
                if c == code && m == mark && wire::widen_verdict(&mut self.tx, start, id.0) {
                    self.stats.coalesced += 1;
                    return Ok(());
                }
            }
        }
        let start = self.tx.len();
        self.push_verdict(false, id.0, verdict, mark);
        if oldest {
            self.tail = Some((start, code, mark));
        }
        self.flush_if_full()
    }

    /// Queues a verdict for one packet that also replaces its bytes (`NFQA_PAYLOAD`, network
    /// header first): the kernel continues with `payload` instead of the packet it queued (an
    /// edited packet; checksums are the caller's). Buffered like [`Queue::verdict`]; never merged
    /// into a batch verdict. At most 65531 bytes (a netlink attribute's limit).
    pub fn verdict_with_payload(
        &mut self,
        id: PacketId,
        verdict: Verdict,
        mark: Option<u32>,
        payload: &[u8],
    ) -> Result<(), NfqError> {
        // A netlink attribute's length is a u16 that counts its 4-byte header.
        let max = usize::from(u16::MAX) - 4;
        if payload.len() > max {
            return Err(NfqError::PayloadTooLong {
                len: payload.len(),
                max,
            });
        }
        self.stats.verdicts += 1;
        if self.tracking {
            self.settle(id.0);
        }
        self.tail = None;
        let seq = self.next_seq();
        wire::verdict_payload(
            &mut self.tx,
            seq,
            self.config.queue_num,
            id.0,
            verdict.code(),
            mark,
            payload,
        );
        self.flush_if_full()
    }

    /// Queues one batch verdict (`NFQNL_MSG_VERDICT_BATCH`): the kernel applies `verdict` (and
    /// `mark`, if set) to **every** packet of this queue still waiting with an id up to and
    /// including `up_to`.
    ///
    /// When it is safe: only if every packet of this queue with an id ≤ `up_to` that has not yet
    /// been given its own verdict should get this same verdict and mark — that is, none of them
    /// is still undecided (held back, e.g. pending an asynchronous callout) or meant for a
    /// different verdict. Single verdicts queued before this call are sent before it (same
    /// buffer, same order), so "decide some individually, then batch the rest" is correct.
    /// Packets with larger ids are untouched. Ids are per queue; a batch never affects another
    /// queue.
    pub fn verdict_batch(
        &mut self,
        up_to: PacketId,
        verdict: Verdict,
        mark: Option<u32>,
    ) -> Result<(), NfqError> {
        self.push_verdict(true, up_to.0, verdict, mark);
        self.stats.batch_verdicts += 1;
        // Everything up to `up_to` is decided now (ids wrap around: compare by distance).
        let at_or_below = |id: u32| up_to.0.wrapping_sub(id) < 1 << 31;
        self.undecided.retain(|&id| !at_or_below(id));
        self.flush_if_full()
    }

    /// Sends every buffered verdict now, in one `sendto(2)`. On error the verdicts stay
    /// buffered and the next flush retries them.
    pub fn flush(&mut self) -> Result<(), NfqError> {
        if self.tx.is_empty() {
            return Ok(());
        }
        let mut retries = 0;
        loop {
            match sys::call(Op::Send {
                fd: self.socket.raw(),
                buf: &self.tx,
            }) {
                Ok(_) => {
                    self.tx.clear();
                    self.tail = None;
                    self.stats.send_calls += 1;
                    return Ok(());
                }
                // Transient kernel memory pressure: retry a few times before giving up.
                Err(e) if (e.errno == libc::ENOBUFS || e.errno == libc::EAGAIN) && retries < 3 => {
                    retries += 1;
                    std::thread::yield_now();
                }
                Err(e) => return Err(e.into_nfq()),
            }
        }
    }

    /// Flushes buffered verdicts, unbinds the queue (acknowledged) and closes the socket,
    /// reporting errors that dropping the queue would swallow. Returns the final counters.
    /// The kernel drops packets still waiting in the queue.
    pub fn close(mut self) -> Result<QueueStats, NfqError> {
        self.flush()?;
        let num = self.config.queue_num;
        self.request("unbind", |buf, seq| {
            wire::config_cmd(buf, seq, num, ConfigCmd::Unbind, 0);
        })?;
        Ok(self.stats)
    }

    /// The queue number.
    pub fn queue_num(&self) -> u16 {
        self.config.queue_num
    }

    /// A [`VerdictSender`] for this queue (a duplicate of its socket), for another thread.
    pub fn verdict_sender(&self) -> Result<VerdictSender, NfqError> {
        let socket = sys::call(Op::Dup {
            fd: self.socket.raw(),
        })
        .and_then(|ok| Fd::from_ok(ok, "fcntl(F_DUPFD_CLOEXEC)"))
        .map_err(SysError::into_nfq)?;
        Ok(VerdictSender {
            socket,
            queue_num: self.config.queue_num,
            seq: AtomicU32::new(0),
        })
    }

    /// Changes how long [`Queue::recv_batch`] waits for a packet (see
    /// [`QueueConfig::recv_timeout`]), e.g. to wake up for the next timer of a state machine.
    pub fn set_recv_timeout(&mut self, timeout: Option<Duration>) {
        self.config.recv_timeout = timeout;
    }

    /// The configuration the queue was opened with.
    pub fn config(&self) -> &QueueConfig {
        &self.config
    }

    /// The flags the kernel accepted (may lack `conntrack`, see [`QueueConfig::require_flags`]).
    pub fn flags(&self) -> QueueFlags {
        self.flags
    }

    /// A handle that stops this queue's [`Queue::recv_batch`] from another thread.
    pub fn stop_handle(&self) -> StopHandle {
        self.stop.clone()
    }

    /// The counters so far.
    pub fn stats(&self) -> QueueStats {
        self.stats
    }

    /// The errno of the most recent kernel error message outside a configuration request.
    pub fn last_kernel_error(&self) -> Option<i32> {
        self.last_kernel_error
    }

    pub(crate) fn note_handler_panic(&mut self) {
        self.stats.handler_panics += 1;
    }

    fn next_seq(&mut self) -> u32 {
        self.seq = self.seq.wrapping_add(1);
        self.seq
    }

    /// Appends a verdict message to `tx` (it is not widened later unless the caller sets
    /// `tail` again).
    fn push_verdict(&mut self, batch: bool, id: u32, verdict: Verdict, mark: Option<u32>) {
        self.tail = None;
        let seq = self.next_seq();
        wire::verdict(
            &mut self.tx,
            batch,
            seq,
            self.config.queue_num,
            id,
            verdict.code(),
            mark,
        );
    }

    fn flush_if_full(&mut self) -> Result<(), NfqError> {
        if self.tx.len() >= self.config.verdict_flush_bytes {
            self.flush()
        } else {
            Ok(())
        }
    }

    /// Legacy per-family registration: required before Linux 3.8, a no-op (answered 0) since.
    fn bind_pf(&mut self) -> Result<(), NfqError> {
        let num = self.config.queue_num;
        for pf in [wire::AF_INET, wire::AF_INET6] {
            // Unbinding first is what libnetfilter_queue does; its failure is irrelevant.
            let _ = self.request("pf-unbind", |buf, seq| {
                wire::config_cmd(buf, seq, num, ConfigCmd::PfUnbind, pf);
            });
            self.request("pf-bind", |buf, seq| {
                wire::config_cmd(buf, seq, num, ConfigCmd::PfBind, pf);
            })?;
        }
        Ok(())
    }

    /// Binds the queue and applies copy mode, max length and flags in one request.
    fn bind(&mut self) -> Result<(), NfqError> {
        let num = self.config.queue_num;
        let copy = self.config.copy_mode.raw();
        let max_len = self.config.max_len;
        let mut flags = self.config.flags;
        let mut again = 0;
        loop {
            let bits = flags.bits();
            let result = self.request("bind", |buf, seq| {
                wire::config_bind(buf, seq, num, copy, max_len, bits, QueueFlags::MASK);
            });
            match result {
                Ok(()) => {
                    self.flags = flags;
                    return Ok(());
                }
                Err(NfqError::Config { ref source, .. }) => match source.raw_os_error() {
                    // The kernel loaded the conntrack glue on demand and asks us to retry.
                    Some(libc::EAGAIN) if again < 3 => again += 1,
                    Some(libc::EOPNOTSUPP) if flags.conntrack && !self.config.require_flags => {
                        flags.conntrack = false;
                    }
                    _ => return result,
                },
                Err(other) => return Err(other),
            }
        }
    }

    /// Sends one acknowledged request and waits for its answer. Packets that arrive meanwhile
    /// are kept for the next [`Queue::recv_batch`].
    fn request(
        &mut self,
        request: &'static str,
        build: impl FnOnce(&mut Vec<u8>, u32),
    ) -> Result<(), NfqError> {
        let seq = self.next_seq();
        let mut buf = Vec::with_capacity(64);
        build(&mut buf, seq);
        sys::call(Op::Send {
            fd: self.socket.raw(),
            buf: &buf,
        })
        .map_err(SysError::into_nfq)?;
        let deadline = Instant::now() + self.config.ack_timeout;
        loop {
            match self.receive()? {
                Received::Datagrams(count) => {
                    let mut pending: Vec<QueuedPacket> = self.pending.drain(..).collect();
                    let mut used = pending.len();
                    let ack = self.process(count, &mut pending, &mut used, Some(seq));
                    pending.truncate(used);
                    self.pending.extend(pending);
                    match ack {
                        Some(0) => return Ok(()),
                        Some(errno) => {
                            return Err(NfqError::Config {
                                queue: self.config.queue_num,
                                request,
                                source: std::io::Error::from_raw_os_error(errno),
                            })
                        }
                        None => {}
                    }
                }
                Received::Overrun => {}
                Received::Empty => {
                    let left = deadline.saturating_duration_since(Instant::now());
                    if left.is_zero() {
                        return Err(NfqError::AckTimeout {
                            queue: self.config.queue_num,
                            request,
                        });
                    }
                    let ready = self.poll(poll_millis(left))?;
                    if !ready.socket && Instant::now() >= deadline {
                        return Err(NfqError::AckTimeout {
                            queue: self.config.queue_num,
                            request,
                        });
                    }
                }
            }
        }
    }

    fn poll(&mut self, timeout_ms: i32) -> Result<sys::Readiness, NfqError> {
        match sys::call(Op::Poll {
            socket: self.socket.raw(),
            stop: self.stop.raw(),
            timeout_ms,
        }) {
            Ok(SysOk::Ready(ready)) => Ok(ready),
            Ok(_) => Ok(sys::Readiness::default()),
            Err(e) => Err(e.into_nfq()),
        }
    }

    /// One non-blocking `recvmmsg(2)`.
    fn receive(&mut self) -> Result<Received, NfqError> {
        let result = sys::call(Op::RecvMany {
            fd: self.socket.raw(),
            slab: &mut self.slab,
            slot_size: self.slot_size,
            slots: &mut self.slots,
            scratch: &mut self.scratch,
        });
        match result {
            Ok(SysOk::Len(0)) => Ok(Received::Empty),
            Ok(SysOk::Len(count)) => {
                self.stats.recv_calls += 1;
                Ok(Received::Datagrams(count.min(self.slots.len())))
            }
            Ok(_) => Ok(Received::Empty),
            Err(e) if e.errno == libc::EAGAIN || e.errno == libc::EINTR => Ok(Received::Empty),
            Err(e) if e.errno == libc::ENOBUFS => {
                self.stats.enobufs += 1;
                Ok(Received::Overrun)
            }
            Err(e) => Err(e.into_nfq()),
        }
    }

    /// Handles `count` received datagrams: packets go to `out[*used..]` (reusing elements),
    /// anomalies to the counters. Returns the errno of the acknowledgement for `want_seq`.
    fn process(
        &mut self,
        count: usize,
        out: &mut Vec<QueuedPacket>,
        used: &mut usize,
        want_seq: Option<u32>,
    ) -> Option<i32> {
        let slab = std::mem::take(&mut self.slab);
        let mut ack = None;
        for index in 0..count {
            let Some(slot) = self.slots.get(index).copied() else {
                break;
            };
            let start = index * self.slot_size;
            let Some(datagram) = slab.get(start..start + slot.len) else {
                continue;
            };
            self.stats.datagrams += 1;
            if slot.truncated {
                self.stats.truncated += 1;
            }
            for item in NlMsgIter::new(datagram) {
                match item {
                    Ok(msg) => self.handle_message(msg, out, used, want_seq, &mut ack),
                    Err(_) => {
                        // Possibly a packet message: stop coalescing (see `track`).
                        self.stats.malformed += 1;
                        self.stop_tracking();
                    }
                }
            }
        }
        self.slab = slab;
        ack
    }

    fn handle_message(
        &mut self,
        msg: NlMsg<'_>,
        out: &mut Vec<QueuedPacket>,
        used: &mut usize,
        want_seq: Option<u32>,
        ack: &mut Option<i32>,
    ) {
        match msg.msg_type {
            wire::NFQNL_MSG_PACKET => {
                if wire::res_id(msg.payload).is_some_and(|q| q != self.config.queue_num) {
                    self.stats.foreign_queue += 1;
                    return;
                }
                if *used >= out.len() {
                    out.push(QueuedPacket::default());
                }
                let Some(slot) = out.get_mut(*used) else {
                    return;
                };
                match wire::parse_packet_into(msg.payload, msg.declared_len, slot) {
                    Ok(()) => {
                        let id = slot.id.0;
                        self.track(id);
                        *used += 1;
                        self.stats.packets += 1;
                        self.note_id(id);
                    }
                    Err(error) => {
                        self.stats.malformed += 1;
                        if error.packet_id().is_none() {
                            // A packet the kernel holds that we cannot name: a batch verdict
                            // could decide it unseen.
                            self.stop_tracking();
                        }
                        if let Some(id) = error.packet_id() {
                            self.note_id(id);
                            self.push_verdict(false, id, self.config.malformed_verdict, None);
                            self.stats.auto_verdicts += 1;
                        }
                    }
                }
            }
            wire::NLMSG_ERROR => match wire::parse_error(msg.payload) {
                Ok((errno, seq)) if want_seq == Some(seq) => *ack = Some(errno),
                Ok((0, _)) => {}
                Ok((errno, _)) => {
                    self.stats.kernel_errors += 1;
                    self.last_kernel_error = Some(errno);
                }
                Err(_) => self.stats.malformed += 1,
            },
            wire::NLMSG_OVERRUN => self.stats.enobufs += 1,
            wire::NLMSG_NOOP | wire::NLMSG_DONE => {}
            _ => self.stats.unexpected += 1,
        }
    }

    /// Notes a received packet that needs a verdict (for coalescing).
    fn track(&mut self, id: u32) {
        if !self.tracking {
            return;
        }
        // More undecided packets than the kernel can hold: the caller is not deciding them (or
        // decides them through another socket); stop relying on the list.
        let limit = (2 * self.config.max_len as usize).max(4096);
        if self.undecided.len() >= limit {
            self.stop_tracking();
            return;
        }
        self.undecided.push_back(id);
    }

    fn stop_tracking(&mut self) {
        self.tracking = false;
        self.tail = None;
        self.undecided = VecDeque::new();
    }

    /// Removes `id` from the undecided packets; true if it was the oldest of them (every packet
    /// received before it has a verdict).
    fn settle(&mut self, id: u32) -> bool {
        if self.undecided.front() == Some(&id) {
            self.undecided.pop_front();
            return true;
        }
        if let Some(at) = self.undecided.iter().position(|&u| u == id) {
            self.undecided.remove(at);
        }
        false
    }

    /// Counts skipped ids (messages the kernel assigned an id to but could not deliver).
    fn note_id(&mut self, id: u32) {
        if let Some(last) = self.last_id {
            if id > last {
                self.stats.id_gaps += u64::from(id - last - 1);
            }
        }
        self.last_id = Some(id);
    }
}

impl std::fmt::Debug for Queue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Not derived: the receive slab is megabytes of bytes.
        f.debug_struct("Queue")
            .field("queue_num", &self.config.queue_num)
            .field("flags", &self.flags)
            .field("socket", &self.socket.raw())
            .field("pending", &self.pending.len())
            .field("buffered_verdict_bytes", &self.tx.len())
            .field("stats", &self.stats)
            .finish_non_exhaustive()
    }
}

impl AsRawFd for Queue {
    fn as_raw_fd(&self) -> RawFd {
        self.socket.raw()
    }
}

impl Drop for Queue {
    fn drop(&mut self) {
        // Best effort: the socket closes next, and the kernel drops whatever is undecided.
        let _ = self.flush();
    }
}

/// Milliseconds for `poll(2)`, rounded up so a short wait is not a busy loop.
fn poll_millis(left: Duration) -> i32 {
    let millis = left.as_micros().div_ceil(1000);
    i32::try_from(millis).unwrap_or(i32::MAX)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::packet::Hook;
    use crate::sys::fake::{ConfigSeen, FakeKernel, Inbound};
    use crate::wire::tests::PacketMsg;
    use crate::wire::{NFQA_MARK, NFQA_PAYLOAD, NFQNL_MSG_CONFIG, NFQNL_MSG_VERDICT};

    fn config() -> QueueConfig {
        let mut config = QueueConfig::new(5);
        config.recv_timeout = Some(Duration::ZERO);
        config.batch_slots = 4;
        config.copy_mode = crate::CopyMode::Packet(256);
        config
    }

    /// Every verdict message sent: `(message type, packet id, verdict code, mark)`.
    pub(crate) fn verdicts(fake: &FakeKernel) -> Vec<(u16, u32, u32, Option<u32>)> {
        fake.sent_messages()
            .into_iter()
            .filter(|(t, _)| *t == NFQNL_MSG_VERDICT || *t == wire::NFQNL_MSG_VERDICT_BATCH)
            .map(|(t, payload)| {
                let mut code = 0;
                let mut id = 0;
                let mut mark = None;
                for (attr, data) in wire::AttrIter::new(&payload[4..]).map(|a| a.expect("ok")) {
                    match attr {
                        wire::NFQA_VERDICT_HDR => {
                            code = u32::from_be_bytes(data[0..4].try_into().expect("4"));
                            id = u32::from_be_bytes(data[4..8].try_into().expect("4"));
                        }
                        NFQA_MARK => {
                            mark = Some(u32::from_be_bytes(data[0..4].try_into().expect("4")));
                        }
                        _ => {}
                    }
                }
                (t, id, code, mark)
            })
            .collect()
    }

    #[test]
    fn open_sends_pf_binds_then_one_atomic_bind() {
        let fake = FakeKernel::install();
        let mut cfg = config();
        cfg.flags.uid_gid = true;
        cfg.flags.fail_open = true;
        cfg.no_enobufs = true;
        let queue = Queue::open(cfg.clone()).expect("open");
        let sent = fake.sent_messages();
        assert!(sent.iter().all(|(t, _)| *t == NFQNL_MSG_CONFIG));
        // 2 families x (unbind, bind) + the atomic bind.
        assert_eq!(sent.len(), 5);
        assert_eq!(queue.flags(), cfg.flags);
        assert!(fake.state().sockopts.contains(&SockOpt::NoEnobufs(true)));
        assert!(fake
            .state()
            .sockopts
            .contains(&SockOpt::RcvBufForce(4 << 20)));
        drop(queue);
        assert!(fake.state().open.is_empty(), "socket and eventfd closed");
    }

    #[test]
    fn open_reports_busy_queue() {
        let fake = FakeKernel::install();
        fake.state().config_errno = Box::new(|seen: ConfigSeen| {
            if seen.cmd == Some(ConfigCmd::Bind as u8) {
                libc::EBUSY
            } else {
                0
            }
        });
        let err = Queue::open(config()).expect_err("busy");
        match err {
            NfqError::Config {
                queue: 5,
                request: "bind",
                source,
            } => assert_eq!(source.raw_os_error(), Some(libc::EBUSY)),
            other => panic!("unexpected {other:?}"),
        }
        assert!(fake.state().open.is_empty(), "nothing leaked");
    }

    #[test]
    fn unsupported_conntrack_is_dropped_unless_required() {
        let fake = FakeKernel::install();
        fake.state().config_errno = Box::new(|seen: ConfigSeen| {
            if seen.flags.is_some_and(|f| f & QueueFlags::CONNTRACK != 0) {
                libc::EOPNOTSUPP
            } else {
                0
            }
        });
        let mut cfg = config();
        cfg.flags.conntrack = true;
        cfg.flags.uid_gid = true;
        let queue = Queue::open(cfg.clone()).expect("degraded open");
        assert!(!queue.flags().conntrack);
        assert!(queue.flags().uid_gid);
        drop(queue);

        cfg.require_flags = true;
        let err = Queue::open(cfg).expect_err("required");
        assert!(matches!(err, NfqError::Config { .. }));
    }

    #[test]
    fn packets_arriving_before_the_ack_are_kept() {
        let fake = FakeKernel::install();
        fake.push(PacketMsg::new(5, 1).bytes());
        let mut queue = Queue::open(config()).expect("open");
        let mut out = Vec::new();
        assert_eq!(
            queue.recv_batch(&mut out).expect("recv"),
            RecvStatus::Packets(1)
        );
        assert_eq!(out[0].id, PacketId(1));
    }

    #[test]
    fn recv_batch_reads_many_per_call_and_verdicts_go_out_in_one_send() {
        let fake = FakeKernel::install();
        let mut queue = Queue::open(config()).expect("open");
        for id in 1..=6 {
            fake.push(
                PacketMsg::new(5, id)
                    .attr(NFQA_PAYLOAD, &[0x45, id as u8])
                    .bytes(),
            );
        }
        let sends_before = fake.state().sent.len();
        let mut out = Vec::new();
        assert_eq!(
            queue.recv_batch(&mut out).expect("recv"),
            RecvStatus::Packets(4),
            "batch_slots = 4"
        );
        assert_eq!(out[3].payload, vec![0x45, 4]);
        assert_eq!(out[0].hook, Hook::LocalOut);
        for p in &out {
            let verdict = if p.id.0 % 2 == 0 {
                Verdict::Accept
            } else {
                Verdict::Drop
            };
            queue
                .verdict(p.id, verdict, Some(p.id.0 * 10))
                .expect("verdict");
        }
        assert_eq!(fake.state().sent.len(), sends_before, "buffered");
        assert_eq!(
            queue.recv_batch(&mut out).expect("recv"),
            RecvStatus::Packets(2)
        );
        assert_eq!(fake.state().sent.len(), sends_before + 1, "one send for 4");
        assert_eq!(out.len(), 2);
        assert_eq!(out[0].id, PacketId(5));
        for p in &out {
            queue.verdict(p.id, Verdict::Repeat, None).expect("verdict");
        }
        queue.flush().expect("flush");
        let sent = verdicts(&fake);
        assert_eq!(
            sent,
            vec![
                (NFQNL_MSG_VERDICT, 1, 0, Some(10)),
                (NFQNL_MSG_VERDICT, 2, 1, Some(20)),
                (NFQNL_MSG_VERDICT, 3, 0, Some(30)),
                (NFQNL_MSG_VERDICT, 4, 1, Some(40)),
                // 5 and 6: same verdict and mark, in order → one batch verdict.
                (wire::NFQNL_MSG_VERDICT_BATCH, 6, 4, None),
            ]
        );
        assert_eq!(queue.stats().packets, 6);
        assert_eq!(queue.stats().verdicts, 6);
        assert_eq!(queue.stats().coalesced, 1);
        assert_eq!(queue.stats().send_calls, 2);
        assert_eq!(
            queue.recv_batch(&mut out).expect("recv"),
            RecvStatus::TimedOut
        );
        assert!(out.is_empty());
    }

    /// Receives packets `ids` (one batch) from the fake kernel.
    fn receive(fake: &FakeKernel, queue: &mut Queue, ids: &[u32]) -> Vec<QueuedPacket> {
        for &id in ids {
            fake.push(PacketMsg::new(5, id).bytes());
        }
        let mut out = Vec::new();
        assert_eq!(
            queue.recv_batch(&mut out).expect("recv"),
            RecvStatus::Packets(ids.len())
        );
        out
    }

    const BATCH: u16 = wire::NFQNL_MSG_VERDICT_BATCH;

    #[test]
    fn in_order_verdicts_alike_become_one_batch_verdict() {
        let fake = FakeKernel::install();
        let mut cfg = config();
        cfg.batch_slots = 8;
        let mut queue = Queue::open(cfg).expect("open");
        receive(&fake, &mut queue, &[1, 2, 3, 4, 5, 6, 7]);
        let (a, d) = (Verdict::Accept, Verdict::Drop);
        for (id, v, mark) in [
            (1, a, Some(7)),
            (2, a, Some(7)),
            (3, a, Some(7)),
            (4, d, None),
            (5, a, Some(7)),
            (6, a, Some(8)),
            (7, a, Some(8)),
        ] {
            queue.verdict(PacketId(id), v, mark).expect("verdict");
        }
        queue.flush().expect("flush");
        assert_eq!(
            verdicts(&fake),
            vec![
                (BATCH, 3, 1, Some(7)),
                (NFQNL_MSG_VERDICT, 4, 0, None),
                (NFQNL_MSG_VERDICT, 5, 1, Some(7)),
                (BATCH, 7, 1, Some(8)),
            ]
        );
        assert_eq!(queue.stats().verdicts, 7);
        assert_eq!(queue.stats().coalesced, 3);
        assert_eq!(queue.stats().send_calls, 1);
    }

    #[test]
    fn a_batch_never_covers_an_undecided_packet() {
        let fake = FakeKernel::install();
        let mut cfg = config();
        cfg.batch_slots = 8;
        let mut queue = Queue::open(cfg).expect("open");
        receive(&fake, &mut queue, &[1, 2, 3, 4]);
        let a = Verdict::Accept;
        // 1 is held back: 2 and 3 must go out one by one.
        queue.verdict(PacketId(2), a, None).expect("verdict");
        queue.verdict(PacketId(3), a, None).expect("verdict");
        // 1 is now the oldest undecided; after it, 4 is: 1..=4 may be one batch (2 and 3 were
        // decided by earlier messages).
        queue.verdict(PacketId(1), a, None).expect("verdict");
        queue.verdict(PacketId(4), a, None).expect("verdict");
        queue.flush().expect("flush");
        assert_eq!(
            verdicts(&fake),
            vec![
                (NFQNL_MSG_VERDICT, 2, 1, None),
                (NFQNL_MSG_VERDICT, 3, 1, None),
                (BATCH, 4, 1, None),
            ]
        );
        // A flushed message is never widened.
        receive(&fake, &mut queue, &[5, 6]);
        queue.verdict(PacketId(5), a, None).expect("verdict");
        queue.flush().expect("flush");
        queue.verdict(PacketId(6), a, None).expect("verdict");
        queue.flush().expect("flush");
        let sent = verdicts(&fake);
        assert_eq!(
            sent[3..],
            [
                (NFQNL_MSG_VERDICT, 5, 1, None),
                (NFQNL_MSG_VERDICT, 6, 1, None)
            ]
        );
    }

    #[test]
    fn id_gaps_keep_coalescing_but_an_unnamed_packet_stops_it() {
        let fake = FakeKernel::install();
        let mut cfg = config();
        cfg.batch_slots = 8;
        let mut queue = Queue::open(cfg).expect("open");
        // 11..=13 never arrived (socket overflow): the kernel does not hold them.
        receive(&fake, &mut queue, &[10, 14]);
        for id in [10, 14] {
            queue
                .verdict(PacketId(id), Verdict::Accept, None)
                .expect("verdict");
        }
        // A packet message without a readable id: the kernel may hold a packet we cannot name.
        let mut headless = PacketMsg::new(5, 0);
        headless.attrs.clear();
        fake.push(headless.bytes());
        receive(&fake, &mut queue, &[16, 17]);
        for id in [16, 17] {
            queue
                .verdict(PacketId(id), Verdict::Accept, None)
                .expect("verdict");
        }
        queue.flush().expect("flush");
        assert_eq!(
            verdicts(&fake),
            vec![
                (BATCH, 14, 1, None),
                (NFQNL_MSG_VERDICT, 16, 1, None),
                (NFQNL_MSG_VERDICT, 17, 1, None),
            ]
        );
    }

    #[test]
    fn coalescing_can_be_turned_off() {
        let fake = FakeKernel::install();
        let mut cfg = config();
        cfg.coalesce_verdicts = false;
        let mut queue = Queue::open(cfg).expect("open");
        receive(&fake, &mut queue, &[1, 2]);
        for id in [1, 2] {
            queue
                .verdict(PacketId(id), Verdict::Accept, None)
                .expect("verdict");
        }
        queue.flush().expect("flush");
        assert_eq!(
            verdicts(&fake),
            vec![
                (NFQNL_MSG_VERDICT, 1, 1, None),
                (NFQNL_MSG_VERDICT, 2, 1, None)
            ]
        );
        assert_eq!(queue.stats().coalesced, 0);
    }

    #[test]
    fn batch_verdict_follows_single_verdicts_in_order() {
        let fake = FakeKernel::install();
        let mut queue = Queue::open(config()).expect("open");
        queue
            .verdict(PacketId(3), Verdict::Drop, None)
            .expect("verdict");
        queue
            .verdict_batch(PacketId(9), Verdict::Accept, Some(1))
            .expect("batch");
        queue.flush().expect("flush");
        assert_eq!(
            verdicts(&fake),
            vec![
                (NFQNL_MSG_VERDICT, 3, 0, None),
                (wire::NFQNL_MSG_VERDICT_BATCH, 9, 1, Some(1)),
            ]
        );
        assert_eq!(queue.stats().batch_verdicts, 1);
    }

    #[test]
    fn enobufs_is_counted_and_reading_continues() {
        let fake = FakeKernel::install();
        let mut queue = Queue::open(config()).expect("open");
        fake.state().inbox.push_back(Inbound::Error(libc::ENOBUFS));
        fake.push(PacketMsg::new(5, 10).bytes());
        fake.push(PacketMsg::new(5, 14).bytes());
        let mut out = Vec::new();
        assert_eq!(
            queue.recv_batch(&mut out).expect("recv"),
            RecvStatus::Packets(2)
        );
        let stats = queue.stats();
        assert_eq!(stats.enobufs, 1);
        assert_eq!(stats.id_gaps, 3, "ids 11..=13 never arrived");
    }

    #[test]
    fn malformed_packets_get_the_malformed_verdict_and_are_counted() {
        let fake = FakeKernel::install();
        let mut queue = Queue::open(config()).expect("open");
        // Bad mark length, id readable → auto verdict (drop).
        fake.push(PacketMsg::new(5, 7).attr(NFQA_MARK, &[1]).bytes());
        // No packet header → counted only.
        let mut headless = PacketMsg::new(5, 0);
        headless.attrs.clear();
        fake.push(headless.bytes());
        // Garbage datagram.
        fake.push(vec![1, 2, 3]);
        // Too long for a slot (256 + 2048): truncated, id salvaged → auto verdict.
        fake.push(PacketMsg::new(5, 8).attr(NFQA_PAYLOAD, &[0; 4000]).bytes());
        // A good one.
        fake.push(PacketMsg::new(5, 9).bytes());
        let mut out = Vec::new();
        assert_eq!(
            queue.recv_batch(&mut out).expect("recv"),
            RecvStatus::Packets(1)
        );
        assert_eq!(out[0].id, PacketId(9));
        queue.flush().expect("flush");
        assert_eq!(
            verdicts(&fake),
            vec![
                (NFQNL_MSG_VERDICT, 7, 0, None),
                (NFQNL_MSG_VERDICT, 8, 0, None)
            ]
        );
        let stats = queue.stats();
        assert_eq!(stats.malformed, 4);
        assert_eq!(stats.auto_verdicts, 2);
        assert_eq!(stats.truncated, 1);
        assert_eq!(stats.packets, 1);
    }

    #[test]
    fn kernel_errors_outside_requests_are_counted() {
        let fake = FakeKernel::install();
        let mut queue = Queue::open(config()).expect("open");
        fake.push(wire::tests::error_msg(999, libc::ENOENT));
        fake.push(PacketMsg::new(6, 1).bytes());
        let mut out = Vec::new();
        assert_eq!(
            queue.recv_batch(&mut out).expect("recv"),
            RecvStatus::TimedOut
        );
        assert_eq!(queue.stats().kernel_errors, 1);
        assert_eq!(queue.stats().foreign_queue, 1);
        assert_eq!(queue.last_kernel_error(), Some(libc::ENOENT));
    }

    #[test]
    fn stop_ends_recv_batch_from_a_clone_of_the_handle() {
        let _fake = FakeKernel::install();
        let mut cfg = config();
        cfg.recv_timeout = None;
        let mut queue = Queue::open(cfg).expect("open");
        let stop = queue.stop_handle();
        assert!(!stop.is_stopped());
        stop.clone().stop();
        let mut out = vec![QueuedPacket::default()];
        assert_eq!(
            queue.recv_batch(&mut out).expect("recv"),
            RecvStatus::Stopped
        );
        assert!(out.is_empty());
    }

    #[test]
    fn failed_flush_keeps_verdicts_for_the_retry() {
        let fake = FakeKernel::install();
        let mut queue = Queue::open(config()).expect("open");
        queue
            .verdict(PacketId(1), Verdict::Accept, None)
            .expect("buffered");
        fake.state().send_errors.push_back(libc::EPERM);
        assert!(queue.flush().is_err());
        // Transient ENOBUFS is retried inside one flush.
        fake.state().send_errors.push_back(libc::ENOBUFS);
        queue.flush().expect("retried");
        assert_eq!(verdicts(&fake), vec![(NFQNL_MSG_VERDICT, 1, 1, None)]);
    }

    #[test]
    fn invalid_config_is_rejected_before_any_syscall() {
        let fake = FakeKernel::install();
        let mut cfg = config();
        cfg.batch_slots = 0;
        assert!(matches!(
            Queue::open(cfg.clone()),
            Err(NfqError::InvalidConfig { .. })
        ));
        cfg.batch_slots = 1;
        cfg.verdict_flush_bytes = MAX_FLUSH_BYTES + 1;
        assert!(matches!(
            Queue::open(cfg),
            Err(NfqError::InvalidConfig { .. })
        ));
        assert!(fake.state().open.is_empty(), "the eventfd was closed again");
    }
}
