//! The local management API (`docs/api.md`): HTTP/1.1 + JSON on a Unix socket, one thread and one
//! management session per connection.
//!
//! ```text
//!  UnixListener (path, 0660, root:<group>) ── accept ─► connection thread (≤ max_connections)
//!                                                         │ SO_PEERCRED → role, session owner
//!                                                         ▼
//!                                        conn::serve ─► routes ─► Session (wfp-core) ─► Engine
//!                                                                     │ persistent changes
//!                                                                     ▼
//!                                                                  Store (wfp-store)
//!  Daemon::tick ─► engine net events ─► EventHub ─► GET /v1/events subscribers
//!  accept thread, every pass: engine net-event time (Unix ms), expired prompts (/v1/pending),
//!                  posture counters ─► POSTURE net events
//!  Server::attach(DataPath): workers, prompts, flows, classify metrics (/v1/metrics, /v1/flows)
//! ```
//!
//! A slow, malformed or hostile client costs only its own thread: requests are bounded in size
//! and time, errors are answered and the connection closed; the engine's writer lock is only
//! held inside operations and explicit transactions (other sessions wait at most their own
//! `txn_wait_ms`, then get FWP_E_TIMEOUT).

mod boottime;
pub mod config;
mod conn;
mod drivers;
pub mod events;
pub mod feeds;
pub mod metrics;
pub mod peer;
mod pending;
pub mod posture;
mod routes;

use std::io;
use std::os::unix::fs::{FileTypeExt, PermissionsExt};
use std::os::unix::net::UnixListener;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use wfp_api::FlowDto;
use wfp_callouts::interactive::Prompts;
use wfp_core::{Engine, NetEvent};
use wfp_store::Store;

use crate::worker::WorkerShared;

pub use config::{ApiConfig, StoreConfig};
use events::EventHub;
pub use feeds::Feeds;
use peer::Groups;

/// Why the API could not start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ApiError {
    /// `[api] socket` is not set.
    #[error("[api] socket is not configured")]
    NoSocket,
    /// A configured group does not exist.
    #[error("unknown group {0:?}")]
    UnknownGroup(String),
    /// The path exists and is not a socket (never removed).
    #[error("{0} exists and is not a socket")]
    NotASocket(PathBuf),
    /// `metrics_listen` is not a loopback address and `metrics_allow_remote` is off.
    #[error("metrics_listen {0} is not a loopback address (set metrics_allow_remote = true)")]
    MetricsNotLoopback(std::net::SocketAddr),
    /// Creating, binding or securing the socket failed.
    #[error("{what} {path}: {source}")]
    Socket {
        /// The step.
        what: &'static str,
        /// The path.
        path: PathBuf,
        /// The error.
        #[source]
        source: io::Error,
    },
}

/// What every connection thread shares.
pub(crate) struct Shared {
    pub(crate) engine: Arc<Engine>,
    pub(crate) store: Option<Arc<Store>>,
    pub(crate) events: EventHub,
    pub(crate) config: ApiConfig,
    pub(crate) groups: Groups,
    pub(crate) stop: AtomicBool,
    pub(crate) connections: AtomicUsize,
    /// The connection monitor's log (`GET /v1/connections`), set once by the daemon.
    pub(crate) monitor: OnceLock<Arc<wfp_callouts::ConnectionLog>>,
    /// The daemon's C callout drivers (`/v1/drivers`), set once by the daemon.
    pub(crate) drivers: OnceLock<crate::drivers::Drivers>,
    /// What the data path handed over ([`Server::attach`]).
    pub(crate) attached: OnceLock<DataPath>,
    /// Classify results and latency, fed by the data path.
    pub(crate) classify: Arc<metrics::ClassifyMetrics>,
    /// Posture counters already reported.
    pub(crate) postures: posture::PostureWatch,
    /// Housekeeping passes so far.
    pub(crate) passes: std::sync::atomic::AtomicU64,
    /// The boot-time ruleset file, rewritten after commits that change boot-time filters.
    pub(crate) boottime: OnceLock<Arc<crate::boottime::BootRules>>,
}

/// The live flow table of a data path (`GET /v1/flows`).
pub trait FlowSource: Send + Sync {
    /// The flows now.
    fn flows(&self) -> Vec<FlowDto>;
}

