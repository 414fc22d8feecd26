//! Names → WFP objects: turns the TOML schema ([`crate::schema`]) into a [`Policy`] of management
//! object specs, resolving WFP names (layers, fields, match types, actions, flags, FWP types),
//! references between objects (provider and sublayer names, callout names, built-in names) and
//! keys, and recording every object's position.
//!
//! ```text
//!  text ─ toml ─► FileT ─► Resolver ─ [builtin."NAME"] tables (params checked by wfp-callouts)
//!                            │ providers → sublayers → callouts → provider contexts → filters,
//!                            │   in file order
//!                            │   (a name must be defined before it is used)
//!                            ▼
//!                          Policy { specs + Origin (line, column, field) }
//! ```
//!
//! A filter's `callout` that names a built-in creates an implicit management callout for it at the
//! filter's layer, one per (built-in, layer, parameters), keyed by a derived key that covers the
//! parameters.

use std::collections::BTreeMap;
use std::ops::{BitOrAssign, Range};

use toml::Spanned;
use wfp_callouts::Builtin;
use wfp_core::catalogue::{self, layer_by_name, ConditionId, FieldDef, LayerDef};
use wfp_core::condition::ConditionSpec;
use wfp_core::filter::{
    CALLOUT_FLAG_PERSISTENT, CALLOUT_FLAG_USES_PROVIDER_CONTEXT, PROVIDER_FLAG_PERSISTENT,
    SUBLAYER_FLAG_PERSISTENT,
};
use wfp_core::provider_context::PROVIDER_CONTEXT_FLAG_PERSISTENT;
use wfp_core::{
    ActionType, CalloutFlags, CalloutSpec, ConditionValue, DataType, EngineOptions, FilterFlags,
    FilterSpec, Guid, MatchType, ProviderContextSpec, ProviderContextType, ProviderSpec,
    SublayerSpec, WeightSpec,
};

use crate::error::{Constant, PolicyError, Span};
use crate::file::{CalloutEntry, Origin, Policy};
use crate::lit::{condition_value, incoming_value, Lit};
use crate::params::{has_tables, parse_params, Params, ParamsT};
use crate::schema::{CalloutT, ConditionT, FileT, FilterT, ProviderContextT, ProviderT, SublayerT};

/// Parses policy text; `origin` names it in errors.
pub(crate) fn parse(src: &str, origin: &str) -> Result<Policy, PolicyError> {
    let ctx = Ctx::new(src, origin);
    let file: FileT = toml::from_str(src).map_err(|e| PolicyError::Toml {
        span: e
            .span()
            .map_or_else(|| Span::whole(origin), |s| ctx.span(s)),
        message: e.message().to_string(),
    })?;
    let options = EngineOptions {
        static_veto: file.engine.as_ref().is_some_and(|e| e.static_veto),
        ..EngineOptions::default()
    };
    let mut r = Resolver {
        ctx: &ctx,
        policy: Policy::empty(origin, options),
        providers: Vec::new(),
        sublayers: Vec::new(),
        provider_contexts: Vec::new(),
    };
    r.builtin_tables(&file.builtin)?;
    for (i, t) in file.provider.iter().enumerate() {
        r.provider(i, t)?;
    }
    for (i, t) in file.sublayer.iter().enumerate() {
        r.sublayer(i, t)?;
    }
    for (i, t) in file.callout.iter().enumerate() {
        r.callout(i, t)?;
    }
    for (i, t) in file.provider_context.iter().enumerate() {
        r.provider_context(i, t)?;
    }
    for (i, t) in file.filter.iter().enumerate() {
        r.filter(i, t)?;
    }
    Ok(r.policy)
}

/// The text being parsed and its name, for positions in errors.
pub(crate) struct Ctx<'a> {
    src: &'a str,
    origin: &'a str,
    /// Byte offset of every line's first character (every object records its position, so a
    /// 10k-filter file must not rescan the text for each one).
    line_starts: Vec<usize>,
}

impl<'a> Ctx<'a> {
    fn new(src: &'a str, origin: &'a str) -> Self {
        let line_starts = std::iter::once(0)
            .chain(src.match_indices('\n').map(|(i, _)| i + 1))
            .collect();
        Self {
            src,
            origin,
            line_starts,
        }
    }

