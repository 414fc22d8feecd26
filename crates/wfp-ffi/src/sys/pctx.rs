//! Provider contexts on the C side (wfp-reference §11.4): the `FWPM_PROVIDER_CONTEXT3` image a
//! callout finds in `FWPS_FILTER3.providerContext` (and `FwpmProviderContextGetByKey0` returns),
//! and the conversion of a driver's `FWPM_PROVIDER_CONTEXT0..3` into the engine's spec.
//!
//! Only `FWPM_GENERAL_CONTEXT` carries data across the boundary (`dataBuffer`, a byte blob). A
//! provider context of another type (added through the API or a policy file) reaches C with its
//! union pointer NULL; a driver adding one of those types gets STATUS_NOT_SUPPORTED, since the
//! IPsec/IKE structures they point to are not part of these headers.

use wfp_core::{Guid, ProviderContext, ProviderContextSpec, ProviderContextType};

use super::convert::wide_to_string;
use super::types::{CGuid, FwpByteBlob, FwpmDisplayData0, FwpmProviderContext};
use super::NtStatus;

const STATUS_NOT_SUPPORTED: NtStatus = 0xC000_00BB_u32 as i32;
const STATUS_FWP_NULL_POINTER: NtStatus = 0xC022_001C_u32 as i32;

/// A provider context laid out for C, owning everything its pointers reach. Boxed: C holds
/// pointers into it, so it never moves while in use.
pub(crate) struct ProviderContextImage {
    _name: Vec<u16>,
    _description: Vec<u16>,
    _provider: Option<Box<CGuid>>,
    _provider_data: Vec<u8>,
    _data: Vec<u8>,
    _blob: Box<FwpByteBlob>,
    c: FwpmProviderContext,
}

// SAFETY: the image owns every allocation its raw pointers reach (boxed or in its vectors, never
// reallocated after construction); moving it to another thread moves that ownership, and no other
// Rust value aliases them.
unsafe impl Send for ProviderContextImage {}

fn wide(s: &str) -> Vec<u16> {
    s.encode_utf16().chain(std::iter::once(0)).collect()
}

fn blob(bytes: &mut [u8]) -> FwpByteBlob {
    FwpByteBlob {
        size: u32::try_from(bytes.len()).unwrap_or(u32::MAX),
        data: if bytes.is_empty() {
            std::ptr::null_mut()
        } else {
            bytes.as_mut_ptr()
        },
    }
}

impl ProviderContextImage {
    /// The C image of `pc`.
    pub(crate) fn new(pc: &ProviderContext) -> Box<Self> {
        let s = &pc.spec;
        let name = wide(&s.name);
        let description = wide(&s.description);
        let mut provider = s.provider.map(|k| {
            Box::new(CGuid {
                bytes: k.to_windows_bytes(),
            })
        });
        let mut provider_data = s.provider_data.clone();
        let mut data = s.data.clone();
        let mut data_blob = Box::new(blob(&mut data));
        let general = s.context_type == ProviderContextType::GENERAL;
        let c = FwpmProviderContext {
            provider_context_key: CGuid {
                bytes: s.key.to_windows_bytes(),
            },
            display_data: FwpmDisplayData0 {
                name: name.as_ptr(),
                description: description.as_ptr(),
            },
            flags: s.flags,
            provider_key: provider
                .as_deref_mut()
                .map_or(std::ptr::null_mut(), std::ptr::from_mut),
            provider_data: blob(&mut provider_data),
            context_type: s.context_type.0,
            data: if general {
                std::ptr::from_mut(&mut *data_blob)
            } else {
                std::ptr::null_mut()
            },
            provider_context_id: pc.id.0,
        };
        Box::new(Self {
            _name: name,
            _description: description,
            _provider: provider,
            _provider_data: provider_data,
            _data: data,
            _blob: data_blob,
            c,
        })
    }

    /// The `FWPM_PROVIDER_CONTEXT3*` C sees (valid while `self` lives).
    pub(crate) fn as_mut_ptr(&mut self) -> *mut FwpmProviderContext {
        &mut self.c
    }
}

/// `len` bytes at `data` (empty for 0).
///
/// # Safety
/// `data` points to `len` readable bytes when `len > 0`.
unsafe fn bytes(b: &FwpByteBlob) -> Result<Vec<u8>, NtStatus> {
    if b.size == 0 {
        return Ok(Vec::new());
    }
    if b.data.is_null() {
        return Err(STATUS_FWP_NULL_POINTER);
    }
    // SAFETY: per the contract, `size` bytes at `data`.
    Ok(unsafe { std::slice::from_raw_parts(b.data, b.size as usize) }.to_vec())
}

/// A driver's `FWPM_PROVIDER_CONTEXT0..3` as the engine's spec (the four versions share the
/// layout up to the union, which is read only for FWPM_GENERAL_CONTEXT).
///
/// # Safety
/// `p`'s pointers (names, provider key, blobs, `dataBuffer` for a general context) are valid.
pub(crate) unsafe fn spec_from_c(p: &FwpmProviderContext) -> Result<ProviderContextSpec, NtStatus> {
    let context_type = ProviderContextType(p.context_type);
    if context_type != ProviderContextType::GENERAL {
        return Err(STATUS_NOT_SUPPORTED);
    }
    // SAFETY: per the contract (checked non-null).
    let data_blob = unsafe { p.data.as_ref() }.ok_or(STATUS_FWP_NULL_POINTER)?;
    Ok(ProviderContextSpec {
        key: Guid::from_windows_bytes(p.provider_context_key.bytes),
        // SAFETY: per the contract: NULL or NUL-terminated UTF-16.
        name: unsafe { wide_to_string(p.display_data.name) }.unwrap_or_default(),
        // SAFETY: as above.
        description: unsafe { wide_to_string(p.display_data.description) }.unwrap_or_default(),
        flags: p.flags,
        // SAFETY: per the contract: NULL or a GUID.
        provider: unsafe { p.provider_key.as_ref() }.map(|g| Guid::from_windows_bytes(g.bytes)),
        // SAFETY: per the contract.
        provider_data: unsafe { bytes(&p.provider_data) }?,
        context_type,
        // SAFETY: per the contract.
        data: unsafe { bytes(data_blob) }?,
    })
}
