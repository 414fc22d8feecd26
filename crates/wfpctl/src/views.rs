//! Client-side views of the daemon's newer answers (`GET /v1/flows`, `/v1/netevents`,
//! `/v1/pending`, `/v1/drivers`) and of the Prometheus text of `/v1/metrics`.
//!
//! These are **lenient** serde structs written from `docs/api.md` (`FlowDto`, `NetEventDto`,
//! `PendingDto`; the driver endpoints are a proposal): every field but the identity is optional
//! and unknown fields are ignored, so `wfpctl` keeps working while the daemon's DTOs grow.
//! `DecisionResult` is `wfp_api`'s own (all its fields are always sent). Rendering helpers
//! turn numbers into WFP names (layers by run-time id, IP protocols, addresses).

use std::collections::BTreeMap;
use std::fmt;
use std::net::Ipv4Addr;

use serde::{Deserialize, Serialize};
use wfp_core::catalogue;
use wfp_core::LayerId;

/// A JSON scalar the daemon may send as a number or as text (a protocol `6` or `"TCP"`, an
/// address as host-order `UINT32` or as `"10.0.0.1"`).
#[derive(Clone, Debug, PartialEq, Deserialize, Serialize)]
#[serde(untagged)]
pub enum Scalar {
    /// A number.
    Num(u64),
    /// Text.
    Text(String),
}

impl fmt::Display for Scalar {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Num(n) => write!(f, "{n}"),
            Self::Text(t) => f.write_str(t),
        }
    }
}

/// One flow of the data path's flow table (`GET /v1/flows`, docs/api.md `FlowDto`).
#[derive(Clone, Debug, Default, PartialEq, Deserialize, Serialize)]
#[serde(default)]
pub struct FlowView {
    /// The flow handle.
    pub flow: Option<u64>,
    /// The NFQUEUE number that carries it.
    pub queue: Option<u16>,
    /// 4 or 6.
    pub ip_version: Option<u8>,
    /// IP protocol (number, or a name).
    pub protocol: Option<Scalar>,
    /// Local address (text).
    pub local_addr: Option<Scalar>,
    /// Local port.
    pub local_port: Option<u16>,
    /// Remote address (text).
    pub remote_addr: Option<Scalar>,
    /// Remote port.
    pub remote_port: Option<u16>,
    /// Who opened it: `outbound` | `inbound` (FWP_DIRECTION).
    pub direction: Option<String>,
    /// The flow's state (e.g. ESTABLISHED).
    pub state: Option<String>,
    /// Run-time ids of the layers that classified it.
    pub layer_ids: Vec<u16>,
    /// The application (FWPM_CONDITION_ALE_APP_ID), when known.
    pub app_id: Option<String>,
    /// Bytes sent (local → remote).
    pub bytes_out: Option<u64>,
    /// Bytes received.
    pub bytes_in: Option<u64>,
    /// Packets sent.
    pub packets_out: Option<u64>,
    /// Packets received.
    pub packets_in: Option<u64>,
    /// Age in milliseconds.
    pub age_ms: Option<u64>,
    /// Milliseconds since its last packet.
    pub idle_ms: Option<u64>,
}

/// One net event (`GET /v1/netevents`, `GET /v1/events`; docs/api.md `NetEventDto`).
#[derive(Clone, Debug, Default, PartialEq, Deserialize, Serialize)]
#[serde(default)]
pub struct NetEventView {
    /// Sequence number (the engine's; gaps are lost events).
    pub seq: u64,
    /// When, Unix milliseconds (stamped by wfpd).
    pub time_ms: Option<u64>,
    /// `CLASSIFY_DROP`, `CLASSIFY_ALLOW`, `VETO`, `POSTURE`, `PEND_TIMEOUT`, ...
    pub kind: String,
    /// FWPM_NET_EVENT_TYPE number, for WFP's own kinds.
    pub fwpm_type: Option<u32>,
    /// The layer name.
    pub layer: String,
    /// The layer's run-time id.
    pub layer_id: Option<u16>,
    /// The filter involved.
    pub filter_id: Option<u64>,
    /// The hard permit a veto overrode.
    pub overridden_filter_id: Option<u64>,
    /// The callout involved.
    pub callout_id: Option<u32>,
    /// The flow handle.
    pub flow: Option<u64>,
    /// IP protocol.
    pub protocol: Option<Scalar>,
    /// Local address (text).
    pub local_addr: Option<Scalar>,
    /// Local port.
    pub local_port: Option<u16>,
    /// Remote address (text).
    pub remote_addr: Option<Scalar>,
    /// Remote port.
    pub remote_port: Option<u16>,
    /// `inbound` | `outbound`.
    pub direction: Option<String>,
    /// The application.
    pub app_id: Option<String>,
    /// POSTURE: `absent`, `overload`, `hang`, `internal_error`.
    pub posture: Option<String>,
    /// POSTURE / PEND_TIMEOUT: the verdict applied.
    pub verdict: Option<String>,
    /// POSTURE: packets since the previous event.
    pub count: Option<u64>,
    /// PEND_TIMEOUT: the pended authorization.
    pub pending_id: Option<u64>,
}

