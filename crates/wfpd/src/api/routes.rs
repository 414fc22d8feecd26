//! The `/v1` endpoints (`docs/api.md`): each turns a request into session calls and answers JSON.

use std::time::Duration;

use wfp_api::http::Message;
use wfp_api::{
    Added, BeginRequest, CalloutDto, CalloutView, FilterDto, FilterEnumRequest, FilterView,
    FlowDto, Key, NetEventDto, NetEventQuery, ProviderContextDto, ProviderContextEnumRequest,
    ProviderContextView, ProviderDto, SessionRequest, SessionView, StateView, SublayerDto,
    SublayerView, API_VERSION,
};
use wfp_core::engine::{
    FilterEnumTemplate, ObjectEnumTemplate, ObjectRef, ProviderContextEnumTemplate, SessionSpec,
    FILTER_ENUM_FLAG_INCLUDE_DISABLED, SESSION_FLAG_DYNAMIC, TXN_READ_ONLY,
};
use wfp_core::{
    CalloutSpec, FilterId, FilterSpec, Guid, ProviderContextId, ProviderContextSpec, ProviderSpec,
    SublayerSpec,
};

use super::conn::{body, json, Answer, Conn, Failure};

const OK: &[u8] = b"{\"ok\":true}";

fn key(s: &str) -> Result<Guid, Failure> {
    s.parse().map_err(|_| {
        Failure::new(
            400,
            0x8032_0035,
            "FWP_E_INVALID_PARAMETER",
            format!("bad GUID {s:?}"),
        )
    })
}

fn filter_id(s: &str) -> Result<FilterId, Failure> {
    s.parse().map(FilterId).map_err(|_| {
        Failure::new(
            400,
            0x8032_0035,
            "FWP_E_INVALID_PARAMETER",
            format!("bad filter id {s:?}"),
        )
    })
}

/// Dispatches `/v1/<rest>`.
pub(crate) fn route(c: &mut Conn<'_>, method: &str, rest: &[&str], m: &Message) -> Answer {
    match (method, rest) {
        ("GET", ["state"]) => state(c),
        ("GET", ["connections"]) => json(
            &c.shared
                .monitor
                .get()
                .map_or_else(Vec::new, |log| crate::connections::list(log)),
        ),
        (_, ["filters", ..]) => filters(c, method, rest.get(1..).unwrap_or_default(), m),
        (_, ["sublayers" | "providers" | "callouts", ..]) => objects(c, method, rest, m),
        (_, ["providercontexts", ..]) => {
            provider_contexts(c, method, rest.get(1..).unwrap_or_default(), m)
        }
        (_, ["session" | "sessions"]) => session(c, method, rest, m),
        (_, ["drivers", ..]) => super::drivers::route(c, method, rest, m),
        ("POST", ["txn", op]) => txn(c, op, m),
        ("GET", ["netevents"]) => netevents(c, m),
        ("GET", ["pending"]) => super::pending::list(c.shared),
        ("POST", ["pending", id]) => super::pending::decide(c, id, m),
        ("GET", ["flows"]) => flows(c),
        _ => Err(Failure::not_found(&format!(
            "{method} /v1/{}",
            rest.join("/")
        ))),
    }
}

fn state(c: &mut Conn<'_>) -> Answer {
    let shared = c.shared;
    let s = c.session()?;
    let all = enforced_filters();
    let view = StateView {
        version: env!("CARGO_PKG_VERSION").to_string(),
        api: API_VERSION.to_string(),
        filters: s.filters(&all)?.len(),
        sublayers: s.sublayers(&ObjectEnumTemplate::default())?.len(),
        providers: s.providers()?.len(),
        callouts: s.callouts(&ObjectEnumTemplate::default())?.len(),
        provider_contexts: s
            .provider_contexts(&ProviderContextEnumTemplate::default())?
            .len(),
        sessions: shared.engine.sessions().len(),
        persistent_objects: match &shared.store {
            Some(store) => store
                .count()
                .map_err(|e| Failure::new(500, 0x8000_4005, "E_FAIL", e.to_string()))?,
            None => 0,
        },
        policy_epoch: shared.engine.policy_summary().epoch,
        net_events_dropped: shared
            .engine
            .stats()
            .net_events_dropped
            .load(std::sync::atomic::Ordering::Relaxed),
    };
    json(&view)
}

fn filter_views(list: &[std::sync::Arc<wfp_core::RtFilter>]) -> Vec<FilterView> {
    list.iter().map(|f| FilterView::from(&**f)).collect()
}

fn filters(c: &mut Conn<'_>, method: &str, rest: &[&str], m: &Message) -> Answer {
    let shared = c.shared;
    let s = c.session()?;
    let answer = filters_in(s, method, rest, m)?;
    // §11.3: a committed change to boot-time filters rewrites the boot-time ruleset file.
    if method != "GET" && !s.in_transaction() {
        super::boottime::refresh(shared)?;
    }
    Ok(answer)
}