/// A [`FlowSource`] the queue workers publish into: each worker replaces its queue's rows (for
/// example from its shim's flow table, in its timeout handler); readers see the latest rows of
/// every queue.
#[derive(Default)]
pub struct FlowBoard {
    rows: std::sync::Mutex<std::collections::BTreeMap<u16, Vec<FlowDto>>>,
}

impl FlowBoard {
    /// Replaces queue `queue`'s flows.
    pub fn publish(&self, queue: u16, flows: Vec<FlowDto>) {
        self.rows
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .insert(queue, flows);
    }
}

impl FlowSource for FlowBoard {
    fn flows(&self) -> Vec<FlowDto> {
        self.rows
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .values()
            .flatten()
            .cloned()
            .collect()
    }
}

/// What the data path shares with the API ([`Server::attach`]).
pub struct DataPath {
    /// The queue workers' counters (metrics, posture events).
    pub workers: Vec<Arc<WorkerShared>>,
    /// `wfp.interactive`'s prompts (the host's), served at `/v1/pending`.
    pub prompts: Option<Arc<Prompts>>,
    /// The host clock the prompts are timed by (the workers' clock).
    pub now: Arc<dyn Fn() -> Duration + Send + Sync>,
    /// The live flow table.
    pub flows: Option<Arc<dyn FlowSource>>,
    /// Packets the accounting rules saw pass without wfpd's mark before this start (the absent
    /// posture; one POSTURE event).
    pub absent_accepted: u64,
    /// Reads the accounting rules' cumulative count of packets accepted without wfpd's verdict
    /// (`None` without accounting rules). Set when `[posture] overloaded = "fail-open"`: growth
    /// beyond `absent_accepted` while attached is a full queue's FAIL_OPEN acceptance (overload
    /// posture, verdict accept), which the kernel itself counts nowhere.
    pub uninspected: Option<Arc<dyn Fn() -> Option<u64> + Send + Sync>>,
}

impl DataPath {
    /// The host clock now.
    pub(crate) fn host_now(&self) -> Duration {
        (self.now)()
    }
}

/// Unix time in milliseconds (0 before 1970).
pub(crate) fn unix_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// A running API server. Dropping it stops accepting and ends the connections (their sessions
/// close: dynamic objects deleted).
pub struct Server {
    shared: Arc<Shared>,
    path: PathBuf,
    accept: Option<JoinHandle<()>>,
    metrics: Option<(std::net::SocketAddr, JoinHandle<()>)>,
}

fn resolve(group: Option<&String>) -> Result<Option<u32>, ApiError> {
    group
        .map(|g| peer::group_id(g).ok_or_else(|| ApiError::UnknownGroup(g.clone())))
        .transpose()
}

/// Binds the socket: a stale socket file is replaced, anything else at the path is an error; mode
/// 0660 (0600 without a group), owned by root and the socket group.
fn bind(path: &Path, group: Option<u32>) -> Result<UnixListener, ApiError> {
    let err = |what: &'static str| {
        let path = path.to_path_buf();
        move |source| ApiError::Socket { what, path, source }
    };
    if let Ok(meta) = std::fs::symlink_metadata(path) {
        if !meta.file_type().is_socket() {
            return Err(ApiError::NotASocket(path.to_path_buf()));
        }
        std::fs::remove_file(path).map_err(err("removing the stale socket"))?;
    }
    let listener = UnixListener::bind(path).map_err(err("binding"))?;
    let mode = if group.is_some() { 0o660 } else { 0o600 };
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
        .map_err(err("setting the mode of"))?;
    if let Some(gid) = group {
        std::os::unix::fs::chown(path, None, Some(gid)).map_err(err("setting the group of"))?;
    }
    listener.set_nonblocking(true).map_err(err("configuring"))?;
    Ok(listener)
}

