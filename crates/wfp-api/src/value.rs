//! Typed values as JSON: one object per `FWP_VALUE0` / `FWP_CONDITION_VALUE0`, tagged by its
//! `FWP_DATA_TYPE` name, lossless both ways (the store keeps them in this form too).
//!
//! | type | JSON |
//! |---|---|
//! | `EMPTY` | `{"type":"EMPTY"}` |
//! | `UINT8` … `INT64`, `FLOAT`, `DOUBLE` | `{"type":"UINT16","value":80}` |
//! | `BYTE_ARRAY16` (IPv6 addresses) | `{"type":"BYTE_ARRAY16","value":"2001:db8::1"}` |
//! | `BYTE_BLOB`, `SID`, `TOKEN_ACCESS_INFORMATION`, `BYTE_ARRAY6` | `{"type":"BYTE_BLOB","hex":"2f62696e"}` |
//! | `UNICODE_STRING` | `{"type":"UNICODE_STRING","value":"text"}` |
//! | `SECURITY_DESCRIPTOR` | `{"type":"SECURITY_DESCRIPTOR","sddl":"O:LSD:(A;;CC;;;S-1-5-0)"}` |
//! | `V4_ADDR_MASK` | `{"type":"V4_ADDR_MASK","addr":"10.0.0.0","mask":"255.0.0.0"}` |
//! | `V6_ADDR_MASK` | `{"type":"V6_ADDR_MASK","addr":"2001:db8::","prefix_len":32}` |
//! | `RANGE` | `{"type":"RANGE","low":{...},"high":{...}}` |
//!
//! IPv4 addresses are `UINT32` values in host order (as the engine holds them).

use std::net::{Ipv4Addr, Ipv6Addr};
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use wfp_core::security::SecurityDescriptor;
use wfp_core::{ConditionValue, Value};

use crate::types::ConvertError;

/// A value as JSON (see the module table).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "SCREAMING_SNAKE_CASE", deny_unknown_fields)]
pub enum ValueDto {
    /// FWP_EMPTY.
    Empty,
    /// FWP_UINT8.
    Uint8 {
        /// The number.
        value: u8,
    },
    /// FWP_UINT16.
    Uint16 {
        /// The number.
        value: u16,
    },
    /// FWP_UINT32.
    Uint32 {
        /// The number.
        value: u32,
    },
    /// FWP_UINT64.
    Uint64 {
        /// The number.
        value: u64,
    },
    /// FWP_INT8.
    Int8 {
        /// The number.
        value: i8,
    },
    /// FWP_INT16.
    Int16 {
        /// The number.
        value: i16,
    },
    /// FWP_INT32.
    Int32 {
        /// The number.
        value: i32,
    },
    /// FWP_INT64.
    Int64 {
        /// The number.
        value: i64,
    },
    /// FWP_FLOAT.
    Float {
        /// The number.
        value: f32,
    },
    /// FWP_DOUBLE.
    Double {
        /// The number.
        value: f64,
    },
    /// FWP_BYTE_ARRAY16_TYPE.
    ByteArray16 {
        /// The 16 bytes as an IPv6 address.
        value: Ipv6Addr,
    },
    /// FWP_BYTE_BLOB_TYPE.
    ByteBlob {
        /// The bytes, lower-case hex.
        hex: String,
    },
    /// FWP_SID.
    Sid {
        /// The bytes, lower-case hex.
        hex: String,
    },
    /// FWP_TOKEN_ACCESS_INFORMATION_TYPE.
    TokenAccessInformation {
        /// The bytes, lower-case hex.
        hex: String,
    },
    /// FWP_BYTE_ARRAY6_TYPE.
    ByteArray6 {
        /// The six bytes, lower-case hex.
        hex: String,
    },
    /// FWP_UNICODE_STRING_TYPE.
    UnicodeString {
        /// The text.
        value: String,
    },
    /// FWP_SECURITY_DESCRIPTOR_TYPE.
    SecurityDescriptor {
        /// The SDDL text.
        sddl: String,
    },
    /// FWP_V4_ADDR_MASK.
    V4AddrMask {
        /// The address.
        addr: Ipv4Addr,
        /// The mask.
        mask: Ipv4Addr,
    },
    /// FWP_V6_ADDR_MASK.
    V6AddrMask {
        /// The address.
        addr: Ipv6Addr,
        /// The prefix length (0..=128).
        prefix_len: u8,
    },
    /// FWP_RANGE_TYPE.
    Range {
        /// The low bound.
        low: Box<Self>,
        /// The high bound.
        high: Box<Self>,
    },
}

