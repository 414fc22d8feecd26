//! Filter conditions: `FWP_MATCH_TYPE` semantics on every type they are defined for, and the
//! combination rule (wfp-reference §8.5).

use std::sync::Arc;

use crate::catalogue::{self, ConditionId, LayerDef};
use crate::status::FwpError;
use crate::value::{ConditionValue, DataType, Value};

/// `FWP_MATCH_TYPE`, in WFP's order and with WFP's values.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
#[repr(u32)]
pub enum MatchType {
    /// FWP_MATCH_EQUAL.
    Equal = 0,
    /// FWP_MATCH_GREATER.
    Greater = 1,
    /// FWP_MATCH_LESS.
    Less = 2,
    /// FWP_MATCH_GREATER_OR_EQUAL.
    GreaterOrEqual = 3,
    /// FWP_MATCH_LESS_OR_EQUAL.
    LessOrEqual = 4,
    /// FWP_MATCH_RANGE (inclusive bounds).
    Range = 5,
    /// FWP_MATCH_FLAGS_ALL_SET: `(v & c) == c`.
    FlagsAllSet = 6,
    /// FWP_MATCH_FLAGS_ANY_SET: `(v & c) != 0`.
    FlagsAnySet = 7,
    /// FWP_MATCH_FLAGS_NONE_SET: `(v & c) == 0`.
    FlagsNoneSet = 8,
    /// FWP_MATCH_EQUAL_CASE_INSENSITIVE (strings).
    EqualCaseInsensitive = 9,
    /// FWP_MATCH_NOT_EQUAL.
    NotEqual = 10,
    /// FWP_MATCH_PREFIX — documented, and implemented, as an *ends-with* test (brief decision 7).
    Prefix = 11,
    /// FWP_MATCH_NOT_PREFIX — the negation of [`MatchType::Prefix`].
    NotPrefix = 12,
}

impl MatchType {
    /// All match types, in WFP order.
    pub const ALL: [Self; 13] = [
        Self::Equal,
        Self::Greater,
        Self::Less,
        Self::GreaterOrEqual,
        Self::LessOrEqual,
        Self::Range,
        Self::FlagsAllSet,
        Self::FlagsAnySet,
        Self::FlagsNoneSet,
        Self::EqualCaseInsensitive,
        Self::NotEqual,
        Self::Prefix,
        Self::NotPrefix,
    ];

    /// WFP name without the `FWP_MATCH_` prefix.
    pub fn name(self) -> &'static str {
        match self {
            Self::Equal => "EQUAL",
            Self::Greater => "GREATER",
            Self::Less => "LESS",
            Self::GreaterOrEqual => "GREATER_OR_EQUAL",
            Self::LessOrEqual => "LESS_OR_EQUAL",
            Self::Range => "RANGE",
            Self::FlagsAllSet => "FLAGS_ALL_SET",
            Self::FlagsAnySet => "FLAGS_ANY_SET",
            Self::FlagsNoneSet => "FLAGS_NONE_SET",
            Self::EqualCaseInsensitive => "EQUAL_CASE_INSENSITIVE",
            Self::NotEqual => "NOT_EQUAL",
            Self::Prefix => "PREFIX",
            Self::NotPrefix => "NOT_PREFIX",
        }
    }

    /// Parses `EQUAL` / `FWP_MATCH_EQUAL` (case-insensitive).
    pub fn from_name(name: &str) -> Option<Self> {
        let upper = name.trim().to_ascii_uppercase();
        let bare = upper.strip_prefix("FWP_MATCH_").unwrap_or(&upper);
        Self::ALL.into_iter().find(|m| m.name() == bare)
    }

    /// Whether this match type is defined for values of `t` (the field's type).
    pub fn is_defined_for(self, t: DataType) -> bool {
        match self {
            Self::Equal => true,
            Self::NotEqual => t.is_sortable() || matches!(t, DataType::TokenInformation),
            Self::Greater | Self::Less | Self::GreaterOrEqual | Self::LessOrEqual | Self::Range => {
                t.is_sortable()
            }
            Self::FlagsAllSet | Self::FlagsAnySet | Self::FlagsNoneSet => t.is_unsigned(),
            Self::EqualCaseInsensitive => t == DataType::UnicodeString,
            Self::Prefix | Self::NotPrefix => {
                matches!(t, DataType::ByteBlob | DataType::UnicodeString)
            }
        }
    }
}

