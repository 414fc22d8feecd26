//! The daemon's life cycle: start (policy, queues, workers, rules, watchdog), reload, statistics,
//! stop; and [`run`], the signal loop around it.
//!
//! Start order matters for the postures: the policy is loaded and checked **before** any queue is
//! opened (a bad policy never touches traffic); the queues are bound and their workers running
//! **before** the rules send traffic to them; at stop the rules go **first**, then the workers
//! decide what they still hold and exit.

use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::sync::mpsc::{self, RecvTimeoutError};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use wfp_callouts::Host;
use wfp_core::{Engine, NetEventKind};
use wfp_nfqueue::owner::OwnerResolver;
use wfp_nfqueue::rules::RuleSet;
use wfp_nfqueue::{
    kernel_queue_stats, run_worker, NfqError, Queue, QueueStats, RawSender, StopHandle,
    WorkerClock, WorkerOptions,
};
use wfp_policy::{replace_all, Applied, Policy};
use wfp_shim::IdShare;

use crate::asyncs::AsyncPath;
use crate::config::Config;
use crate::identity::Identity;
use crate::stats::{FailOpen, PolicySnapshot, QueueSnapshot, Snapshot};
use crate::watchdog::{Watchdog, Watched};
use crate::worker::{ShimHandler, WorkerShared};

struct WorkerHandle {
    shared: Arc<WorkerShared>,
    thread: Option<JoinHandle<Result<QueueStats, NfqError>>>,
}

/// A running daemon: engine, policy, one worker per queue, rules, watchdog.
pub struct Daemon {
    config: Config,
    clock: WorkerClock,
    started: Instant,
    engine: Arc<Engine>,
    /// What the engine's built-in callouts read time from and report to.
    host: Host,
    applied: Vec<Applied>,
    filters: usize,
    reloads: u64,
    reload_failures: u64,
    last_reload_error: Option<String>,
    stop: StopHandle,
    workers: Vec<WorkerHandle>,
    watchdog: Option<Watchdog>,
    rules: Option<RuleSet>,
    /// The management API (`[api] socket`), started last, stopped with the daemon.
    api: Option<crate::api::Server>,
    /// `[[driver]]`: loaded before the queues, unloaded after the workers.
    drivers: Option<crate::drivers::Drivers>,
    generation: u64,
    flow_records: u64,
    stream_reports: u64,
    /// Connections the connection monitor finished (drained from its log).
    connections_closed: u64,
    last_stats_write: Instant,
    /// Flow offload (`[offload]`), when on.
    offload: Option<crate::offload::OffloadControl>,
}

/// Parses every policy file.
fn load_policies(files: &[PathBuf]) -> anyhow::Result<Vec<Policy>> {
    files
        .iter()
        .map(|f| Policy::load(f).map_err(anyhow::Error::from))
        .collect()
}

