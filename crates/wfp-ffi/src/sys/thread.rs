//! System threads, object references and handles, work items (wdk-runtime.md §3, §4).
//!
//! * `PsCreateSystemThread` starts a real host thread bound to the creating driver's host, at
//!   PASSIVE_LEVEL. The header's inline wrapper passes a C trampoline that sets a
//!   `__builtin_setjmp` point, so `PsTerminateSystemThread` (inline too) unwinds only C frames
//!   back to it. The thread object is a `DISPATCHER_HEADER` signaled when the thread ends, so
//!   `KeWaitForSingleObject(thread, ...)` waits for it.
//! * Handles (`HANDLE`) index a per-host table; `ObReferenceObjectByHandle`, `ObfReferenceObject`,
//!   `ObfDereferenceObject` and `ZwClose` count references; the object is freed at zero.
//! * Work items run on the host's worker threads at PASSIVE_LEVEL. A queued item or a running
//!   thread holds the driver: unload waits for them (bounded) before unmapping the image.

use std::cell::Cell;
use std::collections::HashMap;
use std::ffi::c_void;
use std::sync::atomic::Ordering;
use std::sync::{mpsc, Arc};
use std::time::Instant;

use parking_lot::{Condvar, Mutex};

use super::ctx::{self, PASSIVE_LEVEL};
use super::sync::{futex_wake_all, DispatcherHeader, THREAD_OBJECT};
use super::{
    boundary, NtStatus, STATUS_INSUFFICIENT_RESOURCES, STATUS_INVALID_DEVICE_STATE,
    STATUS_INVALID_HANDLE, STATUS_INVALID_PARAMETER, STATUS_SUCCESS,
};
use crate::host::HostInner;
use crate::verifier::Finding;

const STATUS_OBJECT_TYPE_MISMATCH: NtStatus = 0xC000_0024_u32 as i32;
/// Kernel handles have the top bit set (OBJ_KERNEL_HANDLE).
const HANDLE_BASE: usize = 0xFFFF_FFFF_8000_0000;
/// `IoSizeofWorkItem()`: the caller-allocated IO_WORKITEM size (x64).
const WORK_ITEM_SIZE: u32 = 0x58;
/// Worker threads per host (Windows has many; a work item may wait for another one).
const WORKERS: usize = 4;

/// The object behind `*PsThreadType`.
pub(crate) struct ObjectType(#[expect(dead_code, reason = "only its address matters")] u8);
/// `POBJECT_TYPE` as a shareable static.
#[repr(transparent)]
pub(crate) struct ObjectTypePtr(*const ObjectType);
// SAFETY: points to an immutable static.
unsafe impl Sync for ObjectTypePtr {}
/// `POBJECT_TYPE *` as a shareable static.
#[repr(transparent)]
pub(crate) struct ObjectTypePtrPtr(*const ObjectTypePtr);
// SAFETY: points to an immutable static.
unsafe impl Sync for ObjectTypePtrPtr {}

static THREAD_TYPE: ObjectType = ObjectType(1);
static THREAD_TYPE_PTR: ObjectTypePtr = ObjectTypePtr(&THREAD_TYPE);
/// `extern POBJECT_TYPE *PsThreadType;`
#[no_mangle]
pub(crate) static PsThreadType: ObjectTypePtrPtr = ObjectTypePtrPtr(&THREAD_TYPE_PTR);

/// A system thread's object (what ObReferenceObjectByHandle returns).
#[repr(C)]
#[derive(Debug)]
pub(crate) struct ThreadObject {
    header: DispatcherHeader,
    exit_status: std::sync::atomic::AtomicI32,
}

/// What a handle refers to.
#[derive(Clone, Copy, Debug)]
pub(crate) enum HandleTarget {
    Thread(usize),
    /// A registry key of the driver's service (ZwOpenKey): the service key or its Parameters.
    Key {
        /// The Parameters subkey (holding the driver's parameters).
        parameters: bool,
    },
    /// An access token opened by FwpsOpenToken0 (fwpstoken.rs): its id and the access granted.
    #[expect(
        dead_code,
        reason = "recorded for debugging (Debug output); nothing in the host acts on a token yet"
    )]
    Token {
        id: u64,
        access: u32,
    },
}

#[derive(Debug)]
struct ThreadEntry {
    refs: usize,
    driver: usize,
}

