//! The hosting side: one [`DriverHost`] per engine, holding what the kernel-runtime layer needs
//! (the engine, the clock drivers read, the log they write, the Verifier's records) and loading
//! [`crate::Driver`]s into it.
//!
//! The C ABI has no context argument (FwpsFlowAssociateContext0 names no engine), so the runtime
//! binds the host to the calling thread for the duration of every call into a driver (DriverEntry,
//! the unload routine, each classifyFn/notifyFn/flowDeleteFn). A runtime function called on a
//! thread with no host bound fails with STATUS_INVALID_DEVICE_STATE. There is no process-global
//! state: two hosts in one process (two replays) never see each other's drivers.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use parking_lot::Mutex;
use wfp_core::Engine;

use crate::verifier::{Finding, Tracker};

/// 100-ns intervals between 1601-01-01 and 1970-01-01 (KeQuerySystemTime's epoch).
pub(crate) const WINDOWS_EPOCH_OFFSET: u64 = 116_444_736_000_000_000;

/// Where drivers' time comes from when [`DriverHost::set_time`] was never called: a function
/// returning nanoseconds since the Unix epoch (a replay passes its capture clock).
#[derive(Clone)]
pub struct TimeSource(pub Arc<dyn Fn() -> u64 + Send + Sync>);

impl std::fmt::Debug for TimeSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TimeSource")
    }
}

/// How a host runs its drivers.
#[derive(Clone, Debug)]
pub struct HostConfig {
    /// The clock drivers read when no time was set; `None` = the system clock.
    pub clock: Option<TimeSource>,
    /// How long an unload may take (the unload routine plus the host's cleanup) before the host
    /// reports the driver as hung and leaves it loaded.
    pub unload_timeout: Duration,
    /// Copy every DbgPrint/KdPrint line to standard error as it is written.
    pub echo_log: bool,
}

impl Default for HostConfig {
    fn default() -> Self {
        Self {
            clock: None,
            unload_timeout: Duration::from_secs(10),
            echo_log: false,
        }
    }
}

/// One line a driver printed (DbgPrint, DbgPrintEx, KdPrint).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LogLine {
    /// The driver's name (its file stem).
    pub driver: String,
    /// `ComponentId` (DPFLTR_*_ID).
    pub component: u32,
    /// `Level` (DPFLTR_*_LEVEL).
    pub level: u32,
    /// The formatted text (UTF-8, trailing newline removed).
    pub text: String,
}

/// What the runtime knows about a callout a driver registered.
#[derive(Clone, Debug)]
pub(crate) struct CalloutRecord {
    pub(crate) driver: usize,
}

/// State shared by the runtime functions of every driver of one host.
pub(crate) struct HostInner {
    /// This host's own Arc (callout adapters keep the host alive while registered).
    pub(crate) me: std::sync::Weak<Self>,
    pub(crate) engine: Arc<Engine>,
    pub(crate) config: HostConfig,
    pub(crate) tracker: Mutex<Tracker>,
    pub(crate) log: Mutex<Vec<LogLine>>,
    /// Nanoseconds since the Unix epoch that KeQuerySystemTime reports; 0 = the system clock.
    pub(crate) time_ns: AtomicU64,
    /// The first time reported (KeQueryInterruptTime counts from it).
    pub(crate) boot_ns: AtomicU64,
    pub(crate) callouts: Mutex<HashMap<u32, CalloutRecord>>,
    /// Flow contexts associated through the runtime: (layer, callout, context) → flows.
    pub(crate) flows: Mutex<HashMap<(u16, u32, u64), Vec<u64>>>,
    pub(crate) sessions: Mutex<crate::sys::Sessions>,
    /// Driver names by index (the index is stored in DRIVER_OBJECT.DriverSection).
    pub(crate) drivers: Mutex<Vec<String>>,
    /// Lists, referenced packets and writable layer data the asynchronous Fwps functions handed out.
    pub(crate) asyncs: Mutex<crate::sys::AsyncState>,
    /// Events, threads, handles, work items, lookaside lists, WDF objects, NDIS pools.
    pub(crate) rt: crate::sys::RtState,
    /// Work [`DriverHost::settle`] already waited a full bound for (not waited for again).
    pub(crate) given_up: Mutex<HashSet<crate::sys::InProgress>>,
    /// A reauthorization classify released a driver thread waiting in FwpsCompleteOperation0
    /// since [`DriverHost::wants_another_pass`] last looked.
    pub(crate) reauthorized: std::sync::atomic::AtomicBool,
    /// How many driver threads wait in FwpsCompleteOperation0 for a reauthorization
    /// (`AsyncState::reauth_waiters`): classify looks further only when nonzero.
    pub(crate) reauth_waiting: std::sync::atomic::AtomicUsize,
}

impl Drop for HostInner {
    fn drop(&mut self) {
        // Open transactions borrow the engine: end them before the engine field is dropped.
        self.sessions.get_mut().clear();
    }
}

impl HostInner {
    pub(crate) fn finding(&self, f: Finding) {
        let driver = crate::sys::current_driver();
        self.tracker.lock().findings.push((driver, f));
    }

    /// KeQuerySystemTime: 100-ns units since 1601.
    pub(crate) fn system_time_100ns(&self) -> u64 {
        let ns = self.now_ns();
        ns / 100 + WINDOWS_EPOCH_OFFSET
    }

