//! The WDM registry calls a driver makes on its own service key (wdk-runtime.md §8): ZwOpenKey on
//! `RegistryPath` or `RegistryPath\Parameters` and ZwQueryValueKey on the Parameters key, whose
//! values are the driver's configured parameters (the same ones WdfRegistryQuery* read). Nothing
//! else of the registry exists: other names are STATUS_OBJECT_NAME_NOT_FOUND.

use std::ffi::c_void;

use super::ctx::{self, PASSIVE_LEVEL};
use super::thread::HandleTarget;
use super::types::{UnicodeString, WppControl};
use super::wdf::ParamValue;
use super::{boundary, NtStatus, STATUS_INVALID_HANDLE, STATUS_INVALID_PARAMETER, STATUS_SUCCESS};
use crate::verifier::Finding;

const STATUS_OBJECT_NAME_NOT_FOUND: NtStatus = 0xC000_0034_u32 as i32;
const STATUS_BUFFER_OVERFLOW: NtStatus = 0x8000_0005_u32 as i32;
const STATUS_BUFFER_TOO_SMALL: NtStatus = 0xC000_0023_u32 as i32;
const STATUS_OBJECT_TYPE_MISMATCH: NtStatus = 0xC000_0024_u32 as i32;
const STATUS_INVALID_DEVICE_REQUEST: NtStatus = 0xC000_0010_u32 as i32;
const KEY_VALUE_FULL_INFORMATION: i32 = 1;
const KEY_VALUE_PARTIAL_INFORMATION: i32 = 2;
const REG_SZ: u32 = 1;
const REG_DWORD: u32 = 4;

/// `OBJECT_ATTRIBUTES`.
#[repr(C)]
pub(crate) struct ObjectAttributes {
    length: u32,
    root: *mut c_void,
    name: *const UnicodeString,
    attributes: u32,
    security_descriptor: *mut c_void,
    security_qos: *mut c_void,
}

fn read(s: *const UnicodeString) -> Option<String> {
    // SAFETY: the caller's UNICODE_STRING (checked non-null) and its Length bytes.
    let s = unsafe { s.as_ref()? };
    if s.buffer.is_null() {
        return Some(String::new());
    }
    // SAFETY: as above.
    let u = unsafe { std::slice::from_raw_parts(s.buffer, usize::from(s.length) / 2) };
    Some(String::from_utf16_lossy(u))
}

#[no_mangle]
pub(crate) unsafe extern "C" fn ZwOpenKey(
    handle: *mut *mut c_void,
    _access: u32,
    attributes: *const ObjectAttributes,
) -> NtStatus {
    boundary("ZwOpenKey", STATUS_INVALID_PARAMETER, || {
        // SAFETY: the caller's OBJECT_ATTRIBUTES (checked non-null).
        let (Some(oa), false) = (unsafe { attributes.as_ref() }, handle.is_null()) else {
            return STATUS_INVALID_PARAMETER;
        };
        if ctx::irql() != PASSIVE_LEVEL {
            return STATUS_INVALID_DEVICE_REQUEST;
        }
        let Some(name) = read(oa.name) else {
            return STATUS_INVALID_PARAMETER;
        };
        let index = ctx::current_driver();
        let r = ctx::with_host(|h| {
            let service = h.drivers.lock().get(index).cloned()?;
            let base =
                format!("\\REGISTRY\\MACHINE\\SYSTEM\\CurrentControlSet\\Services\\{service}");
            let mut objects = h.rt.objects.lock();
            // Relative to an open key: only the service key has a Parameters subkey.
            let full = match objects.handle(oa.root as usize) {
                Some(HandleTarget::Key { parameters: false }) => format!("{base}\\{name}"),
                Some(_) => return Some(Err(STATUS_OBJECT_NAME_NOT_FOUND)),
                None if !oa.root.is_null() => return Some(Err(STATUS_INVALID_HANDLE)),
                None => name,
            };
            let full = full.trim_end_matches('\\').to_ascii_lowercase();
            let parameters = if full == base.to_ascii_lowercase() {
                false
            } else if full == format!("{base}\\parameters").to_ascii_lowercase() {
                true
            } else {
                return Some(Err(STATUS_OBJECT_NAME_NOT_FOUND));
            };
            Some(Ok(
                objects.open_handle(HandleTarget::Key { parameters }, index)
            ))
        })
        .flatten();
        match r {
            Some(Ok(h)) => {
                // SAFETY: the caller's out-pointer (checked non-null).
                unsafe { *handle = h as *mut c_void };
                STATUS_SUCCESS
            }
            Some(Err(e)) => e,
            None => STATUS_OBJECT_NAME_NOT_FOUND,
        }
    })
}

/// The value bytes and REG_* type of a parameter.
fn encode(v: &ParamValue) -> (u32, Vec<u8>) {
    match v {
        ParamValue::Dword(d) => (REG_DWORD, d.to_le_bytes().to_vec()),
        ParamValue::String(s) => (
            REG_SZ,
            s.encode_utf16()
                .chain([0])
                .flat_map(u16::to_le_bytes)
                .collect(),
        ),
    }
}

