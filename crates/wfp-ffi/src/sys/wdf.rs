//! KMDF, the part a callout driver's entry point uses (wdk-runtime.md §8): a non-PnP driver
//! object, a control device with a name and symbolic links, the Parameters registry key (values
//! from the driver's configured parameters), object contexts, and I/O queues (`queue`: the
//! default one, whose EvtIoDeviceControl the host reaches through [`crate::Driver::ioctl`], and
//! others).
//!
//! Every WDF handle is a pointer to a runtime object registered in the host's [`State`]; a handle
//! the runtime never gave out (or already deleted) is a Verifier finding, never a dereference.
//! Driver callbacks run with no runtime lock held.

use std::collections::{HashMap, VecDeque};
use std::ffi::c_void;
use std::time::{Duration, Instant};

use parking_lot::{Condvar, Mutex};

use super::ctx::{self, PASSIVE_LEVEL};
use super::kernel::{delete_device, IoCreateDevice};
use super::sync::STATUS_TIMEOUT;
use super::types::{DeviceObject, DriverObject, UnicodeString};
use super::{
    boundary, NtStatus, STATUS_INSUFFICIENT_RESOURCES, STATUS_INVALID_DEVICE_STATE,
    STATUS_INVALID_PARAMETER, STATUS_SUCCESS,
};
use crate::host::HostInner;
use crate::verifier::Finding;

const STATUS_BUFFER_OVERFLOW: NtStatus = 0x8000_0005_u32 as i32;
const STATUS_BUFFER_TOO_SMALL: NtStatus = 0xC000_0023_u32 as i32;
const STATUS_OBJECT_NAME_NOT_FOUND: NtStatus = 0xC000_0034_u32 as i32;
const STATUS_OBJECT_TYPE_MISMATCH: NtStatus = 0xC000_0024_u32 as i32;
const STATUS_ACCESS_DENIED: NtStatus = 0xC000_0022_u32 as i32;
const STATUS_INVALID_DEVICE_REQUEST: NtStatus = 0xC000_0010_u32 as i32;
const STATUS_INTERNAL_ERROR: NtStatus = 0xC000_00E5_u32 as i32;
const STATUS_NOT_SUPPORTED: NtStatus = 0xC000_00BB_u32 as i32;
const STATUS_INFO_LENGTH_MISMATCH: NtStatus = 0xC000_0004_u32 as i32;
const STATUS_CANCELLED: NtStatus = 0xC000_0120_u32 as i32;
const WDF_DRIVER_INIT_NON_PNP: u32 = 0x1;
const DO_DEVICE_INITIALIZING: u32 = 0x80;
const KEY_QUERY_VALUE: u32 = 0x1;
const GENERIC_READ: u32 = 0x8000_0000;
const GENERIC_ALL: u32 = 0x1000_0000;
const REG_SZ: u32 = 1;
const REG_DWORD: u32 = 4;
const METHOD_NEITHER: u32 = 3;
const METHOD_BUFFERED: u32 = 0;

/// A driver parameter's value (what `--driver-param NAME=VALUE` gives a driver).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ParamValue {
    /// REG_DWORD (WdfRegistryQueryULong).
    Dword(u32),
    /// REG_SZ (WdfRegistryQueryUnicodeString).
    String(String),
}

impl ParamValue {
    /// `dword:N`, `sz:TEXT`, or inferred: a decimal or `0x` hex number that fits 32 bits is a
    /// DWORD, anything else a string.
    pub fn parse(text: &str) -> Self {
        if let Some(s) = text.strip_prefix("sz:") {
            return Self::String(s.to_string());
        }
        let num = text.strip_prefix("dword:").unwrap_or(text);
        let n = num
            .strip_prefix("0x")
            .or_else(|| num.strip_prefix("0X"))
            .map_or_else(
                || num.parse::<u32>().ok(),
                |h| u32::from_str_radix(h, 16).ok(),
            );
        n.map_or_else(|| Self::String(text.to_string()), Self::Dword)
    }
}

type EvtDriverUnload = unsafe extern "C" fn(*mut c_void);
type EvtCleanup = unsafe extern "C" fn(*mut c_void);
type EvtIoDeviceControl = unsafe extern "C" fn(*mut c_void, *mut c_void, usize, usize, u32);

/// `WDF_DRIVER_CONFIG`.
#[repr(C)]
pub(crate) struct DriverConfig {
    size: u32,
    device_add: *const c_void,
    unload: Option<EvtDriverUnload>,
    init_flags: u32,
    pool_tag: u32,
}

/// `WDF_OBJECT_ATTRIBUTES`.
#[repr(C)]
pub(crate) struct ObjectAttributes {
    size: u32,
    cleanup: Option<EvtCleanup>,
    destroy: Option<EvtCleanup>,
    execution_level: i32,
    synchronization_scope: i32,
    parent: *mut c_void,
    context_size_override: usize,
    context_type: *const ContextTypeInfo,
}

/// `WDF_OBJECT_CONTEXT_TYPE_INFO`.
#[repr(C)]
pub(crate) struct ContextTypeInfo {
    size: u32,
    name: *const c_void,
    context_size: usize,
    unique: *const Self,
    get_unique: *const c_void,
}

/// `WDF_IO_QUEUE_CONFIG`.
#[repr(C)]
pub(crate) struct QueueConfig {
    size: u32,
    dispatch_type: i32,
    power_managed: i32,
    allow_zero_length: u8,
    default_queue: u8,
    evt_io_default: Option<queue::EvtIoDefault>,
    evt_io_read: Option<rw::EvtIoReadWrite>,
    evt_io_write: Option<rw::EvtIoReadWrite>,
    evt_io_device_control: Option<EvtIoDeviceControl>,
    evt_io_internal: Option<EvtIoDeviceControl>,
    evt_io_stop: *const c_void,
    evt_io_resume: *const c_void,
    evt_io_canceled: *const c_void,
    parallel: u32,
    driver: *mut c_void,
}

const _: () = assert!(std::mem::size_of::<DriverConfig>() == 32);
const _: () = assert!(std::mem::size_of::<ObjectAttributes>() == 56);
const _: () = assert!(std::mem::size_of::<ContextTypeInfo>() == 40);
const _: () = assert!(std::mem::size_of::<QueueConfig>() == 96);

#[derive(Debug)]
struct WdfDriver {
    index: usize,
    object: *mut DriverObject,
    unload: Option<EvtDriverUnload>,
    cleanup: Option<EvtCleanup>,
    /// The driver object's (synchronization scope, passive execution level).
    sync: (i32, bool),
}

#[derive(Debug, Default)]
struct DeviceInit {
    driver: usize,
    device_type: u32,
    characteristics: u32,
    class: Option<[u8; 16]>,
    name: Option<String>,
    /// WDF_DEVICE_IO_TYPE (0: not set, buffered).
    io_type: i32,
    in_caller: Option<neither::EvtIoInCallerContext>,
}

#[derive(Debug)]
struct WdfDevice {
    driver: usize,
    index: usize,
    object: *mut DeviceObject,
    name: Option<String>,
    links: Vec<String>,
    class: Option<[u8; 16]>,
    /// The default queue.
    queue: Option<usize>,
    /// Every queue of the device (the default one included).
    queues: Vec<usize>,
    /// WdfDeviceConfigureRequestDispatching: (IRP major code, queue).
    dispatch: Vec<(usize, usize)>,
    /// The device's synchronization scope, lock and execution level.
    sync: queue::SyncScope,
    cleanup: Option<EvtCleanup>,
    in_caller: Option<neither::EvtIoInCallerContext>,
}

#[derive(Debug)]
struct Queue {
    /// The WDFDEVICE it belongs to.
    device: usize,
    device_control: Option<EvtIoDeviceControl>,
    internal: Option<EvtIoDeviceControl>,
    default: Option<queue::EvtIoDefault>,
    read: Option<rw::EvtIoReadWrite>,
    write: Option<rw::EvtIoReadWrite>,
    /// WdfIoQueueDispatchSequential: one request presented at a time.
    sequential: bool,
    /// WdfIoQueueDispatchManual: nothing presented (WdfIoQueueRetrieveNextRequest).
    manual: bool,
    /// A request of a sequential queue is presented and not yet completed.
    busy: bool,
    /// Requests the queue holds (not yet presented or retrieved), oldest first.
    held: VecDeque<usize>,
    /// Requests of the queue the driver owns (presented or retrieved, not completed/forwarded).
    owned: usize,
    run: queue::Run,
    /// Stop / Purge completion callbacks waiting for `owned` to reach 0: (callback, context).
    idle: Vec<(queue::EvtQueueState, usize)>,
    sync: queue::SyncScope,
}

#[derive(Debug)]
struct Request {
    queue: usize,
    /// IRP_MJ_DEVICE_CONTROL, IRP_MJ_READ or IRP_MJ_WRITE.
    major: usize,
    /// The IRP it came from (a WDM driver's request to the device), 0 for the host's.
    irp: usize,
    method: u32,
    system: Vec<u8>,
    output: Vec<u8>,
    in_len: usize,
    out_len: usize,
    information: usize,
    completed: Option<NtStatus>,
    raw: neither::Raw,
    /// Parameters.Read/Write.ByteOffset (reads and writes).
    offset: i64,
    /// In a queue's FIFO (the framework's, not the driver's).
    held: bool,
    /// Presented to the driver by its queue (or retrieved from it) and not yet given back.
    presented: bool,
}

