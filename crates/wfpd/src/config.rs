//! The daemon's configuration file: TOML, every table `deny_unknown_fields`, fail-closed
//! defaults.
//!
//! ```toml
//! [policy]
//! files = ["/etc/wfpd/policy.toml"]   # applied in order, in one transaction
//!
//! [queues]
//! first = 0                 # queue numbers first..=last, one worker thread each
//! last = 1                  # (--queue-balance 0:1: the kernel spreads flows over them)
//! max_len = 1024            # NFQA_CFG_QUEUE_MAXLEN
//! coalesce_verdicts = true  # identical consecutive verdicts go out as one batch verdict
//! gso = false               # NFQA_CFG_F_GSO: super-segments queued unsegmented (default false)
//!
//! [rules]
//! manage = true             # install WFP_IN/OUT/FWD at start, remove them at stop
//! hooks = [ { hook = "OUTPUT", matches = ["-o", "lo"] }, { hook = "INPUT" } ]
//! self_mark = 0x20000000    # injected packets: raw sockets with this mark, skipped by the rules
//!
//! [verdicts]
//! no_match = "permit"       # brief decision 3
//! malformed = "block"
//!
//! [posture]                 # every value defaults to "fail-closed"
//! absent = "fail-closed"    # fail-open: --queue-bypass (traffic passes while wfpd is not running)
//! overloaded = "fail-closed"# fail-open: NFQA_CFG_F_FAIL_OPEN (a full queue accepts new packets)
//! hung = "fail-closed"      # fail-open / fail-closed: the watchdog accepts / drops what a stuck
//!                           # worker holds; "exit": the daemon exits and `absent` applies
//! verdict_deadline_ms = 2000
//! internal_error = "fail-closed"  # a panic while deciding a packet: drop it (fail-open: accept)
//! pended = "fail-closed"    # a packet a callout pended past verdict_deadline_ms (fail-open: accept)
//!
//! [identity]
//! resolve = true            # ALE_APP_ID / ALE_USER_ID from socket diagnostics and /proc
//!
//! [stats]
//! file = "/run/wfpd/stats.json"   # written on SIGUSR1, every interval_secs, and at exit
//! interval_secs = 10
//!
//! [log]
//! level = "info"
//! ```

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;
use wfp_nfqueue::rules::{ChainHook, Family, HookRule, QueueTarget, RuleSet};
use wfp_nfqueue::{CopyMode, QueueConfig, Verdict as NfVerdict};
use wfp_shim::{ShimConfig, Verdict};

/// Errors of reading or checking a configuration file.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// The TOML is malformed, has an unknown key or a value of the wrong type.
    #[error("{origin}:{line}:{column}: {message}")]
    Parse {
        /// The file.
        origin: String,
        /// 1-based line (0 when unknown).
        line: usize,
        /// 1-based column (0 when unknown).
        column: usize,
        /// What is wrong.
        message: String,
    },
    /// The values are well-formed but unusable together.
    #[error("{origin}: invalid configuration: {reason}")]
    Invalid {
        /// The file.
        origin: String,
        /// What is wrong.
        reason: String,
    },
}

/// What to do when the daemon cannot inspect a packet.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Posture {
    /// Drop what cannot be inspected (the default).
    #[default]
    FailClosed,
    /// Accept it without inspection (counted as a fail-open event).
    FailOpen,
}

/// What the watchdog does about a worker stuck on one packet longer than the deadline.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum HungPosture {
    /// Drop every packet waiting in the stuck worker's queue, repeatedly while it stays stuck.
    #[default]
    FailClosed,
    /// Accept every packet waiting in the stuck worker's queue (counted as fail-open events).
    FailOpen,
    /// Exit the daemon (status 3): the kernel unbinds its queues and the `absent` posture applies.
    Exit,
}

/// A verdict named in the configuration.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Action {
    /// Let the packet through.
    Permit,
    /// Drop it.
    Block,
}

impl Action {
    /// The shim's verdict.
    pub fn shim(self) -> Verdict {
        match self {
            Self::Permit => Verdict::Permit,
            Self::Block => Verdict::Block,
        }
    }
}

