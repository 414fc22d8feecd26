//! Parameters of built-in callouts in a policy file: the `[builtin."NAME"]` tables and the
//! `params` table of a `[[callout]]`, checked against `wfp-callouts` with source positions.
//!
//! ```text
//!  [builtin."wfp.dns-blocker"]            [[callout]] ... builtin = "wfp.dns-blocker"
//!  name = ["a.example", "*.ads.example"]  params = { name = "a.example", on_malformed = "block" }
//!            │                                         │
//!            └──────── ParamsT (spanned) ──────────────┘
//!                           │ parse: each value alone through Builtin::check (the error
//!                           │ points at that value), then the whole set
//!                           ▼
//!                    Params: [(key, value)] in key order, array elements in file order
//! ```
//!
//! A value is a string, an integer (written in decimal), or an array of them (one parameter per
//! element; an empty array is the key with an empty value, which for `name` means "no names").

use std::collections::BTreeMap;
use std::fmt;
use std::ops::Range;

use serde::de::{self, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde::Deserialize;
use toml::Spanned;
use wfp_callouts::{Builtin, ConfigError};

use crate::error::PolicyError;
use crate::resolve::Ctx;

/// A parameter table as written: key → value, both with their spans.
pub(crate) type ParamsT = BTreeMap<Spanned<String>, Spanned<ParamT>>;

/// One parameter value as written.
#[derive(Debug)]
pub(crate) enum ParamT {
    /// A string, integer, float, boolean or date (only the first two are accepted).
    Scalar(toml::Value),
    /// An array, elements with their spans.
    List(Vec<Spanned<toml::Value>>),
    /// A table: never a parameter (often an unquoted dotted built-in name).
    Table,
}

impl<'de> Deserialize<'de> for ParamT {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(ParamVisitor)
    }
}

struct ParamVisitor;

impl<'de> Visitor<'de> for ParamVisitor {
    type Value = ParamT;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a string, an integer, or an array of them")
    }

    fn visit_bool<E: de::Error>(self, v: bool) -> Result<ParamT, E> {
        Ok(ParamT::Scalar(toml::Value::Boolean(v)))
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<ParamT, E> {
        Ok(ParamT::Scalar(toml::Value::Integer(v)))
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<ParamT, E> {
        Ok(ParamT::Scalar(match i64::try_from(v) {
            Ok(i) => toml::Value::Integer(i),
            Err(_) => toml::Value::String(v.to_string()),
        }))
    }

    fn visit_f64<E: de::Error>(self, v: f64) -> Result<ParamT, E> {
        Ok(ParamT::Scalar(toml::Value::Float(v)))
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<ParamT, E> {
        Ok(ParamT::Scalar(toml::Value::String(v.to_string())))
    }

    fn visit_string<E: de::Error>(self, v: String) -> Result<ParamT, E> {
        Ok(ParamT::Scalar(toml::Value::String(v)))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<ParamT, A::Error> {
        let mut items = Vec::new();
        while let Some(item) = seq.next_element::<Spanned<toml::Value>>()? {
            items.push(item);
        }
        Ok(ParamT::List(items))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<ParamT, A::Error> {
        while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
        Ok(ParamT::Table)
    }
}

/// Checked parameters of one built-in instance, in key order (array elements in file order).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct Params(Vec<(String, String)>);

impl Params {
    /// The `(key, value)` pairs, as [`Builtin::make_with`] takes them.
    pub(crate) fn pairs(&self) -> &[(String, String)] {
        &self.0
    }

    /// No parameters: the built-in's defaults.
    pub(crate) fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// A stable text form (`key="value",...`), part of derived callout keys so that different
    /// parameters give different callouts.
    pub(crate) fn canonical(&self) -> String {
        self.0
            .iter()
            .map(|(k, v)| format!("{k}={v:?}"))
            .collect::<Vec<_>>()
            .join(",")
    }
}

/// Whether a table given as a built-in's parameters holds tables (`[builtin.wfp.dns-blocker]`
/// without quotes nests tables).
pub(crate) fn has_tables(t: &ParamsT) -> bool {
    t.values().any(|v| matches!(v.get_ref(), ParamT::Table))
}

/// Checks `table` as the parameters of `builtin`; `field` names the table in errors
/// (`builtin."wfp.dns-blocker"`, `callout[2].params`).
///
/// Every value is first tried on its own, so an error names the key or array element at fault
/// (`builtin."wfp.dns-blocker".name[1]`) with its line and column; then the whole set is tried,
/// for constraints between values.
pub(crate) fn parse_params(
    ctx: &Ctx<'_>,
    builtin: &Builtin,
    table: &Spanned<ParamsT>,
    field: &str,
) -> Result<Params, PolicyError> {
    let rejected =
        |span: Range<usize>, field: String, error: ConfigError| PolicyError::BadBuiltinParameter {
            span: ctx.span(span),
            field,
            error: Box::new(error),
        };
    let mut all: Vec<(String, String)> = Vec::new();
    for (key, value) in table.get_ref() {
        let k = key.get_ref();
        let kf = format!("{field}.{k}");
        for item in items(ctx, value, &kf)? {
            let one = [(k.clone(), item.text)];
            if let Err(e) = builtin.check(&one) {
                return Err(match e {
                    ConfigError::UnknownParameter { .. } => rejected(key.span(), kf, e),
                    _ => rejected(item.span, item.field, e),
                });
            }
            let [pair] = one;
            all.push(pair);
        }
    }
    builtin
        .check(&all)
        .map_err(|e| rejected(table.span(), field.to_string(), e))?;
    Ok(Params(all))
}

/// One parameter value as text, with where it is written.
struct Item {
    text: String,
    span: Range<usize>,
    /// `KEY` or `KEY[i]` under the table's field.
    field: String,
}

/// The values of one key (`kf` names it): one for a scalar, one per element of an array, one
/// empty value for an empty array.
fn items(ctx: &Ctx<'_>, value: &Spanned<ParamT>, kf: &str) -> Result<Vec<Item>, PolicyError> {
    match value.get_ref() {
        ParamT::Scalar(v) => Ok(vec![Item {
            text: scalar(ctx, v, value.span(), kf)?,
            span: value.span(),
            field: kf.to_string(),
        }]),
        ParamT::List(list) if list.is_empty() => Ok(vec![Item {
            text: String::new(),
            span: value.span(),
            field: kf.to_string(),
        }]),
        ParamT::List(list) => list
            .iter()
            .enumerate()
            .map(|(i, item)| {
                let f = format!("{kf}[{i}]");
                Ok(Item {
                    text: scalar(ctx, item.get_ref(), item.span(), &f)?,
                    span: item.span(),
                    field: f,
                })
            })
            .collect(),
        ParamT::Table => Err(PolicyError::BadValue {
            span: ctx.span(value.span()),
            field: kf.to_string(),
            reason: "expected a string, an integer, or an array of them, not a table".into(),
        }),
    }
}

/// A scalar parameter value as text: strings as written, integers in decimal.
fn scalar(
    ctx: &Ctx<'_>,
    v: &toml::Value,
    span: Range<usize>,
    field: &str,
) -> Result<String, PolicyError> {
    match v {
        toml::Value::String(s) => Ok(s.clone()),
        toml::Value::Integer(i) => Ok(i.to_string()),
        other => Err(PolicyError::BadValue {
            span: ctx.span(span),
            field: field.to_string(),
            reason: format!(
                "expected a string or an integer, found a {}",
                other.type_str()
            ),
        }),
    }
}