pub(crate) fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

pub(crate) fn unhex(s: &str) -> Result<Vec<u8>, ConvertError> {
    let bad = || ConvertError::BadValue(format!("{s:?} is not hex"));
    if s.len() & 1 == 1 {
        return Err(bad());
    }
    (0..s.len())
        .step_by(2)
        .map(|i| {
            s.get(i..i + 2)
                .and_then(|p| u8::from_str_radix(p, 16).ok())
                .ok_or_else(bad)
        })
        .collect()
}

impl From<&Value> for ValueDto {
    fn from(v: &Value) -> Self {
        match v {
            Value::Empty | Value::TokenInformation(_) => Self::Empty,
            Value::Uint8(value) => Self::Uint8 { value: *value },
            Value::Uint16(value) => Self::Uint16 { value: *value },
            Value::Uint32(value) => Self::Uint32 { value: *value },
            Value::Uint64(value) => Self::Uint64 { value: *value },
            Value::Int8(value) => Self::Int8 { value: *value },
            Value::Int16(value) => Self::Int16 { value: *value },
            Value::Int32(value) => Self::Int32 { value: *value },
            Value::Int64(value) => Self::Int64 { value: *value },
            Value::Float(value) => Self::Float { value: *value },
            Value::Double(value) => Self::Double { value: *value },
            Value::ByteArray16(b) => Self::ByteArray16 {
                value: Ipv6Addr::from(*b),
            },
            Value::ByteBlob(b) => Self::ByteBlob { hex: hex(b) },
            Value::Sid(b) => Self::Sid { hex: hex(b) },
            Value::TokenAccessInformation(b) => Self::TokenAccessInformation { hex: hex(b) },
            Value::ByteArray6(b) => Self::ByteArray6 { hex: hex(b) },
            Value::UnicodeString(s) => Self::UnicodeString {
                value: s.to_string(),
            },
            Value::SecurityDescriptor(sd) => Self::SecurityDescriptor {
                sddl: sd.text().to_string(),
            },
        }
    }
}

impl TryFrom<&ValueDto> for Value {
    type Error = ConvertError;

    fn try_from(v: &ValueDto) -> Result<Self, ConvertError> {
        let blob = |h: &str| unhex(h).map(Arc::<[u8]>::from);
        Ok(match v {
            ValueDto::Empty => Self::Empty,
            ValueDto::Uint8 { value } => Self::Uint8(*value),
            ValueDto::Uint16 { value } => Self::Uint16(*value),
            ValueDto::Uint32 { value } => Self::Uint32(*value),
            ValueDto::Uint64 { value } => Self::Uint64(*value),
            ValueDto::Int8 { value } => Self::Int8(*value),
            ValueDto::Int16 { value } => Self::Int16(*value),
            ValueDto::Int32 { value } => Self::Int32(*value),
            ValueDto::Int64 { value } => Self::Int64(*value),
            ValueDto::Float { value } => Self::Float(*value),
            ValueDto::Double { value } => Self::Double(*value),
            ValueDto::ByteArray16 { value } => Self::ByteArray16(value.octets()),
            ValueDto::ByteBlob { hex } => Self::ByteBlob(blob(hex)?),
            ValueDto::Sid { hex } => Self::Sid(blob(hex)?),
            ValueDto::TokenAccessInformation { hex } => Self::TokenAccessInformation(blob(hex)?),
            ValueDto::ByteArray6 { hex } => Self::ByteArray6(
                unhex(hex)?
                    .try_into()
                    .map_err(|_| ConvertError::BadValue(format!("{hex:?} is not 6 bytes")))?,
            ),
            ValueDto::UnicodeString { value } => Self::UnicodeString(value.as_str().into()),
            ValueDto::SecurityDescriptor { sddl } => Self::SecurityDescriptor(Arc::new(
                SecurityDescriptor::parse(sddl)
                    .map_err(|e| ConvertError::BadValue(format!("SDDL {sddl:?}: {e}")))?,
            )),
            ValueDto::V4AddrMask { .. } | ValueDto::V6AddrMask { .. } | ValueDto::Range { .. } => {
                return Err(ConvertError::BadValue(
                    "an address mask or range is only a condition value".into(),
                ))
            }
        })
    }
}

