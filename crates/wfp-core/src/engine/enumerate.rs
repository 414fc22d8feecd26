//! Enumeration with templates (§11.4 `FWPM_FILTER_ENUM_TEMPLATE0`, T-MGMT-12): which filters,
//! sublayers and callouts a management client sees, read from one consistent management state
//! (the caller holds the writer lock for the whole enumeration, like WFP's snapshot at
//! enum-handle creation).
//!
//! Template semantics where WFP's docs are silent (recorded here and in `docs/api.md`):
//! * `values` are *incoming values* for the template's layer; a filter "applies" when its
//!   conditions match them with every other field FWP_EMPTY (the classify rule, so the answer is
//!   an arbitration oracle).
//! * BEST_TERMINATING_MATCH keeps the one applying filter with a terminating action
//!   (`FWP_ACTION_FLAG_TERMINATING`) that classify evaluates first: sublayer weight descending,
//!   then sublayer creation order, then filter weight descending, then filter id (brief decision
//!   2). Narrow `sublayer` to get the per-sublayer answer.
//! * Without SORTED the order is by filter id; with it, evaluation order (as above).
//! * `conditions` with `enum_type` (FULLY_CONTAINED / OVERLAPPING) compare condition *sets*, see
//!   [`super::enum_match`] for the exact meaning and where it is approximate.
//! * Boot-time filters (FWPM_FILTER_FLAG_BOOTTIME) are left out unless INCLUDE_BOOTTIME is set;
//!   BOOTTIME_ONLY keeps only them (and ignores INCLUDE_BOOTTIME / INCLUDE_DISABLED). Disabled
//!   filters (FWPM_FILTER_FLAG_DISABLED) are left out unless INCLUDE_DISABLED is set; this
//!   engine never disables a filter itself, so the flag changes nothing today.

use std::cmp::Ordering;
use std::sync::Arc;

use super::enum_match::{FilterEnumType, TemplateConditions};
use super::mgmt::Mgmt;
use crate::catalogue::{self, ConditionId, LayerId};
use crate::condition::ConditionSpec;
use crate::constants::{ActionType, FilterFlags};
use crate::filter::RtFilter;
use crate::guid::Guid;
use crate::provider_context::{ProviderContext, ProviderContextType};
use crate::status::FwpError;
use crate::value::Value;

/// `FWP_FILTER_ENUM_FLAG_BEST_TERMINATING_MATCH`: only the first terminating filter that applies.
pub const FILTER_ENUM_FLAG_BEST_TERMINATING_MATCH: u32 = 0x1;
/// `FWP_FILTER_ENUM_FLAG_SORTED`: in evaluation order (highest weight first).
pub const FILTER_ENUM_FLAG_SORTED: u32 = 0x2;
/// `FWP_FILTER_ENUM_FLAG_BOOTTIME_ONLY`: only boot-time filters.
pub const FILTER_ENUM_FLAG_BOOTTIME_ONLY: u32 = 0x4;
/// `FWP_FILTER_ENUM_FLAG_INCLUDE_BOOTTIME`: boot-time filters too.
pub const FILTER_ENUM_FLAG_INCLUDE_BOOTTIME: u32 = 0x8;
/// `FWP_FILTER_ENUM_FLAG_INCLUDE_DISABLED`: disabled filters too.
pub const FILTER_ENUM_FLAG_INCLUDE_DISABLED: u32 = 0x10;
/// Every `FWP_FILTER_ENUM_FLAG_*` bit; others are refused (FWP_E_INVALID_FLAGS).
const FILTER_ENUM_FLAGS_KNOWN: u32 = 0x1F;
/// Every action type (`actionMask` = 0xFFFFFFFF).
pub const ACTION_MASK_ANY: u32 = 0xFFFF_FFFF;

