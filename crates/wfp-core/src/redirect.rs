//! Writable layer data at the redirect layers (wfp-reference §10.3): `FWPS_CONNECT_REQUEST0` /
//! `FWPS_BIND_REQUEST0`, `FwpsAcquireWritableLayerDataPointer0` → modify →
//! `FwpsApplyModifiedLayerData0` (exactly once per acquire), redirect handles and the
//! connection-redirect-state query that keeps two redirectors from looping.
//!
//! ```text
//!  data path: classify_redirect(layer, values, meta, request) ─► callouts, in filter order:
//!     h = ctx.acquire_classify_handle()
//!     w = engine.acquire_writable_layer_data(h, filter, out)   (BLOCK, write right cleared)
//!     w.remote = proxy; w.redirect_handle = Some(mine)
//!     engine.apply_modified_layer_data(h, w, 0)                (chained: previous_version)
//!  ◄─ the final request (each applied version sees the one before), or a pend (§10.2)
//! ```
//!
//! Loop prevention: every applied modification that names a redirect handle appends it to the
//! request's [`RedirectRecords`]; the data path carries them in `Metadata::redirect_records` of the
//! redirected connection's later classifies, and
//! [`Engine::query_connection_redirect_state`] tells a redirector whether it already redirected it.

use std::cell::RefCell;
use std::collections::HashSet;
use std::net::SocketAddr;
use std::sync::Arc;

use parking_lot::Mutex;

use crate::callout::{ClassifyOut, LayerData, Metadata};
use crate::catalogue::LayerId;
use crate::classify::ClassifyResult;
use crate::constants::ActionType;
use crate::engine::Engine;
use crate::filter::FilterId;
use crate::pend::{base_name, ClassifyHandle};
use crate::status::Status;
use crate::value::Value;

/// `FWPS_CLASSIFY_FLAG_REAUTHORIZE_IF_MODIFIED_BY_OTHERS` (verified value 0x1).
pub const CLASSIFY_FLAG_REAUTHORIZE_IF_MODIFIED_BY_OTHERS: u32 = 0x0000_0001;

/// A redirect handle (`FwpsRedirectHandleCreate0`): names one redirector.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[repr(transparent)]
pub struct RedirectHandle(pub u64);

/// `FWPS_CONNECTION_REDIRECT_STATE`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u32)]
pub enum RedirectState {
    /// FWPS_CONNECTION_NOT_REDIRECTED.
    NotRedirected = 0,
    /// FWPS_CONNECTION_REDIRECTED_BY_SELF.
    RedirectedBySelf = 1,
    /// FWPS_CONNECTION_REDIRECTED_BY_OTHER.
    RedirectedByOther = 2,
    /// FWPS_CONNECTION_PREVIOUSLY_REDIRECTED_BY_SELF.
    PreviouslyRedirectedBySelf = 3,
}

/// The redirect records of a connection: who redirected it, oldest first, with the context each
/// redirector attached (`redirectContext`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RedirectRecords {
    /// (redirect handle, redirect context), oldest first.
    pub chain: Vec<(RedirectHandle, u64)>,
    /// The owners of the contexts in `chain` that came with one: released with the last copy of
    /// these records.
    pub owners: Vec<Arc<RedirectContextOwner>>,
}

/// The owner of a `localRedirectContext` (§10.3: "the filter engine frees this memory"): what
/// the host gives the engine with the context, run once when the engine drops it — when the
/// redirect record holding the context is destroyed (the connection's last record goes), or at
/// once when the modification carrying it is not recorded.
pub struct RedirectContextOwner {
    release: Option<Box<dyn FnOnce() + Send + Sync>>,
}

impl RedirectContextOwner {
    /// An owner that runs `release` when dropped.
    pub fn new(release: impl FnOnce() + Send + Sync + 'static) -> Self {
        Self {
            release: Some(Box::new(release)),
        }
    }
}

impl Drop for RedirectContextOwner {
    fn drop(&mut self) {
        if let Some(f) = self.release.take() {
            f();
        }
    }
}

impl std::fmt::Debug for RedirectContextOwner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("RedirectContextOwner")
    }
}

/// Owners compare by identity (one owner per context).
impl PartialEq for RedirectContextOwner {
    fn eq(&self, other: &Self) -> bool {
        std::ptr::eq(self, other)
    }
}

impl Eq for RedirectContextOwner {}

/// Which request a redirect layer carries.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RequestKind {
    /// `FWPS_CONNECT_REQUEST0` (ALE_CONNECT_REDIRECT): `remote` is writable.
    Connect,
    /// `FWPS_BIND_REQUEST0` (ALE_BIND_REDIRECT): `local` is writable.
    Bind,
}