impl Daemon {
    /// Starts everything in the calling thread's network namespace. On error, whatever was
    /// started is stopped again and the rules are left as they were.
    pub fn start(config: Config) -> anyhow::Result<Self> {
        let clock = WorkerClock::new();
        let policies = load_policies(&config.policy.files).context("loading the policy")?;
        let mut options = policies
            .first()
            .map(|p| p.options.clone())
            .unwrap_or_default();
        // The shims announce every flow, so a callout's FwpsFlowAbort0 ends the flow for real
        // (§6) and pended operations are tied to live flows (§10.1).
        options.flow_tracking = wfp_core::engine::FlowTracking::Announced;
        let engine = Arc::new(Engine::new(options));
        // Persistent objects first (§11.3), before any queue admits traffic; a store that
        // cannot be read fails the start (the absent posture applies).
        // §11.3: the boot-time filters hold from here until wfpd's own rules are in place.
        let boot = crate::boottime::at_start(&config.store);
        let store = crate::api::open_store(&config.store, &engine)
            .with_context(|| crate::boottime::held_note(boot.as_deref()))?;
        if let Some(b) = &boot {
            b.after_store(&engine);
        }
        let refs: Vec<&Policy> = policies.iter().collect();
        let host = Host::new();
        let applied = replace_all(&engine, &[], &refs, &host).context("applying the policy")?;
        let filters = policies.iter().map(Policy::filter_count).sum();
        let drivers = Some(crate::drivers::Drivers::start(
            &config.drivers,
            config.dir.as_deref(),
            &engine,
        )?);

        let stop = StopHandle::new().context("creating the stop handle")?;
        if config.queues.gso {
            // NFQUEUE copies at most 65531 bytes; a super-segment of a TSO device (loopback:
            // up to its tso_max_size, 512 KiB) is longer and gets the truncated verdict.
            tracing::warn!(
                truncated = ?config.verdicts.truncated,
                "[queues] gso: super-segments longer than NFQUEUE's copy range are not inspected \
                 and get the [verdicts] truncated action (measured on loopback: bulk TCP is blocked)"
            );
        }
        let mut queues = Vec::new();
        for num in config.queue_numbers() {
            let queue = Queue::open_with_stop(config.queue_config(num), stop.clone())
                .with_context(|| format!("binding queue {num}"))?;
            if config.queues.conntrack && !queue.flags().conntrack {
                tracing::info!(queue = num, "this kernel gives no conntrack attributes");
            }
            queues.push(queue);
        }
        let mut daemon = Self {
            rules: config.rules.manage.then(|| config.rule_set()),
            api: None,
            drivers,
            config,
            clock,
            started: Instant::now(),
            engine,
            host,
            applied,
            filters,
            reloads: 0,
            reload_failures: 0,
            last_reload_error: None,
            stop,
            workers: Vec::new(),
            watchdog: None,
            generation: 0,
            flow_records: 0,
            stream_reports: 0,
            connections_closed: 0,
            last_stats_write: Instant::now(),
            offload: None,
        };
        if daemon.config.offload.enabled {
            let queue = daemon.config.rule_set();
            let control =
                crate::offload::OffloadControl::new(&daemon.config.offload, queue, &daemon.engine)?;
            daemon.offload = Some(control);
        }
        let mut watched = Vec::new();
        let count = queues.len() as u64;
        for (index, queue) in (0u64..).zip(queues) {
            let sender = queue
                .verdict_sender()
                .context("duplicating the queue socket")?;
            // Each queue's shim takes its own share of flow ids and completion handles, and
            // with it the engine's events for its flows (§6 flow contexts, §10 async).
            let ids = IdShare::of(index, count).unwrap_or(IdShare::ALL);
            let shared = daemon.spawn_worker(queue, ids)?;
            watched.push(Watched { shared, sender });
        }
        daemon.watchdog = Some(
            Watchdog::spawn(
                watched,
                daemon.config.posture.hung,
                Duration::from_millis(daemon.config.posture.verdict_deadline_ms),
            )
            .context("starting the watchdog")?,
        );
        if let Some(rules) = &daemon.rules {
            if let Err(e) = rules.install() {
                // Leave nothing half-installed; the workers stop when `daemon` drops.
                let _ = rules.remove();
                daemon.rules = None;
                return Err(anyhow::Error::from(e).context("installing the iptables rules"));
            }
        }
        if let Some(Err(e)) = daemon.offload.as_mut().map(|o| o.install(&daemon.engine)) {
            if let Some(rules) = daemon.rules.take() {
                let _ = rules.remove();
            }
            return Err(e);
        }
        if let Some(b) = &boot {
            b.lift_logged();
        }
        if daemon.config.api.socket.is_some() {
            let api = crate::api::Server::start(
                Arc::clone(&daemon.engine),
                store,
                daemon.config.api.clone(),
            )
            .context("starting the management API")?;
            api.set_connection_log(Arc::clone(&daemon.host.connections));
            let board = Arc::new(crate::api::FlowBoard::default());
            for w in &daemon.workers {
                let _ = w.shared.feeds.set(crate::api::Feeds {
                    classify: api.classify_metrics(),
                    flows: Arc::clone(&board),
                });
            }
            api.attach(crate::api::DataPath {
                workers: daemon
                    .workers
                    .iter()
                    .map(|w| Arc::clone(&w.shared))
                    .collect(),
                prompts: Some(Arc::clone(&daemon.host.prompts)),
                now: Arc::new(move || clock.now()),
                flows: Some(board),
                absent_accepted: daemon
                    .rules
                    .as_ref()
                    .and_then(|r| r.uninspected_packets().ok().flatten())
                    .unwrap_or(0),
                uninspected: fail_open_counter(&daemon),
            });
            if let Some(d) = &daemon.drivers {
                api.set_drivers(d.clone());
            }
            if let Some(b) = boot {
                api.set_boottime(b);
            }
            daemon.api = Some(api);
        }
        tracing::info!(
            queues = ?daemon.config.queue_numbers(),
            filters = daemon.filters,
            posture = ?daemon.config.posture,
            rules = if daemon.rules.is_some() { "managed" } else { "left to the administrator" },
            "wfpd started"
        );
        Ok(daemon)
    }