/// The KEY_VALUE_PARTIAL_INFORMATION or KEY_VALUE_FULL_INFORMATION record for a value.
fn record(class: i32, name: &str, ty: u32, data: &[u8]) -> Option<Vec<u8>> {
    let len = u32::try_from(data.len()).ok()?;
    let mut out = Vec::new();
    out.extend(0u32.to_le_bytes());
    out.extend(ty.to_le_bytes());
    match class {
        KEY_VALUE_PARTIAL_INFORMATION => {
            out.extend(len.to_le_bytes());
        }
        KEY_VALUE_FULL_INFORMATION => {
            let name: Vec<u8> = name.encode_utf16().flat_map(u16::to_le_bytes).collect();
            let offset = (20 + name.len()).next_multiple_of(8);
            out.extend(u32::try_from(offset).ok()?.to_le_bytes());
            out.extend(len.to_le_bytes());
            out.extend(u32::try_from(name.len()).ok()?.to_le_bytes());
            out.extend(&name);
            out.resize(offset, 0);
        }
        _ => return None,
    }
    out.extend(data);
    Some(out)
}

#[no_mangle]
pub(crate) unsafe extern "C" fn ZwQueryValueKey(
    key: *mut c_void,
    name: *const UnicodeString,
    class: i32,
    info: *mut c_void,
    length: u32,
    result_length: *mut u32,
) -> NtStatus {
    boundary("ZwQueryValueKey", STATUS_INVALID_PARAMETER, || {
        if result_length.is_null() {
            return STATUS_INVALID_PARAMETER;
        }
        let Some(value_name) = read(name) else {
            return STATUS_INVALID_PARAMETER;
        };
        let value = ctx::with_host(|h| {
            let target = h.rt.objects.lock().handle(key as usize);
            match target {
                Some(HandleTarget::Key { parameters: true }) => {}
                Some(HandleTarget::Key { parameters: false }) => {
                    return Err(STATUS_OBJECT_NAME_NOT_FOUND)
                }
                Some(_) => return Err(STATUS_OBJECT_TYPE_MISMATCH),
                None => {
                    h.finding(Finding::BadHandle {
                        function: "ZwQueryValueKey",
                    });
                    return Err(STATUS_INVALID_HANDLE);
                }
            }
            let index = ctx::current_driver();
            let s = h.rt.wdf.state.lock();
            s.params
                .get(&index)
                .and_then(|p| p.iter().find(|(n, _)| n.eq_ignore_ascii_case(&value_name)))
                .map(|(n, v)| (n.clone(), v.clone()))
                .ok_or(STATUS_OBJECT_NAME_NOT_FOUND)
        });
        let (stored_name, v) = match value {
            Some(Ok(x)) => x,
            Some(Err(e)) => return e,
            None => return STATUS_INVALID_HANDLE,
        };
        let (ty, data) = encode(&v);
        let Some(rec) = record(class, &stored_name, ty, &data) else {
            return STATUS_INVALID_PARAMETER;
        };
        let header = rec.len() - data.len();
        let need = u32::try_from(rec.len()).unwrap_or(u32::MAX);
        // SAFETY: the caller's out-pointer (checked non-null) and a buffer of `length` bytes.
        unsafe {
            *result_length = need;
            if (length as usize) < header || info.is_null() {
                return STATUS_BUFFER_TOO_SMALL;
            }
            let n = rec.len().min(length as usize);
            std::ptr::copy_nonoverlapping(rec.as_ptr(), info.cast::<u8>(), n);
        }
        if (length as usize) < rec.len() {
            STATUS_BUFFER_OVERFLOW
        } else {
            STATUS_SUCCESS
        }
    })
}

/// `WfpRtWppControl()`: the calling driver's `WPP_LEVEL` and `WPP_FLAGS` parameters (REG_DWORD;
/// names case-insensitive). Without a parameter every level (0xFFFFFFFF) resp. every flag is
/// enabled, as before a session was configured; with no host bound, nothing is.
#[no_mangle]
pub(crate) extern "C" fn WfpRtWppControl() -> WppControl {
    let none = WppControl { level: 0, flags: 0 };
    boundary("WfpRtWppControl", none, || {
        ctx::with_host(|h| {
            let driver = ctx::current_driver();
            let s = h.rt.wdf.state.lock();
            let param = |name: &str| {
                s.params.get(&driver).and_then(|p| {
                    p.iter()
                        .find(|(n, _)| n.eq_ignore_ascii_case(name))
                        .and_then(|(_, v)| match v {
                            ParamValue::Dword(d) => Some(*d),
                            ParamValue::String(_) => None,
                        })
                })
            };
            WppControl {
                level: param("WPP_LEVEL").unwrap_or(u32::MAX),
                flags: param("WPP_FLAGS").unwrap_or(u32::MAX),
            }
        })
        .unwrap_or(none)
    })
}
