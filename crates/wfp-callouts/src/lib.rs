//! # wfp-callouts — built-in callouts
//!
//! Callouts written only against `wfp-core`'s public callout API ([`wfp_core::Callout`], the flow
//! context calls on [`wfp_core::Engine`]), so they double as examples of how to write one. They
//! never parse packets beyond what `layerData` hands them and never depend on a data path; each
//! module doc states the layers, the `layerData` it expects, the filter action type it is meant
//! for, and what it does without the write right. This crate reads no clock (time comes from a
//! [`Clock`] the host sets) and does no I/O.
//!
//! ```text
//!  policy file ─ callout = "wfp.dns-blocker" ─► builtin(name) ─► Builtin { key, flags, make }
//!  host (Rust) ─ DnsBlocker::new(names) / Builtin::make_with(params) ┐  │ register_callout
//!                                                                   ▼  ▼
//!  data path ── Engine::classify(layer, values, meta, layerData) ─► callouts ─┐
//!                                                                             │ flow contexts,
//!  data path ── Engine::flow_abort(flow) ─► flowDeleteFn ─► FlowLog / StreamMonitorLog ─► host drains
//! ```
//!
//! | name | layers | filter action | flags | data path must deliver |
//! |---|---|---|---|---|
//! | `wfp.test.*` ([`test`](mod@test)) | any | any | — | nothing |
//! | `wfp.flow-logger` ([`flow_logger`]) | ALE_FLOW_ESTABLISHED_V4/V6 | INSPECTION | — | FLOW_HANDLE metadata, 5-tuple values; `flow_abort` at flow end |
//! | `wfp.flow-logger.bytes` | STREAM_V4/V6, DATAGRAM_DATA_V4/V6 | INSPECTION | CONDITIONAL_ON_FLOW | `LayerData::Stream` / `LayerData::Packet(UDP payload)` |
//! | `wfp.stream-monitor` ([`stream_monitor`]) | ALE_FLOW_ESTABLISHED_V4/V6 | INSPECTION | — | FLOW_HANDLE metadata, IP_PROTOCOL |
//! | `wfp.stream-monitor.stream` | STREAM_V4/V6 | INSPECTION | CONDITIONAL_ON_FLOW | `LayerData::Stream`, RECEIVE flag on inbound |
//! | `wfp.stream-pattern-blocker` ([`pattern`]) | STREAM_V4/V6 | UNKNOWN | — | `LayerData::Stream`; NEED_MORE_DATA accumulation, partial `countBytesEnforced` |
//! | `wfp.dns-blocker` ([`dns`]) | DATAGRAM_DATA_V4/V6 | UNKNOWN | — | `LayerData::Packet(UDP payload)`, both directions |
//! | `wfp.tls-sni-blocker` ([`tls`]) | STREAM_V4/V6 | UNKNOWN | — | `LayerData::Stream`; NEED_MORE_DATA, DROP/ALLOW_CONNECTION |
//!
//! Configuration: the Rust constructors take it directly ([`DnsBlocker::new`],
//! [`SniBlocker::new`], [`StreamPatternBlocker::new`], ...). Built-ins created by name get the
//! defaults documented on [`all`]; a host that has parameters passes them through
//! [`Builtin::make_with`] or [`builtin_with_config`] (keys in the table on
//! [`builtin_with_config`]). Policy files (`wfp-policy`) give them as `[builtin."NAME"]` tables or
//! a `[[callout]]`'s `params`. The flow logger and stream monitor created by name report to
//! [`FlowLog::global`] and [`StreamMonitorLog::global`], timed by [`Clock::global`].
//!
//! Modules: [`test`](mod@test) (policy-testing callouts), [`flow_logger`], [`stream_monitor`], [`pattern`],
//! [`dns`], [`tls`], [`names`] (name lists), [`clock`].

pub mod clock;
pub mod dns;
pub mod flow_logger;
pub mod names;
pub mod pattern;
pub mod stream_monitor;
mod support;
pub mod test;
pub mod tls;

use std::sync::Arc;

use wfp_core::catalogue::{self, LayerId};
use wfp_core::{Callout, CalloutFlags, Guid};

