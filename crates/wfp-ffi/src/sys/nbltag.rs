//! Packet tagging (WDK fwpsk.h, "Using Packet Tagging"): FwpsNetBufferListGetTagForContext0,
//! FwpsNetBufferListAssociateContext0/1, FwpsNetBufferListRetrieveContext0,
//! FwpsNetBufferListRemoveContext0 and the driver's FWPS_NET_BUFFER_LIST_NOTIFY_FN0/1.
//!
//! ```text
//!  list the driver holds ──associate──► context on the list
//!       │ FwpsInject*: ENTERED_NETIO              │ FwpsAllocateCloneNetBufferList0:
//!       ▼                                         ▼ CLONED_VIA_WFP_API, the clone carries it too
//!  in flight (injection handle, injectionContext, ledger packet)
//!       │ every later classify of the injected packet: the indicated list carries it
//!       │ (bound to the injection by its provenance hop)
//!       ▼ completion: EXIT_NETIO, the context is back on the list
//!  list freed / FwpsNetBufferListRemoveContext0: CONTEXT_REMOVED
//! ```
//!
//! The indicated list of a packet nobody injected has no identity across layers here (the data
//! path does not say which classifies are the same packet), so it cannot be tagged:
//! STATUS_INVALID_PARAMETER. Notify functions run on the thread of the event, with the driver
//! bound, never under a runtime lock.

use std::collections::HashMap;
use std::ffi::c_void;
use std::sync::Arc;

use wfp_core::inject::{InjectionId, PacketId, Provenance};

use super::types::NetBufferList;
use super::{boundary, ctx, invocation, NtStatus, STATUS_INVALID_PARAMETER, STATUS_SUCCESS};
use crate::host::HostInner;
use crate::verifier::Finding;

/// FWPS_NET_BUFFER_LIST_EVENT_TYPE0 values the runtime raises.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u32)]
pub(crate) enum NblEvent {
    /// FWPS_NET_BUFFER_LIST_ENTERED_NETIO: injected.
    EnteredNetio = 0,
    /// FWPS_NET_BUFFER_LIST_CLONED_VIA_WFP_API: FwpsAllocateCloneNetBufferList0.
    ClonedViaWfpApi = 2,
    /// FWPS_NET_BUFFER_LIST_EXIT_NETIO: the injection completed.
    ExitNetio = 4,
    /// FWPS_NET_BUFFER_LIST_CONTEXT_REMOVED.
    ContextRemoved = 5,
}

/// FWPS_NET_BUFFER_LIST_NOTIFY_FN0 (void) or FN1 (NTSTATUS, ignored).
#[derive(Clone, Copy, Debug)]
pub(crate) enum NotifyFn {
    V0(unsafe extern "C" fn(u32, *mut NetBufferList, *mut NetBufferList, u16, u64, u64)),
    V1(unsafe extern "C" fn(u32, *mut NetBufferList, *mut NetBufferList, u16, u64, u64) -> i32),
}

/// One association of a driver's context with a packet.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Assoc {
    tag: u64,
    context: u64,
    layer: u16,
    notify: Option<NotifyFn>,
    driver: usize,
}

/// Associations of an injected packet, from the injection call until its completion.
#[derive(Debug)]
struct Flight {
    handle: u64,
    injection_context: u64,
    packet: PacketId,
    /// The injection, once a classify of the packet (or its completion) named it.
    id: Option<InjectionId>,
    nbl: usize,
    assocs: Vec<Assoc>,
}

/// The packet tags of one host (kept in [`super::nbl::AsyncState`]).
#[derive(Debug, Default)]
pub(crate) struct Tags {
    next: u64,
    /// Tags handed out → driver.
    issued: HashMap<u64, usize>,
    /// Associations on lists drivers hold, by list address.
    lists: HashMap<usize, Vec<Assoc>>,
    flights: Vec<Flight>,
}

/// One notification to deliver once no lock is held.
pub(crate) struct Event(NblEvent, usize, usize, Assoc);

impl Tags {
    /// The list is being injected as `packet`: its associations go with the injection.
    pub(crate) fn inject(&mut self, nbl: usize, key: (u64, u64), packet: PacketId) -> Vec<Event> {
        let Some(assocs) = self.lists.remove(&nbl) else {
            return Vec::new();
        };
        let events = events(NblEvent::EnteredNetio, nbl, 0, &assocs);
        self.flights.push(Flight {
            handle: key.0,
            injection_context: key.1,
            packet,
            id: None,
            nbl,
            assocs,
        });
        events
    }

