//! Provider contexts through the engine (§11.3 lifetimes and references, §11.4 filter context).

use std::sync::{Arc, Mutex};

use super::{Engine, ObjectRef, PersistHook, PersistentChange, SessionSpec, SESSION_FLAG_DYNAMIC};
use super::{FilterEnumTemplate, ProviderContextEnumTemplate};
use crate::callout::{Callout, CalloutRegistration, ClassifyContext, ClassifyOut, IncomingValues};
use crate::callout::{LayerData, Metadata};
use crate::catalogue::{self, layers, LayerId};
use crate::constants::{ActionType, CalloutFlags, FilterFlags};
use crate::filter::{
    CalloutSpec, FilterSpec, ProviderSpec, RtFilter, CALLOUT_FLAG_USES_PROVIDER_CONTEXT,
    PROVIDER_FLAG_PERSISTENT,
};
use crate::guid::Guid;
use crate::provider_context::{
    ProviderContextSpec, ProviderContextType, PROVIDER_CONTEXT_FLAG_PERSISTENT,
};
use crate::value::Value;

const L: LayerId = layers::INBOUND_TRANSPORT_V4;

/// What the callout saw: (`context`, the provider context's data when delivered).
type Seen = Arc<Mutex<Vec<(u64, Option<Vec<u8>>)>>>;

struct Recorder(Seen);

impl Callout for Recorder {
    fn classify(
        &self,
        _: &ClassifyContext<'_>,
        _: &IncomingValues<'_>,
        _: &Metadata,
        _: &mut LayerData<'_>,
        filter: &RtFilter,
        _: u64,
        out: &mut ClassifyOut,
    ) {
        let data = filter
            .provider_context()
            .and_then(|pc| pc.general_data().map(<[u8]>::to_vec));
        self.0.lock().unwrap().push((filter.context, data));
        out.action_type = ActionType::PERMIT;
    }
}

/// An engine with one registered recording callout whose management object has `flags`.
fn engine_with_callout(flags: u32) -> (Engine, Guid, Seen) {
    let e = Engine::default();
    let key = Guid::from_name("pctx-test", "callout");
    let seen = Seen::default();
    e.register_callout(CalloutRegistration::new(
        key,
        CalloutFlags::default(),
        Arc::new(Recorder(seen.clone())),
    ))
    .unwrap();
    e.add_callout(CalloutSpec {
        key,
        name: "recorder".into(),
        description: String::new(),
        flags,
        provider: None,
        applicable_layer: L,
    })
    .unwrap();
    (e, key, seen)
}

fn callout_filter(callout: Guid, pc: Guid) -> FilterSpec {
    let mut f = FilterSpec::new("uses pc", L, ActionType::CALLOUT_TERMINATING);
    f.callout = Some(callout);
    f.flags = FilterFlags::HAS_PROVIDER_CONTEXT;
    f.provider_context = Some(pc);
    f
}

fn classify(e: &Engine) -> ActionType {
    let n = catalogue::layer(L).unwrap().fields.len();
    let values = vec![Value::Empty; n];
    let meta = Metadata::default();
    e.classify(L, &values, &meta, &mut LayerData::None, None)
        .action
}

fn general(name: &str, data: &[u8]) -> ProviderContextSpec {
    ProviderContextSpec {
        key: Guid::from_name("pctx-test", name),
        ..ProviderContextSpec::general(name, data.to_vec())
    }
}

// §11.4: with USES_PROVIDER_CONTEXT the whole provider context reaches the callout, and the
// filter's context is the provider context's LUID.
#[test]
fn callout_with_uses_provider_context_sees_the_blob_and_the_luid() {
    let (e, callout, seen) = engine_with_callout(CALLOUT_FLAG_USES_PROVIDER_CONTEXT);
    let pc = general("blob", b"\x01\x02hello");
    let id = e.add_provider_context(pc.clone()).unwrap();
    assert_eq!(id.0, 1);
    e.add_filter(callout_filter(callout, pc.key)).unwrap();
    assert_eq!(classify(&e), ActionType::PERMIT);
    let seen = seen.lock().unwrap().clone();
    assert_eq!(seen, vec![(id.0, Some(b"\x01\x02hello".to_vec()))]);
}

// §11.4: without USES_PROVIDER_CONTEXT only the LUID is delivered (providerContext NULL).
#[test]
fn callout_without_uses_provider_context_gets_only_the_luid() {
    let (e, callout, seen) = engine_with_callout(0);
    e.add_provider_context(general("first", b"a")).unwrap();
    let pc = general("second", b"b");
    let id = e.add_provider_context(pc.clone()).unwrap();
    e.add_filter(callout_filter(callout, pc.key)).unwrap();
    classify(&e);
    assert_eq!(seen.lock().unwrap().clone(), vec![(id.0, None)]);
    let f = e.filters().pop().unwrap();
    assert_eq!(f.provider_context_key(), Some(pc.key));
    assert!(f.provider_context().is_none());
}