    fn spawn_worker(
        &mut self,
        mut queue: Queue,
        ids: IdShare,
    ) -> anyhow::Result<Arc<WorkerShared>> {
        let num = queue.queue_num();
        let shared = Arc::new(WorkerShared::new(num));
        let engine = Arc::clone(&self.engine);
        let host = self.host.clone();
        let deadline = Duration::from_millis(self.config.posture.verdict_deadline_ms);
        let mut shim_config = self.config.shim_config();
        // Live peers acknowledge edited bytes; a pended operation lasts at most the verdict
        // deadline, like the packets it holds.
        shim_config.seq_translation = wfp_shim::pipeline::SeqTranslation::Inline;
        shim_config.pend_deadline = Some(deadline);
        shim_config.flow.ids = ids;
        let pended = (deadline, self.config.posture.pended);
        let raw_mark = self.raw_mark();
        let identity_config = self.config.identity;
        let special = (
            self.config.verdicts.other_hook.shim(),
            self.config.verdicts.truncated.shim(),
        );
        // The internal_error posture is the queue's panic_verdict (Config::queue_config).
        let options = WorkerOptions {
            accept_mark: self
                .config
                .rule_set()
                .accounting_mark
                .filter(|_| self.config.rules.manage),
            ..WorkerOptions::default()
        };
        let clock = self.clock;
        let offload =
            (self.offload.as_ref()).map(|o| crate::offload::WorkerOffload::new(o.shared()));
        let thread_shared = Arc::clone(&shared);
        let thread = std::thread::Builder::new()
            .name(format!("wfpd-queue-{num}"))
            .spawn(move || {
                let resolver = if identity_config.resolve {
                    match OwnerResolver::open(identity_config.cache_size) {
                        Ok(r) => Some(r),
                        Err(e) => {
                            tracing::warn!(queue = num, error = %e, "no socket diagnostics: ALE_APP_ID stays empty");
                            None
                        }
                    }
                } else {
                    None
                };
                let identity = Identity::new(resolver, Arc::clone(&thread_shared.identity));
                let raw = raw_mark.and_then(|mark| match RawSender::open(mark) {
                    Ok(r) => Some(r),
                    Err(e) => {
                        tracing::warn!(queue = num, error = %e, "no raw socket: injected packets are dropped and counted");
                        None
                    }
                });
                let asyncs = AsyncPath::new(raw, pended, Arc::clone(&thread_shared.asyncs));
                let mut handler = ShimHandler::new(
                    (engine, &host),
                    shim_config,
                    (identity, asyncs),
                    special,
                    Arc::clone(&thread_shared),
                );
                if let Some(o) = offload {
                    handler.set_offload(o);
                }
                let result = run_worker(
                    &mut queue,
                    &mut handler,
                    &thread_shared.status,
                    &clock,
                    &options,
                );
                if let Err(e) = &result {
                    tracing::error!(queue = num, error = %e, "queue worker failed");
                }
                result
            })
            .with_context(|| format!("starting the worker of queue {num}"))?;
        self.workers.push(WorkerHandle {
            shared: Arc::clone(&shared),
            thread: Some(thread),
        });
        Ok(shared)
    }