/// `FWPM_FILTER_ENUM_TEMPLATE0`, the parts the engine implements.
#[derive(Clone, Debug, PartialEq)]
pub struct FilterEnumTemplate {
    /// `providerKey`: only filters of this provider.
    pub provider: Option<Guid>,
    /// `layerKey`: only filters at this layer (required with `values` or
    /// BEST_TERMINATING_MATCH).
    pub layer: Option<LayerId>,
    /// Only filters in this sublayer (an extension; WFP's template has no sublayer).
    pub sublayer: Option<Guid>,
    /// `actionMask`: a filter is kept when `action.type & mask != 0`.
    pub action_mask: u32,
    /// `calloutKey`: only filters invoking this callout.
    pub callout: Option<Guid>,
    /// `FWP_FILTER_ENUM_FLAG_*` (BEST_TERMINATING_MATCH, SORTED, BOOTTIME_ONLY,
    /// INCLUDE_BOOTTIME, INCLUDE_DISABLED).
    pub flags: u32,
    /// Incoming values (condition, value): only filters whose conditions match them.
    pub values: Vec<(ConditionId, Value)>,
    /// `enumType`: how `conditions` select filters.
    pub enum_type: FilterEnumType,
    /// `filterCondition`: distinct conditions at `layer`, selecting per [`FilterEnumType`].
    pub conditions: Vec<ConditionSpec>,
    /// `providerContextTemplate`: only filters referencing a provider context that matches it.
    pub provider_context: Option<ProviderContextEnumTemplate>,
}

impl FilterEnumTemplate {
    /// Every filter, boot-time and disabled ones included (what a NULL template enumerates).
    pub fn everything() -> Self {
        Self {
            flags: FILTER_ENUM_FLAG_INCLUDE_BOOTTIME | FILTER_ENUM_FLAG_INCLUDE_DISABLED,
            ..Self::default()
        }
    }

    /// Whether the boot-time / disabled flags keep a filter with management flags `f`.
    fn keeps_lifetime(&self, f: FilterFlags) -> bool {
        let boot = f.contains(FilterFlags::BOOTTIME);
        if self.flags & FILTER_ENUM_FLAG_BOOTTIME_ONLY != 0 {
            return boot && !f.contains(FilterFlags::DISABLED);
        }
        (!boot || self.flags & FILTER_ENUM_FLAG_INCLUDE_BOOTTIME != 0)
            && (!f.contains(FilterFlags::DISABLED)
                || self.flags & FILTER_ENUM_FLAG_INCLUDE_DISABLED != 0)
    }
}

impl Default for FilterEnumTemplate {
    fn default() -> Self {
        Self {
            provider: None,
            layer: None,
            sublayer: None,
            action_mask: ACTION_MASK_ANY,
            callout: None,
            flags: 0,
            values: Vec::new(),
            enum_type: FilterEnumType::default(),
            conditions: Vec::new(),
            provider_context: None,
        }
    }
}

/// A template for sublayers and callouts (`FWPM_SUBLAYER_ENUM_TEMPLATE0`,
/// `FWPM_CALLOUT_ENUM_TEMPLATE0`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ObjectEnumTemplate {
    /// `providerKey`.
    pub provider: Option<Guid>,
    /// `layerKey` (callouts: `applicableLayer`; ignored for sublayers).
    pub layer: Option<LayerId>,
}

/// `FWPM_PROVIDER_CONTEXT_ENUM_TEMPLATE0`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ProviderContextEnumTemplate {
    /// `providerKey`.
    pub provider: Option<Guid>,
    /// `providerContextType` (`None` = FWPM_PROVIDER_CONTEXT_TYPE_MAX, any type).
    pub context_type: Option<ProviderContextType>,
}

impl ProviderContextEnumTemplate {
    /// True when `pc` satisfies the template.
    pub fn matches(&self, pc: &ProviderContext) -> bool {
        self.provider.is_none_or(|p| pc.spec.provider == Some(p))
            && self.context_type.is_none_or(|t| pc.spec.context_type == t)
    }
}

/// True when `f` references a provider context matching `t` (no template: every filter).
fn provider_context_matches(
    m: &Mgmt,
    t: Option<&ProviderContextEnumTemplate>,
    f: &RtFilter,
) -> bool {
    let Some(t) = t else { return true };
    f.provider_context_key
        .and_then(|k| m.provider_contexts.get(&k))
        .is_some_and(|pc| t.matches(pc))
}