impl Server {
    /// Starts serving `engine` (and `store`, the persist hook of every session) on
    /// `config.socket`.
    pub fn start(
        engine: Arc<Engine>,
        store: Option<Arc<Store>>,
        config: ApiConfig,
    ) -> Result<Self, ApiError> {
        let path = config.socket.clone().ok_or(ApiError::NoSocket)?;
        let groups = Groups {
            admin: resolve(config.admin_group.as_ref())?,
            viewer: resolve(config.viewer_group.as_ref())?,
        };
        if let Some(addr) = config.metrics_listen {
            if !addr.ip().is_loopback() && !config.metrics_allow_remote {
                return Err(ApiError::MetricsNotLoopback(addr));
            }
        }
        let listener = bind(&path, groups.viewer.or(groups.admin))?;
        let shared = Arc::new(Shared {
            engine,
            store,
            events: EventHub::default(),
            config,
            groups,
            stop: AtomicBool::new(false),
            connections: AtomicUsize::new(0),
            monitor: OnceLock::new(),
            drivers: OnceLock::new(),
            attached: OnceLock::new(),
            classify: Arc::default(),
            postures: posture::PostureWatch::default(),
            passes: std::sync::atomic::AtomicU64::new(0),
            boottime: OnceLock::new(),
        });
        shared.engine.set_net_event_time(unix_ms());
        let thread_shared = Arc::clone(&shared);
        let accept = std::thread::Builder::new()
            .name("wfpd-api".into())
            .spawn(move || accept_loop(&thread_shared, &listener))
            .map_err(|source| ApiError::Socket {
                what: "starting the accept thread for",
                path: path.clone(),
                source,
            })?;
        tracing::info!(socket = %path.display(), ?groups, "management API listening");
        let mut server = Self {
            shared,
            path,
            accept: Some(accept),
            metrics: None,
        };
        if let Some(addr) = server.shared.config.metrics_listen {
            let sock_err = |what: &'static str| {
                let path = PathBuf::from(addr.to_string());
                move |source| ApiError::Socket { what, path, source }
            };
            let tcp = std::net::TcpListener::bind(addr).map_err(sock_err("binding"))?;
            let local = tcp
                .local_addr()
                .map_err(sock_err("reading the address of"))?;
            tcp.set_nonblocking(true).map_err(sock_err("configuring"))?;
            let shared = Arc::clone(&server.shared);
            let thread = std::thread::Builder::new()
                .name("wfpd-metrics".into())
                .spawn(move || metrics::serve_tcp(&shared, &tcp))
                .map_err(sock_err("starting the thread for"))?;
            tracing::info!(%local, "metrics listening");
            server.metrics = Some((local, thread));
        }
        Ok(server)
    }

    /// Lists `log`'s live connections at `GET /v1/connections` (the first call wins).
    pub fn set_connection_log(&self, log: Arc<wfp_callouts::ConnectionLog>) {
        let _ = self.shared.monitor.set(log);
    }

    /// Serves `drivers` at `/v1/drivers` (the first call wins; without it the list is empty and
    /// loads are refused).
    pub fn set_drivers(&self, drivers: crate::drivers::Drivers) {
        let _ = self.shared.drivers.set(drivers);
    }

    /// Keeps `rules` (the boot-time ruleset file) in step with the boot-time filters the API
    /// commits (the first call wins).
    pub fn set_boottime(&self, rules: Arc<crate::boottime::BootRules>) {
        let _ = self.shared.boottime.set(rules);
    }

    /// Hands net events to the `GET /v1/events` subscribers.
    pub fn publish(&self, events: &[NetEvent]) {
        self.shared.events.publish(events);
    }

    /// Connects the data path: its counters, prompts and flows become visible; the prompts get
    /// the configured deadline and default. Only the first call counts (false afterwards).
    pub fn attach(&self, data: DataPath) -> bool {
        if let Some(p) = &data.prompts {
            p.set_policy(self.shared.config.prompt_policy());
        }
        self.shared.attached.set(data).is_ok()
    }

    /// Where a data path reports classify results and their latency (`/v1/metrics`).
    pub fn classify_metrics(&self) -> Arc<metrics::ClassifyMetrics> {
        Arc::clone(&self.shared.classify)
    }

    /// The periodic duties of the accept thread, also callable directly (tests): stamps the
    /// engine's net-event time, applies the default to expired prompts, reports posture changes
    /// (every 25th pass).
    pub fn housekeeping(&self) {
        housekeeping(&self.shared);
    }

    /// The TCP address `/v1/metrics` is also served on (`metrics_listen`, port 0 resolved).
    pub fn metrics_addr(&self) -> Option<std::net::SocketAddr> {
        self.metrics.as_ref().map(|(a, _)| *a)
    }

    /// The socket path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Connections open now.
    pub fn connections(&self) -> usize {
        self.shared.connections.load(Ordering::Relaxed)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.accept.take() {
            let _ = t.join();
        }
        if let Some((_, t)) = self.metrics.take() {
            let _ = t.join();
        }
        let _ = std::fs::remove_file(&self.path);
    }
}

