//! Management objects and transactions (`Fwpm*Add0` / `Delete*` / `FwpmTransaction*0`, §11).
//!
//! One writer at a time holds the management mutex through a [`Transaction`]. Operations apply to the
//! management state at once and record an undo entry; `commit` rebuilds the classify views of the
//! layers that changed and publishes them atomically; `abort` (or dropping the transaction) replays
//! the undo log. A failed operation leaves the transaction usable (§11.2).
//!
//! Notifications: ADD_FILTER is sent when the filter is added (before it can be active; an error
//! refuses the add). DELETE_FILTER is sent at commit for filters deleted in the transaction, and at
//! abort for filters added in it whose ADD was delivered. ADD_FILTER_POST_COMMIT is sent after commit
//! to callouts registered with ENABLE_COMMIT_ADD_NOTIFY. Notifications run after the mutex is
//! released, except ADD_FILTER (which decides the add).

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::Ordering;
use std::sync::Arc;

use parking_lot::MutexGuard;

use super::{Engine, LayerView, NetEvent, NetEventKind, SublayerView};
use crate::catalogue::{self, LayerId, SUBLAYER_INSPECTION, SUBLAYER_UNIVERSAL};
use crate::condition::{Condition, ConditionSet};
use crate::constants::{CalloutFlags, FilterFlags, NotifyType, RtFilterFlags};
use crate::filter::{
    check_action, check_flags, effective_weight, CalloutId, CalloutSpec, FilterId, FilterSpec,
    ProviderSpec, RtFilter, SublayerSpec, CALLOUT_FLAG_PERSISTENT, CALLOUT_FLAG_REGISTERED,
    CALLOUT_FLAG_USES_PROVIDER_CONTEXT, PROVIDER_FLAG_PERSISTENT, SUBLAYER_FLAG_PERSISTENT,
};
use crate::guid::Guid;
use crate::provider_context::{
    ProviderContext, ProviderContextId, ProviderContextSpec, PROVIDER_CONTEXT_FLAG_PERSISTENT,
};
use crate::status::{FwpError, Status};

/// A provider as stored.
#[derive(Clone, Debug, PartialEq)]
pub struct ProviderObject {
    /// The spec as added (key filled in).
    pub spec: ProviderSpec,
}

/// A sublayer as stored.
#[derive(Clone, Debug, PartialEq)]
pub struct SublayerObject {
    /// The spec as added (key filled in).
    pub spec: SublayerSpec,
    /// Creation order (ties between equal weights go to the older sublayer).
    pub order: u64,
    /// Built-in sublayers cannot be deleted.
    pub builtin: bool,
}

/// A management callout as stored.
#[derive(Clone, Debug, PartialEq)]
pub struct CalloutObject {
    /// The spec as added (key filled in).
    pub spec: CalloutSpec,
    /// `calloutId` (equals the run-time id).
    pub id: CalloutId,
}

pub(crate) struct Mgmt {
    pub(super) providers: BTreeMap<Guid, ProviderObject>,
    pub(super) sublayers: BTreeMap<Guid, SublayerObject>,
    pub(super) callouts: BTreeMap<Guid, CalloutObject>,
    pub(super) provider_contexts: BTreeMap<Guid, Arc<ProviderContext>>,
    pub(super) filters: BTreeMap<FilterId, Arc<RtFilter>>,
    pub(super) filter_keys: HashMap<Guid, FilterId>,
    pub(super) by_layer: Vec<BTreeSet<FilterId>>,
    next_filter_id: u64,
    next_provider_context_id: u64,
    next_order: u64,
    generations: Vec<u64>,
}

enum Undo {
    AddProvider(Guid),
    DelProvider(ProviderObject),
    AddSublayer(Guid),
    DelSublayer(SublayerObject),
    AddCallout(Guid),
    DelCallout(CalloutObject),
    AddProviderContext(Guid),
    DelProviderContext(Arc<ProviderContext>),
    AddFilter(FilterId),
    DelFilter(Arc<RtFilter>),
}

impl Mgmt {
    pub(crate) fn new() -> Self {
        let mut m = Self {
            providers: BTreeMap::new(),
            sublayers: BTreeMap::new(),
            callouts: BTreeMap::new(),
            provider_contexts: BTreeMap::new(),
            filters: BTreeMap::new(),
            filter_keys: HashMap::new(),
            by_layer: vec![BTreeSet::new(); catalogue::all_layers().len()],
            next_filter_id: 1,
            next_provider_context_id: 1,
            next_order: 0,
            generations: vec![0; catalogue::all_layers().len()],
        };
        // Built-in sublayers. WFP documents INSPECTION as the lowest; UNIVERSAL (the default) gets
        // the middle of the UINT16 range so providers can place sublayers above or below it.
        for (name, key) in catalogue::builtin_sublayers() {
            let weight = if *key == SUBLAYER_UNIVERSAL {
                0x8000
            } else if *key == SUBLAYER_INSPECTION {
                0
            } else {
                0x4000
            };
            let order = m.next_order;
            m.next_order += 1;
            m.sublayers.insert(
                *key,
                SublayerObject {
                    spec: SublayerSpec {
                        key: *key,
                        name: format!("FWPM_SUBLAYER_{name}"),
                        description: String::new(),
                        flags: SUBLAYER_FLAG_PERSISTENT,
                        provider: None,
                        weight,
                    },
                    order,
                    builtin: true,
                },
            );
        }
        m
    }

    /// The provider an object references must exist, and a persistent object may only reference a
    /// persistent provider (§11.3 FWP_E_LIFETIME_MISMATCH).
    fn check_provider(
        &self,
        provider: Option<Guid>,
        persistent: bool,
        kind: &'static str,
    ) -> Result<(), FwpError> {
        let Some(p) = provider else { return Ok(()) };
        let prov = self
            .providers
            .get(&p)
            .ok_or_else(|| FwpError::ProviderNotFound(p.to_string()))?;
        if persistent && prov.spec.flags & PROVIDER_FLAG_PERSISTENT == 0 {
            return Err(FwpError::LifetimeMismatch {
                kind,
                target: format!("provider {}", prov.spec.name),
            });
        }
        Ok(())
    }

