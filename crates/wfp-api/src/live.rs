//! What the data path produces, as the API carries it: net events (§11.5) and their query
//! conditions (`GET /v1/netevents`, `GET /v1/events`), pended ALE authorizations and their
//! decisions (`/v1/pending`), and the live flow table (`GET /v1/flows`). `docs/api.md` documents
//! every field.

use std::net::IpAddr;

use serde::{Deserialize, Serialize};
use wfp_core::catalogue;
use wfp_core::engine::{NetEventDetail, NetEventEnumTemplate};
use wfp_core::{FilterId, LayerId, NetEvent, NetEventKind};

use crate::types::ConvertError;

/// A net event (`GET /v1/netevents`, one line of `GET /v1/events`). Reading is lenient (a field
/// an older daemon leaves out takes its default), so clients keep working as the type grows.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct NetEventDto {
    /// The engine's event sequence number (gaps in an unfiltered stream: lost events).
    pub seq: u64,
    /// The kind (`CLASSIFY_DROP`, `CLASSIFY_ALLOW`, `VETO`, `CALLOUT_PANIC`, `CALLBACK_PANIC`,
    /// `POSTURE`, `PEND_TIMEOUT`, `CALLOUT_CONTRACT`).
    pub kind: String,
    /// FWPM_NET_EVENT_TYPE number (CLASSIFY_DROP 3, CLASSIFY_ALLOW 6).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fwpm_type: Option<u32>,
    /// Unix milliseconds (stamped by wfpd).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub time_ms: Option<u64>,
    /// The layer name.
    pub layer: String,
    /// The layer's run-time id.
    pub layer_id: u16,
    /// The filter involved.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub filter_id: Option<u64>,
    /// The hard permit a veto overrode.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub overridden_filter_id: Option<u64>,
    /// The callout involved.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub callout_id: Option<u32>,
    /// The flow handle.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub flow: Option<u64>,
    /// FWPM_NET_EVENT_FLAG_* bits of the header fields present.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub header_flags: u32,
    /// 4 or 6.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ip_version: Option<u8>,
    /// IP protocol number.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub protocol: Option<u8>,
    /// Local address.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub local_addr: Option<IpAddr>,
    /// Remote address.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub remote_addr: Option<IpAddr>,
    /// Local port.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub local_port: Option<u16>,
    /// Remote port.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub remote_port: Option<u16>,
    /// `inbound` or `outbound`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub direction: Option<String>,
    /// ALE_APP_ID (lossy UTF-8).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub app_id: Option<String>,
    /// The decision was hard (CLASSIFY_DROP / CLASSIFY_ALLOW).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hard: Option<bool>,
    /// The BLOCK was a veto.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vetoed: Option<bool>,
    /// Matching filters the classify considered.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub filters_considered: Option<u32>,
    /// POSTURE: `absent`, `overload`, `hang`, `internal_error`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub posture: Option<String>,
    /// POSTURE / PEND_TIMEOUT: `accept`/`drop` (posture) or `permit`/`block` (the default applied).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub verdict: Option<String>,
    /// POSTURE: packets since the previous event.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub count: Option<u64>,
    /// PEND_TIMEOUT: the `/v1/pending` id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pending_id: Option<u64>,
    /// CALLOUT_CONTRACT: the broken rule (`WRITE_WITHOUT_RIGHT`, `INVALID_ACTION_TYPE`,
    /// `ABSORB_WITHOUT_BLOCK`, `BLOCK_KEEPS_RIGHT`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub violation: Option<String>,
    /// CALLOUT_CONTRACT: the action the callout returned (a name, or the number in hex).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub returned_action: Option<String>,
}

// serde's skip_serializing_if passes a reference.
#[allow(
    clippy::trivially_copy_pass_by_ref,
    reason = "serde passes a reference"
)]
fn is_zero(v: &u32) -> bool {
    *v == 0
}

