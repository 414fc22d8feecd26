//! KMDF work items (WDK wdfworkitem.h; wdk-runtime.md §4 "Work items" for the worker threads):
//! WdfWorkItemCreate, WdfWorkItemEnqueue, WdfWorkItemFlush, WdfWorkItemGetParentObject, and
//! deletion with the parent device or queue (or WdfObjectDelete).
//!
//! A work item runs its EvtWorkItem on the host's worker threads at PASSIVE_LEVEL, counted like an
//! IoQueueWorkItem item (the driver cannot unload before it ran; `DriverHost::settle` waits for
//! it). As KMDF 1.7+: enqueueing an item that is already queued (not yet started) does nothing;
//! an item may be enqueued again once its callback started. Deleting an item waits until its
//! callback has run (KMDF flushes it), except from inside that callback, where the deletion
//! completes when the callback returns. Synchronization scopes cover queue callbacks only
//! (`super::queue`), so a work item's AutomaticSerialization changes nothing here.

use std::ffi::c_void;
use std::sync::Arc;
use std::time::Instant;

use parking_lot::{Condvar, Mutex};

use super::{allocate_context, bad, cleanup_of, with_state, EvtCleanup, Object, ObjectAttributes};
use crate::sys::ctx::{self, assertion, DISPATCH_LEVEL, PASSIVE_LEVEL};
use crate::sys::{
    boundary, NtStatus, STATUS_INSUFFICIENT_RESOURCES, STATUS_INVALID_PARAMETER, STATUS_SUCCESS,
};

/// Parent object not specified in WDF_OBJECT_ATTRIBUTES (wdfstatus.h).
const STATUS_WDF_PARENT_NOT_SPECIFIED: NtStatus = 0xC020_0212_u32 as i32;
const STATUS_INVALID_DEVICE_REQUEST: NtStatus = 0xC000_0010_u32 as i32;

type EvtWorkItem = unsafe extern "C" fn(*mut c_void);

/// `WDF_WORKITEM_CONFIG` (x64: 24 bytes).
#[repr(C)]
pub(crate) struct WorkItemConfig {
    size: u32,
    func: Option<EvtWorkItem>,
    automatic_serialization: u8,
}

const _: () = assert!(std::mem::size_of::<WorkItemConfig>() == 24);

#[derive(Debug, Default)]
struct Run {
    queued: bool,
    /// The thread tokens of the workers running the callback (an item enqueued again while its
    /// callback runs may run on a second worker meanwhile).
    running: Vec<usize>,
    /// Deleted from inside its own callback: removed when the callback returns.
    delete_after_run: bool,
}

/// One WDFWORKITEM.
#[derive(Debug)]
pub(crate) struct WorkItem {
    /// The driver's index.
    pub(super) index: usize,
    pub(super) parent: usize,
    func: EvtWorkItem,
    cleanup: Option<EvtCleanup>,
    run: Mutex<Run>,
    cv: Condvar,
}

fn item(h: *mut c_void, function: &'static str) -> Option<Arc<WorkItem>> {
    let w = with_state(|s| match s.objects.get(&(h as usize)).map(|b| &**b) {
        Some(Object::WorkItem(w)) => Some(w.clone()),
        _ => None,
    })
    .flatten();
    if w.is_none() {
        bad(function);
    }
    w
}

/// Whether `parent` may own a work item: a device, or a queue (whose parent is a device).
fn parent_ok(parent: usize) -> Option<bool> {
    with_state(|s| match s.objects.get(&parent).map(|b| &**b) {
        Some(Object::Device(_) | Object::Queue(_)) => Some(true),
        Some(_) => Some(false),
        None => None,
    })
    .flatten()
}

#[no_mangle]
pub(crate) unsafe extern "C" fn WdfWorkItemCreate(
    config: *const WorkItemConfig,
    attrs: *const ObjectAttributes,
    out: *mut *mut c_void,
) -> NtStatus {
    boundary("WdfWorkItemCreate", STATUS_INVALID_PARAMETER, || {
        ctx::check_irql("WdfWorkItemCreate", DISPATCH_LEVEL);
        // SAFETY: the caller's WDF_WORKITEM_CONFIG (checked non-null).
        let func = match unsafe { config.as_ref() } {
            Some(c) if c.size as usize == std::mem::size_of::<WorkItemConfig>() => c.func,
            _ => None,
        };
        let (Some(func), false) = (func, out.is_null()) else {
            return STATUS_INVALID_PARAMETER;
        };
        // SAFETY: the caller's optional WDF_OBJECT_ATTRIBUTES.
        let parent = unsafe { attrs.as_ref() }.map_or(0, |a| a.parent as usize);
        if parent == 0 {
            return STATUS_WDF_PARENT_NOT_SPECIFIED;
        }
        match parent_ok(parent) {
            Some(true) => {}
            Some(false) => return STATUS_INVALID_DEVICE_REQUEST,
            None => {
                bad("WdfWorkItemCreate (ParentObject)");
                return STATUS_INVALID_PARAMETER;
            }
        }
        let w = Arc::new(WorkItem {
            index: ctx::current_driver(),
            parent,
            func,
            cleanup: cleanup_of(attrs),
            run: Mutex::new(Run::default()),
            cv: Condvar::new(),
        });
        let h = with_state(|s| {
            let h = s.insert(Object::WorkItem(w));
            if allocate_context(s, h, attrs) {
                Some(h)
            } else {
                s.remove(h);
                None
            }
        })
        .flatten();
        let Some(h) = h else {
            return STATUS_INSUFFICIENT_RESOURCES;
        };
        // SAFETY: checked non-null; the caller's WDFWORKITEM storage.
        unsafe { out.write(h as *mut c_void) };
        STATUS_SUCCESS
    })
}

