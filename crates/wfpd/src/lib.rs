//! # wfpd — the wfp-engine daemon: WFP's filter engine inline on Linux traffic
//!
//! wfpd binds NFQUEUE queues, runs every queued packet through the WFP layer sequence
//! (`wfp-shim`) and filter engine (`wfp-core`) with the policy files it was given
//! (`wfp-policy`), and returns the verdict to the kernel. It installs the iptables rules that send
//! traffic to its queues, reloads the policy atomically on SIGHUP, and declares what happens to
//! traffic whenever it cannot inspect it (the *postures*), fail-closed by default, counting every
//! fail-open event.
//!
//! **What it never does**: decide anything itself (the engine does), change traffic outside the
//! configured hooks and matches, or keep running with a half-applied policy.
//!
//! ```text
//!  kernel: INPUT/OUTPUT/FORWARD ─► WFP_IN/OUT/FWD ─► NFQUEUE (--queue-balance A:B [--queue-bypass])
//!     │ one queue per worker                                   ▲ verdict (+ accounting mark)
//!     ▼                                                        │
//!  worker thread (one per queue): Queue::recv_batch ─► ShimHandler ─► verdicts
//!     │    hook → direction (INPUT inbound, OUTPUT outbound, FORWARD → IPFORWARD)
//!     │    Identity: new flow → sock_diag + /proc → ALE_APP_ID / ALE_USER_ID / processId
//!     │    Shim::handle_packet (own shim per queue) ─► Engine::classify (shared Arc<Engine>)
//!     │    catch_unwind per packet → internal_error posture
//!  watchdog thread: a worker stuck past the deadline → hung posture (batch verdict or exit)
//!  main thread: signals (HUP reload, USR1 stats, TERM/INT stop), callout reports → log, stats
//! ```
//!
//! ## Postures (see [`config::PostureConfig`])
//!
//! | failure | fail-closed (default) | fail-open | mechanism |
//! |---|---|---|---|
//! | absent (not running, crashed, killed) | packets dropped | packets pass | iptables `--queue-bypass` |
//! | overloaded (queue full) | new packets dropped | new packets accepted | `NFQA_CFG_F_FAIL_OPEN` + `queues.max_len` |
//! | hung (a worker stuck on a packet past `verdict_deadline_ms`) | watchdog drops the queue's waiting packets | watchdog accepts them | batch verdict from the watchdog thread; or `exit` → absent |
//! | internal error (a panic deciding a packet) | packet dropped | packet accepted | `catch_unwind` per packet, shim replaced |
//!
//! A failure of a queue itself (a netlink error that ends a worker) stops the daemon with exit
//! status 1, so the `absent` posture applies (and systemd restarts it). Packets longer than
//! NFQUEUE copies (65531 bytes; only loopback's MTU allows them) get `verdicts.truncated` (block)
//! and are counted; the managed rules clamp the TCP MSS so that TCP never produces them.
//!
//! Every fail-open event is counted ([`stats`]): by wfpd for internal errors and the watchdog, by
//! the kernel (accounting rules in the `security` table counting packets accepted without wfpd's
//! mark bit) for bypass and overflow, including while wfpd is down.
//!
//! ## Modules
//!
//! * [`config`] — the TOML configuration (unknown keys rejected) and its mapping to queue flags,
//!   rules and shim defaults.
//! * [`daemon`] — start/reload/stats/stop ([`daemon::Daemon`]) and the signal loop
//!   ([`daemon::run`]).
//! * [`worker`] — the engine as the per-queue loop's handler ([`worker::ShimHandler`], run by
//!   [`wfp_nfqueue::run_worker`]) and the counters a worker shares ([`worker::WorkerShared`]).
//! * [`asyncs`] — pended classifies (held NFQUEUE verdicts), edited packets, injected packets
//!   (raw sockets with the self mark).
//! * [`connections`] — `GET /v1/connections`: the connection monitor's live flows.
//! * [`identity`] — socket owner → ALE process identity.
//! * [`offload`] — flow offload: marks for decided flows, revocation on commit, flow end from
//!   conntrack (`docs/offload.md`).
//! * [`watchdog`] — the hung posture.
//! * [`stats`] — the statistics snapshot.
//! * [`api`] — the local management API (HTTP/1.1 + JSON on a Unix socket, `docs/api.md`):
//!   sessions, transactions, objects, the net-event stream; persistent objects in `wfp-store`.

pub mod api;
pub mod asyncs;
pub mod boottime;
pub mod config;
pub mod connections;
pub mod daemon;
pub mod drivers;
pub mod identity;
pub mod offload;
pub mod stats;
pub mod watchdog;
pub mod worker;

pub use config::{Config, ConfigError, HungPosture, Posture};
pub use daemon::{run, Daemon};