    /// 1-based line and column (in characters) of byte `offset`.
    fn pos(&self, offset: usize) -> (usize, usize) {
        let offset = offset.min(self.src.len());
        let line = self.line_starts.partition_point(|&start| start <= offset);
        let start = self
            .line_starts
            .get(line.saturating_sub(1))
            .copied()
            .unwrap_or(0);
        let column = self
            .src
            .get(start..offset)
            .map_or(offset - start, |t| t.chars().count());
        (line.max(1), column + 1)
    }

    /// Where the text at byte range `range` starts.
    pub(crate) fn span(&self, range: Range<usize>) -> Span {
        let (line, column) = self.pos(range.start);
        Span {
            origin: self.origin.to_string(),
            line,
            column,
        }
    }

    fn origin_of(&self, range: Range<usize>, field: String) -> Origin {
        let (line, column) = self.pos(range.start);
        Origin {
            line,
            column,
            field,
        }
    }
}

/// The name a callout key is derived from: `base` (`NAME@LAYER`), plus the parameters when there
/// are any, so that different parameters give different callouts (and a replace that changes them
/// swaps the registration atomically).
fn derived_name(base: &str, params: &Params) -> String {
    if params.is_empty() {
        base.to_string()
    } else {
        format!("{base}?{}", params.canonical())
    }
}

/// `flag` when `set`, else no flag.
fn flag_if(set: bool, flag: u32) -> u32 {
    if set {
        flag
    } else {
        0
    }
}

/// The policy being built, and the names defined so far.
struct Resolver<'c, 'a> {
    ctx: &'c Ctx<'a>,
    policy: Policy,
    /// `[[provider]]` names and keys, in file order.
    providers: Vec<(String, Guid)>,
    /// `[[sublayer]]` names and keys, in file order.
    sublayers: Vec<(String, Guid)>,
    /// `[[provider_context]]` names and keys, in file order.
    provider_contexts: Vec<(String, Guid)>,
}

impl Resolver<'_, '_> {
    /// Reads the `[builtin."NAME"]` tables (in file order).
    fn builtin_tables(
        &mut self,
        tables: &BTreeMap<Spanned<String>, Spanned<ParamsT>>,
    ) -> Result<(), PolicyError> {
        let mut entries: Vec<_> = tables.iter().collect();
        entries.sort_by_key(|(name, _)| name.span().start);
        for (name, table) in entries {
            let field = format!("builtin.{:?}", name.get_ref());
            let b = self.builtin(name, &field, has_tables(table.get_ref()))?;
            if self.policy.builtin_params.iter().any(|(n, _)| *n == b.name) {
                return Err(PolicyError::DuplicateBuiltinTable {
                    span: self.ctx.span(name.span()),
                    field,
                    builtin: b.name,
                });
            }
            let params = parse_params(self.ctx, b, table, &field)?;
            self.policy.builtin_params.push((b.name, params));
        }
        Ok(())
    }

    fn provider(&mut self, i: usize, t: &Spanned<ProviderT>) -> Result<(), PolicyError> {
        let f = format!("provider[{i}]");
        let v = t.get_ref();
        let key = self.key(v.key.as_ref(), &f, || {
            Guid::from_name("provider", v.name.get_ref())
        })?;
        self.providers.push((v.name.get_ref().clone(), key));
        let spec = ProviderSpec {
            key,
            name: v.name.get_ref().clone(),
            description: v.description.clone(),
            flags: flag_if(v.persistent, PROVIDER_FLAG_PERSISTENT),
            service_name: v.service_name.clone(),
        };
        let origin = self.ctx.origin_of(t.span(), f);
        self.policy.providers.push((spec, origin));
        Ok(())
    }

    fn sublayer(&mut self, i: usize, t: &Spanned<SublayerT>) -> Result<(), PolicyError> {
        let f = format!("sublayer[{i}]");
        let v = t.get_ref();
        let key = self.key(v.key.as_ref(), &f, || {
            Guid::from_name("sublayer", v.name.get_ref())
        })?;
        let weight = match &v.weight {
            Some(w) => self.uint(w, format!("{f}.weight"), u64::from(u16::MAX))? as u16,
            None => 0,
        };
        let provider = self.provider_ref(v.provider.as_ref(), &f)?;
        self.sublayers.push((v.name.get_ref().clone(), key));
        let spec = SublayerSpec {
            key,
            name: v.name.get_ref().clone(),
            description: v.description.clone(),
            flags: flag_if(v.persistent, SUBLAYER_FLAG_PERSISTENT),
            provider,
            weight,
        };
        let origin = self.ctx.origin_of(t.span(), f);
        self.policy.sublayers.push((spec, origin));
        Ok(())
    }