/// The whole file.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct Config {
    /// Policy files.
    pub policy: PolicyConfig,
    /// Queues and workers.
    #[serde(default)]
    pub queues: QueuesConfig,
    /// iptables rules.
    #[serde(default)]
    pub rules: RulesConfig,
    /// Default verdicts.
    #[serde(default)]
    pub verdicts: VerdictsConfig,
    /// Failure postures.
    #[serde(default)]
    pub posture: PostureConfig,
    /// Process identity for the ALE layers.
    #[serde(default)]
    pub identity: IdentityConfig,
    /// The statistics file.
    #[serde(default)]
    pub stats: StatsConfig,
    /// Logging.
    #[serde(default)]
    pub log: LogConfig,
    /// The local management API.
    #[serde(default)]
    pub api: crate::api::ApiConfig,
    /// Persistent objects.
    #[serde(default)]
    pub store: crate::api::StoreConfig,
    /// Flow offload (`docs/offload.md`).
    #[serde(default)]
    pub offload: crate::offload::OffloadConfig,
    /// C callout drivers loaded at start (`[[driver]]`).
    #[serde(default, rename = "driver")]
    pub drivers: Vec<crate::drivers::DriverConfig>,
    /// The configuration file's directory (set by [`Config::load`]): relative driver paths given
    /// to the management API are relative to it.
    #[serde(skip)]
    pub dir: Option<PathBuf>,
}

/// `[policy]`.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct PolicyConfig {
    /// Policy files (wfp-policy TOML), applied in order in one transaction; relative paths are
    /// relative to the configuration file's directory. At least one.
    pub files: Vec<PathBuf>,
}

/// `[queues]`.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
#[non_exhaustive]
pub struct QueuesConfig {
    /// First queue number. Default 0.
    pub first: u16,
    /// Last queue number (default: `first`). More than one queue: `--queue-balance`.
    pub last: Option<u16>,
    /// Packets the kernel holds per queue before it drops (or, with `overloaded = "fail-open"`,
    /// accepts) new ones. Default 1024.
    pub max_len: u32,
    /// Bytes of each packet copied to the daemon. Default 65535 (whole packets).
    pub copy_range: u32,
    /// Packets read per `recvmmsg(2)`. Default 32.
    pub batch: usize,
    /// Socket receive buffer in bytes. Default 4 MiB.
    pub recv_buffer: u32,
    /// Ask for conntrack attributes (`NFQA_CFG_F_CONNTRACK`; dropped silently when the kernel
    /// lacks it). Default true.
    pub conntrack: bool,
    /// Ask for the socket owner's uid/gid (`NFQA_CFG_F_UID_GID`). Default true.
    pub uid_gid: bool,
    /// Send consecutive identical verdicts as one batch verdict where that decides exactly the
    /// same packets (see `wfp_nfqueue::QueueConfig::coalesce_verdicts`). Default true.
    pub coalesce_verdicts: bool,
    /// Queue GSO super-packets without segmenting them (`NFQA_CFG_F_GSO`): a super-segment
    /// NFQUEUE can copy whole (at most 65531 bytes) reaches the shim whole (accepted and counted
    /// as a super-segment, its checksum possibly unfilled) and gets one verdict; a longer one
    /// (TSO devices build them up to their `tso_max_size`: 512 KiB on loopback) is not inspected
    /// and gets `[verdicts] truncated` (block by default: measured, bulk TCP on loopback then
    /// stalls; wfpd warns at start). Default false: the kernel segments such packets before
    /// queueing them (every segment classified on its own). The kernel never drops this flag
    /// silently (`wfp_nfqueue::QueueConfig::require_flags`).
    pub gso: bool,
}

impl Default for QueuesConfig {
    fn default() -> Self {
        Self {
            first: 0,
            last: None,
            max_len: 1024,
            copy_range: 65535,
            batch: 32,
            recv_buffer: 4 << 20,
            conntrack: true,
            uid_gid: true,
            coalesce_verdicts: true,
            gso: false,
        }
    }
}

/// One hook of `[rules]`.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct HookConfig {
    /// `INPUT`, `OUTPUT` or `FORWARD`.
    pub hook: String,
    /// iptables match arguments for the hook's NFQUEUE rule (e.g. `["-o", "lo"]`). Default none:
    /// all traffic of the hook.
    #[serde(default)]
    pub matches: Vec<String>,
}

