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
//!  host (Rust) ─ DnsBlocker::new(names) / Builtin::make_with(&host, params) ┐  │ register_callout
//!                                                                         ▼  ▼
//!  data path ── Engine::classify(layer, values, meta, layerData) ─► callouts ─┐
//!                                                                             │ flow contexts,
//!  data path ── Engine::flow_abort(flow) ─► flowDeleteFn ─► host.flow_log / host.stream_log ─► host drains
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
//! | `wfp.pending-inspector` ([`pending_inspector`]) | ALE_AUTH_CONNECT_V4/V6, ALE_AUTH_RECV_ACCEPT_V4/V6, OUTBOUND/INBOUND_TRANSPORT_V4/V6 | TERMINATING | — | COMPLETION_HANDLE (pend), reauthorization on completion, injection; the host runs [`Worker::run`] |
//! | `wfp.stream-editor` ([`stream_editor`]) | STREAM_V4/V6 | TERMINATING | — | `LayerData::Stream`, stream injection (inline splice / out-of-band); the host runs [`Worker::run`] for out-of-band |
//! | `wfp.datagram-redirector` ([`datagram_redirector`]) | OUTBOUND_TRANSPORT_V4/V6 or OUTBOUND_IPPACKET_V4/V6, INBOUND_IPPACKET_V4/V6 | TERMINATING | — | `LayerData::Packet` (the whole IP packet), clone + network injection, injection state |
//! | `wfp.connection-monitor` ([`connection_monitor`]) | ALE_FLOW_ESTABLISHED_V4/V6, STREAM_V4/V6, DATAGRAM_DATA_V4/V6 | INSPECTION | — | FLOW_HANDLE; PROCESS_PATH / PROCESS_ID / TOKEN when known; flowDeleteFn at flow end |
//!
//! Configuration: the Rust constructors take it directly ([`DnsBlocker::new`],
//! [`SniBlocker::new`], [`StreamPatternBlocker::new`], ...). Built-ins created by name get the
//! defaults documented on [`all`]; a host that has parameters passes them through
//! [`Builtin::make_with`] or [`builtin_with_config`] (keys in the table on
//! [`builtin_with_config`]), and checks them without building anything with [`Builtin::check`].
//! Policy files (`wfp-policy`) give them as `[builtin."NAME"]` tables or a `[[callout]]`'s
//! `params`.
//!
//! No process-global state: built-ins created by name are handed the [`Host`] of the engine they
//! serve. The flow logger and stream monitor report to its [`Host::flow_log`] and
//! [`Host::stream_log`], timed by its [`Host::clock`]; two engines with two hosts never share them.
//!
//! Modules: [`test`](mod@test) (policy-testing callouts), [`flow_logger`], [`stream_monitor`], [`pattern`],
//! [`dns`], [`tls`], [`names`] (name lists), [`clock`], [`host`].

pub mod clock;
mod config;
pub mod connection_monitor;
pub mod datagram_redirector;
pub mod dns;
pub mod flow_logger;
pub mod host;
pub mod interactive;
pub mod names;
pub mod pattern;
pub mod pending_inspector;
pub mod stream_editor;
pub mod stream_monitor;
mod support;
pub mod test;
pub mod tls;
pub mod worker;

use std::sync::Arc;

use wfp_core::catalogue::{self, LayerId};
use wfp_core::{Callout, CalloutFlags, Guid};

