//! Provider contexts on the wire (`FWPM_PROVIDER_CONTEXT3`, wfp-reference §11.4):
//! `/v1/providercontexts` bodies and their conversions to the engine's spec. Byte data travels as
//! lower-case hex; the type by its WFP name (`GENERAL`, `FWPM_GENERAL_CONTEXT`, ...).

use serde::{Deserialize, Serialize};
use wfp_core::engine::ProviderContextEnumTemplate;
use wfp_core::{ProviderContext, ProviderContextSpec, ProviderContextType};

use crate::types::{key_or_null, non_null, ConvertError, Key};
use crate::value::{hex, unhex};

/// `FWPM_PROVIDER_CONTEXT3`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProviderContextDto {
    /// `providerContextKey` (absent → assigned).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<Key>,
    /// `displayData.name` (required).
    pub name: String,
    /// `displayData.description`.
    #[serde(default)]
    pub description: String,
    /// `FWPM_PROVIDER_CONTEXT_FLAG_*` (PERSISTENT = 1).
    #[serde(default)]
    pub flags: u32,
    /// `providerKey`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub provider: Option<Key>,
    /// `providerData`, hex.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub provider_data_hex: String,
    /// `type` (`GENERAL` when absent).
    #[serde(rename = "type", default = "general")]
    pub context_type: String,
    /// The data, hex: `*dataBuffer` of a GENERAL context, opaque bytes for the other types.
    #[serde(default)]
    pub data_hex: String,
}

fn general() -> String {
    ProviderContextType::GENERAL.name()
}

/// Parses a provider context type by name (or number below FWPM_PROVIDER_CONTEXT_TYPE_MAX).
fn context_type(name: &str) -> Result<ProviderContextType, ConvertError> {
    ProviderContextType::from_name(name)
        .or_else(|| {
            name.trim()
                .parse()
                .ok()
                .map(ProviderContextType)
                .filter(|t| t.is_valid())
        })
        .ok_or_else(|| ConvertError::UnknownContextType(name.to_string()))
}

impl TryFrom<&ProviderContextDto> for ProviderContextSpec {
    type Error = ConvertError;

    fn try_from(d: &ProviderContextDto) -> Result<Self, ConvertError> {
        Ok(Self {
            key: key_or_null(d.key),
            name: d.name.clone(),
            description: d.description.clone(),
            flags: d.flags,
            provider: d.provider.map(|k| k.0),
            provider_data: unhex(&d.provider_data_hex)?,
            context_type: context_type(&d.context_type)?,
            data: unhex(&d.data_hex)?,
        })
    }
}

impl From<&ProviderContextSpec> for ProviderContextDto {
    fn from(s: &ProviderContextSpec) -> Self {
        Self {
            key: non_null(s.key),
            name: s.name.clone(),
            description: s.description.clone(),
            flags: s.flags,
            provider: s.provider.map(Key),
            provider_data_hex: hex(&s.provider_data),
            context_type: s.context_type.name(),
            data_hex: hex(&s.data),
        }
    }
}

/// A provider context as listed (`GET /v1/providercontexts`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProviderContextView {
    /// `providerContextId` (the run-time LUID filters carry as their context).
    pub id: u64,
    /// The provider context.
    pub provider_context: ProviderContextDto,
}

impl From<&ProviderContext> for ProviderContextView {
    fn from(pc: &ProviderContext) -> Self {
        Self {
            id: pc.id.0,
            provider_context: (&pc.spec).into(),
        }
    }
}

/// `FWPM_PROVIDER_CONTEXT_ENUM_TEMPLATE0` (`POST /v1/providercontexts/enum`, and a filter
/// template's `provider_context`).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProviderContextEnumRequest {
    /// `providerKey`.
    #[serde(default)]
    pub provider: Option<Key>,
    /// `providerContextType` (absent → any).
    #[serde(rename = "type", default)]
    pub context_type: Option<String>,
}

impl TryFrom<&ProviderContextEnumRequest> for ProviderContextEnumTemplate {
    type Error = ConvertError;

    fn try_from(r: &ProviderContextEnumRequest) -> Result<Self, ConvertError> {
        Ok(Self {
            provider: r.provider.map(|k| k.0),
            context_type: r.context_type.as_deref().map(context_type).transpose()?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dto_round_trips_and_refuses_bad_hex_and_types() {
        let json = r#"{"name":"cfg","type":"FWPM_GENERAL_CONTEXT","data_hex":"00ff10","flags":1}"#;
        let dto: ProviderContextDto = serde_json::from_str(json).unwrap();
        let spec = ProviderContextSpec::try_from(&dto).unwrap();
        assert_eq!(spec.data, vec![0, 0xff, 0x10]);
        assert_eq!(spec.context_type, ProviderContextType::GENERAL);
        let back = ProviderContextSpec::try_from(&ProviderContextDto::from(&spec)).unwrap();
        assert_eq!(back, spec);
        let bad_hex = ProviderContextDto {
            data_hex: "abc".into(),
            ..dto.clone()
        };
        let e = ProviderContextSpec::try_from(&bad_hex).unwrap_err();
        assert_eq!(e.code().1, "FWP_E_INVALID_PARAMETER");
        let bad_type = ProviderContextDto {
            context_type: "IPSEC_WHATEVER".into(),
            ..dto
        };
        let e = ProviderContextSpec::try_from(&bad_type).unwrap_err();
        assert_eq!(e.code().1, "FWP_E_INVALID_PARAMETER");
        assert_eq!(
            context_type("13").unwrap().name(),
            "NETWORK_CONNECTION_POLICY"
        );
        assert!(context_type("14").is_err());
    }
}