#[derive(Debug)]
struct Memory {
    request: usize,
    ptr: usize,
    len: usize,
}

#[derive(Debug)]
struct Key {
    index: usize,
    access: u32,
}

#[derive(Debug)]
enum Object {
    Driver(WdfDriver),
    DeviceInit(DeviceInit),
    Device(WdfDevice),
    Queue(Queue),
    Request(Request),
    Memory(Memory),
    Key(Key),
    WaitLock(std::sync::Arc<WaitLock>),
    WorkItem(std::sync::Arc<workitem::WorkItem>),
}

// SAFETY: the raw DRIVER_OBJECT / DEVICE_OBJECT pointers inside are only dereferenced under
// the state's mutex or by the driver's own thread calls; the objects live as long as the driver.
unsafe impl Send for State {}

/// WDF objects and driver parameters of one host.
#[derive(Debug, Default)]
pub(crate) struct State {
    /// Handle (a unique heap address) → object.
    objects: HashMap<usize, Box<Object>>,
    /// Handle → (unique context type, context memory).
    contexts: HashMap<usize, Vec<(usize, usize)>>,
    /// Driver index → parameters (case-insensitive names, as the registry).
    pub(crate) params: HashMap<usize, Vec<(String, ParamValue)>>,
}

/// The WDF state and the condition variable request completion signals.
#[derive(Debug, Default)]
pub(crate) struct Wdf {
    pub(crate) state: Mutex<State>,
    completed: Condvar,
}

impl State {
    fn insert(&mut self, o: Object) -> usize {
        let b = Box::new(o);
        let h = std::ptr::from_ref::<Object>(&b) as usize;
        self.objects.insert(h, b);
        h
    }

    fn remove(&mut self, h: usize) -> Option<Object> {
        if let Some(ctxs) = self.contexts.remove(&h) {
            for (_, mem) in ctxs {
                // SAFETY: context memory from calloc in allocate_context, freed once here.
                unsafe { libc::free(mem as *mut c_void) };
            }
        }
        self.objects.remove(&h).map(|b| *b)
    }

    fn driver_of_index(&self, index: usize) -> Option<usize> {
        self.objects.iter().find_map(|(h, o)| match &**o {
            Object::Driver(d) if d.index == index => Some(*h),
            _ => None,
        })
    }

    /// WDF objects a driver still holds, by kind (device inits never freed). Registry keys left
    /// open are not among them: a WDFKEY's parent is the driver object, and KMDF deletes it with
    /// its parent (the WDK's own samples rely on it), as [`Wdf::forget`] does here.
    pub(crate) fn left_by(&self, index: usize) -> Vec<(&'static str, usize)> {
        let inits = self
            .objects
            .values()
            .filter(|o| {
                matches!(&***o, Object::DeviceInit(i) if self.driver_index(i.driver) == Some(index))
            })
            .count();
        vec![("WDFDEVICE_INIT(s) never freed", inits)]
    }

    /// Forgets every WDF object of driver `index` (after its unload; the loader deletes the
    /// DEVICE_OBJECTs still linked to the driver object).
    pub(crate) fn forget(&mut self, index: usize) {
        let mut gone: Vec<usize> = Vec::new();
        for (h, o) in &self.objects {
            let mine = match &**o {
                Object::Driver(d) => d.index == index,
                Object::DeviceInit(i) => self.driver_index(i.driver) == Some(index),
                Object::Device(d) if d.index == index => {
                    // Only this driver's queues (another driver's device keeps its own).
                    gone.extend(&d.queues);
                    true
                }
                Object::Key(k) => k.index == index,
                Object::WaitLock(w) => w.index == index,
                Object::WorkItem(w) => w.index == index,
                _ => false,
            };
            if mine {
                gone.push(*h);
            }
        }
        for h in gone {
            self.remove(h);
        }
        self.params.remove(&index);
    }

    fn driver_index(&self, driver: usize) -> Option<usize> {
        match self.objects.get(&driver).map(|b| &**b) {
            Some(Object::Driver(d)) => Some(d.index),
            _ => None,
        }
    }
}

macro_rules! get {
    ($state:expr, $h:expr, $kind:ident) => {
        match $state.objects.get_mut(&($h as usize)).map(|b| &mut **b) {
            Some(Object::$kind(x)) => Some(x),
            _ => None,
        }
    };
}

pub(super) mod neither;
pub(super) mod queue;
mod rw;
pub(super) mod workitem;

fn bad(function: &'static str) {
    ctx::with_host(|h| h.finding(Finding::BadHandle { function }));
}

/// Runs `f` on the bound host's WDF state.
fn with_state<R>(f: impl FnOnce(&mut State) -> R) -> Option<R> {
    ctx::with_host(|h| f(&mut h.rt.wdf.state.lock()))
}

fn read_unicode(s: *const UnicodeString) -> Option<String> {
    // SAFETY: the caller's UNICODE_STRING (checked non-null) and its Length bytes.
    let s = unsafe { s.as_ref()? };
    if s.buffer.is_null() {
        return Some(String::new());
    }
    // SAFETY: as above.
    let units = unsafe { std::slice::from_raw_parts(s.buffer, usize::from(s.length) / 2) };
    Some(String::from_utf16_lossy(units))
}

/// Allocates the context an object's attributes ask for.
fn allocate_context(state: &mut State, handle: usize, attrs: *const ObjectAttributes) -> bool {
    // SAFETY: the caller's optional WDF_OBJECT_ATTRIBUTES.
    let Some(a) = (unsafe { attrs.as_ref() }) else {
        return true;
    };
    // SAFETY: the driver's static WDF_OBJECT_CONTEXT_TYPE_INFO (WDF_DECLARE_CONTEXT_TYPE).
    let Some(info) = (unsafe { a.context_type.as_ref() }) else {
        return true;
    };
    let unique = if info.unique.is_null() {
        a.context_type as usize
    } else {
        info.unique as usize
    };
    let size = if a.context_size_override > info.context_size {
        a.context_size_override
    } else {
        info.context_size
    };
    // SAFETY: calloc has no preconditions; NULL is checked.
    let mem = unsafe { libc::calloc(1, size.max(1)) };
    if mem.is_null() {
        return false;
    }
    state
        .contexts
        .entry(handle)
        .or_default()
        .push((unique, mem as usize));
    true
}

fn cleanup_of(attrs: *const ObjectAttributes) -> Option<EvtCleanup> {
    // SAFETY: the caller's optional WDF_OBJECT_ATTRIBUTES.
    unsafe { attrs.as_ref() }.and_then(|a| a.cleanup)
}

// ---- driver --------------------------------------------------------------------------------

/// The DRIVER_OBJECT's unload routine for a KMDF driver: EvtDriverUnload, then the framework
/// deletes the driver's devices, queues and the driver object (cleanup callbacks run).
unsafe extern "C" fn wdf_driver_unload(object: *mut DriverObject) {
    boundary("WdfDriverUnload", (), || {
        let index = ctx::current_driver();
        let Some(driver) = with_state(|s| s.driver_of_index(index)).flatten() else {
            return;
        };
        let (unload, cleanup) =
            with_state(|s| get!(s, driver, Driver).map_or((None, None), |d| (d.unload, d.cleanup)))
                .unwrap_or((None, None));
        if let Some(u) = unload {
            // SAFETY: the driver's EvtDriverUnload with its own WDFDRIVER.
            unsafe { u(driver as *mut c_void) };
        }
        let devices: Vec<usize> = with_state(|s| {
            s.objects
                .iter()
                .filter(|(_, o)| matches!(&***o, Object::Device(d) if d.driver == driver))
                .map(|(h, _)| *h)
                .collect()
        })
        .unwrap_or_default();
        for d in devices {
            delete_wdf_device(d);
        }
        if let Some(c) = cleanup {
            // SAFETY: the driver's EvtCleanupCallback for its WDFDRIVER.
            unsafe { c(driver as *mut c_void) };
        }
        with_state(|s| s.remove(driver));
        let _ = object;
    });
}

fn delete_wdf_device(h: usize) {
    let queues = with_state(|s| get!(s, h, Device).map(|d| d.queues.clone()))
        .flatten()
        .unwrap_or_default();
    for q in &queues {
        cancel_held(*q);
    }
    for parent in queues.iter().copied().chain([h]) {
        workitem::delete_children(parent);
    }
    let cleanup = with_state(|s| get!(s, h, Device).and_then(|d| d.cleanup)).flatten();
    if let Some(c) = cleanup {
        // SAFETY: the driver's EvtCleanupCallback for its WDFDEVICE, before the device goes.
        unsafe { c(h as *mut c_void) };
    }
    let removed = with_state(|s| {
        let dev = s.remove(h);
        if let Some(Object::Device(d)) = &dev {
            for q in &d.queues {
                s.remove(*q);
            }
        }
        dev
    })
    .flatten();
    if let Some(Object::Device(d)) = removed {
        // SAFETY: the DEVICE_OBJECT WdfDeviceCreate made with IoCreateDevice, deleted once (the
        // loader only deletes devices still linked to the driver object).
        unsafe { delete_device(d.object) };
    }
}