/// A condition as given to the management API (`FWPM_FILTER_CONDITION0`), field named by condition id.
#[derive(Clone, Debug, PartialEq)]
pub struct ConditionSpec {
    /// The condition (`fieldKey`).
    pub field: ConditionId,
    /// `matchType`.
    pub match_type: MatchType,
    /// `conditionValue`.
    pub value: ConditionValue,
}

/// A validated condition bound to a field index of its layer.
#[derive(Clone, Debug, PartialEq)]
pub struct Condition {
    /// Index into the layer's incoming values (`FWPS_FILTER_CONDITION0.fieldId`).
    pub field_index: u16,
    /// The condition id (for display).
    pub field: ConditionId,
    /// The match type.
    pub match_type: MatchType,
    /// The value.
    pub value: ConditionValue,
}

impl Condition {
    /// Validates `spec` against `layer` (§8.5): the field must exist there, the value's type must fit
    /// the field's type (no implicit conversion), and the match type must be defined for it.
    pub fn bind(layer: &LayerDef, spec: &ConditionSpec) -> Result<Self, FwpError> {
        // Built only for an error (issue 15, B2: one allocation per condition of every add).
        let field_name = || {
            catalogue::condition(spec.field)
                .map_or("?", |c| c.name)
                .to_string()
        };
        let index = layer
            .field_index(spec.field)
            .ok_or_else(|| FwpError::ConditionNotFound {
                field: field_name(),
                layer: layer.name.to_string(),
            })?;
        let field_type = layer.fields[index].data_type;
        let mt = spec.match_type;
        let mismatch = |got: DataType| FwpError::TypeMismatch {
            field: field_name(),
            expected: field_type.name(),
            got: got.name(),
        };
        let match_mismatch = |t: DataType| FwpError::MatchTypeMismatch {
            field: field_name(),
            match_type: mt.name(),
            data_type: t.name(),
        };
        match &spec.value {
            ConditionValue::Value(Value::Empty) => {
                // An FWP_EMPTY condition value catches FWP_EMPTY incoming values (reauthorization).
                if !matches!(mt, MatchType::Equal | MatchType::NotEqual) {
                    return Err(match_mismatch(DataType::Empty));
                }
            }
            ConditionValue::Value(Value::SecurityDescriptor(_)) => {
                if field_type != DataType::TokenInformation {
                    return Err(mismatch(DataType::SecurityDescriptor));
                }
                if !matches!(mt, MatchType::Equal | MatchType::NotEqual) {
                    return Err(match_mismatch(DataType::SecurityDescriptor));
                }
            }
            ConditionValue::Value(v) => {
                if v.data_type() != field_type {
                    return Err(mismatch(v.data_type()));
                }
                if mt == MatchType::Range || !mt.is_defined_for(field_type) {
                    return Err(match_mismatch(field_type));
                }
            }
            ConditionValue::V4AddrMask { .. } => {
                if field_type != DataType::Uint32 {
                    return Err(mismatch(DataType::V4AddrMask));
                }
                if !matches!(mt, MatchType::Equal | MatchType::NotEqual) {
                    return Err(match_mismatch(DataType::V4AddrMask));
                }
            }
            ConditionValue::V6AddrMask { prefix_len, .. } => {
                if field_type != DataType::ByteArray16 {
                    return Err(mismatch(DataType::V6AddrMask));
                }
                if *prefix_len > 128 {
                    return Err(FwpError::InvalidParameter(format!(
                        "{}: IPv6 prefix length {prefix_len} > 128",
                        field_name()
                    )));
                }
                if !matches!(mt, MatchType::Equal | MatchType::NotEqual) {
                    return Err(match_mismatch(DataType::V6AddrMask));
                }
            }
            ConditionValue::Range(lo, hi) => {
                if mt != MatchType::Range {
                    return Err(match_mismatch(DataType::Range));
                }
                for b in [lo, hi] {
                    if b.data_type() != field_type {
                        return Err(mismatch(b.data_type()));
                    }
                }
                if !field_type.is_sortable() {
                    return Err(match_mismatch(field_type));
                }
                if lo.compare(hi) == Some(std::cmp::Ordering::Greater) {
                    return Err(FwpError::InvalidRange(field_name()));
                }
            }
        }
        if mt == MatchType::Range && !matches!(spec.value, ConditionValue::Range(..)) {
            return Err(match_mismatch(spec.value.data_type()));
        }
        Ok(Self {
            field_index: u16::try_from(index).unwrap_or(u16::MAX),
            field: spec.field,
            match_type: mt,
            value: spec.value.clone(),
        })
    }