pub use clock::Clock;
pub use dns::DnsBlocker;
pub use flow_logger::{FlowByteCounter, FlowLog, FlowLogger, FlowRecord};
pub use names::NameSet;
pub use pattern::StreamPatternBlocker;
pub use stream_monitor::{StreamMonitor, StreamMonitorLog, StreamMonitorStream, StreamReport};
pub use tls::SniBlocker;

/// A built-in callout: its name, run-time key, registration flags and a constructor.
#[derive(Debug)]
pub struct Builtin {
    /// The name policy files use (`wfp.test.block`).
    pub name: &'static str,
    /// The callout key (stable, so filters and stored policy can reference it).
    pub key: Guid,
    /// FWP_CALLOUT_FLAG_* the callout registers with.
    pub flags: CalloutFlags,
    /// Whether it has a flowDeleteFn.
    pub flow_delete: bool,
    /// One-line description.
    pub description: &'static str,
    /// Builds a fresh instance.
    pub make: fn() -> Arc<dyn Callout>,
}

impl Builtin {
    /// Builds an instance with parameters (see [`builtin_with_config`] for the accepted keys); no
    /// parameters gives the same callout as [`Builtin::make`].
    pub fn make_with(&self, params: &[(String, String)]) -> Result<Arc<dyn Callout>, ConfigError> {
        configure(self, params)
    }
}

/// Every built-in callout.
///
/// Defaults of the configurable ones when created by name: `wfp.dns-blocker` blocks
/// `*.blocked.example`; `wfp.tls-sni-blocker` blocks `blocked.example` and `*.blocked.example`;
/// `wfp.stream-pattern-blocker` blocks streams containing `X-Block-Me`;
/// `wfp.stream-monitor.stream` captures the first 64 bytes per direction.
pub fn all() -> &'static [Builtin] {
    &BUILTINS
}

/// A built-in callout by name (case-insensitive) or by key.
pub fn builtin(name_or_key: &str) -> Option<&'static Builtin> {
    let key = name_or_key.parse::<Guid>().ok();
    all()
        .iter()
        .find(|b| Some(b.key) == key || b.name.eq_ignore_ascii_case(name_or_key.trim()))
}

/// The callout key a host derives for built-in `name` placed at `layer` when the policy does not
/// give one: `Guid::from_name("builtin-callout", "<name>@<LAYER_NAME>")` (what `wfp-policy` uses
/// for `callout = "<name>"` references without parameters; with parameters its key also covers
/// them). The FLOW_ESTABLISHED halves of the flow logger and stream monitor look their companions
/// up under this key too, and under every key their filters' ADD_FILTER notifications name.
pub fn builtin_key(name: &str, layer: LayerId) -> Option<Guid> {
    let l = catalogue::layer(layer)?;
    Some(Guid::from_name(
        "builtin-callout",
        &format!("{name}@{}", l.name),
    ))
}

/// Builds the built-in `name` with parameters. Accepted keys:
///
/// | callout | key | value |
/// |---|---|---|
/// | `wfp.dns-blocker` | `name` (repeatable, or comma-separated) | `host.example` or `*.example` — replaces the default list; an empty value (`name = ""`) gives an empty list |
/// | `wfp.dns-blocker` | `on_malformed` | `continue` (default) or `block` |
/// | `wfp.tls-sni-blocker` | `name` (repeatable, or comma-separated) | as above, empty value included |
/// | `wfp.tls-sni-blocker` | `on_malformed` | `allow` (default) or `block` |
/// | `wfp.stream-pattern-blocker` | `pattern` (repeatable) | the pattern's UTF-8 bytes — replaces the default |
/// | `wfp.stream-pattern-blocker` | `pattern_hex` (repeatable) | the pattern as hex digits (`00ff10`) |
/// | `wfp.stream-monitor.stream` | `capture_bytes` | bytes kept per direction (0..=65536) |
///
/// The other built-ins take no parameters. Keys are case-sensitive; for non-repeatable keys the
/// last value wins.
pub fn builtin_with_config(
    name: &str,
    params: &[(String, String)],
) -> Result<Arc<dyn Callout>, ConfigError> {
    let b = builtin(name).ok_or_else(|| ConfigError::UnknownCallout {
        name: name.to_string(),
    })?;
    configure(b, params)
}

