//! Boot-time filters (§11.3 FWPM_FILTER_FLAG_BOOTTIME): enforced by the kernel from boot until
//! wfpd has loaded its store and put its own rules in place, then removed.
//!
//! ```text
//!  boot ── wfpd-boottime.service: nft -f STATE/boottime.nft ──► table inet wfp_boottime
//!  wfpd start ── BootRules::enforce (the same file, in case the unit did not run)
//!             ── Store::open + load (a corrupt or newer store fails the start here: the table
//!                stays, with the `absent` posture of the queue rules)
//!             ── BootRules::refresh (the file from the store's boot-time filters)
//!             ── queues, workers, queue rules installed ── BootRules::lift (table removed)
//!  API commit that changed boot-time filters ── BootRules::refresh (file rewritten, atomically)
//! ```
//!
//! Lifting comes after the queue rules are installed, so the two overlap for a moment and there
//! is no gap: during the overlap a packet must pass both (the boot-time table runs first, at
//! priority -1). WFP swaps boot-time for persistent filters atomically; iptables cannot join an
//! nft transaction, so the overlap (never more permissive than either side) stands in for it.
//!
//! [`compile`] turns the filters into the table; `check` refuses at add what it cannot express.

pub mod compile;

use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;

use wfp_core::catalogue;
use wfp_core::condition::Condition;
use wfp_core::{Engine, FilterFlags, FilterSpec};

pub use compile::{BootError, TABLE};

/// Why the boot-time ruleset could not be written or applied.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BootRulesError {
    /// A boot-time filter cannot be compiled (only possible for filters not added through the
    /// API, which checks at add).
    #[error(transparent)]
    Compile(#[from] BootError),
    /// Writing the ruleset file failed.
    #[error("writing {path}: {source}")]
    Write {
        /// The file.
        path: PathBuf,
        /// The error.
        #[source]
        source: io::Error,
    },
    /// `nft` could not run or refused the script.
    #[error("nft {what}: {detail}")]
    Nft {
        /// What was being done.
        what: &'static str,
        /// Its error output.
        detail: String,
    },
}

/// Refuses at add (`POST /v1/filters`) a boot-time filter that the kernel table cannot express,
/// with the WFP status of [`BootError::code`]. Filters without BOOTTIME, and specs the engine will
/// refuse anyway (unknown layer, bad condition types), pass: the engine answers those.
pub fn check(spec: &FilterSpec) -> Result<(), BootError> {
    if !spec.flags.contains(FilterFlags::BOOTTIME) {
        return Ok(());
    }
    let Some(layer) = catalogue::layer(spec.layer) else {
        return Ok(());
    };
    let Ok(conditions) = spec
        .conditions
        .iter()
        .map(|c| Condition::bind(layer, c))
        .collect::<Result<Vec<_>, _>>()
    else {
        return Ok(());
    };
    compile::matches(&compile::BootFilter {
        id: 0,
        layer: spec.layer,
        sublayer: spec.sublayer,
        action: spec.action,
        flags: spec.flags,
        conditions: &conditions,
    })
    .map(drop)
}

/// The `nft -f` script of the engine's boot-time filters as last committed.
pub fn script_of(engine: &Engine) -> Result<(u64, String), BootError> {
    let set = engine.boottime();
    let filters: Vec<compile::BootFilter<'_>> = set
        .filters
        .iter()
        .map(|f| compile::BootFilter::from(&**f))
        .collect();
    Ok((set.generation, compile::script(&filters)?))
}

/// wfpd's start, before the store is opened: enforces the saved boot-time table (so the
/// boot-time filters hold until [`BootRules::lift`], even when the boot unit did not run).
/// `None` without a ruleset file path (no store configured).
pub fn at_start(config: &crate::api::StoreConfig) -> Option<std::sync::Arc<BootRules>> {
    let rules = BootRules::new(config.boottime_rules_path()?);
    match rules.enforce() {
        Ok(true) => tracing::info!(file = %rules.path.display(), "boot-time filters enforced"),
        Ok(false) => {}
        Err(e) => tracing::error!(error = %e, "boot-time filters NOT enforced"),
    }
    Some(std::sync::Arc::new(rules))
}

/// What a failed start adds to its error: the boot-time table stays.
pub fn held_note(rules: Option<&BootRules>) -> String {
    match rules {
        Some(_) if BootRules::is_enforced() => format!(
            "the store could not be loaded; the boot-time filters (table inet {TABLE}) stay \
             enforced"
        ),
        _ => "the store could not be loaded; no boot-time filters are enforced".to_owned(),
    }
}

