//! Management objects as given to the engine (`FWPM_PROVIDER0`, `FWPM_SUBLAYER0`, `FWPM_CALLOUT0`,
//! `FWPM_FILTER0`) and the run-time filter a callout sees (`FWPS_FILTER0..3`) — wfp-reference §2.4,
//! §7.2, §11.4. Specs are plain data; the engine validates them at add and turns a [`FilterSpec`]
//! into an immutable [`RtFilter`].

use std::sync::Arc;

use crate::catalogue::LayerId;
use crate::condition::{Condition, ConditionSet, ConditionSpec, MatchType};
use crate::constants::{weight, ActionType, FilterFlags, RtFilterFlags};
use crate::guid::Guid;
use crate::provider_context::ProviderContext;
use crate::status::FwpError;
use crate::value::{ConditionValue, Value};

/// A run-time filter id (`FWPS_FILTER0.filterId`, a LUID assigned in add order starting at 1).
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Debug)]
pub struct FilterId(pub u64);

/// A run-time callout id (`FWPS_ACTION0.calloutId`, returned by registration).
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Debug)]
pub struct CalloutId(pub u32);

/// `FWPM_PROVIDER_FLAG_PERSISTENT`.
pub const PROVIDER_FLAG_PERSISTENT: u32 = 0x1;
/// `FWPM_SUBLAYER_FLAG_PERSISTENT`.
pub const SUBLAYER_FLAG_PERSISTENT: u32 = 0x1;
/// `FWPM_CALLOUT_FLAG_PERSISTENT`.
pub const CALLOUT_FLAG_PERSISTENT: u32 = 0x0001_0000;
/// `FWPM_CALLOUT_FLAG_USES_PROVIDER_CONTEXT`.
pub const CALLOUT_FLAG_USES_PROVIDER_CONTEXT: u32 = 0x0002_0000;
/// `FWPM_CALLOUT_FLAG_REGISTERED` (output only).
pub const CALLOUT_FLAG_REGISTERED: u32 = 0x0004_0000;

/// `FWPM_PROVIDER0`.
#[derive(Clone, Debug, PartialEq, Default)]
pub struct ProviderSpec {
    /// `providerKey` (NULL → generated).
    pub key: Guid,
    /// `displayData.name` (required).
    pub name: String,
    /// `displayData.description`.
    pub description: String,
    /// `FWPM_PROVIDER_FLAG_*`.
    pub flags: u32,
    /// `serviceName`.
    pub service_name: Option<String>,
}

/// `FWPM_SUBLAYER0`.
#[derive(Clone, Debug, PartialEq, Default)]
pub struct SublayerSpec {
    /// `subLayerKey` (NULL → generated).
    pub key: Guid,
    /// `displayData.name` (required).
    pub name: String,
    /// `displayData.description`.
    pub description: String,
    /// `FWPM_SUBLAYER_FLAG_*`.
    pub flags: u32,
    /// `providerKey`.
    pub provider: Option<Guid>,
    /// `weight` (UINT16; higher is evaluated first).
    pub weight: u16,
}

/// `FWPM_CALLOUT0`: the management object a filter references (the run-time functions are
/// registered separately, under the same key).
#[derive(Clone, Debug, PartialEq)]
pub struct CalloutSpec {
    /// `calloutKey` (NULL → generated).
    pub key: Guid,
    /// `displayData.name` (required).
    pub name: String,
    /// `displayData.description`.
    pub description: String,
    /// `FWPM_CALLOUT_FLAG_*`.
    pub flags: u32,
    /// `providerKey`.
    pub provider: Option<Guid>,
    /// `applicableLayer`: only filters at this layer may invoke the callout.
    pub applicable_layer: LayerId,
}

/// `FWPM_FILTER0.weight`: the three input forms (§7.2).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum WeightSpec {
    /// FWP_EMPTY: the engine generates a weight in [0, 2^60) from the conditions.
    #[default]
    Auto,
    /// FWP_UINT8 0..=15: the weight range (top four bits); the low 60 bits are generated.
    Range(u8),
    /// FWP_UINT64: used unchanged.
    Exact(u64),
}