/// A built-in callout configuration that cannot be used.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// No built-in callout has this name.
    #[error("no built-in callout {name:?}")]
    UnknownCallout {
        /// The name asked for.
        name: String,
    },
    /// The built-in takes no parameter with this key.
    #[error("{callout}: unknown parameter {key:?} (accepted: {accepted})")]
    UnknownParameter {
        /// The built-in.
        callout: &'static str,
        /// The key.
        key: String,
        /// The keys it accepts.
        accepted: &'static str,
    },
    /// A parameter's value cannot be used.
    #[error("{callout}: invalid {key} {value:?}: {reason}")]
    InvalidValue {
        /// The built-in.
        callout: &'static str,
        /// The key.
        key: String,
        /// The value.
        value: String,
        /// Why.
        reason: &'static str,
    },
    /// A host-name entry is malformed.
    #[error("invalid name {name:?}: {reason}")]
    InvalidName {
        /// The entry.
        name: String,
        /// Why.
        reason: &'static str,
    },
    /// A byte pattern cannot be used.
    #[error("invalid pattern {pattern:?}: {reason}")]
    InvalidPattern {
        /// The pattern (lossy UTF-8).
        pattern: String,
        /// Why.
        reason: &'static str,
    },
}

// ----- the table --------------------------------------------------------------------------

/// Default name list of `wfp.dns-blocker`.
pub const DEFAULT_DNS_NAMES: &[&str] = &["*.blocked.example"];
/// Default name list of `wfp.tls-sni-blocker`.
pub const DEFAULT_SNI_NAMES: &[&str] = &["blocked.example", "*.blocked.example"];
/// Default pattern of `wfp.stream-pattern-blocker`.
pub const DEFAULT_PATTERN: &[u8] = b"X-Block-Me";

const fn key(n: u16) -> Guid {
    let mut g = Guid::from_str_const("57465001-0000-4000-8000-000000000000");
    g.0[14] = (n >> 8) as u8;
    g.0[15] = n as u8;
    g
}

static BUILTINS: [Builtin; 11] = [
    test::PERMIT,
    test::BLOCK,
    test::BLOCK_SOFT,
    test::CONTINUE,
    Builtin {
        name: "wfp.flow-logger",
        key: key(0x101),
        flags: CalloutFlags(0),
        flow_delete: true,
        description: "ALE_FLOW_ESTABLISHED: one record per flow (5-tuple, duration, bytes) in FlowLog::global()",
        make: make_flow_logger,
    },
    Builtin {
        name: "wfp.flow-logger.bytes",
        key: key(0x102),
        flags: CalloutFlags::CONDITIONAL_ON_FLOW,
        flow_delete: true,
        description: "STREAM / DATAGRAM_DATA companion of wfp.flow-logger: counts bytes of logged flows",
        make: make_flow_bytes,
    },
    Builtin {
        name: "wfp.stream-monitor",
        key: key(0x103),
        flags: CalloutFlags(0),
        flow_delete: false,
        description: "ALE_FLOW_ESTABLISHED half of the msnmntr sample: selects TCP flows to monitor",
        make: make_stream_monitor,
    },
    Builtin {
        name: "wfp.stream-monitor.stream",
        key: key(0x104),
        flags: CalloutFlags::CONDITIONAL_ON_FLOW,
        flow_delete: true,
        description: "STREAM half of the msnmntr sample: per-direction bytes and first bytes, reported at flow end",
        make: make_stream_monitor_stream,
    },
    Builtin {
        name: "wfp.stream-pattern-blocker",
        key: key(0x105),
        flags: CalloutFlags(0),
        flow_delete: true,
        description: "STREAM: drops connections whose stream contains a pattern (default X-Block-Me), across segments",
        make: make_pattern_blocker,
    },
    Builtin {
        name: "wfp.dns-blocker",
        key: key(0x106),
        flags: CalloutFlags(0),
        flow_delete: false,
        description: "DATAGRAM_DATA: blocks DNS queries for listed names (default *.blocked.example)",
        make: make_dns_blocker,
    },
    Builtin {
        name: "wfp.tls-sni-blocker",
        key: key(0x107),
        flags: CalloutFlags(0),
        flow_delete: true,
        description: "STREAM: drops TLS connections whose ClientHello names a listed server (default blocked.example)",
        make: make_sni_blocker,
    },
];