    fn callout(&mut self, i: usize, t: &Spanned<CalloutT>) -> Result<(), PolicyError> {
        let f = format!("callout[{i}]");
        let v = t.get_ref();
        let layer = self.layer(&v.layer, &f)?;
        let builtin = match &v.builtin {
            Some(b) => Some(self.builtin(b, &format!("{f}.builtin"), false)?),
            None => None,
        };
        let params = self.callout_params(v, builtin, &f)?;
        let key = self.key(v.key.as_ref(), &f, || {
            let base = format!("{}@{}", v.name.get_ref(), layer.name);
            Guid::from_name("callout", &derived_name(&base, &params))
        })?;
        let extra_flags = self.flags(
            &v.flags,
            format!("{f}.flags"),
            Constant::CalloutFlag,
            CalloutFlags::from_name,
        )?;
        let provider = self.provider_ref(v.provider.as_ref(), &f)?;
        let spec = CalloutSpec {
            key,
            name: v.name.get_ref().clone(),
            description: v.description.clone(),
            flags: flag_if(v.persistent, CALLOUT_FLAG_PERSISTENT)
                | flag_if(v.uses_provider_context, CALLOUT_FLAG_USES_PROVIDER_CONTEXT),
            provider,
            applicable_layer: layer.layer_id(),
        };
        self.policy.callouts.push(CalloutEntry {
            spec,
            builtin,
            params,
            registered: v.registered && builtin.is_some(),
            extra_flags,
            origin: self.ctx.origin_of(t.span(), f),
        });
        Ok(())
    }

    /// A `[[callout]]`'s parameters: its own `params`, else its built-in's `[builtin."NAME"]`
    /// table, else none.
    fn callout_params(
        &self,
        v: &CalloutT,
        builtin: Option<&'static Builtin>,
        f: &str,
    ) -> Result<Params, PolicyError> {
        match (&v.params, builtin) {
            (Some(t), Some(b)) => parse_params(self.ctx, b, t, &format!("{f}.params")),
            (None, Some(b)) => Ok(self.file_params(b)),
            (Some(t), None) => Err(PolicyError::ParamsWithoutBuiltin {
                span: self.ctx.span(t.span()),
                field: format!("{f}.params"),
            }),
            (None, None) => Ok(Params::default()),
        }
    }

    fn filter(&mut self, i: usize, t: &Spanned<FilterT>) -> Result<(), PolicyError> {
        let f = format!("filter[{i}]");
        let v = t.get_ref();
        let layer = self.layer(&v.layer, &f)?;
        let action = self.constant(
            &v.action,
            format!("{f}.action"),
            Constant::Action,
            ActionType::from_name,
        )?;
        let sublayer = match &v.sublayer {
            Some(s) => self.sublayer_ref(s, format!("{f}.sublayer"))?,
            None => Guid::NULL,
        };
        let weight = match &v.weight {
            Some(w) => self.filter_weight(w, format!("{f}.weight"))?,
            None => WeightSpec::Auto,
        };
        let flags = self.flags(
            &v.flags,
            format!("{f}.flags"),
            Constant::FilterFlag,
            FilterFlags::from_name,
        )?;
        let callout = self.filter_callout(v, action, layer, &f)?;
        let provider = self.provider_ref(v.provider.as_ref(), &f)?;
        let raw_context = match &v.context {
            Some(c) => self.uint(c, format!("{f}.context"), u64::MAX)?,
            None => 0,
        };
        let provider_context = self.filter_provider_context(v, &f)?;
        let flags = if provider_context.is_some() {
            flags | FilterFlags::HAS_PROVIDER_CONTEXT
        } else {
            flags
        };
        let key = self.key(v.key.as_ref(), &f, || Guid::NULL)?;
        let conditions = v
            .condition
            .iter()
            .enumerate()
            .map(|(ci, c)| self.condition(layer, c.get_ref(), &format!("{f}.condition[{ci}]")))
            .collect::<Result<Vec<_>, _>>()?;
        let spec = FilterSpec {
            key,
            name: v.name.get_ref().clone(),
            description: v.description.clone(),
            flags,
            provider,
            layer: layer.layer_id(),
            sublayer,
            weight,
            conditions,
            action,
            callout,
            raw_context,
            provider_context,
        };
        let origin = self.ctx.origin_of(t.span(), f);
        self.policy.filters.push((spec, origin));
        Ok(())
    }

