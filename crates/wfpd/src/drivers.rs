//! `[[driver]]`: C callout drivers (built by `wfpctl driver build`) that wfpd loads into its
//! engine at start — after the policy and the persistent objects, before any queue admits
//! traffic — and unloads at stop, after the workers have ended every flow (flowDeleteFn), following
//! WFP's unload protocol (wfp-reference §5.3, bounded; a driver that never finishes is reported and
//! left mapped). What drivers print and what the Driver Verifier finds goes to the log.
//!
//! ```toml
//! [[driver]]
//! path = "flowmon.so"          # relative to the configuration file's directory
//! params = { Mode = 3, Rule = "block:23" }   # the driver's Parameters key (WdfRegistryQuery*)
//! ```

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::Context;
use serde::Deserialize;
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

/// The drivers a daemon hosts.
pub struct Drivers {
    host: DriverHost,
    loaded: Vec<Driver>,
}

impl Drivers {
    /// Loads every configured driver into `engine` (DriverEntry at PASSIVE_LEVEL), in order; on
    /// an error the drivers loaded so far are unloaded again.
    pub fn start(configs: &[DriverConfig], engine: &Arc<Engine>) -> anyhow::Result<Self> {
        let host = DriverHost::new(
            engine.clone(),
            HostConfig {
                echo_log: true,
                ..HostConfig::default()
            },
        );
        let mut loaded = Vec::new();
        for c in configs {
            let options = DriverOptions { params: c.params() };
            let d = host
                .load_with(&c.path, &options)
                .with_context(|| format!("loading driver {}", c.path.display()))?;
            tracing::info!(driver = d.name(), path = %c.path.display(), "driver loaded");
            loaded.push(d);
        }
        Ok(Self { host, loaded })
    }

    /// The loaded drivers (for device-control requests: [`Driver::ioctl`]).
    pub fn drivers(&self) -> &[Driver] {
        &self.loaded
    }

    /// The host the drivers run in.
    pub fn host(&self) -> &DriverHost {
        &self.host
    }

    /// Unloads every driver, last loaded first; logs and returns the Verifier's findings
    /// (`driver: finding`). A driver that does not finish unloading in time is reported as a
    /// finding too (it stays mapped).
    pub fn stop(self) -> Vec<String> {
        let mut findings = Vec::new();
        for d in self.loaded.into_iter().rev() {
            let name = d.name().to_string();
            match d.unload() {
                Ok(report) => {
                    for f in report.findings {
                        tracing::warn!(driver = %name, "driver verifier: {f}");
                        findings.push(format!("{name}: {f}"));
                    }
                    tracing::info!(driver = %name, "driver unloaded");
                }
                Err(e) => {
                    tracing::error!(driver = %name, error = %e, "driver unload");
                    findings.push(format!("{name}: {e}"));
                }
            }
        }
        findings
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
        let drivers = Drivers::start(&[config], &engine).unwrap();
        assert_eq!(drivers.drivers().len(), 1);
        assert_eq!(engine.filters().len(), 3, "DriverEntry added its filters");
        let findings = drivers.stop();
        assert!(findings.is_empty(), "{findings:?}");
        assert!(engine.filters().is_empty(), "its dynamic session ended");
        let _ = std::fs::remove_file(so);

        let missing = DriverConfig {
            path: "/nonexistent/driver.so".into(),
            params: BTreeMap::new(),
        };
        assert!(Drivers::start(&[missing], &engine).is_err());
    }
}