/// `[rules]`.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
#[non_exhaustive]
pub struct RulesConfig {
    /// Install the rules at start and remove them at stop. False: the administrator manages
    /// rules (they must send traffic to the configured queues). Default true.
    pub manage: bool,
    /// Leave the rules in place at a clean stop, so the `absent` posture applies until the next
    /// start (instead of traffic passing uninspected). Default false.
    pub keep_on_stop: bool,
    /// Chain prefix. Default `WFP`.
    pub chain_prefix: String,
    /// The table. Default `filter`.
    pub table: String,
    /// Also install ip6tables rules. Default false.
    pub ipv6: bool,
    /// Hooks. Default INPUT, OUTPUT and FORWARD, all traffic.
    pub hooks: Vec<HookConfig>,
    /// Mark bit set on every accepted packet, so that `security`-table rules count packets
    /// accepted without inspection (bypass while absent, fail-open overflow). 0 disables the
    /// accounting. Default `0x40000000`.
    pub accounting_mark: u32,
    /// Lower the MSS of TCP SYNs through the hooks to this value, so that every TCP segment fits
    /// what NFQUEUE delivers whole (65531 bytes; only loopback's 64 KiB MTU exceeds it). 0
    /// disables the clamp. Default 65000.
    pub clamp_mss: u16,
    /// Mark of the packets callouts inject (sent through raw sockets); the rules return for it
    /// before queueing, so wfpd never classifies its own packets twice (§10.4 "injected by
    /// self"). Must not share bits with `accounting_mark`. 0 disables injection. Default
    /// `0x20000000`.
    pub self_mark: u32,
}

impl Default for RulesConfig {
    fn default() -> Self {
        Self {
            manage: true,
            keep_on_stop: false,
            chain_prefix: "WFP".to_owned(),
            table: "filter".to_owned(),
            ipv6: false,
            hooks: ["INPUT", "OUTPUT", "FORWARD"]
                .iter()
                .map(|h| HookConfig {
                    hook: (*h).to_owned(),
                    matches: Vec::new(),
                })
                .collect(),
            accounting_mark: 0x4000_0000,
            clamp_mss: 65000,
            self_mark: 0x2000_0000,
        }
    }
}

/// `[verdicts]`.
#[derive(Clone, Copy, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
#[non_exhaustive]
pub struct VerdictsConfig {
    /// A layer where no filter decides (`FWP_ACTION_NONE_NO_MATCH`). Default permit.
    pub no_match: Action,
    /// A packet that cannot be parsed. Default block.
    pub malformed: Action,
    /// A packet queued at a hook other than INPUT, OUTPUT or FORWARD. Default block.
    pub other_hook: Action,
    /// A packet longer than NFQUEUE can copy (65531 bytes), so not inspectable whole. Default
    /// block.
    pub truncated: Action,
}

impl Default for VerdictsConfig {
    fn default() -> Self {
        Self {
            no_match: Action::Permit,
            malformed: Action::Block,
            other_hook: Action::Block,
            truncated: Action::Block,
        }
    }
}

/// `[posture]`: what happens when the daemon cannot inspect traffic. Fail-closed everywhere
/// unless configured.
#[derive(Clone, Copy, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
#[non_exhaustive]
pub struct PostureConfig {
    /// No daemon bound to the queue (not started, crashed, killed).
    pub absent: Posture,
    /// The queue is full.
    pub overloaded: Posture,
    /// A worker is stuck on one packet longer than `verdict_deadline_ms`.
    pub hung: HungPosture,
    /// The per-packet verdict deadline in milliseconds. Default 2000.
    pub verdict_deadline_ms: u64,
    /// A panic while deciding a packet (contained per packet).
    pub internal_error: Posture,
    /// A packet held while a callout pended its classify, still pended after
    /// `verdict_deadline_ms`.
    pub pended: Posture,
}

impl Default for PostureConfig {
    fn default() -> Self {
        Self {
            absent: Posture::FailClosed,
            overloaded: Posture::FailClosed,
            hung: HungPosture::FailClosed,
            verdict_deadline_ms: 2000,
            internal_error: Posture::FailClosed,
            pended: Posture::FailClosed,
        }
    }
}

/// `[identity]`.
#[derive(Clone, Copy, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
#[non_exhaustive]
pub struct IdentityConfig {
    /// Look up the owning process of each new flow (ALE_APP_ID, ALE_USER_ID, processId).
    /// Default true.
    pub resolve: bool,
    /// Sockets cached per worker. Default 4096.
    pub cache_size: usize,
}

impl Default for IdentityConfig {
    fn default() -> Self {
        Self {
            resolve: true,
            cache_size: 4096,
        }
    }
}

/// `[stats]`.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
#[non_exhaustive]
pub struct StatsConfig {
    /// Where to write the statistics (JSON). Default: nowhere (SIGUSR1 still logs them).
    pub file: Option<PathBuf>,
    /// Write the file (and log the summary) this often, in seconds, when a file is configured
    /// (0: only on SIGUSR1 and at exit). Default 10.
    pub interval_secs: u64,
}