    /// One `[[provider_context]]` (§11.4): its type (GENERAL by default) and data.
    fn provider_context(
        &mut self,
        i: usize,
        t: &Spanned<ProviderContextT>,
    ) -> Result<(), PolicyError> {
        let f = format!("provider_context[{i}]");
        let v = t.get_ref();
        let key = self.key(v.key.as_ref(), &f, || {
            Guid::from_name("provider-context", v.name.get_ref())
        })?;
        let context_type = match &v.context_type {
            Some(s) => self.constant(
                s,
                format!("{f}.type"),
                Constant::ProviderContextType,
                ProviderContextType::from_name,
            )?,
            None => ProviderContextType::GENERAL,
        };
        let provider = self.provider_ref(v.provider.as_ref(), &f)?;
        self.provider_contexts.push((v.name.get_ref().clone(), key));
        let spec = ProviderContextSpec {
            key,
            name: v.name.get_ref().clone(),
            description: v.description.clone(),
            flags: flag_if(v.persistent, PROVIDER_CONTEXT_FLAG_PERSISTENT),
            provider,
            provider_data: Vec::new(),
            context_type,
            data: self.context_data(v, &f)?,
        };
        let origin = self.ctx.origin_of(t.span(), f);
        self.policy.provider_contexts.push((spec, origin));
        Ok(())
    }

    /// A provider context's bytes: `data` (UTF-8) or `data_hex`, not both; none is empty.
    fn context_data(&self, v: &ProviderContextT, f: &str) -> Result<Vec<u8>, PolicyError> {
        match (&v.data, &v.data_hex) {
            (Some(_), Some(h)) => Err(PolicyError::BadValue {
                span: self.ctx.span(h.span()),
                field: format!("{f}.data_hex"),
                reason: "give `data` (a string) or `data_hex`, not both".into(),
            }),
            (Some(s), None) => Ok(s.get_ref().as_bytes().to_vec()),
            (None, Some(h)) => unhex(h.get_ref()).ok_or_else(|| PolicyError::BadValue {
                span: self.ctx.span(h.span()),
                field: format!("{f}.data_hex"),
                reason: "expected an even number of hex digits (`_`, spaces and `:` allowed)"
                    .into(),
            }),
            (None, None) => Ok(Vec::new()),
        }
    }

    /// A filter's `provider_context`: a `[[provider_context]]` name or a key; refused together
    /// with `context` (FWPM_FILTER0 holds one or the other in a union).
    fn filter_provider_context(&self, v: &FilterT, f: &str) -> Result<Option<Guid>, PolicyError> {
        let Some(s) = &v.provider_context else {
            return Ok(None);
        };
        let field = format!("{f}.provider_context");
        if v.context.is_some() {
            return Err(PolicyError::BadValue {
                span: self.ctx.span(s.span()),
                field,
                reason: "a filter has `context` (rawContext) or `provider_context`, not both"
                    .into(),
            });
        }
        if let Some((_, k)) = self
            .provider_contexts
            .iter()
            .find(|(n, _)| n == s.get_ref())
        {
            return Ok(Some(*k));
        }
        s.get_ref()
            .parse::<Guid>()
            .map(Some)
            .map_err(|_| PolicyError::UnknownProviderContext {
                span: self.ctx.span(s.span()),
                field,
                name: s.get_ref().clone(),
            })
    }

    /// A filter weight: an integer or `"0x..."` string (UINT64), or `{ range = N }` (UINT8).
    fn filter_weight(
        &self,
        w: &Spanned<toml::Value>,
        field: String,
    ) -> Result<WeightSpec, PolicyError> {
        let toml::Value::Table(t) = w.get_ref() else {
            return Ok(WeightSpec::Exact(self.uint(w, field, u64::MAX)?));
        };
        match t.get("range") {
            Some(toml::Value::Integer(r)) if t.len() == 1 && (0..=255).contains(r) => {
                Ok(WeightSpec::Range(*r as u8))
            }
            _ => Err(PolicyError::BadWeightRange {
                span: self.ctx.span(w.span()),
                field,
            }),
        }
    }