    /// The injection of `packet` was refused: the associations are the list's again.
    pub(crate) fn refused(&mut self, packet: PacketId) {
        if let Some(i) = self.flights.iter().position(|f| f.packet == packet) {
            let f = self.flights.remove(i);
            self.lists.entry(f.nbl).or_default().extend(f.assocs);
        }
    }

    /// The injection `id` of `packet` completed: its associations are the list's again.
    pub(crate) fn completed(&mut self, id: InjectionId, packet: PacketId) -> Vec<Event> {
        let i = self
            .flights
            .iter()
            .position(|f| f.id == Some(id))
            .or_else(|| {
                self.flights
                    .iter()
                    .position(|f| f.packet == packet && f.id.is_none())
            });
        let Some(i) = i else {
            return Vec::new();
        };
        let f = self.flights.remove(i);
        let events = events(NblEvent::ExitNetio, f.nbl, 0, &f.assocs);
        if !f.assocs.is_empty() {
            // Contexts associated with the list while it was away stay too.
            self.lists.entry(f.nbl).or_default().extend(f.assocs);
        }
        events
    }

    /// The flight an injected packet with `provenance` belongs to (its newest hop that one of
    /// ours names), binding an unnamed flight of the same handle and injectionContext, oldest
    /// first, to the hop's injection.
    fn flight_of(&mut self, provenance: &Provenance) -> Option<&mut Flight> {
        let mut found = None;
        for hop in provenance.hops.iter().rev() {
            if let Some(i) = self
                .flights
                .iter()
                .position(|f| f.id == Some(hop.injection))
            {
                found = Some(i);
                break;
            }
            let unnamed = self.flights.iter().position(|f| {
                f.id.is_none() && f.handle == hop.handle.0 && f.injection_context == hop.context
            });
            if let Some(i) = unnamed {
                self.flights[i].id = Some(hop.injection);
                found = Some(i);
                break;
            }
        }
        found.map(|i| &mut self.flights[i])
    }

    /// The associations of a list: one the driver holds, or the indicated list of an injected
    /// packet (`provenance`).
    fn assocs_mut(
        &mut self,
        nbl: usize,
        provenance: Option<&Provenance>,
        create: bool,
    ) -> Option<&mut Vec<Assoc>> {
        match provenance {
            Some(p) => self.flight_of(p).map(|f| &mut f.assocs),
            None if create => Some(self.lists.entry(nbl).or_default()),
            None => self.lists.get_mut(&nbl),
        }
    }

    /// The list `nbl` is gone (freed): its associations are removed.
    pub(crate) fn list_freed(&mut self, nbl: usize) -> Vec<Event> {
        self.lists
            .remove(&nbl)
            .map(|a| events(NblEvent::ContextRemoved, nbl, 0, &a))
            .unwrap_or_default()
    }

    /// `clone` was made from `original` (FwpsAllocateCloneNetBufferList0): it carries the
    /// original's associations too.
    pub(crate) fn cloned(
        &mut self,
        original: usize,
        provenance: Option<&Provenance>,
        clone: usize,
    ) -> Vec<Event> {
        let Some(assocs) = self.assocs_mut(original, provenance, false).cloned() else {
            return Vec::new();
        };
        if assocs.is_empty() {
            return Vec::new();
        }
        let events = events(NblEvent::ClonedViaWfpApi, original, clone, &assocs);
        self.lists.insert(clone, assocs);
        events
    }

    /// Unload: the driver's tags and associations go (its notify function with them).
    pub(crate) fn driver_gone(&mut self, driver: usize) {
        self.issued.retain(|_, d| *d != driver);
        for a in self.lists.values_mut() {
            a.retain(|x| x.driver != driver);
        }
        self.lists.retain(|_, a| !a.is_empty());
        for f in &mut self.flights {
            f.assocs.retain(|x| x.driver != driver);
        }
    }
}

fn events(kind: NblEvent, nbl: usize, new: usize, assocs: &[Assoc]) -> Vec<Event> {
    assocs.iter().map(|a| Event(kind, nbl, new, *a)).collect()
}

/// A list the runtime made was freed: its associations go (CONTEXT_REMOVED).
pub(crate) fn list_freed(nbl: usize) {
    ctx::with_host(|h| {
        let events = h.asyncs.lock().tags.list_freed(nbl);
        deliver(h, events);
    });
}

