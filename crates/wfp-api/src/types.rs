//! Request and answer bodies of the `/v1` API, and the object DTOs with their conversions to the
//! engine's specs. Inputs reject unknown fields; names are WFP's (layers `ALE_AUTH_CONNECT_V4`,
//! conditions `IP_REMOTE_PORT`, actions `BLOCK`, match types `EQUAL`, filter flags `PERSISTENT`;
//! the `FWPM_*`/`FWP_*` prefixes are accepted too).

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use wfp_core::catalogue::{self, ConditionId};
use wfp_core::engine::{
    CalloutObject, FilterEnumTemplate, ProviderObject, SessionInfo, SublayerObject,
    ACTION_MASK_ANY, FILTER_ENUM_FLAG_BEST_TERMINATING_MATCH, FILTER_ENUM_FLAG_BOOTTIME_ONLY,
    FILTER_ENUM_FLAG_INCLUDE_BOOTTIME, FILTER_ENUM_FLAG_SORTED, SESSION_FLAG_DYNAMIC,
};
use wfp_core::{
    ActionType, CalloutSpec, ConditionSpec, FilterFlags, FilterSpec, FwpError, Guid, MatchType,
    ProviderSpec, RtFilter, SublayerSpec, Value, WeightSpec,
};

pub use crate::live::NetEventDto;
use crate::value::ValueDto;

/// A DTO that does not describe a valid engine object (HTTP 400 with the matching `FWP_E_*`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ConvertError {
    /// No layer by that name or GUID (FWP_E_LAYER_NOT_FOUND).
    #[error("unknown layer {0:?}")]
    UnknownLayer(String),
    /// No condition by that name or GUID (FWP_E_CONDITION_NOT_FOUND).
    #[error("unknown condition {0:?}")]
    UnknownCondition(String),
    /// Not a match type name (FWP_E_INVALID_PARAMETER).
    #[error("unknown match type {0:?}")]
    UnknownMatchType(String),
    /// Not an action type name (FWP_E_INVALID_ACTION_TYPE).
    #[error("unknown action type {0:?}")]
    UnknownAction(String),
    /// Not a filter flag name (FWP_E_INVALID_FLAGS).
    #[error("unknown filter flag {0:?}")]
    UnknownFlag(String),
    /// A value that cannot be built (FWP_E_INVALID_PARAMETER).
    #[error("bad value: {0}")]
    BadValue(String),
}

impl ConvertError {
    /// The `FWP_E_*` code and name the API answers with.
    pub fn code(&self) -> (u32, &'static str) {
        match self {
            Self::UnknownLayer(_) => (0x8032_0004, "FWP_E_LAYER_NOT_FOUND"),
            Self::UnknownCondition(_) => (0x8032_0002, "FWP_E_CONDITION_NOT_FOUND"),
            Self::UnknownAction(_) => (0x8032_0024, "FWP_E_INVALID_ACTION_TYPE"),
            Self::UnknownFlag(_) => (0x8032_001E, "FWP_E_INVALID_FLAGS"),
            Self::UnknownMatchType(_) | Self::BadValue(_) => {
                (0x8032_0035, "FWP_E_INVALID_PARAMETER")
            }
        }
    }
}

/// A GUID as its registry-format string (`"{xxxxxxxx-...}"` or without braces).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Key(pub Guid);

impl Serialize for Key {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for Key {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Guid::from_str(&s)
            .map(Key)
            .map_err(|e| serde::de::Error::custom(format!("bad GUID {s:?}: {}", e.0)))
    }
}

impl FromStr for Key {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        Guid::from_str(s)
            .map(Key)
            .map_err(|_| format!("{s:?} is not a GUID"))
    }
}

impl fmt::Display for Key {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

fn key_or_null(k: Option<Key>) -> Guid {
    k.map_or(Guid::NULL, |k| k.0)
}

fn non_null(g: Guid) -> Option<Key> {
    (!g.is_null()).then_some(Key(g))
}

/// The error body of every failed request.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorBody {
    /// The error.
    pub error: ErrorInfo,
}