/// `FWPM_FILTER0`.
#[derive(Clone, Debug, PartialEq)]
pub struct FilterSpec {
    /// `filterKey` (NULL → generated).
    pub key: Guid,
    /// `displayData.name` (required).
    pub name: String,
    /// `displayData.description`.
    pub description: String,
    /// `FWPM_FILTER_FLAG_*`.
    pub flags: FilterFlags,
    /// `providerKey`.
    pub provider: Option<Guid>,
    /// `layerKey` as a run-time id.
    pub layer: LayerId,
    /// `subLayerKey` (NULL → the layer's default sublayer, FWPM_SUBLAYER_UNIVERSAL).
    pub sublayer: Guid,
    /// `weight`.
    pub weight: WeightSpec,
    /// `filterCondition`.
    pub conditions: Vec<ConditionSpec>,
    /// `action.type`.
    pub action: ActionType,
    /// `action.calloutKey` (callout action types only).
    pub callout: Option<Guid>,
    /// `rawContext` (zero with HAS_PROVIDER_CONTEXT: the union holds the key instead).
    pub raw_context: u64,
    /// `providerContextKey`: required with `FWPM_FILTER_FLAG_HAS_PROVIDER_CONTEXT`, refused
    /// without it (§11.4).
    pub provider_context: Option<Guid>,
}

impl FilterSpec {
    /// A filter with no conditions and an automatic weight in the default sublayer.
    pub fn new(name: impl Into<String>, layer: LayerId, action: ActionType) -> Self {
        Self {
            key: Guid::NULL,
            name: name.into(),
            description: String::new(),
            flags: FilterFlags::NONE,
            provider: None,
            layer,
            sublayer: Guid::NULL,
            weight: WeightSpec::Auto,
            conditions: Vec::new(),
            action,
            callout: None,
            raw_context: 0,
            provider_context: None,
        }
    }
}

/// The run-time filter (`FWPS_FILTER0..3`): immutable once added, except `context`, which a callout
/// may set in its ADD_FILTER notification.
#[derive(Clone, Debug)]
pub struct RtFilter {
    pub(crate) filter_id: FilterId,
    pub(crate) key: Guid,
    pub(crate) name: Arc<str>,
    pub(crate) layer: LayerId,
    pub(crate) sublayer: Guid,
    pub(crate) sublayer_weight: u16,
    pub(crate) weight: u64,
    pub(crate) flags: RtFilterFlags,
    pub(crate) mgmt_flags: FilterFlags,
    pub(crate) conditions: ConditionSet,
    pub(crate) action: ActionType,
    pub(crate) callout_id: Option<CalloutId>,
    pub(crate) callout_key: Option<Guid>,
    pub(crate) provider: Option<Guid>,
    /// The provider context the filter references (HAS_PROVIDER_CONTEXT).
    pub(crate) provider_context_key: Option<Guid>,
    /// The provider context delivered to the callout (`FWPS_FILTER3.providerContext`): set when
    /// the filter references one and its callout has FWPM_CALLOUT_FLAG_USES_PROVIDER_CONTEXT.
    pub(crate) provider_context: Option<Arc<ProviderContext>>,
    /// `context`: the filter's `rawContext` (or its provider context's LUID, §11.4), or what the
    /// callout stored at ADD_FILTER.
    pub context: u64,
}

