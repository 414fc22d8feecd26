//! `/v1/pending` (`docs/api.md`): the connections `wfp.interactive` pended (§10.1), listed,
//! streamed and decided by a client; a decision may also be persisted as a filter.

use std::time::Duration;

use wfp_api::http::Message;
use wfp_api::{direction_name, DecisionRequest, DecisionResult, PendingDto};
use wfp_callouts::interactive::{DecideError, Prompt};
use wfp_callouts::Decision;
use wfp_core::catalogue::{self, condition_by_name};
use wfp_core::{ActionType, ConditionSpec, FilterFlags, FilterSpec, MatchType, Value, WeightSpec};

use super::conn::{body, json, Answer, Conn, Failure};
use super::{unix_ms, DataPath, Shared};

fn ms(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

fn decision_name(d: Decision) -> &'static str {
    match d {
        Decision::Allow => "permit",
        Decision::Block => "block",
    }
}

/// A prompt as the API shows it; host-clock times become Unix milliseconds.
pub(crate) fn dto(p: &Prompt, data: &DataPath) -> PendingDto {
    let now_host = data.host_now();
    let now_unix = unix_ms();
    let unix = |t: Duration| {
        if t <= now_host {
            now_unix.saturating_sub(ms(now_host - t))
        } else {
            now_unix.saturating_add(ms(t - now_host))
        }
    };
    let h = &p.header;
    PendingDto {
        id: p.id,
        layer: p.layer.to_string(),
        layer_id: p.layer.0,
        flow: p.flow,
        direction: direction_name(h.direction.unwrap_or(0)).to_string(),
        ip_version: h.ip_version(),
        protocol: h.ip_protocol,
        local_addr: h.local_addr,
        local_port: h.local_port,
        remote_addr: h.remote_addr,
        remote_port: h.remote_port,
        app_id: h
            .app_id
            .as_deref()
            .map(|a| String::from_utf8_lossy(a).into_owned()),
        user_id: h.user_id,
        created_ms: unix(p.created),
        deadline_ms: unix(p.deadline),
        default: decision_name(p.default).to_string(),
    }
}

fn not_found(what: impl Into<String>) -> Failure {
    Failure::new(404, 0x8032_0008, "FWP_E_NOT_FOUND", what)
}

/// The data path, when it handed over prompts.
fn attached(shared: &Shared) -> Option<&DataPath> {
    shared.attached.get().filter(|d| d.prompts.is_some())
}

/// `GET /v1/pending`.
pub(crate) fn list(shared: &Shared) -> Answer {
    let Some(data) = attached(shared) else {
        return json(&Vec::<PendingDto>::new());
    };
    let list: Vec<PendingDto> = data
        .prompts
        .iter()
        .flat_map(|p| p.waiting())
        .map(|p| dto(&p, data))
        .collect();
    json(&list)
}

/// The waiting prompts after `cursor` (for the stream).
pub(crate) fn after(shared: &Shared, cursor: u64) -> Vec<PendingDto> {
    let Some(data) = attached(shared) else {
        return Vec::new();
    };
    data.prompts
        .iter()
        .flat_map(|p| p.waiting_after(cursor))
        .map(|p| dto(&p, data))
        .collect()
}

