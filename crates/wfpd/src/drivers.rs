//! `[[driver]]`: C callout drivers (built by `wfpctl driver build`) that wfpd loads into its
//! engine at start — after the policy and the persistent objects, before any queue admits
//! traffic — and unloads at stop, after the workers have ended every flow (flowDeleteFn), following
//! WFP's unload protocol (wfp-reference §5.3, bounded; a driver that never finishes is reported and
//! left mapped). What drivers print and what the Driver Verifier finds goes to the log.
//!
//! The loaded set is a run-time registry ([`Drivers`]): the management API lists it and, for
//! admins, loads, unloads and sends device-control requests (`/v1/drivers`, `docs/api.md`).
//!
//! ```text
//!  [[driver]] tables ──start──►┐
//!  POST /v1/drivers ──load────►├─► Drivers { host: DriverHost, loaded: [Entry] } ──► Engine
//!  DELETE /v1/drivers/{name} ──┤      Entry: name, path, params, RwLock<Driver>
//!  POST .../{name}/ioctl ──────┘      (ioctls share the lock; an unload takes it alone)
//!  daemon stop ──► stop(): every driver unloaded, last first (§5.3, bounded)
//! ```
//!
//! ```toml
//! [[driver]]
//! path = "flowmon.so"          # relative to the configuration file's directory
//! params = { Mode = 3, Rule = "block:23" }   # the driver's Parameters key (WdfRegistryQuery*)
//! ```

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError, RwLock};
use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::Context;
use serde::Deserialize;
use wfp_api::{DriverUnloaded, DriverView, IoctlAnswer};
use wfp_core::Engine;
use wfp_ffi::{Driver, DriverHost, DriverOptions, HostConfig, ParamValue};

/// One `[[driver]]` table.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct DriverConfig {
    /// The driver image; relative paths are relative to the configuration file's directory.
    pub path: PathBuf,
    /// Parameters: integers are REG_DWORD values, strings REG_SZ values (`dword:N` / `sz:TEXT`
    /// force a type).
    #[serde(default)]
    pub params: BTreeMap<String, ParamConfig>,
}

/// One parameter value in the configuration file.
#[derive(Clone, Debug, Deserialize)]
#[serde(untagged)]
#[non_exhaustive]
pub enum ParamConfig {
    /// A DWORD.
    Number(u32),
    /// Text (typed by [`ParamValue::parse`] rules: `dword:N`, `sz:TEXT`, else a string).
    Text(String),
}

impl DriverConfig {
    /// The driver's parameters as the runtime takes them.
    pub fn params(&self) -> Vec<(String, ParamValue)> {
        self.params
            .iter()
            .map(|(k, v)| {
                let value = match v {
                    ParamConfig::Number(n) => ParamValue::Dword(*n),
                    ParamConfig::Text(t) if t.starts_with("dword:") => ParamValue::parse(t),
                    ParamConfig::Text(t) => {
                        ParamValue::String(t.strip_prefix("sz:").unwrap_or(t).to_string())
                    }
                };
                (k.clone(), value)
            })
            .collect()
    }

    /// Makes a relative path relative to `dir` (the configuration file's directory).
    pub fn resolve(&mut self, dir: &Path) {
        if self.path.is_relative() {
            self.path = dir.join(&self.path);
        }
    }
}