fn make_flow_logger() -> Arc<dyn Callout> {
    Arc::new(FlowLogger::new(FlowLog::global().clone()))
}
fn make_flow_bytes() -> Arc<dyn Callout> {
    Arc::new(FlowByteCounter::new(FlowLog::global().clone()))
}
fn make_stream_monitor() -> Arc<dyn Callout> {
    Arc::new(StreamMonitor::new(StreamMonitorLog::global().clone()))
}
fn make_stream_monitor_stream() -> Arc<dyn Callout> {
    Arc::new(StreamMonitorStream::new(
        StreamMonitorLog::global().clone(),
        stream_monitor::DEFAULT_CAPTURE,
    ))
}
fn make_pattern_blocker() -> Arc<dyn Callout> {
    Arc::new(pattern::StreamPatternBlocker::with_default())
}
fn make_dns_blocker() -> Arc<dyn Callout> {
    Arc::new(DnsBlocker::with_names(
        NameSet::new(DEFAULT_DNS_NAMES).unwrap_or_default(),
    ))
}
fn make_sni_blocker() -> Arc<dyn Callout> {
    Arc::new(SniBlocker::with_names(
        NameSet::new(DEFAULT_SNI_NAMES).unwrap_or_default(),
    ))
}

// ----- configuration ----------------------------------------------------------------------

fn configure(b: &Builtin, params: &[(String, String)]) -> Result<Arc<dyn Callout>, ConfigError> {
    let accepted = match b.name {
        "wfp.dns-blocker" | "wfp.tls-sni-blocker" => "name, on_malformed",
        "wfp.stream-pattern-blocker" => "pattern, pattern_hex",
        "wfp.stream-monitor.stream" => "capture_bytes",
        _ => "none",
    };
    let invalid = |key: &str, value: &str, reason| ConfigError::InvalidValue {
        callout: b.name,
        key: key.to_string(),
        value: value.to_string(),
        reason,
    };
    for (k, _) in params {
        if !accepted.split(", ").any(|a| a == k) {
            return Err(ConfigError::UnknownParameter {
                callout: b.name,
                key: k.clone(),
                accepted,
            });
        }
    }
    if params.is_empty() {
        return Ok((b.make)());
    }
    let values = |key: &'static str| values_of(params, key);
    let names = |defaults: &[&str]| -> Result<NameSet, ConfigError> {
        let listed: Vec<&str> = values("name")
            .flat_map(|v| v.split(','))
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .collect();
        if listed.is_empty() && values("name").next().is_none() {
            NameSet::new(defaults)
        } else {
            NameSet::new(listed)
        }
    };
    let last = |key: &'static str| values(key).last();
    match b.name {
        "wfp.dns-blocker" => {
            let on = match last("on_malformed") {
                None | Some("continue") => dns::OnMalformed::Continue,
                Some("block") => dns::OnMalformed::Block,
                Some(v) => return Err(invalid("on_malformed", v, "expected continue or block")),
            };
            Ok(Arc::new(
                DnsBlocker::with_names(names(DEFAULT_DNS_NAMES)?).on_malformed(on),
            ))
        }
        "wfp.tls-sni-blocker" => {
            let on = match last("on_malformed") {
                None | Some("allow") => tls::OnMalformed::Allow,
                Some("block") => tls::OnMalformed::Block,
                Some(v) => return Err(invalid("on_malformed", v, "expected allow or block")),
            };
            Ok(Arc::new(
                SniBlocker::with_names(names(DEFAULT_SNI_NAMES)?).on_malformed(on),
            ))
        }
        "wfp.stream-pattern-blocker" => {
            let mut patterns: Vec<Vec<u8>> =
                values("pattern").map(|v| v.as_bytes().to_vec()).collect();
            for v in values("pattern_hex") {
                patterns
                    .push(parse_hex(v).ok_or_else(|| {
                        invalid("pattern_hex", v, "expected pairs of hex digits")
                    })?);
            }
            Ok(Arc::new(StreamPatternBlocker::new(patterns)?))
        }
        "wfp.stream-monitor.stream" => {
            let capture = match last("capture_bytes") {
                None => stream_monitor::DEFAULT_CAPTURE,
                Some(v) => v
                    .trim()
                    .parse::<usize>()
                    .ok()
                    .filter(|n| *n <= stream_monitor::MAX_CAPTURE)
                    .ok_or_else(|| invalid("capture_bytes", v, "expected a number 0..=65536"))?,
            };
            Ok(Arc::new(StreamMonitorStream::new(
                StreamMonitorLog::global().clone(),
                capture,
            )))
        }
        _ => Ok((b.make)()),
    }
}