/// Cancels the requests a queue still holds (its deletion: KMDF purges it first).
fn cancel_held(queue: usize) {
    let held: Vec<usize> = with_state(|s| {
        get!(s, queue, Queue).map(|q| {
            q.run = queue::Run::Purged;
            q.held.drain(..).collect()
        })
    })
    .flatten()
    .unwrap_or_default();
    ctx::with_host(|h| {
        for r in held {
            complete_by_framework(h, r, STATUS_CANCELLED);
        }
    });
}

/// WdfObjectDelete of a queue: its held requests cancelled, its work items deleted, the
/// device forgets it (as its default queue and in its dispatching).
fn delete_queue(q: usize) {
    cancel_held(q);
    workitem::delete_children(q);
    with_state(|s| {
        let device = get!(s, q, Queue).map(|x| x.device);
        if let Some(d) = device.and_then(|d| get!(s, d, Device)) {
            d.queues.retain(|x| *x != q);
            d.dispatch.retain(|(_, x)| *x != q);
            if d.queue == Some(q) {
                d.queue = None;
            }
        }
        s.remove(q);
    });
}

#[no_mangle]
pub(crate) unsafe extern "C" fn WdfDriverCreate(
    object: *mut DriverObject,
    _registry_path: *const UnicodeString,
    attrs: *const ObjectAttributes,
    config: *const DriverConfig,
    out: *mut *mut c_void,
) -> NtStatus {
    boundary("WdfDriverCreate", STATUS_INSUFFICIENT_RESOURCES, || {
        super::ctx::check_irql("WdfDriverCreate", 0);
        // SAFETY: the caller's WDF_DRIVER_CONFIG (checked non-null).
        let (Some(cfg), false) = (unsafe { config.as_ref() }, object.is_null()) else {
            return STATUS_INVALID_PARAMETER;
        };
        if cfg.size as usize != std::mem::size_of::<DriverConfig>() {
            return STATUS_INFO_LENGTH_MISMATCH;
        }
        if !cfg.device_add.is_null() && cfg.init_flags & WDF_DRIVER_INIT_NON_PNP == 0 {
            // No PnP manager here: EvtDriverDeviceAdd would never be called.
            return STATUS_NOT_SUPPORTED;
        }
        let index = ctx::current_driver();
        let r = with_state(|s| {
            if s.driver_of_index(index).is_some() {
                return Err(STATUS_INVALID_DEVICE_STATE);
            }
            let h = s.insert(Object::Driver(WdfDriver {
                index,
                object,
                unload: cfg.unload,
                cleanup: cleanup_of(attrs),
                sync: queue::driver_sync(attrs),
            }));
            if !allocate_context(s, h, attrs) {
                s.remove(h);
                return Err(STATUS_INSUFFICIENT_RESOURCES);
            }
            Ok(h)
        });
        install_dispatch(object);
        let h = match r {
            Some(Ok(h)) => h,
            Some(Err(e)) => return e,
            None => return STATUS_INVALID_DEVICE_STATE,
        };
        // SAFETY: the loader's DRIVER_OBJECT (non-null); `out` is optional.
        unsafe {
            (*object).driver_unload = Some(wdf_driver_unload);
            if let Some(o) = out.as_mut() {
                *o = h as *mut c_void;
            }
        }
        STATUS_SUCCESS
    })
}

#[no_mangle]
pub(crate) extern "C" fn WdfDriverWdmGetDriverObject(driver: *mut c_void) -> *mut DriverObject {
    boundary("WdfDriverWdmGetDriverObject", std::ptr::null_mut(), || {
        let o = with_state(|s| get!(s, driver, Driver).map(|d| d.object)).flatten();
        o.unwrap_or_else(|| {
            bad("WdfDriverWdmGetDriverObject");
            std::ptr::null_mut()
        })
    })
}

#[no_mangle]
pub(crate) extern "C" fn WdfWdmDriverGetWdfDriverHandle(object: *mut DriverObject) -> *mut c_void {
    boundary(
        "WdfWdmDriverGetWdfDriverHandle",
        std::ptr::null_mut(),
        || {
            with_state(|s| {
                s.objects.iter().find_map(|(h, o)| match &**o {
                    Object::Driver(d) if d.object == object => Some(*h as *mut c_void),
                    _ => None,
                })
            })
            .flatten()
            .unwrap_or(std::ptr::null_mut())
        },
    )
}

#[no_mangle]
pub(crate) extern "C" fn WdfGetDriver() -> *mut c_void {
    boundary("WdfGetDriver", std::ptr::null_mut(), || {
        let index = ctx::current_driver();
        with_state(|s| s.driver_of_index(index))
            .flatten()
            .map_or(std::ptr::null_mut(), |h| h as *mut c_void)
    })
}

// ---- device init and devices ---------------------------------------------------------------

#[no_mangle]
pub(crate) extern "C" fn WdfControlDeviceInitAllocate(
    driver: *mut c_void,
    _sddl: *const UnicodeString,
) -> *mut c_void {
    boundary("WdfControlDeviceInitAllocate", std::ptr::null_mut(), || {
        super::ctx::check_irql("WdfControlDeviceInitAllocate", 0);
        let h = with_state(|s| {
            get!(s, driver, Driver)?;
            Some(s.insert(Object::DeviceInit(DeviceInit {
                driver: driver as usize,
                device_type: 0x22,
                ..DeviceInit::default()
            })))
        })
        .flatten();
        h.map_or_else(
            || {
                bad("WdfControlDeviceInitAllocate");
                std::ptr::null_mut()
            },
            |h| h as *mut c_void,
        )
    })
}

/// Applies `f` to a WDFDEVICE_INIT, or reports a bad handle.
fn with_init(init: *mut c_void, function: &'static str, f: impl FnOnce(&mut DeviceInit)) {
    if with_state(|s| get!(s, init, DeviceInit).map(f))
        .flatten()
        .is_none()
    {
        bad(function);
    }
}

#[no_mangle]
pub(crate) extern "C" fn WdfDeviceInitSetDeviceType(init: *mut c_void, device_type: u32) {
    boundary("WdfDeviceInitSetDeviceType", (), || {
        with_init(init, "WdfDeviceInitSetDeviceType", |i| {
            i.device_type = device_type;
        });
    });
}

#[no_mangle]
pub(crate) extern "C" fn WdfDeviceInitSetCharacteristics(init: *mut c_void, chars: u32, or_in: u8) {
    boundary("WdfDeviceInitSetCharacteristics", (), || {
        with_init(init, "WdfDeviceInitSetCharacteristics", |i| {
            i.characteristics = if or_in != 0 {
                i.characteristics | chars
            } else {
                chars
            };
        });
    });
}

#[no_mangle]
pub(crate) unsafe extern "C" fn WdfDeviceInitSetDeviceClass(
    init: *mut c_void,
    guid: *const [u8; 16],
) {
    boundary("WdfDeviceInitSetDeviceClass", (), || {
        // SAFETY: the caller's GUID (checked non-null).
        let g = unsafe { guid.as_ref() }.copied();
        with_init(init, "WdfDeviceInitSetDeviceClass", |i| i.class = g);
    });
}

#[no_mangle]
pub(crate) extern "C" fn WdfDeviceInitSetIoType(init: *mut c_void, io_type: i32) {
    boundary("WdfDeviceInitSetIoType", (), || {
        // The device's DO_BUFFERED_IO / DO_DIRECT_IO (read and write requests' buffers).
        with_init(init, "WdfDeviceInitSetIoType", |i| i.io_type = io_type);
    });
}

#[no_mangle]
pub(crate) extern "C" fn WdfDeviceInitSetExclusive(init: *mut c_void, _exclusive: u8) {
    boundary("WdfDeviceInitSetExclusive", (), || {
        with_init(init, "WdfDeviceInitSetExclusive", |_| {});
    });
}

#[no_mangle]
pub(crate) extern "C" fn WdfDeviceInitAssignName(
    init: *mut c_void,
    name: *const UnicodeString,
) -> NtStatus {
    boundary("WdfDeviceInitAssignName", STATUS_INVALID_PARAMETER, || {
        let n = read_unicode(name);
        let found = with_state(|s| get!(s, init, DeviceInit).map(|i| i.name = n)).flatten();
        if found.is_none() {
            bad("WdfDeviceInitAssignName");
            return STATUS_INVALID_PARAMETER;
        }
        STATUS_SUCCESS
    })
}

#[no_mangle]
pub(crate) extern "C" fn WdfDeviceInitFree(init: *mut c_void) {
    boundary("WdfDeviceInitFree", (), || {
        let ok = with_state(|s| {
            get!(s, init, DeviceInit)?;
            s.remove(init as usize)
        })
        .flatten();
        if ok.is_none() {
            bad("WdfDeviceInitFree");
        }
    });
}

/// IoCreateDevice for a framework device: its name goes into the host's object namespace,
/// shared with WDM devices (a name given wins over FILE_AUTOGENERATED_DEVICE_NAME, 0x80, which
/// only stays in Characteristics).
fn device_object(object: *mut DriverObject, i: &DeviceInit) -> (NtStatus, *mut DeviceObject) {
    let mut dev: *mut DeviceObject = std::ptr::null_mut();
    let mut wide: Vec<u16> = i.name.as_deref().unwrap_or("").encode_utf16().collect();
    let bytes = u16::try_from(wide.len() * 2).unwrap_or(u16::MAX - 1);
    let name = UnicodeString {
        length: bytes,
        maximum_length: bytes,
        buffer: wide.as_mut_ptr(),
    };
    let (name, characteristics) = match i.name {
        Some(_) => (&raw const name, i.characteristics & !0x80),
        None => (std::ptr::null(), i.characteristics),
    };
    // SAFETY: the driver's own DRIVER_OBJECT, a local UNICODE_STRING over `wide` (or NULL) and
    // a local out-pointer.
    let st =
        unsafe { IoCreateDevice(object, 0, name, i.device_type, characteristics, 0, &mut dev) };
    if st == STATUS_SUCCESS {
        // SAFETY: the device IoCreateDevice just made.
        unsafe {
            (*dev).characteristics = i.characteristics;
            (*dev).flags |= rw::io_flags(i.io_type);
        }
    }
    (st, dev)
}