/// Delivers notifications (no runtime lock held), each with its driver bound.
pub(crate) fn deliver(h: &HostInner, events: Vec<Event>) {
    for Event(kind, nbl, new, a) in events {
        let Some(f) = a.notify else { continue };
        let _bound = (ctx::current_driver() != a.driver)
            .then(|| ctx::bind(h, a.driver, ctx::DISPATCH_LEVEL, "netBufferListNotifyFn"));
        let args = (
            kind as u32,
            nbl as *mut NetBufferList,
            new as *mut NetBufferList,
            a.layer,
            a.context,
            a.tag,
        );
        // SAFETY: the driver's notify function, registered with the association; the driver is
        // loaded (its associations go at unload, before its image does).
        unsafe {
            match f {
                NotifyFn::V0(f) => f(args.0, args.1, args.2, args.3, args.4, args.5),
                NotifyFn::V1(f) => {
                    let _ = f(args.0, args.1, args.2, args.3, args.4, args.5);
                }
            }
        }
    }
}

/// The provenance of `nbl` when it is the indicated list of an injected packet; `Err` when it is
/// the indicated list of a packet nobody injected.
fn indicated(nbl: *mut NetBufferList) -> Result<Option<Arc<Provenance>>, ()> {
    invocation::with_current(|inv| {
        if inv.nbl != nbl || nbl.is_null() {
            return Ok(None);
        }
        inv.meta.injection.clone().map(Some).ok_or(())
    })
    .unwrap_or(Ok(None))
}

#[no_mangle]
pub(crate) unsafe extern "C" fn FwpsNetBufferListGetTagForContext0(tag: *mut u64) -> NtStatus {
    boundary(
        "FwpsNetBufferListGetTagForContext0",
        STATUS_INVALID_PARAMETER,
        || {
            ctx::check_irql("FwpsNetBufferListGetTagForContext0", ctx::DISPATCH_LEVEL);
            if tag.is_null() {
                return STATUS_INVALID_PARAMETER;
            }
            let t = ctx::with_host(|h| {
                let mut st = h.asyncs.lock();
                st.tags.next += 1;
                let t = st.tags.next;
                st.tags.issued.insert(t, ctx::current_driver());
                t
            });
            let Some(t) = t else {
                return super::STATUS_INVALID_DEVICE_STATE;
            };
            // SAFETY: the caller's out-pointer (checked non-null).
            unsafe { *tag = t };
            STATUS_SUCCESS
        },
    )
}

/// The common body of FwpsNetBufferListAssociateContext0/1.
fn associate(
    nbl: *mut NetBufferList,
    layer: u16,
    values: (u64, u64),
    notify: Option<NotifyFn>,
    flags: u32,
) -> NtStatus {
    ctx::check_irql("FwpsNetBufferListAssociateContext", ctx::DISPATCH_LEVEL);
    let Ok(provenance) = indicated(nbl) else {
        return STATUS_INVALID_PARAMETER;
    };
    if nbl.is_null() || flags != 0 {
        return STATUS_INVALID_PARAMETER;
    }
    let (context, tag) = values;
    let driver = ctx::current_driver();
    ctx::with_host(|h| {
        let mut st = h.asyncs.lock();
        if st.tags.issued.get(&tag) != Some(&driver) {
            drop(st);
            h.finding(Finding::BadHandle {
                function: "FwpsNetBufferListAssociateContext",
            });
            return STATUS_INVALID_PARAMETER;
        }
        let a = Assoc {
            tag,
            context,
            layer,
            notify,
            driver,
        };
        let Some(list) = st
            .tags
            .assocs_mut(nbl as usize, provenance.as_deref(), true)
        else {
            return STATUS_INVALID_PARAMETER;
        };
        list.retain(|x| x.tag != tag);
        list.push(a);
        STATUS_SUCCESS
    })
    .unwrap_or(super::STATUS_INVALID_DEVICE_STATE)
}

#[no_mangle]
pub(crate) unsafe extern "C" fn FwpsNetBufferListAssociateContext0(
    nbl: *mut NetBufferList,
    layer: u16,
    context: u64,
    tag: u64,
    _provider: *const c_void,
    _device: *mut c_void,
    notify: Option<
        unsafe extern "C" fn(u32, *mut NetBufferList, *mut NetBufferList, u16, u64, u64),
    >,
    flags: u32,
) -> NtStatus {
    boundary(
        "FwpsNetBufferListAssociateContext0",
        STATUS_INVALID_PARAMETER,
        || associate(nbl, layer, (context, tag), notify.map(NotifyFn::V0), flags),
    )
}