pub use clock::Clock;
pub use connection_monitor::{Connection, ConnectionLog, ConnectionMonitor};
pub use datagram_redirector::{
    DatagramRedirector, RedirectTable, RedirectorConfig, RedirectorStats,
};
pub use dns::DnsBlocker;
pub use flow_logger::{FlowByteCounter, FlowLog, FlowLogger, FlowRecord};
pub use host::Host;
pub use names::NameSet;
pub use pattern::StreamPatternBlocker;
pub use pending_inspector::{InspectorConfig, PendingInspector};
pub use stream_editor::{EditMode, EditorConfig, Rule, StreamEditor};
pub use stream_monitor::{StreamMonitor, StreamMonitorLog, StreamMonitorStream, StreamReport};
pub use tls::SniBlocker;
pub use worker::{Decision, Inspection, Worker, WorkerStats};

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
    /// Builds a fresh instance with the defaults, reporting to (and timed by) `host`.
    pub make: fn(&Host) -> Arc<dyn Callout>,
}

impl Builtin {
    /// Builds an instance with parameters (see [`builtin_with_config`] for the accepted keys),
    /// reporting to (and timed by) `host`; no parameters gives the same callout as
    /// [`Builtin::make`].
    pub fn make_with(
        &self,
        host: &Host,
        params: &[(String, String)],
    ) -> Result<Arc<dyn Callout>, ConfigError> {
        config::configure(self, params).map(|c| c.build(self, host))
    }

    /// Checks parameters as [`Builtin::make_with`] would, without a host: `Ok` exactly when
    /// `make_with` would succeed with them.
    pub fn check(&self, params: &[(String, String)]) -> Result<(), ConfigError> {
        config::configure(self, params).map(drop)
    }
}

