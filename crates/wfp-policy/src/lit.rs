//! Literal values from policy files (TOML) and case files (JSON), and their conversion to WFP values
//! by the type of the field they are for.
//!
//! | field type | accepted literals |
//! |---|---|
//! | UINT8/16/32/64, INT* | integers, `"0x1F"` strings; IP_PROTOCOL also `"tcp"`, `"udp"`, `"icmp"`, `"icmpv6"` |
//! | IPv4 address fields (UINT32) | `"10.1.2.3"`, or `"10.0.0.0/8"` (condition: FWP_V4_ADDR_MASK) |
//! | IPv6 address fields (BYTE_ARRAY16) | `"2001:db8::1"`, or `"2001:db8::/32"` (condition: FWP_V6_ADDR_MASK) |
//! | FLAGS | integer, `"IS_LOOPBACK\|IS_FRAGMENT"`, or an array of flag names |
//! | DIRECTION | `"INBOUND"`, `"OUTBOUND"` or 0/1 |
//! | BYTE_BLOB (ALE_APP_ID) | a string; ALE_APP_ID is lower-cased like FwpmGetAppIdFromFileName0 |
//! | UNICODE_STRING, SID | a string |
//! | TOKEN_INFORMATION (ALE_USER_ID) | condition: an SDDL string; incoming: `{ uid = N, gids = [...] }` or a uid |
//! | BYTE_ARRAY6 | `"aa:bb:cc:dd:ee:ff"` |

use std::net::{Ipv4Addr, Ipv6Addr};
use std::sync::Arc;

use wfp_core::constants::{ConditionFlags, Direction};
use wfp_core::security::{SecurityDescriptor, Token};
use wfp_core::{ConditionValue, DataType, Value};

/// A literal as written in a file.
#[derive(Clone, Debug, PartialEq)]
pub enum Lit {
    /// An integer.
    Int(i128),
    /// A string.
    Str(String),
    /// A boolean.
    Bool(bool),
    /// An array.
    Array(Vec<Self>),
    /// A table (only `{ uid, gids }` tokens use it).
    Table(Vec<(String, Self)>),
}

impl Lit {
    /// From a TOML value.
    pub fn from_toml(v: &toml::Value) -> Self {
        match v {
            toml::Value::Integer(i) => Self::Int(i128::from(*i)),
            toml::Value::String(s) => Self::Str(s.clone()),
            toml::Value::Boolean(b) => Self::Bool(*b),
            toml::Value::Float(f) => Self::Str(f.to_string()),
            toml::Value::Datetime(d) => Self::Str(d.to_string()),
            toml::Value::Array(a) => Self::Array(a.iter().map(Self::from_toml).collect()),
            toml::Value::Table(t) => Self::Table(
                t.iter()
                    .map(|(k, v)| (k.clone(), Self::from_toml(v)))
                    .collect(),
            ),
        }
    }

    fn describe(&self) -> String {
        match self {
            Self::Int(i) => i.to_string(),
            Self::Str(s) => format!("{s:?}"),
            Self::Bool(b) => b.to_string(),
            Self::Array(_) => "an array".into(),
            Self::Table(_) => "a table".into(),
        }
    }
}

fn int(l: &Lit) -> Result<i128, String> {
    match l {
        Lit::Int(i) => Ok(*i),
        Lit::Str(s) => {
            let t = s.trim();
            let parsed = if let Some(h) = t.strip_prefix("0x").or_else(|| t.strip_prefix("0X")) {
                i128::from_str_radix(&h.replace('_', ""), 16)
            } else {
                t.replace('_', "").parse::<i128>()
            };
            parsed.map_err(|_| format!("expected an integer, got {}", l.describe()))
        }
        _ => Err(format!("expected an integer, got {}", l.describe())),
    }
}

fn ranged<T: TryFrom<i128>>(l: &Lit, what: &str) -> Result<T, String> {
    let i = int(l)?;
    T::try_from(i).map_err(|_| format!("{i} does not fit {what}"))
}

fn string(l: &Lit) -> Result<&str, String> {
    match l {
        Lit::Str(s) => Ok(s),
        _ => Err(format!("expected a string, got {}", l.describe())),
    }
}

fn protocol(l: &Lit) -> Result<u8, String> {
    if let Lit::Str(s) = l {
        match s.trim().to_ascii_lowercase().as_str() {
            "tcp" => return Ok(6),
            "udp" => return Ok(17),
            "icmp" => return Ok(1),
            "icmpv6" | "ipv6-icmp" => return Ok(58),
            _ => {}
        }
    }
    ranged(l, "FWP_UINT8")
}

