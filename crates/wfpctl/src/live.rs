//! `wfpctl show flows|netevents`: the data path's live flow table and the engine's stored net
//! events (§11.5), as tables with WFP names for people or the API's JSON for scripts. The row
//! builders are shared with `wfpctl top`.
//!
//! ```text
//!   wfpctl show flows [--json]
//!   wfpctl show netevents [--kind K]... [--layer L] [--filter-id N] [--addr A] [--port P]
//!                         [--protocol P] [--start-ms T] [--end-ms T] [--after-seq N]
//!                         [--limit N] [--json]
//! ```

use crate::views::{endpoint, layer_name, opt, protocol_name, text_or_dash, FlowDto, NetEventDto};

/// Query conditions of `GET /v1/netevents` and `GET /v1/events` (FWPM_NET_EVENT_ENUM_TEMPLATE0's
/// time window and conditions; every given condition must hold).
#[derive(clap::Args, Debug, Clone, Default)]
pub struct NetEventQuery {
    /// Only events of this kind (CLASSIFY_DROP, CLASSIFY_ALLOW, VETO, POSTURE, PEND_TIMEOUT, ...);
    /// repeatable.
    #[arg(long = "kind")]
    pub kinds: Vec<String>,
    /// Only events at this layer (WFP name, or run-time id).
    #[arg(long)]
    pub layer: Option<String>,
    /// Only events naming this filter id (deciding or overridden).
    #[arg(long)]
    pub filter_id: Option<u64>,
    /// Only events whose local or remote address is this one.
    #[arg(long)]
    pub addr: Option<String>,
    /// Only events whose local or remote port is this one.
    #[arg(long)]
    pub port: Option<u16>,
    /// Only events of this IP protocol (a number, or tcp, udp, icmp, icmpv6).
    #[arg(long, value_parser = parse_protocol)]
    pub protocol: Option<u8>,
    /// Only events at or after this time (Unix milliseconds).
    #[arg(long)]
    pub start_ms: Option<u64>,
    /// Only events at or before this time (Unix milliseconds).
    #[arg(long)]
    pub end_ms: Option<u64>,
    /// Only events with a sequence number above this one (a reader's cursor).
    #[arg(long)]
    pub after_seq: Option<u64>,
    /// `show netevents`: only the newest N (still oldest first).
    #[arg(long)]
    pub limit: Option<usize>,
}

/// `tcp`, `udp`, `icmp`, `icmpv6` or a number.
fn parse_protocol(s: &str) -> Result<u8, String> {
    match s.to_ascii_lowercase().as_str() {
        "icmp" => Ok(1),
        "tcp" => Ok(6),
        "udp" => Ok(17),
        "icmpv6" => Ok(58),
        n => n.parse().map_err(|_| {
            format!("{s:?} is not an IP protocol (a number 0-255, tcp, udp, icmp, icmpv6)")
        }),
    }
}

impl NetEventQuery {
    /// The query string's name/value pairs (docs/api.md names).
    pub fn pairs(&self) -> Vec<(&'static str, String)> {
        let mut q: Vec<(&'static str, String)> = Vec::new();
        if !self.kinds.is_empty() {
            q.push(("kind", self.kinds.join(",")));
        }
        let mut push = |name: &'static str, v: Option<String>| {
            if let Some(v) = v {
                q.push((name, v));
            }
        };
        push("layer", self.layer.clone());
        push("filter_id", self.filter_id.map(|v| v.to_string()));
        push("addr", self.addr.clone());
        push("port", self.port.map(|v| v.to_string()));
        push("protocol", self.protocol.map(|v| v.to_string()));
        push("start_ms", self.start_ms.map(|v| v.to_string()));
        push("end_ms", self.end_ms.map(|v| v.to_string()));
        push("after_seq", self.after_seq.map(|v| v.to_string()));
        push("limit", self.limit.map(|v| v.to_string()));
        q
    }
}

/// Column names of the flow table.
pub const FLOW_HEADER: [&str; 9] = [
    "FLOW",
    "PROTO",
    "LOCAL",
    "REMOTE",
    "DIR",
    "LAYERS",
    "APP",
    "PKTS OUT/IN",
    "BYTES OUT/IN",
];