    /// The mark of injected packets: the self mark the rules skip, plus the accounting bit (they
    /// are inspected: the shim classified them when they were injected). `None`: no injection.
    fn raw_mark(&self) -> Option<u32> {
        let own = self.config.rules.self_mark;
        if own == 0 {
            return None;
        }
        let accounting = self
            .config
            .rule_set()
            .accounting_mark
            .filter(|_| self.config.rules.manage)
            .unwrap_or(0);
        Some(own | accounting)
    }

    /// Packets decided so far over all queues. Cheap (reads the workers' counters only; unlike
    /// [`Daemon::stats`] it runs no `iptables`), e.g. to measure throughput.
    pub fn packets_decided(&self) -> u64 {
        self.workers
            .iter()
            .map(|w| w.shared.status.progress.load(Ordering::Relaxed))
            .sum()
    }

    /// Flow offload, when on.
    pub fn offload(&self) -> Option<&crate::offload::OffloadControl> {
        self.offload.as_ref()
    }

    /// The engine (shared with the workers).
    pub fn engine(&self) -> &Arc<Engine> {
        &self.engine
    }

    /// The configuration.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// Reloads the policy files: parse them all, then replace the running policy in one
    /// transaction. On any error the running policy stays in force and the error is returned
    /// (and counted). Returns the new filter count.
    pub fn reload(&mut self) -> anyhow::Result<usize> {
        let result = (|| {
            let policies = load_policies(&self.config.policy.files)?;
            if policies
                .first()
                .is_some_and(|p| p.options.static_veto != self.engine.options().static_veto)
            {
                tracing::warn!("[engine] options changed: they take effect at the next start");
            }
            let refs: Vec<&Policy> = policies.iter().collect();
            // Offloaded flows are revoked before the commit (`crate::offload`).
            if let Some(o) = self.offload.as_mut() {
                o.begin_commit()?;
            }
            let applied = replace_all(&self.engine, &self.applied, &refs, &self.host)?;
            Ok::<_, anyhow::Error>((applied, policies.iter().map(Policy::filter_count).sum()))
        })();
        if let Some(o) = self.offload.as_mut() {
            o.end_commit(&self.engine);
        }
        match result {
            Ok((applied, filters)) => {
                self.applied = applied;
                self.filters = filters;
                self.reloads += 1;
                self.last_reload_error = None;
                Ok(filters)
            }
            Err(e) => {
                self.reload_failures += 1;
                self.last_reload_error = Some(format!("{e:#}"));
                Err(e)
            }
        }
    }

    /// Periodic work: logs what the flow-logger and stream-monitor callouts reported, engine net
    /// events, writes the stats file when due. Fails if a worker ended on its own.
    pub fn tick(&mut self) -> anyhow::Result<()> {
        self.drain_reports();
        if let Some(o) = self.offload.as_mut() {
            o.tick(&self.engine);
        }
        let interval = self.config.stats.interval_secs;
        if interval > 0
            && self.config.stats.file.is_some()
            && self.last_stats_write.elapsed() >= Duration::from_secs(interval)
        {
            self.write_stats();
        }
        if let Some(w) = self
            .workers
            .iter()
            .find(|w| w.shared.status.exited.load(Ordering::Acquire))
        {
            bail!("the worker of queue {} stopped", w.shared.queue);
        }
        Ok(())
    }