impl RtFilter {
    /// `filterId`.
    pub fn filter_id(&self) -> FilterId {
        self.filter_id
    }
    /// The management key.
    pub fn key(&self) -> Guid {
        self.key
    }
    /// The display name.
    pub fn name(&self) -> &str {
        &self.name
    }
    /// The layer.
    pub fn layer(&self) -> LayerId {
        self.layer
    }
    /// The sublayer key.
    pub fn sublayer(&self) -> Guid {
        self.sublayer
    }
    /// `subLayerWeight`.
    pub fn sublayer_weight(&self) -> u16 {
        self.sublayer_weight
    }
    /// The effective weight (`weight`, FWP_UINT64).
    pub fn weight(&self) -> u64 {
        self.weight
    }
    /// `flags` (FWPS_FILTER_FLAG_*).
    pub fn flags(&self) -> RtFilterFlags {
        self.flags
    }
    /// The management flags the filter was added with.
    pub fn mgmt_flags(&self) -> FilterFlags {
        self.mgmt_flags
    }
    /// True for a boot-time filter (§11.3 FWPM_FILTER_FLAG_BOOTTIME): kept by the engine but
    /// never classified by it.
    pub fn is_boottime(&self) -> bool {
        self.mgmt_flags.contains(FilterFlags::BOOTTIME)
    }
    /// The conditions.
    pub fn conditions(&self) -> &ConditionSet {
        &self.conditions
    }
    /// `action.type`.
    pub fn action(&self) -> ActionType {
        self.action
    }
    /// `action.calloutId`.
    pub fn callout_id(&self) -> Option<CalloutId> {
        self.callout_id
    }
    /// The referenced callout's key.
    pub fn callout_key(&self) -> Option<Guid> {
        self.callout_key
    }
    /// The provider.
    pub fn provider(&self) -> Option<Guid> {
        self.provider
    }
    /// The key of the provider context the filter references (HAS_PROVIDER_CONTEXT).
    pub fn provider_context_key(&self) -> Option<Guid> {
        self.provider_context_key
    }
    /// `providerContext` (§11.4): the whole provider context, present only when the filter
    /// references one and its callout was added with FWPM_CALLOUT_FLAG_USES_PROVIDER_CONTEXT.
    pub fn provider_context(&self) -> Option<&Arc<ProviderContext>> {
        self.provider_context.as_ref()
    }
}

/// Validates the filter flags at add (§11.4): PERSISTENT and BOOTTIME are exclusive, DISABLED is
/// output-only, PERMIT_IF_CALLOUT_UNREGISTERED needs a TERMINATING or UNKNOWN callout action.
pub(crate) fn check_flags(flags: FilterFlags, action: ActionType) -> Result<(), FwpError> {
    let known = FilterFlags::NAMED.iter().fold(0, |a, (_, f)| a | f.0);
    if flags.0 & !known != 0 {
        return Err(FwpError::InvalidFlags(format!(
            "unknown filter flag bits {:#x}",
            flags.0 & !known
        )));
    }
    if flags.contains(FilterFlags::PERSISTENT | FilterFlags::BOOTTIME) {
        return Err(FwpError::InvalidFlags(
            "PERSISTENT and BOOTTIME are mutually exclusive".into(),
        ));
    }
    if flags.contains(FilterFlags::DISABLED) {
        return Err(FwpError::InvalidFlags(
            "DISABLED is an output-only flag".into(),
        ));
    }
    if flags.contains(FilterFlags::PERMIT_IF_CALLOUT_UNREGISTERED)
        && action != ActionType::CALLOUT_TERMINATING
        && action != ActionType::CALLOUT_UNKNOWN
    {
        return Err(FwpError::InvalidFlags(
            "PERMIT_IF_CALLOUT_UNREGISTERED needs action CALLOUT_TERMINATING or CALLOUT_UNKNOWN"
                .into(),
        ));
    }
    Ok(())
}

/// Validates `action.type` (§11.4: BLOCK, PERMIT and the three callout types).
pub(crate) fn check_action(action: ActionType) -> Result<(), FwpError> {
    match action {
        ActionType::BLOCK
        | ActionType::PERMIT
        | ActionType::CALLOUT_TERMINATING
        | ActionType::CALLOUT_INSPECTION
        | ActionType::CALLOUT_UNKNOWN => Ok(()),
        other => Err(FwpError::InvalidActionType(other.0)),
    }
}

/// The effective weight (§7.2): UINT64 unchanged; UINT8 `w` (≤ 15) → `(w << 60) | auto`; EMPTY → auto.
pub fn effective_weight(spec: WeightSpec, conditions: &[Condition]) -> Result<u64, FwpError> {
    match spec {
        WeightSpec::Exact(w) => Ok(w),
        WeightSpec::Auto => Ok(auto_weight(conditions)),
        WeightSpec::Range(r) if u64::from(r) <= weight::WEIGHT_RANGE_MAX => {
            Ok((u64::from(r) << weight::AUTO_WEIGHT_BITS) | auto_weight(conditions))
        }
        WeightSpec::Range(r) => Err(FwpError::InvalidWeight(format!(
            "FWP_UINT8 weight {r} is above FWPM_WEIGHT_RANGE_MAX (15)"
        ))),
    }
}