/// The incoming values `template.values` stand for at its layer; `None` when it gives none.
fn template_values(template: &FilterEnumTemplate) -> Result<Option<Vec<Value>>, FwpError> {
    let best = template.flags & FILTER_ENUM_FLAG_BEST_TERMINATING_MATCH != 0;
    if template.values.is_empty() && !best {
        return Ok(None);
    }
    let layer_id = template.layer.ok_or_else(|| {
        FwpError::InvalidParameter(
            "condition values and BEST_TERMINATING_MATCH need a layer".into(),
        )
    })?;
    let layer =
        catalogue::layer(layer_id).ok_or_else(|| FwpError::LayerNotFound(layer_id.to_string()))?;
    let mut values = vec![Value::Empty; layer.fields.len()];
    for (cond, v) in &template.values {
        let slot = layer
            .field_index(*cond)
            .and_then(|i| values.get_mut(i))
            .ok_or_else(|| FwpError::ConditionNotFound {
                field: catalogue::condition(*cond)
                    .map_or("?", |c| c.name)
                    .to_string(),
                layer: layer.name.to_string(),
            })?;
        *slot = v.clone();
    }
    Ok(Some(values))
}

/// The template's conditions bound to its layer; `None` when it has none.
fn template_conditions(
    template: &FilterEnumTemplate,
) -> Result<Option<TemplateConditions>, FwpError> {
    if template.conditions.is_empty() {
        return Ok(None);
    }
    let layer_id = template
        .layer
        .ok_or_else(|| FwpError::InvalidParameter("template conditions need a layer".into()))?;
    let layer =
        catalogue::layer(layer_id).ok_or_else(|| FwpError::LayerNotFound(layer_id.to_string()))?;
    TemplateConditions::bind(layer, &template.conditions, template.enum_type).map(Some)
}

/// The evaluation-order key of a filter: sublayer weight desc, sublayer order, weight desc, id.
pub(super) fn evaluation_order(m: &Mgmt, a: &RtFilter, b: &RtFilter) -> Ordering {
    let order = |f: &RtFilter| m.sublayers.get(&f.sublayer).map_or(u64::MAX, |s| s.order);
    b.sublayer_weight
        .cmp(&a.sublayer_weight)
        .then(order(a).cmp(&order(b)))
        .then(b.weight.cmp(&a.weight))
        .then(a.filter_id.cmp(&b.filter_id))
}

/// `FwpmFilterEnum0` with a template.
pub(super) fn filters(
    m: &Mgmt,
    template: &FilterEnumTemplate,
) -> Result<Vec<Arc<RtFilter>>, FwpError> {
    if template.flags & !FILTER_ENUM_FLAGS_KNOWN != 0 {
        return Err(FwpError::InvalidFlags(format!(
            "unknown filter enumeration flag bits {:#x}",
            template.flags & !FILTER_ENUM_FLAGS_KNOWN
        )));
    }
    let values = template_values(template)?;
    let conditions = template_conditions(template)?;
    let mut out: Vec<Arc<RtFilter>> = m
        .filters
        .values()
        .filter(|f| template.layer.is_none_or(|l| f.layer == l))
        .filter(|f| template.provider.is_none_or(|p| f.provider == Some(p)))
        .filter(|f| template.sublayer.is_none_or(|s| f.sublayer == s))
        .filter(|f| template.callout.is_none_or(|c| f.callout_key == Some(c)))
        .filter(|f| f.action.0 & template.action_mask != 0)
        .filter(|f| values.as_ref().is_none_or(|v| f.conditions.matches(v)))
        .filter(|f| template.keeps_lifetime(f.mgmt_flags))
        .filter(|f| {
            conditions
                .as_ref()
                .is_none_or(|c| c.selects(f.conditions.conditions()))
        })
        .filter(|f| provider_context_matches(m, template.provider_context.as_ref(), f))
        .cloned()
        .collect();
    let best = template.flags & FILTER_ENUM_FLAG_BEST_TERMINATING_MATCH != 0;
    if best || template.flags & FILTER_ENUM_FLAG_SORTED != 0 {
        out.sort_by(|a, b| evaluation_order(m, a, b));
    }
    if best {
        let first = out
            .into_iter()
            .find(|f| f.action.0 & ActionType::FLAG_TERMINATING != 0);
        return Ok(first.into_iter().collect());
    }
    Ok(out)
}
