//! C structures ⇄ the API's DTOs (wfp-reference §11.4 objects, `FWP_VALUE0` arms as
//! `docs/api.md` tags them). Reading follows the C caller's pointers (each checked for NULL);
//! writing builds the output inside an [`Arena`].

use std::net::{Ipv4Addr, Ipv6Addr};

use wfp_api::{
    CalloutDto, CalloutView, ConditionDto, FilterDto, FilterView, Key, ProviderDto, SublayerDto,
    SublayerView, ValueDto, WeightDto,
};
use wfp_core::constants::FilterFlags;
use wfp_core::{catalogue, ActionType, Guid, MatchType};

use super::{
    Action0, Arena, ByteBlob, CGuid, Callout0, Condition0, DisplayData, Filter0, FilterContext,
    Provider0, Range0, Sublayer0, V4AddrMask, V6AddrMask, Value0,
};
use crate::status;

/// Longest string read from C (characters), so a missing terminator cannot run away.
const MAX_WIDE: usize = 32 * 1024;

impl From<CGuid> for Guid {
    fn from(g: CGuid) -> Self {
        let mut b = [0u8; 16];
        b[..4].copy_from_slice(&g.data1.to_le_bytes());
        b[4..6].copy_from_slice(&g.data2.to_le_bytes());
        b[6..8].copy_from_slice(&g.data3.to_le_bytes());
        b[8..].copy_from_slice(&g.data4);
        Self::from_windows_bytes(b)
    }
}

impl From<Guid> for CGuid {
    fn from(g: Guid) -> Self {
        let b = g.to_windows_bytes();
        let mut data4 = [0u8; 8];
        data4.copy_from_slice(&b[8..]);
        Self {
            data1: u32::from_le_bytes([b[0], b[1], b[2], b[3]]),
            data2: u16::from_le_bytes([b[4], b[5]]),
            data3: u16::from_le_bytes([b[6], b[7]]),
            data4,
        }
    }
}

/// A key, `None` for GUID_NULL (the daemon assigns one).
pub(crate) fn key(g: CGuid) -> Option<Key> {
    let g = Guid::from(g);
    (!g.is_null()).then_some(Key(g))
}

/// An optional `GUID*`.
///
/// # Safety
/// `p` is NULL or points to a GUID.
pub(crate) unsafe fn key_ptr(p: *const CGuid) -> Option<Key> {
    // SAFETY: per the contract.
    unsafe { p.as_ref() }.copied().and_then(key)
}

/// A NUL-terminated UTF-16 string (empty for NULL).
///
/// # Safety
/// `p` is NULL or points to a NUL-terminated UTF-16 string.
pub(crate) unsafe fn wide(p: *const u16) -> String {
    if p.is_null() {
        return String::new();
    }
    let mut len = 0;
    // SAFETY: per the contract every unit up to the terminator is readable; MAX_WIDE bounds it.
    while len < MAX_WIDE && unsafe { *p.add(len) } != 0 {
        len += 1;
    }
    // SAFETY: the `len` units just read.
    String::from_utf16_lossy(unsafe { std::slice::from_raw_parts(p, len) })
}

