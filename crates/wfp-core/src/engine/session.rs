//! Sessions (§11.1) and their transactions (§11.2), with object lifetimes (§11.3): the unit a
//! management client works in.
//!
//! ```text
//!  Engine::open_session(spec) ─► Session ── begin(flags) ─► explicit txn ── commit / abort
//!        │ key rule (ALREADY_EXISTS)      │ add / delete / enumerate: in the open txn, or each in
//!        │                                │ an implicit one (begin, op, commit)
//!        ▼                                ▼
//!   Sessions registry: open sessions, owner of every dynamic object, orphans
//!        ▲
//!  Session::close / drop ─► abort open txn ─► delete the session's dynamic objects (one txn)
//! ```
//!
//! * One transaction per session: a second `begin` → FWP_E_TXN_IN_PROGRESS (never a wait on the
//!   session's own lock). The writer lock is taken with the session's wait limit
//!   (`txnWaitTimeoutInMSec`, 0 → 15 s) → FWP_E_TIMEOUT, so no begin waits forever.
//! * Read-only transactions (FWPM_TXN_READ_ONLY) refuse writes with FWP_E_INCOMPATIBLE_TXN. They
//!   hold the same lock as a writer (reads see one consistent state).
//! * A failed operation does not end the transaction (T-MGMT-2).
//! * Dynamic sessions own what they add; their objects die with them (T-MGMT-1). A dynamic
//!   object may be referenced only by dynamic objects of the same session, a persistent or static
//!   one never (FWP_E_LIFETIME_MISMATCH); a dynamic session cannot add persistent objects
//!   (FWP_E_DYNAMIC_SESSION_IN_PROGRESS).
//! * Changes to persistent objects are handed to the session's [`PersistHook`] at commit, before
//!   the engine publishes them; a hook failure aborts the transaction (the store and the engine
//!   never disagree about a committed transaction).
//!
//! The wait limit is the only place the engine bounds a blocking call by time; it reads no clock
//! to decide anything else.

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;

use super::enumerate::{self, FilterEnumTemplate, ObjectEnumTemplate, ProviderContextEnumTemplate};
use super::mgmt::Mgmt;
use super::{CalloutObject, Engine, ProviderObject, SublayerObject, Transaction};
use crate::constants::FilterFlags;
use crate::filter::{
    CalloutId, CalloutSpec, FilterId, FilterSpec, ProviderSpec, RtFilter, SublayerSpec,
    CALLOUT_FLAG_PERSISTENT, CALLOUT_FLAG_REGISTERED, PROVIDER_FLAG_PERSISTENT,
    SUBLAYER_FLAG_PERSISTENT,
};
use crate::guid::Guid;
use crate::provider_context::{ProviderContext, ProviderContextId, ProviderContextSpec};
use crate::status::FwpError;

/// `FWPM_SESSION_FLAG_DYNAMIC`.
pub const SESSION_FLAG_DYNAMIC: u32 = 0x0000_0001;
/// `FWPM_TXN_READ_ONLY`.
pub const TXN_READ_ONLY: u32 = 0x0000_0001;
/// The wait limit a session gets for `txnWaitTimeoutInMSec` = 0 (§11.2, §12).
pub const DEFAULT_TXN_WAIT: Duration = Duration::from_secs(15);

/// Who opened a session (`FWPM_SESSION0.processId/sid/username`; filled in by the host from the
/// peer's credentials, never from what the client claims).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SessionOwner {
    /// `processId`.
    pub process_id: u32,
    /// The user id (stands for `sid`).
    pub user_id: u32,
    /// The primary group id.
    pub group_id: u32,
    /// `username`.
    pub username: String,
}

/// `FWPM_SESSION0` as given to [`Engine::open_session`].
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SessionSpec {
    /// `sessionKey` (NULL → the engine assigns one).
    pub key: Guid,
    /// `displayData.name`.
    pub name: String,
    /// `displayData.description`.
    pub description: String,
    /// `FWPM_SESSION_FLAG_*`.
    pub flags: u32,
    /// `txnWaitTimeoutInMSec` (zero → [`DEFAULT_TXN_WAIT`]).
    pub txn_wait_timeout: Duration,
    /// The owner.
    pub owner: SessionOwner,
}