/// One error: WFP's code where one exists.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorInfo {
    /// `FWP_E_*` HRESULT (or an HTTP-level code: 0 for protocol errors).
    pub code: u32,
    /// Its name (`FWP_E_ALREADY_EXISTS`, or `HTTP_*` for protocol errors).
    pub name: String,
    /// What went wrong, for people.
    pub message: String,
}

impl From<&FwpError> for ErrorInfo {
    fn from(e: &FwpError) -> Self {
        let name = e.code_name();
        Self {
            code: e.code(),
            name: if name.starts_with("E_") {
                name.to_string()
            } else {
                format!("FWP_E_{name}")
            },
            message: e.to_string(),
        }
    }
}

impl From<&ConvertError> for ErrorInfo {
    fn from(e: &ConvertError) -> Self {
        let (code, name) = e.code();
        Self {
            code,
            name: name.to_string(),
            message: e.to_string(),
        }
    }
}

/// `FWPM_PROVIDER0`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProviderDto {
    /// `providerKey` (absent → assigned).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<Key>,
    /// `displayData.name` (required).
    pub name: String,
    /// `displayData.description`.
    #[serde(default)]
    pub description: String,
    /// `FWPM_PROVIDER_FLAG_*` (PERSISTENT = 1).
    #[serde(default)]
    pub flags: u32,
    /// `serviceName`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service_name: Option<String>,
}

impl From<&ProviderDto> for ProviderSpec {
    fn from(d: &ProviderDto) -> Self {
        Self {
            key: key_or_null(d.key),
            name: d.name.clone(),
            description: d.description.clone(),
            flags: d.flags,
            service_name: d.service_name.clone(),
        }
    }
}

impl From<&ProviderSpec> for ProviderDto {
    fn from(s: &ProviderSpec) -> Self {
        Self {
            key: non_null(s.key),
            name: s.name.clone(),
            description: s.description.clone(),
            flags: s.flags,
            service_name: s.service_name.clone(),
        }
    }
}

impl From<&ProviderObject> for ProviderDto {
    fn from(o: &ProviderObject) -> Self {
        (&o.spec).into()
    }
}

/// `FWPM_SUBLAYER0`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SublayerDto {
    /// `subLayerKey` (absent → assigned).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<Key>,
    /// `displayData.name` (required).
    pub name: String,
    /// `displayData.description`.
    #[serde(default)]
    pub description: String,
    /// `FWPM_SUBLAYER_FLAG_*` (PERSISTENT = 1).
    #[serde(default)]
    pub flags: u32,
    /// `providerKey`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub provider: Option<Key>,
    /// `weight`.
    #[serde(default)]
    pub weight: u16,
}

impl From<&SublayerDto> for SublayerSpec {
    fn from(d: &SublayerDto) -> Self {
        Self {
            key: key_or_null(d.key),
            name: d.name.clone(),
            description: d.description.clone(),
            flags: d.flags,
            provider: d.provider.map(|k| k.0),
            weight: d.weight,
        }
    }
}

impl From<&SublayerSpec> for SublayerDto {
    fn from(s: &SublayerSpec) -> Self {
        Self {
            key: non_null(s.key),
            name: s.name.clone(),
            description: s.description.clone(),
            flags: s.flags,
            provider: s.provider.map(Key),
            weight: s.weight,
        }
    }
}

/// A sublayer as listed.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SublayerView {
    /// The sublayer.
    pub sublayer: SublayerDto,
    /// Built in (cannot be deleted).
    pub builtin: bool,
}

impl From<&SublayerObject> for SublayerView {
    fn from(o: &SublayerObject) -> Self {
        Self {
            sublayer: (&o.spec).into(),
            builtin: o.builtin,
        }
    }
}