/// # Safety
/// The display data's pointers are NULL or NUL-terminated strings.
unsafe fn names(d: &DisplayData) -> (String, String) {
    // SAFETY: per the contract.
    unsafe { (wide(d.name), wide(d.description)) }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// # Safety
/// `b` is NULL or a blob whose `data` holds `size` bytes.
unsafe fn blob(b: *const ByteBlob) -> Option<Vec<u8>> {
    // SAFETY: per the contract.
    let b = unsafe { b.as_ref() }?;
    if b.size == 0 {
        return Some(Vec::new());
    }
    if b.data.is_null() {
        return None;
    }
    // SAFETY: per the contract `data` holds `size` bytes.
    Some(unsafe { std::slice::from_raw_parts(b.data, b.size as usize) }.to_vec())
}

/// An `FWP_VALUE0` / `FWP_CONDITION_VALUE0` as the API's tagged value.
///
/// # Safety
/// Pointer arms point to valid data of their type.
pub(crate) unsafe fn value_dto(v: &Value0) -> Result<ValueDto, u32> {
    let x = v.value;
    let p = x as usize;
    let bad = status::TYPE_MISMATCH;
    // SAFETY: per the contract each pointer arm is valid; NULL is refused by `as_ref`.
    unsafe {
        Ok(match v.data_type {
            0 => ValueDto::Empty,
            1 => ValueDto::Uint8 { value: x as u8 },
            2 => ValueDto::Uint16 { value: x as u16 },
            3 => ValueDto::Uint32 { value: x as u32 },
            4 => ValueDto::Uint64 {
                value: *(p as *const u64).as_ref().ok_or(status::NULL_POINTER)?,
            },
            5 => ValueDto::Int8 {
                value: x as u8 as i8,
            },
            6 => ValueDto::Int16 {
                value: x as u16 as i16,
            },
            7 => ValueDto::Int32 {
                value: x as u32 as i32,
            },
            8 => ValueDto::Int64 {
                value: *(p as *const i64).as_ref().ok_or(status::NULL_POINTER)?,
            },
            11 => ValueDto::ByteArray16 {
                value: Ipv6Addr::from(
                    *(p as *const [u8; 16])
                        .as_ref()
                        .ok_or(status::NULL_POINTER)?,
                ),
            },
            12 => ValueDto::ByteBlob {
                hex: hex(&blob(p as *const ByteBlob).ok_or(status::NULL_POINTER)?),
            },
            17 => ValueDto::UnicodeString {
                value: wide(p as *const u16),
            },
            18 => ValueDto::ByteArray6 {
                hex: hex((p as *const [u8; 6]).as_ref().ok_or(status::NULL_POINTER)?),
            },
            0x100 => {
                let m = (p as *const V4AddrMask)
                    .as_ref()
                    .ok_or(status::NULL_POINTER)?;
                ValueDto::V4AddrMask {
                    addr: Ipv4Addr::from(m.addr),
                    mask: Ipv4Addr::from(m.mask),
                }
            }
            0x101 => {
                let m = (p as *const V6AddrMask)
                    .as_ref()
                    .ok_or(status::NULL_POINTER)?;
                ValueDto::V6AddrMask {
                    addr: Ipv6Addr::from(m.addr),
                    prefix_len: m.prefix_length,
                }
            }
            0x102 => {
                let r = (p as *const Range0).as_ref().ok_or(status::NULL_POINTER)?;
                ValueDto::Range {
                    low: Box::new(value_dto(&r.low)?),
                    high: Box::new(value_dto(&r.high)?),
                }
            }
            _ => return Err(bad),
        })
    }
}

/// The API's value as `FWP_VALUE0`, its pointed-to parts kept in `arena`.
pub(crate) fn value_c(v: &ValueDto, arena: &mut Arena) -> Value0 {
    let small = |t: u32, x: u64| Value0 {
        data_type: t,
        value: x,
    };
    let ptr = |t: u32, p: usize| Value0 {
        data_type: t,
        value: p as u64,
    };
    match v {
        ValueDto::Uint8 { value } => small(1, u64::from(*value)),
        ValueDto::Uint16 { value } => small(2, u64::from(*value)),
        ValueDto::Uint32 { value } => small(3, u64::from(*value)),
        ValueDto::Uint64 { value } => ptr(4, arena.keep(*value) as usize),
        ValueDto::Int8 { value } => small(5, u64::from(*value as u8)),
        ValueDto::Int16 { value } => small(6, u64::from(*value as u16)),
        ValueDto::Int32 { value } => small(7, u64::from(*value as u32)),
        ValueDto::Int64 { value } => ptr(8, arena.keep(*value) as usize),
        ValueDto::ByteArray16 { value } => ptr(11, arena.keep(value.octets()) as usize),
        ValueDto::ByteBlob { hex } => {
            let bytes: Vec<u8> = (0..hex.len() / 2)
                .filter_map(|i| {
                    hex.get(2 * i..2 * i + 2)
                        .and_then(|h| u8::from_str_radix(h, 16).ok())
                })
                .collect();
            let size = u32::try_from(bytes.len()).unwrap_or(0);
            let data = arena.array(bytes);
            ptr(12, arena.keep(ByteBlob { size, data }) as usize)
        }
        ValueDto::UnicodeString { value } => ptr(17, arena.wide(value) as usize),
        ValueDto::V4AddrMask { addr, mask } => {
            let m = V4AddrMask {
                addr: u32::from(*addr),
                mask: u32::from(*mask),
            };
            ptr(0x100, arena.keep(m) as usize)
        }
        ValueDto::V6AddrMask { addr, prefix_len } => {
            let m = V6AddrMask {
                addr: addr.octets(),
                prefix_length: *prefix_len,
            };
            ptr(0x101, arena.keep(m) as usize)
        }
        ValueDto::Range { low, high } => {
            let r = Range0 {
                low: value_c(low, arena),
                high: value_c(high, arena),
            };
            ptr(0x102, arena.keep(r) as usize)
        }
        // Types this library does not hand to C (floats, SIDs, security descriptors, token
        // information) come back as FWP_EMPTY.
        _ => small(0, 0),
    }
}

/// # Safety
/// `p` is a valid `FWPM_PROVIDER0`.
pub(crate) unsafe fn provider_dto(p: &Provider0) -> ProviderDto {
    // SAFETY: per the contract.
    let (name, description) = unsafe { names(&p.display) };
    // SAFETY: per the contract.
    let service = unsafe { wide(p.service_name) };
    ProviderDto {
        key: key(p.key),
        name,
        description,
        flags: p.flags,
        service_name: (!service.is_empty()).then_some(service),
    }
}

/// # Safety
/// `s` is a valid `FWPM_SUBLAYER0`.
pub(crate) unsafe fn sublayer_dto(s: &Sublayer0) -> SublayerDto {
    // SAFETY: per the contract.
    let (name, description) = unsafe { names(&s.display) };
    SublayerDto {
        key: key(s.key),
        name,
        description,
        flags: s.flags,
        // SAFETY: per the contract.
        provider: unsafe { key_ptr(s.provider_key) },
        weight: s.weight,
    }
}

fn layer_name(g: CGuid) -> Result<String, u32> {
    catalogue::layer_by_key(&Guid::from(g))
        .map(|l| l.name.to_string())
        .ok_or(status::LAYER_NOT_FOUND)
}

/// # Safety
/// `c` is a valid `FWPM_CALLOUT0`.
pub(crate) unsafe fn callout_dto(c: &Callout0) -> Result<CalloutDto, u32> {
    // SAFETY: per the contract.
    let (name, description) = unsafe { names(&c.display) };
    Ok(CalloutDto {
        key: key(c.key),
        name,
        description,
        flags: c.flags,
        // SAFETY: per the contract.
        provider: unsafe { key_ptr(c.provider_key) },
        layer: layer_name(c.applicable_layer)?,
    })
}

/// A C `FWPM_FILTER_CONDITION0` array as DTOs (filters and filter enumeration templates).
///
/// # Safety
/// `conditions` is NULL with `n` 0, or points to `n` valid conditions (pointer arms valid).
pub(crate) unsafe fn conditions_dto(
    n: u32,
    conditions: *const Condition0,
) -> Result<Vec<ConditionDto>, u32> {
    let conditions: &[Condition0] = match (n, conditions.is_null()) {
        (0, _) => &[],
        (_, true) => return Err(status::NULL_POINTER),
        // SAFETY: per the contract the array holds `n` entries.
        (n, false) => unsafe { std::slice::from_raw_parts(conditions, n as usize) },
    };
    conditions
        .iter()
        .map(|c| {
            let field = catalogue::condition_by_key(&Guid::from(c.field_key))
                .and_then(catalogue::condition)
                .ok_or(status::CONDITION_NOT_FOUND)?;
            let match_type = usize::try_from(c.match_type)
                .ok()
                .and_then(|i| MatchType::ALL.get(i).copied())
                .ok_or(status::INVALID_PARAMETER)?;
            Ok(ConditionDto {
                field: field.name.to_string(),
                match_type: match_type.name().to_string(),
                // SAFETY: per the contract.
                value: unsafe { value_dto(&c.value)? },
            })
        })
        .collect()
}

/// # Safety
/// `f` is a valid `FWPM_FILTER0` (conditions array of `num_conditions`, pointer arms valid).
pub(crate) unsafe fn filter_dto(f: &Filter0) -> Result<FilterDto, u32> {
    // SAFETY: per the contract.
    let (name, description) = unsafe { names(&f.display) };
    // SAFETY: per the contract.
    let conditions = unsafe { conditions_dto(f.num_conditions, f.conditions) }?;
    let weight = match f.weight.data_type {
        0 => WeightDto::Auto,
        1 => WeightDto::Range(f.weight.value as u8),
        // SAFETY: per the contract the UINT64 arm points to a value.
        4 => match unsafe { value_dto(&f.weight)? } {
            ValueDto::Uint64 { value } => WeightDto::Exact(value),
            _ => return Err(status::TYPE_MISMATCH),
        },
        _ => return Err(status::TYPE_MISMATCH),
    };
    let callout_action = f.action.action_type & ActionType::FLAG_CALLOUT != 0;
    let has_pc = FilterFlags(f.flags).contains(FilterFlags::HAS_PROVIDER_CONTEXT);
    Ok(FilterDto {
        key: key(f.key),
        name,
        description,
        flags: FilterFlags(f.flags).names(),
        // SAFETY: per the contract.
        provider: unsafe { key_ptr(f.provider_key) },
        layer: layer_name(f.layer_key)?,
        sublayer: key(f.sublayer_key),
        weight,
        conditions,
        action: ActionType(f.action.action_type).name(),
        callout: if callout_action {
            key(f.action.key)
        } else {
            None
        },
        // The union (§11.4): providerContextKey with HAS_PROVIDER_CONTEXT, else rawContext.
        raw_context: if has_pc {
            0
        } else {
            // SAFETY: reading the union's u64 arm is valid for either arm (8 of its 16 bytes).
            unsafe { f.context.raw }
        },
        // SAFETY: both arms are plain bytes; the flag says the GUID arm was written.
        provider_context: has_pc.then(|| Key(Guid::from(unsafe { f.context.key }))),
    })
}

fn display(d_name: &str, d_desc: &str, arena: &mut Arena) -> DisplayData {
    DisplayData {
        name: arena.wide(d_name),
        description: if d_desc.is_empty() {
            std::ptr::null_mut()
        } else {
            arena.wide(d_desc)
        },
    }
}

fn guid_ptr(k: Option<Key>, arena: &mut Arena) -> *mut CGuid {
    k.map_or(std::ptr::null_mut(), |k| arena.keep(CGuid::from(k.0)))
}

fn empty_blob() -> ByteBlob {
    ByteBlob {
        size: 0,
        data: std::ptr::null_mut(),
    }
}

fn key_or_null(k: Option<Key>) -> CGuid {
    k.map(|k| CGuid::from(k.0)).unwrap_or_default()
}

/// An enumerated provider as `FWPM_PROVIDER0`.
pub(crate) fn provider_c(p: &ProviderDto, arena: &mut Arena) -> *mut Provider0 {
    let c = Provider0 {
        key: key_or_null(p.key),
        display: display(&p.name, &p.description, arena),
        flags: p.flags,
        provider_data: empty_blob(),
        service_name: p
            .service_name
            .as_deref()
            .map_or(std::ptr::null_mut(), |s| arena.wide(s)),
    };
    arena.keep(c)
}

/// An enumerated sublayer as `FWPM_SUBLAYER0`.
pub(crate) fn sublayer_c(v: &SublayerView, arena: &mut Arena) -> *mut Sublayer0 {
    let s = &v.sublayer;
    let c = Sublayer0 {
        key: key_or_null(s.key),
        display: display(&s.name, &s.description, arena),
        flags: s.flags,
        provider_key: guid_ptr(s.provider, arena),
        provider_data: empty_blob(),
        weight: s.weight,
    };
    arena.keep(c)
}

/// An enumerated callout as `FWPM_CALLOUT0`.
pub(crate) fn callout_c(v: &CalloutView, arena: &mut Arena) -> *mut Callout0 {
    let co = &v.callout;
    let layer = catalogue::layer_by_name(&co.layer)
        .map(|l| CGuid::from(l.key))
        .unwrap_or_default();
    let c = Callout0 {
        key: key_or_null(co.key),
        display: display(&co.name, &co.description, arena),
        flags: co.flags,
        provider_key: guid_ptr(co.provider, arena),
        provider_data: empty_blob(),
        applicable_layer: layer,
        callout_id: v.callout_id,
    };
    arena.keep(c)
}

/// An enumerated filter as `FWPM_FILTER0` (weight and effectiveWeight as FWP_UINT64).
pub(crate) fn filter_c(v: &FilterView, arena: &mut Arena) -> *mut Filter0 {
    let f = &v.filter;
    let conditions: Vec<Condition0> = f
        .conditions
        .iter()
        .map(|c| Condition0 {
            field_key: catalogue::condition_by_name(&c.field)
                .and_then(catalogue::condition)
                .map(|d| CGuid::from(d.key))
                .unwrap_or_default(),
            match_type: MatchType::from_name(&c.match_type).map_or(0, |m| m as u32),
            value: value_c(&c.value, arena),
        })
        .collect();
    let num_conditions = u32::try_from(conditions.len()).unwrap_or(0);
    let layer = catalogue::layer_by_name(&f.layer)
        .map(|l| CGuid::from(l.key))
        .unwrap_or_default();
    let weight = ValueDto::Uint64 {
        value: v.effective_weight,
    };
    let c = Filter0 {
        key: key_or_null(f.key),
        display: display(&f.name, &f.description, arena),
        flags: f
            .flags
            .iter()
            .filter_map(|n| FilterFlags::from_name(n))
            .fold(0, |a, b| a | b.0),
        provider_key: guid_ptr(f.provider, arena),
        provider_data: empty_blob(),
        layer_key: layer,
        sublayer_key: key_or_null(f.sublayer),
        weight: value_c(&weight, arena),
        num_conditions,
        conditions: arena.array(conditions),
        action: Action0 {
            action_type: ActionType::from_name(&f.action).map_or(0, |a| a.0),
            key: key_or_null(f.callout),
        },
        context: match f.provider_context {
            Some(k) => FilterContext {
                key: CGuid::from(k.0),
            },
            None => FilterContext { raw: f.raw_context },
        },
        reserved: std::ptr::null_mut(),
        filter_id: v.id,
        effective_weight: value_c(&weight, arena),
    };
    arena.keep(c)
}