/// An open session as enumerated (`FwpmSessionEnum0`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SessionInfo {
    /// The spec it was opened with (key and wait limit filled in).
    pub spec: SessionSpec,
    /// Dynamic objects it owns now (committed).
    pub dynamic_objects: usize,
}

/// A management object, by key (how lifetimes, the store and dynamic cleanup name objects).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ObjectRef {
    /// A filter (`filterKey`); ordered first so cleanup deletes filters before what they use.
    Filter(Guid),
    /// A provider context (`providerContextKey`); after filters (they reference it), before
    /// providers (it references one).
    ProviderContext(Guid),
    /// A management callout.
    Callout(Guid),
    /// A sublayer.
    Sublayer(Guid),
    /// A provider.
    Provider(Guid),
}

impl fmt::Display for ObjectRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Filter(k) => write!(f, "filter {k}"),
            Self::ProviderContext(k) => write!(f, "provider context {k}"),
            Self::Callout(k) => write!(f, "callout {k}"),
            Self::Sublayer(k) => write!(f, "sublayer {k}"),
            Self::Provider(k) => write!(f, "provider {k}"),
        }
    }
}

/// A change to a persistent object, in the order the transaction made it.
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub enum PersistentChange {
    /// A persistent provider was added.
    AddProvider(ProviderSpec),
    /// A persistent sublayer was added.
    AddSublayer(SublayerSpec),
    /// A persistent callout was added.
    AddCallout(CalloutSpec),
    /// A persistent filter was added (its spec with the key the engine assigned).
    AddFilter(FilterSpec),
    /// A persistent provider context was added (key filled in).
    AddProviderContext(ProviderContextSpec),
    /// A persistent object was deleted.
    Delete(ObjectRef),
}

/// Makes a committing transaction's persistent changes durable (wfpd's store). Called with the
/// writer lock held, before the engine publishes; an error aborts the transaction.
pub trait PersistHook: Sync {
    /// Writes `changes` atomically (all or none).
    fn persist(&self, changes: &[PersistentChange]) -> Result<(), String>;
}

#[derive(Default)]
struct Registry {
    next_id: u64,
    open: BTreeMap<u64, SessionSpec>,
    /// The owning session of every dynamic object.
    owners: HashMap<ObjectRef, u64>,
    /// Dynamic objects of closed sessions that could not be deleted yet (the lock was busy).
    orphans: Vec<ObjectRef>,
}

/// The engine's session table.
#[derive(Default)]
pub(crate) struct Sessions {
    inner: Mutex<Registry>,
}

/// What a session knows about itself inside an operation.
#[derive(Clone, Copy)]
struct Cx<'e> {
    engine: &'e Engine,
    id: u64,
    dynamic: bool,
}

/// An open transaction of a session (explicit or implicit).
struct OpenTxn<'e> {
    txn: Transaction<'e>,
    read_only: bool,
    /// Dynamic objects added in it (owned by the session once committed).
    added: Vec<ObjectRef>,
    /// Objects deleted in it.
    deleted: Vec<ObjectRef>,
    journal: Vec<PersistentChange>,
}

impl OpenTxn<'_> {
    fn state(&self) -> Result<&Mgmt, FwpError> {
        self.txn.state().ok_or(FwpError::NoTxnInProgress)
    }
}

/// An open session (`FwpmEngineOpen0` … `FwpmEngineClose0`). Dropping it closes it.
pub struct Session<'e> {
    cx: Cx<'e>,
    spec: SessionSpec,
    persist: Option<&'e dyn PersistHook>,
    txn: Option<OpenTxn<'e>>,
    closed: bool,
}