// §11.3: FWP_E_IN_USE while a filter references the provider context; by key and by id.
#[test]
fn delete_while_referenced_is_in_use_then_succeeds() {
    let (e, callout, _) = engine_with_callout(CALLOUT_FLAG_USES_PROVIDER_CONTEXT);
    let pc = general("in use", b"x");
    let pc_id = e.add_provider_context(pc.clone()).unwrap();
    let f = e.add_filter(callout_filter(callout, pc.key)).unwrap();
    let err = e.delete_provider_context(&pc.key).unwrap_err();
    assert_eq!((err.code(), err.code_name()), (0x8032_000A, "IN_USE"));
    let mut s = e.open_session(SessionSpec::default(), None).unwrap();
    let err = s.delete_provider_context_by_id(pc_id).unwrap_err();
    assert_eq!(err.code(), 0x8032_000A);
    s.delete_filter(f).unwrap();
    s.delete_provider_context_by_id(pc_id).unwrap();
    let err = s.provider_context(&pc.key).unwrap_err();
    assert_eq!(err.code(), 0x8032_0006);
    assert!(e.provider_contexts().is_empty());
}

// FWP_E_PROVIDER_CONTEXT_NOT_FOUND for a missing key; the union rules of FWPM_FILTER0.
#[test]
fn missing_or_malformed_references_are_typed_errors() {
    let (e, callout, _) = engine_with_callout(0);
    let missing = e
        .add_filter(callout_filter(callout, Guid::from_name("x", "missing")))
        .unwrap_err();
    assert_eq!(missing.code(), 0x8032_0006);
    assert_eq!(missing.code_name(), "PROVIDER_CONTEXT_NOT_FOUND");
    let mut no_key = callout_filter(callout, Guid::NULL);
    no_key.provider_context = None;
    assert_eq!(e.add_filter(no_key).unwrap_err().code(), 0x8032_0006);
    let pc = general("ok", b"");
    e.add_provider_context(pc.clone()).unwrap();
    let mut no_flag = callout_filter(callout, pc.key);
    no_flag.flags = FilterFlags::NONE;
    assert_eq!(e.add_filter(no_flag).unwrap_err().code(), 0x8032_0035);
    let mut both = callout_filter(callout, pc.key);
    both.raw_context = 7;
    assert_eq!(e.add_filter(both).unwrap_err().code(), 0x8032_0035);
    assert!(e.filters().is_empty());
    // Provider context validation: display name, flags, type, duplicate key.
    let bad = |f: &dyn Fn(&mut ProviderContextSpec)| {
        let mut s = general("v", b"");
        s.key = Guid::NULL;
        f(&mut s);
        e.add_provider_context(s).unwrap_err().code()
    };
    assert_eq!(bad(&|s| s.name.clear()), 0x8032_0023);
    assert_eq!(bad(&|s| s.flags = 0x2), 0x8032_001E);
    assert_eq!(
        bad(&|s| s.context_type = ProviderContextType::MAX),
        0x8032_0035
    );
    assert_eq!(bad(&|s| s.key = pc.key), 0x8032_0009);
    assert_eq!(
        bad(&|s| s.provider = Some(Guid::from_name("x", "p"))),
        0x8032_0005
    );
}

// §11.3 LIFETIME_MISMATCH: persistent → non-persistent, static → dynamic, another session's
// dynamic objects; a dynamic session cannot add a persistent provider context.
#[test]
fn lifetime_mismatch_rules() {
    let (e, callout, _) = engine_with_callout(0);
    let static_pc = general("static", b"");
    e.add_provider_context(static_pc.clone()).unwrap();
    let mut pf = FilterSpec::new("persistent", L, ActionType::BLOCK);
    pf.flags = FilterFlags::PERSISTENT | FilterFlags::HAS_PROVIDER_CONTEXT;
    pf.provider_context = Some(static_pc.key);
    assert_eq!(e.add_filter(pf).unwrap_err().code(), 0x8032_0016);
    let p = e
        .add_provider(ProviderSpec {
            name: "static provider".into(),
            ..ProviderSpec::default()
        })
        .unwrap();
    let mut ppc = general("persistent pc", b"");
    ppc.flags = PROVIDER_CONTEXT_FLAG_PERSISTENT;
    ppc.provider = Some(p);
    assert_eq!(
        e.add_provider_context(ppc.clone()).unwrap_err().code(),
        0x8032_0016
    );
    let dynamic = SessionSpec {
        flags: SESSION_FLAG_DYNAMIC,
        ..SessionSpec::default()
    };
    let mut d1 = e.open_session(dynamic.clone(), None).unwrap();
    let err = d1.add_provider_context(ppc).unwrap_err();
    assert_eq!(err.code(), 0x8032_000B);
    let dyn_pc = general("dynamic", b"d");
    d1.add_provider_context(dyn_pc.clone()).unwrap();
    // A static filter (plain session) may not reference it; another dynamic session neither.
    let mut plain = e.open_session(SessionSpec::default(), None).unwrap();
    let f = callout_filter(callout, dyn_pc.key);
    assert_eq!(plain.add_filter(f.clone()).unwrap_err().code(), 0x8032_0016);
    let mut d2 = e.open_session(dynamic, None).unwrap();
    assert_eq!(d2.add_filter(f.clone()).unwrap_err().code(), 0x8032_0016);
    // Its own session may; closing the session deletes filter and provider context (T-MGMT-1).
    d1.add_filter(f).unwrap();
    assert_eq!(d1.close(), 2);
    assert!(e
        .provider_contexts()
        .iter()
        .all(|pc| pc.spec.key != dyn_pc.key));
    assert!(e.filters().is_empty());
}