/// `FWPS_CONNECT_REQUEST0` / `FWPS_BIND_REQUEST0`, one struct for both (`kind` says which).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RedirectRequest {
    /// Connect or bind.
    pub kind: RequestKind,
    /// `localAddressAndPort`.
    pub local: SocketAddr,
    /// `remoteAddressAndPort` (connect only).
    pub remote: Option<SocketAddr>,
    /// `portReservationToken`.
    pub port_reservation_token: u64,
    /// `localRedirectTargetPID` (connect only).
    pub local_redirect_target_pid: u32,
    /// `localRedirectHandle`: the redirector's handle, recorded in the redirect records.
    pub redirect_handle: Option<RedirectHandle>,
    /// `localRedirectContext`: returned by the redirect-state query to the same redirector.
    pub redirect_context: u64,
    /// Who frees `redirect_context` (a C driver's pool block), moved into the records when the
    /// modification is recorded, dropped with the request otherwise.
    pub redirect_context_owner: Option<Arc<RedirectContextOwner>>,
    /// `modifierFilterId`: the filter whose callout produced this version (0 for the original).
    pub modifier_filter_id: u64,
    /// `previousVersion`: the version before this modification.
    pub previous_version: Option<Box<Self>>,
    /// Every redirector that modified this connection (this request and earlier connections).
    pub records: Arc<RedirectRecords>,
}

impl RedirectRequest {
    /// The original connect request of a connection `local` → `remote`.
    pub fn connect(local: SocketAddr, remote: SocketAddr) -> Self {
        Self::new(RequestKind::Connect, local, Some(remote))
    }

    /// The original bind request for `local`.
    pub fn bind(local: SocketAddr) -> Self {
        Self::new(RequestKind::Bind, local, None)
    }

    fn new(kind: RequestKind, local: SocketAddr, remote: Option<SocketAddr>) -> Self {
        Self {
            kind,
            local,
            remote,
            port_reservation_token: 0,
            local_redirect_target_pid: 0,
            redirect_handle: None,
            redirect_context: 0,
            redirect_context_owner: None,
            modifier_filter_id: 0,
            previous_version: None,
            records: Arc::default(),
        }
    }

    /// Continues the redirect records of an earlier connection (`Metadata::redirect_records`).
    pub fn with_records(mut self, records: Option<Arc<RedirectRecords>>) -> Self {
        self.records = records.unwrap_or_default();
        self
    }

    /// True when some callout changed the request (a version chain exists).
    pub fn is_modified(&self) -> bool {
        self.previous_version.is_some()
    }
}

/// What [`Engine::classify_redirect`] returns.
#[derive(Clone, Debug, PartialEq)]
pub struct RedirectOutcome {
    /// The classify's arbitration result.
    pub result: ClassifyResult,
    /// The request after every applied modification (unchanged when nobody modified it).
    pub request: RedirectRequest,
    /// Classify handles that pended this classify (the final request comes with
    /// `PendEvent::ClassifyCompleted`).
    pub pended: bool,
}

/// The engine's redirect-handle table.
#[derive(Default)]
pub(crate) struct RedirectTable {
    live: Mutex<HashSet<RedirectHandle>>,
}

/// What one classifyFn invocation at a redirect layer sees and leaves (classify's side channel).
pub(crate) struct RedirectSlot {
    pub(crate) current: RefCell<RedirectRequest>,
    pub(crate) pended: std::cell::Cell<bool>,
}

fn writable_kind(layer: LayerId) -> Option<RequestKind> {
    match base_name(layer)? {
        "ALE_CONNECT_REDIRECT" => Some(RequestKind::Connect),
        "ALE_BIND_REDIRECT" => Some(RequestKind::Bind),
        _ => None,
    }
}

impl Engine {
    /// `FwpsRedirectHandleCreate0`.
    pub fn create_redirect_handle(&self) -> RedirectHandle {
        let h = RedirectHandle(self.new_completion_handle().0);
        self.redirect.live.lock().insert(h);
        h
    }

    /// `FwpsRedirectHandleDestroy0`: STATUS_FWP_NOT_FOUND for an unknown handle.
    pub fn destroy_redirect_handle(&self, h: RedirectHandle) -> Status {
        if self.redirect.live.lock().remove(&h) {
            Status::SUCCESS
        } else {
            Status::FWP_NOT_FOUND
        }
    }

    /// `FwpsQueryConnectionRedirectState0`: whether `handle` redirected the connection whose
    /// records are `records` (from `Metadata::redirect_records`), and the context it attached.
    pub fn query_connection_redirect_state(
        &self,
        records: Option<&RedirectRecords>,
        handle: RedirectHandle,
    ) -> (RedirectState, Option<u64>) {
        let chain = records.map_or(&[][..], |r| r.chain.as_slice());
        match chain.split_last() {
            None => (RedirectState::NotRedirected, None),
            Some((last, _)) if last.0 == handle => (RedirectState::RedirectedBySelf, Some(last.1)),
            Some((_, earlier)) => match earlier.iter().rev().find(|(h, _)| *h == handle) {
                Some((_, ctx)) => (RedirectState::PreviouslyRedirectedBySelf, Some(*ctx)),
                None => (RedirectState::RedirectedByOther, None),
            },
        }
    }