impl Engine {
    /// `FwpmEngineOpen0`: a session with `spec.key` (NULL → assigned); FWP_E_ALREADY_EXISTS when a
    /// session with that key is open (T-MGMT-11). `persist` receives the persistent changes of
    /// every commit.
    pub fn open_session<'e>(
        &'e self,
        mut spec: SessionSpec,
        persist: Option<&'e dyn PersistHook>,
    ) -> Result<Session<'e>, FwpError> {
        if spec.txn_wait_timeout.is_zero() {
            spec.txn_wait_timeout = DEFAULT_TXN_WAIT;
        }
        if spec.flags & !SESSION_FLAG_DYNAMIC != 0 {
            return Err(FwpError::InvalidFlags(format!(
                "unknown session flag bits {:#x}",
                spec.flags & !SESSION_FLAG_DYNAMIC
            )));
        }
        self.reap_orphans(spec.txn_wait_timeout);
        let id = {
            let mut r = self.sessions.inner.lock();
            r.next_id += 1;
            let id = r.next_id;
            if spec.key.is_null() {
                spec.key = Guid::from_name("session", &id.to_string());
            }
            if r.open.values().any(|s| s.key == spec.key) {
                return Err(FwpError::AlreadyExists {
                    kind: "session",
                    key: spec.key,
                });
            }
            r.open.insert(id, spec.clone());
            id
        };
        Ok(Session {
            cx: Cx {
                engine: self,
                id,
                dynamic: spec.flags & SESSION_FLAG_DYNAMIC != 0,
            },
            spec,
            persist,
            txn: None,
            closed: false,
        })
    }

    /// The open sessions (`FwpmSessionEnum0`), in opening order.
    pub fn sessions(&self) -> Vec<SessionInfo> {
        let r = self.sessions.inner.lock();
        r.open
            .iter()
            .map(|(id, spec)| SessionInfo {
                spec: spec.clone(),
                dynamic_objects: r.owners.values().filter(|o| *o == id).count(),
            })
            .collect()
    }

    /// Deletes the dynamic objects of sessions that closed while the writer lock was busy. Called
    /// by every open and close; returns how many objects it deleted.
    pub fn reap_orphans(&self, wait: Duration) -> usize {
        let orphans = std::mem::take(&mut self.sessions.inner.lock().orphans);
        self.delete_owned(orphans, wait)
    }

    /// Deletes `objects` in one transaction (filters first); parks them as orphans when the lock
    /// stays busy past `wait`.
    fn delete_owned(&self, mut objects: Vec<ObjectRef>, wait: Duration) -> usize {
        if objects.is_empty() {
            return 0;
        }
        let Some(guard) = self.mgmt.try_lock_for(wait) else {
            self.sessions.inner.lock().orphans.extend(objects);
            return 0;
        };
        objects.sort();
        let mut txn = self.begin_locked(guard);
        // Objects someone else deleted meanwhile are skipped (their delete fails NOT_FOUND).
        let deleted = objects
            .iter()
            .filter(|o| match o {
                ObjectRef::Filter(k) => txn.delete_filter_by_key(k).is_ok(),
                ObjectRef::ProviderContext(k) => txn.delete_provider_context(k).is_ok(),
                ObjectRef::Callout(k) => txn.delete_callout(k).is_ok(),
                ObjectRef::Sublayer(k) => txn.delete_sublayer(k).is_ok(),
                ObjectRef::Provider(k) => txn.delete_provider(k).is_ok(),
            })
            .count();
        txn.commit();
        deleted
    }
}

impl Cx<'_> {
    /// §11.3 reference rules for a new object of `kind` referencing `refs`.
    fn check_lifetime(
        &self,
        kind: &'static str,
        persistent: bool,
        refs: &[ObjectRef],
    ) -> Result<(), FwpError> {
        if self.dynamic && persistent {
            return Err(FwpError::DynamicSessionInProgress(kind));
        }
        let r = self.engine.sessions.inner.lock();
        for target in refs {
            match r.owners.get(target) {
                Some(owner) if !self.dynamic || *owner != self.id => {
                    return Err(FwpError::LifetimeMismatch {
                        kind,
                        target: format!("dynamic {target} of another lifetime"),
                    });
                }
                _ => {}
            }
        }
        Ok(())
    }

    fn added(&self, open: &mut OpenTxn<'_>, object: ObjectRef, change: Option<PersistentChange>) {
        if self.dynamic {
            self.engine
                .sessions
                .inner
                .lock()
                .owners
                .insert(object, self.id);
            open.added.push(object);
        }
        open.journal.extend(change);
    }
}

fn provider_ref(p: Option<Guid>) -> Vec<ObjectRef> {
    p.map(ObjectRef::Provider).into_iter().collect()
}