impl Default for StatsConfig {
    fn default() -> Self {
        Self {
            file: None,
            interval_secs: 10,
        }
    }
}

/// `[log]`.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
#[non_exhaustive]
pub struct LogConfig {
    /// `error`, `warn`, `info`, `debug` or `trace`. Default `info`.
    pub level: String,
    /// Log each finished flow and stream report of the flow-logger / stream-monitor callouts.
    /// Default true.
    pub flows: bool,
}

impl Default for LogConfig {
    fn default() -> Self {
        Self {
            level: "info".to_owned(),
            flows: true,
        }
    }
}

impl Config {
    /// Reads and checks a configuration file; relative policy paths become relative to its
    /// directory.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_owned(),
            source,
        })?;
        let mut config = Self::parse(&text, &path.display().to_string())?;
        if let Some(dir) = path.parent() {
            for file in &mut config.policy.files {
                if file.is_relative() {
                    *file = dir.join(&*file);
                }
            }
            config.drivers.iter_mut().for_each(|d| d.resolve(dir));
            config.dir = std::path::absolute(dir).ok();
        }
        Ok(config)
    }

    /// Parses and checks configuration text; `origin` names it in errors.
    pub fn parse(text: &str, origin: &str) -> Result<Self, ConfigError> {
        let config: Self = toml::from_str(text).map_err(|e| {
            let (line, column) = e.span().map_or((0, 0), |span| position(text, span.start));
            ConfigError::Parse {
                origin: origin.to_owned(),
                line,
                column,
                message: e.message().to_owned(),
            }
        })?;
        config.check(origin)?;
        Ok(config)
    }

    fn check(&self, origin: &str) -> Result<(), ConfigError> {
        let invalid = |reason: String| ConfigError::Invalid {
            origin: origin.to_owned(),
            reason,
        };
        if self.policy.files.is_empty() {
            return Err(invalid("policy.files names no file".to_owned()));
        }
        if self.last_queue() < self.queues.first {
            return Err(invalid("queues.last is below queues.first".to_owned()));
        }
        if self.queues.max_len == 0 {
            return Err(invalid("queues.max_len must be at least 1".to_owned()));
        }
        if self.queues.batch == 0 || self.queues.batch > 1024 {
            return Err(invalid("queues.batch must be in 1..=1024".to_owned()));
        }
        if self.queues.copy_range < 60 || self.queues.copy_range > 65535 {
            return Err(invalid(
                "queues.copy_range must be in 60..=65535 (headers are needed)".to_owned(),
            ));
        }
        if self.posture.verdict_deadline_ms == 0 {
            return Err(invalid(
                "posture.verdict_deadline_ms must be positive".to_owned(),
            ));
        }
        if self.rules.hooks.is_empty() {
            return Err(invalid("rules.hooks is empty".to_owned()));
        }
        for hook in &self.rules.hooks {
            if parse_hook(&hook.hook).is_none() {
                return Err(invalid(format!(
                    "rules.hooks: unknown hook {:?} (INPUT, OUTPUT or FORWARD)",
                    hook.hook
                )));
            }
        }
        if parse_level(&self.log.level).is_none() {
            return Err(invalid(format!(
                "log.level {:?} is not error, warn, info, debug or trace",
                self.log.level
            )));
        }
        // Let the rule set validate prefix, table and match arguments now, not at start — with
        // the accounting mark as configured, installed or not (a posture change installs it).
        let mut rules = self.rule_set();
        rules.accounting_mark = Some(self.rules.accounting_mark).filter(|&m| m != 0);
        rules.check().map_err(|e| invalid(format!("rules: {e}")))?;
        Ok(())
    }

    /// The last queue number.
    pub fn last_queue(&self) -> u16 {
        self.queues.last.unwrap_or(self.queues.first)
    }

    /// Every queue number served.
    pub fn queue_numbers(&self) -> std::ops::RangeInclusive<u16> {
        self.queues.first..=self.last_queue()
    }

    /// The configuration of queue `num`.
    pub fn queue_config(&self, num: u16) -> QueueConfig {
        let mut q = QueueConfig::new(num);
        q.copy_mode = CopyMode::Packet(self.queues.copy_range);
        q.max_len = self.queues.max_len;
        q.flags.fail_open = self.posture.overloaded == Posture::FailOpen;
        q.flags.conntrack = self.queues.conntrack;
        q.flags.uid_gid = self.queues.uid_gid;
        q.flags.gso = self.queues.gso;
        q.recv_buffer_bytes = self.queues.recv_buffer;
        q.batch_slots = self.queues.batch;
        q.coalesce_verdicts = self.queues.coalesce_verdicts;
        q.recv_timeout = Some(Duration::from_millis(250));
        q.malformed_verdict = match self.verdicts.malformed {
            Action::Permit => NfVerdict::Accept,
            Action::Block => NfVerdict::Drop,
        };
        q.panic_verdict = match self.posture.internal_error {
            Posture::FailOpen => NfVerdict::Accept,
            Posture::FailClosed => NfVerdict::Drop,
        };
        q
    }

    /// The iptables rules.
    pub fn rule_set(&self) -> RuleSet {
        let first = self.queues.first;
        let last = self.last_queue();
        let target = if first == last {
            QueueTarget::Num(first)
        } else {
            QueueTarget::Balance { first, last }
        };
        let mut rules = RuleSet::new(target);
        rules.chain_prefix.clone_from(&self.rules.chain_prefix);
        rules.table.clone_from(&self.rules.table);
        if self.rules.ipv6 {
            rules.families = vec![Family::Ipv4, Family::Ipv6];
        }
        rules.hooks = self
            .rules
            .hooks
            .iter()
            .filter_map(|h| {
                Some(HookRule {
                    hook: parse_hook(&h.hook)?,
                    matches: h.matches.clone(),
                })
            })
            .collect();
        rules.bypass = self.posture.absent == Posture::FailOpen;
        rules.accounting_mark = self
            .kernel_may_accept_unseen()
            .then_some(self.rules.accounting_mark)
            .filter(|&m| m != 0);
        rules.clamp_mss = (self.rules.clamp_mss != 0).then_some(self.rules.clamp_mss);
        rules.self_mark = (self.rules.self_mark != 0).then_some(self.rules.self_mark);
        rules
    }

    /// Whether a posture lets the kernel accept a queued packet without wfpd's verdict:
    /// `absent = "fail-open"` (`--queue-bypass`) or `overloaded = "fail-open"` (a full
    /// `FAIL_OPEN` queue). Only then are the accounting chains installed
    /// ([`RuleSet::accounting_mark`]): otherwise they would count nothing, and every packet at the
    /// hook — an offloaded one too (`docs/offload.md`) — would cross one more nf_tables base chain
    /// (`security`) for them.
    pub fn kernel_may_accept_unseen(&self) -> bool {
        self.posture.absent == Posture::FailOpen || self.posture.overloaded == Posture::FailOpen
    }

    /// The shim's configuration (default verdicts).
    pub fn shim_config(&self) -> ShimConfig {
        let mut config = ShimConfig {
            no_match: self.verdicts.no_match.shim(),
            malformed: self.verdicts.malformed.shim(),
            ..ShimConfig::default()
        };
        if self.offload.enabled {
            crate::offload::lengthen_timeouts(&mut config);
        }
        config
    }

    /// The log level.
    pub fn log_level(&self) -> tracing::Level {
        parse_level(&self.log.level).unwrap_or(tracing::Level::INFO)
    }
}