#[no_mangle]
pub(crate) unsafe extern "C" fn WdfDeviceCreate(
    init: *mut *mut c_void,
    attrs: *const ObjectAttributes,
    out: *mut *mut c_void,
) -> NtStatus {
    boundary("WdfDeviceCreate", STATUS_INSUFFICIENT_RESOURCES, || {
        super::ctx::check_irql("WdfDeviceCreate", 0);
        if init.is_null() || out.is_null() {
            return STATUS_INVALID_PARAMETER;
        }
        // SAFETY: the caller's PWDFDEVICE_INIT* (checked non-null).
        let ih = unsafe { *init } as usize;
        let taken = with_state(|s| {
            get!(s, ih, DeviceInit)?;
            match s.remove(ih) {
                Some(Object::DeviceInit(i)) => Some(i),
                _ => None,
            }
        })
        .flatten();
        let Some(i) = taken else {
            bad("WdfDeviceCreate");
            return STATUS_INVALID_PARAMETER;
        };
        let object = with_state(|s| get!(s, i.driver, Driver).map(|d| d.object)).flatten();
        let Some(object) = object else {
            return STATUS_INVALID_DEVICE_STATE;
        };
        let (st, dev) = device_object(object, &i);
        if st != STATUS_SUCCESS {
            // A failed create leaves the init with the caller (WdfDeviceInitFree).
            with_state(|s| {
                let h = s.insert(Object::DeviceInit(i));
                // SAFETY: the caller's PWDFDEVICE_INIT* (checked non-null).
                unsafe { *init = h as *mut c_void };
            });
            return st;
        }
        let index = ctx::current_driver();
        let h = with_state(|s| {
            let driver_sync = get!(s, i.driver, Driver).map_or((4, false), |d| d.sync);
            let h = s.insert(Object::Device(WdfDevice {
                driver: i.driver,
                index,
                object: dev,
                name: i.name.clone(),
                links: Vec::new(),
                class: i.class,
                queue: None,
                queues: Vec::new(),
                dispatch: Vec::new(),
                sync: queue::device_sync(attrs, driver_sync),
                cleanup: cleanup_of(attrs),
                in_caller: i.in_caller,
            }));
            allocate_context(s, h, attrs);
            h
        });
        let Some(h) = h else {
            return STATUS_INVALID_DEVICE_STATE;
        };
        // SAFETY: the caller's out-pointers (checked non-null).
        unsafe {
            *init = std::ptr::null_mut();
            *out = h as *mut c_void;
        }
        STATUS_SUCCESS
    })
}

#[no_mangle]
pub(crate) extern "C" fn WdfDeviceCreateSymbolicLink(
    device: *mut c_void,
    name: *const UnicodeString,
) -> NtStatus {
    boundary(
        "WdfDeviceCreateSymbolicLink",
        STATUS_INVALID_PARAMETER,
        || {
            super::ctx::check_irql("WdfDeviceCreateSymbolicLink", 0);
            let Some(n) = read_unicode(name) else {
                return STATUS_INVALID_PARAMETER;
            };
            let target = with_state(|s| get!(s, device, Device).map(|d| (d.name.clone(), d.index)))
                .flatten();
            let Some((target, index)) = target else {
                bad("WdfDeviceCreateSymbolicLink");
                return STATUS_INVALID_PARAMETER;
            };
            // A named device's link lives in the host's object namespace (with WDM's).
            if let Some(t) = target {
                let st = ctx::with_host(|h| super::wdm::add_link(h, &n, &t, index, true))
                    .unwrap_or(STATUS_INVALID_DEVICE_STATE);
                if st != STATUS_SUCCESS {
                    return st;
                }
            }
            with_state(|s| get!(s, device, Device).map(|d| d.links.push(n)));
            STATUS_SUCCESS
        },
    )
}

#[no_mangle]
pub(crate) extern "C" fn WdfControlFinishInitializing(device: *mut c_void) {
    boundary("WdfControlFinishInitializing", (), || {
        match with_state(|s| get!(s, device, Device).map(|d| d.object)).flatten() {
            // SAFETY: the device's live DEVICE_OBJECT.
            Some(o) => unsafe { (*o).flags &= !DO_DEVICE_INITIALIZING },
            None => bad("WdfControlFinishInitializing"),
        }
    });
}

#[no_mangle]
pub(crate) extern "C" fn WdfDeviceWdmGetDeviceObject(device: *mut c_void) -> *mut DeviceObject {
    boundary("WdfDeviceWdmGetDeviceObject", std::ptr::null_mut(), || {
        with_state(|s| get!(s, device, Device).map(|d| d.object))
            .flatten()
            .unwrap_or_else(|| {
                bad("WdfDeviceWdmGetDeviceObject");
                std::ptr::null_mut()
            })
    })
}

#[no_mangle]
pub(crate) extern "C" fn WdfDeviceGetDriver(device: *mut c_void) -> *mut c_void {
    boundary("WdfDeviceGetDriver", std::ptr::null_mut(), || {
        with_state(|s| get!(s, device, Device).map(|d| d.driver as *mut c_void))
            .flatten()
            .unwrap_or_else(|| {
                bad("WdfDeviceGetDriver");
                std::ptr::null_mut()
            })
    })
}

#[no_mangle]
pub(crate) extern "C" fn WdfObjectDelete(object: *mut c_void) {
    boundary("WdfObjectDelete", (), || {
        let kind = with_state(|s| {
            s.objects.get(&(object as usize)).map(|o| match &**o {
                Object::Device(_) => 1,
                Object::Key(_) | Object::WaitLock(_) => 2,
                Object::WorkItem(_) => 3,
                Object::Queue(_) => 4,
                _ => 0,
            })
        })
        .flatten();
        match kind {
            Some(1) => delete_wdf_device(object as usize),
            Some(2) => {
                workitem::delete_children(object as usize);
                with_state(|s| s.remove(object as usize));
            }
            Some(3) => workitem::delete(object as usize),
            Some(4) => delete_queue(object as usize),
            Some(_) => ctx::with_host(|h| {
                h.finding(Finding::Assertion {
                    message: "WdfObjectDelete on an object the framework deletes itself".into(),
                });
            })
            .unwrap_or(()),
            None => bad("WdfObjectDelete"),
        }
    });
}

#[no_mangle]
pub(crate) unsafe extern "C" fn WdfObjectGetTypedContextWorker(
    object: *mut c_void,
    info: *const ContextTypeInfo,
) -> *mut c_void {
    boundary(
        "WdfObjectGetTypedContextWorker",
        std::ptr::null_mut(),
        || {
            // SAFETY: the driver's static type info (checked non-null).
            let unique = match unsafe { info.as_ref() } {
                Some(i) if !i.unique.is_null() => i.unique as usize,
                Some(_) => info as usize,
                None => return std::ptr::null_mut(),
            };
            with_state(|s| {
                s.contexts
                    .get(&(object as usize))
                    .and_then(|v| v.iter().find(|(u, _)| *u == unique))
                    .map(|(_, m)| *m as *mut c_void)
            })
            .flatten()
            .unwrap_or(std::ptr::null_mut())
        },
    )
}

#[no_mangle]
pub(crate) unsafe extern "C" fn WdfObjectAllocateContext(
    object: *mut c_void,
    attrs: *const ObjectAttributes,
    context: *mut *mut c_void,
) -> NtStatus {
    boundary(
        "WdfObjectAllocateContext",
        STATUS_INSUFFICIENT_RESOURCES,
        || {
            let r = with_state(|s| {
                if !s.objects.contains_key(&(object as usize)) {
                    return None;
                }
                let before = s.contexts.get(&(object as usize)).map_or(0, Vec::len);
                allocate_context(s, object as usize, attrs);
                s.contexts
                    .get(&(object as usize))
                    .filter(|v| v.len() > before)
                    .and_then(|v| v.last())
                    .map(|(_, m)| *m)
            })
            .flatten();
            match r {
                Some(m) => {
                    // SAFETY: the caller's optional out-pointer.
                    if let Some(c) = unsafe { context.as_mut() } {
                        *c = m as *mut c_void;
                    }
                    STATUS_SUCCESS
                }
                None => STATUS_INVALID_PARAMETER,
            }
        },
    )
}

// ---- registry (driver parameters) ----------------------------------------------------------