impl<'e> Session<'e> {
    /// `sessionKey`.
    pub fn key(&self) -> Guid {
        self.spec.key
    }

    /// The spec the session was opened with.
    pub fn spec(&self) -> &SessionSpec {
        &self.spec
    }

    /// True while an explicit transaction is open.
    pub fn in_transaction(&self) -> bool {
        self.txn.is_some()
    }

    /// `FwpmTransactionBegin0`: FWP_E_TXN_IN_PROGRESS when this session has one (T-MGMT-3),
    /// FWP_E_TIMEOUT when the lock stays busy past the wait limit (T-MGMT-5).
    pub fn begin(&mut self, flags: u32) -> Result<(), FwpError> {
        if self.txn.is_some() {
            return Err(FwpError::TxnInProgress);
        }
        if flags & !TXN_READ_ONLY != 0 {
            return Err(FwpError::InvalidFlags(format!(
                "unknown transaction flag bits {:#x}",
                flags & !TXN_READ_ONLY
            )));
        }
        self.txn = Some(self.lock(flags & TXN_READ_ONLY != 0)?);
        Ok(())
    }

    /// `FwpmTransactionCommit0`: persists, then publishes every successful operation of the
    /// transaction (T-MGMT-2).
    pub fn commit(&mut self) -> Result<(), FwpError> {
        let open = self.txn.take().ok_or(FwpError::NoTxnInProgress)?;
        self.finish(open)
    }

    /// `FwpmTransactionAbort0`: nothing of the transaction becomes visible.
    pub fn abort(&mut self) -> Result<(), FwpError> {
        let open = self.txn.take().ok_or(FwpError::NoTxnInProgress)?;
        self.rollback(open);
        Ok(())
    }

    /// `FwpmEngineClose0`: aborts the open transaction and deletes the session's dynamic objects;
    /// returns how many were deleted.
    pub fn close(mut self) -> usize {
        self.close_inner()
    }

    fn close_inner(&mut self) -> usize {
        if std::mem::replace(&mut self.closed, true) {
            return 0;
        }
        if let Some(open) = self.txn.take() {
            self.rollback(open);
        }
        let engine = self.cx.engine;
        let owned: Vec<ObjectRef> = {
            let mut r = engine.sessions.inner.lock();
            r.open.remove(&self.cx.id);
            let id = self.cx.id;
            let mine: Vec<ObjectRef> = r
                .owners
                .iter()
                .filter(|(_, o)| **o == id)
                .map(|(k, _)| *k)
                .collect();
            mine.iter().for_each(|k| {
                r.owners.remove(k);
            });
            mine
        };
        engine.reap_orphans(self.spec.txn_wait_timeout);
        engine.delete_owned(owned, self.spec.txn_wait_timeout)
    }