/// One row per flow.
pub fn flow_rows(flows: &[FlowDto]) -> Vec<Vec<String>> {
    flows
        .iter()
        .map(|f| {
            let layers: Vec<String> = f
                .layer_ids
                .iter()
                .map(|id| layer_name("", Some(*id)))
                .collect();
            vec![
                f.flow.to_string(),
                protocol_name(Some(f.protocol)),
                endpoint(Some(f.local_addr), Some(f.local_port)),
                endpoint(Some(f.remote_addr), Some(f.remote_port)),
                text_or_dash(&f.direction),
                if layers.is_empty() {
                    "-".into()
                } else {
                    layers.join(",")
                },
                f.app_id.clone().unwrap_or_else(|| "-".into()),
                format!("{}/{}", f.packets_out, f.packets_in),
                format!("{}/{}", f.bytes_out, f.bytes_in),
            ]
        })
        .collect()
}

/// Column names of the net-event table.
pub const EVENT_HEADER: [&str; 9] = [
    "SEQ", "TIME", "KIND", "LAYER", "FILTER", "PROTO", "LOCAL", "REMOTE", "DETAIL",
];

/// One row per net event.
pub fn event_rows(events: &[NetEventDto]) -> Vec<Vec<String>> {
    events
        .iter()
        .map(|e| {
            let filter = match (e.filter_id, e.overridden_filter_id) {
                (Some(f), Some(o)) => format!("{f} (over {o})"),
                (f, _) => opt(f),
            };
            vec![
                e.seq.to_string(),
                time_text(e.time_ms),
                e.kind.clone(),
                layer_name(&e.layer, Some(e.layer_id)),
                filter,
                protocol_name(e.protocol),
                endpoint(e.local_addr, e.local_port),
                endpoint(e.remote_addr, e.remote_port),
                detail(e),
            ]
        })
        .collect()
}

/// What else the event says: the application, a posture and its verdict, a pend timeout's
/// request.
fn detail(e: &NetEventDto) -> String {
    let mut parts = Vec::new();
    if let Some(dir) = &e.direction {
        parts.push(dir.clone());
    }
    if let Some(app) = &e.app_id {
        parts.push(format!("app={app}"));
    }
    if let Some(p) = &e.posture {
        parts.push(format!("posture={p}"));
    }
    if let Some(v) = &e.verdict {
        parts.push(format!("verdict={v}"));
    }
    if let Some(n) = e.count {
        parts.push(format!("count={n}"));
    }
    if let Some(id) = e.pending_id {
        parts.push(format!("pending={id}"));
    }
    if let Some(c) = e.callout_id {
        parts.push(format!("callout={c}"));
    }
    if parts.is_empty() {
        "-".into()
    } else {
        parts.join(" ")
    }
}

/// A Unix-milliseconds time for people: UTC `HH:MM:SS.mmm`.
pub fn time_text(ms: Option<u64>) -> String {
    let Some(ms) = ms else {
        return "-".into();
    };
    let day_ms = ms % 86_400_000;
    format!(
        "{:02}:{:02}:{:02}.{:03}",
        day_ms / 3_600_000,
        day_ms / 60_000 % 60,
        day_ms / 1000 % 60,
        day_ms % 1000
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_are_utc_clock_times() {
        assert_eq!(time_text(Some(1_700_000_000_123)), "22:13:20.123");
        assert_eq!(time_text(None), "-");
    }

    #[test]
    fn query_pairs_use_the_documented_keys() {
        let q = NetEventQuery {
            kinds: vec!["CLASSIFY_DROP".into(), "VETO".into()],
            layer: Some("ALE_AUTH_CONNECT_V4".into()),
            filter_id: Some(7),
            protocol: parse_protocol("TCP").ok(),
            limit: Some(5),
            ..NetEventQuery::default()
        };
        assert_eq!(
            q.pairs(),
            vec![
                ("kind", "CLASSIFY_DROP,VETO".to_string()),
                ("layer", "ALE_AUTH_CONNECT_V4".into()),
                ("filter_id", "7".into()),
                ("protocol", "6".into()),
                ("limit", "5".into()),
            ]
        );
        assert!(parse_protocol("sctp").is_err());
    }
}
