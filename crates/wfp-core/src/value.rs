//! Typed values: `FWP_DATA_TYPE`, `FWP_VALUE0` (incoming values) and `FWP_CONDITION_VALUE0`
//! (condition values, which add address masks and ranges) — wfp-reference §8.4.
//!
//! Variable-length payloads are `Arc`-shared so a shim can fill incoming values per packet without
//! copying (for example one `ALE_APP_ID` blob per flow). IPv4 addresses are `Uint32` in host order and
//! IPv6 addresses are `ByteArray16`, as WFP fills them (§2.2).

use std::cmp::Ordering;
use std::fmt;
use std::sync::Arc;

use crate::security::{SecurityDescriptor, Token};

/// `FWP_DATA_TYPE`.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
#[repr(u32)]
pub enum DataType {
    /// FWP_EMPTY.
    Empty = 0,
    /// FWP_UINT8.
    Uint8 = 1,
    /// FWP_UINT16.
    Uint16 = 2,
    /// FWP_UINT32.
    Uint32 = 3,
    /// FWP_UINT64.
    Uint64 = 4,
    /// FWP_INT8.
    Int8 = 5,
    /// FWP_INT16.
    Int16 = 6,
    /// FWP_INT32.
    Int32 = 7,
    /// FWP_INT64.
    Int64 = 8,
    /// FWP_FLOAT.
    Float = 9,
    /// FWP_DOUBLE.
    Double = 10,
    /// FWP_BYTE_ARRAY16_TYPE.
    ByteArray16 = 11,
    /// FWP_BYTE_BLOB_TYPE.
    ByteBlob = 12,
    /// FWP_SID (opaque bytes).
    Sid = 13,
    /// FWP_SECURITY_DESCRIPTOR_TYPE.
    SecurityDescriptor = 14,
    /// FWP_TOKEN_INFORMATION_TYPE.
    TokenInformation = 15,
    /// FWP_TOKEN_ACCESS_INFORMATION_TYPE (opaque bytes).
    TokenAccessInformation = 16,
    /// FWP_UNICODE_STRING_TYPE.
    UnicodeString = 17,
    /// FWP_BYTE_ARRAY6_TYPE.
    ByteArray6 = 18,
    /// FWP_V4_ADDR_MASK (condition values only).
    V4AddrMask = 0x100,
    /// FWP_V6_ADDR_MASK (condition values only).
    V6AddrMask = 0x101,
    /// FWP_RANGE_TYPE (condition values only).
    Range = 0x102,
}

impl DataType {
    /// WFP name (`FWP_UINT16`, `FWP_BYTE_BLOB_TYPE`, ...).
    pub fn name(self) -> &'static str {
        match self {
            Self::Empty => "FWP_EMPTY",
            Self::Uint8 => "FWP_UINT8",
            Self::Uint16 => "FWP_UINT16",
            Self::Uint32 => "FWP_UINT32",
            Self::Uint64 => "FWP_UINT64",
            Self::Int8 => "FWP_INT8",
            Self::Int16 => "FWP_INT16",
            Self::Int32 => "FWP_INT32",
            Self::Int64 => "FWP_INT64",
            Self::Float => "FWP_FLOAT",
            Self::Double => "FWP_DOUBLE",
            Self::ByteArray16 => "FWP_BYTE_ARRAY16_TYPE",
            Self::ByteBlob => "FWP_BYTE_BLOB_TYPE",
            Self::Sid => "FWP_SID",
            Self::SecurityDescriptor => "FWP_SECURITY_DESCRIPTOR_TYPE",
            Self::TokenInformation => "FWP_TOKEN_INFORMATION_TYPE",
            Self::TokenAccessInformation => "FWP_TOKEN_ACCESS_INFORMATION_TYPE",
            Self::UnicodeString => "FWP_UNICODE_STRING_TYPE",
            Self::ByteArray6 => "FWP_BYTE_ARRAY6_TYPE",
            Self::V4AddrMask => "FWP_V4_ADDR_MASK",
            Self::V6AddrMask => "FWP_V6_ADDR_MASK",
            Self::Range => "FWP_RANGE_TYPE",
        }
    }

    /// Parses `UINT16`, `FWP_UINT16`, `BYTE_BLOB`, `FWP_BYTE_BLOB_TYPE`, ... (case-insensitive).
    pub fn from_name(name: &str) -> Option<Self> {
        let upper = name.trim().to_ascii_uppercase();
        let bare = upper.strip_prefix("FWP_").unwrap_or(&upper);
        let bare = bare.strip_suffix("_TYPE").unwrap_or(bare);
        ALL_TYPES.iter().copied().find(|t| {
            let n = t.name().strip_prefix("FWP_").unwrap_or(t.name());
            n.strip_suffix("_TYPE").unwrap_or(n) == bare
        })
    }

    /// Integers, ByteArray16, blobs and strings can be ordered (GREATER, LESS, RANGE, ...).
    pub fn is_sortable(self) -> bool {
        self.is_integer()
            || matches!(
                self,
                Self::ByteArray16 | Self::ByteBlob | Self::UnicodeString
            )
    }

    /// Signed or unsigned integer types.
    pub fn is_integer(self) -> bool {
        self.is_unsigned() || matches!(self, Self::Int8 | Self::Int16 | Self::Int32 | Self::Int64)
    }

    /// Unsigned integer types (the FLAGS_* match types need them).
    pub fn is_unsigned(self) -> bool {
        matches!(
            self,
            Self::Uint8 | Self::Uint16 | Self::Uint32 | Self::Uint64
        )
    }
}