/// `inbound` / `outbound` for an FWP_DIRECTION.
pub fn direction_name(d: u32) -> &'static str {
    if d == 0 {
        "outbound"
    } else {
        "inbound"
    }
}

impl From<&NetEvent> for NetEventDto {
    fn from(e: &NetEvent) -> Self {
        let h = &e.header;
        let mut dto = Self {
            seq: e.seq,
            kind: e.kind.name().to_string(),
            fwpm_type: e.kind.fwpm_type(),
            time_ms: e.time,
            layer: e.layer.to_string(),
            layer_id: e.layer.0,
            filter_id: e.filter_id.map(|f| f.0),
            overridden_filter_id: e.overridden_filter_id.map(|f| f.0),
            callout_id: e.callout_id.map(|c| c.0),
            flow: e.flow,
            header_flags: h.flags(),
            ip_version: h.ip_version(),
            protocol: h.ip_protocol,
            local_addr: h.local_addr,
            remote_addr: h.remote_addr,
            local_port: h.local_port,
            remote_port: h.remote_port,
            direction: h.direction.map(|d| direction_name(d).to_string()),
            app_id: h
                .app_id
                .as_deref()
                .map(|a| String::from_utf8_lossy(a).into_owned()),
            hard: e.decision.map(|d| d.hardness == wfp_core::Hardness::Hard),
            vetoed: e.decision.map(|d| d.vetoed),
            filters_considered: e.decision.map(|d| d.filters_considered),
            ..Self::default()
        };
        match e.detail {
            Some(NetEventDetail::Posture {
                posture,
                accepted,
                count,
            }) => {
                dto.posture = Some(posture.name().to_string());
                dto.verdict = Some(if accepted { "accept" } else { "drop" }.to_string());
                dto.count = Some(count);
            }
            Some(NetEventDetail::PendTimeout {
                pending_id,
                permitted,
            }) => {
                dto.pending_id = Some(pending_id);
                dto.verdict = Some(if permitted { "permit" } else { "block" }.to_string());
            }
            Some(NetEventDetail::CalloutContract(v)) => {
                dto.violation = Some(v.name().to_string());
                dto.returned_action = v.action().map(|a| a.name());
            }
            _ => {}
        }
        dto
    }
}

/// The query conditions of `GET /v1/netevents` and `GET /v1/events` (`docs/api.md`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct NetEventQuery {
    /// The engine template (time window, cursor, kinds, layer, filter, address, port, protocol).
    pub template: NetEventEnumTemplate,
    /// At most this many (the newest).
    pub limit: Option<usize>,
}

fn bad(key: &str, value: &str) -> ConvertError {
    ConvertError::BadValue(format!("bad query value {key}={value:?}"))
}

fn num<T: std::str::FromStr>(key: &str, value: &str) -> Result<T, ConvertError> {
    value.parse().map_err(|_| bad(key, value))
}

/// `%XX` and `+` decoding of one query component.
fn unescape(s: &str) -> Option<String> {
    let mut out = Vec::with_capacity(s.len());
    let mut bytes = s.bytes();
    while let Some(b) = bytes.next() {
        match b {
            b'%' => {
                let hex = [bytes.next()?, bytes.next()?];
                let hex = std::str::from_utf8(&hex).ok()?;
                out.push(u8::from_str_radix(hex, 16).ok()?);
            }
            b'+' => out.push(b' '),
            b => out.push(b),
        }
    }
    String::from_utf8(out).ok()
}

fn layer_of(value: &str) -> Option<LayerId> {
    if let Ok(id) = value.parse::<u16>() {
        return catalogue::layer(LayerId(id)).map(|l| l.layer_id());
    }
    let bare = value.strip_prefix("FWPM_LAYER_").unwrap_or(value);
    catalogue::layer_by_name(bare).map(|l| l.layer_id())
}