fn flags(l: &Lit) -> Result<u32, String> {
    match l {
        Lit::Array(items) => items.iter().try_fold(0u32, |acc, i| Ok(acc | flags(i)?)),
        Lit::Str(s) if !s.trim().starts_with(|c: char| c.is_ascii_digit()) => {
            s.split('|').try_fold(0u32, |acc, name| {
                ConditionFlags::from_name(name)
                    .map(|f| acc | f.0)
                    .ok_or_else(|| format!("unknown FWP_CONDITION_FLAG {:?}", name.trim()))
            })
        }
        _ => ranged(l, "FWP_UINT32"),
    }
}

/// Whether the field holds an IP address (UINT32 v4 / BYTE_ARRAY16 v6).
fn is_address_field(name: &str) -> bool {
    name.ends_with("_ADDRESS") && !name.starts_with("MAC_") && name != "INTERFACE_MAC_ADDRESS"
}

/// Converts a literal to an incoming value of a field (`field` = FWPS field name, `t` = its type).
pub fn incoming_value(field: &str, t: DataType, l: &Lit) -> Result<Value, String> {
    if matches!(l, Lit::Str(s) if s.eq_ignore_ascii_case("EMPTY") || s.eq_ignore_ascii_case("FWP_EMPTY"))
    {
        return Ok(Value::Empty);
    }
    Ok(match t {
        DataType::Empty => Value::Empty,
        DataType::Uint8 if field == "IP_PROTOCOL" || field == "EMBEDDED_PROTOCOL" => {
            Value::Uint8(protocol(l)?)
        }
        DataType::Uint8 => Value::Uint8(ranged(l, "FWP_UINT8")?),
        DataType::Uint16 => Value::Uint16(ranged(l, "FWP_UINT16")?),
        DataType::Uint32 if field == "FLAGS" => Value::Uint32(flags(l)?),
        DataType::Uint32 if field == "DIRECTION" => Value::Uint32(direction(l)?),
        DataType::Uint32 if is_address_field(field) => Value::Uint32(ipv4(l)?),
        DataType::Uint32 => Value::Uint32(ranged(l, "FWP_UINT32")?),
        DataType::Uint64 => Value::Uint64(ranged(l, "FWP_UINT64")?),
        DataType::Int8 => Value::Int8(ranged(l, "FWP_INT8")?),
        DataType::Int16 => Value::Int16(ranged(l, "FWP_INT16")?),
        DataType::Int32 => Value::Int32(ranged(l, "FWP_INT32")?),
        DataType::Int64 => Value::Int64(ranged(l, "FWP_INT64")?),
        DataType::Float => Value::Float(number(l)? as f32),
        DataType::Double => Value::Double(number(l)?),
        DataType::ByteArray16 => {
            let s = string(l)?;
            Value::ByteArray16(
                s.trim()
                    .parse::<Ipv6Addr>()
                    .map_err(|_| format!("{s:?} is not an IPv6 address"))?
                    .octets(),
            )
        }
        DataType::ByteBlob if field == "ALE_APP_ID" || field == "ALE_ORIGINAL_APP_ID" => {
            Value::blob_from_str(&string(l)?.to_lowercase())
        }
        DataType::ByteBlob => Value::blob_from_str(string(l)?),
        DataType::Sid => Value::Sid(Arc::from(string(l)?.as_bytes())),
        DataType::TokenAccessInformation => {
            Value::TokenAccessInformation(Arc::from(string(l)?.as_bytes()))
        }
        DataType::UnicodeString => Value::UnicodeString(string(l)?.into()),
        DataType::ByteArray6 => Value::ByteArray6(mac(l)?),
        DataType::TokenInformation => Value::TokenInformation(Arc::new(token(l)?)),
        DataType::SecurityDescriptor => Value::SecurityDescriptor(Arc::new(
            SecurityDescriptor::parse(string(l)?).map_err(|e| e.to_string())?,
        )),
        DataType::V4AddrMask | DataType::V6AddrMask | DataType::Range => {
            return Err(format!("{} is not an incoming value type", t.name()))
        }
    })
}

/// A DIRECTION value: `INBOUND` / `OUTBOUND` (with or without `FWP_DIRECTION_`), or a number.
fn direction(l: &Lit) -> Result<u32, String> {
    match l {
        Lit::Str(s)
            if s.eq_ignore_ascii_case("INBOUND")
                || s.eq_ignore_ascii_case("FWP_DIRECTION_INBOUND") =>
        {
            Ok(Direction::Inbound as u32)
        }
        Lit::Str(s)
            if s.eq_ignore_ascii_case("OUTBOUND")
                || s.eq_ignore_ascii_case("FWP_DIRECTION_OUTBOUND") =>
        {
            Ok(Direction::Outbound as u32)
        }
        _ => ranged(l, "FWP_UINT32"),
    }
}