    fn drain_reports(&mut self) {
        let log = self.config.log.flows;
        for r in self.host.flow_log.drain() {
            self.flow_records += 1;
            if log {
                tracing::info!(
                    "flow record: flow={} protocol={} local={} remote={} app={} outbound_bytes={} inbound_bytes={} duration_ms={}",
                    r.flow_handle,
                    r.tuple.protocol,
                    endpoint(r.tuple.local_addr, r.tuple.local_port),
                    endpoint(r.tuple.remote_addr, r.tuple.remote_port),
                    r.app_id.as_deref().map(String::from_utf8_lossy).unwrap_or_default(),
                    r.outbound.bytes,
                    r.inbound.bytes,
                    r.duration().as_millis()
                );
            }
        }
        for r in self.host.stream_log.drain() {
            self.stream_reports += 1;
            if log {
                tracing::info!(
                    "stream report: flow={} local={} remote={} app={} outbound_bytes={} inbound_bytes={} outbound_head={} inbound_head={}",
                    r.flow_handle,
                    endpoint(r.tuple.local_addr, r.tuple.local_port),
                    endpoint(r.tuple.remote_addr, r.tuple.remote_port),
                    r.app_id.as_deref().map(String::from_utf8_lossy).unwrap_or_default(),
                    r.outbound.bytes,
                    r.inbound.bytes,
                    escape(&r.outbound.head),
                    escape(&r.inbound.head)
                );
            }
        }
        for c in self.host.connections.drain() {
            self.connections_closed += 1;
            if log {
                tracing::info!(
                    "connection closed: flow={} protocol={} local={} remote={} process={} user={} bytes_out={} bytes_in={} duration_ms={}",
                    c.flow_handle,
                    c.tuple.protocol,
                    endpoint(c.tuple.local_addr, c.tuple.local_port),
                    endpoint(c.tuple.remote_addr, c.tuple.remote_port),
                    c.process_path.as_deref().unwrap_or(""),
                    c.user.map_or_else(String::new, |u| u.to_string()),
                    c.outbound.bytes,
                    c.inbound.bytes,
                    c.duration().as_millis()
                );
            }
        }
        let events = self.engine.drain_net_events();
        if let Some(api) = &self.api {
            api.publish(&events);
        }
        for event in events {
            match event.kind {
                NetEventKind::CalloutPanic | NetEventKind::CallbackPanic => tracing::warn!(
                    ?event,
                    "a callout panicked (contained; treated as unregistered for that classify)"
                ),
                _ => tracing::debug!(?event, "net event"),
            }
        }
    }