#[derive(Debug)]
struct WorkItem {
    driver: usize,
    io_object: usize,
    /// From IoAllocateWorkItem (freed by IoFreeWorkItem) rather than IoInitializeWorkItem.
    allocated: bool,
    queued: bool,
}

/// Handles, thread objects and work items of one host.
#[derive(Debug, Default)]
pub(crate) struct Objects {
    handles: HashMap<usize, (HandleTarget, usize)>,
    next_handle: usize,
    threads: HashMap<usize, ThreadEntry>,
    work_items: HashMap<usize, WorkItem>,
}

impl Objects {
    pub(crate) fn open_handle(&mut self, target: HandleTarget, driver: usize) -> usize {
        self.next_handle += 1;
        let h = HANDLE_BASE + self.next_handle * 4;
        self.handles.insert(h, (target, driver));
        h
    }

    pub(crate) fn handle(&self, h: usize) -> Option<HandleTarget> {
        self.handles.get(&h).map(|(t, _)| *t)
    }

    /// Drops one reference; frees the thread object at zero. False if unknown.
    fn deref_thread(&mut self, obj: usize) -> bool {
        let Some(e) = self.threads.get_mut(&obj) else {
            return false;
        };
        e.refs -= 1;
        if e.refs == 0 {
            self.threads.remove(&obj);
            // SAFETY: created by Box::into_raw in create_thread; the last reference is gone.
            drop(unsafe { Box::from_raw(obj as *mut ThreadObject) });
        }
        true
    }

    /// What a driver left: (open handles, thread objects still referenced, work items).
    pub(crate) fn left_by(&self, driver: usize) -> (usize, usize, usize) {
        (
            self.handles.values().filter(|(_, d)| *d == driver).count(),
            self.threads.values().filter(|t| t.driver == driver).count(),
            self.work_items
                .values()
                .filter(|w| w.driver == driver && w.allocated)
                .count(),
        )
    }
}

/// Per-driver count of running system threads and queued/running work items.
#[derive(Debug, Default)]
pub(crate) struct Activity {
    counts: Mutex<HashMap<usize, usize>>,
    cv: Condvar,
    /// Work items queued or running, every driver's ([`super::InProgress::WorkItems`]).
    items: std::sync::atomic::AtomicUsize,
}

impl Activity {
    /// Work items queued or running (a work item's routine is short work the driver queued at
    /// this point of the data path: [`crate::DriverHost::settle`] waits for it).
    pub(crate) fn work_items(&self) -> usize {
        self.items.load(Ordering::Acquire)
    }

    pub(crate) fn item_queued(&self, driver: usize) {
        self.items.fetch_add(1, Ordering::AcqRel);
        self.enter(driver);
    }

    pub(crate) fn item_done(&self, driver: usize) {
        self.items.fetch_sub(1, Ordering::AcqRel);
        self.leave(driver);
    }

    pub(crate) fn enter(&self, driver: usize) {
        *self.counts.lock().entry(driver).or_default() += 1;
    }

    pub(crate) fn leave(&self, driver: usize) {
        let mut c = self.counts.lock();
        if let Some(n) = c.get_mut(&driver) {
            *n = n.saturating_sub(1);
        }
        self.cv.notify_all();
    }

    /// Waits until the driver has no threads or work items; returns how many remain at `deadline`.
    pub(crate) fn wait_idle(&self, driver: usize, deadline: Instant) -> usize {
        let mut c = self.counts.lock();
        loop {
            let n = c.get(&driver).copied().unwrap_or(0);
            if n == 0 || self.cv.wait_until(&mut c, deadline).timed_out() {
                return c.get(&driver).copied().unwrap_or(0);
            }
        }
    }
}

pub(crate) type Job = Box<dyn FnOnce() + Send>;

/// The host's worker threads (started on the first work item; they end with the host).
#[derive(Default)]
pub(crate) struct Workers {
    tx: Mutex<Option<mpsc::Sender<Job>>>,
}

impl std::fmt::Debug for Workers {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Workers")
    }
}

