//! The run-time callout registry (`FwpsCalloutRegister*` / `FwpsCalloutUnregister*`, §5).
//!
//! Entries live in a copy-on-write table published through `ArcSwap`, so classify reads it without a
//! lock. Each entry counts its in-flight invocations; unregister first stops new invocations (state
//! `Unregistering`), then waits for the count to drain, then refuses to finish while flow contexts
//! exist (STATUS_DEVICE_BUSY; the entry stays `Unregistering`, still receiving flowDeleteFn).

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicU64, AtomicU8, AtomicUsize, Ordering};
use std::sync::Arc;

use arc_swap::ArcSwap;
use parking_lot::Mutex;

use crate::callout::{Callout, CalloutRegistration};
use crate::constants::CalloutFlags;
use crate::filter::CalloutId;
use crate::guid::Guid;
use crate::status::Status;

/// WFP's cap on simultaneously registered callouts (§5.2).
pub(crate) const MAX_CALLOUTS: usize = 100_000;

const ACTIVE: u8 = 0;
const UNREGISTERING: u8 = 1;

pub(crate) struct Registered {
    pub(crate) id: CalloutId,
    pub(crate) key: Guid,
    pub(crate) flags: CalloutFlags,
    pub(crate) callout: Arc<dyn Callout>,
    pub(crate) flow_delete: bool,
    state: AtomicU8,
    in_flight: AtomicUsize,
    pub(crate) contexts: AtomicUsize,
    pub(crate) panics: AtomicU64,
    pub(crate) invocations: AtomicU64,
}

/// Keeps a callout counted as in flight until dropped.
pub(crate) struct InFlight<'a>(&'a Registered);

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Ordering::SeqCst);
    }
}

impl Registered {
    /// Enters a classify/notify invocation; `None` once unregistering has started.
    pub(crate) fn enter(&self) -> Option<InFlight<'_>> {
        self.in_flight.fetch_add(1, Ordering::SeqCst);
        let guard = InFlight(self);
        (self.state.load(Ordering::SeqCst) == ACTIVE).then_some(guard)
    }

    /// Enters a flowDeleteFn call, allowed while unregistering.
    pub(crate) fn enter_any(&self) -> InFlight<'_> {
        self.in_flight.fetch_add(1, Ordering::SeqCst);
        InFlight(self)
    }

    pub(crate) fn is_active(&self) -> bool {
        self.state.load(Ordering::SeqCst) == ACTIVE
    }
}

/// §1.1: every FWP_CALLOUT_FLAG_* either has its effect here or is refused.
///
/// In effect: CONDITIONAL_ON_FLOW (classify), ENABLE_COMMIT_ADD_NOTIFY (commit),
/// ALLOW_MID_STREAM_INSPECTION (classify, flows announced to the engine), ALLOW_L2_BATCH_CLASSIFY
/// (packet clones refused). Consent flags that are trivially honoured because this engine never
/// offloads, coalesces, segments or reclassifies: ALLOW_OFFLOAD, ALLOW_RSC, ALLOW_USO, ALLOW_URO,
/// ALLOW_RECLASSIFY. Refused with STATUS_INVALID_PARAMETER: RESERVED1, RESERVED2 and unknown bits.
fn check_flags(flags: CalloutFlags) -> Result<(), Status> {
    let known = CalloutFlags::NAMED.iter().fold(0u32, |m, (_, f)| m | f.0);
    let reserved = CalloutFlags::RESERVED1.0 | CalloutFlags::RESERVED2.0;
    if flags.0 & !known != 0 || flags.0 & reserved != 0 {
        return Err(Status::INVALID_PARAMETER);
    }
    Ok(())
}

/// Table of registered callouts indexed by run-time id, plus the key → id map shared with the
/// management side (FWPM_CALLOUT0.calloutId equals the run-time id).
pub(crate) struct Registry {
    table: ArcSwap<Vec<Option<Arc<Registered>>>>,
    ids: Mutex<HashMap<Guid, CalloutId>>,
    busy: Mutex<HashSet<Guid>>,
    writer: Mutex<()>,
}

impl Registry {
    pub(crate) fn new() -> Self {
        Self {
            table: ArcSwap::from_pointee(vec![None]),
            ids: Mutex::new(HashMap::new()),
            busy: Mutex::new(HashSet::new()),
            writer: Mutex::new(()),
        }
    }

    /// The run-time id for a key, allocated on first use by either side.
    pub(crate) fn id_for_key(&self, key: Guid) -> CalloutId {
        let mut ids = self.ids.lock();
        let next = CalloutId(u32::try_from(ids.len() + 1).unwrap_or(u32::MAX));
        *ids.entry(key).or_insert(next)
    }