#[no_mangle]
pub(crate) unsafe extern "C" fn WdfDriverOpenParametersRegistryKey(
    driver: *mut c_void,
    access: u32,
    _attrs: *const ObjectAttributes,
    key: *mut *mut c_void,
) -> NtStatus {
    boundary(
        "WdfDriverOpenParametersRegistryKey",
        STATUS_INVALID_PARAMETER,
        || {
            if key.is_null() {
                return STATUS_INVALID_PARAMETER;
            }
            if ctx::irql() != PASSIVE_LEVEL {
                return STATUS_INVALID_DEVICE_REQUEST;
            }
            let h = with_state(|s| {
                let index = get!(s, driver, Driver)?.index;
                Some(s.insert(Object::Key(Key { index, access })))
            })
            .flatten();
            let Some(h) = h else {
                bad("WdfDriverOpenParametersRegistryKey");
                return STATUS_INVALID_PARAMETER;
            };
            // SAFETY: the caller's out-pointer (checked non-null).
            unsafe { *key = h as *mut c_void };
            STATUS_SUCCESS
        },
    )
}

/// Looks a value up under a key: Err(status) for a bad key, no access or a missing value.
fn query(
    key: *mut c_void,
    name: *const UnicodeString,
    function: &'static str,
) -> Result<ParamValue, NtStatus> {
    if ctx::irql() != PASSIVE_LEVEL {
        return Err(STATUS_INVALID_DEVICE_REQUEST);
    }
    let name = read_unicode(name).ok_or(STATUS_INVALID_PARAMETER)?;
    let r = with_state(|s| {
        let k = get!(s, key, Key)?;
        let (index, access) = (k.index, k.access);
        if access & (KEY_QUERY_VALUE | GENERIC_READ | GENERIC_ALL) == 0 {
            return Some(Err(STATUS_ACCESS_DENIED));
        }
        let v = s
            .params
            .get(&index)
            .and_then(|p| p.iter().find(|(n, _)| n.eq_ignore_ascii_case(&name)))
            .map(|(_, v)| v.clone());
        Some(v.ok_or(STATUS_OBJECT_NAME_NOT_FOUND))
    })
    .flatten();
    r.unwrap_or_else(|| {
        bad(function);
        Err(STATUS_INVALID_PARAMETER)
    })
}

#[no_mangle]
pub(crate) unsafe extern "C" fn WdfRegistryQueryULong(
    key: *mut c_void,
    name: *const UnicodeString,
    value: *mut u32,
) -> NtStatus {
    boundary("WdfRegistryQueryULong", STATUS_INVALID_PARAMETER, || {
        match query(key, name, "WdfRegistryQueryULong") {
            Ok(ParamValue::Dword(v)) => {
                // SAFETY: the caller's out-pointer (checked non-null).
                match unsafe { value.as_mut() } {
                    Some(o) => {
                        *o = v;
                        STATUS_SUCCESS
                    }
                    None => STATUS_INVALID_PARAMETER,
                }
            }
            Ok(ParamValue::String(_)) => STATUS_OBJECT_TYPE_MISMATCH,
            Err(e) => e,
        }
    })
}

#[no_mangle]
pub(crate) unsafe extern "C" fn WdfRegistryQueryUnicodeString(
    key: *mut c_void,
    name: *const UnicodeString,
    byte_length: *mut u16,
    value: *mut UnicodeString,
) -> NtStatus {
    boundary(
        "WdfRegistryQueryUnicodeString",
        STATUS_INVALID_PARAMETER,
        || {
            let text = match query(key, name, "WdfRegistryQueryUnicodeString") {
                Ok(ParamValue::String(t)) => t,
                Ok(ParamValue::Dword(_)) => return STATUS_OBJECT_TYPE_MISMATCH,
                Err(e) => return e,
            };
            let units: Vec<u16> = text.encode_utf16().collect();
            let bytes = units.len() * 2;
            // SAFETY: the caller's optional out-pointers.
            unsafe {
                if let Some(b) = byte_length.as_mut() {
                    *b = u16::try_from(bytes + 2).unwrap_or(u16::MAX);
                }
                let Some(v) = value.as_mut() else {
                    return STATUS_SUCCESS;
                };
                if usize::from(v.maximum_length) < bytes || v.buffer.is_null() {
                    return STATUS_BUFFER_OVERFLOW;
                }
                std::ptr::copy_nonoverlapping(units.as_ptr(), v.buffer, units.len());
                if usize::from(v.maximum_length) >= bytes + 2 {
                    *v.buffer.add(units.len()) = 0;
                }
                v.length = u16::try_from(bytes).unwrap_or(u16::MAX);
            }
            STATUS_SUCCESS
        },
    )
}

#[no_mangle]
pub(crate) unsafe extern "C" fn WdfRegistryQueryValue(
    key: *mut c_void,
    name: *const UnicodeString,
    length: u32,
    value: *mut c_void,
    queried: *mut u32,
    value_type: *mut u32,
) -> NtStatus {
    boundary("WdfRegistryQueryValue", STATUS_INVALID_PARAMETER, || {
        let v = match query(key, name, "WdfRegistryQueryValue") {
            Ok(v) => v,
            Err(e) => return e,
        };
        let (ty, data): (u32, Vec<u8>) = match v {
            ParamValue::Dword(d) => (REG_DWORD, d.to_le_bytes().to_vec()),
            ParamValue::String(s) => (
                REG_SZ,
                s.encode_utf16()
                    .chain([0])
                    .flat_map(u16::to_le_bytes)
                    .collect(),
            ),
        };
        // SAFETY: the caller's optional out-pointers and a buffer of `length` bytes.
        unsafe {
            if let Some(t) = value_type.as_mut() {
                *t = ty;
            }
            if let Some(q) = queried.as_mut() {
                *q = u32::try_from(data.len()).unwrap_or(u32::MAX);
            }
            if value.is_null() || (length as usize) < data.len() {
                return STATUS_BUFFER_OVERFLOW;
            }
            std::ptr::copy_nonoverlapping(data.as_ptr(), value.cast::<u8>(), data.len());
        }
        STATUS_SUCCESS
    })
}

#[no_mangle]
pub(crate) extern "C" fn WdfRegistryClose(key: *mut c_void) {
    boundary("WdfRegistryClose", (), || {
        let ok = with_state(|s| {
            get!(s, key, Key)?;
            s.remove(key as usize)
        })
        .flatten();
        if ok.is_none() {
            bad("WdfRegistryClose");
        }
    });
}

// ---- wait locks (KMDF WDFWAITLOCK) -----------------------------------------------------------

/// A WDFWAITLOCK: a mutex a driver holds across calls (acquired at PASSIVE_LEVEL, or polled with
/// a zero timeout up to DISPATCH_LEVEL), its parent the driver object (deleted with it at unload
/// or by WdfObjectDelete).
pub(crate) struct WaitLock {
    index: usize,
    raw: parking_lot::RawMutex,
    /// The thread token of the holder, 0 when free.
    owner: std::sync::atomic::AtomicUsize,
}

impl std::fmt::Debug for WaitLock {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WaitLock")
            .field("index", &self.index)
            .finish_non_exhaustive()
    }
}

fn wait_lock(lock: *mut c_void) -> Option<std::sync::Arc<WaitLock>> {
    with_state(|s| get!(s, lock, WaitLock).cloned()).flatten()
}

#[no_mangle]
pub(crate) unsafe extern "C" fn WdfWaitLockCreate(
    attrs: *const ObjectAttributes,
    lock: *mut *mut c_void,
) -> NtStatus {
    boundary("WdfWaitLockCreate", STATUS_INVALID_PARAMETER, || {
        ctx::check_irql("WdfWaitLockCreate", 2);
        if lock.is_null() {
            return STATUS_INVALID_PARAMETER;
        }
        let index = ctx::current_driver();
        let h = with_state(|s| {
            let h = s.insert(Object::WaitLock(std::sync::Arc::new(WaitLock {
                index,
                raw: <parking_lot::RawMutex as parking_lot::lock_api::RawMutex>::INIT,
                owner: std::sync::atomic::AtomicUsize::new(0),
            })));
            if allocate_context(s, h, attrs) {
                Some(h)
            } else {
                s.remove(h);
                None
            }
        });
        match h {
            Some(Some(h)) => {
                // SAFETY: checked non-null; the caller's WDFWAITLOCK storage.
                unsafe { lock.write(h as *mut c_void) };
                STATUS_SUCCESS
            }
            Some(None) => STATUS_INSUFFICIENT_RESOURCES,
            None => STATUS_INVALID_DEVICE_STATE,
        }
    })
}

/// WdfWaitLockAcquire: STATUS_SUCCESS once held, STATUS_TIMEOUT when `timeout` (relative
/// negative / absolute positive 100-ns units, 0 = poll, NULL = wait forever) passes first.
#[no_mangle]
pub(crate) unsafe extern "C" fn WdfWaitLockAcquire(
    lock: *mut c_void,
    timeout: *const i64,
) -> NtStatus {
    use parking_lot::lock_api::{RawMutex as _, RawMutexTimed as _};
    boundary("WdfWaitLockAcquire", STATUS_INVALID_PARAMETER, || {
        super::sync::check_wait_irql("WdfWaitLockAcquire", timeout);
        let Some(w) = wait_lock(lock) else {
            bad("WdfWaitLockAcquire");
            return STATUS_INVALID_PARAMETER;
        };
        let me = ctx::thread_token();
        if w.owner.load(std::sync::atomic::Ordering::Acquire) == me {
            // A recursive acquire deadlocks on Windows (wait locks are not recursive).
            ctx::with_host(|h| {
                h.finding(Finding::Assertion {
                    message: "WdfWaitLockAcquire: the thread already holds this wait lock".into(),
                });
            });
            return STATUS_TIMEOUT;
        }
        let got = match super::sync::decode_timeout(timeout) {
            super::sync::Timeout::Forever => {
                w.raw.lock();
                true
            }
            super::sync::Timeout::Until(t) => w.raw.try_lock_until(t),
        };
        if got {
            w.owner.store(me, std::sync::atomic::Ordering::Release);
            STATUS_SUCCESS
        } else {
            STATUS_TIMEOUT
        }
    })
}