/// Every built-in callout.
///
/// Defaults of the configurable ones when created by name: `wfp.dns-blocker` blocks
/// `*.blocked.example`; `wfp.tls-sni-blocker` blocks `blocked.example` and `*.blocked.example`;
/// `wfp.stream-pattern-blocker` blocks streams containing `X-Block-Me`;
/// `wfp.stream-monitor.stream` captures the first 64 bytes per direction; `wfp.pending-inspector`
/// inspects every connection and allows it; `wfp.stream-editor` replaces `X-Edit-Me` with
/// `X-Edited` inline on every connection; `wfp.datagram-redirector` redirects nothing.
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
/// | `wfp.pending-inspector` | `remote` | IP address of the connections to inspect (default any) |
/// | `wfp.pending-inspector` | `port` | remote port of the connections to inspect (default any) |
/// | `wfp.pending-inspector` | `decision` | `allow` (default) or `block`: what [`Worker::run`] decides |
/// | `wfp.stream-editor` | `pattern` / `pattern_hex` | the bytes to replace (non-empty; the last one given wins; default `X-Edit-Me`) |
/// | `wfp.stream-editor` | `replacement` / `replacement_hex` | what replaces them (any length, empty deletes; default `X-Edited`) |
/// | `wfp.stream-editor` | `port` | local or remote TCP port of the connections to edit (default any) |
/// | `wfp.stream-editor` | `mode` | `inline` (default) or `out-of-band` |
/// | `wfp.datagram-redirector` | `address`, `port` | remote address / UDP port of the datagrams to redirect (default any) |
/// | `wfp.datagram-redirector` | `to_address`, `to_port` | where they go instead (default: their own; `to_address` of `address`'s family) |
///
/// The other built-ins take no parameters. Keys are case-sensitive; for non-repeatable keys the
/// last value wins.
///
/// The flow logger and stream monitor report to `host` (see [`Builtin::make_with`]).
pub fn builtin_with_config(
    name: &str,
    host: &Host,
    params: &[(String, String)],
) -> Result<Arc<dyn Callout>, ConfigError> {
    let b = builtin(name).ok_or_else(|| ConfigError::UnknownCallout {
        name: name.to_string(),
    })?;
    b.make_with(host, params)
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
/// Default pattern of `wfp.stream-editor`.
pub const DEFAULT_EDIT_PATTERN: &[u8] = b"X-Edit-Me";
/// Default replacement of `wfp.stream-editor`.
pub const DEFAULT_EDIT_REPLACEMENT: &[u8] = b"X-Edited";

const fn key(n: u16) -> Guid {
    let mut g = Guid::from_str_const("57465001-0000-4000-8000-000000000000");
    g.0[14] = (n >> 8) as u8;
    g.0[15] = n as u8;
    g
}

static BUILTINS: [Builtin; 16] = [
    test::PERMIT,
    test::BLOCK,
    test::BLOCK_SOFT,
    test::CONTINUE,
    Builtin {
        name: "wfp.flow-logger",
        key: key(0x101),
        flags: CalloutFlags(0),
        flow_delete: true,
        description: "ALE_FLOW_ESTABLISHED: one record per flow (5-tuple, duration, bytes) in the host's flow log",
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
    Builtin {
        name: "wfp.connection-monitor",
        key: key(0x108),
        flags: CalloutFlags(0),
        flow_delete: true,
        description: "FLOW_ESTABLISHED + STREAM / DATAGRAM_DATA: per connection the process path, user and bytes each way, in the host's connection log",
        make: make_connection_monitor,
    },
    Builtin {
        name: "wfp.pending-inspector",
        key: key(0x109),
        flags: CalloutFlags(0),
        flow_delete: true,
        description: "ALE_AUTH_CONNECT / RECV_ACCEPT + TRANSPORT: pends connections to a target until the host's worker decides; clones and re-injects their packets",
        make: make_pending_inspector,
    },
    Builtin {
        name: "wfp.stream-editor",
        key: key(0x10a),
        flags: CalloutFlags(0),
        flow_delete: false,
        description: "STREAM: replaces a byte pattern with another of any length, inline or out-of-band",
        make: make_stream_editor,
    },
    Builtin {
        name: "wfp.datagram-redirector",
        key: key(0x10b),
        flags: CalloutFlags(0),
        flow_delete: false,
        description: "OUTBOUND_TRANSPORT / IPPACKET + INBOUND_IPPACKET: sends UDP datagrams for one address:port to another (clone, rewrite, inject) and rewrites the replies back",
        make: make_datagram_redirector,
    },
    interactive::BUILTIN,
];

fn make_datagram_redirector(host: &Host) -> Arc<dyn Callout> {
    Arc::new(DatagramRedirector::new(
        RedirectorConfig::default(),
        Arc::clone(&host.redirects),
    ))
}

fn make_flow_logger(host: &Host) -> Arc<dyn Callout> {
    Arc::new(FlowLogger::new(Arc::clone(&host.flow_log)))
}
fn make_flow_bytes(host: &Host) -> Arc<dyn Callout> {
    Arc::new(FlowByteCounter::new(Arc::clone(&host.flow_log)))
}
fn make_stream_monitor(host: &Host) -> Arc<dyn Callout> {
    Arc::new(StreamMonitor::new(Arc::clone(&host.stream_log)))
}
fn make_stream_monitor_stream(host: &Host) -> Arc<dyn Callout> {
    Arc::new(StreamMonitorStream::new(
        Arc::clone(&host.stream_log),
        stream_monitor::DEFAULT_CAPTURE,
    ))
}
fn make_connection_monitor(host: &Host) -> Arc<dyn Callout> {
    Arc::new(ConnectionMonitor::new(Arc::clone(&host.connections)))
}
fn make_pending_inspector(host: &Host) -> Arc<dyn Callout> {
    Arc::new(PendingInspector::new(
        Arc::clone(&host.worker),
        InspectorConfig::default(),
    ))
}
fn make_stream_editor(host: &Host) -> Arc<dyn Callout> {
    Arc::new(StreamEditor::new(
        EditorConfig {
            rule: Rule {
                pattern: DEFAULT_EDIT_PATTERN.to_vec(),
                replacement: DEFAULT_EDIT_REPLACEMENT.to_vec(),
            },
            port: None,
            mode: EditMode::Inline,
        },
        Arc::clone(&host.worker),
    ))
}
fn make_pattern_blocker(_host: &Host) -> Arc<dyn Callout> {
    Arc::new(pattern::StreamPatternBlocker::with_default())
}
fn make_dns_blocker(_host: &Host) -> Arc<dyn Callout> {
    Arc::new(DnsBlocker::with_names(
        NameSet::new(DEFAULT_DNS_NAMES).unwrap_or_default(),
    ))
}
fn make_sni_blocker(_host: &Host) -> Arc<dyn Callout> {
    Arc::new(SniBlocker::with_names(
        NameSet::new(DEFAULT_SNI_NAMES).unwrap_or_default(),
    ))
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
            let _instance = (a.make)(&Host::new());
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
        let host = Host::new();
        let config = |name: &str, params: &[(String, String)]| {
            builtin_with_config(name, &host, params).map(drop)
        };
        assert!(config("wfp.dns-blocker", &p("name", "a.example, *.b.example")).is_ok());
        assert!(config("wfp.dns-blocker", &p("name", "")).is_ok());
        assert!(matches!(
            config("wfp.dns-blocker", &p("name", "a..example")),
            Err(ConfigError::InvalidName { .. })
        ));
        assert!(matches!(
            config("wfp.dns-blocker", &p("pattern", "x")),
            Err(ConfigError::UnknownParameter { .. })
        ));
        assert!(matches!(
            config("wfp.tls-sni-blocker", &p("on_malformed", "maybe")),
            Err(ConfigError::InvalidValue { .. })
        ));
        assert!(config("wfp.stream-pattern-blocker", &p("pattern_hex", "00 ff 10")).is_ok());
        assert!(config("wfp.stream-pattern-blocker", &p("pattern_hex", "0g")).is_err());
        assert!(config("wfp.stream-monitor.stream", &p("capture_bytes", "16")).is_ok());
        assert!(config("wfp.stream-monitor.stream", &p("capture_bytes", "-1")).is_err());
        assert!(config("wfp.pending-inspector", &p("remote", "192.0.2.7")).is_ok());
        assert!(config("wfp.pending-inspector", &p("remote", "fd00::1")).is_ok());
        assert!(config("wfp.pending-inspector", &p("remote", "host")).is_err());
        assert!(config("wfp.pending-inspector", &p("port", "65536")).is_err());
        assert!(config("wfp.pending-inspector", &p("decision", "block")).is_ok());
        assert!(config("wfp.pending-inspector", &p("decision", "ask")).is_err());
        assert!(config("wfp.stream-editor", &p("mode", "out-of-band")).is_ok());
        assert!(config("wfp.stream-editor", &p("mode", "sideways")).is_err());
        assert!(config("wfp.stream-editor", &p("port", "80")).is_ok());
        assert!(config("wfp.stream-editor", &p("replacement", "")).is_ok());
        assert!(matches!(
            config("wfp.stream-editor", &p("pattern", "")),
            Err(ConfigError::InvalidPattern { .. })
        ));
        assert!(config("wfp.stream-editor", &p("pattern_hex", "0d0a")).is_ok());
        assert!(config("wfp.stream-editor", &p("replacement_hex", "0x")).is_err());
        assert!(config("wfp.connection-monitor", &p("port", "80")).is_err());
        assert!(config("wfp.test.block", &p("x", "y")).is_err());
        assert!(config("wfp.test.block", &[]).is_ok());
        assert!(matches!(
            config("nope", &[]),
            Err(ConfigError::UnknownCallout { .. })
        ));
        let dns = builtin("wfp.dns-blocker").unwrap();
        assert!(dns.make_with(&host, &p("name", "x.example")).is_ok());
        assert!(dns.make_with(&host, &p("name", "x..example")).is_err());
        assert!(dns.check(&p("name", "x.example")).is_ok());
        assert_eq!(
            dns.check(&p("name", "x..example")).unwrap_err(),
            dns.make_with(&host, &p("name", "x..example"))
                .err()
                .unwrap()
        );
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