impl Workers {
    pub(crate) fn submit(&self, job: Job) -> bool {
        let mut tx = self.tx.lock();
        if tx.is_none() {
            let (s, r) = mpsc::channel::<Job>();
            let r = Arc::new(Mutex::new(r));
            for i in 0..WORKERS {
                let r = r.clone();
                let spawned = std::thread::Builder::new()
                    .name(format!("wfp-worker-{i}"))
                    .spawn(move || loop {
                        let job = r.lock().recv();
                        match job {
                            Ok(j) => j(),
                            Err(_) => break,
                        }
                    });
                if spawned.is_err() && i == 0 {
                    return false;
                }
            }
            *tx = Some(s);
        }
        tx.as_ref().is_some_and(|s| s.send(job).is_ok())
    }
}

thread_local! {
    /// (thread object, jump buffer) of the system thread running on this OS thread.
    static SYSTEM_THREAD: Cell<(usize, usize)> = const { Cell::new((0, 0)) };
}

type Trampoline = unsafe extern "C" fn(*const c_void, *mut c_void);

/// Arguments moved to a new system thread.
struct Start {
    host: Arc<HostInner>,
    driver: usize,
    object: usize,
    trampoline: Trampoline,
    routine: usize,
    context: usize,
}

fn run_system_thread(s: Start) {
    {
        let _bound = ctx::bind(&s.host, s.driver, PASSIVE_LEVEL, "system thread");
        SYSTEM_THREAD.with(|t| t.set((s.object, 0)));
        // SAFETY: the header's trampoline, calling the driver's KSTART_ROUTINE with its context;
        // the image stays mapped while this thread runs (unload waits for the activity count).
        unsafe { (s.trampoline)(s.routine as *const c_void, s.context as *mut c_void) };
        super::dispatcher::abandon_owned();
        SYSTEM_THREAD.with(|t| t.set((0, 0)));
    }
    // SAFETY: the thread holds a reference on its object, dropped below, so it is live here.
    let obj = unsafe { &*(s.object as *const ThreadObject) };
    obj.header.signal_state.store(1, Ordering::Release);
    futex_wake_all(&obj.header.signal_state);
    s.host.rt.dispatcher.advance();
    s.host.rt.objects.lock().deref_thread(s.object);
    s.host.rt.activity.leave(s.driver);
}

/// Type-erased `PsCreateSystemThread` (the header's inline wrapper adds the trampoline).
#[no_mangle]
pub(crate) unsafe extern "C" fn WfpRtCreateSystemThread(
    handle: *mut *mut c_void,
    _access: u32,
    _attributes: *mut c_void,
    _process: *mut c_void,
    client_id: *mut [usize; 2],
    trampoline: Option<Trampoline>,
    routine: *const c_void,
    context: *mut c_void,
) -> NtStatus {
    boundary(
        "PsCreateSystemThread",
        STATUS_INSUFFICIENT_RESOURCES,
        || {
            let (Some(trampoline), false, false) =
                (trampoline, routine.is_null(), handle.is_null())
            else {
                return STATUS_INVALID_PARAMETER;
            };
            if ctx::irql() != PASSIVE_LEVEL {
                ctx::with_host(|h| {
                    h.finding(Finding::IrqlTooHigh {
                        function: "PsCreateSystemThread",
                        irql: ctx::irql(),
                    });
                });
            }
            let Some(host) = ctx::with_host(|h| h.me.upgrade()).flatten() else {
                return STATUS_INVALID_DEVICE_STATE;
            };
            let driver = ctx::current_driver();
            let object = Box::into_raw(Box::new(ThreadObject {
                header: DispatcherHeader::new(THREAD_OBJECT, false),
                exit_status: std::sync::atomic::AtomicI32::new(STATUS_SUCCESS),
            })) as usize;
            let h = {
                let mut o = host.rt.objects.lock();
                o.threads.insert(object, ThreadEntry { refs: 2, driver });
                o.open_handle(HandleTarget::Thread(object), driver)
            };
            host.rt.activity.enter(driver);
            let start = Start {
                host: host.clone(),
                driver,
                object,
                trampoline,
                routine: routine as usize,
                context: context as usize,
            };
            let spawned = std::thread::Builder::new()
                .name("wfp-system-thread".into())
                .spawn(move || run_system_thread(start));
            let tid = match spawned {
                Ok(j) => j.thread().id(),
                Err(_) => {
                    let mut o = host.rt.objects.lock();
                    o.handles.remove(&h);
                    o.deref_thread(object);
                    o.deref_thread(object);
                    drop(o);
                    host.rt.activity.leave(driver);
                    return STATUS_INSUFFICIENT_RESOURCES;
                }
            };
            // SAFETY: the caller's out-pointers (handle checked non-null, client_id optional).
            unsafe {
                *handle = h as *mut c_void;
                if let Some(c) = client_id.as_mut() {
                    *c = [std::process::id() as usize, thread_number(tid)];
                }
            }
            STATUS_SUCCESS
        },
    )
}