/// WdfWaitLockRelease by the thread that holds the lock; any other call is a finding and
/// changes nothing.
#[no_mangle]
pub(crate) extern "C" fn WdfWaitLockRelease(lock: *mut c_void) {
    use parking_lot::lock_api::RawMutex as _;
    boundary("WdfWaitLockRelease", (), || {
        let Some(w) = wait_lock(lock) else {
            bad("WdfWaitLockRelease");
            return;
        };
        let me = ctx::thread_token();
        if w.owner
            .compare_exchange(
                me,
                0,
                std::sync::atomic::Ordering::AcqRel,
                std::sync::atomic::Ordering::Acquire,
            )
            .is_err()
        {
            ctx::with_host(|h| {
                h.finding(Finding::Assertion {
                    message: "WdfWaitLockRelease of a wait lock this thread does not hold".into(),
                });
            });
            return;
        }
        // SAFETY: this thread acquired the raw mutex in WdfWaitLockAcquire (owner was `me`).
        unsafe { w.raw.unlock() };
    });
}

// ---- I/O queue and requests ----------------------------------------------------------------

#[no_mangle]
pub(crate) unsafe extern "C" fn WdfIoQueueCreate(
    device: *mut c_void,
    config: *const QueueConfig,
    attrs: *const ObjectAttributes,
    out: *mut *mut c_void,
) -> NtStatus {
    boundary("WdfIoQueueCreate", STATUS_INSUFFICIENT_RESOURCES, || {
        super::ctx::check_irql("WdfIoQueueCreate", 2);
        // SAFETY: the caller's WDF_IO_QUEUE_CONFIG (checked non-null).
        let Some(cfg) = (unsafe { config.as_ref() }) else {
            return STATUS_INVALID_PARAMETER;
        };
        if cfg.size as usize != std::mem::size_of::<QueueConfig>() {
            return STATUS_INFO_LENGTH_MISMATCH;
        }
        if !(1..=3).contains(&cfg.dispatch_type) {
            return STATUS_INVALID_PARAMETER;
        }
        let r = with_state(|s| {
            let d = get!(s, device, Device)?;
            if cfg.default_queue != 0 && d.queue.is_some() {
                return Some(Err(STATUS_INVALID_DEVICE_STATE));
            }
            let sync = queue::queue_sync(attrs, &d.sync);
            let q = s.insert(Object::Queue(Queue {
                device: device as usize,
                device_control: cfg.evt_io_device_control,
                internal: cfg.evt_io_internal,
                default: cfg.evt_io_default,
                read: cfg.evt_io_read,
                write: cfg.evt_io_write,
                sequential: cfg.dispatch_type == 1,
                manual: cfg.dispatch_type == 3,
                busy: false,
                held: VecDeque::new(),
                owned: 0,
                run: queue::Run::Started,
                idle: Vec::new(),
                sync,
            }));
            allocate_context(s, q, attrs);
            if let Some(d) = get!(s, device, Device) {
                d.queues.push(q);
                if cfg.default_queue != 0 {
                    d.queue = Some(q);
                }
            }
            Some(Ok(q))
        })
        .flatten();
        match r {
            Some(Ok(q)) => {
                // SAFETY: the caller's optional out-pointer.
                if let Some(o) = unsafe { out.as_mut() } {
                    *o = q as *mut c_void;
                }
                STATUS_SUCCESS
            }
            Some(Err(e)) => e,
            None => {
                bad("WdfIoQueueCreate");
                STATUS_INVALID_PARAMETER
            }
        }
    })
}

/// (pointer, length) of a request's input or output buffer, or the failure status.
fn request_buffer(
    request: *mut c_void,
    output: bool,
    min: usize,
    function: &'static str,
) -> Result<(usize, usize), NtStatus> {
    let r = with_state(|s| {
        let rq = get!(s, request, Request)?;
        if rq.completed.is_some() {
            return Some(Err(STATUS_INTERNAL_ERROR));
        }
        let wrong_way =
            (output && rq.major == rw::IRP_MJ_WRITE) || (!output && rq.major == rw::IRP_MJ_READ);
        if rq.method == METHOD_NEITHER || wrong_way {
            return Some(Err(STATUS_INVALID_DEVICE_REQUEST));
        }
        let len = if output { rq.out_len } else { rq.in_len };
        if len == 0 || len < min {
            return Some(Err(STATUS_BUFFER_TOO_SMALL));
        }
        // METHOD_BUFFERED: one system buffer for input and output (output overwrites input).
        let ptr = if output && rq.method != METHOD_BUFFERED {
            rq.output.as_mut_ptr() as usize
        } else {
            rq.system.as_mut_ptr() as usize
        };
        Some(Ok((ptr, len)))
    })
    .flatten();
    r.unwrap_or_else(|| {
        bad(function);
        Err(STATUS_INVALID_PARAMETER)
    })
}

fn retrieve_buffer(
    request: *mut c_void,
    output: bool,
    min: usize,
    buf: *mut *mut c_void,
    len: *mut usize,
    function: &'static str,
) -> NtStatus {
    if buf.is_null() {
        return STATUS_INVALID_PARAMETER;
    }
    match request_buffer(request, output, min, function) {
        Ok((p, n)) => {
            // SAFETY: the caller's out-pointers (buf checked, len optional).
            unsafe {
                *buf = p as *mut c_void;
                if let Some(l) = len.as_mut() {
                    *l = n;
                }
            }
            STATUS_SUCCESS
        }
        Err(e) => e,
    }
}

#[no_mangle]
pub(crate) extern "C" fn WdfRequestRetrieveInputBuffer(
    request: *mut c_void,
    min: usize,
    buf: *mut *mut c_void,
    len: *mut usize,
) -> NtStatus {
    boundary(
        "WdfRequestRetrieveInputBuffer",
        STATUS_INVALID_PARAMETER,
        || {
            retrieve_buffer(
                request,
                false,
                min,
                buf,
                len,
                "WdfRequestRetrieveInputBuffer",
            )
        },
    )
}

#[no_mangle]
pub(crate) extern "C" fn WdfRequestRetrieveOutputBuffer(
    request: *mut c_void,
    min: usize,
    buf: *mut *mut c_void,
    len: *mut usize,
) -> NtStatus {
    boundary(
        "WdfRequestRetrieveOutputBuffer",
        STATUS_INVALID_PARAMETER,
        || {
            retrieve_buffer(
                request,
                true,
                min,
                buf,
                len,
                "WdfRequestRetrieveOutputBuffer",
            )
        },
    )
}

fn retrieve_memory(
    request: *mut c_void,
    output: bool,
    out: *mut *mut c_void,
    function: &'static str,
) -> NtStatus {
    if out.is_null() {
        return STATUS_INVALID_PARAMETER;
    }
    let (ptr, len) = match request_buffer(request, output, 0, function) {
        Ok(x) => x,
        Err(e) => return e,
    };
    let h = with_state(|s| {
        s.insert(Object::Memory(Memory {
            request: request as usize,
            ptr,
            len,
        }))
    });
    let Some(h) = h else {
        return STATUS_INVALID_DEVICE_STATE;
    };
    // SAFETY: the caller's out-pointer (checked non-null).
    unsafe { *out = h as *mut c_void };
    STATUS_SUCCESS
}

#[no_mangle]
pub(crate) extern "C" fn WdfRequestRetrieveInputMemory(
    request: *mut c_void,
    out: *mut *mut c_void,
) -> NtStatus {
    boundary(
        "WdfRequestRetrieveInputMemory",
        STATUS_INVALID_PARAMETER,
        || retrieve_memory(request, false, out, "WdfRequestRetrieveInputMemory"),
    )
}

#[no_mangle]
pub(crate) extern "C" fn WdfRequestRetrieveOutputMemory(
    request: *mut c_void,
    out: *mut *mut c_void,
) -> NtStatus {
    boundary(
        "WdfRequestRetrieveOutputMemory",
        STATUS_INVALID_PARAMETER,
        || retrieve_memory(request, true, out, "WdfRequestRetrieveOutputMemory"),
    )
}

#[no_mangle]
pub(crate) extern "C" fn WdfMemoryGetBuffer(memory: *mut c_void, size: *mut usize) -> *mut c_void {
    boundary("WdfMemoryGetBuffer", std::ptr::null_mut(), || {
        match with_state(|s| get!(s, memory, Memory).map(|m| (m.ptr, m.len))).flatten() {
            Some((p, n)) => {
                // SAFETY: the caller's optional out-pointer.
                if let Some(s) = unsafe { size.as_mut() } {
                    *s = n;
                }
                p as *mut c_void
            }
            None => {
                bad("WdfMemoryGetBuffer");
                std::ptr::null_mut()
            }
        }
    })
}

#[no_mangle]
pub(crate) extern "C" fn WdfRequestGetIoQueue(request: *mut c_void) -> *mut c_void {
    boundary("WdfRequestGetIoQueue", std::ptr::null_mut(), || {
        with_state(|s| get!(s, request, Request).map(|r| r.queue as *mut c_void))
            .flatten()
            .unwrap_or_else(|| {
                bad("WdfRequestGetIoQueue");
                std::ptr::null_mut()
            })
    })
}