/// `FWPM_CALLOUT0`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CalloutDto {
    /// `calloutKey` (absent → assigned).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<Key>,
    /// `displayData.name` (required).
    pub name: String,
    /// `displayData.description`.
    #[serde(default)]
    pub description: String,
    /// `FWPM_CALLOUT_FLAG_*`.
    #[serde(default)]
    pub flags: u32,
    /// `providerKey`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub provider: Option<Key>,
    /// `applicableLayer` (a layer name).
    pub layer: String,
}

impl TryFrom<&CalloutDto> for CalloutSpec {
    type Error = ConvertError;

    fn try_from(d: &CalloutDto) -> Result<Self, ConvertError> {
        Ok(Self {
            key: key_or_null(d.key),
            name: d.name.clone(),
            description: d.description.clone(),
            flags: d.flags,
            provider: d.provider.map(|k| k.0),
            applicable_layer: layer_id(&d.layer)?,
        })
    }
}

impl From<&CalloutSpec> for CalloutDto {
    fn from(s: &CalloutSpec) -> Self {
        Self {
            key: non_null(s.key),
            name: s.name.clone(),
            description: s.description.clone(),
            flags: s.flags,
            provider: s.provider.map(Key),
            layer: s.applicable_layer.to_string(),
        }
    }
}

/// A callout as listed.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CalloutView {
    /// The callout (`flags` carries REGISTERED 0x40000 when the run-time side is registered).
    pub callout: CalloutDto,
    /// `calloutId`.
    pub callout_id: u32,
}

impl From<&CalloutObject> for CalloutView {
    fn from(o: &CalloutObject) -> Self {
        Self {
            callout: (&o.spec).into(),
            callout_id: o.id.0,
        }
    }
}

/// `FWPM_FILTER0.weight`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum WeightDto {
    /// FWP_EMPTY: generated from the conditions.
    #[default]
    Auto,
    /// FWP_UINT8 0..=15: a weight range.
    Range(u8),
    /// FWP_UINT64: used unchanged.
    Exact(u64),
}

/// `FWPM_FILTER_CONDITION0`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConditionDto {
    /// The condition (`IP_REMOTE_PORT`, `FWPM_CONDITION_...` or a GUID).
    pub field: String,
    /// The match type (`EQUAL`, `FWP_MATCH_RANGE`, ...).
    #[serde(default = "equal")]
    pub match_type: String,
    /// The value.
    pub value: ValueDto,
}

fn equal() -> String {
    "EQUAL".into()
}

/// `FWPM_FILTER0`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FilterDto {
    /// `filterKey` (absent → assigned).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<Key>,
    /// `displayData.name` (required).
    pub name: String,
    /// `displayData.description`.
    #[serde(default)]
    pub description: String,
    /// `FWPM_FILTER_FLAG_*` names (`PERSISTENT`, `CLEAR_ACTION_RIGHT`, ...).
    #[serde(default)]
    pub flags: Vec<String>,
    /// `providerKey`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub provider: Option<Key>,
    /// `layerKey` (a layer name or GUID).
    pub layer: String,
    /// `subLayerKey` (absent → FWPM_SUBLAYER_UNIVERSAL).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sublayer: Option<Key>,
    /// `weight`.
    #[serde(default)]
    pub weight: WeightDto,
    /// `filterCondition`.
    #[serde(default)]
    pub conditions: Vec<ConditionDto>,
    /// `action.type` (`BLOCK`, `PERMIT`, `CALLOUT_TERMINATING`, ...).
    pub action: String,
    /// `action.calloutKey`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub callout: Option<Key>,
    /// `rawContext`.
    #[serde(default)]
    pub raw_context: u64,
}

fn layer_id(name: &str) -> Result<wfp_core::LayerId, ConvertError> {
    catalogue::layer_by_name(name)
        .map(|l| l.layer_id())
        .ok_or_else(|| ConvertError::UnknownLayer(name.to_string()))
}

fn condition_id(name: &str) -> Result<ConditionId, ConvertError> {
    catalogue::condition_by_name(name).ok_or_else(|| ConvertError::UnknownCondition(name.into()))
}

fn condition_name(id: ConditionId) -> String {
    catalogue::condition(id).map_or_else(|| format!("condition#{}", id.0), |c| c.name.into())
}