/// How often the accept thread does its [`Server::housekeeping`] (net-event time resolution).
const HOUSEKEEPING: Duration = Duration::from_millis(20);

/// Counts a connection for as long as it lives.
struct Counted<'a>(&'a AtomicUsize);

impl Drop for Counted<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

fn housekeeping(shared: &Shared) {
    shared.engine.set_net_event_time(unix_ms());
    let Some(data) = shared.attached.get() else {
        return;
    };
    if let Some(p) = &data.prompts {
        p.expire(&shared.engine, data.host_now());
    }
    // The posture counters include a /proc read: every POSTURE_EVERY passes.
    if shared.passes.fetch_add(1, Ordering::Relaxed) % POSTURE_EVERY == 0 {
        let uninspected = data.uninspected.as_ref().and_then(|read| read());
        let readings = posture::read(&data.workers, data.absent_accepted, uninspected);
        shared.postures.observe(&shared.engine, &readings);
    }
}

/// Housekeeping passes between two posture reads (25 × 20 ms = 0.5 s).
const POSTURE_EVERY: u64 = 25;

fn accept_loop(shared: &Arc<Shared>, listener: &UnixListener) {
    let mut threads: Vec<JoinHandle<()>> = Vec::new();
    let mut last_housekeeping = Instant::now();
    while !shared.stop.load(Ordering::Relaxed) {
        threads.retain(|t| !t.is_finished());
        if last_housekeeping.elapsed() >= HOUSEKEEPING {
            last_housekeeping = Instant::now();
            housekeeping(shared);
        }
        let stream = match listener.accept() {
            Ok((stream, _)) => stream,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                std::thread::sleep(Duration::from_millis(20));
                continue;
            }
            Err(e) => {
                tracing::warn!(error = %e, "accept failed");
                std::thread::sleep(Duration::from_millis(20));
                continue;
            }
        };
        if stream.set_nonblocking(false).is_err() {
            continue;
        }
        let n = shared.connections.fetch_add(1, Ordering::Relaxed);
        if n >= shared.config.max_connections {
            shared.connections.fetch_sub(1, Ordering::Relaxed);
            let mut s = stream;
            let _ = wfp_api::http::write_response(&mut s, 503, br#"{"error":{"code":0,"name":"HTTP_TOO_MANY_CONNECTIONS","message":"too many connections"}}"#, true);
            continue;
        }
        let conn_shared = Arc::clone(shared);
        let spawned = std::thread::Builder::new()
            .name("wfpd-api-conn".into())
            .spawn(move || {
                let _counted = Counted(&conn_shared.connections);
                conn::serve(&conn_shared, stream);
            });
        match spawned {
            Ok(t) => threads.push(t),
            Err(e) => tracing::warn!(error = %e, "cannot start a connection thread"),
        }
    }
    for t in threads {
        let _ = t.join();
    }
}

/// Opens the configured store and adds its persistent objects to `engine` in one transaction.
/// `None` without `[store] path`. A damaged, foreign or newer-format store is an error: the
/// daemon does not start (fail-closed), and the store file is left untouched.
pub fn open_store(config: &StoreConfig, engine: &Engine) -> anyhow::Result<Option<Arc<Store>>> {
    use anyhow::Context;
    let Some(path) = &config.path else {
        return Ok(None);
    };
    let store =
        Store::open(path).with_context(|| format!("opening the store {}", path.display()))?;
    let contents = store
        .load()
        .with_context(|| format!("reading the store {}", path.display()))?;
    let n = contents
        .install(engine)
        .with_context(|| format!("adding the persistent objects of {}", path.display()))?;
    tracing::info!(store = %path.display(), objects = n, "persistent objects loaded");
    Ok(Some(Arc::new(store)))
}
