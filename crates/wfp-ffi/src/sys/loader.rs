//! Loading a driver: `dlopen`, `DriverEntry(DRIVER_OBJECT*, UNICODE_STRING* RegistryPath)`, and
//! the unload protocol (wfp-reference §5.3): the driver's unload routine, then the host removes
//! what the driver left (pended operations and classifies it never completed, lists and clones it
//! still holds, engine handles, flow contexts, callouts — retrying unregister while busy, each a
//! Verifier finding), reports leaks, and `dlclose`s the image; bounded in time.

use std::ffi::{c_void, CStr, CString};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use wfp_core::{CalloutId, LayerId, Status};

use super::ctx::{self, PASSIVE_LEVEL};
use super::kernel::{delete_device, site_string};
use super::types::{DriverExtension, DriverObject, UnicodeString};
use super::NtStatus;
use crate::host::{DriverHost, HostInner};
use crate::verifier::{tag_string, Finding};

type DriverEntryFn = unsafe extern "C" fn(*mut DriverObject, *mut UnicodeString) -> NtStatus;

/// Why a driver could not be loaded.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LoadError {
    /// `dlopen` failed (missing file, unresolved runtime symbol, wrong architecture...).
    #[error("{}: cannot load: {reason}", path.display())]
    Open {
        /// The driver file.
        path: PathBuf,
        /// dlerror's text.
        reason: String,
    },
    /// The image exports no `DriverEntry`.
    #[error("{}: no DriverEntry symbol (build it with `wfpctl driver build`)", path.display())]
    NoEntry {
        /// The driver file.
        path: PathBuf,
    },
    /// DriverEntry returned a failure NTSTATUS (the host cleaned up after it and unloaded it).
    #[error("{}: DriverEntry failed with status {status:#010x}", path.display())]
    EntryFailed {
        /// The driver file.
        path: PathBuf,
        /// The NTSTATUS.
        status: u32,
    },
}

/// Why an unload did not finish.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum UnloadError {
    /// The unload routine (or the host's cleanup waiting on the driver) did not finish in time;
    /// the image stays mapped.
    #[error("driver {name} did not finish unloading within {timeout:?}")]
    Hung {
        /// The driver.
        name: String,
        /// The bound.
        timeout: Duration,
    },
}

/// What an unload found.
#[derive(Clone, Debug, Default)]
pub struct UnloadReport {
    /// Verifier findings for this driver, in the order they were made.
    pub findings: Vec<Finding>,
}

/// A loaded driver. Dropping it unloads it (findings are then discarded).
pub struct Driver {
    host: Arc<HostInner>,
    index: usize,
    name: String,
    path: PathBuf,
    image: *mut c_void,
    object: Box<DriverObject>,
    _extension: Box<DriverExtension>,
    _strings: Vec<Vec<u16>>,
    registry_path: Box<UnicodeString>,
    loaded: bool,
}

fn wide(s: &str) -> Vec<u16> {
    s.encode_utf16().chain(std::iter::once(0)).collect()
}

fn counted(buf: &mut [u16]) -> UnicodeString {
    let bytes = u16::try_from(buf.len().saturating_sub(1) * 2).unwrap_or(u16::MAX - 1);
    UnicodeString {
        length: bytes,
        maximum_length: bytes.saturating_add(2),
        buffer: buf.as_mut_ptr(),
    }
}

fn dlerror() -> String {
    // SAFETY: dlerror returns NULL or a thread-local NUL-terminated message.
    let e = unsafe { libc::dlerror() };
    if e.is_null() {
        "unknown error".into()
    } else {
        // SAFETY: as above.
        unsafe { CStr::from_ptr(e) }.to_string_lossy().into_owned()
    }
}

/// Keeps the runtime's exported functions linked into the host binary.
fn keep_exports() {
    for e in super::EXPORTS {
        std::hint::black_box(e.1);
    }
}

/// How to load a driver.
#[derive(Clone, Debug, Default)]
pub struct DriverOptions {
    /// The driver's parameters (`NAME`, value): what WdfRegistryQuery* read from the
    /// Parameters key (`--driver-param NAME=VALUE`; see [`super::ParamValue::parse`]).
    pub params: Vec<(String, super::ParamValue)>,
}

impl DriverHost {
    /// Loads a driver image and runs its `DriverEntry` at PASSIVE_LEVEL on this thread.
    pub fn load(&self, path: &Path) -> Result<Driver, LoadError> {
        self.load_with(path, &DriverOptions::default())
    }