#[derive(Default)]
struct Journal(Mutex<Vec<PersistentChange>>);

impl PersistHook for Journal {
    fn persist(&self, changes: &[PersistentChange]) -> Result<(), String> {
        self.0.lock().unwrap().extend_from_slice(changes);
        Ok(())
    }
}

// Persistent provider contexts reach the persist hook (add and delete); an abort undoes an add.
#[test]
fn persistent_changes_are_journaled_and_abort_undoes() {
    let e = Engine::default();
    let journal = Journal::default();
    let mut s = e
        .open_session(SessionSpec::default(), Some(&journal))
        .unwrap();
    let p = s
        .add_provider(ProviderSpec {
            name: "p".into(),
            flags: PROVIDER_FLAG_PERSISTENT,
            ..ProviderSpec::default()
        })
        .unwrap();
    let mut pc = general("kept", b"k");
    pc.flags = PROVIDER_CONTEXT_FLAG_PERSISTENT;
    pc.provider = Some(p);
    s.begin(0).unwrap();
    s.add_provider_context(pc.clone()).unwrap();
    s.abort().unwrap();
    assert!(e.provider_contexts().is_empty());
    let id = s.add_provider_context(pc.clone()).unwrap();
    assert_eq!(id.0, 2, "LUIDs are never reused, even after an abort");
    let err = s.delete(ObjectRef::Provider(p)).unwrap_err();
    assert_eq!(
        err.code(),
        0x8032_000A,
        "the provider context references the provider"
    );
    s.delete(ObjectRef::ProviderContext(pc.key)).unwrap();
    let got = journal.0.lock().unwrap().clone();
    assert_eq!(got.len(), 3);
    assert_eq!(got[1], PersistentChange::AddProviderContext(pc.clone()));
    assert_eq!(
        got[2],
        PersistentChange::Delete(ObjectRef::ProviderContext(pc.key))
    );
}

// FWPM_FILTER_ENUM_TEMPLATE0.providerContextTemplate and FWPM_PROVIDER_CONTEXT_ENUM_TEMPLATE0.
#[test]
fn enumeration_templates_select_by_provider_context() {
    let (e, callout, _) = engine_with_callout(0);
    let a = general("a", b"");
    let mut b = general("b", b"");
    b.context_type = ProviderContextType::CLASSIFY_OPTIONS;
    e.add_provider_context(a.clone()).unwrap();
    e.add_provider_context(b.clone()).unwrap();
    e.add_filter(callout_filter(callout, a.key)).unwrap();
    e.add_filter(callout_filter(callout, b.key)).unwrap();
    e.add_filter(FilterSpec::new("plain", L, ActionType::BLOCK))
        .unwrap();
    let mut s = e.open_session(SessionSpec::default(), None).unwrap();
    let by_type = |t: Option<ProviderContextType>| ProviderContextEnumTemplate {
        provider: None,
        context_type: t,
    };
    let general_only = FilterEnumTemplate {
        provider_context: Some(by_type(Some(ProviderContextType::GENERAL))),
        ..FilterEnumTemplate::default()
    };
    let got = s.filters(&general_only).unwrap();
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].provider_context_key(), Some(a.key));
    let any_pc = FilterEnumTemplate {
        provider_context: Some(by_type(None)),
        ..FilterEnumTemplate::default()
    };
    assert_eq!(s.filters(&any_pc).unwrap().len(), 2);
    assert_eq!(s.filters(&FilterEnumTemplate::default()).unwrap().len(), 3);
    let pcs = s.provider_contexts(&by_type(Some(ProviderContextType::CLASSIFY_OPTIONS)));
    assert_eq!(pcs.unwrap().len(), 1);
}