    /// §11.4 "Filter context": `rawContext`, or with HAS_PROVIDER_CONTEXT the provider context's
    /// LUID — plus the whole provider context when the callout uses provider contexts. A
    /// persistent filter may only reference a persistent provider context (§11.3).
    fn filter_context(
        &self,
        spec: &FilterSpec,
        callout_uses_context: bool,
    ) -> Result<BoundContext, FwpError> {
        if !spec.flags.contains(FilterFlags::HAS_PROVIDER_CONTEXT) {
            if let Some(k) = spec.provider_context {
                return Err(FwpError::InvalidParameter(format!(
                    "provider context {k} given without FWPM_FILTER_FLAG_HAS_PROVIDER_CONTEXT"
                )));
            }
            return Ok(BoundContext {
                context: spec.raw_context,
                key: None,
                delivered: None,
            });
        }
        if spec.raw_context != 0 {
            return Err(FwpError::InvalidParameter(
                "rawContext and providerContextKey share a union: give one".into(),
            ));
        }
        let key = spec.provider_context.unwrap_or(Guid::NULL);
        let pc = self
            .provider_contexts
            .get(&key)
            .ok_or_else(|| FwpError::ProviderContextNotFound(key.to_string()))?;
        if spec.flags.contains(FilterFlags::PERSISTENT) && !pc.spec.is_persistent() {
            return Err(FwpError::LifetimeMismatch {
                kind: "filter",
                target: format!("provider context {}", pc.spec.name),
            });
        }
        Ok(BoundContext {
            context: pc.id.0,
            key: Some(key),
            delivered: callout_uses_context.then(|| pc.clone()),
        })
    }

    /// Publishes the boot-time filters in evaluation order (§11.3, §7.4).
    fn publish_boottime(&self, engine: &Engine) {
        let mut list: Vec<Arc<RtFilter>> = self
            .filters
            .values()
            .filter(|f| f.is_boottime())
            .cloned()
            .collect();
        list.sort_by(|a, b| super::enumerate::evaluation_order(self, a, b));
        let mut set = engine.boottime.lock();
        set.generation += 1;
        set.filters = list.into();
    }

    /// The layer's view built from every filter (index/layer.rs applies most commits instead).
    fn build_layer(&self, layer: LayerId) -> LayerView {
        let mut groups: BTreeMap<Guid, Vec<Arc<RtFilter>>> = BTreeMap::new();
        if let Some(ids) = self.by_layer.get(usize::from(layer.0)) {
            for id in ids {
                if let Some(f) = self.filters.get(id) {
                    groups.entry(f.sublayer).or_default().push(f.clone());
                }
            }
        }
        let mut sublayers: Vec<(u64, SublayerView)> = groups
            .into_iter()
            .filter_map(|(key, mut filters)| {
                let s = self.sublayers.get(&key)?;
                // §7.3 + brief decision 2: weight descending, then lower filter id first.
                filters.sort_by(|a, b| b.weight.cmp(&a.weight).then(a.filter_id.cmp(&b.filter_id)));
                let index = match catalogue::layer(layer) {
                    Some(def) => crate::index::SublayerIndex::build(def, &filters),
                    None => crate::index::SublayerIndex::scan(filters),
                };
                Some((
                    s.order,
                    SublayerView {
                        key,
                        name: s.spec.name.as_str().into(),
                        weight: s.spec.weight,
                        index,
                    },
                ))
            })
            .collect();
        // §7.4 + brief decision 2: sublayer weight descending, then creation order.
        sublayers.sort_by(|(oa, a), (ob, b)| b.weight.cmp(&a.weight).then(oa.cmp(ob)));
        let fields_used = sublayers
            .iter()
            .fold(0u64, |m, (_, s)| m | s.index.fields_used());
        LayerView {
            sublayers: sublayers.into_iter().map(|(_, s)| s).collect(),
            fields_used,
        }
    }
}

/// What [`Mgmt::filter_context`] binds a filter to.
struct BoundContext {
    context: u64,
    key: Option<Guid>,
    delivered: Option<Arc<ProviderContext>>,
}

/// A management transaction (`FwpmTransactionBegin0` … `Commit0`/`Abort0`). Dropping it aborts.
pub struct Transaction<'e> {
    engine: &'e Engine,
    mgmt: Option<MutexGuard<'e, Mgmt>>,
    undo: Vec<Undo>,
    dirty: BTreeSet<LayerId>,
    added: Vec<Arc<RtFilter>>,
    notified_add: Vec<FilterId>,
    deleted: Vec<Arc<RtFilter>>,
    /// A boot-time filter was added or deleted (the commit republishes [`super::BoottimeSet`]).
    boottime_changed: bool,
}