    /// [`DriverHost::load`] with parameters.
    pub fn load_with(&self, path: &Path, options: &DriverOptions) -> Result<Driver, LoadError> {
        keep_exports();
        let name = path
            .file_stem()
            .map_or_else(|| "driver".into(), |s| s.to_string_lossy().into_owned());
        let index = {
            let mut d = self.inner.drivers.lock();
            d.push(name.clone());
            d.len() - 1
        };
        self.inner
            .rt
            .wdf
            .state
            .lock()
            .params
            .insert(index, options.params.clone());
        let open_err = |reason| LoadError::Open {
            path: path.to_path_buf(),
            reason,
        };
        let c_path = CString::new(path.as_os_str().as_encoded_bytes())
            .map_err(|_| open_err("path contains NUL".into()))?;
        // SAFETY: a NUL-terminated path; the image's constructors run here (driver code).
        let image = unsafe { libc::dlopen(c_path.as_ptr(), libc::RTLD_NOW | libc::RTLD_LOCAL) };
        if image.is_null() {
            return Err(open_err(dlerror()));
        }
        // SAFETY: `image` is a live handle; the symbol name is NUL-terminated.
        let entry = unsafe { libc::dlsym(image, c"DriverEntry".as_ptr()) };
        if entry.is_null() {
            // SAFETY: the handle from dlopen, closed once.
            unsafe { libc::dlclose(image) };
            return Err(LoadError::NoEntry {
                path: path.to_path_buf(),
            });
        }
        let mut strings = vec![
            wide(&format!("\\Driver\\{name}")),
            wide(&format!(
                "\\REGISTRY\\MACHINE\\SYSTEM\\CurrentControlSet\\Services\\{name}"
            )),
            wide(&name),
        ];
        let driver_name = counted(&mut strings[0]);
        let registry_path = Box::new(counted(&mut strings[1]));
        let service = counted(&mut strings[2]);
        let mut extension = Box::new(DriverExtension {
            driver_object: std::ptr::null_mut(),
            add_device: std::ptr::null_mut(),
            count: 0,
            service_key_name: service,
        });
        let object = Box::new(DriverObject {
            object_type: 4,
            size: i16::try_from(std::mem::size_of::<DriverObject>()).unwrap_or(0),
            device_object: std::ptr::null_mut(),
            flags: 0,
            driver_start: image,
            driver_size: 0,
            driver_section: (index + 1) as *mut c_void,
            driver_extension: &mut *extension,
            driver_name,
            hardware_database: std::ptr::null_mut(),
            fast_io_dispatch: std::ptr::null_mut(),
            driver_init: entry,
            driver_start_io: std::ptr::null(),
            driver_unload: None,
            major_function: [std::ptr::null(); 28],
        });
        let mut driver = Driver {
            host: self.inner.clone(),
            index,
            name,
            path: path.to_path_buf(),
            image,
            object,
            _extension: extension,
            _strings: strings,
            registry_path,
            loaded: true,
        };
        driver.object.driver_extension = &mut *driver._extension;
        driver._extension.driver_object = &mut *driver.object;
        // SAFETY: `entry` is the image's DriverEntry (DRIVER_INITIALIZE).
        let entry: DriverEntryFn =
            unsafe { std::mem::transmute::<*mut c_void, DriverEntryFn>(entry) };
        let status = {
            let _bound = ctx::bind(&driver.host, index, PASSIVE_LEVEL, "DriverEntry");
            // SAFETY: the driver object and registry path live as long as the driver.
            unsafe { entry(&mut *driver.object, &mut *driver.registry_path) }
        };
        if status >= 0 {
            super::wdm::entry_returned(&driver.host, &raw mut *driver.object);
        }
        if status < 0 {
            // A failed DriverEntry: no unload routine; the host removes what it left.
            driver.object.driver_unload = None;
            let _report = driver.finish(Duration::from_secs(5));
            return Err(LoadError::EntryFailed {
                path: path.to_path_buf(),
                status: status as u32,
            });
        }
        Ok(driver)
    }
}

// SAFETY: a Driver owns its boxed DRIVER_OBJECT/extension/strings and the dlopen handle; `&self`
// methods (name, path, findings, ioctl, devices) only read plain fields and go through the host's
// locks, and everything that touches the raw pointers takes `self` / `&mut self` (unload, Drop),
// so sharing or moving it between threads is sound. Driver code it runs binds the host to the
// calling thread for each call.
unsafe impl Send for Driver {}
// SAFETY: as above.
unsafe impl Sync for Driver {}