    /// A filter's callout key: required by `CALLOUT_*` actions, refused by the others.
    fn filter_callout(
        &mut self,
        v: &FilterT,
        action: ActionType,
        layer: &'static LayerDef,
        f: &str,
    ) -> Result<Option<Guid>, PolicyError> {
        let field = format!("{f}.callout");
        match (&v.callout, action.is_callout()) {
            (Some(c), true) => self.callout_ref(c, layer, field).map(Some),
            (None, true) => Err(PolicyError::MissingCallout {
                span: self.ctx.span(v.action.span()),
                field,
            }),
            (Some(c), false) => Err(PolicyError::UnexpectedCallout {
                span: self.ctx.span(c.span()),
                field,
            }),
            (None, false) => Ok(None),
        }
    }

    /// A filter's `callout`: a `[[callout]]` name, a key, or a built-in name (which creates an
    /// implicit management callout for that built-in at the filter's layer).
    fn callout_ref(
        &mut self,
        c: &Spanned<String>,
        layer: &'static LayerDef,
        field: String,
    ) -> Result<Guid, PolicyError> {
        let name = c.get_ref();
        let callouts = &self.policy.callouts;
        let as_guid = name.parse::<Guid>().ok();
        let declared = callouts
            .iter()
            .find(|e| &e.spec.name == name && e.spec.applicable_layer == layer.layer_id())
            // Wrong layer: the engine reports FWP_E_INCOMPATIBLE_LAYER.
            .or_else(|| callouts.iter().find(|e| &e.spec.name == name))
            .or_else(|| callouts.iter().find(|e| Some(e.spec.key) == as_guid));
        if let Some(e) = declared {
            return Ok(e.spec.key);
        }
        // A built-in, by name or by its GUID: one implicit management callout per (built-in, layer).
        if let Some(b) = wfp_callouts::builtin(name) {
            return Ok(self.implicit_builtin(b, layer, c.span(), field));
        }
        // A management callout added outside this file.
        as_guid.ok_or_else(|| PolicyError::UnknownCallout {
            span: self.ctx.span(c.span()),
            field,
            name: name.clone(),
        })
    }

    /// The key of the implicit management callout for built-in `b` at `layer` (with this file's
    /// parameters for it), adding the callout the first time.
    fn implicit_builtin(
        &mut self,
        b: &'static Builtin,
        layer: &'static LayerDef,
        at: Range<usize>,
        field: String,
    ) -> Guid {
        let params = self.file_params(b);
        let name = format!("{}@{}", b.name, layer.name);
        let key = Guid::from_name("builtin-callout", &derived_name(&name, &params));
        if self.policy.callouts.iter().any(|e| e.spec.key == key) {
            return key;
        }
        self.policy.callouts.push(CalloutEntry {
            spec: CalloutSpec {
                key,
                name,
                description: b.description.to_string(),
                flags: 0,
                provider: None,
                applicable_layer: layer.layer_id(),
            },
            builtin: Some(b),
            params,
            registered: true,
            extra_flags: CalloutFlags::default(),
            origin: self.ctx.origin_of(at, field),
        });
        key
    }

    fn condition(
        &self,
        layer: &'static LayerDef,
        c: &ConditionT,
        f: &str,
    ) -> Result<ConditionSpec, PolicyError> {
        let field = self.condition_field(layer, c, f)?;
        let forced = match &c.value_type {
            Some(t) => Some(self.constant(
                t,
                format!("{f}.type"),
                Constant::DataType,
                DataType::from_name,
            )?),
            None => None,
        };
        let match_type = match &c.match_type {
            Some(m) => self.constant(
                m,
                format!("{f}.match"),
                Constant::MatchType,
                MatchType::from_name,
            )?,
            None if c.range.is_some() => MatchType::Range,
            None => MatchType::Equal,
        };
        let value = self.condition_value(field, forced, c, f)?;
        Ok(ConditionSpec {
            // Bind to the field's own condition id (aliases such as ICMP_TYPE share the port's GUID).
            field: ConditionId(field.condition),
            match_type,
            value,
        })
    }