fn thread_number(id: std::thread::ThreadId) -> usize {
    use std::hash::{Hash, Hasher};
    let mut h = std::collections::hash_map::DefaultHasher::new();
    id.hash(&mut h);
    (h.finish() as usize) & 0x7FFF_FFFC
}

/// Records the trampoline's jump buffer for `PsTerminateSystemThread`.
#[no_mangle]
pub(crate) extern "C" fn WfpRtThreadSetExit(jump: *mut c_void) {
    SYSTEM_THREAD.with(|t| {
        let (obj, _) = t.get();
        t.set((obj, jump as usize));
    });
}

/// `PsTerminateSystemThread`'s runtime half: records the exit status and returns the jump buffer
/// to unwind to, or NULL when the caller is not a system thread.
#[no_mangle]
pub(crate) extern "C" fn WfpRtThreadExit(status: NtStatus) -> *mut c_void {
    let (obj, jump) = SYSTEM_THREAD.with(Cell::get);
    if obj == 0 || jump == 0 {
        return std::ptr::null_mut();
    }
    // SAFETY: this thread's own object, referenced until run_system_thread ends.
    let o = unsafe { &*(obj as *const ThreadObject) };
    o.exit_status.store(status, Ordering::Relaxed);
    jump as *mut c_void
}

fn bad(function: &'static str) {
    ctx::with_host(|h| h.finding(Finding::BadHandle { function }));
}

#[no_mangle]
pub(crate) unsafe extern "C" fn ObReferenceObjectByHandle(
    handle: *mut c_void,
    _access: u32,
    object_type: *const c_void,
    _mode: i8,
    object: *mut *mut c_void,
    _info: *mut c_void,
) -> NtStatus {
    boundary("ObReferenceObjectByHandle", STATUS_INVALID_HANDLE, || {
        super::ctx::check_irql("ObReferenceObjectByHandle", 0);
        if object.is_null() {
            return STATUS_INVALID_PARAMETER;
        }
        let r = ctx::with_host(|h| {
            let mut o = h.rt.objects.lock();
            match o.handle(handle as usize) {
                Some(HandleTarget::Thread(t)) => {
                    if !object_type.is_null()
                        && object_type != std::ptr::from_ref(&THREAD_TYPE).cast()
                    {
                        return Err(STATUS_OBJECT_TYPE_MISMATCH);
                    }
                    if let Some(e) = o.threads.get_mut(&t) {
                        e.refs += 1;
                    }
                    Ok(t)
                }
                Some(HandleTarget::Key { .. }) => Err(STATUS_OBJECT_TYPE_MISMATCH),
                Some(HandleTarget::Token { .. }) => Err(STATUS_OBJECT_TYPE_MISMATCH),
                None => Err(STATUS_INVALID_HANDLE),
            }
        });
        match r {
            Some(Ok(t)) => {
                // SAFETY: the caller's out-pointer (checked non-null).
                unsafe { *object = t as *mut c_void };
                STATUS_SUCCESS
            }
            Some(Err(e)) => {
                if e == STATUS_INVALID_HANDLE {
                    bad("ObReferenceObjectByHandle");
                }
                e
            }
            None => STATUS_INVALID_DEVICE_STATE,
        }
    })
}

#[no_mangle]
pub(crate) extern "C" fn ObfReferenceObject(object: *mut c_void) -> isize {
    boundary("ObfReferenceObject", 0, || {
        if let Some(n) = super::callbackobj::reference(object as usize) {
            return isize::try_from(n).unwrap_or(isize::MAX);
        }
        let n = ctx::with_host(|h| {
            let thread =
                h.rt.objects
                    .lock()
                    .threads
                    .get_mut(&(object as usize))
                    .map(|e| {
                        e.refs += 1;
                        e.refs
                    });
            // A file object from IoGetDeviceObjectPointer otherwise.
            thread.or_else(|| super::wdm_io::reference_file(h, object as usize))
        })
        .flatten();
        n.map_or_else(
            || {
                bad("ObReferenceObject");
                0
            },
            |n| isize::try_from(n).unwrap_or(isize::MAX),
        )
    })
}