impl Engine {
    /// `FwpmTransactionBegin0`: waits for the writer lock (classify never takes it). §11.2: one
    /// transaction at a time — when the calling thread already holds one this returns at once with
    /// FWP_E_TXN_IN_PROGRESS instead of waiting on its own lock (a deadlock).
    pub fn try_begin(&self) -> Result<Transaction<'_>, FwpError> {
        if self.writer_is_current_thread() {
            return Err(FwpError::TxnInProgress);
        }
        Ok(self.begin_locked(self.mgmt.lock()))
    }

    /// [`Engine::try_begin`] for callers that report errors per operation: when the calling thread
    /// already holds a transaction, the returned one is refused — every operation in it fails with
    /// FWP_E_TXN_IN_PROGRESS and its commit changes nothing (never a deadlock).
    pub fn begin(&self) -> Transaction<'_> {
        self.try_begin()
            .unwrap_or_else(|_| Transaction::refused(self))
    }

    /// True when the calling thread holds the writer lock through a transaction.
    pub(super) fn writer_is_current_thread(&self) -> bool {
        *self.writer_thread.lock() == Some(std::thread::current().id())
    }

    /// One change in an implicit transaction (§11.2: a management call outside an explicit
    /// transaction commits on success and changes nothing on failure).
    fn implicit<T>(
        &self,
        change: impl FnOnce(&mut Transaction<'_>) -> Result<T, FwpError>,
    ) -> Result<T, FwpError> {
        let mut t = self.begin();
        let out = change(&mut t)?;
        t.commit();
        Ok(out)
    }

    /// A transaction over the already-taken writer lock (engine/session.rs takes it with a wait
    /// limit, §11.2).
    pub(super) fn begin_locked<'e>(&'e self, guard: MutexGuard<'e, Mgmt>) -> Transaction<'e> {
        *self.writer_thread.lock() = Some(std::thread::current().id());
        Transaction {
            engine: self,
            mgmt: Some(guard),
            undo: Vec::new(),
            dirty: BTreeSet::new(),
            added: Vec::new(),
            notified_add: Vec::new(),
            deleted: Vec::new(),
            boottime_changed: false,
        }
    }

    /// `FwpmProviderAdd0` in an implicit transaction.
    pub fn add_provider(&self, spec: ProviderSpec) -> Result<Guid, FwpError> {
        self.implicit(|t| t.add_provider(spec))
    }

    /// `FwpmSubLayerAdd0` in an implicit transaction.
    pub fn add_sublayer(&self, spec: SublayerSpec) -> Result<Guid, FwpError> {
        self.implicit(|t| t.add_sublayer(spec))
    }

    /// `FwpmCalloutAdd0` in an implicit transaction.
    pub fn add_callout(&self, spec: CalloutSpec) -> Result<CalloutId, FwpError> {
        self.implicit(|t| t.add_callout(spec))
    }

    /// `FwpmFilterAdd0` in an implicit transaction.
    pub fn add_filter(&self, spec: FilterSpec) -> Result<FilterId, FwpError> {
        self.implicit(|t| t.add_filter(spec))
    }

    /// `FwpmFilterDeleteById0` in an implicit transaction.
    pub fn delete_filter(&self, id: FilterId) -> Result<(), FwpError> {
        self.implicit(|t| t.delete_filter(id))
    }

    /// `FwpmFilterDeleteByKey0` in an implicit transaction.
    pub fn delete_filter_by_key(&self, key: &Guid) -> Result<(), FwpError> {
        self.implicit(|t| t.delete_filter_by_key(key))
    }

    /// `FwpmSubLayerDeleteByKey0` in an implicit transaction.
    pub fn delete_sublayer(&self, key: &Guid) -> Result<(), FwpError> {
        self.implicit(|t| t.delete_sublayer(key))
    }

    /// `FwpmCalloutDeleteByKey0` in an implicit transaction.
    pub fn delete_callout(&self, key: &Guid) -> Result<(), FwpError> {
        self.implicit(|t| t.delete_callout(key))
    }

    /// `FwpmProviderDeleteByKey0` in an implicit transaction.
    pub fn delete_provider(&self, key: &Guid) -> Result<(), FwpError> {
        self.implicit(|t| t.delete_provider(key))
    }

    /// `FwpmProviderContextAdd0..3` in an implicit transaction: returns `providerContextId`.
    pub fn add_provider_context(
        &self,
        spec: ProviderContextSpec,
    ) -> Result<ProviderContextId, FwpError> {
        self.implicit(|t| t.add_provider_context(spec))
    }

    /// `FwpmProviderContextDeleteByKey0` in an implicit transaction.
    pub fn delete_provider_context(&self, key: &Guid) -> Result<(), FwpError> {
        self.implicit(|t| t.delete_provider_context(key))
    }

    /// All provider contexts, by key (`FwpmProviderContextEnum0` without a template).
    pub fn provider_contexts(&self) -> Vec<Arc<ProviderContext>> {
        self.mgmt
            .lock()
            .provider_contexts
            .values()
            .cloned()
            .collect()
    }

    /// `FwpmProviderContextGetByKey0`.
    pub fn provider_context(&self, key: &Guid) -> Option<Arc<ProviderContext>> {
        self.mgmt.lock().provider_contexts.get(key).cloned()
    }

    /// All filters the engine enforces, by id (`FwpmFilterEnum0` without a template: boot-time
    /// filters are left out, as without FWP_FILTER_ENUM_FLAG_INCLUDE_BOOTTIME).
    pub fn filters(&self) -> Vec<Arc<RtFilter>> {
        let m = self.mgmt.lock();
        m.filters
            .values()
            .filter(|f| !f.is_boottime())
            .cloned()
            .collect()
    }

    /// A filter by id (`FwpmFilterGetById0`).
    pub fn filter(&self, id: FilterId) -> Option<Arc<RtFilter>> {
        self.mgmt.lock().filters.get(&id).cloned()
    }

    /// A filter id by key.
    pub fn filter_id_by_key(&self, key: &Guid) -> Option<FilterId> {
        self.mgmt.lock().filter_keys.get(key).copied()
    }

    /// All sublayers (built-in ones included).
    pub fn sublayers(&self) -> Vec<SublayerObject> {
        self.mgmt.lock().sublayers.values().cloned().collect()
    }

    /// All providers.
    pub fn providers(&self) -> Vec<ProviderObject> {
        self.mgmt.lock().providers.values().cloned().collect()
    }

    /// All management callouts; `flags` carries FWPM_CALLOUT_FLAG_REGISTERED when the run-time side is
    /// registered.
    pub fn callouts(&self) -> Vec<CalloutObject> {
        let list: Vec<CalloutObject> = self.mgmt.lock().callouts.values().cloned().collect();
        list.into_iter()
            .map(|mut c| {
                if self.is_callout_registered(c.id) {
                    c.spec.flags |= CALLOUT_FLAG_REGISTERED;
                }
                c
            })
            .collect()
    }

    pub(super) fn notify(
        &self,
        callout: CalloutId,
        kind: NotifyType,
        key: Option<&Guid>,
        filter: &mut RtFilter,
    ) -> Option<Status> {
        let reg = self.registry.get(callout)?;
        let _in = reg.enter()?;
        match catch_unwind(AssertUnwindSafe(|| reg.callout.notify(kind, key, filter))) {
            Ok(s) => Some(s),
            Err(_) => {
                self.stats.callback_panics.fetch_add(1, Ordering::Relaxed);
                self.push_event(NetEvent {
                    filter_id: Some(filter.filter_id),
                    callout_id: Some(callout),
                    ..NetEvent::new(NetEventKind::CallbackPanic, filter.layer)
                });
                Some(Status::UNSUCCESSFUL)
            }
        }
    }
}