    /// Tests one incoming value (`incoming OP condition`).
    pub fn matches_value(&self, incoming: &Value) -> bool {
        matches(self.match_type, incoming, &self.value)
    }
}

/// `incoming OP condition` for one condition (§8.5). Values of a different type never match
/// (the only cross-type rules are the address masks and token-vs-descriptor access checks).
pub fn matches(mt: MatchType, incoming: &Value, cond: &ConditionValue) -> bool {
    use std::cmp::Ordering as O;
    match cond {
        ConditionValue::V4AddrMask { addr, mask } => {
            let hit = matches!(incoming, Value::Uint32(v) if v & mask == addr & mask);
            match mt {
                MatchType::NotEqual => matches!(incoming, Value::Uint32(_)) && !hit,
                _ => hit,
            }
        }
        ConditionValue::V6AddrMask { addr, prefix_len } => {
            let hit = matches!(incoming, Value::ByteArray16(v) if prefix_eq(v, addr, *prefix_len));
            match mt {
                MatchType::NotEqual => matches!(incoming, Value::ByteArray16(_)) && !hit,
                _ => hit,
            }
        }
        ConditionValue::Range(lo, hi) => {
            mt == MatchType::Range
                && matches!(incoming.compare(lo), Some(O::Greater | O::Equal))
                && matches!(incoming.compare(hi), Some(O::Less | O::Equal))
        }
        ConditionValue::Value(Value::SecurityDescriptor(sd)) => match incoming {
            Value::TokenInformation(t) => match mt {
                MatchType::Equal => sd.grants(t),
                MatchType::NotEqual => !sd.grants(t),
                _ => false,
            },
            _ => false,
        },
        ConditionValue::Value(c) => match mt {
            MatchType::Equal => incoming.compare(c) == Some(O::Equal),
            MatchType::NotEqual => matches!(incoming.compare(c), Some(O::Less | O::Greater)),
            MatchType::Greater => incoming.compare(c) == Some(O::Greater),
            MatchType::Less => incoming.compare(c) == Some(O::Less),
            MatchType::GreaterOrEqual => matches!(incoming.compare(c), Some(O::Greater | O::Equal)),
            MatchType::LessOrEqual => matches!(incoming.compare(c), Some(O::Less | O::Equal)),
            MatchType::Range => false,
            MatchType::FlagsAllSet | MatchType::FlagsAnySet | MatchType::FlagsNoneSet => {
                if incoming.data_type() != c.data_type() {
                    return false;
                }
                match (incoming.as_u64(), c.as_u64()) {
                    (Some(v), Some(f)) => match mt {
                        MatchType::FlagsAllSet => v & f == f,
                        MatchType::FlagsAnySet => v & f != 0,
                        _ => v & f == 0,
                    },
                    _ => false,
                }
            }
            MatchType::EqualCaseInsensitive => match (incoming, c) {
                (Value::UnicodeString(a), Value::UnicodeString(b)) => {
                    a.to_lowercase() == b.to_lowercase()
                }
                _ => false,
            },
            MatchType::Prefix | MatchType::NotPrefix => {
                let ends = match (incoming, c) {
                    (Value::ByteBlob(a), Value::ByteBlob(b)) => Some(a.ends_with(b)),
                    (Value::UnicodeString(a), Value::UnicodeString(b)) => Some(a.ends_with(&**b)),
                    _ => None,
                };
                match ends {
                    Some(e) => e == (mt == MatchType::Prefix),
                    None => false,
                }
            }
        },
    }
}

fn prefix_eq(a: &[u8; 16], b: &[u8; 16], len: u8) -> bool {
    let len = usize::from(len.min(128));
    let full = len / 8;
    if a[..full] != b[..full] {
        return false;
    }
    let rem = len % 8;
    if rem == 0 {
        return true;
    }
    let mask = 0xFFu8 << (8 - rem);
    a[full] & mask == b[full] & mask
}