fn parse_hook(name: &str) -> Option<ChainHook> {
    match name.to_ascii_uppercase().as_str() {
        "INPUT" => Some(ChainHook::Input),
        "OUTPUT" => Some(ChainHook::Output),
        "FORWARD" => Some(ChainHook::Forward),
        _ => None,
    }
}

fn parse_level(level: &str) -> Option<tracing::Level> {
    match level.to_ascii_lowercase().as_str() {
        "error" => Some(tracing::Level::ERROR),
        "warn" => Some(tracing::Level::WARN),
        "info" => Some(tracing::Level::INFO),
        "debug" => Some(tracing::Level::DEBUG),
        "trace" => Some(tracing::Level::TRACE),
        _ => None,
    }
}

fn position(text: &str, offset: usize) -> (usize, usize) {
    let before = text.get(..offset.min(text.len())).unwrap_or(text);
    let line = before.matches('\n').count() + 1;
    let column = before
        .rfind('\n')
        .map_or(before.len(), |i| before.len() - i - 1)
        + 1;
    (line, column)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn minimal_config_is_fail_closed_everywhere() {
        let c = Config::parse("[policy]\nfiles = [\"p.toml\"]\n", "c.toml").expect("parse");
        assert_eq!(c.posture.absent, Posture::FailClosed);
        assert_eq!(c.posture.overloaded, Posture::FailClosed);
        assert_eq!(c.posture.hung, HungPosture::FailClosed);
        assert_eq!(c.posture.internal_error, Posture::FailClosed);
        let q = c.queue_config(0);
        assert!(!q.flags.fail_open);
        assert!(!q.flags.gso, "GSO stays off unless asked for");
        assert_eq!(q.panic_verdict, NfVerdict::Drop);
        let rules = c.rule_set();
        assert!(!rules.bypass);
        assert_eq!(rules.hooks.len(), 3);
        // Fail-closed everywhere: no packet passes the queue rule unseen, nothing to count.
        assert!(!c.kernel_may_accept_unseen());
        assert_eq!(rules.accounting_mark, None);
        assert_eq!(rules.clamp_mss, Some(65000));
        assert_eq!(c.shim_config().no_match, Verdict::Permit);
        for posture in ["absent", "overloaded"] {
            let text = format!("[policy]\nfiles = [\"p\"]\n[posture]\n{posture} = \"fail-open\"\n");
            let c = Config::parse(&text, "c.toml").expect("parse");
            assert_eq!(c.rule_set().accounting_mark, Some(0x4000_0000), "{posture}");
        }
    }

    #[test]
    fn postures_map_to_kernel_knobs() {
        let text = r#"
[policy]
files = ["a.toml", "b.toml"]
[queues]
first = 2
last = 3
max_len = 4
gso = true
[rules]
hooks = [ { hook = "output", matches = ["-o", "lo"] } ]
accounting_mark = 0
[posture]
absent = "fail-open"
overloaded = "fail-open"
hung = "exit"
internal_error = "fail-open"
"#;
        let c = Config::parse(text, "c.toml").expect("parse");
        assert!(c.queue_config(2).flags.fail_open);
        assert!(c.queue_config(2).flags.gso);
        assert!(c.queue_config(3).flags.gso);
        assert_eq!(c.queue_config(2).panic_verdict, NfVerdict::Accept);
        let rules = c.rule_set();
        assert!(rules.bypass);
        assert_eq!(rules.target, QueueTarget::Balance { first: 2, last: 3 });
        assert_eq!(
            rules.target_args(),
            ["--queue-balance", "2:3", "--queue-bypass"]
        );
        assert_eq!(rules.accounting_mark, None);
        assert_eq!(c.queue_numbers().count(), 2);
    }

    #[test]
    fn unknown_keys_and_bad_values_are_rejected_with_positions() {
        let e = Config::parse(
            "[policy]\nfiles = [\"p\"]\n[posture]\nabsnet = \"fail-open\"\n",
            "c",
        )
        .expect_err("unknown key");
        assert!(matches!(e, ConfigError::Parse { line: 4, .. }), "{e}");
        assert!(e.to_string().contains("absnet"), "{e}");
        let e = Config::parse(
            "[policy]\nfiles = [\"p\"]\n[posture]\nabsent = \"open\"\n",
            "c",
        )
        .expect_err("bad value");
        assert!(matches!(e, ConfigError::Parse { .. }), "{e}");
        let e = Config::parse("[policy]\nfiles = []\n", "c").expect_err("no files");
        assert!(matches!(e, ConfigError::Invalid { .. }), "{e}");
        let e = Config::parse(
            "[policy]\nfiles = [\"p\"]\n[rules]\nhooks = [ { hook = \"PREROUTING\" } ]\n",
            "c",
        )
        .expect_err("bad hook");
        assert!(e.to_string().contains("PREROUTING"), "{e}");
        let e = Config::parse(
            "[policy]\nfiles = [\"p\"]\n[rules]\nhooks = [ { hook = \"INPUT\", matches = [\"-j\", \"ACCEPT\"] } ]\n",
            "c",
        )
        .expect_err("jump in matches");
        assert!(e.to_string().contains("jump"), "{e}");
        assert!(Config::parse(
            "[policy]\nfiles = [\"p\"]\n[queues]\nfirst = 3\nlast = 1\n",
            "c"
        )
        .is_err());
        let e = Config::parse("[policy]\nfiles = [\"p\"]\n[queues]\ngso = \"yes\"\n", "c")
            .expect_err("gso is a boolean");
        assert!(matches!(e, ConfigError::Parse { line: 4, .. }), "{e}");
        assert!(
            Config::parse("[policy]\nfiles = [\"p\"]\n[log]\nlevel = \"loud\"\n", "c").is_err()
        );
        assert!(Config::parse("", "c").is_err(), "policy is required");
    }
}
