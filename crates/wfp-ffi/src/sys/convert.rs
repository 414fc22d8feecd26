//! Engine values ⇄ C structures: `Value` → `FWP_VALUE0` (pointer arms stored in an [`Arena`] whose
//! buffers are reserved before filling, so the pointers stay valid and no allocation happens once
//! the arena has grown to the largest classify), C management structures → engine specs.

use std::ffi::c_void;

use wfp_core::{ConditionValue, Value};

use super::types::{FwpByteBlob, FwpRange0, FwpV4AddrAndMask, FwpV6AddrAndMask, FwpValue0};

/// Storage behind the pointer arms of converted values.
#[derive(Default)]
pub(crate) struct Arena {
    u64s: Vec<u64>,
    a16: Vec<[u8; 16]>,
    a6: Vec<[u8; 6]>,
    blobs: Vec<FwpByteBlob>,
    wide: Vec<u16>,
    v4: Vec<FwpV4AddrAndMask>,
    v6: Vec<FwpV6AddrAndMask>,
    ranges: Vec<FwpRange0>,
}

/// How much of each kind a set of values needs.
#[derive(Default)]
struct Need {
    u64s: usize,
    a16: usize,
    a6: usize,
    blobs: usize,
    wide: usize,
    v4: usize,
    v6: usize,
    ranges: usize,
}

impl Need {
    fn value(&mut self, v: &Value, utf16_blob: bool) {
        match v {
            Value::Uint64(_) | Value::Int64(_) | Value::Double(_) => self.u64s += 1,
            Value::ByteArray16(_) => self.a16 += 1,
            Value::ByteArray6(_) => self.a6 += 1,
            Value::ByteBlob(b) => {
                self.blobs += 1;
                if utf16_blob {
                    self.wide += b.len() + 1;
                }
            }
            Value::Sid(_) | Value::TokenAccessInformation(_) => self.blobs += 1,
            Value::UnicodeString(s) => self.wide += s.len() + 1,
            _ => {}
        }
    }

    fn condition(&mut self, c: &ConditionValue) {
        match c {
            ConditionValue::Value(v) => self.value(v, false),
            ConditionValue::V4AddrMask { .. } => self.v4 += 1,
            ConditionValue::V6AddrMask { .. } => self.v6 += 1,
            ConditionValue::Range(lo, hi) => {
                self.ranges += 1;
                self.value(lo, false);
                self.value(hi, false);
            }
        }
    }
}

/// Pushes into a vector whose capacity was reserved, returning a pointer that stays valid until
/// the arena is cleared.
fn push<T>(v: &mut Vec<T>, x: T) -> *mut T {
    debug_assert!(v.len() < v.capacity(), "arena reserved too little");
    v.push(x);
    v.last_mut()
        .map_or(std::ptr::null_mut(), std::ptr::from_mut)
}

impl Arena {
    fn reserve(&mut self, n: &Need) {
        self.u64s.clear();
        self.a16.clear();
        self.a6.clear();
        self.blobs.clear();
        self.wide.clear();
        self.v4.clear();
        self.v6.clear();
        self.ranges.clear();
        self.u64s.reserve(n.u64s);
        self.a16.reserve(n.a16);
        self.a6.reserve(n.a6);
        self.blobs.reserve(n.blobs);
        self.wide.reserve(n.wide);
        self.v4.reserve(n.v4);
        self.v6.reserve(n.v6);
        self.ranges.reserve(n.ranges);
    }

    /// Reserves for incoming `values` (blobs at `utf16[i]` fields become UTF-16 with a NUL).
    pub(crate) fn reserve_values(&mut self, values: &[Value], utf16: impl Fn(usize) -> bool) {
        let mut n = Need::default();
        for (i, v) in values.iter().enumerate() {
            n.value(v, utf16(i));
        }
        self.reserve(&n);
    }