/// One pended authorization waiting for a decision (`GET /v1/pending`, docs/api.md
/// `PendingDto`).
#[derive(Clone, Debug, Default, PartialEq, Deserialize, Serialize)]
#[serde(default)]
pub struct PendingView {
    /// The id to answer with `POST /v1/pending/{id}`.
    pub id: u64,
    /// The layer name (ALE_AUTH_CONNECT_V4, ...).
    pub layer: String,
    /// The layer's run-time id.
    pub layer_id: Option<u16>,
    /// The flow handle.
    pub flow: Option<u64>,
    /// `inbound` | `outbound`.
    pub direction: Option<String>,
    /// IP protocol.
    pub protocol: Option<Scalar>,
    /// Local address (text).
    pub local_addr: Option<Scalar>,
    /// Local port.
    pub local_port: Option<u16>,
    /// Remote address (text).
    pub remote_addr: Option<Scalar>,
    /// Remote port.
    pub remote_port: Option<u16>,
    /// The application, when known.
    pub app_id: Option<String>,
    /// The user, when known.
    pub user_id: Option<u32>,
    /// When it was pended, Unix ms.
    pub created_ms: Option<u64>,
    /// When the default applies, Unix ms.
    pub deadline_ms: Option<u64>,
    /// What applies at the deadline: `permit` | `block`.
    pub default: Option<String>,
}

/// The answer of `POST /v1/pending/{id}`: the daemon's own type (every field is always sent).
pub use wfp_api::DecisionResult;

/// A layer for people: the name when given, else the catalogue's name for the run-time id.
pub fn layer_name(name: &str, id: Option<u16>) -> String {
    if !name.is_empty() {
        return name.to_string();
    }
    match id {
        Some(id) => catalogue::layer(LayerId(id))
            .map_or_else(|| format!("layer#{id}"), |d| d.name.to_string()),
        None => "-".into(),
    }
}

/// IP protocol for people (`tcp`, `udp`, ... or the number).
pub fn protocol_name(p: Option<&Scalar>) -> String {
    match p {
        Some(Scalar::Num(n)) => match n {
            1 => "icmp".into(),
            6 => "tcp".into(),
            17 => "udp".into(),
            58 => "icmpv6".into(),
            n => n.to_string(),
        },
        Some(Scalar::Text(t)) => t.to_ascii_lowercase(),
        None => "-".into(),
    }
}

/// An address for people: host-order `UINT32` numbers become dotted IPv4.
pub fn address(a: Option<&Scalar>) -> String {
    match a {
        Some(Scalar::Num(n)) => {
            u32::try_from(*n).map_or_else(|_| n.to_string(), |v| Ipv4Addr::from(v).to_string())
        }
        Some(Scalar::Text(t)) => t.clone(),
        None => "-".into(),
    }
}

/// `address:port` (`[v6]:port` for IPv6 text), `-` when unknown.
pub fn endpoint(a: Option<&Scalar>, port: Option<u16>) -> String {
    let addr = address(a);
    match port {
        Some(p) if addr.contains(':') => format!("[{addr}]:{p}"),
        Some(p) => format!("{addr}:{p}"),
        None => addr,
    }
}

/// An optional number, `-` when absent.
pub fn opt<T: fmt::Display>(v: Option<T>) -> String {
    v.map_or_else(|| "-".into(), |v| v.to_string())
}