    /// The statistics now (runs `iptables` once to read the accounting counters).
    pub fn stats(&mut self) -> Snapshot {
        self.generation += 1;
        let kernel = kernel_queue_stats().unwrap_or_default();
        let queues: Vec<QueueSnapshot> = self
            .workers
            .iter()
            .map(|w| {
                let s = &w.shared;
                let q = s.status.queue_stats();
                let k = kernel.iter().find(|k| k.queue_num == s.queue);
                let get = |c: &std::sync::atomic::AtomicU64| c.load(Ordering::Relaxed);
                QueueSnapshot {
                    queue: s.queue,
                    packets: q.packets,
                    permitted: get(&s.status.accepted),
                    blocked: get(&s.status.dropped),
                    other_hook: get(&s.other_hook),
                    truncated: get(&s.truncated),
                    internal_errors: get(&s.status.handler_panics),
                    flows_ended: get(&s.flows_ended),
                    hung_episodes: get(&s.hung_episodes),
                    hung_dropped: get(&s.hung_dropped),
                    hung_accepted: get(&s.hung_accepted),
                    malformed_messages: q.malformed,
                    enobufs: q.enobufs,
                    id_gaps: q.id_gaps,
                    kernel_errors: q.kernel_errors,
                    recv_calls: q.recv_calls,
                    verdict_sends: q.send_calls,
                    coalesced_verdicts: q.coalesced,
                    held: get(&s.asyncs.held),
                    released: get(&s.asyncs.released),
                    held_dropped: get(&s.asyncs.held_dropped),
                    held_expired: get(&s.asyncs.expired),
                    held_expired_accepted: get(&s.asyncs.expired_accepted),
                    edited: get(&s.asyncs.edited),
                    injected_sent: get(&s.asyncs.injected_sent),
                    injected_blocked: get(&s.asyncs.injected_blocked),
                    injected_failed: get(&s.asyncs.injected_failed),
                    owner_lookups: get(&s.identity.lookups),
                    owner_resolved: get(&s.identity.resolved),
                    owner_fallback: get(&s.identity.fallback),
                    kernel_waiting: k.map(|k| k.waiting),
                    kernel_queue_dropped: k.map(|k| k.queue_dropped),
                    kernel_user_dropped: k.map(|k| k.user_dropped),
                }
            })
            .collect();
        let uninspected = self.rules.as_ref().and_then(|r| {
            if r.accounting_mark.is_none()
                && self.config.rules.accounting_mark != 0
                && !self.config.kernel_may_accept_unseen()
            {
                // No posture lets the kernel accept a queued packet unseen: nothing to count.
                return Some(0);
            }
            match r.uninspected_packets() {
                Ok(n) => n,
                Err(e) => {
                    tracing::warn!(error = %e, "cannot read the accounting counters");
                    None
                }
            }
        });
        Snapshot {
            generation: self.generation,
            uptime_secs: self.started.elapsed().as_secs_f64(),
            policy: PolicySnapshot {
                files: self
                    .config
                    .policy
                    .files
                    .iter()
                    .map(|f| f.display().to_string())
                    .collect(),
                filters: self.filters,
                reloads: self.reloads,
                reload_failures: self.reload_failures,
                last_reload_error: self.last_reload_error.clone(),
            },
            fail_open: FailOpen {
                internal_error: self
                    .workers
                    .iter()
                    .map(|w| w.shared.status.panics_accepted.load(Ordering::Relaxed))
                    .sum(),
                hung: self
                    .workers
                    .iter()
                    .map(|w| w.shared.hung_accepted.load(Ordering::Relaxed))
                    .sum(),
                pended: self
                    .workers
                    .iter()
                    .map(|w| w.shared.asyncs.expired_accepted.load(Ordering::Relaxed))
                    .sum(),
                uninspected_accepted: uninspected,
            },
            flow_records: self.flow_records,
            stream_reports: self.stream_reports,
            connections_closed: self.connections_closed,
            connections_open: self.host.connections.active(),
            callout_panics: self.engine.stats().callout_panics.load(Ordering::Relaxed),
            queues,
        }
    }

    /// Logs the statistics and writes the stats file (if configured), atomically (temp file +
    /// rename).
    pub fn write_stats(&mut self) -> Snapshot {
        self.last_stats_write = Instant::now();
        let snapshot = self.stats();
        tracing::info!("stats: {}", snapshot.summary());
        if let Some(path) = &self.config.stats.file {
            let result = serde_json::to_vec_pretty(&snapshot)
                .map_err(std::io::Error::other)
                .and_then(|bytes| {
                    let tmp = path.with_extension("tmp");
                    std::fs::write(&tmp, bytes)?;
                    std::fs::rename(&tmp, path)
                });
            if let Err(e) = result {
                tracing::warn!(path = %path.display(), error = %e, "cannot write the stats file");
            }
        }
        snapshot
    }

    /// Stops: removes the rules (unless `keep_on_stop` or unmanaged), stops and joins the
    /// workers (their flows end: flowDeleteFn), writes the final statistics.
    pub fn shutdown(mut self) -> anyhow::Result<Snapshot> {
        let mut failure = None;
        if let Some(Err(e)) = self
            .offload
            .as_mut()
            .map(crate::offload::OffloadControl::stop)
        {
            tracing::error!("{e:#}");
            failure = Some(e);
        }
        if let Some(rules) = self.rules.as_ref() {
            if self.config.rules.keep_on_stop {
                tracing::info!(
                    "leaving the rules in place (keep_on_stop): the absent posture applies"
                );
            } else if let Err(e) = rules.remove() {
                tracing::error!(error = %e, "removing the iptables rules failed");
                failure = Some(anyhow::Error::from(e).context("removing the iptables rules"));
            }
        }
        self.stop_workers();
        if let Some(d) = self.drivers.take() {
            d.stop();
        }
        self.drain_reports();
        let snapshot = self.write_stats();
        tracing::info!("wfpd stopped");
        match failure {
            Some(e) => Err(e),
            None => Ok(snapshot),
        }
    }

