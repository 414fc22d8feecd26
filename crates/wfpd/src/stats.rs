//! The statistics snapshot: what SIGUSR1 logs and the stats file holds (JSON).
//!
//! Failure postures (the brief's reliability promises; POSTURE net events, `api/posture.rs`):
//! every packet a posture decides without inspection is counted, accepted or dropped.
//!
//! | posture, verdict | counted by | field |
//! |---|---|---|
//! | internal error, `internal_error = "fail-open"` | the worker (its verdict carries wfpd's accounting bit) | `fail_open.internal_error` |
//! | internal error, `"fail-closed"` | the worker | `queues[].internal_errors` (all contained panics) minus the above |
//! | worker stuck, `hung = "fail-open"` | the watchdog (one batch verdict for the waiting packets, without a mark: the kernel also counts them in `uninspected_accepted` when its accounting chains are installed; the POSTURE events count them as `hang` only) | `fail_open.hung`, `queues[].hung_accepted` |
//! | worker stuck, `"fail-closed"` | the watchdog | `queues[].hung_dropped` |
//! | a pended packet past the verdict deadline, `pended = "fail-open"` | the worker (verdict with the accounting bit) | `fail_open.pended`, `queues[].held_expired_accepted` |
//! | the same, `"fail-closed"` | the worker | `queues[].held_expired` minus the above |
//! | queue full, `overloaded = "fail-open"`; queue bypassed while wfpd is absent, `absent = "fail-open"` | the kernel, in the `security`-table accounting chains (packets that passed a hook's NFQUEUE rule without wfpd's accounting bit) | `fail_open.uninspected_accepted` |
//! | queue full, `overloaded = "fail-closed"` | the kernel queue | `queues[].kernel_queue_dropped` |
//! | wfpd absent, `absent = "fail-closed"` | nobody: the kernel drops what it cannot queue, uncounted | — |
//!
//! `uninspected_accepted` is the total of packets that passed a hook's NFQUEUE rule without a
//! verdict carrying wfpd's accounting bit, since the rules were installed (it keeps counting while
//! wfpd is down, as long as the rules stay). It is `null` when wfpd does not manage the rules or
//! the accounting mark is 0. The accounting chains are installed only when `absent` or
//! `overloaded` is `"fail-open"` (`Config::kernel_may_accept_unseen`); with both fail-closed the
//! value is 0 (no packet passes the NFQUEUE rule unseen; a hung fail-open episode is then counted
//! by the watchdog only), and no chain is there that every packet — an offloaded one too — would
//! cross.

use serde::Serialize;

/// One queue's numbers.
#[derive(Clone, Debug, Default, Serialize)]
pub struct QueueSnapshot {
    /// Queue number.
    pub queue: u16,
    /// Packets read from the queue.
    pub packets: u64,
    /// Accepted.
    pub permitted: u64,
    /// Dropped.
    pub blocked: u64,
    /// Packets from a hook other than INPUT/OUTPUT/FORWARD.
    pub other_hook: u64,
    /// Packets longer than NFQUEUE copies (given `verdicts.truncated`).
    pub truncated: u64,
    /// Panics contained while deciding a packet.
    pub internal_errors: u64,
    /// Flows ended (flowDeleteFn ran for their contexts).
    pub flows_ended: u64,
    /// Times the worker was found stuck.
    pub hung_episodes: u64,
    /// Packets the watchdog dropped.
    pub hung_dropped: u64,
    /// Packets the watchdog accepted.
    pub hung_accepted: u64,
    /// Malformed netlink messages.
    pub malformed_messages: u64,
    /// Receive-buffer overflows (`ENOBUFS`).
    pub enobufs: u64,
    /// Packet ids assigned but never delivered (socket overflow).
    pub id_gaps: u64,
    /// Kernel error answers (e.g. verdicts for packets the watchdog already decided).
    pub kernel_errors: u64,
    /// `recvmmsg(2)` calls that returned packets (packets / this = the mean receive batch).
    pub recv_calls: u64,
    /// `sendto(2)` calls that carried verdicts.
    pub verdict_sends: u64,
    /// Verdicts merged into a batch verdict message instead of a message of their own.
    pub coalesced_verdicts: u64,
    /// Packets held while a callout pended their classify (NFQUEUE verdict held).
    pub held: u64,
    /// Held packets released by a completion.
    pub released: u64,
    /// Held packets dropped: refused or flushed at completion, or their flow ended.
    pub held_dropped: u64,
    /// Held packets still pended at the verdict deadline (or at stop): `posture.pended`.
    pub held_expired: u64,
    /// Of those, accepted (`pended = "fail-open"`).
    pub held_expired_accepted: u64,
    /// Packets accepted with new bytes (stream edits, renumbered segments).
    pub edited: u64,
    /// Injected packets sent through the raw socket (with the self mark).
    pub injected_sent: u64,
    /// Injected packets a layer blocked.
    pub injected_blocked: u64,
    /// Injected packets that could not be sent.
    pub injected_failed: u64,
    /// Identity lookups.
    pub owner_lookups: u64,
    /// Lookups that found the process.
    pub owner_resolved: u64,
    /// Lookups that fell back (no process found).
    pub owner_fallback: u64,
    /// The kernel's view: packets waiting now.
    pub kernel_waiting: Option<u32>,
    /// The kernel's view: packets dropped because the queue was full (fail-closed overflow).
    pub kernel_queue_dropped: Option<u32>,
    /// The kernel's view: packets dropped because the socket was full.
    pub kernel_user_dropped: Option<u32>,
}