    /// The layer field a condition names.
    fn condition_field(
        &self,
        layer: &'static LayerDef,
        c: &ConditionT,
        f: &str,
    ) -> Result<&'static FieldDef, PolicyError> {
        let name = c.field.get_ref();
        if let Some(field) = layer
            .field_index_by_name(name)
            .and_then(|i| layer.fields.get(i))
        {
            return Ok(field);
        }
        let span = self.ctx.span(c.field.span());
        let field = format!("{f}.field");
        let name = name.clone();
        Err(if catalogue::condition_by_name(&name).is_some() {
            PolicyError::FieldNotInLayer {
                span,
                field,
                name,
                layer: layer.name,
            }
        } else {
            PolicyError::UnknownCondition { span, field, name }
        })
    }

    /// A condition's `value` or `range`, as the field's type (or the forced `type`).
    fn condition_value(
        &self,
        field: &FieldDef,
        forced: Option<DataType>,
        c: &ConditionT,
        f: &str,
    ) -> Result<ConditionValue, PolicyError> {
        let bad_value = |span: Range<usize>, part: &str, reason: String| PolicyError::BadValue {
            span: self.ctx.span(span),
            field: format!("{f}.{part}"),
            reason,
        };
        let bad_condition = |span: Range<usize>, part: &str, problem| PolicyError::BadCondition {
            span: self.ctx.span(span),
            field: format!("{f}.{part}"),
            problem,
        };
        match (&c.value, &c.range, forced) {
            (_, _, Some(DataType::Empty)) => Ok(ConditionValue::Value(wfp_core::Value::Empty)),
            (Some(v), None, _) => {
                let lit = Lit::from_toml(v.get_ref());
                condition_value(field.name, field.data_type, forced, &lit)
                    .map_err(|m| bad_value(v.span(), "value", m))
            }
            (None, Some(r), _) => {
                let [lo, hi] = r.get_ref().as_slice() else {
                    return Err(bad_condition(r.span(), "range", "a range is [low, high]"));
                };
                let t = forced.unwrap_or(field.data_type);
                let conv = |x: &toml::Value| incoming_value(field.name, t, &Lit::from_toml(x));
                match (conv(lo), conv(hi)) {
                    (Ok(l), Ok(h)) => Ok(ConditionValue::Range(l, h)),
                    (Err(m), _) | (_, Err(m)) => Err(bad_value(r.span(), "range", m)),
                }
            }
            (Some(v), Some(_), _) => Err(bad_condition(
                v.span(),
                "value",
                "give either value or range, not both",
            )),
            (None, None, _) => Err(bad_condition(
                c.field.span(),
                "value",
                "missing value (or range)",
            )),
        }
    }

    // ----- names, keys and numbers ---------------------------------------------------------

    /// The layer named `s` (`f.layer` in errors).
    fn layer(&self, s: &Spanned<String>, f: &str) -> Result<&'static LayerDef, PolicyError> {
        layer_by_name(s.get_ref()).ok_or_else(|| PolicyError::UnknownLayer {
            span: self.ctx.span(s.span()),
            field: format!("{f}.layer"),
            name: s.get_ref().clone(),
        })
    }

    /// The built-in named (or keyed) `s`; `dotted` adds the hint for unquoted dotted names.
    fn builtin(
        &self,
        s: &Spanned<String>,
        field: &str,
        dotted: bool,
    ) -> Result<&'static Builtin, PolicyError> {
        wfp_callouts::builtin(s.get_ref()).ok_or_else(|| PolicyError::UnknownBuiltin {
            span: self.ctx.span(s.span()),
            field: field.to_string(),
            name: s.get_ref().clone(),
            dotted,
        })
    }

    /// The parameters this file's `[builtin."NAME"]` table gives `b` (empty: its defaults).
    fn file_params(&self, b: &Builtin) -> Params {
        self.policy
            .builtin_params
            .iter()
            .find(|(n, _)| *n == b.name)
            .map(|(_, p)| p.clone())
            .unwrap_or_default()
    }

    /// The WFP constant named `s` of family `kind`.
    fn constant<T>(
        &self,
        s: &Spanned<String>,
        field: String,
        kind: Constant,
        from_name: impl Fn(&str) -> Option<T>,
    ) -> Result<T, PolicyError> {
        from_name(s.get_ref()).ok_or_else(|| PolicyError::UnknownConstant {
            span: self.ctx.span(s.span()),
            field,
            kind,
            name: s.get_ref().clone(),
        })
    }

    /// The union of the flags named in `list`.
    fn flags<F: Default + BitOrAssign>(
        &self,
        list: &[Spanned<String>],
        field: String,
        kind: Constant,
        from_name: fn(&str) -> Option<F>,
    ) -> Result<F, PolicyError> {
        let mut flags = F::default();
        for s in list {
            flags |= self.constant(s, field.clone(), kind, from_name)?;
        }
        Ok(flags)
    }

    /// The key given in the file (`f.key`), or `derived` when there is none.
    fn key(
        &self,
        key: Option<&Spanned<String>>,
        f: &str,
        derived: impl FnOnce() -> Guid,
    ) -> Result<Guid, PolicyError> {
        let Some(k) = key else {
            return Ok(derived());
        };
        k.get_ref()
            .parse::<Guid>()
            .map_err(|error| PolicyError::BadGuid {
                span: self.ctx.span(k.span()),
                field: format!("{f}.key"),
                error,
            })
    }

    /// An object's `provider` (`f.provider`): a `[[provider]]` name or a key.
    fn provider_ref(
        &self,
        s: Option<&Spanned<String>>,
        f: &str,
    ) -> Result<Option<Guid>, PolicyError> {
        let Some(s) = s else {
            return Ok(None);
        };
        if let Some((_, k)) = self.providers.iter().find(|(n, _)| n == s.get_ref()) {
            return Ok(Some(*k));
        }
        s.get_ref()
            .parse::<Guid>()
            .map(Some)
            .map_err(|_| PolicyError::UnknownProvider {
                span: self.ctx.span(s.span()),
                field: format!("{f}.provider"),
                name: s.get_ref().clone(),
            })
    }

    /// A filter's `sublayer`: a `[[sublayer]]` name, a built-in sublayer's name (with or without
    /// `FWPM_SUBLAYER_`), or a key.
    fn sublayer_ref(&self, s: &Spanned<String>, field: String) -> Result<Guid, PolicyError> {
        let name = s.get_ref();
        if let Some((_, k)) = self.sublayers.iter().find(|(n, _)| n == name) {
            return Ok(*k);
        }
        let builtin = catalogue::builtin_sublayers().iter().find(|(n, _)| {
            name.eq_ignore_ascii_case(n) || name.eq_ignore_ascii_case(&format!("FWPM_SUBLAYER_{n}"))
        });
        if let Some((_, k)) = builtin {
            return Ok(*k);
        }
        name.parse::<Guid>()
            .map_err(|_| PolicyError::UnknownSublayer {
                span: self.ctx.span(s.span()),
                field,
                name: name.clone(),
            })
    }

    /// An unsigned integer up to `max`: a TOML integer, or a decimal or `0x` hex string (`_`
    /// separators allowed).
    fn uint(&self, v: &Spanned<toml::Value>, field: String, max: u64) -> Result<u64, PolicyError> {
        let parsed = match v.get_ref() {
            toml::Value::Integer(i) => u64::try_from(*i).ok(),
            toml::Value::String(s) => {
                let t = s.trim().replace('_', "");
                match t.strip_prefix("0x").or_else(|| t.strip_prefix("0X")) {
                    Some(h) => u64::from_str_radix(h, 16).ok(),
                    None => t.parse::<u64>().ok(),
                }
            }
            _ => None,
        };
        parsed
            .filter(|n| *n <= max)
            .ok_or_else(|| PolicyError::BadInteger {
                span: self.ctx.span(v.span()),
                field,
                max,
            })
    }
}

/// Hex digits to bytes, ignoring `_`, `:` and whitespace; `None` when malformed.
fn unhex(text: &str) -> Option<Vec<u8>> {
    let digits: Vec<u8> = text
        .bytes()
        .filter(|b| !matches!(b, b'_' | b':') && !b.is_ascii_whitespace())
        .collect();
    if digits.len() % 2 == 1 {
        return None;
    }
    digits
        .chunks(2)
        .map(|p| u8::from_str_radix(std::str::from_utf8(p).ok()?, 16).ok())
        .collect()
}