    /// Reserves for condition values.
    pub(crate) fn reserve_conditions<'a>(
        &mut self,
        conds: impl Iterator<Item = &'a ConditionValue>,
    ) {
        let mut n = Need::default();
        for c in conds {
            n.condition(c);
        }
        self.reserve(&n);
    }

    fn wide_str(&mut self, units: impl Iterator<Item = u16>) -> *mut u16 {
        let start = self.wide.len();
        for u in units {
            push(&mut self.wide, u);
        }
        push(&mut self.wide, 0);
        self.wide[start..].as_mut_ptr()
    }

    /// `FWP_VALUE0` for a value. Token and security-descriptor values have no C form here and
    /// become FWP_EMPTY (docs/c-abi.md).
    pub(crate) fn value(&mut self, v: &Value, utf16_blob: bool) -> FwpValue0 {
        let (t, x): (u32, u64) = match v {
            Value::Empty | Value::SecurityDescriptor(_) | Value::TokenInformation(_) => (0, 0),
            Value::Uint8(x) => (1, u64::from(*x)),
            Value::Uint16(x) => (2, u64::from(*x)),
            Value::Uint32(x) => (3, u64::from(*x)),
            Value::Uint64(x) => (4, push(&mut self.u64s, *x) as u64),
            Value::Int8(x) => (5, u64::from(*x as u8)),
            Value::Int16(x) => (6, u64::from(*x as u16)),
            Value::Int32(x) => (7, u64::from(*x as u32)),
            Value::Int64(x) => (8, push(&mut self.u64s, *x as u64) as u64),
            Value::Float(x) => (9, u64::from(x.to_bits())),
            Value::Double(x) => (10, push(&mut self.u64s, x.to_bits()) as u64),
            Value::ByteArray16(a) => (11, push(&mut self.a16, *a) as u64),
            Value::ByteBlob(b) if utf16_blob => {
                // ALE_APP_ID-style paths: Windows hands UTF-16LE with a terminating NUL.
                let text = String::from_utf8_lossy(b);
                let start = self.wide.len();
                let w = self.wide_str(text.encode_utf16());
                let units = self.wide.len() - start;
                let blob = FwpByteBlob {
                    size: u32::try_from(units * 2).unwrap_or(u32::MAX),
                    data: w.cast(),
                };
                (12, push(&mut self.blobs, blob) as u64)
            }
            Value::ByteBlob(b) => (12, self.blob(b) as u64),
            Value::Sid(b) => (13, self.blob(b).cast::<c_void>() as u64),
            Value::TokenAccessInformation(b) => (16, self.blob(b) as u64),
            Value::UnicodeString(s) => (17, self.wide_str(s.encode_utf16()) as u64),
            Value::ByteArray6(a) => (18, push(&mut self.a6, *a) as u64),
        };
        FwpValue0 {
            data_type: t,
            value: x,
        }
    }

    fn blob(&mut self, b: &[u8]) -> *mut FwpByteBlob {
        push(
            &mut self.blobs,
            FwpByteBlob {
                size: u32::try_from(b.len()).unwrap_or(u32::MAX),
                data: b.as_ptr().cast_mut(),
            },
        )
    }

    /// `FWP_CONDITION_VALUE0` for a condition value.
    pub(crate) fn condition(&mut self, c: &ConditionValue) -> FwpValue0 {
        match c {
            ConditionValue::Value(v) => self.value(v, false),
            ConditionValue::V4AddrMask { addr, mask } => FwpValue0 {
                data_type: 0x100,
                value: push(
                    &mut self.v4,
                    FwpV4AddrAndMask {
                        addr: *addr,
                        mask: *mask,
                    },
                ) as u64,
            },
            ConditionValue::V6AddrMask { addr, prefix_len } => FwpValue0 {
                data_type: 0x101,
                value: push(
                    &mut self.v6,
                    FwpV6AddrAndMask {
                        addr: *addr,
                        prefix_length: *prefix_len,
                    },
                ) as u64,
            },
            ConditionValue::Range(lo, hi) => {
                let low = self.value(lo, false);
                let high = self.value(hi, false);
                FwpValue0 {
                    data_type: 0x102,
                    value: push(&mut self.ranges, FwpRange0 { low, high }) as u64,
                }
            }
        }
    }
}

/// UTF-16 text at `p` (NUL-terminated), or `None` for NULL.
///
/// # Safety
/// `p` must be null or point to a NUL-terminated array of u16.
pub(crate) unsafe fn wide_to_string(p: *const u16) -> Option<String> {
    if p.is_null() {
        return None;
    }
    let mut n = 0usize;
    // SAFETY: per the contract the array is NUL-terminated; the walk stops at the NUL.
    unsafe {
        while *p.add(n) != 0 {
            n += 1;
        }
        Some(String::from_utf16_lossy(std::slice::from_raw_parts(p, n)))
    }
}

/// A C `FWP_VALUE0`/`FWP_CONDITION_VALUE0` as an engine condition value; `None` for a type or
/// pointer the engine cannot take.
///
/// # Safety
/// Pointer arms must point to valid data of their type.
pub(crate) unsafe fn condition_from_c(v: &FwpValue0) -> Option<ConditionValue> {
    let p = v.value as usize;
    // SAFETY: per the contract each pointer arm is valid (checked non-null).
    unsafe {
        Some(match v.data_type {
            0x100 => {
                let m = (p as *const FwpV4AddrAndMask).as_ref()?;
                ConditionValue::V4AddrMask {
                    addr: m.addr,
                    mask: m.mask,
                }
            }
            0x101 => {
                let m = (p as *const FwpV6AddrAndMask).as_ref()?;
                ConditionValue::V6AddrMask {
                    addr: m.addr,
                    prefix_len: m.prefix_length,
                }
            }
            0x102 => {
                let r = (p as *const FwpRange0).as_ref()?;
                ConditionValue::Range(value_from_c(&r.low)?, value_from_c(&r.high)?)
            }
            _ => ConditionValue::Value(value_from_c(v)?),
        })
    }
}

/// A C `FWP_VALUE0` as an engine value.
///
/// # Safety
/// Pointer arms must point to valid data of their type.
pub(crate) unsafe fn value_from_c(v: &FwpValue0) -> Option<Value> {
    let x = v.value;
    let p = x as usize;
    // SAFETY: per the contract each pointer arm is valid (checked non-null).
    unsafe {
        Some(match v.data_type {
            0 => Value::Empty,
            1 => Value::Uint8(x as u8),
            2 => Value::Uint16(x as u16),
            3 => Value::Uint32(x as u32),
            4 => Value::Uint64(*(p as *const u64).as_ref()?),
            5 => Value::Int8(x as u8 as i8),
            6 => Value::Int16(x as u16 as i16),
            7 => Value::Int32(x as u32 as i32),
            8 => Value::Int64(*(p as *const i64).as_ref()?),
            9 => Value::Float(f32::from_bits(x as u32)),
            10 => Value::Double(*(p as *const f64).as_ref()?),
            11 => Value::ByteArray16(*(p as *const [u8; 16]).as_ref()?),
            12 => {
                let b = (p as *const FwpByteBlob).as_ref()?;
                if b.data.is_null() && b.size != 0 {
                    return None;
                }
                let bytes = if b.size == 0 {
                    &[][..]
                } else {
                    std::slice::from_raw_parts(b.data, b.size as usize)
                };
                Value::ByteBlob(bytes.into())
            }
            17 => Value::UnicodeString(wide_to_string(p as *const u16)?.into()),
            18 => Value::ByteArray6(*(p as *const [u8; 6]).as_ref()?),
            _ => return None,
        })
    }
}