const ALL_TYPES: &[DataType] = &[
    DataType::Empty,
    DataType::Uint8,
    DataType::Uint16,
    DataType::Uint32,
    DataType::Uint64,
    DataType::Int8,
    DataType::Int16,
    DataType::Int32,
    DataType::Int64,
    DataType::Float,
    DataType::Double,
    DataType::ByteArray16,
    DataType::ByteBlob,
    DataType::Sid,
    DataType::SecurityDescriptor,
    DataType::TokenInformation,
    DataType::TokenAccessInformation,
    DataType::UnicodeString,
    DataType::ByteArray6,
    DataType::V4AddrMask,
    DataType::V6AddrMask,
    DataType::Range,
];

/// `FWP_VALUE0`: one incoming value (or the single-value arm of a condition value).
#[derive(Clone, Debug, Default)]
pub enum Value {
    /// FWP_EMPTY: unknown or not applicable.
    #[default]
    Empty,
    /// FWP_UINT8.
    Uint8(u8),
    /// FWP_UINT16.
    Uint16(u16),
    /// FWP_UINT32 (IPv4 addresses in host order).
    Uint32(u32),
    /// FWP_UINT64.
    Uint64(u64),
    /// FWP_INT8.
    Int8(i8),
    /// FWP_INT16.
    Int16(i16),
    /// FWP_INT32.
    Int32(i32),
    /// FWP_INT64.
    Int64(i64),
    /// FWP_FLOAT.
    Float(f32),
    /// FWP_DOUBLE.
    Double(f64),
    /// FWP_BYTE_ARRAY16_TYPE (IPv6 addresses, network order).
    ByteArray16([u8; 16]),
    /// FWP_BYTE_BLOB_TYPE (ALE_APP_ID: lower-case executable path, UTF-8, no terminator).
    ByteBlob(Arc<[u8]>),
    /// FWP_SID (opaque bytes or text form).
    Sid(Arc<[u8]>),
    /// FWP_SECURITY_DESCRIPTOR_TYPE (condition side of user-id fields).
    SecurityDescriptor(Arc<SecurityDescriptor>),
    /// FWP_TOKEN_INFORMATION_TYPE (incoming side of user-id fields).
    TokenInformation(Arc<Token>),
    /// FWP_TOKEN_ACCESS_INFORMATION_TYPE (opaque).
    TokenAccessInformation(Arc<[u8]>),
    /// FWP_UNICODE_STRING_TYPE.
    UnicodeString(Arc<str>),
    /// FWP_BYTE_ARRAY6_TYPE (MAC addresses).
    ByteArray6([u8; 6]),
}

impl Value {
    /// The value's `FWP_DATA_TYPE`.
    pub fn data_type(&self) -> DataType {
        match self {
            Self::Empty => DataType::Empty,
            Self::Uint8(_) => DataType::Uint8,
            Self::Uint16(_) => DataType::Uint16,
            Self::Uint32(_) => DataType::Uint32,
            Self::Uint64(_) => DataType::Uint64,
            Self::Int8(_) => DataType::Int8,
            Self::Int16(_) => DataType::Int16,
            Self::Int32(_) => DataType::Int32,
            Self::Int64(_) => DataType::Int64,
            Self::Float(_) => DataType::Float,
            Self::Double(_) => DataType::Double,
            Self::ByteArray16(_) => DataType::ByteArray16,
            Self::ByteBlob(_) => DataType::ByteBlob,
            Self::Sid(_) => DataType::Sid,
            Self::SecurityDescriptor(_) => DataType::SecurityDescriptor,
            Self::TokenInformation(_) => DataType::TokenInformation,
            Self::TokenAccessInformation(_) => DataType::TokenAccessInformation,
            Self::UnicodeString(_) => DataType::UnicodeString,
            Self::ByteArray6(_) => DataType::ByteArray6,
        }
    }