/// What `GET /v1/filters` and the state count list: the filters the engine enforces — boot-time
/// filters only through `POST /v1/filters/enum` with INCLUDE_BOOTTIME / BOOTTIME_ONLY (§11.3,
/// docs/boottime.md).
fn enforced_filters() -> FilterEnumTemplate {
    FilterEnumTemplate {
        flags: FILTER_ENUM_FLAG_INCLUDE_DISABLED,
        ..FilterEnumTemplate::default()
    }
}

fn filters_in(
    s: &mut wfp_core::engine::Session<'_>,
    method: &str,
    rest: &[&str],
    m: &Message,
) -> Answer {
    match (method, rest) {
        ("GET", []) => json(&filter_views(&s.filters(&enforced_filters())?)),
        ("POST", ["enum"]) => {
            let t = FilterEnumTemplate::try_from(&body::<FilterEnumRequest>(m)?)?;
            json(&filter_views(&s.filters(&t)?))
        }
        ("GET", [id]) => json(&FilterView::from(&*s.filter(filter_id(id)?)?)),
        ("POST", []) => {
            let spec = FilterSpec::try_from(&body::<FilterDto>(m)?)?;
            crate::boottime::check(&spec)?;
            let id = s.add_filter(spec)?;
            let key = s.filter(id)?.key();
            json(&Added {
                key: Key(key),
                id: Some(id.0),
            })
        }
        ("DELETE", [id]) => {
            s.delete_filter(filter_id(id)?)?;
            Ok(OK.to_vec())
        }
        ("DELETE", ["key", k]) => {
            s.delete(ObjectRef::Filter(key(k)?))?;
            Ok(OK.to_vec())
        }
        _ => Err(Failure::not_found(&format!(
            "{method} /v1/filters/{}",
            rest.join("/")
        ))),
    }
}

fn context_id(s: &str) -> Result<ProviderContextId, Failure> {
    s.parse().map(ProviderContextId).map_err(|_| {
        Failure::new(
            400,
            0x8032_0035,
            "FWP_E_INVALID_PARAMETER",
            format!("bad provider context id {s:?}"),
        )
    })
}

/// `/v1/providercontexts[/...]` (§11.4 provider contexts).
fn provider_contexts(c: &mut Conn<'_>, method: &str, rest: &[&str], m: &Message) -> Answer {
    let s = c.session()?;
    let views = |list: Vec<std::sync::Arc<wfp_core::ProviderContext>>| {
        list.iter()
            .map(|pc| ProviderContextView::from(&**pc))
            .collect::<Vec<_>>()
    };
    match (method, rest) {
        ("GET", []) => json(&views(
            s.provider_contexts(&ProviderContextEnumTemplate::default())?,
        )),
        ("POST", ["enum"]) => {
            let t = ProviderContextEnumTemplate::try_from(&body::<ProviderContextEnumRequest>(m)?)?;
            json(&views(s.provider_contexts(&t)?))
        }
        ("GET", ["id", id]) => json(&ProviderContextView::from(
            &*s.provider_context_by_id(context_id(id)?)?,
        )),
        ("GET", [k]) => json(&ProviderContextView::from(&*s.provider_context(&key(k)?)?)),
        ("POST", []) => {
            let spec = ProviderContextSpec::try_from(&body::<ProviderContextDto>(m)?)?;
            let id = s.add_provider_context(spec)?;
            let k = s.provider_context_by_id(id)?.spec.key;
            json(&Added {
                key: Key(k),
                id: Some(id.0),
            })
        }
        ("DELETE", ["id", id]) => {
            s.delete_provider_context_by_id(context_id(id)?)?;
            Ok(OK.to_vec())
        }
        ("DELETE", [k]) => {
            s.delete(ObjectRef::ProviderContext(key(k)?))?;
            Ok(OK.to_vec())
        }
        _ => Err(Failure::not_found(&format!(
            "{method} /v1/providercontexts/{}",
            rest.join("/")
        ))),
    }
}