    /// `FwpsAcquireWritableLayerDataPointer0` (§10.3): a copy of the current request to modify;
    /// sets `out` to BLOCK and clears the write right. Every acquire needs exactly one
    /// [`Engine::apply_modified_layer_data`]. STATUS_FWP_NOT_FOUND for an unknown handle,
    /// STATUS_FWP_INVALID_PARAMETER outside the redirect layers (or without a request),
    /// STATUS_FWP_ALREADY_EXISTS when `filter` already holds an unapplied pointer.
    pub fn acquire_writable_layer_data(
        &self,
        handle: ClassifyHandle,
        filter: FilterId,
        out: &mut ClassifyOut,
    ) -> Result<RedirectRequest, Status> {
        let r = self.pend.with_handle(handle, |e| {
            if writable_kind(e.layer).is_none() {
                return Err(Status::FWP_INVALID_PARAMETER);
            }
            let req = e.request.clone().ok_or(Status::FWP_INVALID_PARAMETER)?;
            if e.writers.contains(&filter) {
                return Err(Status::FWP_ALREADY_EXISTS);
            }
            e.writers.push(filter);
            Ok(req)
        });
        let req = r.ok_or(Status::FWP_NOT_FOUND)??;
        out.action_type = ActionType::BLOCK;
        out.clear_write();
        Ok(req)
    }

    /// `FwpsApplyModifiedLayerData0` (§10.3): applies `modified` (as returned by the acquire,
    /// possibly changed). An unchanged request is a no-op apply. A changed one becomes the current
    /// version, chaining the old one as `previous_version`, with `modifier_filter_id` and — when
    /// `modified.redirect_handle` is set — a new entry in the redirect records. With
    /// [`CLASSIFY_FLAG_REAUTHORIZE_IF_MODIFIED_BY_OTHERS`] (pended classifies) and a request
    /// another callout already modified, nothing is applied and the answer is STATUS_PENDING: the
    /// data path reauthorizes. STATUS_FWP_NOT_FOUND when nothing was acquired (apply without
    /// acquire, or a second apply).
    pub fn apply_modified_layer_data(
        &self,
        handle: ClassifyHandle,
        filter: FilterId,
        modified: RedirectRequest,
        flags: u32,
    ) -> Status {
        let r = self.pend.with_handle(handle, |e| {
            let pos = e
                .writers
                .iter()
                .position(|f| *f == filter)
                .ok_or(Status::FWP_NOT_FOUND)?;
            e.writers.swap_remove(pos);
            let current = e.request.take().ok_or(Status::FWP_NOT_FOUND)?;
            let others = current.modifier_filter_id != 0 && current.modifier_filter_id != filter.0;
            if flags & CLASSIFY_FLAG_REAUTHORIZE_IF_MODIFIED_BY_OTHERS != 0 && others {
                e.request = Some(current);
                return Err(Status::PENDING);
            }
            let next = chain(current, modified, filter);
            e.request = Some(next.clone());
            Ok(e.running.then_some((e.token, next)))
        });
        match r {
            None => Status::FWP_NOT_FOUND,
            Some(Err(s)) => s,
            Some(Ok(running)) => {
                if let Some((token, next)) = running {
                    self.pend.record_applied(token, next);
                }
                Status::SUCCESS
            }
        }
    }

    /// Classifies at ALE_CONNECT_REDIRECT / ALE_BIND_REDIRECT with `request` as the writable layer
    /// data: callouts see the version left by the callouts before them. Returns the arbitration
    /// result and the final request.
    pub fn classify_redirect(
        &self,
        layer: LayerId,
        values: &[Value],
        meta: &Metadata,
        request: RedirectRequest,
    ) -> RedirectOutcome {
        let slot = RedirectSlot {
            current: RefCell::new(request),
            pended: std::cell::Cell::new(false),
        };
        let result = self.classify_with_redirect(layer, values, meta, &mut LayerData::None, &slot);
        RedirectOutcome {
            result,
            request: slot.current.into_inner(),
            pended: slot.pended.get(),
        }
    }
}

/// The version after `modified` was applied over `current`.
fn chain(
    current: RedirectRequest,
    mut modified: RedirectRequest,
    filter: FilterId,
) -> RedirectRequest {
    let changed = modified.local != current.local
        || modified.remote != current.remote
        || modified.local_redirect_target_pid != current.local_redirect_target_pid
        || modified.redirect_handle != current.redirect_handle;
    if !changed {
        return current;
    }
    let mut records = (*current.records).clone();
    if let Some(h) = modified.redirect_handle {
        records.chain.push((h, modified.redirect_context));
        records
            .owners
            .extend(modified.redirect_context_owner.take());
    }
    modified.kind = current.kind;
    modified.records = Arc::new(records);
    modified.modifier_filter_id = filter.0;
    modified.previous_version = Some(Box::new(current));
    modified
}