impl NetEventQuery {
    /// Parses a query string (`kind=CLASSIFY_DROP&port=80`; the part after `?`, or empty).
    pub fn parse(query: &str) -> Result<Self, ConvertError> {
        let mut q = Self::default();
        for pair in query.split('&').filter(|p| !p.is_empty()) {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            let v = unescape(v).ok_or_else(|| bad(k, v))?;
            let t = &mut q.template;
            match k {
                "start_ms" => t.start_time = Some(num(k, &v)?),
                "end_ms" => t.end_time = Some(num(k, &v)?),
                "after_seq" => t.after_seq = Some(num(k, &v)?),
                "filter_id" => t.filter_id = Some(FilterId(num(k, &v)?)),
                "addr" => t.addr = Some(num(k, &v)?),
                "port" => t.port = Some(num(k, &v)?),
                "protocol" => t.ip_protocol = Some(num(k, &v)?),
                "limit" => q.limit = Some(num(k, &v)?),
                "layer" => t.layer = Some(layer_of(&v).ok_or_else(|| bad(k, &v))?),
                "kind" => {
                    for name in v.split(',').filter(|n| !n.is_empty()) {
                        let kind = NetEventKind::from_name(name).ok_or_else(|| bad(k, name))?;
                        t.kinds.push(kind);
                    }
                }
                _ => return Err(ConvertError::BadValue(format!("unknown query key {k:?}"))),
            }
        }
        Ok(q)
    }
}

/// A pended ALE authorization waiting for a decision (`GET /v1/pending`); read leniently as
/// [`NetEventDto`].
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct PendingDto {
    /// The id to answer with `POST /v1/pending/{id}`.
    pub id: u64,
    /// The layer name (`ALE_AUTH_CONNECT_V4`, ...).
    pub layer: String,
    /// The layer's run-time id.
    pub layer_id: u16,
    /// The flow handle.
    pub flow: u64,
    /// `outbound` (AUTH_CONNECT) or `inbound` (AUTH_RECV_ACCEPT).
    pub direction: String,
    /// 4 or 6.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ip_version: Option<u8>,
    /// IP protocol number.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub protocol: Option<u8>,
    /// Local address.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub local_addr: Option<IpAddr>,
    /// Local port.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub local_port: Option<u16>,
    /// Remote address.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub remote_addr: Option<IpAddr>,
    /// Remote port.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub remote_port: Option<u16>,
    /// ALE_APP_ID (lossy UTF-8).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub app_id: Option<String>,
    /// The owning user id, when the data path resolved it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_id: Option<u32>,
    /// When it was pended (Unix ms).
    pub created_ms: u64,
    /// When the default applies (Unix ms).
    pub deadline_ms: u64,
    /// `permit` or `block`: the default.
    pub default: String,
}

/// `POST /v1/pending/{id}`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DecisionRequest {
    /// `permit` or `block`.
    pub decision: String,
    /// Also add a persistent filter for this app and remote endpoint.
    #[serde(default)]
    pub persist: bool,
}

/// The answer of `POST /v1/pending/{id}`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DecisionResult {
    /// The pending id.
    pub id: u64,
    /// `permit` or `block`.
    pub decision: String,
    /// The persistent filter added (with `persist`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub filter_id: Option<u64>,
}

/// One flow of the data path's flow table (`GET /v1/flows`); read leniently as [`NetEventDto`]
/// (a missing address is the unspecified IPv4 address).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct FlowDto {
    /// The flow handle.
    pub flow: u64,
    /// The NFQUEUE number whose worker tracks it.
    pub queue: u16,
    /// 4 or 6.
    pub ip_version: u8,
    /// IP protocol number.
    pub protocol: u8,
    /// Local address.
    pub local_addr: IpAddr,
    /// Local port (0 without ports).
    pub local_port: u16,
    /// Remote address.
    pub remote_addr: IpAddr,
    /// Remote port.
    pub remote_port: u16,
    /// Who opened it: `outbound` or `inbound`.
    pub direction: String,
    /// The flow's state (`new`, `established`, `closing`, ...).
    pub state: String,
    /// Run-time ids of the layers that classified it.
    pub layer_ids: Vec<u16>,
    /// ALE_APP_ID (lossy UTF-8), when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub app_id: Option<String>,
    /// Bytes sent.
    pub bytes_out: u64,
    /// Bytes received.
    pub bytes_in: u64,
    /// Packets sent.
    pub packets_out: u64,
    /// Packets received.
    pub packets_in: u64,
    /// Time since its first packet.
    pub age_ms: u64,
    /// Time since its last packet.
    pub idle_ms: u64,
}