/// One sample of the Prometheus text exposition format: `name{label="v",...} value`.
#[derive(Clone, Debug, PartialEq)]
pub struct Sample {
    /// Metric name.
    pub name: String,
    /// Labels, sorted by name.
    pub labels: BTreeMap<String, String>,
    /// The value.
    pub value: f64,
}

/// Parses the Prometheus text format (0.0.4): comments and `# HELP`/`# TYPE` lines are skipped,
/// a trailing timestamp is ignored; malformed lines are skipped (never a panic).
pub fn parse_metrics(text: &str) -> Vec<Sample> {
    text.lines().filter_map(parse_sample).collect()
}

fn parse_sample(line: &str) -> Option<Sample> {
    let line = line.trim();
    if line.is_empty() || line.starts_with('#') {
        return None;
    }
    let (name, labels, rest) = match line.find('{') {
        Some(open) => {
            let close = line[open..].find('}')? + open;
            (
                &line[..open],
                parse_labels(line.get(open + 1..close)?)?,
                line.get(close + 1..)?,
            )
        }
        None => {
            let end = line.find(char::is_whitespace)?;
            (&line[..end], BTreeMap::new(), &line[end..])
        }
    };
    let value = match rest.split_whitespace().next()? {
        "+Inf" => f64::INFINITY,
        "-Inf" => f64::NEG_INFINITY,
        v => v.parse().ok()?,
    };
    Some(Sample {
        name: name.trim().to_string(),
        labels,
        value,
    })
}

/// `a="x",b="y\"z"` → {a: x, b: y"z}.
fn parse_labels(s: &str) -> Option<BTreeMap<String, String>> {
    let mut out = BTreeMap::new();
    let mut chars = s.chars().peekable();
    loop {
        while chars.peek().is_some_and(|c| *c == ',' || c.is_whitespace()) {
            chars.next();
        }
        if chars.peek().is_none() {
            return Some(out);
        }
        let name: String = chars.by_ref().take_while(|c| *c != '=').collect();
        if chars.next()? != '"' {
            return None;
        }
        let mut value = String::new();
        loop {
            match chars.next()? {
                '"' => break,
                '\\' => match chars.next()? {
                    'n' => value.push('\n'),
                    c => value.push(c),
                },
                c => value.push(c),
            }
        }
        out.insert(name.trim().to_string(), value);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prometheus_text_is_parsed_with_labels_and_escapes() {
        let text = "# HELP wfp_packets_total Packets by layer and verdict.\n\
                    # TYPE wfp_packets_total counter\n\
                    wfp_packets_total{layer=\"INBOUND_TRANSPORT_V4\",verdict=\"block\"} 12\n\
                    wfp_flows 3 1700000000000\n\
                    wfp_odd{msg=\"a\\\"b,c\"} +Inf\n\
                    garbage line\n\
                    wfp_bad{x=1} 2\n";
        let s = parse_metrics(text);
        assert_eq!(s.len(), 3, "{s:?}");
        assert_eq!(s[0].name, "wfp_packets_total");
        assert_eq!(s[0].labels["verdict"], "block");
        assert!((s[0].value - 12.0).abs() < f64::EPSILON);
        assert_eq!(s[1].name, "wfp_flows");
        assert_eq!(s[2].labels["msg"], "a\"b,c");
        assert!(s[2].value.is_infinite());
    }

    #[test]
    fn numbers_become_wfp_names() {
        assert_eq!(protocol_name(Some(&Scalar::Num(6))), "tcp");
        assert_eq!(protocol_name(Some(&Scalar::Text("UDP".into()))), "udp");
        assert_eq!(address(Some(&Scalar::Num(167_772_161))), "10.0.0.1");
        assert_eq!(
            endpoint(Some(&Scalar::Text("::1".into())), Some(80)),
            "[::1]:80"
        );
        let connect = catalogue::layer_by_name("ALE_AUTH_CONNECT_V4").map(|d| d.layer_id().0);
        assert_eq!(layer_name("", connect), "ALE_AUTH_CONNECT_V4");
    }

    #[test]
    fn flows_ignore_unknown_fields_and_miss_optional_ones() {
        let f: FlowView = serde_json::from_str(
            r#"{"flow":7,"protocol":6,"local_addr":"10.0.0.1","bytes_out":5,"later_field":1}"#,
        )
        .unwrap();
        assert_eq!((f.flow, f.bytes_out, f.bytes_in), (Some(7), Some(5), None));
    }
}