#[no_mangle]
pub(crate) unsafe extern "C" fn FwpsNetBufferListAssociateContext1(
    nbl: *mut NetBufferList,
    layer: u16,
    context: u64,
    tag: u64,
    _provider: *const c_void,
    _device: *mut c_void,
    notify: Option<
        unsafe extern "C" fn(u32, *mut NetBufferList, *mut NetBufferList, u16, u64, u64) -> i32,
    >,
    flags: u32,
) -> NtStatus {
    boundary(
        "FwpsNetBufferListAssociateContext1",
        STATUS_INVALID_PARAMETER,
        || associate(nbl, layer, (context, tag), notify.map(NotifyFn::V1), flags),
    )
}

/// FwpsNetBufferListRetrieveContext0: the context `tag` associates with the list (a list the
/// driver holds, or the indicated list of an injected packet), removed too with `remove` (no
/// notification then). STATUS_NOT_FOUND when there is none.
#[no_mangle]
pub(crate) unsafe extern "C" fn FwpsNetBufferListRetrieveContext0(
    nbl: *mut NetBufferList,
    tag: u64,
    remove: u8,
    _flags: u32,
    context: *mut u64,
) -> NtStatus {
    boundary(
        "FwpsNetBufferListRetrieveContext0",
        STATUS_INVALID_PARAMETER,
        || {
            ctx::check_irql("FwpsNetBufferListRetrieveContext0", ctx::DISPATCH_LEVEL);
            if nbl.is_null() || context.is_null() {
                return STATUS_INVALID_PARAMETER;
            }
            let provenance = indicated(nbl).unwrap_or(None);
            let found = ctx::with_host(|h| {
                let mut st = h.asyncs.lock();
                let list = st
                    .tags
                    .assocs_mut(nbl as usize, provenance.as_deref(), false)?;
                let i = list.iter().position(|a| a.tag == tag)?;
                let c = list[i].context;
                if remove != 0 {
                    list.remove(i);
                }
                Some(c)
            })
            .flatten();
            let Some(c) = found else {
                return STATUS_NOT_FOUND;
            };
            // SAFETY: the caller's out-pointer (checked non-null).
            unsafe { *context = c };
            STATUS_SUCCESS
        },
    )
}

/// `STATUS_NOT_FOUND`.
const STATUS_NOT_FOUND: NtStatus = 0xC000_0225_u32 as i32;

/// FwpsNetBufferListRemoveContext0: removes the `tag` association from the list, or (NULL list)
/// from every list and packet in flight; CONTEXT_REMOVED goes to the notify function.
#[no_mangle]
pub(crate) unsafe extern "C" fn FwpsNetBufferListRemoveContext0(
    nbl: *mut NetBufferList,
    tag: u64,
    _flags: u32,
) -> NtStatus {
    boundary(
        "FwpsNetBufferListRemoveContext0",
        STATUS_INVALID_PARAMETER,
        || {
            ctx::check_irql("FwpsNetBufferListRemoveContext0", ctx::DISPATCH_LEVEL);
            let provenance = indicated(nbl).unwrap_or(None);
            let r = ctx::with_host(|h| {
                let events = {
                    let mut st = h.asyncs.lock();
                    remove_tag(&mut st.tags, nbl as usize, provenance.as_deref(), tag)
                };
                let any = !events.is_empty();
                deliver(h, events);
                any
            });
            match r {
                Some(true) => STATUS_SUCCESS,
                Some(false) => STATUS_NOT_FOUND,
                None => super::STATUS_INVALID_DEVICE_STATE,
            }
        },
    )
}

/// Removes `tag` from one list (or, `nbl` 0 and no provenance, from every list and flight).
fn remove_tag(t: &mut Tags, nbl: usize, provenance: Option<&Provenance>, tag: u64) -> Vec<Event> {
    let mut out = Vec::new();
    let mut take = |list: &mut Vec<Assoc>, at: usize| {
        let (gone, kept): (Vec<Assoc>, Vec<Assoc>) = list.iter().partition(|a| a.tag == tag);
        *list = kept;
        out.extend(events(NblEvent::ContextRemoved, at, 0, &gone));
    };
    if nbl == 0 && provenance.is_none() {
        for (at, list) in &mut t.lists {
            take(list, *at);
        }
        for f in &mut t.flights {
            take(&mut f.assocs, f.nbl);
        }
    } else if let Some(list) = t.assocs_mut(nbl, provenance, false) {
        take(list, nbl);
    }
    t.lists.retain(|_, a| !a.is_empty());
    out
}
