//! `wfp-nfqueue`: the Linux inline data path of wfp-engine — packets from the kernel's NFQUEUE
//! over netlink, verdicts back, and the iptables rules that send traffic there.
//!
//! # What it is
//!
//! A small, self-contained `nfnetlink_queue` client: its own netlink message builders and
//! parsers ([`parse_packet_message`]), a [`Queue`] per queue number with batched receive
//! (`recvmmsg(2)`) and batched verdicts (several netlink messages per `sendto(2)`, consecutive
//! identical verdicts merged into one batch verdict where that decides exactly the same packets:
//! [`QueueConfig::coalesce_verdicts`]), the queue worker loop ([`run_worker`], driving a
//! [`PacketHandler`]; [`spawn_workers`]) and rule installation in chains of its own ([`rules`]).
//!
//! # What it never does
//!
//! * It does not decide anything: the [`PacketHandler`] (in wfpd: the shim and engine) does.
//!   It depends on no other workspace crate.
//! * It never panics on what the kernel sends: every netlink length is checked, malformed
//!   messages are counted in [`QueueStats`], and a malformed packet whose id is readable gets
//!   [`QueueConfig::malformed_verdict`] (drop by default).
//! * It has no `unsafe` outside `src/sys/mod.rs`, where every syscall goes through one choke
//!   point (`sys::call(Op) -> SysResult`); unit tests swap in a fake kernel there, so queue and
//!   message logic is tested without root.
//! * It sends traffic nowhere: the integration tests and the benchmark create private network
//!   namespaces ([`TempNetns`]) and use loopback only.
//!
//! # Data flow
//!
//! ```text
//!  kernel: iptables rule in WFP_IN / WFP_OUT / WFP_FWD (rules::RuleSet) -j NFQUEUE
//!     │ NFQNL_MSG_PACKET, one netlink datagram per packet
//!     ▼
//!  netlink socket ── sys::call(Op::RecvMany) = recvmmsg ──► wire::parse ──► Vec<QueuedPacket>
//!                                                                              │
//!                    PacketHandler::answer(now, &QueuedPacket) -> Answer    │ (run_worker)
//!                      Now(verdict) | Replace{verdict, payload} | Hold         ▼
//!  kernel reinjects ◄── NFQNL_MSG_VERDICT(_BATCH) ◄── one sendto, many msgs ◄── Queue::verdict
//!                       (+ NFQA_PAYLOAD)     held ids: PacketHandler::poll_verdict after end_batch
//!  injected packets ──► RawSender (SO_MARK = the rules' self mark) ──► kernel routing
//! ```
//!
//! # Modules
//!
//! * `wire` — netlink/nfqueue layouts, builders, parsers (pure).
//! * `sys` — the syscall choke point and its test fake (the only `unsafe`).
//! * `queue` — [`Queue`], [`StopHandle`], [`QueueStats`]: open/bind, receive, verdicts, stop;
//!   [`VerdictSender`]: verdicts for a queue from another thread (a watchdog).
//! * `worker` — [`run_worker`]: the receive → decide → verdict loop around a [`PacketHandler`]
//!   (timers, panic containment, [`WorkerStatus`] counters for a watchdog);
//!   [`spawn_workers`], [`Workers`]: one thread per queue.
//! * [`rules`] — iptables/ip6tables chains and NFQUEUE rules, optionally inside a netns.
//! * `netns` — [`enter_netns`], [`TempNetns`].
//! * `raw` — [`RawSender`]: whole IP packets out through raw sockets with a mark (injected
//!   packets; the rules skip the mark, [`rules::RuleSet::self_mark`]).
//! * `kstats` — the kernel's own per-queue counters ([`kernel_queue_stats`]).
//! * [`sockdiag`] — socket diagnostics (`NETLINK_SOCK_DIAG`): the local socket of a 5-tuple.
//! * [`offload`] — flow offload rules: marks, the epoch rule, revocation (`docs/offload.md`).
//! * [`conntrack`] — conntrack netlink: destroy events with counters, clearing offload marks.
//! * [`owner`] — [`owner::OwnerResolver`]: socket → process (`/proc`), cached, for the ALE
//!   layers' process identity.
//!
//! # Posture
//!
//! Fail-closed unless configured otherwise: no `FAIL_OPEN` flag, no `--queue-bypass`, malformed
//! packets and handler panics dropped. Each exception is explicit in [`QueueConfig`] /
//! [`rules::RuleSet`], and what the kernel lets us observe of fail-open events is counted
//! ([`QueueStats::id_gaps`], [`QueueStats::enobufs`], [`KernelQueueStats`]).
#![deny(unsafe_code)]

mod config;
pub mod conntrack;
mod error;
mod kstats;
mod netns;
mod nft;
pub mod offload;
pub mod owner;
mod packet;
mod queue;
mod raw;
pub mod rules;
pub mod sockdiag;
mod sys;
mod wire;
mod worker;

pub use config::{CopyMode, QueueConfig, QueueFlags, MAX_COPY_RANGE};
pub use error::{NfqError, ParseError};
pub use kstats::{kernel_queue_stats, parse_kernel_queue_stats, KernelQueueStats};
pub use netns::{enter_netns, TempNetns};
pub use packet::{
    Answer, Conntrack, CtInfo, Decision, Deferred, Hook, HwAddr, PacketId, QueuedPacket, SkbInfo,
    Verdict,
};
pub use queue::{Queue, QueueStats, RecvStatus, StopHandle, VerdictSender};
pub use raw::RawSender;
pub use wire::parse_packet_message;
pub use worker::{
    run_worker, spawn_workers, PacketHandler, WorkerClock, WorkerOptions, WorkerStatus, Workers,
};