    pub(crate) fn now_ns(&self) -> u64 {
        let t = self.time_ns.load(Ordering::Relaxed);
        let ns = if t != 0 {
            t
        } else if let Some(c) = &self.config.clock {
            (c.0)()
        } else {
            SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_or(0, |d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
        };
        let _ = self
            .boot_ns
            .compare_exchange(0, ns, Ordering::Relaxed, Ordering::Relaxed);
        ns
    }

    pub(crate) fn push_log(&self, driver: usize, component: u32, level: u32, text: String) {
        let name = self
            .drivers
            .lock()
            .get(driver)
            .cloned()
            .unwrap_or_else(|| "?".into());
        if self.config.echo_log {
            eprintln!("[{name}] {text}");
        }
        self.log.lock().push(LogLine {
            driver: name,
            component,
            level,
            text,
        });
    }
}

/// Hosts C callout drivers on one engine: loads them ([`DriverHost::load`]), gives them the clock
/// ([`DriverHost::set_time`]) and collects what they print ([`DriverHost::drain_log`]). A clone
/// is another handle on the same host.
#[derive(Clone)]
pub struct DriverHost {
    pub(crate) inner: Arc<HostInner>,
}

impl DriverHost {
    /// A host for drivers acting on `engine`.
    pub fn new(engine: Arc<Engine>, config: HostConfig) -> Self {
        Self {
            inner: Arc::new_cyclic(|me| HostInner {
                me: me.clone(),
                engine,
                config,
                tracker: Mutex::new(Tracker::default()),
                log: Mutex::new(Vec::new()),
                time_ns: AtomicU64::new(0),
                boot_ns: AtomicU64::new(0),
                callouts: Mutex::new(HashMap::new()),
                flows: Mutex::new(HashMap::new()),
                sessions: Mutex::new(crate::sys::Sessions::default()),
                drivers: Mutex::new(Vec::new()),
                asyncs: Mutex::new(crate::sys::AsyncState::default()),
                rt: crate::sys::RtState::default(),
                given_up: Mutex::new(HashSet::new()),
                reauthorized: std::sync::atomic::AtomicBool::new(false),
                reauth_waiting: std::sync::atomic::AtomicUsize::new(0),
            }),
        }
    }

    /// The engine the drivers act on.
    pub fn engine(&self) -> &Arc<Engine> {
        &self.inner.engine
    }

    /// Sets the time drivers read (KeQuerySystemTime), in nanoseconds since the Unix epoch; a replay
    /// sets it to each packet's capture time. Until it is set, drivers read the system clock.
    pub fn set_time(&self, ns_since_epoch: u64) {
        self.inner.time_ns.store(ns_since_epoch, Ordering::Relaxed);
    }

    /// Waits, at most `bound`, until the drivers' asynchronous work in progress is done: operations
    /// pended with FwpsPendOperation0 and classifies pended with FwpsPendClassify0 completed,
    /// clones from FwpsAllocateCloneNetBufferList0 injected or freed (wfp-reference §10.1, §10.2,
    /// §10.4), work items queued with IoQueueWorkItem run to their end. A replay calls it at each asynchronous point, so decisions a driver takes on its own
    /// threads land at the same point of the replay every run. Work still in progress when the
    /// bound expires is not waited for again (a driver that holds a clone for good costs one
    /// bound, not one per packet). True when nothing was left to wait for.
    pub fn settle(&self, bound: Duration) -> bool {
        let deadline = Instant::now() + bound;
        let mut pause = Duration::from_micros(50);
        let mut given_up = self.inner.given_up.lock();
        loop {
            let (mut now, waiting_for_us) = {
                let st = self.inner.asyncs.lock();
                (
                    st.in_progress(),
                    st.reauth_waiters.values().any(|w| w.armed && !w.done),
                )
            };
            if self.inner.rt.activity.work_items() > 0 {
                now.push(crate::sys::InProgress::WorkItems);
            }
            // A driver thread waits inside FwpsCompleteOperation0 for the reauthorization the
            // data path runs next: its other work cannot finish before that pass.
            if waiting_for_us {
                return true;
            }
            given_up.retain(|w| now.contains(w));
            let waiting: Vec<_> = now.into_iter().filter(|w| !given_up.contains(w)).collect();
            if waiting.is_empty() {
                return true;
            }
            if Instant::now() >= deadline {
                given_up.extend(waiting);
                return false;
            }
            std::thread::sleep(pause);
            pause = (pause * 2).min(Duration::from_millis(2));
        }
    }

    /// Whether the data path should run another asynchronous pass now ([`DriverHost::settle`],
    /// then its completions and injections): a reauthorization it just ran released a driver
    /// thread that waited for it inside FwpsCompleteOperation0 (wfp-reference §10.1: on Windows
    /// that classify runs inside the call), and what the thread does next belongs to this
    /// point. Reading clears it.
    pub fn wants_another_pass(&self) -> bool {
        self.inner
            .reauthorized
            .swap(false, std::sync::atomic::Ordering::AcqRel)
    }

    /// Takes the lines the drivers printed so far.
    pub fn drain_log(&self) -> Vec<LogLine> {
        std::mem::take(&mut *self.inner.log.lock())
    }
}