/// Moves a raw pointer to the unload thread.
struct SendPtr(*mut Driver);
// SAFETY: the driver is used by the unload thread only while the caller waits for it (or, on
// timeout, never again by the caller, which leaks it).
unsafe impl Send for SendPtr {}

impl Driver {
    /// The driver's name (its file stem).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The image path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Sends a device-control request and waits for its completion, bounded by the host's
    /// unload timeout: to EvtIoDeviceControl of the driver's KMDF default queue, or, for a WDM
    /// driver (no such queue, `MajorFunction[IRP_MJ_DEVICE_CONTROL]` set), as IRPs to its
    /// device — IRP_MJ_CREATE, IRP_MJ_DEVICE_CONTROL, IRP_MJ_CLEANUP, IRP_MJ_CLOSE. `output_len`
    /// is the caller's output buffer size; METHOD_BUFFERED shares one buffer for input and output.
    pub fn ioctl(
        &self,
        code: u32,
        input: &[u8],
        output_len: usize,
    ) -> Result<super::IoctlOutput, super::IoctlError> {
        let object = &raw const *self.object;
        match super::wdf::ioctl(&self.host, self.index, &self.name, code, input, output_len) {
            Err(super::IoctlError::NoQueue { .. })
                if super::wdm_io::handles_device_control(object) =>
            {
                super::wdm_io::ioctl(&self.wdm_target(), code, input, output_len)
            }
            r => r,
        }
    }