impl Default for FlowDto {
    fn default() -> Self {
        let unspecified = IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED);
        Self {
            flow: 0,
            queue: 0,
            ip_version: 0,
            protocol: 0,
            local_addr: unspecified,
            local_port: 0,
            remote_addr: unspecified,
            remote_port: 0,
            direction: String::new(),
            state: String::new(),
            layer_ids: Vec::new(),
            app_id: None,
            bytes_out: 0,
            bytes_in: 0,
            packets_out: 0,
            packets_in: 0,
            age_ms: 0,
            idle_ms: 0,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use wfp_core::engine::{NetEventHeader, Posture};
    use wfp_core::layers;

    #[test]
    fn query_parses_every_condition_and_refuses_bad_ones() {
        let q = NetEventQuery::parse(
            "start_ms=1&end_ms=2&after_seq=3&kind=CLASSIFY_DROP,veto&layer=FWPM_LAYER_ALE_AUTH_CONNECT_V4\
             &filter_id=7&addr=2001%3Adb8%3A%3A1&port=443&protocol=6&limit=5",
        )
        .unwrap();
        let t = &q.template;
        assert_eq!(
            (t.start_time, t.end_time, t.after_seq),
            (Some(1), Some(2), Some(3))
        );
        assert_eq!(t.kinds, [NetEventKind::ClassifyDrop, NetEventKind::Veto]);
        assert_eq!(t.layer, Some(layers::ALE_AUTH_CONNECT_V4));
        assert_eq!(t.filter_id, Some(FilterId(7)));
        assert_eq!(t.addr, Some("2001:db8::1".parse().unwrap()));
        assert_eq!(
            (t.port, t.ip_protocol, q.limit),
            (Some(443), Some(6), Some(5))
        );
        assert_eq!(NetEventQuery::parse("").unwrap(), NetEventQuery::default());
        for bad in [
            "kind=NOPE",
            "port=70000",
            "layer=NOPE",
            "addr=1.2.3",
            "what=1",
            "start_ms=%zz",
            "limit=-1",
        ] {
            assert!(NetEventQuery::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn events_convert_with_header_and_posture_fields() {
        let e = NetEvent {
            seq: 4,
            time: Some(1_700_000_000_123),
            header: NetEventHeader {
                ip_protocol: Some(6),
                remote_addr: Some("192.0.2.7".parse().unwrap()),
                remote_port: Some(80),
                direction: Some(0),
                app_id: Some(b"/usr/bin/curl".to_vec().into()),
                ..NetEventHeader::default()
            },
            detail: Some(NetEventDetail::Posture {
                posture: Posture::Overload,
                accepted: false,
                count: 12,
            }),
            ..NetEvent::new(NetEventKind::Posture, layers::ALE_AUTH_CONNECT_V4)
        };
        let dto = NetEventDto::from(&e);
        let json = serde_json::to_value(&dto).unwrap();
        assert_eq!(json["kind"], "POSTURE");
        assert_eq!(json["time_ms"], 1_700_000_000_123u64);
        assert_eq!(json["remote_addr"], "192.0.2.7");
        assert_eq!(json["direction"], "outbound");
        assert_eq!(json["app_id"], "/usr/bin/curl");
        assert_eq!(json["posture"], "overload");
        assert_eq!(json["verdict"], "drop");
        assert_eq!(json["count"], 12);
        assert_eq!(json["header_flags"], 0x1 | 0x4 | 0x10 | 0x20 | 0x100);
        assert!(json.get("local_addr").is_none());
        let back: NetEventDto = serde_json::from_value(json).unwrap();
        assert_eq!(back, dto);
    }
}