    /// A byte blob from UTF-8 text (how ALE_APP_ID is stored).
    pub fn blob_from_str(s: &str) -> Self {
        Self::ByteBlob(Arc::from(s.as_bytes()))
    }

    /// An IPv4 address value (host-order `Uint32`).
    pub fn ipv4(addr: std::net::Ipv4Addr) -> Self {
        Self::Uint32(u32::from(addr))
    }

    /// An IPv6 address value (`ByteArray16`).
    pub fn ipv6(addr: std::net::Ipv6Addr) -> Self {
        Self::ByteArray16(addr.octets())
    }

    /// The value as an unsigned integer, for the FLAGS_* match types and range checks.
    pub fn as_u64(&self) -> Option<u64> {
        match *self {
            Self::Uint8(v) => Some(u64::from(v)),
            Self::Uint16(v) => Some(u64::from(v)),
            Self::Uint32(v) => Some(u64::from(v)),
            Self::Uint64(v) => Some(v),
            _ => None,
        }
    }

    /// Equality under WFP's rules: same type and same contents (no implicit conversion).
    pub fn equals(&self, other: &Self) -> bool {
        self.compare(other) == Some(Ordering::Equal)
    }

    /// Ordering for two values of the same type; `None` when the types differ or are unordered.
    pub fn compare(&self, other: &Self) -> Option<Ordering> {
        Some(match (self, other) {
            (Self::Empty, Self::Empty) => Ordering::Equal,
            (Self::Uint8(a), Self::Uint8(b)) => a.cmp(b),
            (Self::Uint16(a), Self::Uint16(b)) => a.cmp(b),
            (Self::Uint32(a), Self::Uint32(b)) => a.cmp(b),
            (Self::Uint64(a), Self::Uint64(b)) => a.cmp(b),
            (Self::Int8(a), Self::Int8(b)) => a.cmp(b),
            (Self::Int16(a), Self::Int16(b)) => a.cmp(b),
            (Self::Int32(a), Self::Int32(b)) => a.cmp(b),
            (Self::Int64(a), Self::Int64(b)) => a.cmp(b),
            (Self::Float(a), Self::Float(b)) => a.partial_cmp(b)?,
            (Self::Double(a), Self::Double(b)) => a.partial_cmp(b)?,
            (Self::ByteArray16(a), Self::ByteArray16(b)) => a.cmp(b),
            (Self::ByteArray6(a), Self::ByteArray6(b)) => a.cmp(b),
            (Self::ByteBlob(a), Self::ByteBlob(b))
            | (Self::Sid(a), Self::Sid(b))
            | (Self::TokenAccessInformation(a), Self::TokenAccessInformation(b)) => a.cmp(b),
            (Self::UnicodeString(a), Self::UnicodeString(b)) => a.cmp(b),
            (Self::SecurityDescriptor(a), Self::SecurityDescriptor(b)) => a.text().cmp(b.text()),
            (Self::TokenInformation(a), Self::TokenInformation(b)) if a == b => Ordering::Equal,
            _ => return None,
        })
    }
}

impl PartialEq for Value {
    fn eq(&self, other: &Self) -> bool {
        self.equals(other)
    }
}