/// Why a driver could not be loaded, unloaded or reached at run time (the management API maps
/// each to an HTTP status and an NTSTATUS / `FWP_E_*` code: [`DriverError::code`]).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DriverError {
    /// No loaded driver has that name.
    #[error("no driver named {0:?} is loaded")]
    NotLoaded(String),
    /// A driver with that name (the image's file stem) is loaded already.
    #[error("a driver named {name:?} is loaded already (from {})", path.display())]
    Exists {
        /// The name.
        name: String,
        /// The loaded driver's image.
        path: PathBuf,
    },
    /// The path is empty, not UTF-8, or relative without a configuration directory.
    #[error("bad driver path {path:?}: {reason}")]
    BadPath {
        /// The path as given.
        path: String,
        /// Why.
        reason: &'static str,
    },
    /// The image is not a regular file one can read.
    #[error("{}: {source}", path.display())]
    NoImage {
        /// The resolved path.
        path: PathBuf,
        /// The file system's answer.
        #[source]
        source: std::io::Error,
    },
    /// dlopen, the DriverEntry lookup or DriverEntry failed.
    #[error(transparent)]
    Load(#[from] wfp_ffi::LoadError),
    /// The unload did not finish in time (§5.3): the image stays mapped, the name is free.
    #[error(transparent)]
    Unload(#[from] wfp_ffi::UnloadError),
    /// The device-control request could not be delivered or did not complete.
    #[error(transparent)]
    Ioctl(#[from] wfp_ffi::IoctlError),
    /// The daemon is stopping: no more loads.
    #[error("the daemon is stopping")]
    Stopping,
}

impl DriverError {
    /// The HTTP status, the code (an NTSTATUS, or `FWP_E_TIMEOUT`) and its name.
    pub fn code(&self) -> (u16, u32, &'static str) {
        use wfp_ffi::{IoctlError, LoadError};
        match self {
            Self::NotLoaded(_) => (404, 0xC000_0225, "STATUS_NOT_FOUND"),
            Self::Exists { .. } => (409, 0xC000_0035, "STATUS_OBJECT_NAME_COLLISION"),
            Self::BadPath { .. } => (400, 0xC000_0039, "STATUS_OBJECT_PATH_INVALID"),
            Self::NoImage { source, .. } if source.kind() == std::io::ErrorKind::NotFound => {
                (404, 0xC000_0034, "STATUS_OBJECT_NAME_NOT_FOUND")
            }
            Self::NoImage { .. } => (400, 0xC000_0022, "STATUS_ACCESS_DENIED"),
            Self::Load(LoadError::Open { .. }) => (400, 0xC000_007B, "STATUS_INVALID_IMAGE_FORMAT"),
            Self::Load(LoadError::NoEntry { .. }) => {
                (400, 0xC000_007A, "STATUS_PROCEDURE_NOT_FOUND")
            }
            Self::Load(LoadError::EntryFailed { status, .. }) => {
                (500, *status, "STATUS_DRIVER_ENTRY_FAILED")
            }
            Self::Unload(_) => (504, 0x8032_0012, "FWP_E_TIMEOUT"),
            Self::Ioctl(IoctlError::NoQueue { .. }) => {
                (400, 0xC000_0010, "STATUS_INVALID_DEVICE_REQUEST")
            }
            Self::Ioctl(IoctlError::NotReady { .. }) => {
                (503, 0xC000_00A3, "STATUS_DEVICE_NOT_READY")
            }
            Self::Ioctl(IoctlError::NotCompleted { .. }) => (504, 0xC000_00B5, "STATUS_IO_TIMEOUT"),
            Self::Stopping => (503, 0xC000_00A3, "STATUS_DEVICE_NOT_READY"),
            Self::Load(_) | Self::Ioctl(_) => (500, 0xC000_0001, "STATUS_UNSUCCESSFUL"),
        }
    }
}

/// Where a loaded driver came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Origin {
    /// A `[[driver]]` table.
    Config,
    /// `POST /v1/drivers`.
    Api,
}

/// One loaded driver. The driver sits behind its own lock: device-control requests share it,
/// an unload takes it exclusively (waiting for the requests in flight, each bounded).
struct Entry {
    name: String,
    path: PathBuf,
    params: BTreeMap<String, String>,
    loaded_at: SystemTime,
    origin: Origin,
    driver: Arc<RwLock<Option<Driver>>>,
}

impl Entry {
    fn view(&self) -> DriverView {
        let slot = self.driver.read().unwrap_or_else(PoisonError::into_inner);
        let (findings, devices) = slot.as_ref().map_or((0, Vec::new()), |d| {
            let devices = d
                .devices()
                .into_iter()
                .map(|i| i.name.unwrap_or_else(|| "(unnamed)".into()))
                .collect();
            (d.findings().len(), devices)
        });
        DriverView {
            name: self.name.clone(),
            path: self.path.display().to_string(),
            params: self.params.clone(),
            loaded_at: self
                .loaded_at
                .duration_since(UNIX_EPOCH)
                .map_or(0, |d| d.as_secs()),
            origin: match self.origin {
                Origin::Config => "config",
                Origin::Api => "api",
            }
            .into(),
            findings,
            devices,
        }
    }
}

/// What a load needs besides the image.
struct LoadSpec {
    path: PathBuf,
    params: Vec<(String, ParamValue)>,
    shown: BTreeMap<String, String>,
    origin: Origin,
}

struct Inner {
    host: DriverHost,
    /// Relative API paths are relative to this (the configuration file's directory).
    base_dir: Option<PathBuf>,
    /// Serializes loads and unloads: DriverEntry and unload routines run one at a time.
    changes: Mutex<()>,
    loaded: Mutex<Vec<Entry>>,
    stopping: AtomicBool,
}

/// The drivers a daemon hosts: a run-time registry shared by the daemon (`[[driver]]` at
/// start, everything at stop) and the management API (`/v1/drivers`). Cloning gives another
/// handle on the same registry.
#[derive(Clone)]
pub struct Drivers {
    inner: Arc<Inner>,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Drivers {
    /// Loads every configured driver into `engine` (DriverEntry at PASSIVE_LEVEL), in order; on
    /// an error the drivers loaded so far are unloaded again. `base_dir` is the configuration
    /// file's directory (relative paths of later API loads are relative to it).
    pub fn start(
        configs: &[DriverConfig],
        base_dir: Option<&Path>,
        engine: &Arc<Engine>,
    ) -> anyhow::Result<Self> {
        let host = DriverHost::new(
            engine.clone(),
            HostConfig {
                echo_log: true,
                ..HostConfig::default()
            },
        );
        let drivers = Self {
            inner: Arc::new(Inner {
                host,
                base_dir: base_dir.map(Path::to_path_buf),
                changes: Mutex::new(()),
                loaded: Mutex::new(Vec::new()),
                stopping: AtomicBool::new(false),
            }),
        };
        for c in configs {
            let shown = c
                .params()
                .into_iter()
                .map(|(k, v)| (k, param_text(&v)))
                .collect();
            let spec = LoadSpec {
                path: c.path.clone(),
                params: c.params(),
                shown,
                origin: Origin::Config,
            };
            if let Err(e) = drivers.add(spec) {
                let _ = drivers.clone().stop();
                return Err(e).with_context(|| format!("loading driver {}", c.path.display()));
            }
        }
        Ok(drivers)
    }

    /// The host the drivers run in.
    pub fn host(&self) -> &DriverHost {
        &self.inner.host
    }

    /// The loaded drivers, in load order.
    pub fn list(&self) -> Vec<DriverView> {
        lock(&self.inner.loaded).iter().map(Entry::view).collect()
    }

    /// Resolves an API path: absolute, or relative to the configuration directory.
    pub fn resolve(&self, path: &str) -> Result<PathBuf, DriverError> {
        let bad = |reason| DriverError::BadPath {
            path: path.to_string(),
            reason,
        };
        if path.is_empty() {
            return Err(bad("empty"));
        }
        let p = Path::new(path);
        let full = if p.is_absolute() {
            p.to_path_buf()
        } else {
            let dir = self.inner.base_dir.as_ref().ok_or_else(|| {
                bad("relative, and the daemon has no configuration directory to resolve it in")
            })?;
            dir.join(p)
        };
        let meta = std::fs::metadata(&full).map_err(|source| DriverError::NoImage {
            path: full.clone(),
            source,
        })?;
        if !meta.is_file() {
            return Err(bad("not a regular file"));
        }
        Ok(full)
    }

    /// `POST /v1/drivers`: loads `path` (see [`Drivers::resolve`]) with `params` (typed by
    /// [`ParamValue::parse`]). On any error nothing changed.
    pub fn load(
        &self,
        path: &str,
        params: &BTreeMap<String, String>,
    ) -> Result<DriverView, DriverError> {
        let spec = LoadSpec {
            path: self.resolve(path)?,
            params: params
                .iter()
                .map(|(k, v)| (k.clone(), ParamValue::parse(v)))
                .collect(),
            shown: params.clone(),
            origin: Origin::Api,
        };
        self.add(spec)
    }

    fn add(&self, spec: LoadSpec) -> Result<DriverView, DriverError> {
        let _changing = lock(&self.inner.changes);
        if self.inner.stopping.load(Ordering::Relaxed) {
            return Err(DriverError::Stopping);
        }
        let name = driver_name(&spec.path);
        if let Some(e) = lock(&self.inner.loaded).iter().find(|e| e.name == name) {
            return Err(DriverError::Exists {
                name,
                path: e.path.clone(),
            });
        }
        let options = DriverOptions {
            params: spec.params,
        };
        let d = self.inner.host.load_with(&spec.path, &options)?;
        tracing::info!(driver = d.name(), path = %spec.path.display(), "driver loaded");
        let entry = Entry {
            name: d.name().to_string(),
            path: spec.path,
            params: spec.shown,
            loaded_at: SystemTime::now(),
            origin: spec.origin,
            driver: Arc::new(RwLock::new(Some(d))),
        };
        let view = entry.view();
        lock(&self.inner.loaded).push(entry);
        Ok(view)
    }

    /// `DELETE /v1/drivers/{name}`: unloads the driver (§5.3: its unload routine, then the
    /// host's cleanup, bounded by the host's unload timeout). The name is free afterwards even
    /// when the driver hung (it stays mapped; the error says so).
    pub fn unload(&self, name: &str) -> Result<DriverUnloaded, DriverError> {
        let _changing = lock(&self.inner.changes);
        let entry = {
            let mut loaded = lock(&self.inner.loaded);
            let at = loaded
                .iter()
                .position(|e| e.name == name)
                .ok_or_else(|| DriverError::NotLoaded(name.to_string()))?;
            loaded.remove(at)
        };
        finish(entry)
    }

    /// `POST /v1/drivers/{name}/ioctl`: a device-control request to the driver's default queue
    /// (EvtIoDeviceControl), waited for (bounded by the host's unload timeout).
    pub fn ioctl(
        &self,
        name: &str,
        code: u32,
        input: &[u8],
        output_len: usize,
    ) -> Result<IoctlAnswer, DriverError> {
        let slot = lock(&self.inner.loaded)
            .iter()
            .find(|e| e.name == name)
            .map(|e| Arc::clone(&e.driver))
            .ok_or_else(|| DriverError::NotLoaded(name.to_string()))?;
        let guard = slot.read().unwrap_or_else(PoisonError::into_inner);
        let driver = guard
            .as_ref()
            .ok_or_else(|| DriverError::NotLoaded(name.to_string()))?;
        let out = driver.ioctl(code, input, output_len)?;
        Ok(IoctlAnswer {
            status: out.status,
            information: u64::try_from(out.information).unwrap_or(u64::MAX),
            output_b64: wfp_api::drivers::b64_encode(&out.output),
        })
    }

    /// Unloads every driver, last loaded first, and refuses later loads; logs and returns the
    /// Verifier's findings (`driver: finding`). A driver that does not finish unloading in time
    /// is reported as a finding too (it stays mapped).
    pub fn stop(self) -> Vec<String> {
        let _changing = lock(&self.inner.changes);
        self.inner.stopping.store(true, Ordering::Relaxed);
        let entries = std::mem::take(&mut *lock(&self.inner.loaded));
        let mut findings = Vec::new();
        for entry in entries.into_iter().rev() {
            let name = entry.name.clone();
            match finish(entry) {
                Ok(report) => {
                    findings.extend(report.findings.iter().map(|f| format!("{name}: {f}")))
                }
                Err(e) => findings.push(format!("{name}: {e}")),
            }
        }
        findings
    }
}

/// Unloads one driver taken out of the registry, after the device-control requests in flight.
fn finish(entry: Entry) -> Result<DriverUnloaded, DriverError> {
    let name = entry.name;
    let driver = entry
        .driver
        .write()
        .unwrap_or_else(PoisonError::into_inner)
        .take()
        .ok_or_else(|| DriverError::NotLoaded(name.clone()))?;
    match driver.unload() {
        Ok(report) => {
            let findings: Vec<String> = report.findings.iter().map(ToString::to_string).collect();
            for f in &findings {
                tracing::warn!(driver = %name, "driver verifier: {f}");
            }
            tracing::info!(driver = %name, "driver unloaded");
            Ok(DriverUnloaded { name, findings })
        }
        Err(e) => {
            tracing::error!(driver = %name, error = %e, "driver unload");
            Err(e.into())
        }
    }
}

/// The name the host gives a driver: its image's file stem.
fn driver_name(path: &Path) -> String {
    path.file_stem()
        .map_or_else(|| "driver".into(), |s| s.to_string_lossy().into_owned())
}

/// A parameter as `driver list` shows it.
fn param_text(v: &ParamValue) -> String {
    match v {
        ParamValue::Dword(n) => n.to_string(),
        ParamValue::String(s) if matches!(ParamValue::parse(s), ParamValue::String(_)) => s.clone(),
        ParamValue::String(s) => format!("sz:{s}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn flowmon() -> PathBuf {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
        let out = std::env::temp_dir().join(format!("wfpd-flowmon-{}.so", std::process::id()));
        wfp_ffi::compile::build(&wfp_ffi::compile::BuildOptions {
            sources: vec![root.join("examples/drivers/flowmon/flowmon.c")],
            output: out.clone(),
            ..Default::default()
        })
        .expect("building flowmon");
        out
    }

    #[test]
    fn driver_tables_parse_with_typed_params_and_relative_paths() {
        let text = r#"
[policy]
files = ["p.toml"]

[[driver]]
path = "a.so"
params = { Mode = 3, Rule = "block:23", Forced = "dword:7", Text = "sz:12" }

[[driver]]
path = "/abs/b.so"
"#;
        let mut config = crate::config::Config::parse(text, "test").unwrap();
        assert_eq!(config.drivers.len(), 2);
        for d in &mut config.drivers {
            d.resolve(Path::new("/etc/wfpd"));
        }
        assert_eq!(config.drivers[0].path, Path::new("/etc/wfpd/a.so"));
        assert_eq!(config.drivers[1].path, Path::new("/abs/b.so"));
        let p = config.drivers[0].params();
        assert!(p.contains(&("Mode".into(), ParamValue::Dword(3))));
        assert!(p.contains(&("Rule".into(), ParamValue::String("block:23".into()))));
        assert!(p.contains(&("Forced".into(), ParamValue::Dword(7))));
        assert!(p.contains(&("Text".into(), ParamValue::String("12".into()))));
        assert!(crate::config::Config::parse(
            "[policy]\nfiles = [\"p\"]\n[[driver]]\npath = \"a\"\nbogus = 1\n",
            "test"
        )
        .is_err());
    }

    #[test]
    fn drivers_load_at_start_and_unload_at_stop() {
        let so = flowmon();
        let engine = Arc::new(Engine::default());
        let config = DriverConfig {
            path: so.clone(),
            params: BTreeMap::new(),
        };
        let drivers = Drivers::start(&[config], None, &engine).unwrap();
        assert_eq!(drivers.list().len(), 1);
        assert_eq!(engine.filters().len(), 3, "DriverEntry added its filters");
        let findings = drivers.stop();
        assert!(findings.is_empty(), "{findings:?}");
        assert!(engine.filters().is_empty(), "its dynamic session ended");
        let _ = std::fs::remove_file(so);

        let missing = DriverConfig {
            path: "/nonexistent/driver.so".into(),
            params: BTreeMap::new(),
        };
        assert!(Drivers::start(&[missing], None, &engine).is_err());
    }

    #[test]
    fn errors_map_to_documented_status_codes() {
        use std::io::{Error, ErrorKind};
        let io = |kind| DriverError::NoImage {
            path: "/x.so".into(),
            source: Error::from(kind),
        };
        let cases = [
            (DriverError::NotLoaded("a".into()), 404, 0xC000_0225),
            (io(ErrorKind::NotFound), 404, 0xC000_0034),
            (io(ErrorKind::PermissionDenied), 400, 0xC000_0022),
            (
                DriverError::Load(wfp_ffi::LoadError::EntryFailed {
                    path: "/x.so".into(),
                    status: 0xC000_009A,
                }),
                500,
                0xC000_009A,
            ),
            (
                DriverError::Ioctl(wfp_ffi::IoctlError::NotCompleted {
                    driver: "a".into(),
                    timeout: std::time::Duration::from_secs(1),
                }),
                504,
                0xC000_00B5,
            ),
            (DriverError::Stopping, 503, 0xC000_00A3),
        ];
        for (e, status, code) in cases {
            let (s, c, name) = e.code();
            assert_eq!((s, c), (status, code), "{e}");
            assert!(name.starts_with("STATUS_"), "{name}");
        }
    }

    #[test]
    fn a_stopped_registry_refuses_loads_from_every_handle() {
        let engine = Arc::new(Engine::default());
        let drivers = Drivers::start(&[], Some(Path::new("/")), &engine).unwrap();
        let other = drivers.clone();
        assert!(drivers.stop().is_empty());
        // /proc/self/exe resolves to a regular file: only the stop refuses it.
        let e = other
            .load("proc/self/exe", &BTreeMap::new())
            .expect_err("stopped");
        assert!(matches!(e, DriverError::Stopping), "{e}");
        assert!(other.list().is_empty());
        let e = other.unload("exe").expect_err("nothing loaded");
        assert!(matches!(e, DriverError::NotLoaded(_)), "{e}");
    }
}