/// Fail-open events.
#[derive(Clone, Debug, Default, Serialize)]
pub struct FailOpen {
    /// Packets accepted after an internal error.
    pub internal_error: u64,
    /// Packets accepted by the watchdog.
    pub hung: u64,
    /// Held (pended) packets accepted at the verdict deadline.
    pub pended: u64,
    /// Packets accepted without wfpd's verdict, counted by the kernel (see the module doc).
    pub uninspected_accepted: Option<u64>,
}

/// Policy state.
#[derive(Clone, Debug, Default, Serialize)]
pub struct PolicySnapshot {
    /// Policy files.
    pub files: Vec<String>,
    /// Filters of the running policy.
    pub filters: usize,
    /// Successful reloads.
    pub reloads: u64,
    /// Failed reloads (the running policy stayed).
    pub reload_failures: u64,
    /// Why the last reload failed.
    pub last_reload_error: Option<String>,
}

/// Everything.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Snapshot {
    /// Increases with every snapshot taken.
    pub generation: u64,
    /// Seconds since start.
    pub uptime_secs: f64,
    /// Policy.
    pub policy: PolicySnapshot,
    /// Fail-open events.
    pub fail_open: FailOpen,
    /// Flow records drained from the flow logger (`wfp.flow-logger`).
    pub flow_records: u64,
    /// Stream reports drained from the stream monitor (`wfp.stream-monitor`).
    pub stream_reports: u64,
    /// Connections the connection monitor (`wfp.connection-monitor`) saw end.
    pub connections_closed: u64,
    /// Connections the connection monitor lists now (`GET /v1/connections`).
    pub connections_open: usize,
    /// Callout classifyFn panics contained by the engine.
    pub callout_panics: u64,
    /// Per queue.
    pub queues: Vec<QueueSnapshot>,
}

impl Snapshot {
    /// Packets over all queues.
    pub fn packets(&self) -> u64 {
        self.queues.iter().map(|q| q.packets).sum()
    }

    /// A one-line summary for the log.
    pub fn summary(&self) -> String {
        let sum = |f: fn(&QueueSnapshot) -> u64| self.queues.iter().map(f).sum::<u64>();
        format!(
            "packets={} permitted={} blocked={} internal_errors={} flows_ended={} hung_episodes={} \
             held={} released={} held_expired={} edited={} injected_sent={} \
             fail_open.internal_error={} fail_open.hung={} fail_open.pended={} \
             fail_open.uninspected_accepted={} filters={} reloads={} reload_failures={}",
            self.packets(),
            sum(|q| q.permitted),
            sum(|q| q.blocked),
            sum(|q| q.internal_errors),
            sum(|q| q.flows_ended),
            sum(|q| q.hung_episodes),
            sum(|q| q.held),
            sum(|q| q.released),
            sum(|q| q.held_expired),
            sum(|q| q.edited),
            sum(|q| q.injected_sent),
            self.fail_open.internal_error,
            self.fail_open.hung,
            self.fail_open.pended,
            self.fail_open
                .uninspected_accepted
                .map_or_else(|| "n/a".to_owned(), |n| n.to_string()),
            self.policy.filters,
            self.policy.reloads,
            self.policy.reload_failures,
        )
    }
}