impl fmt::Display for Value {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Empty => f.write_str("FWP_EMPTY"),
            Self::Uint8(v) => write!(f, "{v}"),
            Self::Uint16(v) => write!(f, "{v}"),
            Self::Uint32(v) => write!(f, "{v}"),
            Self::Uint64(v) => write!(f, "{v}"),
            Self::Int8(v) => write!(f, "{v}"),
            Self::Int16(v) => write!(f, "{v}"),
            Self::Int32(v) => write!(f, "{v}"),
            Self::Int64(v) => write!(f, "{v}"),
            Self::Float(v) => write!(f, "{v}"),
            Self::Double(v) => write!(f, "{v}"),
            Self::ByteArray16(v) => write!(f, "{}", std::net::Ipv6Addr::from(*v)),
            Self::ByteBlob(v) | Self::Sid(v) | Self::TokenAccessInformation(v) => {
                write!(f, "{:?}", String::from_utf8_lossy(v))
            }
            Self::SecurityDescriptor(sd) => write!(f, "{:?}", sd.text()),
            Self::TokenInformation(t) => write!(f, "uid={}", t.uid),
            Self::UnicodeString(s) => write!(f, "{s:?}"),
            Self::ByteArray6(m) => write!(
                f,
                "{:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}",
                m[0], m[1], m[2], m[3], m[4], m[5]
            ),
        }
    }
}

/// `FWP_CONDITION_VALUE0`: a single value, an address with mask, or an inclusive range.
#[derive(Clone, Debug, PartialEq)]
pub enum ConditionValue {
    /// Any `FWP_VALUE0` arm.
    Value(Value),
    /// FWP_V4_ADDR_MASK: `addr` and `mask` in host order.
    V4AddrMask {
        /// Address (host order).
        addr: u32,
        /// Mask (host order), e.g. 0xFF00_0000 for /8.
        mask: u32,
    },
    /// FWP_V6_ADDR_MASK: address and prefix length (0..=128).
    V6AddrMask {
        /// Address bytes.
        addr: [u8; 16],
        /// Prefix length.
        prefix_len: u8,
    },
    /// FWP_RANGE_TYPE: inclusive `[low, high]` of one type.
    Range(Value, Value),
}

impl ConditionValue {
    /// The condition value's `FWP_DATA_TYPE`.
    pub fn data_type(&self) -> DataType {
        match self {
            Self::Value(v) => v.data_type(),
            Self::V4AddrMask { .. } => DataType::V4AddrMask,
            Self::V6AddrMask { .. } => DataType::V6AddrMask,
            Self::Range(..) => DataType::Range,
        }
    }

    /// An IPv4 prefix, e.g. `v4_prefix(10.0.0.0, 8)`.
    pub fn v4_prefix(addr: std::net::Ipv4Addr, len: u8) -> Self {
        let mask = if len == 0 {
            0
        } else {
            u32::MAX << (32 - u32::from(len.min(32)))
        };
        Self::V4AddrMask {
            addr: u32::from(addr),
            mask,
        }
    }
}

impl fmt::Display for ConditionValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Value(v) => v.fmt(f),
            Self::V4AddrMask { addr, mask } => {
                write!(
                    f,
                    "{}/{}",
                    std::net::Ipv4Addr::from(*addr),
                    std::net::Ipv4Addr::from(*mask)
                )
            }
            Self::V6AddrMask { addr, prefix_len } => {
                write!(f, "{}/{prefix_len}", std::net::Ipv6Addr::from(*addr))
            }
            Self::Range(lo, hi) => write!(f, "[{lo}, {hi}]"),
        }
    }
}

impl From<Value> for ConditionValue {
    fn from(v: Value) -> Self {
        Self::Value(v)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_implicit_conversion_between_integer_widths() {
        assert!(!Value::Uint8(6).equals(&Value::Uint16(6)));
        assert!(Value::Uint16(6).equals(&Value::Uint16(6)));
        assert!(Value::Empty.equals(&Value::Empty));
    }

    #[test]
    fn data_type_names_parse_both_spellings() {
        assert_eq!(DataType::from_name("UINT16"), Some(DataType::Uint16));
        assert_eq!(
            DataType::from_name("FWP_BYTE_BLOB_TYPE"),
            Some(DataType::ByteBlob)
        );
        assert_eq!(
            DataType::from_name("byte_array16"),
            Some(DataType::ByteArray16)
        );
        assert_eq!(
            DataType::from_name("V4_ADDR_MASK"),
            Some(DataType::V4AddrMask)
        );
    }

    #[test]
    fn v4_prefix_builds_host_order_mask() {
        assert_eq!(
            ConditionValue::v4_prefix("10.0.0.0".parse().unwrap(), 8),
            ConditionValue::V4AddrMask {
                addr: 0x0A00_0000,
                mask: 0xFF00_0000
            }
        );
        assert_eq!(
            ConditionValue::v4_prefix("0.0.0.0".parse().unwrap(), 0),
            ConditionValue::V4AddrMask { addr: 0, mask: 0 }
        );
    }
}