impl TryFrom<&ConditionDto> for ConditionSpec {
    type Error = ConvertError;

    fn try_from(d: &ConditionDto) -> Result<Self, ConvertError> {
        let mt = d.match_type.trim().to_ascii_uppercase();
        Ok(Self {
            field: condition_id(&d.field)?,
            match_type: MatchType::from_name(mt.strip_prefix("FWP_MATCH_").unwrap_or(&mt))
                .ok_or_else(|| ConvertError::UnknownMatchType(d.match_type.clone()))?,
            value: (&d.value).try_into()?,
        })
    }
}

impl From<&ConditionSpec> for ConditionDto {
    fn from(c: &ConditionSpec) -> Self {
        Self {
            field: condition_name(c.field),
            match_type: c.match_type.name().to_string(),
            value: (&c.value).into(),
        }
    }
}

impl TryFrom<&FilterDto> for FilterSpec {
    type Error = ConvertError;

    fn try_from(d: &FilterDto) -> Result<Self, ConvertError> {
        let flags = d.flags.iter().try_fold(FilterFlags::NONE, |acc, n| {
            FilterFlags::from_name(n)
                .map(|f| acc | f)
                .ok_or_else(|| ConvertError::UnknownFlag(n.clone()))
        })?;
        Ok(Self {
            key: key_or_null(d.key),
            name: d.name.clone(),
            description: d.description.clone(),
            flags,
            provider: d.provider.map(|k| k.0),
            layer: layer_id(&d.layer)?,
            sublayer: key_or_null(d.sublayer),
            weight: match d.weight {
                WeightDto::Auto => WeightSpec::Auto,
                WeightDto::Range(r) => WeightSpec::Range(r),
                WeightDto::Exact(w) => WeightSpec::Exact(w),
            },
            conditions: d
                .conditions
                .iter()
                .map(ConditionSpec::try_from)
                .collect::<Result<_, _>>()?,
            action: ActionType::from_name(&d.action)
                .ok_or_else(|| ConvertError::UnknownAction(d.action.clone()))?,
            callout: d.callout.map(|k| k.0),
            raw_context: d.raw_context,
        })
    }
}

impl From<&FilterSpec> for FilterDto {
    fn from(s: &FilterSpec) -> Self {
        Self {
            key: non_null(s.key),
            name: s.name.clone(),
            description: s.description.clone(),
            flags: s.flags.names(),
            provider: s.provider.map(Key),
            layer: s.layer.to_string(),
            sublayer: non_null(s.sublayer),
            weight: match s.weight {
                WeightSpec::Auto => WeightDto::Auto,
                WeightSpec::Range(r) => WeightDto::Range(r),
                WeightSpec::Exact(w) => WeightDto::Exact(w),
            },
            conditions: s.conditions.iter().map(ConditionDto::from).collect(),
            action: s.action.name(),
            callout: s.callout.map(Key),
            raw_context: s.raw_context,
        }
    }
}

/// A filter as listed (`FWPM_FILTER0` with its outputs).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct FilterView {
    /// `filterId`.
    pub id: u64,
    /// `effectiveWeight`.
    pub effective_weight: u64,
    /// The weight of its sublayer.
    pub sublayer_weight: u16,
    /// `action.calloutId` of a callout filter.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub callout_id: Option<u32>,
    /// The filter (its `weight` is the effective weight, `sublayer` always given).
    pub filter: FilterDto,
}

impl From<&RtFilter> for FilterView {
    fn from(f: &RtFilter) -> Self {
        Self {
            id: f.filter_id().0,
            effective_weight: f.weight(),
            sublayer_weight: f.sublayer_weight(),
            callout_id: f.callout_id().map(|c| c.0),
            filter: FilterDto {
                key: Some(Key(f.key())),
                name: f.name().to_string(),
                description: String::new(),
                flags: f.mgmt_flags().names(),
                provider: f.provider().map(Key),
                layer: f.layer().to_string(),
                sublayer: Some(Key(f.sublayer())),
                weight: WeightDto::Exact(f.weight()),
                conditions: f
                    .conditions()
                    .conditions()
                    .iter()
                    .map(|c| ConditionDto {
                        field: condition_name(c.field),
                        match_type: c.match_type.name().to_string(),
                        value: (&c.value).into(),
                    })
                    .collect(),
                action: f.action().name(),
                callout: f.callout_key().map(Key),
                raw_context: f.context,
            },
        }
    }
}