/// The generated low 60 bits. WFP's algorithm is undocumented ("more specific filters get more
/// weight"); this engine scores each condition by how many bits of the field it pins down and keeps
/// the sum in the upper bits, the condition count in the low byte (docs/semantics.md). Always
/// `< 2^60`.
pub fn auto_weight(conditions: &[Condition]) -> u64 {
    let score: u64 = conditions.iter().map(condition_specificity).sum();
    let count = u64::try_from(conditions.len())
        .unwrap_or(u64::MAX)
        .min(0xFF);
    (score.min((1 << 52) - 1) << 8) | count
}

fn condition_specificity(c: &Condition) -> u64 {
    let width = |v: &Value| -> u64 {
        match v {
            Value::Uint8(_) | Value::Int8(_) => 8,
            Value::Uint16(_) | Value::Int16(_) => 16,
            Value::Uint32(_) | Value::Int32(_) | Value::Float(_) => 32,
            Value::Uint64(_) | Value::Int64(_) | Value::Double(_) => 64,
            Value::ByteArray16(_) => 128,
            Value::ByteArray6(_) => 48,
            Value::Empty => 1,
            _ => 64,
        }
    };
    match (&c.value, c.match_type) {
        (ConditionValue::V4AddrMask { mask, .. }, _) => u64::from(mask.count_ones()),
        (ConditionValue::V6AddrMask { prefix_len, .. }, _) => u64::from(*prefix_len),
        (ConditionValue::Range(lo, hi), _) => match (lo.as_u64(), hi.as_u64()) {
            (Some(l), Some(h)) => {
                let span = h.saturating_sub(l).saturating_add(1);
                width(lo).saturating_sub(u64::from(64 - span.leading_zeros()).saturating_sub(1))
            }
            _ => 8,
        },
        (ConditionValue::Value(v), MatchType::Equal | MatchType::EqualCaseInsensitive) => width(v),
        (
            ConditionValue::Value(v),
            MatchType::FlagsAllSet | MatchType::FlagsNoneSet | MatchType::FlagsAnySet,
        ) => v.as_u64().map_or(1, |f| u64::from(f.count_ones())),
        (ConditionValue::Value(_), MatchType::Prefix) => 32,
        _ => 4,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn t_w_1_uint64_is_used_unchanged() {
        assert_eq!(
            effective_weight(WeightSpec::Exact(0x1234), &[]).unwrap(),
            0x1234
        );
    }

    #[test]
    fn t_w_2_uint8_15_sets_the_top_nibble() {
        let w = effective_weight(WeightSpec::Range(15), &[]).unwrap();
        assert!(w >= 0xF000_0000_0000_0000);
    }

    #[test]
    fn t_w_3_uint8_0_stays_below_2_pow_60() {
        assert!(effective_weight(WeightSpec::Range(0), &[]).unwrap() < 1 << 60);
    }

    #[test]
    fn t_w_4_empty_stays_below_auto_weight_max() {
        assert!(effective_weight(WeightSpec::Auto, &[]).unwrap() <= weight::AUTO_WEIGHT_MAX);
    }

    #[test]
    fn t_w_5_uint8_16_is_invalid_weight() {
        let e = effective_weight(WeightSpec::Range(16), &[]).unwrap_err();
        assert_eq!(e.code(), 0x8032_0025);
    }

    #[test]
    fn flags_are_validated() {
        assert!(check_flags(
            FilterFlags::PERSISTENT | FilterFlags::BOOTTIME,
            ActionType::PERMIT
        )
        .is_err());
        assert_eq!(
            check_flags(
                FilterFlags::PERMIT_IF_CALLOUT_UNREGISTERED,
                ActionType::PERMIT
            )
            .unwrap_err()
            .code(),
            0x8032_001E
        );
        assert!(check_flags(
            FilterFlags::PERMIT_IF_CALLOUT_UNREGISTERED,
            ActionType::CALLOUT_INSPECTION
        )
        .is_err());
        assert!(check_flags(
            FilterFlags::PERMIT_IF_CALLOUT_UNREGISTERED,
            ActionType::CALLOUT_UNKNOWN
        )
        .is_ok());
        assert!(check_flags(FilterFlags(0x8000_0000), ActionType::PERMIT).is_err());
        assert_eq!(
            check_action(ActionType::CONTINUE).unwrap_err().code(),
            0x8032_0024
        );
    }
}