    /// Opens the device of a WDM driver (IRP_MJ_CREATE to the top of its device stack) for
    /// several requests on one FILE_OBJECT: device control, read and write, overlapped device
    /// control, and a close that cancels what is still pending.
    pub fn open(&self) -> Result<super::DeviceHandle<'_>, super::IoctlError> {
        super::wdm_io::open(self.wdm_target())
    }

    /// ReadFile on the driver's device (IRP_MJ_READ; open, read, close): the bytes read.
    pub fn read(&self, len: usize) -> Result<super::IoctlOutput, super::IoctlError> {
        let mut h = self.open()?;
        let out = h.read(len);
        let closed = h.close();
        closed?;
        out
    }

    /// WriteFile on the driver's device (IRP_MJ_WRITE; open, write, close).
    pub fn write(&self, data: &[u8]) -> Result<super::IoctlOutput, super::IoctlError> {
        let mut h = self.open()?;
        let out = h.write(data);
        let closed = h.close();
        closed?;
        out
    }

    fn wdm_target(&self) -> super::wdm_io::Target<'_> {
        super::wdm_io::Target {
            host: &self.host,
            index: self.index,
            name: &self.name,
            object: &raw const *self.object,
        }
    }

    /// How the driver's POOL_TYPE requests were served (its ExInitializeDriverRuntime opt-in).
    pub fn pool_types(&self) -> super::PoolTypeCounts {
        self.host
            .rt
            .pool_types
            .lock()
            .get(&self.index)
            .copied()
            .unwrap_or_default()
    }

    /// The devices the driver created: its KMDF devices, then its WDM devices
    /// (IoCreateDevice; `links` from IoCreateSymbolicLink).
    pub fn devices(&self) -> Vec<super::DeviceInfo> {
        let mut v = super::wdf::devices(&self.host, self.index);
        v.extend(super::wdm::devices(&self.host, &raw const *self.object));
        v
    }

    /// The Verifier's findings for this driver so far.
    pub fn findings(&self) -> Vec<Finding> {
        self.host
            .tracker
            .lock()
            .findings
            .iter()
            .filter(|(d, _)| *d == self.index)
            .map(|(_, f)| f.clone())
            .collect()
    }

    /// Unloads the driver (§5.3), bounded by the host's `unload_timeout`. On timeout the image
    /// stays mapped (the driver is leaked) and the error names it.
    pub fn unload(self) -> Result<UnloadReport, UnloadError> {
        let timeout = self.host.config.unload_timeout;
        let name = self.name.clone();
        let hung = || UnloadError::Hung {
            name: name.clone(),
            timeout,
        };
        let boxed = Box::into_raw(Box::new(self));
        let ptr = SendPtr(boxed);
        let (tx, rx) = std::sync::mpsc::channel();
        let spawned = std::thread::Builder::new()
            .name("wfp-unload".into())
            .spawn(move || {
                let p = ptr;
                // SAFETY: the caller waits for this thread (or leaks the driver), so the driver is
                // used by one thread at a time.
                let report = unsafe { (*p.0).finish(timeout) };
                let _ = tx.send(report);
            });
        if spawned.is_err() {
            // SAFETY: no thread took the pointer; reclaim and unload here.
            let mut d = unsafe { Box::from_raw(boxed) };
            return d.finish(timeout).ok_or_else(hung);
        }
        match rx.recv_timeout(timeout + Duration::from_secs(1)) {
            Ok(Some(report)) => {
                // SAFETY: the thread finished with the driver.
                drop(unsafe { Box::from_raw(boxed) });
                Ok(report)
            }
            // Threads or work items still run the driver's code: the image stays mapped and the
            // driver is leaked on purpose.
            Ok(None) | Err(_) => Err(hung()),
        }
    }

    /// The unload routine, a bounded wait for the driver's threads and work items, the host's
    /// cleanup, the leak report and `dlclose`. `None` when the driver's code was still running at
    /// the deadline (the image then stays mapped).
    fn finish(&mut self, timeout: Duration) -> Option<UnloadReport> {
        if !self.loaded {
            return Some(UnloadReport::default());
        }
        let deadline = Instant::now() + timeout;
        let host = self.host.clone();
        {
            let _bound = ctx::bind(&host, self.index, PASSIVE_LEVEL, "DriverUnload");
            if let Some(unload) = self.object.driver_unload {
                // SAFETY: the driver's unload routine, called once with its own object.
                unsafe { unload(&mut *self.object) };
            }
            // Queued work items hold the device object (the driver cannot go before they ran);
            // system threads must have ended (the unload routine waits for them on Windows).
            // Timers left set would queue DPCs into an unmapped image: cancelled and reported.
            let timers = host.rt.timers.cancel_driver(self.index);
            if timers > 0 {
                host.finding(Finding::ObjectsLeft {
                    what: "timer(s) still set at unload (cancelled)",
                    count: timers,
                });
            }
            let resources = host.rt.resources.remove_driver(self.index);
            if resources > 0 {
                host.finding(Finding::ObjectsLeft {
                    what: "ERESOURCE(s) not deleted at unload",
                    count: resources,
                });
            }
            let running = host.rt.activity.wait_idle(self.index, deadline);
            if running > 0 {
                host.finding(Finding::StillRunning { count: running });
                self.loaded = false;
                return None;
            }
            self.release_async(&host);
            if !self.cleanup(&host, deadline) {
                self.loaded = false;
                return None;
            }
            self.report_leaks(&host);
        }
        host.rt.wdf.state.lock().forget(self.index);
        host.rt.pool_types.lock().remove(&self.index);
        self.delete_devices();
        super::wdm::forget(&host, self.index);
        // SAFETY: every callout of the image is unregistered and no thread runs its code; the
        // handle is closed once.
        unsafe { libc::dlclose(self.image) };
        self.loaded = false;
        let mut t = host.tracker.lock();
        let mut findings = Vec::new();
        t.findings.retain(|(d, f)| {
            if *d == self.index {
                findings.push(f.clone());
                false
            } else {
                true
            }
        });
        Some(UnloadReport { findings })
    }

    /// What the driver left: engine handles, flow contexts, callouts (§5.3: unregister retried
    /// while STATUS_DEVICE_BUSY, bounded). False when a callout could not be unregistered in time.
    fn cleanup(&self, host: &HostInner, deadline: Instant) -> bool {
        let handles = host.sessions.lock().of_driver(self.index);
        if !handles.is_empty() {
            host.finding(Finding::EngineHandlesLeftOpen {
                count: handles.len(),
            });
            for h in handles {
                super::fwpm::close(host, h);
            }
        }
        let mine: Vec<u32> = host
            .callouts
            .lock()
            .iter()
            .filter(|(_, r)| r.driver == self.index)
            .map(|(id, _)| *id)
            .collect();
        let contexts: Vec<(u64, u16, u32)> = host
            .flows
            .lock()
            .iter()
            .filter(|((_, c, _), _)| mine.contains(c))
            .flat_map(|((l, c, _), flows)| flows.iter().map(move |f| (*f, *l, *c)))
            .collect();
        if !contexts.is_empty() {
            host.finding(Finding::FlowContextsLeft {
                count: contexts.len(),
            });
        }
        for (flow, layer, callout) in contexts {
            while host
                .engine
                .flow_remove_context(flow, LayerId(layer), CalloutId(callout))
                == Status::PENDING
                && Instant::now() < deadline
            {
                std::thread::sleep(Duration::from_millis(1));
            }
        }
        let registered: Vec<u32> = mine
            .into_iter()
            .filter(|id| host.engine.is_callout_registered(CalloutId(*id)))
            .collect();
        if !registered.is_empty() {
            host.finding(Finding::CalloutsLeftRegistered {
                count: registered.len(),
            });
        }
        let mut busy = 0;
        for id in registered {
            let mut st = host.engine.unregister_callout(CalloutId(id));
            while st == Status::DEVICE_BUSY && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(1));
                st = host.engine.unregister_callout(CalloutId(id));
            }
            if st == Status::DEVICE_BUSY {
                busy += 1;
            } else {
                host.callouts.lock().remove(&id);
            }
        }
        if busy > 0 {
            // The engine may still call into the image: it must stay mapped.
            host.finding(Finding::UnloadIncomplete {
                what: "callout(s) still busy (flow contexts) at the unload deadline",
                count: busy,
            });
            return false;
        }
        true
    }

    /// §5.3 with §10: what the driver left asynchronous. Its pended operations and classifies are
    /// completed by the host (reauthorize), and the lists, clones and referenced lists it still
    /// holds are reclaimed; each kind left is a Verifier finding.
    fn release_async(&self, host: &HostInner) {
        let (ops, classifies) = super::pend::complete_left(host, self.index);
        let lists = super::nbl::reclaim_left(host, self.index);
        let redirects = super::redirect::destroy_left(host, self.index);
        for (what, count) in [
            ("pended operation(s) the driver never completed", ops),
            ("pended classify(s) the driver never completed", classifies),
            ("redirect handle(s) never destroyed", redirects),
        ]
        .into_iter()
        .chain(lists.pairs())
        {
            if count > 0 {
                host.finding(Finding::ObjectsLeft { what, count });
            }
        }
    }

    fn report_leaks(&self, host: &HostInner) {
        let (handles, threads, items) = host.rt.objects.lock().left_by(self.index);
        let lists = super::lookaside::left_by(&host.rt.lookasides.lock(), self.index);
        for (what, count) in [
            ("open handle(s)", handles),
            ("referenced thread object(s)", threads),
            ("work item(s) never freed", items),
            ("lookaside list(s) never deleted", lists),
            (
                "KMUTEX(es) still held",
                super::dispatcher::take_held(host, self.index),
            ),
            (
                "BFE state subscription(s) never unsubscribed",
                super::bfe::take_left(host, self.index),
            ),
        ]
        .into_iter()
        .chain(host.rt.wdf.state.lock().left_by(self.index))
        .chain(super::wdm::left_by(
            host,
            self.index,
            &raw const *self.object,
        ))
        .chain(host.rt.ndis.lock().left_by(self.index))
        .chain(super::callbackobj::take_left(host, self.index))
        {
            if count > 0 {
                host.finding(Finding::ObjectsLeft { what, count });
            }
        }
        let mut t = host.tracker.lock();
        let mut leaks: Vec<Finding> = t
            .pool
            .values()
            .filter(|b| b.driver == self.index)
            .map(|b| Finding::LeakedPool {
                tag: tag_string(b.tag),
                size: b.size,
                site: site_string(b),
            })
            .collect();
        leaks.extend(
            t.mdls
                .values()
                .filter(|(_, d)| *d == self.index)
                .map(|(n, _)| Finding::LeakedMdl { byte_count: *n }),
        );
        leaks.sort_by_key(ToString::to_string);
        let index = self.index;
        t.findings.extend(leaks.into_iter().map(|f| (index, f)));
    }

    fn delete_devices(&mut self) {
        while !self.object.device_object.is_null() {
            // SAFETY: devices on the driver object's list came from IoCreateDevice; each unlinks
            // itself, so the loop ends.
            unsafe { delete_device(self.object.device_object) };
        }
    }
}

impl Drop for Driver {
    fn drop(&mut self) {
        if self.loaded {
            let timeout = self.host.config.unload_timeout;
            let _report = self.finish(timeout);
        }
    }
}