/// The worker's side: runs the callback, then finishes a deletion made inside it.
fn run_item(host: &crate::host::HostInner, h: usize, w: &WorkItem) {
    let delete = {
        let _bound = ctx::bind(host, w.index, PASSIVE_LEVEL, "EVT_WDF_WORKITEM");
        {
            let mut r = w.run.lock();
            r.queued = false;
            r.running.push(ctx::thread_token());
        }
        // SAFETY: the driver's EvtWorkItem with its WDFWORKITEM; the image stays mapped while the
        // item counts as activity.
        unsafe { (w.func)(h as *mut c_void) };
        let mut r = w.run.lock();
        let me = ctx::thread_token();
        r.running.retain(|t| *t != me);
        w.cv.notify_all();
        std::mem::take(&mut r.delete_after_run)
    };
    if delete {
        let _bound = ctx::bind(host, w.index, PASSIVE_LEVEL, "EVT_WDF_WORKITEM");
        finish_delete(h, w);
    }
}

#[no_mangle]
pub(crate) extern "C" fn WdfWorkItemEnqueue(h: *mut c_void) {
    boundary("WdfWorkItemEnqueue", (), || {
        ctx::check_irql("WdfWorkItemEnqueue", DISPATCH_LEVEL);
        let Some(w) = item(h, "WdfWorkItemEnqueue") else {
            return;
        };
        let Some(host) = ctx::with_host(|x| x.me.upgrade()).flatten() else {
            return;
        };
        {
            let mut r = w.run.lock();
            if r.queued || r.delete_after_run {
                return;
            }
            r.queued = true;
        }
        host.rt.activity.item_queued(w.index);
        let (hh, ww, handle) = (host.clone(), w.clone(), h as usize);
        let job: crate::sys::thread::Job = Box::new(move || {
            run_item(&hh, handle, &ww);
            hh.rt.activity.item_done(ww.index);
        });
        if !host.rt.workers.submit(job) {
            w.run.lock().queued = false;
            w.cv.notify_all();
            host.rt.activity.item_done(w.index);
        }
    });
}

/// Waits until the item is neither queued nor running (bounded by the host's unload timeout);
/// false (and a finding) when called from the item's own callback or when the bound passed.
fn flush(w: &WorkItem, function: &'static str) -> bool {
    let me = ctx::thread_token();
    let bound = ctx::with_host(|h| h.config.unload_timeout).unwrap_or_default();
    let deadline = Instant::now() + bound;
    let mut r = w.run.lock();
    if r.running.contains(&me) {
        drop(r);
        assertion(format!(
            "{function} from the work item's own EvtWorkItem (deadlock on Windows)"
        ));
        return false;
    }
    while r.queued || !r.running.is_empty() {
        if w.cv.wait_until(&mut r, deadline).timed_out() {
            drop(r);
            assertion(format!(
                "{function}: the work item's callback did not finish"
            ));
            return false;
        }
    }
    true
}

#[no_mangle]
pub(crate) extern "C" fn WdfWorkItemFlush(h: *mut c_void) {
    boundary("WdfWorkItemFlush", (), || {
        ctx::check_irql("WdfWorkItemFlush", PASSIVE_LEVEL);
        if let Some(w) = item(h, "WdfWorkItemFlush") {
            flush(&w, "WdfWorkItemFlush");
        }
    });
}

#[no_mangle]
pub(crate) extern "C" fn WdfWorkItemGetParentObject(h: *mut c_void) -> *mut c_void {
    boundary("WdfWorkItemGetParentObject", std::ptr::null_mut(), || {
        item(h, "WdfWorkItemGetParentObject")
            .map_or(std::ptr::null_mut(), |w| w.parent as *mut c_void)
    })
}

/// EvtCleanupCallback, then the object and its context go.
fn finish_delete(h: usize, w: &WorkItem) {
    if let Some(c) = w.cleanup {
        // SAFETY: the driver's EvtCleanupCallback for its WDFWORKITEM, before the item goes.
        unsafe { c(h as *mut c_void) };
    }
    with_state(|s| s.remove(h));
}

/// Deletes a work item (WdfObjectDelete, or with its parent): waits for its callback, or, from
/// inside that callback, leaves the deletion to the callback's end.
pub(super) fn delete(h: usize) {
    let Some(w) = item(h as *mut c_void, "WdfObjectDelete") else {
        return;
    };
    {
        let mut r = w.run.lock();
        if r.running.contains(&ctx::thread_token()) {
            r.delete_after_run = true;
            return;
        }
    }
    flush(&w, "WdfObjectDelete (work item)");
    finish_delete(h, &w);
}

/// Deletes the work items whose parent is `parent` (before the parent goes, as KMDF disposes
/// children first).
pub(super) fn delete_children(parent: usize) {
    let children: Vec<usize> = with_state(|s| {
        s.objects
            .iter()
            .filter(|(_, o)| matches!(&***o, Object::WorkItem(w) if w.parent == parent))
            .map(|(h, _)| *h)
            .collect()
    })
    .unwrap_or_default();
    for c in children {
        delete(c);
    }
}