/// An IPv4 address field's value: dotted text or a number (host order).
fn ipv4(l: &Lit) -> Result<u32, String> {
    match l {
        Lit::Str(s) => s
            .trim()
            .parse::<Ipv4Addr>()
            .map(u32::from)
            .map_err(|_| format!("{s:?} is not an IPv4 address")),
        _ => ranged(l, "FWP_UINT32"),
    }
}

/// A FLOAT / DOUBLE value: an integer or a number written as a string.
fn number(l: &Lit) -> Result<f64, String> {
    let s = match l {
        Lit::Int(i) => i.to_string(),
        other => string(other)?.to_string(),
    };
    s.trim()
        .parse()
        .map_err(|_| format!("{s:?} is not a number"))
}

/// A MAC address: six hex bytes separated by `:` or `-`.
fn mac(l: &Lit) -> Result<[u8; 6], String> {
    let s = string(l)?;
    let parts: Vec<&str> = s.split([':', '-']).collect();
    let mut mac = [0u8; 6];
    if parts.len() != 6 {
        return Err(format!("{s:?} is not a MAC address"));
    }
    for (m, p) in mac.iter_mut().zip(parts) {
        *m = u8::from_str_radix(p, 16).map_err(|_| format!("{s:?} is not a MAC address"))?;
    }
    Ok(mac)
}

/// An incoming ALE_USER_ID token: `{ uid = N, gids = [...] }` or a bare uid.
fn token(l: &Lit) -> Result<Token, String> {
    let Lit::Table(entries) = l else {
        return Ok(Token {
            uid: ranged(l, "a uid")?,
            gids: Vec::new(),
        });
    };
    let mut tok = Token::default();
    for (k, v) in entries {
        match (k.as_str(), v) {
            ("uid", _) => tok.uid = ranged(v, "a uid")?,
            ("gids", Lit::Array(a)) => {
                tok.gids = a
                    .iter()
                    .map(|g| ranged(g, "a gid"))
                    .collect::<Result<_, _>>()?;
            }
            ("gids", _) => return Err("gids must be an array".into()),
            (other, _) => return Err(format!("unknown token key {other:?} (uid, gids)")),
        }
    }
    Ok(tok)
}

