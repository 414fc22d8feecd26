//! The policy file's TOML schema: what serde reads, with source spans on everything an error may
//! point at. Names are resolved to WFP objects later ([`crate::resolve`]); unknown keys are errors
//! here (`deny_unknown_fields`).
//!
//! ```text
//!  FileT ┬ engine          EngineT
//!        ├ provider[]      ProviderT
//!        ├ sublayer[]      SublayerT
//!        ├ callout[]       CalloutT ── params: ParamsT
//!        ├ provider_context[] ProviderContextT
//!        ├ filter[]        FilterT ─── condition[]: ConditionT
//!        └ builtin."NAME"  ParamsT
//! ```

use std::collections::BTreeMap;

use serde::Deserialize;
use toml::Spanned;

use crate::params::ParamsT;

/// A whole policy file.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct FileT {
    #[serde(default)]
    pub(crate) engine: Option<EngineT>,
    #[serde(default)]
    pub(crate) provider: Vec<Spanned<ProviderT>>,
    #[serde(default)]
    pub(crate) sublayer: Vec<Spanned<SublayerT>>,
    #[serde(default)]
    pub(crate) callout: Vec<Spanned<CalloutT>>,
    #[serde(default)]
    pub(crate) provider_context: Vec<Spanned<ProviderContextT>>,
    #[serde(default)]
    pub(crate) filter: Vec<Spanned<FilterT>>,
    /// `[builtin."NAME"]`: parameters of a built-in wherever this file uses it.
    #[serde(default)]
    pub(crate) builtin: BTreeMap<Spanned<String>, Spanned<ParamsT>>,
}

/// `[engine]`: options of an engine built from the file.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct EngineT {
    #[serde(default)]
    pub(crate) static_veto: bool,
}

/// One `[[provider]]`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ProviderT {
    pub(crate) name: Spanned<String>,
    pub(crate) key: Option<Spanned<String>>,
    #[serde(default)]
    pub(crate) description: String,
    #[serde(default)]
    pub(crate) persistent: bool,
    pub(crate) service_name: Option<String>,
}

/// One `[[sublayer]]`; `weight` is a UINT16 (integer or `"0x..."` string).
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct SublayerT {
    pub(crate) name: Spanned<String>,
    pub(crate) key: Option<Spanned<String>>,
    #[serde(default)]
    pub(crate) description: String,
    pub(crate) weight: Option<Spanned<toml::Value>>,
    pub(crate) provider: Option<Spanned<String>>,
    #[serde(default)]
    pub(crate) persistent: bool,
}

/// One `[[callout]]`: a management callout, implemented by a built-in when `builtin` is set.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct CalloutT {
    pub(crate) name: Spanned<String>,
    pub(crate) key: Option<Spanned<String>>,
    #[serde(default)]
    pub(crate) description: String,
    pub(crate) layer: Spanned<String>,
    pub(crate) builtin: Option<Spanned<String>>,
    pub(crate) params: Option<Spanned<ParamsT>>,
    pub(crate) provider: Option<Spanned<String>>,
    #[serde(default = "yes")]
    pub(crate) registered: bool,
    #[serde(default)]
    pub(crate) flags: Vec<Spanned<String>>,
    #[serde(default)]
    pub(crate) persistent: bool,
    /// FWPM_CALLOUT_FLAG_USES_PROVIDER_CONTEXT: its filters hand it their provider context.
    #[serde(default)]
    pub(crate) uses_provider_context: bool,
}

/// One `[[provider_context]]` (§11.4): `type` defaults to GENERAL; the data is `data` (a
/// string's UTF-8 bytes) or `data_hex`, not both.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ProviderContextT {
    pub(crate) name: Spanned<String>,
    pub(crate) key: Option<Spanned<String>>,
    #[serde(default)]
    pub(crate) description: String,
    pub(crate) provider: Option<Spanned<String>>,
    #[serde(default)]
    pub(crate) persistent: bool,
    #[serde(rename = "type")]
    pub(crate) context_type: Option<Spanned<String>>,
    pub(crate) data: Option<Spanned<String>>,
    pub(crate) data_hex: Option<Spanned<String>>,
}

/// `registered` defaults to true.
fn yes() -> bool {
    true
}

/// One `[[filter]]`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct FilterT {
    pub(crate) name: Spanned<String>,
    pub(crate) key: Option<Spanned<String>>,
    #[serde(default)]
    pub(crate) description: String,
    pub(crate) layer: Spanned<String>,
    pub(crate) sublayer: Option<Spanned<String>>,
    pub(crate) weight: Option<Spanned<toml::Value>>,
    pub(crate) action: Spanned<String>,
    pub(crate) callout: Option<Spanned<String>>,
    #[serde(default)]
    pub(crate) flags: Vec<Spanned<String>>,
    pub(crate) context: Option<Spanned<toml::Value>>,
    /// A `[[provider_context]]` name or key: sets FWPM_FILTER_FLAG_HAS_PROVIDER_CONTEXT.
    pub(crate) provider_context: Option<Spanned<String>>,
    pub(crate) provider: Option<Spanned<String>>,
    #[serde(default, alias = "conditions")]
    pub(crate) condition: Vec<Spanned<ConditionT>>,
}

/// One condition of a filter: `field`, `match` (default EQUAL, or RANGE with `range`), and a
/// `value` or `range`, optionally forced to an FWP `type`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ConditionT {
    pub(crate) field: Spanned<String>,
    #[serde(rename = "match", alias = "match_type")]
    pub(crate) match_type: Option<Spanned<String>>,
    pub(crate) value: Option<Spanned<toml::Value>>,
    pub(crate) range: Option<Spanned<Vec<toml::Value>>>,
    #[serde(rename = "type")]
    pub(crate) value_type: Option<Spanned<String>>,
}