    pub(crate) fn key_to_id(&self, key: &Guid) -> Option<CalloutId> {
        self.ids.lock().get(key).copied()
    }

    /// The entry for an id, active or unregistering.
    pub(crate) fn get(&self, id: CalloutId) -> Option<Arc<Registered>> {
        self.table.load().get(id.0 as usize).and_then(Clone::clone)
    }

    /// A lock-free view for the classify loop.
    pub(crate) fn snapshot(&self) -> arc_swap::Guard<Arc<Vec<Option<Arc<Registered>>>>> {
        self.table.load()
    }

    pub(crate) fn register(&self, reg: &CalloutRegistration) -> Result<CalloutId, Status> {
        check_flags(reg.flags)?;
        if !self.busy.lock().insert(reg.key) {
            return Err(Status::FWP_IN_USE);
        }
        let result = (|| {
            let _w = self.writer.lock();
            let current = self.table.load_full();
            let id = self.id_for_key(reg.key);
            if current.get(id.0 as usize).is_some_and(Option::is_some) {
                return Err(Status::FWP_ALREADY_EXISTS);
            }
            if current.iter().flatten().count() >= MAX_CALLOUTS {
                return Err(Status::FWP_TOO_MANY_CALLOUTS);
            }
            let mut next = (*current).clone();
            if next.len() <= id.0 as usize {
                next.resize(id.0 as usize + 1, None);
            }
            next[id.0 as usize] = Some(Arc::new(Registered {
                id,
                key: reg.key,
                flags: reg.flags,
                callout: reg.callout.clone(),
                flow_delete: reg.flow_delete,
                state: AtomicU8::new(ACTIVE),
                in_flight: AtomicUsize::new(0),
                contexts: AtomicUsize::new(0),
                panics: AtomicU64::new(0),
                invocations: AtomicU64::new(0),
            }));
            self.table.store(Arc::new(next));
            Ok(id)
        })();
        self.busy.lock().remove(&reg.key);
        result
    }

    /// Unregisters (§5.3). Waits for in-flight invocations; DEVICE_BUSY while contexts exist.
    pub(crate) fn unregister(&self, id: CalloutId) -> Status {
        let Some(entry) = self.get(id) else {
            return Status::FWP_CALLOUT_NOT_FOUND;
        };
        if !self.busy.lock().insert(entry.key) {
            return Status::FWP_IN_USE;
        }
        entry.state.store(UNREGISTERING, Ordering::SeqCst);
        while entry.in_flight.load(Ordering::SeqCst) != 0 {
            std::hint::spin_loop();
            std::thread::yield_now();
        }
        let status = if entry.contexts.load(Ordering::SeqCst) > 0 {
            Status::DEVICE_BUSY
        } else {
            let _w = self.writer.lock();
            let mut next = (*self.table.load_full()).clone();
            if let Some(slot) = next.get_mut(id.0 as usize) {
                *slot = None;
            }
            self.table.store(Arc::new(next));
            Status::SUCCESS
        };
        self.busy.lock().remove(&entry.key);
        status
    }

    /// Test hook: marks a key busy as if another thread were mid-(un)register.
    #[cfg(test)]
    pub(crate) fn hold_busy(&self, key: Guid) -> bool {
        self.busy.lock().insert(key)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::callout::{ClassifyContext, ClassifyOut, IncomingValues, LayerData, Metadata};
    use crate::filter::RtFilter;

    struct Nop;
    impl Callout for Nop {
        fn classify(
            &self,
            _: &ClassifyContext<'_>,
            _: &IncomingValues<'_>,
            _: &Metadata,
            _: &mut LayerData<'_>,
            _: &RtFilter,
            _: u64,
            _: &mut ClassifyOut,
        ) {
        }
    }

    #[test]
    fn t_reg_13_unregister_while_another_thread_holds_the_key_is_in_use() {
        let r = Registry::new();
        let key = Guid::from_name("t", "reg13");
        let id = r
            .register(&CalloutRegistration::new(
                key,
                CalloutFlags::default(),
                Arc::new(Nop),
            ))
            .unwrap();
        assert!(r.hold_busy(key));
        assert_eq!(r.unregister(id), Status::FWP_IN_USE);
        assert_eq!(
            r.register(&CalloutRegistration::new(
                key,
                CalloutFlags::default(),
                Arc::new(Nop)
            ))
            .unwrap_err(),
            Status::FWP_IN_USE
        );
    }
}