/// Converts a literal to a condition value for a field of type `t`. Address fields accept CIDR
/// prefixes; token fields take an SDDL security descriptor; `forced` overrides the type (so a file
/// can state `type = "UINT16"` and get FWP_E_TYPE_MISMATCH from the engine, as WFP would).
pub fn condition_value(
    field: &str,
    t: DataType,
    forced: Option<DataType>,
    l: &Lit,
) -> Result<ConditionValue, String> {
    if let Some(ft) = forced {
        return Ok(ConditionValue::Value(incoming_value(field, ft, l)?));
    }
    // Only address fields take a CIDR prefix: other strings (ALE_APP_ID paths) contain '/' too.
    let address = (t == DataType::Uint32 && is_address_field(field)) || t == DataType::ByteArray16;
    if let (Lit::Str(s), true) = (l, address) {
        if let Some((addr, len)) = s.split_once('/') {
            let len: u8 = len
                .trim()
                .parse()
                .map_err(|_| format!("bad prefix length in {s:?}"))?;
            if t == DataType::Uint32 && is_address_field(field) {
                let a: Ipv4Addr = addr
                    .trim()
                    .parse()
                    .map_err(|_| format!("{s:?} is not an IPv4 prefix"))?;
                if len > 32 {
                    return Err(format!("prefix length {len} > 32 in {s:?}"));
                }
                return Ok(ConditionValue::v4_prefix(a, len));
            }
            if t == DataType::ByteArray16 {
                let a: Ipv6Addr = addr
                    .trim()
                    .parse()
                    .map_err(|_| format!("{s:?} is not an IPv6 prefix"))?;
                if len > 128 {
                    return Err(format!("prefix length {len} > 128 in {s:?}"));
                }
                return Ok(ConditionValue::V6AddrMask {
                    addr: a.octets(),
                    prefix_len: len,
                });
            }
        }
    }
    if t == DataType::TokenInformation {
        return incoming_value(field, DataType::SecurityDescriptor, l).map(ConditionValue::Value);
    }
    incoming_value(field, t, l).map(ConditionValue::Value)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_are_not_prefixes() {
        assert_eq!(
            condition_value(
                "ALE_APP_ID",
                DataType::ByteBlob,
                None,
                &Lit::Str("/usr/bin/Python3.11".into())
            )
            .unwrap(),
            ConditionValue::Value(Value::blob_from_str("/usr/bin/python3.11"))
        );
        assert!(condition_value(
            "IP_REMOTE_ADDRESS",
            DataType::Uint32,
            None,
            &Lit::Str("10.0.0.0/8".into())
        )
        .is_ok());
    }

    #[test]
    fn parses_macs_tokens_numbers_and_directions() {
        let v = |field: &str, t: DataType, l: Lit| incoming_value(field, t, &l);
        assert_eq!(
            v(
                "MAC",
                DataType::ByteArray6,
                Lit::Str("00-1a:2B-3c:4d:5e".into())
            ),
            Ok(Value::ByteArray6([0, 0x1a, 0x2b, 0x3c, 0x4d, 0x5e]))
        );
        assert_eq!(
            v("MAC", DataType::ByteArray6, Lit::Str("00:11".into())),
            Err("\"00:11\" is not a MAC address".into())
        );
        let tok = Lit::Table(vec![
            ("uid".into(), Lit::Int(7)),
            ("gids".into(), Lit::Array(vec![Lit::Int(1), Lit::Int(2)])),
        ]);
        assert_eq!(
            v("ALE_USER_ID", DataType::TokenInformation, tok),
            Ok(Value::TokenInformation(Arc::new(Token {
                uid: 7,
                gids: vec![1, 2]
            })))
        );
        assert_eq!(
            v("ALE_USER_ID", DataType::TokenInformation, Lit::Int(3)),
            Ok(Value::TokenInformation(Arc::new(Token {
                uid: 3,
                gids: Vec::new()
            })))
        );
        let bad = Lit::Table(vec![("gids".into(), Lit::Int(1))]);
        assert_eq!(
            v("ALE_USER_ID", DataType::TokenInformation, bad),
            Err("gids must be an array".into())
        );
        let bad = Lit::Table(vec![("x".into(), Lit::Int(1))]);
        assert_eq!(
            v("ALE_USER_ID", DataType::TokenInformation, bad),
            Err("unknown token key \"x\" (uid, gids)".into())
        );
        assert_eq!(
            v("X", DataType::Float, Lit::Str(" 1.5".into())),
            Ok(Value::Float(1.5))
        );
        assert_eq!(
            v("X", DataType::Double, Lit::Int(2)),
            Ok(Value::Double(2.0))
        );
        assert_eq!(
            v(
                "DIRECTION",
                DataType::Uint32,
                Lit::Str("FWP_DIRECTION_OUTBOUND".into())
            ),
            Ok(Value::Uint32(0))
        );
        assert_eq!(
            v("DIRECTION", DataType::Uint32, Lit::Int(1)),
            Ok(Value::Uint32(1))
        );
        assert_eq!(
            v(
                "IP_LOCAL_ADDRESS",
                DataType::Uint32,
                Lit::Str("10.0.0.300".into())
            ),
            Err("\"10.0.0.300\" is not an IPv4 address".into())
        );
    }

    #[test]
    fn parses_values_by_field_type() {
        assert_eq!(
            incoming_value("IP_PROTOCOL", DataType::Uint8, &Lit::Str("tcp".into())).unwrap(),
            Value::Uint8(6)
        );
        assert_eq!(
            incoming_value(
                "IP_REMOTE_ADDRESS",
                DataType::Uint32,
                &Lit::Str("10.1.2.3".into())
            )
            .unwrap(),
            Value::Uint32(0x0A01_0203)
        );
        assert_eq!(
            incoming_value(
                "FLAGS",
                DataType::Uint32,
                &Lit::Str("IS_LOOPBACK|IS_FRAGMENT".into())
            )
            .unwrap(),
            Value::Uint32(0x21)
        );
        assert_eq!(
            incoming_value("DIRECTION", DataType::Uint32, &Lit::Str("inbound".into())).unwrap(),
            Value::Uint32(1)
        );
        assert_eq!(
            incoming_value(
                "ALE_APP_ID",
                DataType::ByteBlob,
                &Lit::Str("/USR/bin/Curl".into())
            )
            .unwrap(),
            Value::blob_from_str("/usr/bin/curl")
        );
        assert!(incoming_value("IP_REMOTE_PORT", DataType::Uint16, &Lit::Int(70000)).is_err());
        assert_eq!(
            condition_value(
                "IP_LOCAL_ADDRESS",
                DataType::Uint32,
                None,
                &Lit::Str("10.0.0.0/8".into())
            )
            .unwrap(),
            ConditionValue::V4AddrMask {
                addr: 0x0A00_0000,
                mask: 0xFF00_0000
            }
        );
        assert_eq!(
            condition_value(
                "IP_PROTOCOL",
                DataType::Uint8,
                Some(DataType::Uint16),
                &Lit::Int(6)
            )
            .unwrap(),
            ConditionValue::Value(Value::Uint16(6))
        );
    }
}