#[no_mangle]
pub(crate) extern "C" fn WdfRequestSetInformation(request: *mut c_void, information: usize) {
    boundary("WdfRequestSetInformation", (), || {
        if with_state(|s| get!(s, request, Request).map(|r| r.information = information))
            .flatten()
            .is_none()
        {
            bad("WdfRequestSetInformation");
        }
    });
}

/// Why a request could not be completed.
enum Unfinished {
    Unknown,
    Twice,
    /// Still in a queue's FIFO: the framework's, not the driver's.
    Held,
}

/// Completes a request: its IRP (if any) completed, the waiting host woken, its queue released
/// when the driver owned it. `framework`: the framework completes it (cancelling a request a
/// queue holds, or one no callback takes).
fn finish(
    h: &HostInner,
    request: usize,
    status: NtStatus,
    information: Option<usize>,
    framework: bool,
) -> Result<(), Unfinished> {
    let mut s = h.rt.wdf.state.lock();
    let (queue, irp, presented) = match get!(s, request, Request) {
        None => return Err(Unfinished::Unknown),
        Some(rq) if rq.completed.is_some() => return Err(Unfinished::Twice),
        Some(rq) if rq.held && !framework => return Err(Unfinished::Held),
        Some(rq) => {
            if let Some(i) = information {
                rq.information = i;
            }
            rq.completed = Some(status);
            rq.held = false;
            (rq.queue, rq.irp, std::mem::take(&mut rq.presented))
        }
    };
    let mut from_irp = None;
    if irp != 0 {
        s.objects
            .retain(|_, o| !matches!(&**o, Object::Memory(m) if m.request == request));
        if let Some(Object::Request(rq)) = s.remove(request) {
            from_irp = Some(rq);
        }
    }
    drop(s);
    h.rt.wdf.completed.notify_all();
    if let Some(rq) = from_irp {
        complete_irp(h, &rq, status);
    }
    if presented {
        queue::released(h, queue);
    }
    Ok(())
}

/// The framework completes `request` (a cancelled or unclaimed request).
fn complete_by_framework(h: &HostInner, request: usize, status: NtStatus) {
    let _ = finish(h, request, status, None, true);
}

fn complete(request: *mut c_void, status: NtStatus, information: Option<usize>) {
    let r = ctx::with_host(|h| finish(h, request as usize, status, information, false));
    let message = match r {
        Some(Err(Unfinished::Unknown)) => return bad("WdfRequestComplete"),
        Some(Err(Unfinished::Twice)) => "WdfRequestComplete on a request already completed",
        Some(Err(Unfinished::Held)) => {
            "WdfRequestComplete on a request a queue still holds (the driver does not own it)"
        }
        _ => return,
    };
    ctx::assertion(message);
}

#[no_mangle]
pub(crate) extern "C" fn WdfRequestComplete(request: *mut c_void, status: NtStatus) {
    boundary("WdfRequestComplete", (), || {
        super::ctx::check_irql("WdfRequestComplete", 2);
        complete(request, status, None);
    });
}

#[no_mangle]
pub(crate) extern "C" fn WdfRequestCompleteWithInformation(
    request: *mut c_void,
    status: NtStatus,
    information: usize,
) {
    boundary("WdfRequestCompleteWithInformation", (), || {
        super::ctx::check_irql("WdfRequestCompleteWithInformation", 2);
        complete(request, status, Some(information));
    });
}

// ---- IRPs to framework devices ------------------------------------------------------------
// A framework device's name and links are in the host's object namespace with WDM's
// (docs/c-abi.md "WDM drivers"): a WDM driver opens it (IoGetDeviceObjectPointer) and sends it
// IRPs, which the framework's MajorFunction[] routines turn into requests on its default queue.

const IRP_MJ_CREATE: usize = 0x00;
const IRP_MJ_CLOSE: usize = 0x02;
const IRP_MJ_DEVICE_CONTROL: usize = 0x0e;
const IRP_MJ_CLEANUP: usize = 0x12;

/// Sets the framework's dispatch routines in the MajorFunction[] entries the driver left empty.
fn install_dispatch(object: *mut DriverObject) {
    let routines: [(usize, *const c_void); 7] = [
        (IRP_MJ_CREATE, framework_open_close as *const c_void),
        (IRP_MJ_CLEANUP, framework_open_close as *const c_void),
        (IRP_MJ_CLOSE, framework_open_close as *const c_void),
        (
            IRP_MJ_DEVICE_CONTROL,
            framework_device_control as *const c_void,
        ),
        (
            queue::IRP_MJ_INTERNAL_DEVICE_CONTROL,
            framework_device_control as *const c_void,
        ),
        (rw::IRP_MJ_READ, rw::framework_read_write as *const c_void),
        (rw::IRP_MJ_WRITE, rw::framework_read_write as *const c_void),
    ];
    for (major, f) in routines {
        // SAFETY: the driver's DRIVER_OBJECT (non-null, checked by the caller); 28 entries.
        unsafe {
            let slot = &raw mut (*object).major_function[major];
            if slot.read().is_null() {
                slot.write(f);
            }
        }
    }
}

/// Whether `f` is one of the framework's dispatch routines (not the driver's own).
pub(crate) fn is_framework_dispatch(f: *const c_void) -> bool {
    f == framework_open_close as *const c_void
        || f == framework_device_control as *const c_void
        || f == rw::framework_read_write as *const c_void
}

fn finish_now(host: &HostInner, irp: *mut super::wdm::Irp, status: NtStatus) -> NtStatus {
    // SAFETY: the IRP IofCallDriver passed to the dispatch routine.
    unsafe {
        (*irp).io_status.status = status;
        (*irp).io_status.information = 0;
    }
    super::irp::complete(host, irp);
    status
}

unsafe extern "C" fn framework_open_close(
    _dev: *mut DeviceObject,
    irp: *mut super::wdm::Irp,
) -> NtStatus {
    boundary(
        "KMDF create/cleanup/close",
        STATUS_INVALID_PARAMETER,
        || {
            ctx::with_host(|h| finish_now(h, irp, STATUS_SUCCESS))
                .unwrap_or(STATUS_INVALID_DEVICE_STATE)
        },
    )
}

unsafe extern "C" fn framework_device_control(
    dev: *mut DeviceObject,
    irp: *mut super::wdm::Irp,
) -> NtStatus {
    boundary("KMDF device control", STATUS_INVALID_PARAMETER, || {
        ctx::with_host(|h| present_irp(h, dev, irp)).unwrap_or(STATUS_INVALID_DEVICE_STATE)
    })
}

/// A device-control or internal device-control IRP to a framework device: a request on the
/// queue dispatching names for its type, else the default queue (pended; the IRP completes when
/// the driver completes the request).
fn present_irp(host: &HostInner, dev: *mut DeviceObject, irp: *mut super::wdm::Irp) -> NtStatus {
    // SAFETY: the IRP IofCallDriver passed; its current location is this device's.
    let major = unsafe { usize::from((*(*irp).tail.current_stack_location).major_function) };
    let target = {
        let s = host.rt.wdf.state.lock();
        s.objects.iter().find_map(|(h, o)| match &**o {
            Object::Device(d) if d.object == dev => queue::route(&s, *h, major)
                .filter(|q| queue::accepts(&s, *q, major))
                .map(|q| (q, d.index)),
            _ => None,
        })
    };
    let Some((queue, index)) = target else {
        return finish_now(host, irp, STATUS_INVALID_DEVICE_REQUEST);
    };
    // SAFETY: the IRP IofCallDriver passed; its current location is this device's.
    let (sp, system_buffer) = unsafe { ((*irp).tail.current_stack_location, (*irp).system_buffer) };
    // SAFETY: as above.
    let [out_len, in_len, code, type3] = unsafe { (*sp).parameters.words };
    let code = code as u32;
    let method = code & 3;
    let mut system = vec![
        0u8;
        if method == METHOD_BUFFERED {
            in_len.max(out_len)
        } else {
            in_len
        }
    ];
    if !system_buffer.is_null() && method != 3 {
        // SAFETY: the IRP's system buffer holds at least this many bytes (its builder's
        // contract: max(in, out) for METHOD_BUFFERED, the input for the direct methods).
        unsafe {
            std::ptr::copy_nonoverlapping(
                system_buffer.cast::<u8>(),
                system.as_mut_ptr(),
                system.len(),
            )
        };
    }
    let request = host.rt.wdf.state.lock().insert(Object::Request(Request {
        queue,
        major,
        irp: irp as usize,
        method,
        system,
        output: vec![
            0u8;
            if method == METHOD_BUFFERED {
                0
            } else {
                out_len
            }
        ],
        in_len,
        out_len,
        information: 0,
        completed: None,
        raw: neither::Raw {
            code,
            user_in: type3,
            // SAFETY: as above.
            user_out: unsafe { (*irp).user_buffer } as usize,
            in_caller: false,
        },
        offset: 0,
        held: false,
        presented: false,
    }));
    // SAFETY: as above (IoMarkIrpPending).
    unsafe { (*sp).control |= super::irp::SL_PENDING_RETURNED };
    neither::deliver(host, index, queue, request);
    super::wdm::STATUS_PENDING
}

