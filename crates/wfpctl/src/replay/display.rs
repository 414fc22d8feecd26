//! How report values look, the same in the text table and in the `--json` object: endpoints,
//! stream heads, durations, and the `serialize_with` helpers that write foreign types (layer ids,
//! action types, paths, link types) as the strings the table shows.

use std::collections::BTreeMap;
use std::fmt;
use std::net::IpAddr;
use std::path::Path;
use std::time::Duration;

use serde::ser::{Serialize, SerializeMap, Serializer};
use wfp_core::{ActionType, FilterId, LayerId};
use wfp_pcap::LinkType;

use super::{layer_name, time_string};

/// Stream-head bytes shown in the `--json` object (the table shows fewer, [`Head::TABLE`]).
const JSON_HEAD: usize = 256;

/// One end of a flow: `10.0.0.1:80`, `[fd00::1]:53`, or `?:0` when the address is unknown.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Endpoint {
    pub(crate) addr: Option<IpAddr>,
    pub(crate) port: u16,
}

impl fmt::Display for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.addr {
            Some(IpAddr::V6(a)) => write!(f, "[{a}]:{}", self.port),
            Some(a) => write!(f, "{a}:{}", self.port),
            None => write!(f, "?:{}", self.port),
        }
    }
}

impl Serialize for Endpoint {
    /// As [`fmt::Display`] writes it.
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

/// The first bytes of one direction of a stream, shown as printable ASCII (`\r`, `\n` escaped,
/// anything else unprintable as `.`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Head<'a>(pub(crate) &'a [u8]);

impl Head<'_> {
    /// Bytes shown in the text table.
    pub(crate) const TABLE: usize = 32;

    /// The first `max` bytes, printable.
    pub(crate) fn printable(self, max: usize) -> String {
        self.0
            .iter()
            .take(max)
            .map(|b| match b {
                b'\r' => "\\r".to_string(),
                b'\n' => "\\n".to_string(),
                0x20..=0x7e => char::from(*b).to_string(),
                _ => ".".to_string(),
            })
            .collect()
    }
}

impl Serialize for Head<'_> {
    /// The first [`JSON_HEAD`] bytes, printable.
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.printable(JSON_HEAD))
    }
}

/// Seconds with three decimals (the table's durations).
pub(crate) fn secs(d: Duration) -> String {
    format!("{:.3}", d.as_secs_f64())
}

/// `t` relative to the capture's first packet (`start`, ns since the epoch).
pub(crate) fn since(start: Option<u64>, t: Duration) -> Duration {
    let origin = Duration::from_nanos(start.unwrap_or(0));
    t.saturating_sub(origin)
}

/// `tcp`, `udp`, `icmp`, `icmpv6`, else `proto N`.
pub(crate) fn proto_name(p: u8) -> String {
    match p {
        1 => "icmp".into(),
        6 => "tcp".into(),
        17 => "udp".into(),
        58 => "icmpv6".into(),
        other => format!("proto {other}"),
    }
}

/// A capture time (ns since the epoch of a host [`Duration`]) as [`time_string`] writes it.
pub(crate) fn duration_time(d: Duration) -> String {
    time_string(u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
}

// `serialize_with` helpers: serde hands every field by reference.

/// A layer as its WFP name.
pub(crate) fn ser_layer<S: Serializer>(l: &LayerId, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(layer_name(*l))
}

/// An action type as its WFP name (`PERMIT`, `CALLOUT_TERMINATING`...).
pub(crate) fn ser_action<S: Serializer>(a: &ActionType, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&a.name())
}

/// A filter id as its number.
pub(crate) fn ser_filter_id<S: Serializer>(id: &FilterId, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_u64(id.0)
}

/// A duration as seconds, a floating-point number.
pub(crate) fn ser_secs<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_f64(d.as_secs_f64())
}

/// A host time as [`duration_time`] writes it.
pub(crate) fn ser_duration_time<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&duration_time(*d))
}

/// A capture time (ns since the epoch) as [`time_string`] writes it, or null.
pub(crate) fn ser_opt_time<S: Serializer>(t: &Option<u64>, s: S) -> Result<S::Ok, S::Error> {
    match t {
        Some(t) => s.serialize_str(&time_string(*t)),
        None => s.serialize_none(),
    }
}