impl<'e> Transaction<'e> {
    /// A transaction that holds no lock: every operation fails with FWP_E_TXN_IN_PROGRESS.
    fn refused(engine: &'e Engine) -> Self {
        Transaction {
            engine,
            mgmt: None,
            undo: Vec::new(),
            dirty: BTreeSet::new(),
            added: Vec::new(),
            notified_add: Vec::new(),
            deleted: Vec::new(),
            boottime_changed: false,
        }
    }
}

impl Transaction<'_> {
    /// The management state as this transaction sees it (reads inside a session's transaction).
    pub(super) fn state(&self) -> Option<&Mgmt> {
        self.mgmt.as_deref()
    }

    /// A provider context as this transaction sees it (its own adds and deletes included).
    pub fn provider_context(&self, key: &Guid) -> Option<Arc<ProviderContext>> {
        self.mgmt.as_deref()?.provider_contexts.get(key).cloned()
    }

    /// The key of the management callout `id` (`calloutId`), as this transaction sees it (reads
    /// inside a session's transaction must not wait for the lock the transaction holds).
    pub fn callout_key(&self, id: CalloutId) -> Option<Guid> {
        self.mgmt
            .as_deref()?
            .callouts
            .values()
            .find(|c| c.id == id)
            .map(|c| c.spec.key)
    }

    /// The key of the provider context `id`, as this transaction sees it.
    pub fn provider_context_key(&self, id: ProviderContextId) -> Option<Guid> {
        self.mgmt
            .as_deref()?
            .provider_contexts
            .values()
            .find(|pc| pc.id == id)
            .map(|pc| pc.spec.key)
    }

    fn m(&mut self) -> Result<&mut Mgmt, FwpError> {
        // The guard is only taken out by commit/abort, which consume the transaction, so no guard
        // means a refused transaction ([`Engine::begin`]).
        self.mgmt.as_deref_mut().ok_or(FwpError::TxnInProgress)
    }

    /// `FwpmProviderAdd0`.
    pub fn add_provider(&mut self, mut spec: ProviderSpec) -> Result<Guid, FwpError> {
        if spec.name.is_empty() {
            return Err(FwpError::NullDisplayName("provider"));
        }
        let m = self.m()?;
        if spec.key.is_null() {
            spec.key = Guid::from_name("provider", &format!("{}#{}", spec.name, m.next_order));
        }
        if m.providers.contains_key(&spec.key) {
            return Err(FwpError::AlreadyExists {
                kind: "provider",
                key: spec.key,
            });
        }
        m.next_order += 1;
        let key = spec.key;
        m.providers.insert(key, ProviderObject { spec });
        self.undo.push(Undo::AddProvider(key));
        Ok(key)
    }

    /// `FwpmSubLayerAdd0`.
    pub fn add_sublayer(&mut self, mut spec: SublayerSpec) -> Result<Guid, FwpError> {
        if spec.name.is_empty() {
            return Err(FwpError::NullDisplayName("sublayer"));
        }
        let m = self.m()?;
        if spec.key.is_null() {
            spec.key = Guid::from_name("sublayer", &format!("{}#{}", spec.name, m.next_order));
        }
        if m.sublayers.contains_key(&spec.key) {
            return Err(FwpError::AlreadyExists {
                kind: "sublayer",
                key: spec.key,
            });
        }
        m.check_provider(
            spec.provider,
            spec.flags & SUBLAYER_FLAG_PERSISTENT != 0,
            "sublayer",
        )?;
        let order = m.next_order;
        m.next_order += 1;
        let key = spec.key;
        m.sublayers.insert(
            key,
            SublayerObject {
                spec,
                order,
                builtin: false,
            },
        );
        self.undo.push(Undo::AddSublayer(key));
        Ok(key)
    }

    /// `FwpmCalloutAdd0`: returns `calloutId` (the run-time id the key will have when registered).
    pub fn add_callout(&mut self, mut spec: CalloutSpec) -> Result<CalloutId, FwpError> {
        if spec.name.is_empty() {
            return Err(FwpError::NullDisplayName("callout"));
        }
        if catalogue::layer(spec.applicable_layer).is_none() {
            return Err(FwpError::LayerNotFound(spec.applicable_layer.to_string()));
        }
        let engine = self.engine;
        let m = self.m()?;
        if spec.key.is_null() {
            spec.key = Guid::from_name("callout", &format!("{}#{}", spec.name, m.next_order));
        }
        if m.callouts.contains_key(&spec.key) {
            return Err(FwpError::AlreadyExists {
                kind: "callout",
                key: spec.key,
            });
        }
        m.check_provider(
            spec.provider,
            spec.flags & CALLOUT_FLAG_PERSISTENT != 0,
            "callout",
        )?;
        m.next_order += 1;
        spec.flags &= !CALLOUT_FLAG_REGISTERED;
        let id = engine.registry.id_for_key(spec.key);
        let key = spec.key;
        m.callouts.insert(key, CalloutObject { spec, id });
        self.undo.push(Undo::AddCallout(key));
        Ok(id)
    }

    /// `FwpmProviderContextAdd0..3` (§11.4): returns `providerContextId`. A persistent provider
    /// context may only reference a persistent provider (§11.3).
    pub fn add_provider_context(
        &mut self,
        mut spec: ProviderContextSpec,
    ) -> Result<ProviderContextId, FwpError> {
        if spec.name.is_empty() {
            return Err(FwpError::NullDisplayName("provider context"));
        }
        let unknown = spec.flags & !PROVIDER_CONTEXT_FLAG_PERSISTENT;
        if unknown != 0 {
            return Err(FwpError::InvalidFlags(format!(
                "unknown or reserved provider context flag bits {unknown:#x}"
            )));
        }
        if !spec.context_type.is_valid() {
            return Err(FwpError::InvalidParameter(format!(
                "{} is not an FWPM_PROVIDER_CONTEXT_TYPE",
                spec.context_type.0
            )));
        }
        let m = self.m()?;
        if spec.key.is_null() {
            let n = m.next_provider_context_id;
            spec.key = Guid::from_name("provider-context", &format!("{}#{n}", spec.name));
        }
        if m.provider_contexts.contains_key(&spec.key) {
            return Err(FwpError::AlreadyExists {
                kind: "provider context",
                key: spec.key,
            });
        }
        m.check_provider(spec.provider, spec.is_persistent(), "provider context")?;
        let id = ProviderContextId(m.next_provider_context_id);
        m.next_provider_context_id += 1;
        let key = spec.key;
        m.provider_contexts
            .insert(key, Arc::new(ProviderContext { spec, id }));
        self.undo.push(Undo::AddProviderContext(key));
        Ok(id)
    }

    /// `FwpmProviderContextDeleteByKey0`: FWP_E_IN_USE while a filter references it (§11.3).
    pub fn delete_provider_context(&mut self, key: &Guid) -> Result<(), FwpError> {
        let m = self.m()?;
        if !m.provider_contexts.contains_key(key) {
            return Err(FwpError::ProviderContextNotFound(key.to_string()));
        }
        if let Some(f) = m
            .filters
            .values()
            .find(|f| f.provider_context_key == Some(*key))
        {
            return Err(FwpError::InUse {
                kind: "provider context",
                key: *key,
                by: format!("filter {} ({})", f.filter_id.0, f.name),
            });
        }
        let pc = m
            .provider_contexts
            .remove(key)
            .ok_or_else(|| FwpError::ProviderContextNotFound(key.to_string()))?;
        self.undo.push(Undo::DelProviderContext(pc));
        Ok(())
    }

    /// `FwpmProviderContextDeleteById0`.
    pub fn delete_provider_context_by_id(&mut self, id: ProviderContextId) -> Result<(), FwpError> {
        let key = self
            .m()?
            .provider_contexts
            .values()
            .find(|pc| pc.id == id)
            .map(|pc| pc.spec.key)
            .ok_or_else(|| FwpError::ProviderContextNotFound(format!("id {}", id.0)))?;
        self.delete_provider_context(&key)
    }

    /// `FwpmFilterAdd0`: validates the filter (§11.4 errors), sends ADD_FILTER to a registered
    /// callout (which may refuse it), and returns the new `filterId`.
    pub fn add_filter(&mut self, spec: FilterSpec) -> Result<FilterId, FwpError> {
        let engine = self.engine;
        let mut filter = self.validate_filter(&spec)?;
        if let (Some(cid), false) = (filter.callout_id, filter.is_boottime()) {
            let key = filter.key;
            if let Some(status) = engine.notify(cid, NotifyType::AddFilter, Some(&key), &mut filter)
            {
                if !status.is_success() {
                    return Err(FwpError::CalloutNotificationFailed {
                        callout: filter.callout_key.unwrap_or(Guid::NULL),
                        filter: key,
                        status,
                    });
                }
                self.notified_add.push(filter.filter_id);
            }
        }
        let m = self.m()?;
        m.next_filter_id += 1;
        let id = filter.filter_id;
        let layer = filter.layer;
        let f = Arc::new(filter);
        m.filter_keys.insert(f.key, id);
        m.filters.insert(id, f.clone());
        // §11.3: a boot-time filter is enforced only before the engine runs (by the host's boot
        // ruleset); the running engine keeps it as an object and never classifies with it.
        let boottime = f.is_boottime();
        if let (Some(set), false) = (m.by_layer.get_mut(usize::from(layer.0)), boottime) {
            set.insert(id);
        }
        self.undo.push(Undo::AddFilter(id));
        if boottime {
            self.boottime_changed = true;
            return Ok(id);
        }
        self.dirty.insert(layer);
        self.added.push(f);
        Ok(id)
    }

    fn validate_filter(&mut self, spec: &FilterSpec) -> Result<RtFilter, FwpError> {
        if spec.name.is_empty() {
            return Err(FwpError::NullDisplayName("filter"));
        }
        let layer = catalogue::layer(spec.layer)
            .ok_or_else(|| FwpError::LayerNotFound(spec.layer.to_string()))?;
        check_action(spec.action)?;
        check_flags(spec.flags, spec.action)?;
        // §11.3: a boot-time filter outlives the engine's start like a persistent one, so it
        // may only reference persistent or built-in objects.
        let persistent = spec.flags.contains(FilterFlags::PERSISTENT)
            || spec.flags.contains(FilterFlags::BOOTTIME);
        let m = self.m()?;
        let sublayer_key = if spec.sublayer.is_null() {
            SUBLAYER_UNIVERSAL
        } else {
            spec.sublayer
        };
        let sublayer = m
            .sublayers
            .get(&sublayer_key)
            .ok_or_else(|| FwpError::SublayerNotFound(sublayer_key.to_string()))?;
        if persistent && sublayer.spec.flags & SUBLAYER_FLAG_PERSISTENT == 0 {
            return Err(FwpError::LifetimeMismatch {
                kind: "filter",
                target: format!("sublayer {}", sublayer.spec.name),
            });
        }
        m.check_provider(spec.provider, persistent, "filter")?;
        let (callout_id, callout_key, uses_context) = if spec.action.is_callout() {
            let key = spec
                .callout
                .ok_or_else(|| FwpError::CalloutNotFound("(none given)".into()))?;
            let c = m
                .callouts
                .get(&key)
                .ok_or_else(|| FwpError::CalloutNotFound(key.to_string()))?;
            if c.spec.applicable_layer != spec.layer {
                return Err(FwpError::IncompatibleLayer {
                    callout: c.spec.name.clone(),
                    callout_layer: c.spec.applicable_layer.to_string(),
                    layer: layer.name.to_string(),
                });
            }
            if persistent && c.spec.flags & CALLOUT_FLAG_PERSISTENT == 0 {
                return Err(FwpError::LifetimeMismatch {
                    kind: "filter",
                    target: format!("callout {}", c.spec.name),
                });
            }
            let uses = c.spec.flags & CALLOUT_FLAG_USES_PROVIDER_CONTEXT != 0;
            (Some(c.id), Some(key), uses)
        } else {
            (None, None, false)
        };
        let bound = m.filter_context(spec, uses_context)?;
        let conditions = spec
            .conditions
            .iter()
            .map(|c| Condition::bind(layer, c))
            .collect::<Result<Vec<_>, _>>()?;
        let weight = effective_weight(spec.weight, &conditions)?;
        let id = FilterId(m.next_filter_id);
        let key = if spec.key.is_null() {
            Guid::from_name_numbered("filter", &spec.name, id.0)
        } else {
            spec.key
        };
        if m.filter_keys.contains_key(&key) {
            return Err(FwpError::AlreadyExists {
                kind: "filter",
                key,
            });
        }
        let conditions = ConditionSet::new(conditions);
        let mut flags = RtFilterFlags::default();
        if spec.flags.contains(FilterFlags::CLEAR_ACTION_RIGHT) {
            flags |= RtFilterFlags::CLEAR_ACTION_RIGHT;
        }
        if spec
            .flags
            .contains(FilterFlags::PERMIT_IF_CALLOUT_UNREGISTERED)
        {
            flags |= RtFilterFlags::PERMIT_IF_CALLOUT_UNREGISTERED;
        }
        if conditions.has_or_groups() {
            flags |= RtFilterFlags::OR_CONDITIONS;
        }
        Ok(RtFilter {
            filter_id: id,
            key,
            name: spec.name.as_str().into(),
            layer: spec.layer,
            sublayer: sublayer_key,
            sublayer_weight: sublayer.spec.weight,
            weight,
            flags,
            mgmt_flags: spec.flags,
            conditions,
            action: spec.action,
            callout_id,
            callout_key,
            provider: spec.provider,
            provider_context_key: bound.key,
            provider_context: bound.delivered,
            context: bound.context,
        })
    }

    /// `FwpmFilterDeleteById0`.
    pub fn delete_filter(&mut self, id: FilterId) -> Result<(), FwpError> {
        let m = self.m()?;
        let f = m
            .filters
            .remove(&id)
            .ok_or_else(|| FwpError::FilterNotFound(format!("id {}", id.0)))?;
        m.filter_keys.remove(&f.key);
        if let Some(set) = m.by_layer.get_mut(usize::from(f.layer.0)) {
            set.remove(&id);
        }
        if f.is_boottime() {
            self.undo.push(Undo::DelFilter(f));
            self.boottime_changed = true;
            return Ok(());
        }
        self.dirty.insert(f.layer);
        self.deleted.push(f.clone());
        self.undo.push(Undo::DelFilter(f));
        Ok(())
    }

    /// `FwpmFilterDeleteByKey0`.
    pub fn delete_filter_by_key(&mut self, key: &Guid) -> Result<(), FwpError> {
        let id = *self
            .m()?
            .filter_keys
            .get(key)
            .ok_or_else(|| FwpError::FilterNotFound(key.to_string()))?;
        self.delete_filter(id)
    }

    /// `FwpmSubLayerDeleteByKey0`: FWP_E_IN_USE while filters use it, FWP_E_BUILTIN_OBJECT for
    /// built-in sublayers.
    pub fn delete_sublayer(&mut self, key: &Guid) -> Result<(), FwpError> {
        let m = self.m()?;
        let s = m
            .sublayers
            .get(key)
            .ok_or_else(|| FwpError::SublayerNotFound(key.to_string()))?;
        if s.builtin {
            return Err(FwpError::BuiltinObject(s.spec.name.clone()));
        }
        if let Some(f) = m.filters.values().find(|f| f.sublayer == *key) {
            return Err(FwpError::InUse {
                kind: "sublayer",
                key: *key,
                by: format!("filter {} ({})", f.filter_id.0, f.name),
            });
        }
        let s = m
            .sublayers
            .remove(key)
            .ok_or_else(|| FwpError::SublayerNotFound(key.to_string()))?;
        self.undo.push(Undo::DelSublayer(s));
        Ok(())
    }

    /// `FwpmCalloutDeleteByKey0`: FWP_E_IN_USE while a filter references it.
    pub fn delete_callout(&mut self, key: &Guid) -> Result<(), FwpError> {
        let m = self.m()?;
        if !m.callouts.contains_key(key) {
            return Err(FwpError::CalloutNotFound(key.to_string()));
        }
        if let Some(f) = m.filters.values().find(|f| f.callout_key == Some(*key)) {
            return Err(FwpError::InUse {
                kind: "callout",
                key: *key,
                by: format!("filter {} ({})", f.filter_id.0, f.name),
            });
        }
        let c = m
            .callouts
            .remove(key)
            .ok_or_else(|| FwpError::CalloutNotFound(key.to_string()))?;
        self.undo.push(Undo::DelCallout(c));
        Ok(())
    }

    /// `FwpmProviderDeleteByKey0`: FWP_E_IN_USE while anything references it.
    pub fn delete_provider(&mut self, key: &Guid) -> Result<(), FwpError> {
        let m = self.m()?;
        if !m.providers.contains_key(key) {
            return Err(FwpError::ProviderNotFound(key.to_string()));
        }
        let by = m
            .sublayers
            .values()
            .find(|s| s.spec.provider == Some(*key))
            .map(|s| format!("sublayer {}", s.spec.name))
            .or_else(|| {
                m.callouts
                    .values()
                    .find(|c| c.spec.provider == Some(*key))
                    .map(|c| format!("callout {}", c.spec.name))
            })
            .or_else(|| {
                m.provider_contexts
                    .values()
                    .find(|pc| pc.spec.provider == Some(*key))
                    .map(|pc| format!("provider context {}", pc.spec.name))
            })
            .or_else(|| {
                m.filters
                    .values()
                    .find(|f| f.provider == Some(*key))
                    .map(|f| format!("filter {}", f.name))
            });
        if let Some(by) = by {
            return Err(FwpError::InUse {
                kind: "provider",
                key: *key,
                by,
            });
        }
        let p = m
            .providers
            .remove(key)
            .ok_or_else(|| FwpError::ProviderNotFound(key.to_string()))?;
        self.undo.push(Undo::DelProvider(p));
        Ok(())
    }

    /// `FwpmTransactionCommit0`: publishes every change at once, then delivers DELETE_FILTER and
    /// ADD_FILTER_POST_COMMIT notifications.
    pub fn commit(mut self) {
        let engine = self.engine;
        if let Some(mut m) = self.mgmt.take() {
            if !self.dirty.is_empty() {
                let current = engine.snapshot.load_full();
                let sublayers_changed = self
                    .undo
                    .iter()
                    .any(|u| matches!(u, Undo::AddSublayer(_) | Undo::DelSublayer(_)));
                let empty = LayerView::default();
                let mut views = Vec::with_capacity(self.dirty.len());
                for layer in &self.dirty {
                    let i = usize::from(layer.0);
                    if let Some(g) = m.generations.get_mut(i) {
                        *g += 1;
                    }
                    let generation = m.generations.get(i).copied().unwrap_or(0);
                    // Issue 15 (B2): only the touched sublayers change (index/layer.rs),
                    // unless sublayers themselves changed (their order is rebuilt).
                    let (a, d) = (&self.added, &self.deleted);
                    let prev = current.layer(i).unwrap_or(&empty);
                    let view = (!sublayers_changed)
                        .then(|| crate::index::layer::apply(prev, *layer, a, d))
                        .flatten()
                        .unwrap_or_else(|| m.build_layer(*layer));
                    views.push((i, view, generation));
                }
                let next = current.with_layers(views);
                drop(current);
                // The observer is read once, and the changed layers listed only for one (issue
                // 15, B2: a single-filter commit allocates as little as it can).
                let observer = engine.commit_observer.lock().clone();
                if let Some(o) = &observer {
                    let changed: Vec<LayerId> = self.dirty.iter().copied().collect();
                    o(engine, super::CommitPhase::Publishing { layers: &changed });
                }
                let epoch = next.epoch;
                engine.snapshot.store(Arc::new(next));
                engine.note_published(epoch);
                if let Some(o) = &observer {
                    o(engine, super::CommitPhase::Published);
                }
            }
            if self.boottime_changed {
                m.publish_boottime(engine);
            }
            *engine.writer_thread.lock() = None;
            drop(m);
        }
        self.undo.clear();
        for f in std::mem::take(&mut self.added) {
            let Some(cid) = f.callout_id else { continue };
            if self.deleted.iter().any(|d| d.filter_id == f.filter_id) {
                continue; // added and deleted in this transaction: it never became active
            }
            let wants = engine
                .registry
                .get(cid)
                .is_some_and(|r| r.flags.contains(CalloutFlags::ENABLE_COMMIT_ADD_NOTIFY));
            if wants {
                let mut copy = (*f).clone();
                let key = copy.key;
                engine.notify(cid, NotifyType::AddFilterPostCommit, Some(&key), &mut copy);
            }
        }
        // §12 (a): DELETE_FILTER only once no classify can see the filter (engine/teardown.rs).
        engine.defer_delete_notifies(std::mem::take(&mut self.deleted));
    }

    /// `FwpmTransactionAbort0`: nothing of the transaction becomes visible.
    pub fn abort(mut self) {
        self.rollback();
    }

    fn rollback(&mut self) {
        let engine = self.engine;
        let Some(mut m) = self.mgmt.take() else {
            return;
        };
        while let Some(u) = self.undo.pop() {
            match u {
                Undo::AddProvider(k) => {
                    m.providers.remove(&k);
                }
                Undo::DelProvider(p) => {
                    m.providers.insert(p.spec.key, p);
                }
                Undo::AddSublayer(k) => {
                    m.sublayers.remove(&k);
                }
                Undo::DelSublayer(s) => {
                    m.sublayers.insert(s.spec.key, s);
                }
                Undo::AddCallout(k) => {
                    m.callouts.remove(&k);
                }
                Undo::DelCallout(c) => {
                    m.callouts.insert(c.spec.key, c);
                }
                Undo::AddProviderContext(k) => {
                    m.provider_contexts.remove(&k);
                }
                Undo::DelProviderContext(pc) => {
                    m.provider_contexts.insert(pc.spec.key, pc);
                }
                Undo::AddFilter(id) => {
                    if let Some(f) = m.filters.remove(&id) {
                        m.filter_keys.remove(&f.key);
                        if let Some(set) = m.by_layer.get_mut(usize::from(f.layer.0)) {
                            set.remove(&id);
                        }
                    }
                }
                Undo::DelFilter(f) => {
                    m.filter_keys.insert(f.key, f.filter_id);
                    if let (Some(set), false) =
                        (m.by_layer.get_mut(usize::from(f.layer.0)), f.is_boottime())
                    {
                        set.insert(f.filter_id);
                    }
                    m.filters.insert(f.filter_id, f);
                }
            }
        }
        *engine.writer_thread.lock() = None;
        drop(m);
        let notified = std::mem::take(&mut self.notified_add);
        for f in std::mem::take(&mut self.added) {
            if let (Some(cid), true) = (f.callout_id, notified.contains(&f.filter_id)) {
                let mut copy = (*f).clone();
                engine.notify(cid, NotifyType::DeleteFilter, None, &mut copy);
            }
        }
        self.deleted.clear();
    }
}

