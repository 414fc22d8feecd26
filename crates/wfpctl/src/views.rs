//! What `wfpctl` renders of the daemon's live answers (`GET /v1/flows`, `/v1/netevents`,
//! `/v1/pending`) and of the Prometheus text of `/v1/metrics`.
//!
//! The answers themselves are `wfp_api`'s own types ([`FlowDto`], [`NetEventDto`],
//! [`PendingDto`], [`DecisionResult`]: one concept, one type); they read leniently (a field an
//! older daemon leaves out takes its default, unknown fields are ignored). This module keeps
//! only what is view-specific: rendering helpers that turn numbers into WFP names (layers by
//! run-time id, IP protocols, endpoints) and the metrics [`Sample`] of `wfpctl top`.

use std::collections::BTreeMap;
use std::fmt;
use std::net::IpAddr;

use wfp_core::catalogue;
use wfp_core::LayerId;

pub use wfp_api::{DecisionResult, FlowDto, NetEventDto, PendingDto};

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
pub fn protocol_name(p: Option<u8>) -> String {
    match p {
        Some(1) => "icmp".into(),
        Some(6) => "tcp".into(),
        Some(17) => "udp".into(),
        Some(58) => "icmpv6".into(),
        Some(n) => n.to_string(),
        None => "-".into(),
    }
}

/// `address:port` (`[v6]:port` for IPv6), `-` when unknown.
pub fn endpoint(a: Option<IpAddr>, port: Option<u16>) -> String {
    let addr = opt(a);
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

/// A text field for people, `-` when the daemon left it empty.
pub fn text_or_dash(s: &str) -> String {
    if s.is_empty() {
        "-".into()
    } else {
        s.to_string()
    }
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
        assert_eq!(protocol_name(Some(6)), "tcp");
        assert_eq!(protocol_name(Some(132)), "132");
        assert_eq!(protocol_name(None), "-");
        assert_eq!(endpoint("::1".parse().ok(), Some(80)), "[::1]:80");
        assert_eq!(endpoint("10.0.0.1".parse().ok(), Some(23)), "10.0.0.1:23");
        assert_eq!(endpoint(None, None), "-");
        let connect = catalogue::layer_by_name("ALE_AUTH_CONNECT_V4").map(|d| d.layer_id().0);
        assert_eq!(layer_name("", connect), "ALE_AUTH_CONNECT_V4");
    }

    /// The daemon's types read what an older daemon sends: missing fields take defaults,
    /// unknown ones are ignored.
    #[test]
    fn flows_ignore_unknown_fields_and_miss_optional_ones() {
        let f: FlowDto = serde_json::from_str(
            r#"{"flow":7,"protocol":6,"local_addr":"10.0.0.1","bytes_out":5,"later_field":1}"#,
        )
        .unwrap();
        assert_eq!((f.flow, f.bytes_out, f.bytes_in), (7, 5, 0));
        assert_eq!(f.local_addr, IpAddr::from([10, 0, 0, 1]));
        let e: NetEventDto = serde_json::from_str(r#"{"seq":3,"kind":"VETO"}"#).unwrap();
        assert_eq!((e.seq, e.kind.as_str(), e.filter_id), (3, "VETO", None));
        let p: PendingDto = serde_json::from_str(r#"{"id":4,"later":true}"#).unwrap();
        assert_eq!((p.id, p.app_id), (4, None));
    }
}