    fn lock(&self, read_only: bool) -> Result<OpenTxn<'e>, FwpError> {
        let engine = self.cx.engine;
        let wait = self.spec.txn_wait_timeout;
        let guard = engine
            .mgmt
            .try_lock_for(wait)
            .ok_or_else(|| FwpError::Timeout {
                wait_ms: u64::try_from(wait.as_millis()).unwrap_or(u64::MAX),
            })?;
        Ok(OpenTxn {
            txn: engine.begin_locked(guard),
            read_only,
            added: Vec::new(),
            deleted: Vec::new(),
            journal: Vec::new(),
        })
    }

    fn finish(&mut self, open: OpenTxn<'e>) -> Result<(), FwpError> {
        if let (Some(hook), false) = (self.persist, open.journal.is_empty()) {
            if let Err(e) = hook.persist(&open.journal) {
                self.rollback(open);
                return Err(FwpError::PersistFailed(e));
            }
        }
        {
            let mut r = self.cx.engine.sessions.inner.lock();
            for k in &open.deleted {
                r.owners.remove(k);
            }
        }
        open.txn.commit();
        Ok(())
    }

    fn rollback(&mut self, open: OpenTxn<'e>) {
        {
            let mut r = self.cx.engine.sessions.inner.lock();
            for k in &open.added {
                r.owners.remove(k);
            }
        }
        open.txn.abort();
    }

    /// Runs `op` in the open transaction, or in an implicit one committed when `op` succeeds.
    fn run<R>(
        &mut self,
        write: bool,
        op: impl FnOnce(Cx<'e>, &mut OpenTxn<'e>) -> Result<R, FwpError>,
    ) -> Result<R, FwpError> {
        let cx = self.cx;
        if let Some(open) = self.txn.as_mut() {
            if write && open.read_only {
                return Err(FwpError::IncompatibleTxn);
            }
            return op(cx, open);
        }
        let mut open = self.lock(!write)?;
        match op(cx, &mut open) {
            Ok(r) => self.finish(open).map(|()| r),
            Err(e) => {
                self.rollback(open);
                Err(e)
            }
        }
    }

    /// `FwpmProviderAdd0`.
    pub fn add_provider(&mut self, spec: ProviderSpec) -> Result<Guid, FwpError> {
        self.run(true, |cx, open| {
            let persistent = spec.flags & PROVIDER_FLAG_PERSISTENT != 0;
            cx.check_lifetime("provider", persistent, &[])?;
            let key = open.txn.add_provider(spec.clone())?;
            let change =
                persistent.then_some(PersistentChange::AddProvider(ProviderSpec { key, ..spec }));
            cx.added(open, ObjectRef::Provider(key), change);
            Ok(key)
        })
    }

    /// `FwpmSubLayerAdd0`.
    pub fn add_sublayer(&mut self, spec: SublayerSpec) -> Result<Guid, FwpError> {
        self.run(true, |cx, open| {
            let persistent = spec.flags & SUBLAYER_FLAG_PERSISTENT != 0;
            cx.check_lifetime("sublayer", persistent, &provider_ref(spec.provider))?;
            let key = open.txn.add_sublayer(spec.clone())?;
            let change =
                persistent.then_some(PersistentChange::AddSublayer(SublayerSpec { key, ..spec }));
            cx.added(open, ObjectRef::Sublayer(key), change);
            Ok(key)
        })
    }

    /// `FwpmCalloutAdd0`: returns `calloutId`.
    pub fn add_callout(&mut self, spec: CalloutSpec) -> Result<CalloutId, FwpError> {
        self.run(true, |cx, open| {
            let persistent = spec.flags & CALLOUT_FLAG_PERSISTENT != 0;
            cx.check_lifetime("callout", persistent, &provider_ref(spec.provider))?;
            let id = open.txn.add_callout(spec.clone())?;
            let key = open
                .state()?
                .callouts
                .values()
                .find(|c| c.id == id)
                .map_or(spec.key, |c| c.spec.key);
            let change =
                persistent.then_some(PersistentChange::AddCallout(CalloutSpec { key, ..spec }));
            cx.added(open, ObjectRef::Callout(key), change);
            Ok(id)
        })
    }

    /// `FwpmFilterAdd0`: GUID_NULL as sublayer → FWPM_SUBLAYER_UNIVERSAL (T-MGMT-10).
    pub fn add_filter(&mut self, spec: FilterSpec) -> Result<FilterId, FwpError> {
        self.run(true, |cx, open| {
            // §11.3: boot-time filters are stored like persistent ones (they must survive
            // until the next start) and cannot come from a dynamic session either.
            let persistent = spec.flags.contains(FilterFlags::PERSISTENT)
                || spec.flags.contains(FilterFlags::BOOTTIME);
            let mut refs = provider_ref(spec.provider);
            refs.extend(spec.callout.map(ObjectRef::Callout));
            if !spec.sublayer.is_null() {
                refs.push(ObjectRef::Sublayer(spec.sublayer));
            }
            if spec.flags.contains(FilterFlags::HAS_PROVIDER_CONTEXT) {
                refs.extend(spec.provider_context.map(ObjectRef::ProviderContext));
            }
            cx.check_lifetime("filter", persistent, &refs)?;
            let id = open.txn.add_filter(spec.clone())?;
            let key = open.state()?.filters.get(&id).map_or(spec.key, |f| f.key);
            let change =
                persistent.then_some(PersistentChange::AddFilter(FilterSpec { key, ..spec }));
            cx.added(open, ObjectRef::Filter(key), change);
            Ok(id)
        })
    }

    /// `FwpmProviderContextAdd0..3`: returns `providerContextId`.
    pub fn add_provider_context(
        &mut self,
        spec: ProviderContextSpec,
    ) -> Result<ProviderContextId, FwpError> {
        self.run(true, |cx, open| {
            let persistent = spec.is_persistent();
            cx.check_lifetime("provider context", persistent, &provider_ref(spec.provider))?;
            let id = open.txn.add_provider_context(spec.clone())?;
            let key = open
                .state()?
                .provider_contexts
                .values()
                .find(|pc| pc.id == id)
                .map_or(spec.key, |pc| pc.spec.key);
            let change =
                persistent.then_some(PersistentChange::AddProviderContext(ProviderContextSpec {
                    key,
                    ..spec
                }));
            cx.added(open, ObjectRef::ProviderContext(key), change);
            Ok(id)
        })
    }

    /// Deletes `object` (`Fwpm*DeleteByKey0`): FWP_E_IN_USE while referenced (T-MGMT-7).
    pub fn delete(&mut self, object: ObjectRef) -> Result<(), FwpError> {
        self.run(true, |_, open| {
            let m = open.state()?;
            let persistent = match object {
                ObjectRef::Filter(k) => m
                    .filter_keys
                    .get(&k)
                    .and_then(|id| m.filters.get(id))
                    .is_some_and(|f| {
                        f.mgmt_flags.contains(FilterFlags::PERSISTENT) || f.is_boottime()
                    }),
                ObjectRef::ProviderContext(k) => m
                    .provider_contexts
                    .get(&k)
                    .is_some_and(|pc| pc.spec.is_persistent()),
                ObjectRef::Callout(k) => m
                    .callouts
                    .get(&k)
                    .is_some_and(|c| c.spec.flags & CALLOUT_FLAG_PERSISTENT != 0),
                ObjectRef::Sublayer(k) => m
                    .sublayers
                    .get(&k)
                    .is_some_and(|s| s.spec.flags & SUBLAYER_FLAG_PERSISTENT != 0),
                ObjectRef::Provider(k) => m
                    .providers
                    .get(&k)
                    .is_some_and(|p| p.spec.flags & PROVIDER_FLAG_PERSISTENT != 0),
            };
            match object {
                ObjectRef::Filter(k) => open.txn.delete_filter_by_key(&k)?,
                ObjectRef::ProviderContext(k) => open.txn.delete_provider_context(&k)?,
                ObjectRef::Callout(k) => open.txn.delete_callout(&k)?,
                ObjectRef::Sublayer(k) => open.txn.delete_sublayer(&k)?,
                ObjectRef::Provider(k) => open.txn.delete_provider(&k)?,
            }
            open.deleted.push(object);
            if persistent {
                open.journal.push(PersistentChange::Delete(object));
            }
            Ok(())
        })
    }

    /// `FwpmFilterDeleteById0`.
    pub fn delete_filter(&mut self, id: FilterId) -> Result<(), FwpError> {
        let key = self.read(|m| {
            m.filters
                .get(&id)
                .map(|f| f.key)
                .ok_or_else(|| FwpError::FilterNotFound(format!("id {}", id.0)))
        })?;
        self.delete(ObjectRef::Filter(key))
    }

    /// `FwpmCalloutDeleteById0`.
    pub fn delete_callout_by_id(&mut self, id: CalloutId) -> Result<(), FwpError> {
        let key = self.read(|m| {
            m.callouts
                .values()
                .find(|c| c.id == id)
                .map(|c| c.spec.key)
                .ok_or_else(|| FwpError::CalloutNotFound(format!("id {}", id.0)))
        })?;
        self.delete(ObjectRef::Callout(key))
    }

    /// `FwpmProviderContextDeleteById0`.
    pub fn delete_provider_context_by_id(&mut self, id: ProviderContextId) -> Result<(), FwpError> {
        let key = self.read(|m| {
            m.provider_contexts
                .values()
                .find(|pc| pc.id == id)
                .map(|pc| pc.spec.key)
                .ok_or_else(|| FwpError::ProviderContextNotFound(format!("id {}", id.0)))
        })?;
        self.delete(ObjectRef::ProviderContext(key))
    }

    /// `FwpmProviderContextGetByKey0`.
    pub fn provider_context(&mut self, key: &Guid) -> Result<Arc<ProviderContext>, FwpError> {
        self.read(|m| {
            m.provider_contexts
                .get(key)
                .cloned()
                .ok_or_else(|| FwpError::ProviderContextNotFound(key.to_string()))
        })
    }

    /// `FwpmProviderContextGetById0`.
    pub fn provider_context_by_id(
        &mut self,
        id: ProviderContextId,
    ) -> Result<Arc<ProviderContext>, FwpError> {
        self.read(|m| {
            m.provider_contexts
                .values()
                .find(|pc| pc.id == id)
                .cloned()
                .ok_or_else(|| FwpError::ProviderContextNotFound(format!("id {}", id.0)))
        })
    }

    /// `FwpmProviderContextEnum0` with a template, by key.
    pub fn provider_contexts(
        &mut self,
        t: &ProviderContextEnumTemplate,
    ) -> Result<Vec<Arc<ProviderContext>>, FwpError> {
        self.read(|m| {
            Ok(m.provider_contexts
                .values()
                .filter(|pc| t.matches(pc))
                .cloned()
                .collect())
        })
    }

    fn read<R>(&mut self, f: impl FnOnce(&Mgmt) -> Result<R, FwpError>) -> Result<R, FwpError> {
        self.run(false, |_, open| f(open.state()?))
    }

    /// `FwpmFilterEnum0` with a template (T-MGMT-12).
    pub fn filters(
        &mut self,
        template: &FilterEnumTemplate,
    ) -> Result<Vec<Arc<RtFilter>>, FwpError> {
        self.read(|m| enumerate::filters(m, template))
    }

    /// `FwpmFilterGetById0`.
    pub fn filter(&mut self, id: FilterId) -> Result<Arc<RtFilter>, FwpError> {
        self.read(|m| {
            m.filters
                .get(&id)
                .cloned()
                .ok_or_else(|| FwpError::FilterNotFound(format!("id {}", id.0)))
        })
    }

    /// `FwpmFilterGetByKey0`.
    pub fn filter_by_key(&mut self, key: &Guid) -> Result<Arc<RtFilter>, FwpError> {
        self.read(|m| {
            m.filter_keys
                .get(key)
                .and_then(|id| m.filters.get(id))
                .cloned()
                .ok_or_else(|| FwpError::FilterNotFound(key.to_string()))
        })
    }

    /// `FwpmProviderEnum0`.
    pub fn providers(&mut self) -> Result<Vec<ProviderObject>, FwpError> {
        self.read(|m| Ok(m.providers.values().cloned().collect()))
    }

    /// `FwpmSubLayerEnum0` (built-in sublayers included).
    pub fn sublayers(&mut self, t: &ObjectEnumTemplate) -> Result<Vec<SublayerObject>, FwpError> {
        self.read(|m| {
            Ok(m.sublayers
                .values()
                .filter(|s| t.provider.is_none_or(|p| s.spec.provider == Some(p)))
                .cloned()
                .collect())
        })
    }

    /// `FwpmCalloutEnum0`; `flags` carries FWPM_CALLOUT_FLAG_REGISTERED when the run-time side is
    /// registered.
    pub fn callouts(&mut self, t: &ObjectEnumTemplate) -> Result<Vec<CalloutObject>, FwpError> {
        let engine = self.cx.engine;
        let list: Vec<CalloutObject> = self.read(|m| {
            Ok(m.callouts
                .values()
                .filter(|c| t.provider.is_none_or(|p| c.spec.provider == Some(p)))
                .filter(|c| t.layer.is_none_or(|l| c.spec.applicable_layer == l))
                .cloned()
                .collect())
        })?;
        Ok(list
            .into_iter()
            .map(|mut c| {
                if engine.is_callout_registered(c.id) {
                    c.spec.flags |= CALLOUT_FLAG_REGISTERED;
                }
                c
            })
            .collect())
    }
}

impl Drop for Session<'_> {
    fn drop(&mut self) {
        self.close_inner();
    }
}