/// One incoming value of an enumeration template.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FieldValueDto {
    /// The condition name.
    pub field: String,
    /// The value.
    pub value: ValueDto,
}

/// `FWPM_FILTER_ENUM_TEMPLATE0` (`POST /v1/filters/enum`).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FilterEnumRequest {
    /// `providerKey`.
    #[serde(default)]
    pub provider: Option<Key>,
    /// `layerKey`.
    #[serde(default)]
    pub layer: Option<String>,
    /// Only this sublayer.
    #[serde(default)]
    pub sublayer: Option<Key>,
    /// `actionMask` (absent → any).
    #[serde(default)]
    pub action_mask: Option<u32>,
    /// `calloutKey`.
    #[serde(default)]
    pub callout: Option<Key>,
    /// FWP_FILTER_ENUM_FLAG_BEST_TERMINATING_MATCH.
    #[serde(default)]
    pub best_terminating_match: bool,
    /// FWP_FILTER_ENUM_FLAG_SORTED.
    #[serde(default)]
    pub sorted: bool,
    /// FWP_FILTER_ENUM_FLAG_INCLUDE_BOOTTIME: boot-time filters too (§11.3).
    #[serde(default)]
    pub include_boottime: bool,
    /// FWP_FILTER_ENUM_FLAG_BOOTTIME_ONLY: only boot-time filters.
    #[serde(default)]
    pub boottime_only: bool,
    /// Incoming values the filters must match.
    #[serde(default)]
    pub values: Vec<FieldValueDto>,
}

impl TryFrom<&FilterEnumRequest> for FilterEnumTemplate {
    type Error = ConvertError;

    fn try_from(r: &FilterEnumRequest) -> Result<Self, ConvertError> {
        let mut flags = 0;
        if r.best_terminating_match {
            flags |= FILTER_ENUM_FLAG_BEST_TERMINATING_MATCH;
        }
        if r.sorted {
            flags |= FILTER_ENUM_FLAG_SORTED;
        }
        if r.include_boottime {
            flags |= FILTER_ENUM_FLAG_INCLUDE_BOOTTIME;
        }
        if r.boottime_only {
            flags |= FILTER_ENUM_FLAG_BOOTTIME_ONLY;
        }
        Ok(Self {
            provider: r.provider.map(|k| k.0),
            layer: r.layer.as_deref().map(layer_id).transpose()?,
            sublayer: r.sublayer.map(|k| k.0),
            action_mask: r.action_mask.unwrap_or(ACTION_MASK_ANY),
            callout: r.callout.map(|k| k.0),
            flags,
            values: r
                .values
                .iter()
                .map(|v| Ok((condition_id(&v.field)?, Value::try_from(&v.value)?)))
                .collect::<Result<_, ConvertError>>()?,
        })
    }
}

/// `POST /v1/session`: (re)open this connection's session.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SessionRequest {
    /// `sessionKey` (absent → assigned).
    #[serde(default)]
    pub key: Option<Key>,
    /// `displayData.name`.
    #[serde(default)]
    pub name: String,
    /// FWPM_SESSION_FLAG_DYNAMIC: objects added through it die with it.
    #[serde(default)]
    pub dynamic: bool,
    /// `txnWaitTimeoutInMSec` (0 → 15 000).
    #[serde(default)]
    pub txn_wait_ms: u64,
}

