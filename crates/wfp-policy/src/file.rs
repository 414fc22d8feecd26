//! The policy file format: parsing with source positions, and applying to an engine.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use serde::Deserialize;
use toml::Spanned;
use wfp_core::catalogue::{self, layer_by_name};
use wfp_core::condition::ConditionSpec;
use wfp_core::filter::{
    CALLOUT_FLAG_PERSISTENT, PROVIDER_FLAG_PERSISTENT, SUBLAYER_FLAG_PERSISTENT,
};
use wfp_core::{
    ActionType, CalloutFlags, CalloutId, CalloutRegistration, CalloutSpec, ConditionValue,
    DataType, Engine, EngineOptions, FilterFlags, FilterId, FilterSpec, FwpError, Guid, MatchType,
    ProviderSpec, Status, SublayerSpec, Transaction, WeightSpec,
};

use crate::lit::{condition_value, Lit};
use crate::params::{has_tables, parse_params, Params, ParamsT};

/// A policy that failed to parse or apply, with where and what.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{origin}:{line}:{column}: {field}: {message}")]
pub struct PolicyError {
    /// The file (or `<policy>`).
    pub origin: String,
    /// 1-based line.
    pub line: usize,
    /// 1-based column.
    pub column: usize,
    /// The offending field, e.g. `filter[2].condition[0].value`.
    pub field: String,
    /// What is wrong (engine errors keep their FWP_E_* name).
    pub message: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FileT {
    #[serde(default)]
    engine: Option<EngineT>,
    #[serde(default)]
    provider: Vec<Spanned<ProviderT>>,
    #[serde(default)]
    sublayer: Vec<Spanned<SublayerT>>,
    #[serde(default)]
    callout: Vec<Spanned<CalloutT>>,
    #[serde(default)]
    filter: Vec<Spanned<FilterT>>,
    /// `[builtin."NAME"]`: parameters of a built-in wherever this file uses it.
    #[serde(default)]
    builtin: BTreeMap<Spanned<String>, Spanned<ParamsT>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct EngineT {
    #[serde(default)]
    static_veto: bool,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ProviderT {
    name: Spanned<String>,
    key: Option<Spanned<String>>,
    #[serde(default)]
    description: String,
    #[serde(default)]
    persistent: bool,
    service_name: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SublayerT {
    name: Spanned<String>,
    key: Option<Spanned<String>>,
    #[serde(default)]
    description: String,
    weight: Option<Spanned<toml::Value>>,
    provider: Option<Spanned<String>>,
    #[serde(default)]
    persistent: bool,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CalloutT {
    name: Spanned<String>,
    key: Option<Spanned<String>>,
    #[serde(default)]
    description: String,
    layer: Spanned<String>,
    builtin: Option<Spanned<String>>,
    params: Option<Spanned<ParamsT>>,
    provider: Option<Spanned<String>>,
    #[serde(default = "yes")]
    registered: bool,
    #[serde(default)]
    flags: Vec<Spanned<String>>,
    #[serde(default)]
    persistent: bool,
}

fn yes() -> bool {
    true
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FilterT {
    name: Spanned<String>,
    key: Option<Spanned<String>>,
    #[serde(default)]
    description: String,
    layer: Spanned<String>,
    sublayer: Option<Spanned<String>>,
    weight: Option<Spanned<toml::Value>>,
    action: Spanned<String>,
    callout: Option<Spanned<String>>,
    #[serde(default)]
    flags: Vec<Spanned<String>>,
    context: Option<Spanned<toml::Value>>,
    provider: Option<Spanned<String>>,
    #[serde(default, alias = "conditions")]
    condition: Vec<Spanned<ConditionT>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ConditionT {
    field: Spanned<String>,
    #[serde(rename = "match", alias = "match_type")]
    match_type: Option<Spanned<String>>,
    value: Option<Spanned<toml::Value>>,
    range: Option<Spanned<Vec<toml::Value>>>,
    #[serde(rename = "type")]
    value_type: Option<Spanned<String>>,
}

/// Where an object came from in the file.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Origin {
    line: usize,
    column: usize,
    field: String,
}

/// A callout object of the policy and the run-time implementation to register for it.
#[derive(Clone, Debug)]
struct CalloutEntry {
    spec: CalloutSpec,
    builtin: Option<&'static wfp_callouts::Builtin>,
    /// Parameters for `builtin` (empty: its defaults).
    params: Params,
    registered: bool,
    extra_flags: CalloutFlags,
    origin: Origin,
}

/// A parsed policy: WFP object specs in file order, with their source positions.
#[derive(Clone, Debug)]
pub struct Policy {
    origin: String,
    /// Engine options requested by the `[engine]` table.
    pub options: EngineOptions,
    providers: Vec<(ProviderSpec, Origin)>,
    sublayers: Vec<(SublayerSpec, Origin)>,
    callouts: Vec<CalloutEntry>,
    filters: Vec<(FilterSpec, Origin)>,
    /// `[builtin."NAME"]` tables, by built-in name, in file order.
    builtin_params: Vec<(&'static str, Params)>,
}

/// What [`Policy::apply`] added.
#[derive(Clone, Debug, Default)]
pub struct Applied {
    /// Filter ids in file order.
    pub filters: Vec<FilterId>,
    /// Callouts registered by the apply (key, run-time id).
    pub registered: Vec<(Guid, CalloutId)>,
    /// Sublayer keys in file order.
    pub sublayers: Vec<Guid>,
    /// Provider keys in file order.
    pub providers: Vec<Guid>,
    /// Management callout keys in file order.
    pub callouts: Vec<Guid>,
    /// The parameters of every built-in callout of the policy (canonical text), by callout key:
    /// how a replace tells a reconfiguration from a reuse.
    builtin_params: Vec<(Guid, String)>,
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

    pub(crate) fn err<T>(
        &self,
        span: std::ops::Range<usize>,
        field: impl Into<String>,
        message: impl Into<String>,
    ) -> Result<T, PolicyError> {
        let (line, column) = self.pos(span.start);
        Err(PolicyError {
            origin: self.origin.to_string(),
            line,
            column,
            field: field.into(),
            message: message.into(),
        })
    }

    fn origin_of(&self, span: std::ops::Range<usize>, field: String) -> Origin {
        let (line, column) = self.pos(span.start);
        Origin {
            line,
            column,
            field,
        }
    }
}

fn parse_guid(ctx: &Ctx<'_>, s: &Spanned<String>, field: String) -> Result<Guid, PolicyError> {
    s.get_ref()
        .parse::<Guid>()
        .or_else(|e| ctx.err(s.span(), field, e.to_string()))
}

fn uint(
    ctx: &Ctx<'_>,
    v: &Spanned<toml::Value>,
    field: &str,
    max: u128,
) -> Result<u64, PolicyError> {
    let parsed = match v.get_ref() {
        toml::Value::Integer(i) if *i >= 0 => Some(*i as u128),
        toml::Value::String(s) => {
            let t = s.trim().replace('_', "");
            if let Some(h) = t.strip_prefix("0x").or_else(|| t.strip_prefix("0X")) {
                u128::from_str_radix(h, 16).ok()
            } else {
                t.parse::<u128>().ok()
            }
        }
        _ => None,
    };
    match parsed {
        Some(n) if n <= max => Ok(n as u64),
        _ => ctx.err(
            v.span(),
            field,
            format!("expected an unsigned integer up to {max:#x}"),
        ),
    }
}

impl Policy {
    /// Reads and parses a policy file.
    pub fn load(path: &Path) -> Result<Self, PolicyError> {
        let origin = path.display().to_string();
        let src = std::fs::read_to_string(path).map_err(|e| PolicyError {
            origin: origin.clone(),
            line: 0,
            column: 0,
            field: "file".into(),
            message: e.to_string(),
        })?;
        Self::parse(&src, &origin)
    }

    /// Parses policy text; `origin` names it in errors.
    pub fn parse(src: &str, origin: &str) -> Result<Self, PolicyError> {
        let ctx = Ctx::new(src, origin);
        let file: FileT = toml::from_str(src).map_err(|e| {
            let (line, column) = e.span().map_or((0, 0), |s| ctx.pos(s.start));
            PolicyError {
                origin: origin.to_string(),
                line,
                column,
                field: "toml".into(),
                message: e.message().to_string(),
            }
        })?;
        let mut p = Self {
            origin: origin.to_string(),
            options: EngineOptions {
                static_veto: file.engine.as_ref().is_some_and(|e| e.static_veto),
                ..EngineOptions::default()
            },
            providers: Vec::new(),
            sublayers: Vec::new(),
            callouts: Vec::new(),
            filters: Vec::new(),
            builtin_params: Vec::new(),
        };
        p.parse_builtin_tables(&ctx, &file.builtin)?;
        let mut provider_names: Vec<(String, Guid)> = Vec::new();
        for (i, t) in file.provider.iter().enumerate() {
            let f = format!("provider[{i}]");
            let v = t.get_ref();
            let key = match &v.key {
                Some(k) => parse_guid(&ctx, k, format!("{f}.key"))?,
                None => Guid::from_name("provider", v.name.get_ref()),
            };
            provider_names.push((v.name.get_ref().clone(), key));
            p.providers.push((
                ProviderSpec {
                    key,
                    name: v.name.get_ref().clone(),
                    description: v.description.clone(),
                    flags: if v.persistent {
                        PROVIDER_FLAG_PERSISTENT
                    } else {
                        0
                    },
                    service_name: v.service_name.clone(),
                },
                ctx.origin_of(t.span(), f),
            ));
        }
        let resolve_provider = |s: &Spanned<String>, field: String| -> Result<Guid, PolicyError> {
            if let Some((_, k)) = provider_names.iter().find(|(n, _)| n == s.get_ref()) {
                return Ok(*k);
            }
            s.get_ref().parse::<Guid>().or_else(|_| {
                ctx.err(
                    s.span(),
                    field,
                    format!("no provider named {:?}", s.get_ref()),
                )
            })
        };
        let mut sublayer_names: Vec<(String, Guid)> = Vec::new();
        for (i, t) in file.sublayer.iter().enumerate() {
            let f = format!("sublayer[{i}]");
            let v = t.get_ref();
            let key = match &v.key {
                Some(k) => parse_guid(&ctx, k, format!("{f}.key"))?,
                None => Guid::from_name("sublayer", v.name.get_ref()),
            };
            let weight = match &v.weight {
                Some(w) => uint(&ctx, w, &format!("{f}.weight"), u128::from(u16::MAX))? as u16,
                None => 0,
            };
            let provider = v
                .provider
                .as_ref()
                .map(|s| resolve_provider(s, format!("{f}.provider")))
                .transpose()?;
            sublayer_names.push((v.name.get_ref().clone(), key));
            p.sublayers.push((
                SublayerSpec {
                    key,
                    name: v.name.get_ref().clone(),
                    description: v.description.clone(),
                    flags: if v.persistent {
                        SUBLAYER_FLAG_PERSISTENT
                    } else {
                        0
                    },
                    provider,
                    weight,
                },
                ctx.origin_of(t.span(), f),
            ));
        }
        for (i, t) in file.callout.iter().enumerate() {
            let f = format!("callout[{i}]");
            let v = t.get_ref();
            let Some(layer) = layer_by_name(v.layer.get_ref()) else {
                return ctx.err(
                    v.layer.span(),
                    format!("{f}.layer"),
                    format!(
                        "FWP_E_LAYER_NOT_FOUND: unknown layer {:?}",
                        v.layer.get_ref()
                    ),
                );
            };
            let builtin = match &v.builtin {
                Some(b) => Some(wfp_callouts::builtin(b.get_ref()).map_or_else(
                    || {
                        ctx.err(
                            b.span(),
                            format!("{f}.builtin"),
                            format!(
                                "no built-in callout {:?} (known: {})",
                                b.get_ref(),
                                builtin_names()
                            ),
                        )
                    },
                    Ok,
                )?),
                None => None,
            };
            let params = match (&v.params, builtin) {
                (Some(t), Some(b)) => parse_params(&ctx, b, t, &format!("{f}.params"))?,
                (None, Some(b)) => p.file_params(b),
                (Some(t), None) => {
                    return ctx.err(
                        t.span(),
                        format!("{f}.params"),
                        "params configure a built-in callout: add builtin = \"...\"",
                    )
                }
                (None, None) => Params::default(),
            };
            let key = match &v.key {
                Some(k) => parse_guid(&ctx, k, format!("{f}.key"))?,
                None => Guid::from_name(
                    "callout",
                    &derived_name(&format!("{}@{}", v.name.get_ref(), layer.name), &params),
                ),
            };
            let mut extra = CalloutFlags::default();
            for fl in &v.flags {
                match CalloutFlags::from_name(fl.get_ref()) {
                    Some(x) => extra |= x,
                    None => {
                        return ctx.err(
                            fl.span(),
                            format!("{f}.flags"),
                            format!("unknown FWP_CALLOUT_FLAG {:?}", fl.get_ref()),
                        )
                    }
                }
            }
            let provider = v
                .provider
                .as_ref()
                .map(|s| resolve_provider(s, format!("{f}.provider")))
                .transpose()?;
            p.callouts.push(CalloutEntry {
                spec: CalloutSpec {
                    key,
                    name: v.name.get_ref().clone(),
                    description: v.description.clone(),
                    flags: if v.persistent {
                        CALLOUT_FLAG_PERSISTENT
                    } else {
                        0
                    },
                    provider,
                    applicable_layer: layer.layer_id(),
                },
                builtin,
                params,
                registered: v.registered && builtin.is_some(),
                extra_flags: extra,
                origin: ctx.origin_of(t.span(), f),
            });
        }
        for (i, t) in file.filter.iter().enumerate() {
            let spec = p.parse_filter(&ctx, i, t.get_ref(), &sublayer_names, &resolve_provider)?;
            p.filters
                .push((spec, ctx.origin_of(t.span(), format!("filter[{i}]"))));
        }
        Ok(p)
    }

    fn parse_filter(
        &mut self,
        ctx: &Ctx<'_>,
        i: usize,
        v: &FilterT,
        sublayer_names: &[(String, Guid)],
        resolve_provider: &ResolveProvider<'_>,
    ) -> Result<FilterSpec, PolicyError> {
        let f = format!("filter[{i}]");
        let Some(layer) = layer_by_name(v.layer.get_ref()) else {
            return ctx.err(
                v.layer.span(),
                format!("{f}.layer"),
                format!(
                    "FWP_E_LAYER_NOT_FOUND: unknown layer {:?}",
                    v.layer.get_ref()
                ),
            );
        };
        let Some(action) = ActionType::from_name(v.action.get_ref()) else {
            return ctx.err(
                v.action.span(),
                format!("{f}.action"),
                format!("unknown action {:?}", v.action.get_ref()),
            );
        };
        let sublayer = match &v.sublayer {
            None => Guid::NULL,
            Some(s) => {
                if let Some((_, k)) = sublayer_names.iter().find(|(n, _)| n == s.get_ref()) {
                    *k
                } else if let Some((_, k)) = catalogue::builtin_sublayers().iter().find(|(n, _)| {
                    s.get_ref().eq_ignore_ascii_case(n)
                        || s.get_ref()
                            .eq_ignore_ascii_case(&format!("FWPM_SUBLAYER_{n}"))
                }) {
                    *k
                } else {
                    s.get_ref().parse::<Guid>().or_else(|_| {
                        ctx.err(
                            s.span(),
                            format!("{f}.sublayer"),
                            format!("no sublayer named {:?}", s.get_ref()),
                        )
                    })?
                }
            }
        };
        let weight = match &v.weight {
            None => WeightSpec::Auto,
            Some(w) => match w.get_ref() {
                toml::Value::Table(t) => match t.get("range") {
                    Some(toml::Value::Integer(r)) if t.len() == 1 && (0..=255).contains(r) => {
                        WeightSpec::Range(*r as u8)
                    }
                    _ => {
                        return ctx.err(
                            w.span(),
                            format!("{f}.weight"),
                            "expected { range = N } with N a UINT8",
                        )
                    }
                },
                _ => WeightSpec::Exact(uint(ctx, w, &format!("{f}.weight"), u128::from(u64::MAX))?),
            },
        };
        let mut flags = FilterFlags::NONE;
        for fl in &v.flags {
            match FilterFlags::from_name(fl.get_ref()) {
                Some(x) => flags |= x,
                None => {
                    return ctx.err(
                        fl.span(),
                        format!("{f}.flags"),
                        format!("unknown FWPM_FILTER_FLAG {:?}", fl.get_ref()),
                    )
                }
            }
        }
        let callout = match (&v.callout, action.is_callout()) {
            (Some(c), true) => {
                Some(self.resolve_callout(ctx, c, layer, &format!("{f}.callout"))?)
            }
            (None, true) => {
                return ctx.err(
                    v.action.span(),
                    format!("{f}.callout"),
                    "a callout action needs `callout = ...`",
                )
            }
            (Some(c), false) => {
                return ctx.err(
                    c.span(),
                    format!("{f}.callout"),
                    "only CALLOUT_* actions take a callout",
                )
            }
            (None, false) => None,
        };
        let provider = v
            .provider
            .as_ref()
            .map(|s| resolve_provider(s, format!("{f}.provider")))
            .transpose()?;
        let raw_context = match &v.context {
            Some(c) => uint(ctx, c, &format!("{f}.context"), u128::from(u64::MAX))?,
            None => 0,
        };
        let key = match &v.key {
            Some(k) => parse_guid(ctx, k, format!("{f}.key"))?,
            None => Guid::NULL,
        };
        let mut conditions = Vec::new();
        for (ci, c) in v.condition.iter().enumerate() {
            conditions.push(parse_condition(
                ctx,
                layer,
                c.get_ref(),
                &format!("{f}.condition[{ci}]"),
            )?);
        }
        Ok(FilterSpec {
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
        })
    }

    /// A filter's `callout`: a `[[callout]]` name, a key, or a built-in name (which creates an
    /// implicit management callout for that built-in at the filter's layer).
    fn resolve_callout(
        &mut self,
        ctx: &Ctx<'_>,
        c: &Spanned<String>,
        layer: &catalogue::LayerDef,
        field: &str,
    ) -> Result<Guid, PolicyError> {
        let name = c.get_ref();
        if let Some(e) = self
            .callouts
            .iter()
            .find(|e| &e.spec.name == name && e.spec.applicable_layer == layer.layer_id())
        {
            return Ok(e.spec.key);
        }
        if let Some(e) = self.callouts.iter().find(|e| &e.spec.name == name) {
            return Ok(e.spec.key); // wrong layer: the engine reports FWP_E_INCOMPATIBLE_LAYER
        }
        let as_guid = name.parse::<Guid>().ok();
        if let Some(e) = self.callouts.iter().find(|e| Some(e.spec.key) == as_guid) {
            return Ok(e.spec.key);
        }
        // A built-in, by name or by its GUID: one implicit management callout per (built-in, layer).
        if let Some(b) = wfp_callouts::builtin(name) {
            let params = self.file_params(b);
            let key = Guid::from_name(
                "builtin-callout",
                &derived_name(&format!("{}@{}", b.name, layer.name), &params),
            );
            if self.callouts.iter().any(|e| e.spec.key == key) {
                return Ok(key);
            }
            self.callouts.push(CalloutEntry {
                spec: CalloutSpec {
                    key,
                    name: format!("{}@{}", b.name, layer.name),
                    description: b.description.to_string(),
                    flags: 0,
                    provider: None,
                    applicable_layer: layer.layer_id(),
                },
                builtin: Some(b),
                params,
                registered: true,
                extra_flags: CalloutFlags::default(),
                origin: ctx.origin_of(c.span(), field.to_string()),
            });
            return Ok(key);
        }
        if let Some(g) = as_guid {
            return Ok(g); // a management callout added outside this file
        }
        ctx.err(
            c.span(),
            field,
            format!(
                "no callout {name:?}: not a [[callout]] name, a GUID or a built-in ({})",
                builtin_names()
            ),
        )
    }

    /// Reads the `[builtin."NAME"]` tables (in file order).
    fn parse_builtin_tables(
        &mut self,
        ctx: &Ctx<'_>,
        tables: &BTreeMap<Spanned<String>, Spanned<ParamsT>>,
    ) -> Result<(), PolicyError> {
        let mut entries: Vec<_> = tables.iter().collect();
        entries.sort_by_key(|(name, _)| name.span().start);
        for (name, table) in entries {
            let field = format!("builtin.{:?}", name.get_ref());
            let Some(b) = wfp_callouts::builtin(name.get_ref()) else {
                let hint = if has_tables(table.get_ref()) {
                    "; quote a name that has dots: [builtin.\"wfp.dns-blocker\"]"
                } else {
                    ""
                };
                return ctx.err(
                    name.span(),
                    field,
                    format!(
                        "no built-in callout {:?} (known: {}){hint}",
                        name.get_ref(),
                        builtin_names()
                    ),
                );
            };
            if self.builtin_params.iter().any(|(n, _)| *n == b.name) {
                return ctx.err(
                    name.span(),
                    field,
                    format!("{} is configured twice (by name and by key)", b.name),
                );
            }
            let params = parse_params(ctx, b, table, &field)?;
            self.builtin_params.push((b.name, params));
        }
        Ok(())
    }

    /// The parameters this file's `[builtin."NAME"]` table gives `b` (empty: its defaults).
    fn file_params(&self, b: &wfp_callouts::Builtin) -> Params {
        self.builtin_params
            .iter()
            .find(|(n, _)| *n == b.name)
            .map(|(_, p)| p.clone())
            .unwrap_or_default()
    }

    /// Number of filters.
    pub fn filter_count(&self) -> usize {
        self.filters.len()
    }

    /// A new engine with this policy's options and objects.
    pub fn build_engine(&self) -> Result<(Arc<Engine>, Applied), PolicyError> {
        let engine = Arc::new(Engine::new(self.options.clone()));
        let applied = self.apply(&engine)?;
        Ok((engine, applied))
    }

    /// Registers the referenced built-in callouts, then adds every object in one transaction. On any
    /// error the transaction is aborted, newly registered callouts are unregistered, and the error
    /// names the object's line.
    pub fn apply(&self, engine: &Engine) -> Result<Applied, PolicyError> {
        let mut applied = Applied::default();
        self.register_builtins(engine, &mut applied)?;
        let mut txn = engine.begin();
        match self.add_objects(&mut txn, &mut applied) {
            Ok(()) => {
                txn.commit();
                Ok(applied)
            }
            Err(e) => {
                txn.abort();
                self.unregister(engine, &applied);
                Err(e)
            }
        }
    }

    /// Replaces what `previous` added (by [`Policy::apply`] or an earlier replace) with this
    /// policy, in **one transaction**: classify sees either the old policy or the new one, never a
    /// mix and never neither. See [`replace_all`].
    pub fn replace(&self, engine: &Engine, previous: &Applied) -> Result<Applied, PolicyError> {
        let mut out = replace_all(engine, std::slice::from_ref(previous), &[self])?;
        Ok(out.pop().unwrap_or_default())
    }

    /// Registers the built-ins this policy references that are not registered yet (each with its
    /// parameters), recording them in `applied.registered`. On error, unregisters what it
    /// registered.
    fn register_builtins(&self, engine: &Engine, applied: &mut Applied) -> Result<(), PolicyError> {
        for c in &self.callouts {
            if c.builtin.is_some() {
                applied
                    .builtin_params
                    .push((c.spec.key, c.params.canonical()));
            }
            let Some(b) = c.builtin.filter(|_| c.registered) else {
                continue;
            };
            if engine.callout_id(&c.spec.key).is_some() {
                continue;
            }
            let registration = b.make_with(c.params.pairs()).map_or_else(
                |e| Err(format!("{}: {e}", b.name)),
                |callout| {
                    engine
                        .register_callout(CalloutRegistration {
                            key: c.spec.key,
                            flags: b.flags | c.extra_flags,
                            callout,
                            flow_delete: b.flow_delete,
                        })
                        .map_err(|s| format!("{s}"))
                },
            );
            match registration {
                Ok(id) => applied.registered.push((c.spec.key, id)),
                Err(message) => {
                    self.unregister(engine, applied);
                    applied.registered.clear();
                    return Err(self.fail(&c.origin, &message));
                }
            }
        }
        Ok(())
    }

    /// Refuses to reuse a registration of the running policy (`previous`) for the same callout key
    /// with other parameters: a registered callout cannot be reconfigured in place, and swapping it
    /// outside the transaction would break the atomic replace. Derived keys include the
    /// parameters, so only keys given in the file can hit this.
    fn check_reconfiguration(
        &self,
        engine: &Engine,
        previous: &[Applied],
    ) -> Result<(), PolicyError> {
        for c in self
            .callouts
            .iter()
            .filter(|c| c.builtin.is_some() && c.registered)
        {
            if engine.callout_id(&c.spec.key).is_none() {
                continue;
            }
            let before = previous
                .iter()
                .flat_map(|a| a.builtin_params.iter())
                .find(|(k, _)| *k == c.spec.key);
            if let Some((_, old)) = before {
                let new = c.params.canonical();
                if *old != new {
                    let origin = Origin {
                        field: format!("{}.params", c.origin.field),
                        ..c.origin.clone()
                    };
                    return Err(self.fail(
                        &origin,
                        &format!(
                            "callout {} is registered by the running policy with other \
                             parameters ({}); a registered callout cannot be reconfigured in \
                             place: drop its `key` (a derived key follows the parameters) or \
                             give it a new one",
                            c.spec.key,
                            if old.is_empty() { "the defaults" } else { old },
                        ),
                    ));
                }
            }
        }
        Ok(())
    }

    /// Adds every object of the policy to `txn`, recording them in `applied`.
    fn add_objects(
        &self,
        txn: &mut Transaction<'_>,
        applied: &mut Applied,
    ) -> Result<(), PolicyError> {
        for (p, o) in &self.providers {
            applied.providers.push(
                txn.add_provider(p.clone())
                    .map_err(|e| self.engine_err(o, &e))?,
            );
        }
        for (s, o) in &self.sublayers {
            applied.sublayers.push(
                txn.add_sublayer(s.clone())
                    .map_err(|e| self.engine_err(o, &e))?,
            );
        }
        for c in &self.callouts {
            txn.add_callout(c.spec.clone())
                .map_err(|e| self.engine_err(&c.origin, &e))?;
            applied.callouts.push(c.spec.key);
        }
        for (f, o) in &self.filters {
            applied.filters.push(
                txn.add_filter(f.clone())
                    .map_err(|e| self.engine_err(o, &e))?,
            );
        }
        Ok(())
    }

    /// Keys of the built-in callouts this policy registers.
    fn builtin_keys(&self) -> impl Iterator<Item = Guid> + '_ {
        self.callouts
            .iter()
            .filter(|c| c.builtin.is_some() && c.registered)
            .map(|c| c.spec.key)
    }

    fn unregister(&self, engine: &Engine, applied: &Applied) {
        for (_, id) in &applied.registered {
            let _: Status = engine.unregister_callout(*id);
        }
    }

    fn fail(&self, o: &Origin, message: &str) -> PolicyError {
        PolicyError {
            origin: self.origin.clone(),
            line: o.line,
            column: o.column,
            field: o.field.clone(),
            message: message.to_string(),
        }
    }

    fn engine_err(&self, o: &Origin, e: &FwpError) -> PolicyError {
        self.fail(o, &e.to_string())
    }
}

/// Replaces the objects several earlier applies added (`previous`, one [`Applied`] per policy
/// file) with `policies`, atomically: one transaction deletes every filter, callout, sublayer and
/// provider recorded in `previous` and adds every object of `policies`, in order; the engine
/// publishes the result at commit. Returns one [`Applied`] per policy.
///
/// * **A bad policy changes nothing**: on any error the transaction is aborted (the running policy
///   stays in force, untouched) and callouts registered for the new policy are unregistered.
/// * **Built-in callouts** that both policies use stay registered (their flow contexts survive);
///   ones the new policy needs are registered before the transaction; ones only the old policy used
///   are unregistered after the commit — a callout that still has flow contexts
///   (`STATUS_DEVICE_BUSY`) stays registered and is recorded in the first returned [`Applied`],
///   so a later replace tries again.
/// * Objects of `previous` already deleted by someone else are skipped; an object still in use by
///   something outside `previous` (e.g. a sublayer holding another client's filter) fails the
///   replace.
/// * Every filter of the new policy gets a new filter id, and the layers it touches a new
///   generation, so established ALE flows are reauthorized (WFP's policy-change behaviour).
/// * Engine options (`[engine]`) cannot change on a live engine; they are ignored here.
pub fn replace_all(
    engine: &Engine,
    previous: &[Applied],
    policies: &[&Policy],
) -> Result<Vec<Applied>, PolicyError> {
    for policy in policies {
        policy.check_reconfiguration(engine, previous)?;
    }
    let mut out: Vec<Applied> = policies.iter().map(|_| Applied::default()).collect();
    let undo_registrations = |engine: &Engine, out: &[Applied]| {
        for applied in out {
            for (_, id) in &applied.registered {
                let _: Status = engine.unregister_callout(*id);
            }
        }
    };
    for (policy, applied) in policies.iter().zip(out.iter_mut()) {
        if let Err(e) = policy.register_builtins(engine, applied) {
            undo_registrations(engine, &out);
            return Err(e);
        }
    }
    let mut txn = engine.begin();
    let result = (|| {
        delete_previous(&mut txn, previous)?;
        for (policy, applied) in policies.iter().zip(out.iter_mut()) {
            policy.add_objects(&mut txn, applied)?;
        }
        Ok(())
    })();
    if let Err(e) = result {
        txn.abort();
        undo_registrations(engine, &out);
        return Err(e);
    }
    txn.commit();
    // Registrations of the old policy: keep those still referenced, release the others.
    let wanted: Vec<Guid> = policies.iter().flat_map(|p| p.builtin_keys()).collect();
    let mut kept = Vec::new();
    for (key, id) in previous.iter().flat_map(|a| a.registered.iter()) {
        if wanted.contains(key) || !engine.unregister_callout(*id).is_success() {
            kept.push((*key, *id));
        }
    }
    if let Some(first) = out.first_mut() {
        kept.append(&mut first.registered);
        first.registered = kept;
    }
    Ok(out)
}

/// Deletes the objects `previous` recorded, dependents first. Objects already gone are skipped.
fn delete_previous(txn: &mut Transaction<'_>, previous: &[Applied]) -> Result<(), PolicyError> {
    let fail = |what: &str, e: &FwpError| PolicyError {
        origin: "<running policy>".into(),
        line: 0,
        column: 0,
        field: what.to_string(),
        message: format!("cannot remove the running policy's {what}: {e}"),
    };
    let gone = |e: &FwpError| {
        matches!(
            e,
            FwpError::FilterNotFound(_)
                | FwpError::CalloutNotFound(_)
                | FwpError::SublayerNotFound(_)
                | FwpError::ProviderNotFound(_)
        )
    };
    for applied in previous {
        for id in &applied.filters {
            match txn.delete_filter(*id) {
                Err(e) if !gone(&e) => return Err(fail("filter", &e)),
                _ => {}
            }
        }
    }
    for applied in previous {
        for key in &applied.callouts {
            match txn.delete_callout(key) {
                Err(e) if !gone(&e) => return Err(fail("callout", &e)),
                _ => {}
            }
        }
    }
    for applied in previous {
        for key in &applied.sublayers {
            match txn.delete_sublayer(key) {
                Err(e) if !gone(&e) => return Err(fail("sublayer", &e)),
                _ => {}
            }
        }
    }
    for applied in previous {
        for key in &applied.providers {
            match txn.delete_provider(key) {
                Err(e) if !gone(&e) => return Err(fail("provider", &e)),
                _ => {}
            }
        }
    }
    Ok(())
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

/// Resolves a provider reference (name or key) to its key.
type ResolveProvider<'a> = dyn Fn(&Spanned<String>, String) -> Result<Guid, PolicyError> + 'a;

fn builtin_names() -> String {
    wfp_callouts::all()
        .iter()
        .map(|b| b.name)
        .collect::<Vec<_>>()
        .join(", ")
}

fn parse_condition(
    ctx: &Ctx<'_>,
    layer: &catalogue::LayerDef,
    c: &ConditionT,
    f: &str,
) -> Result<ConditionSpec, PolicyError> {
    let Some(index) = layer.field_index_by_name(c.field.get_ref()) else {
        let known = catalogue::condition_by_name(c.field.get_ref()).is_some();
        let msg = if known {
            format!(
                "FWP_E_CONDITION_NOT_FOUND: {} is not a field of layer {}",
                c.field.get_ref(),
                layer.name
            )
        } else {
            format!("unknown condition {:?}", c.field.get_ref())
        };
        return ctx.err(c.field.span(), format!("{f}.field"), msg);
    };
    let field = &layer.fields[index];
    let forced = match &c.value_type {
        Some(t) => match DataType::from_name(t.get_ref()) {
            Some(dt) => Some(dt),
            None => {
                return ctx.err(
                    t.span(),
                    format!("{f}.type"),
                    format!("unknown FWP data type {:?}", t.get_ref()),
                )
            }
        },
        None => None,
    };
    let match_type = match &c.match_type {
        Some(m) => match MatchType::from_name(m.get_ref()) {
            Some(mt) => mt,
            None => {
                return ctx.err(
                    m.span(),
                    format!("{f}.match"),
                    format!("unknown FWP_MATCH type {:?}", m.get_ref()),
                )
            }
        },
        None if c.range.is_some() => MatchType::Range,
        None => MatchType::Equal,
    };
    let value = match (&c.value, &c.range, forced) {
        (_, _, Some(DataType::Empty)) => ConditionValue::Value(wfp_core::Value::Empty),
        (Some(v), None, _) => condition_value(
            field.name,
            field.data_type,
            forced,
            &Lit::from_toml(v.get_ref()),
        )
        .or_else(|m| ctx.err(v.span(), format!("{f}.value"), m))?,
        (None, Some(r), _) => {
            let [lo, hi] = r.get_ref().as_slice() else {
                return ctx.err(r.span(), format!("{f}.range"), "a range is [low, high]");
            };
            let t = forced.unwrap_or(field.data_type);
            let conv =
                |x: &toml::Value| crate::lit::incoming_value(field.name, t, &Lit::from_toml(x));
            match (conv(lo), conv(hi)) {
                (Ok(l), Ok(h)) => ConditionValue::Range(l, h),
                (Err(m), _) | (_, Err(m)) => return ctx.err(r.span(), format!("{f}.range"), m),
            }
        }
        (Some(v), Some(_), _) => {
            return ctx.err(
                v.span(),
                format!("{f}.value"),
                "give either value or range, not both",
            )
        }
        (None, None, _) => {
            return ctx.err(
                c.field.span(),
                format!("{f}.value"),
                "missing value (or range)",
            )
        }
    };
    // Bind to the field's own condition id (aliases such as ICMP_TYPE share the port's GUID).
    let cond = wfp_core::catalogue::ConditionId(field.condition);
    Ok(ConditionSpec {
        field: cond,
        match_type,
        value,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use wfp_core::{layers, Metadata, Value};

    const GOOD: &str = r#"
[[sublayer]]
name = "high"
weight = 100

[[sublayer]]
name = "low"
weight = 10

[[filter]]
name = "permit web"
layer = "FWPM_LAYER_ALE_AUTH_CONNECT_V4"
sublayer = "high"
weight = 5
action = "PERMIT"
condition = [ { field = "IP_REMOTE_PORT", value = 80 }, { field = "IP_REMOTE_PORT", value = 443 } ]

[[filter]]
name = "veto"
layer = "ALE_AUTH_CONNECT_V4"
sublayer = "low"
action = "CALLOUT_TERMINATING"
callout = "wfp.test.block"
"#;

    #[test]
    fn applies_in_one_transaction_and_classifies() {
        let p = Policy::parse(GOOD, "good.toml").unwrap();
        let (engine, applied) = p.build_engine().unwrap();
        assert_eq!(applied.filters.len(), 2);
        let l = catalogue::layer(layers::ALE_AUTH_CONNECT_V4).unwrap();
        let mut values = vec![Value::Empty; l.fields.len()];
        values[l.field_index_by_name("IP_REMOTE_PORT").unwrap()] = Value::Uint16(443);
        let r = engine.classify(
            layers::ALE_AUTH_CONNECT_V4,
            &values,
            &Metadata::default(),
            &mut Default::default(),
            None,
        );
        // soft PERMIT in "high", then the callout BLOCKs with the right in "low".
        assert_eq!(r.action, ActionType::BLOCK);
        assert_eq!(r.deciding_filter, Some(applied.filters[1]));
    }

    #[test]
    fn errors_name_line_and_field() {
        let bad = GOOD.replace("value = 443", "value = 70000");
        let e = Policy::parse(&bad, "bad.toml").unwrap_err();
        assert_eq!(
            (e.line, e.field.as_str()),
            (16, "filter[0].condition[1].value"),
            "{e}"
        );
        let bad = GOOD.replace("CALLOUT_TERMINATING", "CALLOUT_NOPE");
        let e = Policy::parse(&bad, "bad.toml").unwrap_err();
        assert_eq!((e.line, e.field.as_str()), (22, "filter[1].action"), "{e}");
        let bad = GOOD.replace("name = \"veto\"", "name = \"veto\"\ncolour = 1");
        let e = Policy::parse(&bad, "bad.toml").unwrap_err();
        assert!(e.message.contains("colour"), "{e}");
        assert_eq!(e.line, 20, "{e}"); // the table holding the unknown key
    }

    #[test]
    fn a_builtin_referenced_twice_or_by_guid_is_one_callout() {
        let src = r#"
[[filter]]
name = "a"
layer = "ALE_AUTH_CONNECT_V4"
action = "CALLOUT_TERMINATING"
callout = "wfp.test.block"

[[filter]]
name = "b"
layer = "ALE_AUTH_CONNECT_V4"
action = "CALLOUT_TERMINATING"
callout = "{57465001-0000-4000-8000-000000000002}"

[[filter]]
name = "c"
layer = "ALE_AUTH_RECV_ACCEPT_V4"
action = "CALLOUT_TERMINATING"
callout = "wfp.test.block"
"#;
        let (engine, applied) = Policy::parse(src, "twice.toml")
            .unwrap()
            .build_engine()
            .unwrap();
        assert_eq!(applied.filters.len(), 3);
        // One management callout per (built-in, layer): two layers, two callouts, both registered.
        assert_eq!(engine.callouts().len(), 2);
        assert_eq!(applied.registered.len(), 2);
        let f = engine.filters();
        assert_eq!(f[0].callout_key(), f[1].callout_key());
        assert_ne!(f[0].callout_key(), f[2].callout_key());
    }

    #[test]
    fn alternative_spellings_and_string_weights_parse() {
        let src = r#"
[[filter]]
name = "w"
layer = "INBOUND_TRANSPORT_V4"
weight = "0xF000000000000001"
action = "FWP_ACTION_BLOCK"
conditions = [ { field = "FWPM_CONDITION_IP_REMOTE_PORT", match_type = "FWP_MATCH_RANGE", range = [1, 9] } ]
"#;
        let (engine, applied) = Policy::parse(src, "alt.toml")
            .unwrap()
            .build_engine()
            .unwrap();
        let f = engine.filter(applied.filters[0]).unwrap();
        assert_eq!(f.weight(), 0xF000_0000_0000_0001);
        assert_eq!(f.conditions().conditions().len(), 1);
    }

    #[test]
    fn engine_errors_roll_back_everything() {
        let bad = GOOD.replace("value = 443 }", "value = 443, type = \"UINT32\" }");
        let p = Policy::parse(&bad, "bad.toml").unwrap();
        let engine = Engine::default();
        let e = p.apply(&engine).unwrap_err();
        assert!(e.message.contains("FWP_E_TYPE_MISMATCH"), "{e}");
        assert_eq!(e.field, "filter[0]");
        assert!(engine.filters().is_empty());
        assert!(engine.sublayers().iter().all(|s| s.builtin));
        assert_eq!(
            engine.callout_id(&Guid::from_name(
                "builtin-callout",
                "wfp.test.block@ALE_AUTH_CONNECT_V4"
            )),
            None
        );
    }

    fn connect_action(engine: &Engine, port: u16) -> ActionType {
        let l = catalogue::layer(layers::ALE_AUTH_CONNECT_V4).unwrap();
        let mut values = vec![Value::Empty; l.fields.len()];
        values[l.field_index_by_name("IP_REMOTE_PORT").unwrap()] = Value::Uint16(port);
        engine
            .classify(
                layers::ALE_AUTH_CONNECT_V4,
                &values,
                &Metadata::default(),
                &mut Default::default(),
                None,
            )
            .action
    }

    const BLOCK_80: &str = r#"
[[sublayer]]
name = "high"
weight = 100

[[filter]]
name = "block web"
layer = "ALE_AUTH_CONNECT_V4"
sublayer = "high"
action = "BLOCK"
condition = [ { field = "IP_REMOTE_PORT", value = 80 } ]
"#;

    #[test]
    fn replace_swaps_policies_atomically_and_a_bad_one_changes_nothing() {
        let good = Policy::parse(GOOD, "good.toml").unwrap();
        let (engine, applied) = good.build_engine().unwrap();
        assert_eq!(connect_action(&engine, 443), ActionType::BLOCK);
        assert_eq!(connect_action(&engine, 80), ActionType::BLOCK);
        let veto_key = applied.registered[0].0;

        // Same objects again (same sublayer keys): deleting and re-adding in one transaction.
        let again = good.replace(&engine, &applied).unwrap();
        assert_eq!(engine.filters().len(), 2);
        assert_eq!(
            again.registered, applied.registered,
            "still registered, kept"
        );

        // A different policy: the callout the old one registered is released.
        let block80 = Policy::parse(BLOCK_80, "b.toml").unwrap();
        let swapped = block80.replace(&engine, &again).unwrap();
        assert_eq!(engine.filters().len(), 1);
        assert_eq!(connect_action(&engine, 80), ActionType::BLOCK);
        assert_eq!(connect_action(&engine, 443), ActionType::NONE_NO_MATCH);
        assert_eq!(engine.callout_id(&veto_key), None);
        assert!(engine.callouts().is_empty());
        assert_eq!(engine.sublayers().iter().filter(|s| !s.builtin).count(), 1);

        // A policy the engine rejects: everything stays as it was, nothing leaks.
        let bad = GOOD.replace("value = 443 }", "value = 443, type = \"UINT32\" }");
        let bad = Policy::parse(&bad, "bad.toml").unwrap();
        let before: Vec<FilterId> = engine.filters().iter().map(|f| f.filter_id()).collect();
        let e = bad.replace(&engine, &swapped).unwrap_err();
        assert!(e.message.contains("FWP_E_TYPE_MISMATCH"), "{e}");
        let after: Vec<FilterId> = engine.filters().iter().map(|f| f.filter_id()).collect();
        assert_eq!(before, after);
        assert_eq!(connect_action(&engine, 80), ActionType::BLOCK);
        assert_eq!(
            engine.callout_id(&veto_key),
            None,
            "registration rolled back"
        );

        // And back to the first policy, through two files at once.
        let empty = Policy::parse("", "empty.toml").unwrap();
        let both = replace_all(&engine, &[swapped], &[&good, &empty]).unwrap();
        assert_eq!(both.len(), 2);
        assert_eq!(connect_action(&engine, 443), ActionType::BLOCK);
        assert_eq!(both[0].registered.len(), 1);
    }
}