/// A filter's conditions compiled for evaluation: AND over groups, OR inside a group. A group is a
/// run of *consecutive* conditions on the same field (§8.5, Windows 7+ semantics).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ConditionSet {
    conditions: Arc<[Condition]>,
    /// Start index of each group in `conditions`.
    groups: Arc<[u16]>,
}

impl ConditionSet {
    /// Groups validated conditions.
    pub fn new(conditions: Vec<Condition>) -> Self {
        let starts = conditions.iter().enumerate().filter_map(|(i, c)| {
            let first = i == 0 || conditions[i - 1].field_index != c.field_index;
            first.then(|| u16::try_from(i).unwrap_or(u16::MAX))
        });
        // Straight into the shared slice when few (issue 15, B2: a growing vector, then its
        // copy, for every added filter).
        let mut few = [0u16; 16];
        let mut n = 0usize;
        let mut more = false;
        for g in starts.clone() {
            match few.get_mut(n) {
                Some(slot) => {
                    *slot = g;
                    n += 1;
                }
                None => {
                    more = true;
                    break;
                }
            }
        }
        let groups: Arc<[u16]> = if more {
            starts.collect()
        } else {
            Arc::from(few.get(..n).unwrap_or(&[]))
        };
        Self {
            conditions: conditions.into(),
            groups,
        }
    }

    /// The conditions in their original order.
    pub fn conditions(&self) -> &[Condition] {
        &self.conditions
    }

    /// True when some field has more than one condition (FWPS_FILTER_FLAG_OR_CONDITIONS).
    pub fn has_or_groups(&self) -> bool {
        self.groups.len() < self.conditions.len()
    }

    /// Evaluates against a layer's incoming values. Zero conditions match everything; a missing
    /// incoming value counts as FWP_EMPTY.
    pub fn matches(&self, values: &[Value]) -> bool {
        self.matches_groups(values, u16::MAX)
    }