fn values_of<'a>(
    params: &'a [(String, String)],
    key: &'static str,
) -> impl Iterator<Item = &'a str> + 'a {
    params
        .iter()
        .filter(move |(k, _)| k == key)
        .map(|(_, v)| v.as_str())
}

fn parse_hex(s: &str) -> Option<Vec<u8>> {
    let digits: Vec<u8> = s.bytes().filter(|b| !b.is_ascii_whitespace()).collect();
    if digits.len() % 2 != 0 {
        return None;
    }
    digits
        .chunks(2)
        .map(|pair| {
            let hi = char::from(*pair.first()?).to_digit(16)?;
            let lo = char::from(*pair.get(1)?).to_digit(16)?;
            u8::try_from(hi * 16 + lo).ok()
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_keys_are_unique_and_resolve() {
        for (i, a) in all().iter().enumerate() {
            assert!(builtin(a.name).is_some_and(|b| b.key == a.key));
            assert!(builtin(&a.key.to_string()).is_some_and(|b| b.name == a.name));
            for b in &all()[i + 1..] {
                assert_ne!(a.name, b.name);
                assert_ne!(a.key, b.key);
            }
            let _instance = (a.make)();
        }
        assert!(builtin("WFP.DNS-BLOCKER").is_some());
    }

    #[test]
    fn defaults_are_valid() {
        assert!(NameSet::new(DEFAULT_DNS_NAMES).is_ok());
        assert!(NameSet::new(DEFAULT_SNI_NAMES).is_ok());
        assert!(StreamPatternBlocker::new([DEFAULT_PATTERN]).is_ok());
    }

    #[test]
    fn parameters_are_checked() {
        let p = |k: &str, v: &str| vec![(k.to_string(), v.to_string())];
        assert!(
            builtin_with_config("wfp.dns-blocker", &p("name", "a.example, *.b.example")).is_ok()
        );
        assert!(builtin_with_config("wfp.dns-blocker", &p("name", "")).is_ok());
        assert!(matches!(
            builtin_with_config("wfp.dns-blocker", &p("name", "a..example")),
            Err(ConfigError::InvalidName { .. })
        ));
        assert!(matches!(
            builtin_with_config("wfp.dns-blocker", &p("pattern", "x")),
            Err(ConfigError::UnknownParameter { .. })
        ));
        assert!(matches!(
            builtin_with_config("wfp.tls-sni-blocker", &p("on_malformed", "maybe")),
            Err(ConfigError::InvalidValue { .. })
        ));
        assert!(
            builtin_with_config("wfp.stream-pattern-blocker", &p("pattern_hex", "00 ff 10"))
                .is_ok()
        );
        assert!(
            builtin_with_config("wfp.stream-pattern-blocker", &p("pattern_hex", "0g")).is_err()
        );
        assert!(
            builtin_with_config("wfp.stream-monitor.stream", &p("capture_bytes", "16")).is_ok()
        );
        assert!(
            builtin_with_config("wfp.stream-monitor.stream", &p("capture_bytes", "-1")).is_err()
        );
        assert!(builtin_with_config("wfp.test.block", &p("x", "y")).is_err());
        assert!(builtin_with_config("wfp.test.block", &[]).is_ok());
        assert!(matches!(
            builtin_with_config("nope", &[]),
            Err(ConfigError::UnknownCallout { .. })
        ));
        let dns = builtin("wfp.dns-blocker").unwrap();
        assert!(dns.make_with(&p("name", "x.example")).is_ok());
        assert!(dns.make_with(&p("name", "x..example")).is_err());
        assert_eq!(parse_hex("00ff10"), Some(vec![0, 0xff, 0x10]));
    }

    #[test]
    fn builtin_key_matches_the_policy_derivation() {
        assert_eq!(
            builtin_key("wfp.dns-blocker", wfp_core::layers::DATAGRAM_DATA_V4),
            Some(Guid::from_name(
                "builtin-callout",
                "wfp.dns-blocker@DATAGRAM_DATA_V4"
            ))
        );
        assert_eq!(builtin_key("x", LayerId(9999)), None);
    }
}