/// A session as listed (`GET /v1/sessions`, `GET /v1/session`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SessionView {
    /// `sessionKey`.
    pub key: Key,
    /// `displayData.name`.
    pub name: String,
    /// FWPM_SESSION_FLAG_DYNAMIC.
    pub dynamic: bool,
    /// The wait limit in force.
    pub txn_wait_ms: u64,
    /// `processId` of the peer (SO_PEERCRED).
    pub process_id: u32,
    /// The peer's user id.
    pub user_id: u32,
    /// The peer's group id.
    pub group_id: u32,
    /// `username`.
    pub username: String,
    /// Dynamic objects it owns.
    pub dynamic_objects: usize,
}

impl From<&SessionInfo> for SessionView {
    fn from(i: &SessionInfo) -> Self {
        let s = &i.spec;
        Self {
            key: Key(s.key),
            name: s.name.clone(),
            dynamic: s.flags & SESSION_FLAG_DYNAMIC != 0,
            txn_wait_ms: u64::try_from(s.txn_wait_timeout.as_millis()).unwrap_or(u64::MAX),
            process_id: s.owner.process_id,
            user_id: s.owner.user_id,
            group_id: s.owner.group_id,
            username: s.owner.username.clone(),
            dynamic_objects: i.dynamic_objects,
        }
    }
}

/// `POST /v1/txn/begin`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BeginRequest {
    /// FWPM_TXN_READ_ONLY.
    #[serde(default)]
    pub read_only: bool,
}

/// The answer to an add (`POST /v1/filters|sublayers|providers|callouts`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Added {
    /// The object's key.
    pub key: Key,
    /// `filterId` or `calloutId`, for the objects that have one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<u64>,
}

/// `GET /v1/state`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct StateView {
    /// The daemon's version.
    pub version: String,
    /// The protocol version (`v1`).
    pub api: String,
    /// Filters.
    pub filters: usize,
    /// Sublayers (built-in ones included).
    pub sublayers: usize,
    /// Providers.
    pub providers: usize,
    /// Management callouts.
    pub callouts: usize,
    /// Open sessions.
    pub sessions: usize,
    /// Persistent objects in the store.
    pub persistent_objects: usize,
    /// The policy epoch (changes with every commit that changed filters).
    pub policy_epoch: u64,
    /// Net events dropped because the ring was full.
    pub net_events_dropped: u64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filter_dto_round_trips_to_the_spec() {
        let json = r#"{"name":"web","layer":"FWPM_LAYER_ALE_AUTH_CONNECT_V4","action":"FWP_ACTION_BLOCK",
            "flags":["PERSISTENT"],"weight":{"range":3},
            "conditions":[{"field":"IP_REMOTE_PORT","value":{"type":"UINT16","value":80}},
                          {"field":"IP_REMOTE_ADDRESS","match_type":"EQUAL",
                           "value":{"type":"V4_ADDR_MASK","addr":"10.0.0.0","mask":"255.0.0.0"}}]}"#;
        let dto: FilterDto = serde_json::from_str(json).unwrap();
        let spec = FilterSpec::try_from(&dto).unwrap();
        assert_eq!(spec.action, ActionType::BLOCK);
        assert!(spec.flags.contains(FilterFlags::PERSISTENT));
        assert_eq!(spec.weight, WeightSpec::Range(3));
        let back = FilterSpec::try_from(&FilterDto::from(&spec)).unwrap();
        assert_eq!(back, spec);
    }

    #[test]
    fn unknown_names_and_fields_are_refused() {
        let bad_layer = r#"{"name":"x","layer":"NOPE","action":"BLOCK"}"#;
        let dto: FilterDto = serde_json::from_str(bad_layer).unwrap();
        assert_eq!(
            FilterSpec::try_from(&dto).unwrap_err().code().1,
            "FWP_E_LAYER_NOT_FOUND"
        );
        let extra = r#"{"name":"x","layer":"ALE_AUTH_CONNECT_V4","action":"BLOCK","bogus":1}"#;
        assert!(serde_json::from_str::<FilterDto>(extra).is_err());
        assert!(serde_json::from_str::<Key>(r#""not-a-guid""#).is_err());
    }
}