#[no_mangle]
pub(crate) extern "C" fn ObfDereferenceObject(object: *mut c_void) -> isize {
    boundary("ObfDereferenceObject", 0, || {
        match super::callbackobj::dereference(object as usize) {
            Some(true) => return 0,
            Some(false) => {
                bad("ObDereferenceObject");
                return 0;
            }
            None => {}
        }
        let left = ctx::with_host(|h| {
            let mut o = h.rt.objects.lock();
            let n = o.threads.get(&(object as usize)).map(|e| e.refs - 1);
            o.deref_thread(object as usize);
            drop(o);
            // A file object from IoGetDeviceObjectPointer otherwise (closed at zero).
            n.or_else(|| super::wdm_io::dereference_file(h, object as usize))
        })
        .flatten();
        left.map_or_else(
            || {
                bad("ObDereferenceObject");
                0
            },
            |n| isize::try_from(n).unwrap_or(isize::MAX),
        )
    })
}

#[no_mangle]
pub(crate) extern "C" fn ZwClose(handle: *mut c_void) -> NtStatus {
    boundary("ZwClose", STATUS_INVALID_HANDLE, || {
        super::ctx::check_irql("ZwClose", 0);
        let r = ctx::with_host(|h| {
            let mut o = h.rt.objects.lock();
            match o.handles.remove(&(handle as usize)) {
                Some((HandleTarget::Thread(t), _)) => {
                    o.deref_thread(t);
                    true
                }
                Some((HandleTarget::Key { .. }, _)) => true,
                Some((HandleTarget::Token { .. }, _)) => true,
                None => false,
            }
        });
        match r {
            Some(true) => STATUS_SUCCESS,
            Some(false) => {
                bad("ZwClose");
                STATUS_INVALID_HANDLE
            }
            None => STATUS_INVALID_DEVICE_STATE,
        }
    })
}

#[no_mangle]
pub(crate) extern "C" fn PsGetCurrentProcessId() -> *mut c_void {
    std::process::id() as usize as *mut c_void
}

#[no_mangle]
pub(crate) extern "C" fn PsGetCurrentThreadId() -> *mut c_void {
    thread_number(std::thread::current().id()) as *mut c_void
}

// ---- work items (§4) -----------------------------------------------------------------------

#[no_mangle]
pub(crate) extern "C" fn IoSizeofWorkItem() -> u32 {
    WORK_ITEM_SIZE
}

fn register_item(item: usize, io_object: usize, allocated: bool) {
    ctx::with_host(|h| {
        h.rt.objects.lock().work_items.insert(
            item,
            WorkItem {
                driver: ctx::current_driver(),
                io_object,
                allocated,
                queued: false,
            },
        );
    });
}

#[no_mangle]
pub(crate) extern "C" fn IoAllocateWorkItem(device: *mut c_void) -> *mut c_void {
    boundary("IoAllocateWorkItem", std::ptr::null_mut(), || {
        super::ctx::check_irql("IoAllocateWorkItem", 2);
        if device.is_null() {
            return std::ptr::null_mut();
        }
        // SAFETY: calloc has no preconditions; NULL is returned as the failure value.
        let p = unsafe { libc::calloc(1, WORK_ITEM_SIZE as usize) };
        if !p.is_null() {
            register_item(p as usize, device as usize, true);
        }
        p
    })
}

#[no_mangle]
pub(crate) extern "C" fn IoInitializeWorkItem(io_object: *mut c_void, item: *mut c_void) {
    boundary("IoInitializeWorkItem", (), || {
        if !item.is_null() {
            register_item(item as usize, io_object as usize, false);
        }
    });
}