/// The persistent filter a `persist` decision adds: the app (when known), remote address, port
/// and protocol at the pended layer, highest weight range of FWPM_SUBLAYER_UNIVERSAL.
fn persistent_filter(p: &Prompt, d: Decision) -> FilterSpec {
    let h = &p.header;
    let app = h
        .app_id
        .as_deref()
        .map(|a| String::from_utf8_lossy(a).into_owned());
    let remote = h.remote_addr.map_or_else(String::new, |a| {
        format!("{a}:{}", h.remote_port.unwrap_or(0))
    });
    let action = match d {
        Decision::Allow => ActionType::PERMIT,
        Decision::Block => ActionType::BLOCK,
    };
    let mut f = FilterSpec::new(
        format!(
            "wfp.interactive: {} {} {remote}",
            decision_name(d),
            app.as_deref().unwrap_or("*")
        ),
        p.layer,
        action,
    );
    f.flags = FilterFlags::PERSISTENT;
    f.weight = WeightSpec::Range(15);
    f.description = format!("decided for pending authorization {}", p.id);
    let layer = catalogue::layer(p.layer);
    let mut cond = |name: &str, v: Option<Value>| {
        let (Some(v), Some(field)) = (v, condition_by_name(name)) else {
            return;
        };
        if layer.is_some_and(|l| l.field_index(field).is_some()) {
            f.conditions.push(ConditionSpec {
                field,
                match_type: MatchType::Equal,
                value: v.into(),
            });
        }
    };
    cond("ALE_APP_ID", h.app_id.clone().map(Value::ByteBlob));
    cond(
        "IP_REMOTE_ADDRESS",
        h.remote_addr.map(|a| match a {
            std::net::IpAddr::V4(v4) => Value::Uint32(u32::from(v4)),
            std::net::IpAddr::V6(v6) => Value::ByteArray16(v6.octets()),
        }),
    );
    cond("IP_REMOTE_PORT", h.remote_port.map(Value::Uint16));
    cond("IP_PROTOCOL", h.ip_protocol.map(Value::Uint8));
    f
}

/// `POST /v1/pending/{id}`.
pub(crate) fn decide(c: &mut Conn<'_>, id: &str, m: &Message) -> Answer {
    let id: u64 = id
        .parse()
        .map_err(|_| not_found(format!("no pending authorization {id:?}")))?;
    let req: DecisionRequest = body(m)?;
    let decision = match req.decision.as_str() {
        "permit" => Decision::Allow,
        "block" => Decision::Block,
        other => {
            return Err(Failure::new(
                400,
                0x8032_0035,
                "FWP_E_INVALID_PARAMETER",
                format!("decision must be \"permit\" or \"block\", not {other:?}"),
            ))
        }
    };
    let shared = c.shared;
    let prompts = attached(shared)
        .and_then(|d| d.prompts.as_ref())
        .ok_or_else(|| not_found(format!("no pending authorization {id}")))?;
    let prompt = prompts
        .decide(&shared.engine, id, decision)
        .map_err(|e: DecideError| not_found(e.to_string()))?;
    let filter_id = if req.persist {
        let s = c.session()?;
        Some(s.add_filter(persistent_filter(&prompt, decision))?.0)
    } else {
        None
    };
    json(&DecisionResult {
        id,
        decision: req.decision,
        filter_id,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use wfp_core::engine::NetEventHeader;
    use wfp_core::layers;

    #[test]
    fn a_persisted_decision_names_the_app_and_the_remote_endpoint() {
        let p = Prompt {
            id: 3,
            context: wfp_core::pend::CompletionContext(1),
            flow: 9,
            layer: layers::ALE_AUTH_CONNECT_V4,
            header: NetEventHeader {
                ip_protocol: Some(6),
                remote_addr: Some("192.0.2.7".parse().unwrap()),
                remote_port: Some(443),
                app_id: Some(b"/usr/bin/curl".to_vec().into()),
                ..NetEventHeader::default()
            },
            created: Duration::ZERO,
            deadline: Duration::from_secs(1),
            default: Decision::Block,
        };
        let f = persistent_filter(&p, Decision::Allow);
        assert_eq!(f.action, ActionType::PERMIT);
        assert!(f.flags.contains(FilterFlags::PERSISTENT));
        assert_eq!(f.conditions.len(), 4);
        assert_eq!(
            f.name,
            "wfp.interactive: permit /usr/bin/curl 192.0.2.7:443"
        );
        let e = wfp_core::Engine::default();
        e.add_filter(f).unwrap();
    }
}