impl Drop for Transaction<'_> {
    fn drop(&mut self) {
        self.rollback();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::catalogue::layers;
    use crate::constants::ActionType;
    use crate::engine::SessionSpec;

    // §11.2 / T-MGMT-3 outside a session: a second begin on the thread holding the writer lock
    // fails at once with FWP_E_TXN_IN_PROGRESS (it used to wait on its own lock forever).
    #[test]
    fn t_mgmt_3_second_begin_on_the_same_thread_is_txn_in_progress_not_a_deadlock() {
        let e = Engine::default();
        let mut outer = e.begin();
        outer
            .add_filter(FilterSpec::new(
                "a",
                layers::INBOUND_TRANSPORT_V4,
                ActionType::BLOCK,
            ))
            .unwrap();
        assert!(matches!(e.try_begin(), Err(FwpError::TxnInProgress)));
        // The infallible form answers the same error from every operation and commits nothing.
        let mut inner = e.begin();
        let spec = FilterSpec::new("b", layers::INBOUND_TRANSPORT_V4, ActionType::PERMIT);
        assert!(matches!(
            inner.add_filter(spec.clone()),
            Err(FwpError::TxnInProgress)
        ));
        inner.commit();
        assert!(matches!(
            e.add_filter(spec.clone()),
            Err(FwpError::TxnInProgress)
        ));
        // A session is its own unit (§11.1), not the thread: one on the same thread waits for
        // the lock up to its wait limit (T-MGMT-5), never forever.
        let mut s = e
            .open_session(
                SessionSpec {
                    txn_wait_timeout: std::time::Duration::from_millis(20),
                    ..SessionSpec::default()
                },
                None,
            )
            .unwrap();
        assert!(matches!(s.begin(0), Err(FwpError::Timeout { .. })));
        drop(s);
        outer.commit();
        // Released: the next begin works and sees the committed filter.
        let mut again = e.try_begin().unwrap();
        again.add_filter(spec).unwrap();
        again.commit();
        assert_eq!(e.filters().len(), 2);
    }

    #[test]
    fn another_thread_waits_for_the_writer_instead_of_failing() {
        let e = Engine::default();
        let t = e.begin();
        std::thread::scope(|sc| {
            let h = sc.spawn(|| e.try_begin().map(Transaction::commit).is_ok());
            t.abort();
            assert!(h.join().unwrap());
        });
        assert!(e.try_begin().is_ok());
    }

    fn boot(name: &str, weight: u8) -> FilterSpec {
        let mut f = FilterSpec::new(name, layers::INBOUND_TRANSPORT_V4, ActionType::BLOCK);
        f.flags = FilterFlags::BOOTTIME;
        f.weight = crate::WeightSpec::Range(weight);
        f
    }

    // §11.3: a boot-time filter is kept, published in evaluation order and enumerable with the
    // §11.4 flags, but the running engine never classifies with it.
    #[test]
    fn boottime_filters_are_published_never_classified() {
        let e = Engine::default();
        let l = layers::INBOUND_TRANSPORT_V4;
        let before = e.layer_generation(l);
        let low = e.add_filter(boot("low", 1)).unwrap();
        let high = e.add_filter(boot("high", 9)).unwrap();
        let normal = e
            .add_filter(FilterSpec::new("n", l, ActionType::PERMIT))
            .unwrap();
        let set = e.boottime();
        assert_eq!(set.generation, 2);
        let order: Vec<FilterId> = set.filters.iter().map(|f| f.filter_id()).collect();
        assert_eq!(order, vec![high, low], "weight descending");
        assert_eq!(e.filters().len(), 1, "only the run-time filter");
        assert_eq!(e.filters()[0].filter_id(), normal);
        assert_eq!(
            e.layer_generation(l),
            before + 1,
            "boot-time adds publish no layer"
        );
        let mut s = e.open_session(SessionSpec::default(), None).unwrap();
        let count = |s: &mut crate::engine::Session<'_>, flags: u32| {
            let t = crate::engine::FilterEnumTemplate {
                flags,
                ..Default::default()
            };
            s.filters(&t).unwrap().len()
        };
        assert_eq!(count(&mut s, 0), 1);
        assert_eq!(
            count(&mut s, crate::engine::FILTER_ENUM_FLAG_INCLUDE_BOOTTIME),
            3
        );
        assert_eq!(
            count(&mut s, crate::engine::FILTER_ENUM_FLAG_BOOTTIME_ONLY),
            2
        );
        s.delete_filter(low).unwrap();
        assert_eq!(e.boottime().filters.len(), 1);
        assert_eq!(e.boottime().generation, 3);
    }

    #[test]
    fn an_aborted_boottime_add_publishes_nothing() {
        let e = Engine::default();
        let mut t = e.begin();
        t.add_filter(boot("a", 1)).unwrap();
        t.abort();
        assert_eq!(e.boottime().generation, 0);
        assert!(e.boottime().filters.is_empty());
        assert!(e.filter_id_by_key(&Guid::NULL).is_none());
    }

    // §11.3 reference rules: a boot-time filter outlives the engine's start, so a static
    // sublayer is a lifetime mismatch, and a dynamic session cannot add one.
    #[test]
    fn boottime_filters_follow_the_persistent_reference_rules() {
        let e = Engine::default();
        let sub = e
            .add_sublayer(SublayerSpec {
                key: Guid::NULL,
                name: "static".into(),
                description: String::new(),
                flags: 0,
                provider: None,
                weight: 5,
            })
            .unwrap();
        let mut f = boot("f", 1);
        f.sublayer = sub;
        assert!(matches!(
            e.add_filter(f),
            Err(FwpError::LifetimeMismatch { .. })
        ));
        let mut s = e
            .open_session(
                SessionSpec {
                    flags: crate::engine::SESSION_FLAG_DYNAMIC,
                    ..SessionSpec::default()
                },
                None,
            )
            .unwrap();
        assert!(matches!(
            s.add_filter(boot("g", 1)),
            Err(FwpError::DynamicSessionInProgress(_))
        ));
    }
}