/// The boot-time ruleset file and what was last written to it.
#[derive(Debug)]
pub struct BootRules {
    path: PathBuf,
    /// The engine's boot-time generation last written (`None`: not yet this run).
    written: Mutex<Option<u64>>,
    /// [`BootRules::enforce`] loaded the table (so [`BootRules::lift_logged`] removes it).
    loaded: AtomicBool,
}

impl BootRules {
    /// Rules kept in `path` (`[store] boottime_rules`).
    pub fn new(path: PathBuf) -> Self {
        Self {
            path,
            written: Mutex::new(None),
            loaded: AtomicBool::new(false),
        }
    }

    /// The file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Loads the file into the kernel (before the store is opened). Ok(false): there is none.
    pub fn enforce(&self) -> Result<bool, BootRulesError> {
        if !self.path.exists() {
            return Ok(false);
        }
        let text = std::fs::read_to_string(&self.path).map_err(|source| BootRulesError::Write {
            path: self.path.clone(),
            source,
        })?;
        // The unit may have loaded it even if this load fails: lift it either way.
        self.loaded.store(true, Ordering::Relaxed);
        nft("loading the boot-time table", &text)?;
        Ok(true)
    }

    /// Rewrites the file when the engine's boot-time filters changed since the last write
    /// (write to a temporary file, fsync, rename); without boot-time filters the file is removed
    /// (the boot unit then does nothing). Ok(true) when it changed the file.
    pub fn refresh(&self, engine: &Engine) -> Result<bool, BootRulesError> {
        let mut written = self.written.lock().unwrap_or_else(|e| e.into_inner());
        let generation = engine.boottime().generation;
        if *written == Some(generation) {
            return Ok(false);
        }
        let (generation, text) = script_of(engine)?;
        let result = if engine.boottime().filters.is_empty() {
            remove_durably(&self.path)
        } else {
            write_atomic(&self.path, &text)
        };
        result.map_err(|source| BootRulesError::Write {
            path: self.path.clone(),
            source,
        })?;
        *written = Some(generation);
        Ok(true)
    }

    /// The store is loaded: rewrites the file from it (the engine's boot-time filters) when it
    /// differs, logging rather than failing (the previous file stays).
    pub fn after_store(&self, engine: &Engine) {
        if let Err(e) = self.refresh(engine) {
            tracing::error!(error = %e, "boot-time ruleset not rewritten at start");
        }
    }

    /// wfpd's rules are in place: lifts the table, logging a failure (the table then stays,
    /// which is never more permissive).
    pub fn lift_logged(&self) {
        if !self.loaded.load(Ordering::Relaxed) {
            return;
        }
        match self.lift() {
            Ok(()) => tracing::info!("boot-time filters lifted (wfpd's policy is in place)"),
            Err(e) => tracing::error!(error = %e, "boot-time table not removed"),
        }
    }

    /// Removes the boot-time table (wfpd's own rules are in place). No table is not an error.
    pub fn lift(&self) -> Result<(), BootRulesError> {
        nft(
            "removing the boot-time table",
            &format!("table inet {TABLE}\ndelete table inet {TABLE}\n"),
        )
    }

    /// Whether the table is in the kernel now.
    pub fn is_enforced() -> bool {
        Command::new("nft")
            .args(["list", "table", "inet", TABLE])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    }
}

fn sync_parent(path: &Path) -> io::Result<()> {
    match path.parent().filter(|d| !d.as_os_str().is_empty()) {
        Some(dir) => std::fs::File::open(dir)?.sync_all(),
        None => Ok(()),
    }
}

fn remove_durably(path: &Path) -> io::Result<()> {
    match std::fs::remove_file(path) {
        Ok(()) => sync_parent(path),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e),
    }
}

fn write_atomic(path: &Path, text: &str) -> io::Result<()> {
    let tmp = path.with_extension("nft.tmp");
    {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(text.as_bytes())?;
        f.sync_all()?;
    }
    std::fs::rename(&tmp, path)?;
    sync_parent(path)
}

/// Runs `nft -f -` with `script` on stdin (one kernel transaction).
fn nft(what: &'static str, script: &str) -> Result<(), BootRulesError> {
    let fail = |detail: String| BootRulesError::Nft { what, detail };
    let mut child = Command::new("nft")
        .args(["-f", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| fail(format!("cannot run nft: {e}")))?;
    if let Some(mut stdin) = child.stdin.take() {
        stdin
            .write_all(script.as_bytes())
            .map_err(|e| fail(e.to_string()))?;
    }
    let out = child.wait_with_output().map_err(|e| fail(e.to_string()))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(fail(String::from_utf8_lossy(&out.stderr).trim().to_owned()))
    }
}