impl From<&ConditionValue> for ValueDto {
    fn from(v: &ConditionValue) -> Self {
        match v {
            ConditionValue::Value(v) => v.into(),
            ConditionValue::V4AddrMask { addr, mask } => Self::V4AddrMask {
                addr: Ipv4Addr::from(*addr),
                mask: Ipv4Addr::from(*mask),
            },
            ConditionValue::V6AddrMask { addr, prefix_len } => Self::V6AddrMask {
                addr: Ipv6Addr::from(*addr),
                prefix_len: *prefix_len,
            },
            ConditionValue::Range(low, high) => Self::Range {
                low: Box::new(low.into()),
                high: Box::new(high.into()),
            },
        }
    }
}

impl TryFrom<&ValueDto> for ConditionValue {
    type Error = ConvertError;

    fn try_from(v: &ValueDto) -> Result<Self, ConvertError> {
        Ok(match v {
            ValueDto::V4AddrMask { addr, mask } => Self::V4AddrMask {
                addr: u32::from(*addr),
                mask: u32::from(*mask),
            },
            ValueDto::V6AddrMask { addr, prefix_len } => Self::V6AddrMask {
                addr: addr.octets(),
                prefix_len: *prefix_len,
            },
            ValueDto::Range { low, high } => {
                Self::Range(Value::try_from(&**low)?, Value::try_from(&**high)?)
            }
            other => Self::Value(Value::try_from(other)?),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn round_trip(v: ConditionValue) {
        let dto = ValueDto::from(&v);
        let json = serde_json::to_string(&dto).unwrap();
        let back: ValueDto = serde_json::from_str(&json).unwrap();
        assert_eq!(ConditionValue::try_from(&back).unwrap(), v, "{json}");
    }

    #[test]
    fn every_condition_value_form_round_trips_through_json() {
        round_trip(Value::Uint16(443).into());
        round_trip(Value::Int64(-5).into());
        round_trip(Value::Double(1.5).into());
        round_trip(Value::ipv6("2001:db8::1".parse().unwrap()).into());
        round_trip(Value::blob_from_str("/usr/bin/curl").into());
        round_trip(Value::ByteArray6([1, 2, 3, 4, 5, 0xff]).into());
        round_trip(Value::UnicodeString("x".into()).into());
        round_trip(ConditionValue::v4_prefix("10.0.0.0".parse().unwrap(), 8));
        round_trip(ConditionValue::V6AddrMask {
            addr: [0x20; 16],
            prefix_len: 32,
        });
        round_trip(ConditionValue::Range(Value::Uint16(1), Value::Uint16(1023)));
        round_trip(Value::Empty.into());
    }

    #[test]
    fn malformed_values_are_errors_not_panics() {
        for json in [
            r#"{"type":"BYTE_BLOB","hex":"abc"}"#,
            r#"{"type":"BYTE_BLOB","hex":"zz"}"#,
            r#"{"type":"BYTE_ARRAY6","hex":"0102"}"#,
            r#"{"type":"RANGE","low":{"type":"RANGE","low":{"type":"EMPTY"},"high":{"type":"EMPTY"}},"high":{"type":"EMPTY"}}"#,
        ] {
            let dto: ValueDto = serde_json::from_str(json).unwrap();
            assert!(ConditionValue::try_from(&dto).is_err(), "{json}");
        }
        assert!(serde_json::from_str::<ValueDto>(r#"{"type":"UINT8","value":300}"#).is_err());
    }
}