/// Anything as its [`fmt::Display`] text.
pub(crate) fn ser_display<T: fmt::Display, S: Serializer>(v: &T, s: S) -> Result<S::Ok, S::Error> {
    s.collect_str(v)
}

/// Anything as its [`fmt::Display`] text, or null.
pub(crate) fn ser_opt_display<T: fmt::Display, S: Serializer>(
    v: &Option<T>,
    s: S,
) -> Result<S::Ok, S::Error> {
    match v {
        Some(v) => s.collect_str(v),
        None => s.serialize_none(),
    }
}

/// A path as its (lossy) display text.
pub(crate) fn ser_path<S: Serializer>(p: &&Path, s: S) -> Result<S::Ok, S::Error> {
    s.collect_str(&p.display())
}

/// A path as its (lossy) display text, or null.
pub(crate) fn ser_opt_path<S: Serializer>(p: &Option<&Path>, s: S) -> Result<S::Ok, S::Error> {
    match p {
        Some(p) => s.collect_str(&p.display()),
        None => s.serialize_none(),
    }
}

/// Link types as an array of their display names, in order.
pub(crate) fn ser_link_types<S: Serializer>(t: &&[LinkType], s: S) -> Result<S::Ok, S::Error> {
    s.collect_seq(t.iter().map(ToString::to_string))
}

/// Packets per link type as an object keyed by the link types' display names, in the names'
/// order (the table lists them in link-type number order).
pub(crate) fn ser_link_type_counts<S: Serializer>(
    counts: &&BTreeMap<LinkType, u64>,
    s: S,
) -> Result<S::Ok, S::Error> {
    let by_name: BTreeMap<String, u64> = counts.iter().map(|(t, n)| (t.to_string(), *n)).collect();
    let mut map = s.serialize_map(Some(by_name.len()))?;
    for (name, n) in &by_name {
        map.serialize_entry(name, n)?;
    }
    map.end()
}

#[cfg(test)]
mod tests {
    use std::net::{Ipv4Addr, Ipv6Addr};

    use super::*;

    #[test]
    fn endpoints_read_the_same_in_text_and_json() {
        for (e, text) in [
            (
                Endpoint {
                    addr: Some(IpAddr::V4(Ipv4Addr::new(10, 0, 0, 1))),
                    port: 80,
                },
                "10.0.0.1:80",
            ),
            (
                Endpoint {
                    addr: Some(IpAddr::V6(Ipv6Addr::LOCALHOST)),
                    port: 53,
                },
                "[::1]:53",
            ),
            (
                Endpoint {
                    addr: None,
                    port: 7,
                },
                "?:7",
            ),
        ] {
            assert_eq!(e.to_string(), text);
            assert_eq!(
                serde_json::to_value(e).expect("json"),
                serde_json::json!(text)
            );
        }
    }

    #[test]
    fn heads_escape_line_ends_and_hide_other_bytes() {
        let h = Head(b"GET /\r\n\x00\xff");
        assert_eq!(h.printable(32), "GET /\\r\\n..");
        assert_eq!(h.printable(3), "GET");
        assert_eq!(
            serde_json::to_value(h).expect("json"),
            serde_json::json!("GET /\\r\\n..")
        );
        let long = [b'a'; 300];
        let shown = serde_json::to_value(Head(&long)).expect("json");
        assert_eq!(shown.as_str().map(str::len), Some(JSON_HEAD));
    }

    #[test]
    fn times_and_durations() {
        assert_eq!(secs(Duration::from_millis(1500)), "1.500");
        assert_eq!(
            since(Some(1_000_000_000), Duration::from_millis(2500)),
            Duration::from_millis(1500)
        );
        assert_eq!(since(Some(u64::MAX), Duration::ZERO), Duration::ZERO);
        assert_eq!(
            duration_time(Duration::from_nanos(1_700_000_000_000_000_042)),
            "1700000000.000000042"
        );
        assert_eq!(duration_time(Duration::MAX), time_string(u64::MAX));
        assert_eq!(proto_name(6), "tcp");
        assert_eq!(proto_name(47), "proto 47");
    }
}