    fn stop_workers(&mut self) {
        if let Some(w) = self.watchdog.take() {
            w.stop();
        }
        self.stop.stop();
        for w in &mut self.workers {
            if let Some(thread) = w.thread.take() {
                match thread.join() {
                    Ok(Ok(_)) => {}
                    Ok(Err(e)) => {
                        tracing::error!(queue = w.shared.queue, error = %e, "worker ended with an error")
                    }
                    Err(_) => tracing::error!(queue = w.shared.queue, "worker panicked"),
                }
            }
        }
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        self.stop_workers();
    }
}

/// The accounting counter the API's posture watch reads for fail-open overload (`None` unless
/// `[posture] overloaded = "fail-open"` and wfpd manages rules with an accounting mark).
fn fail_open_counter(daemon: &Daemon) -> Option<Arc<dyn Fn() -> Option<u64> + Send + Sync>> {
    if daemon.config.posture.overloaded != crate::config::Posture::FailOpen {
        return None;
    }
    let rules = daemon.rules.clone()?;
    rules.accounting_mark?;
    Some(Arc::new(move || rules.uninspected_packets().ok().flatten()))
}

fn endpoint(addr: Option<std::net::IpAddr>, port: u16) -> String {
    match addr {
        Some(std::net::IpAddr::V6(a)) => format!("[{a}]:{port}"),
        Some(a) => format!("{a}:{port}"),
        None => format!("?:{port}"),
    }
}

/// Bytes as printable ASCII with `\xNN` escapes, no spaces (one log token).
fn escape(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len());
    for &b in bytes {
        if b.is_ascii_graphic() && b != b'\\' {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("\\x{b:02x}"));
        }
    }
    out
}

/// Runs the daemon until SIGTERM or SIGINT: SIGHUP reloads the policy, SIGUSR1 logs the
/// statistics and writes the stats file. Signal handlers are installed before anything starts,
/// so a signal during start-up is handled after it.
pub fn run(config: Config) -> anyhow::Result<()> {
    use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM, SIGUSR1};
    let mut signals = signal_hook::iterator::Signals::new([SIGHUP, SIGINT, SIGTERM, SIGUSR1])
        .context("installing signal handlers")?;
    let signal_handle = signals.handle();
    let (tx, rx) = mpsc::channel();
    let signal_thread = std::thread::Builder::new()
        .name("wfpd-signals".to_owned())
        .spawn(move || {
            for signal in signals.forever() {
                if tx.send(signal).is_err() {
                    break;
                }
            }
        })
        .context("starting the signal thread")?;
    let mut daemon = Daemon::start(config)?;
    let mut failure = None;
    loop {
        match rx.recv_timeout(Duration::from_millis(100)) {
            Ok(SIGHUP) => match daemon.reload() {
                Ok(filters) => tracing::info!(filters, "policy reloaded"),
                Err(e) => tracing::error!(
                    "policy reload failed, the running policy stays in force: {e:#}"
                ),
            },
            Ok(SIGUSR1) => {
                daemon.write_stats();
            }
            Ok(signal) => {
                tracing::info!(signal, "stopping");
                break;
            }
            Err(RecvTimeoutError::Timeout) => {}
            Err(RecvTimeoutError::Disconnected) => break,
        }
        if let Err(e) = daemon.tick() {
            tracing::error!("{e:#}");
            failure = Some(e);
            break;
        }
    }
    let result = daemon.shutdown();
    signal_handle.close();
    let _ = signal_thread.join();
    match (failure, result) {
        (Some(e), _) | (None, Err(e)) => Err(e),
        (None, Ok(_)) => Ok(()),
    }
}