    /// [`ConditionSet::matches`] restricted to the groups whose bit is set in `groups` (group `i`
    /// for `i < 15`; groups from 15 on are always checked): what the filter index confirms after
    /// its boxes have matched the other groups exactly (issue 15, fallback path).
    pub(crate) fn matches_groups(&self, values: &[Value], groups: u16) -> bool {
        let n = self.conditions.len();
        for (gi, &start) in self.groups.iter().enumerate() {
            if gi < 15 && groups & (1 << gi) == 0 {
                continue;
            }
            let end = self.groups.get(gi + 1).map_or(n, |&e| usize::from(e));
            let group = &self.conditions[usize::from(start)..end];
            let hit = group.iter().any(|c| {
                let v = values
                    .get(usize::from(c.field_index))
                    .unwrap_or(&Value::Empty);
                c.matches_value(v)
            });
            if !hit {
                return false;
            }
        }
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::catalogue::{condition_by_name, layer_by_name};

    fn bind(
        layer: &str,
        field: &str,
        mt: MatchType,
        value: ConditionValue,
    ) -> Result<Condition, FwpError> {
        let l = layer_by_name(layer).unwrap();
        Condition::bind(
            l,
            &ConditionSpec {
                field: condition_by_name(field).unwrap(),
                match_type: mt,
                value,
            },
        )
    }

    fn values_for(layer: &str, pairs: &[(&str, Value)]) -> Vec<Value> {
        let l = layer_by_name(layer).unwrap();
        let mut v = vec![Value::Empty; l.fields.len()];
        for (f, val) in pairs {
            v[l.field_index_by_name(f).unwrap()] = val.clone();
        }
        v
    }

    const T: &str = "INBOUND_TRANSPORT_V4";

    #[test]
    fn t_c_1_different_fields_are_anded() {
        let set = ConditionSet::new(vec![
            bind(
                T,
                "IP_REMOTE_PORT",
                MatchType::Equal,
                Value::Uint16(80).into(),
            )
            .unwrap(),
            bind(T, "IP_PROTOCOL", MatchType::Equal, Value::Uint8(6).into()).unwrap(),
        ]);
        assert!(set.matches(&values_for(
            T,
            &[
                ("IP_REMOTE_PORT", Value::Uint16(80)),
                ("IP_PROTOCOL", Value::Uint8(6))
            ]
        )));
        assert!(!set.matches(&values_for(
            T,
            &[
                ("IP_REMOTE_PORT", Value::Uint16(80)),
                ("IP_PROTOCOL", Value::Uint8(17))
            ]
        )));
    }

    #[test]
    fn t_c_2_consecutive_same_field_conditions_are_ored() {
        let set = ConditionSet::new(vec![
            bind(
                T,
                "IP_REMOTE_PORT",
                MatchType::Equal,
                Value::Uint16(80).into(),
            )
            .unwrap(),
            bind(
                T,
                "IP_REMOTE_PORT",
                MatchType::Equal,
                Value::Uint16(443).into(),
            )
            .unwrap(),
            bind(T, "IP_PROTOCOL", MatchType::Equal, Value::Uint8(6).into()).unwrap(),
        ]);
        assert!(set.has_or_groups());
        let case = |port, proto| {
            values_for(
                T,
                &[
                    ("IP_REMOTE_PORT", Value::Uint16(port)),
                    ("IP_PROTOCOL", Value::Uint8(proto)),
                ],
            )
        };
        assert!(set.matches(&case(443, 6)));
        assert!(!set.matches(&case(22, 6)));
        assert!(!set.matches(&case(443, 17)));
    }

    #[test]
    fn t_c_3_v4_addr_mask_matches_host_order_address() {
        let c = bind(
            T,
            "IP_LOCAL_ADDRESS",
            MatchType::Equal,
            ConditionValue::V4AddrMask {
                addr: 0x0A00_0000,
                mask: 0xFF00_0000,
            },
        )
        .unwrap();
        assert!(c.matches_value(&Value::Uint32(0x0A01_0203)));
        assert!(!c.matches_value(&Value::Uint32(0x0B01_0203)));
    }

    #[test]
    fn t_c_4_flags_all_set_and_none_set() {
        let all = bind(
            T,
            "FLAGS",
            MatchType::FlagsAllSet,
            Value::Uint32(0x1).into(),
        )
        .unwrap();
        let none = bind(
            T,
            "FLAGS",
            MatchType::FlagsNoneSet,
            Value::Uint32(0x1).into(),
        )
        .unwrap();
        assert!(all.matches_value(&Value::Uint32(0x5)));
        assert!(!none.matches_value(&Value::Uint32(0x5)));
        let any = bind(
            T,
            "FLAGS",
            MatchType::FlagsAnySet,
            Value::Uint32(0x6).into(),
        )
        .unwrap();
        assert!(any.matches_value(&Value::Uint32(0x5)));
        assert!(!any.matches_value(&Value::Uint32(0x1)));
    }

    #[test]
    fn t_c_5_range_is_inclusive() {
        let c = bind(
            T,
            "IP_REMOTE_PORT",
            MatchType::Range,
            ConditionValue::Range(Value::Uint16(1000), Value::Uint16(2000)),
        )
        .unwrap();
        assert!(c.matches_value(&Value::Uint16(1000)));
        assert!(c.matches_value(&Value::Uint16(2000)));
        assert!(!c.matches_value(&Value::Uint16(2001)));
        assert!(!c.matches_value(&Value::Uint16(999)));
    }

    #[test]
    fn t_c_6_no_implicit_conversion_at_add() {
        let e = bind(T, "IP_PROTOCOL", MatchType::Equal, Value::Uint16(6).into()).unwrap_err();
        assert_eq!(e.code(), 0x8032_0027, "{e}");
    }

    #[test]
    fn t_c_7_zero_conditions_match_everything() {
        assert!(ConditionSet::new(vec![]).matches(&values_for(T, &[])));
    }

    #[test]
    fn t_c_8_empty_condition_catches_empty_incoming() {
        let c = bind(
            "ALE_AUTH_RECV_ACCEPT_V4",
            "IP_ARRIVAL_INTERFACE",
            MatchType::Equal,
            Value::Empty.into(),
        )
        .unwrap();
        assert!(c.matches_value(&Value::Empty));
        assert!(!c.matches_value(&Value::Uint64(7)));
    }

    #[test]
    fn t_c_9_prefix_is_an_ends_with_test() {
        let c = bind(
            "ALE_AUTH_CONNECT_V4",
            "ALE_APP_ID",
            MatchType::Prefix,
            Value::blob_from_str("chrome.exe").into(),
        )
        .unwrap();
        assert!(c.matches_value(&Value::blob_from_str(
            "\\device\\harddiskvolume1\\program files\\chrome.exe"
        )));
        assert!(!c.matches_value(&Value::blob_from_str("chrome.exe\\other")));
        let n = bind(
            "ALE_AUTH_CONNECT_V4",
            "ALE_APP_ID",
            MatchType::NotPrefix,
            Value::blob_from_str("chrome.exe").into(),
        )
        .unwrap();
        assert!(n.matches_value(&Value::blob_from_str("/usr/bin/curl")));
    }

    #[test]
    fn match_types_are_rejected_on_types_they_are_not_defined_for() {
        let e = bind(
            T,
            "IP_REMOTE_PORT",
            MatchType::Prefix,
            Value::Uint16(1).into(),
        )
        .unwrap_err();
        assert_eq!(e.code_name(), "MATCH_TYPE_MISMATCH");
        let e = bind(
            T,
            "IP_REMOTE_PORT",
            MatchType::Range,
            Value::Uint16(1).into(),
        )
        .unwrap_err();
        assert_eq!(e.code_name(), "MATCH_TYPE_MISMATCH");
        let e = bind(
            T,
            "IP_REMOTE_PORT",
            MatchType::Equal,
            ConditionValue::Range(Value::Uint16(1), Value::Uint16(2)),
        )
        .unwrap_err();
        assert_eq!(e.code_name(), "MATCH_TYPE_MISMATCH");
        let e = bind(T, "ALE_APP_ID", MatchType::Equal, Value::Uint16(1).into()).unwrap_err();
        assert_eq!(e.code_name(), "CONDITION_NOT_FOUND");
        let e = bind(
            T,
            "IP_REMOTE_PORT",
            MatchType::Range,
            ConditionValue::Range(Value::Uint16(9), Value::Uint16(2)),
        )
        .unwrap_err();
        assert_eq!(e.code_name(), "INVALID_RANGE");
    }

    #[test]
    fn ordering_and_v6_prefixes() {
        let g = bind(
            T,
            "IP_REMOTE_PORT",
            MatchType::Greater,
            Value::Uint16(1023).into(),
        )
        .unwrap();
        assert!(g.matches_value(&Value::Uint16(1024)) && !g.matches_value(&Value::Uint16(1023)));
        let le = bind(
            T,
            "IP_REMOTE_PORT",
            MatchType::LessOrEqual,
            Value::Uint16(1023).into(),
        )
        .unwrap();
        assert!(le.matches_value(&Value::Uint16(1023)) && !le.matches_value(&Value::Uint16(1024)));
        let ne = bind(
            T,
            "IP_REMOTE_PORT",
            MatchType::NotEqual,
            Value::Uint16(22).into(),
        )
        .unwrap();
        assert!(
            ne.matches_value(&Value::Uint16(23))
                && !ne.matches_value(&Value::Uint16(22))
                && !ne.matches_value(&Value::Empty)
        );
        let v6 = bind(
            "INBOUND_TRANSPORT_V6",
            "IP_REMOTE_ADDRESS",
            MatchType::Equal,
            ConditionValue::V6AddrMask {
                addr: "2001:db8::".parse::<std::net::Ipv6Addr>().unwrap().octets(),
                prefix_len: 33,
            },
        )
        .unwrap();
        assert!(v6.matches_value(&Value::ipv6("2001:db8:7fff::1".parse().unwrap())));
        assert!(!v6.matches_value(&Value::ipv6("2001:db8:8000::1".parse().unwrap())));
    }

    #[test]
    fn case_insensitive_strings_and_tokens() {
        let c = bind(
            "ALE_AUTH_CONNECT_V4",
            "ALE_EFFECTIVE_NAME",
            MatchType::EqualCaseInsensitive,
            Value::UnicodeString("Example.COM".into()).into(),
        )
        .unwrap();
        assert!(c.matches_value(&Value::UnicodeString("example.com".into())));
        let sd = crate::security::SecurityDescriptor::parse("D:(A;;CC;;;S-1-22-1-1000)").unwrap();
        let u = bind(
            "ALE_AUTH_CONNECT_V4",
            "ALE_USER_ID",
            MatchType::Equal,
            Value::SecurityDescriptor(Arc::new(sd)).into(),
        )
        .unwrap();
        let tok =
            |uid| Value::TokenInformation(Arc::new(crate::security::Token { uid, gids: vec![] }));
        assert!(u.matches_value(&tok(1000)));
        assert!(!u.matches_value(&tok(0)));
    }
}