/// A host METHOD_NEITHER request's raw buffers are its own copies (the input, the output the
/// host reads back).
fn neither_buffers(host: &HostInner, request: usize) {
    let mut s = host.rt.wdf.state.lock();
    if let Some(Object::Request(rq)) = s.objects.get_mut(&request).map(|b| &mut **b) {
        if rq.method == METHOD_NEITHER {
            rq.raw.user_in = rq.system.as_mut_ptr() as usize;
            rq.raw.user_out = rq.output.as_mut_ptr() as usize;
        }
    }
}

/// Completes the IRP a request came from: its output copied back, IoStatus set.
fn complete_irp(host: &HostInner, rq: &Request, status: NtStatus) {
    let irp = rq.irp as *mut super::wdm::Irp;
    let n = rq.information.min(rq.out_len);
    // SAFETY: the IRP is the framework's until completed here; its buffers are the builder's
    // (system buffer of max(in, out) bytes for METHOD_BUFFERED, an MDL for the direct methods).
    unsafe {
        if status >= 0 && rq.method == METHOD_BUFFERED && !(*irp).system_buffer.is_null() {
            let n = n.min(rq.system.len());
            std::ptr::copy_nonoverlapping(rq.system.as_ptr(), (*irp).system_buffer.cast::<u8>(), n);
        }
        let mdl = (*irp).mdl_address;
        if status >= 0 && matches!(rq.method, 1 | 2) && !mdl.is_null() {
            let va = (*mdl)
                .start_va
                .cast::<u8>()
                .add((*mdl).byte_offset as usize);
            let n = n.min((*mdl).byte_count as usize).min(rq.output.len());
            std::ptr::copy_nonoverlapping(rq.output.as_ptr(), va, n);
        }
        (*irp).io_status.status = status;
        (*irp).io_status.information = rq.information;
    }
    super::irp::complete(host, irp);
}

// ---- the host side -------------------------------------------------------------------------

/// What a device-control request returned.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IoctlOutput {
    /// The NTSTATUS the driver completed the request with.
    pub status: u32,
    /// `Information` (bytes returned).
    pub information: usize,
    /// The output bytes (`min(information, output capacity)` of them).
    pub output: Vec<u8>,
}

/// Why a device-control request could not be delivered or did not finish.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum IoctlError {
    /// The driver has no WDF device with a default queue handling EvtIoDeviceControl, and no
    /// WDM device with a `MajorFunction[IRP_MJ_DEVICE_CONTROL]` routine.
    #[error("driver {driver} has no device-control queue")]
    NoQueue {
        /// The driver.
        driver: String,
    },
    /// The device is still initializing (no WdfControlFinishInitializing yet).
    #[error("driver {driver}: the device is still initializing")]
    NotReady {
        /// The driver.
        driver: String,
    },
    /// A WDM driver's IRP_MJ_CREATE failed (or it has none: STATUS_INVALID_DEVICE_REQUEST), so
    /// its device could not be opened for the request.
    #[error("driver {driver}: opening its device failed with status {status:#010x}")]
    OpenFailed {
        /// The driver.
        driver: String,
        /// The NTSTATUS of IRP_MJ_CREATE.
        status: u32,
    },
    /// The driver did not complete the request within the host's unload timeout.
    #[error("driver {driver} did not complete the request within {timeout:?}")]
    NotCompleted {
        /// The driver.
        driver: String,
        /// The bound.
        timeout: Duration,
    },
}

/// One device a driver created (for tests and the management API).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DeviceInfo {
    /// `\Device\Name` from WdfDeviceInitAssignName, if any.
    pub name: Option<String>,
    /// Symbolic links (WdfDeviceCreateSymbolicLink).
    pub links: Vec<String>,
    /// DEVICE_OBJECT.DeviceType.
    pub device_type: u32,
    /// DEVICE_OBJECT.Characteristics.
    pub characteristics: u32,
    /// The device class GUID bytes, if set.
    pub class: Option<[u8; 16]>,
    /// Whether the device still has DO_DEVICE_INITIALIZING.
    pub initializing: bool,
}

/// The DEVICE_OBJECTs of every WDF device of the host (as addresses).
pub(crate) fn device_objects(host: &HostInner) -> Vec<usize> {
    let s = host.rt.wdf.state.lock();
    s.objects
        .values()
        .filter_map(|o| match &**o {
            Object::Device(d) => Some(d.object as usize),
            _ => None,
        })
        .collect()
}

/// The WDF devices of driver `index`.
pub(crate) fn devices(host: &HostInner, index: usize) -> Vec<DeviceInfo> {
    let s = host.rt.wdf.state.lock();
    let mut v: Vec<DeviceInfo> = s
        .objects
        .values()
        .filter_map(|o| match &**o {
            // SAFETY: a live device's DEVICE_OBJECT (deleted together with the WDF object).
            Object::Device(d) if d.index == index => Some(unsafe {
                DeviceInfo {
                    name: d.name.clone(),
                    links: d.links.clone(),
                    device_type: (*d.object).device_type,
                    characteristics: (*d.object).characteristics,
                    class: d.class,
                    initializing: (*d.object).flags & DO_DEVICE_INITIALIZING != 0,
                }
            }),
            _ => None,
        })
        .collect();
    v.sort_by(|a, b| a.name.cmp(&b.name));
    v
}

/// Waits (until `deadline`) for a sequential queue to have no request in flight (so the host's
/// request is presented on its own thread when it can be); parallel queues are always free. A
/// request that still finds it busy waits in the queue (`queue::present`).
fn claim_queue(host: &HostInner, queue: usize, deadline: Instant) -> bool {
    let mut s = host.rt.wdf.state.lock();
    loop {
        match get!(s, queue, Queue) {
            Some(q) if q.sequential && q.busy => {}
            Some(_) => return true,
            None => return false,
        }
        if host
            .rt
            .wdf
            .completed
            .wait_until(&mut s, deadline)
            .timed_out()
        {
            return false;
        }
    }
}

/// Presents a device-control request to driver `index`'s default queue and waits (bounded) for
/// its completion.
pub(crate) fn ioctl(
    host: &HostInner,
    index: usize,
    name: &str,
    code: u32,
    input: &[u8],
    output_len: usize,
) -> Result<IoctlOutput, IoctlError> {
    let target = {
        let s = host.rt.wdf.state.lock();
        s.objects.iter().find_map(|(h, o)| match &**o {
            Object::Device(d) if d.index == index => queue::route(&s, *h, IRP_MJ_DEVICE_CONTROL)
                .filter(|q| queue::accepts(&s, *q, IRP_MJ_DEVICE_CONTROL))
                // SAFETY: a live device's DEVICE_OBJECT (deleted with the WDF device).
                .map(|q| (q, unsafe { (*d.object).flags })),
            _ => None,
        })
    };
    let Some((queue, flags)) = target else {
        return Err(IoctlError::NoQueue {
            driver: name.into(),
        });
    };
    if flags & DO_DEVICE_INITIALIZING != 0 {
        return Err(IoctlError::NotReady {
            driver: name.into(),
        });
    }
    let timeout = host.config.unload_timeout;
    let deadline = Instant::now() + timeout;
    if !claim_queue(host, queue, deadline) {
        return Err(IoctlError::NotCompleted {
            driver: name.into(),
            timeout,
        });
    }
    let method = code & 3;
    let mut system = vec![
        0u8;
        if method == METHOD_BUFFERED {
            input.len().max(output_len)
        } else {
            input.len()
        }
    ];
    system[..input.len()].copy_from_slice(input);
    let request = host.rt.wdf.state.lock().insert(Object::Request(Request {
        queue,
        major: IRP_MJ_DEVICE_CONTROL,
        irp: 0,
        method,
        system,
        output: vec![
            0u8;
            if method == METHOD_BUFFERED {
                0
            } else {
                output_len
            }
        ],
        in_len: input.len(),
        out_len: output_len,
        information: 0,
        completed: None,
        raw: neither::Raw {
            code,
            ..neither::Raw::default()
        },
        offset: 0,
        held: false,
        presented: false,
    }));
    neither_buffers(host, request);
    {
        let _bound = ctx::bind(host, index, PASSIVE_LEVEL, "host request");
        neither::deliver(host, index, queue, request);
    }
    let mut s = host.rt.wdf.state.lock();
    loop {
        let done = match s.objects.get(&request).map(|b| &**b) {
            Some(Object::Request(r)) => r.completed,
            _ => None,
        };
        if let Some(status) = done {
            let Some(Object::Request(r)) = s.remove(request) else {
                break;
            };
            s.objects
                .retain(|_, o| !matches!(&**o, Object::Memory(m) if m.request == request));
            let n = r.information.min(output_len);
            let src = if method == METHOD_BUFFERED {
                &r.system
            } else {
                &r.output
            };
            return Ok(IoctlOutput {
                status: status as u32,
                information: r.information,
                output: src.get(..n).unwrap_or(&[]).to_vec(),
            });
        }
        if host
            .rt
            .wdf
            .completed
            .wait_until(&mut s, deadline)
            .timed_out()
        {
            break;
        }
    }
    drop(s);
    let _bound = ctx::bind(host, index, PASSIVE_LEVEL, "EvtIoDeviceControl");
    host.finding(Finding::Assertion {
        message: format!("device-control request {code:#x} not completed within {timeout:?}"),
    });
    Err(IoctlError::NotCompleted {
        driver: name.into(),
        timeout,
    })
}