fn objects(c: &mut Conn<'_>, method: &str, rest: &[&str], m: &Message) -> Answer {
    let s = c.session()?;
    let all = ObjectEnumTemplate::default();
    match (method, rest) {
        ("GET", ["sublayers"]) => json(
            &s.sublayers(&all)?
                .iter()
                .map(SublayerView::from)
                .collect::<Vec<_>>(),
        ),
        ("GET", ["providers"]) => json(
            &s.providers()?
                .iter()
                .map(ProviderDto::from)
                .collect::<Vec<_>>(),
        ),
        ("GET", ["callouts"]) => json(
            &s.callouts(&all)?
                .iter()
                .map(CalloutView::from)
                .collect::<Vec<_>>(),
        ),
        ("POST", ["sublayers"]) => {
            let k = s.add_sublayer(SublayerSpec::from(&body::<SublayerDto>(m)?))?;
            json(&Added {
                key: Key(k),
                id: None,
            })
        }
        ("POST", ["providers"]) => {
            let k = s.add_provider(ProviderSpec::from(&body::<ProviderDto>(m)?))?;
            json(&Added {
                key: Key(k),
                id: None,
            })
        }
        ("POST", ["callouts"]) => {
            let spec = CalloutSpec::try_from(&body::<CalloutDto>(m)?)?;
            let id = s.add_callout(spec)?;
            let k = s
                .callouts(&all)?
                .into_iter()
                .find(|c| c.id == id)
                .map_or(Guid::NULL, |c| c.spec.key);
            json(&Added {
                key: Key(k),
                id: Some(u64::from(id.0)),
            })
        }
        ("DELETE", [kind, k]) => {
            let k = key(k)?;
            let object = match *kind {
                "sublayers" => ObjectRef::Sublayer(k),
                "providers" => ObjectRef::Provider(k),
                _ => ObjectRef::Callout(k),
            };
            s.delete(object)?;
            Ok(OK.to_vec())
        }
        _ => Err(Failure::not_found(&format!(
            "{method} /v1/{}",
            rest.join("/")
        ))),
    }
}

fn session(c: &mut Conn<'_>, method: &str, rest: &[&str], m: &Message) -> Answer {
    match (method, rest) {
        ("GET", ["sessions"]) => json(
            &c.shared
                .engine
                .sessions()
                .iter()
                .map(SessionView::from)
                .collect::<Vec<_>>(),
        ),
        ("GET", ["session"]) => {
            let key = c.session()?.key();
            session_view(c, key)
        }
        ("POST", ["session"]) => {
            let req: SessionRequest = body(m)?;
            if c.session.as_ref().is_some_and(|s| s.in_transaction()) {
                return Err(wfp_core::FwpError::TxnInProgress.into());
            }
            // Reopening closes the previous session (its dynamic objects go).
            c.session = None;
            let s = c.open(SessionSpec {
                key: req.key.map_or(Guid::NULL, |k| k.0),
                name: req.name,
                flags: if req.dynamic { SESSION_FLAG_DYNAMIC } else { 0 },
                txn_wait_timeout: Duration::from_millis(req.txn_wait_ms),
                ..SessionSpec::default()
            })?;
            let key = s.key();
            session_view(c, key)
        }
        ("DELETE", ["session"]) => {
            c.session = None;
            Ok(OK.to_vec())
        }
        _ => Err(Failure::not_found(&format!(
            "{method} /v1/{}",
            rest.join("/")
        ))),
    }
}

fn session_view(c: &Conn<'_>, key: Guid) -> Answer {
    let info = c
        .shared
        .engine
        .sessions()
        .into_iter()
        .find(|i| i.spec.key == key);
    let info = info.ok_or_else(|| Failure::new(500, 0x8000_4005, "E_FAIL", "session vanished"))?;
    json(&SessionView::from(&info))
}

fn txn(c: &mut Conn<'_>, op: &str, m: &Message) -> Answer {
    let shared = c.shared;
    let s = c.session()?;
    match op {
        "begin" => {
            let req: BeginRequest = if m.body.is_empty() {
                BeginRequest::default()
            } else {
                body(m)?
            };
            s.begin(if req.read_only { TXN_READ_ONLY } else { 0 })?;
        }
        "commit" => {
            s.commit()?;
            super::boottime::refresh(shared)?;
        }
        "abort" => s.abort()?,
        _ => return Err(Failure::not_found(&format!("POST /v1/txn/{op}"))),
    }
    Ok(OK.to_vec())
}

/// `GET /v1/netevents?QUERY`: the engine's ring, filtered (`docs/api.md`).
fn netevents(c: &mut Conn<'_>, m: &Message) -> Answer {
    let query = m
        .request_line()
        .ok()
        .and_then(|(_, target)| target.split_once('?'))
        .map_or("", |(_, q)| q);
    let q = NetEventQuery::parse(query)?;
    let events = c.shared.engine.enum_net_events(&q.template);
    let skip = q
        .limit
        .map_or(0, |limit| events.len().saturating_sub(limit));
    let list: Vec<NetEventDto> = events.iter().skip(skip).map(NetEventDto::from).collect();
    json(&list)
}

/// `GET /v1/flows`: the data path's flow table (empty without one).
fn flows(c: &mut Conn<'_>) -> Answer {
    let list: Vec<FlowDto> = c
        .shared
        .attached
        .get()
        .and_then(|d| d.flows.as_ref())
        .map(|s| s.flows())
        .unwrap_or_default();
    json(&list)
}