/// Forgets an item; `free` = it came from IoAllocateWorkItem and is released here.
fn retire_item(item: *mut c_void, function: &'static str, want_allocated: bool) {
    let r = ctx::with_host(|h| {
        let mut o = h.rt.objects.lock();
        match o.work_items.get(&(item as usize)) {
            None => Err(false),
            Some(w) if w.queued || w.allocated != want_allocated => Err(true),
            Some(_) => {
                o.work_items.remove(&(item as usize));
                Ok(())
            }
        }
    });
    match r {
        Some(Ok(())) if want_allocated => {
            // SAFETY: allocated by IoAllocateWorkItem (calloc) and now forgotten: freed once.
            unsafe { libc::free(item) };
        }
        Some(Ok(())) | None => {}
        Some(Err(false)) => bad(function),
        Some(Err(true)) => ctx::with_host(|h| {
            h.finding(Finding::Assertion {
                message: format!("{function} on a work item that is queued or of the other kind"),
            });
        })
        .unwrap_or(()),
    }
}

#[no_mangle]
pub(crate) extern "C" fn IoFreeWorkItem(item: *mut c_void) {
    boundary("IoFreeWorkItem", (), || {
        super::ctx::check_irql("IoFreeWorkItem", 2);
        retire_item(item, "IoFreeWorkItem", true);
    });
}

#[no_mangle]
pub(crate) extern "C" fn IoUninitializeWorkItem(item: *mut c_void) {
    boundary("IoUninitializeWorkItem", (), || {
        retire_item(item, "IoUninitializeWorkItem", false);
    });
}

type WorkRoutine = unsafe extern "C" fn(*mut c_void, *mut c_void);
type WorkRoutineEx = unsafe extern "C" fn(*mut c_void, *mut c_void, *mut c_void);

#[derive(Clone, Copy)]
enum Routine {
    Classic(WorkRoutine),
    Ex(WorkRoutineEx),
}

fn queue_item(item: *mut c_void, routine: Routine, context: *mut c_void) {
    let Some(host) = ctx::with_host(|h| h.me.upgrade()).flatten() else {
        return;
    };
    let claimed = {
        let mut o = host.rt.objects.lock();
        match o.work_items.get_mut(&(item as usize)) {
            None => Err(false),
            Some(w) if w.queued => Err(true),
            Some(w) => {
                w.queued = true;
                Ok((w.driver, w.io_object))
            }
        }
    };
    let (driver, io_object) = match claimed {
        Ok(x) => x,
        Err(queued) => {
            if queued {
                host.finding(Finding::Assertion {
                    message: "IoQueueWorkItem on a work item already queued".into(),
                });
            } else {
                bad("IoQueueWorkItem");
            }
            return;
        }
    };
    host.rt.activity.item_queued(driver);
    let (item, context) = (item as usize, context as usize);
    let h = host.clone();
    let job: Job = Box::new(move || {
        {
            let _bound = ctx::bind(&h, driver, PASSIVE_LEVEL, "IO_WORKITEM_ROUTINE");
            // The item may be queued again (or freed) once its routine has started.
            if let Some(w) = h.rt.objects.lock().work_items.get_mut(&item) {
                w.queued = false;
            }
            // SAFETY: the driver's routine with the object and context it queued; the image stays
            // mapped while the item is counted as activity.
            unsafe {
                match routine {
                    Routine::Classic(r) => r(io_object as *mut c_void, context as *mut c_void),
                    Routine::Ex(r) => r(
                        io_object as *mut c_void,
                        context as *mut c_void,
                        item as *mut c_void,
                    ),
                }
            }
        }
        h.rt.activity.item_done(driver);
    });
    if !host.rt.workers.submit(job) {
        host.rt.activity.item_done(driver);
    }
}

#[no_mangle]
pub(crate) extern "C" fn IoQueueWorkItem(
    item: *mut c_void,
    routine: Option<WorkRoutine>,
    _queue_type: i32,
    context: *mut c_void,
) {
    boundary("IoQueueWorkItem", (), || {
        super::ctx::check_irql("IoQueueWorkItem", 2);
        match routine {
            Some(r) => queue_item(item, Routine::Classic(r), context),
            None => bad("IoQueueWorkItem (NULL routine)"),
        }
    });
}

#[no_mangle]
pub(crate) extern "C" fn IoQueueWorkItemEx(
    item: *mut c_void,
    routine: Option<WorkRoutineEx>,
    _queue_type: i32,
    context: *mut c_void,
) {
    boundary("IoQueueWorkItemEx", (), || {
        super::ctx::check_irql("IoQueueWorkItemEx", 2);
        match routine {
            Some(r) => queue_item(item, Routine::Ex(r), context),
            None => bad("IoQueueWorkItemEx (NULL routine)"),
        }
    });
}
