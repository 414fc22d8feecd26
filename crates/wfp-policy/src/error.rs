//! Why a policy file failed to load, parse or apply: [`PolicyError`], one variant per kind of
//! problem, each with the [`Span`] (`file:line:column`) and the offending field
//! (`filter[2].condition[0].value`) it names.
//!
//! Every message reads `ORIGIN:LINE:COLUMN: FIELD: WHAT`; engine rejections keep their `FWP_E_*`
//! name. Errors with no position in the file (an unreadable file, the running policy that cannot
//! be removed) have line and column 0.

use std::fmt;

use wfp_callouts::ConfigError;
use wfp_core::guid::GuidParseError;
use wfp_core::{FwpError, Guid, Status};

/// Where in a policy: the file (or `<policy>`, `<running policy>`) and a 1-based line and column
/// in characters (0 and 0 when no position applies).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Span {
    /// The file name the policy was parsed or loaded with.
    pub origin: String,
    /// 1-based line (0: none).
    pub line: usize,
    /// 1-based column, in characters (0: none).
    pub column: usize,
}

impl Span {
    /// No position in `origin` (line and column 0).
    pub fn whole(origin: impl Into<String>) -> Self {
        Self {
            origin: origin.into(),
            line: 0,
            column: 0,
        }
    }
}

impl fmt::Display for Span {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}:{}", self.origin, self.line, self.column)
    }
}

/// A named WFP constant family a policy value must belong to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Constant {
    /// `FWP_ACTION_*` (a filter's `action`).
    Action,
    /// `FWP_CALLOUT_FLAG_*` (a callout's `flags`).
    CalloutFlag,
    /// An FWP data type (a condition's `type`).
    DataType,
    /// `FWPM_FILTER_FLAG_*` (a filter's `flags`).
    FilterFlag,
    /// `FWP_MATCH_*` (a condition's `match`).
    MatchType,
    /// `FWPM_PROVIDER_CONTEXT_TYPE` (a provider context's `type`).
    ProviderContextType,
}

impl fmt::Display for Constant {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Action => "action",
            Self::CalloutFlag => "FWP_CALLOUT_FLAG",
            Self::DataType => "FWP data type",
            Self::FilterFlag => "FWPM_FILTER_FLAG",
            Self::MatchType => "FWP_MATCH type",
            Self::ProviderContextType => "FWPM_PROVIDER_CONTEXT_TYPE",
        })
    }
}

/// A policy that failed to load, parse or apply, with where and what.
///
/// Errors carry no [`source`](std::error::Error::source): the message already includes the
/// underlying error's text, so a chain printer would repeat it. Large underlying errors are boxed
/// to keep `Result<_, PolicyError>` small.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PolicyError {
    /// A parameter of a built-in callout is unknown or has a value it cannot use.
    #[error("{span}: {field}: {error}")]
    BadBuiltinParameter {
        /// The key or value at fault.
        span: Span,
        /// `builtin."NAME".KEY[i]` or `callout[i].params.KEY`.
        field: String,
        /// What the built-in said.
        error: Box<ConfigError>,
    },
    /// A condition is malformed: no value, both a value and a range, or a range that is not a pair.
    #[error("{span}: {field}: {problem}")]
    BadCondition {
        /// The condition part at fault.
        span: Span,
        /// `filter[i].condition[j].value` or `.range`.
        field: String,
        /// What is wrong.
        problem: &'static str,
    },
    /// A key is not a GUID.
    #[error("{span}: {field}: {error}")]
    BadGuid {
        /// The key.
        span: Span,
        /// `sublayer[i].key`, ...
        field: String,
        /// The text that is not a GUID.
        error: GuidParseError,
    },
    /// A weight or context is not an unsigned integer up to `max`.
    #[error("{span}: {field}: expected an unsigned integer up to {max:#x}")]
    BadInteger {
        /// The value.
        span: Span,
        /// `sublayer[i].weight`, `filter[i].weight`, `filter[i].context`.
        field: String,
        /// The largest value accepted (a sublayer weight is a UINT16, the others UINT64).
        max: u64,
    },
    /// A value does not fit the type of its field (a condition value, a parameter value).
    #[error("{span}: {field}: {reason}")]
    BadValue {
        /// The value.
        span: Span,
        /// `filter[i].condition[j].value`, `builtin."NAME".KEY`, ...
        field: String,
        /// Why (names the expected type or form).
        reason: String,
    },
    /// A filter weight written as a table is not `{ range = N }` with N a UINT8.
    #[error("{span}: {field}: expected {{ range = N }} with N a UINT8")]
    BadWeightRange {
        /// The weight.
        span: Span,
        /// `filter[i].weight`.
        field: String,
    },
    /// A built-in callout refused the parameters it was being built with.
    #[error("{span}: {field}: {builtin}: {error}")]
    BuiltinRejected {
        /// The callout object.
        span: Span,
        /// `callout[i]` or the filter that implies it.
        field: String,
        /// The built-in.
        builtin: &'static str,
        /// What it said.
        error: Box<ConfigError>,
    },
    /// A built-in is given two `[builtin."NAME"]` tables (by name and by key).
    #[error("{span}: {field}: {builtin} is configured twice (by name and by key)")]
    DuplicateBuiltinTable {
        /// The second table's name.
        span: Span,
        /// `builtin."NAME"`.
        field: String,
        /// The built-in.
        builtin: &'static str,
    },
    /// The engine rejected an object of the policy.
    #[error("{span}: {field}: {error}")]
    Engine {
        /// The object.
        span: Span,
        /// `filter[i]`, `sublayer[i]`, ...
        field: String,
        /// The engine's error, with its `FWP_E_*` status ([`FwpError::code`]).
        error: Box<FwpError>,
    },
    /// A condition field exists but not at the filter's layer.
    #[error("{span}: {field}: FWP_E_CONDITION_NOT_FOUND: {name} is not a field of layer {layer}")]
    FieldNotInLayer {
        /// The field name.
        span: Span,
        /// `filter[i].condition[j].field`.
        field: String,
        /// The condition as written.
        name: String,
        /// The filter's layer.
        layer: &'static str,
    },
    /// The policy file could not be read.
    #[error("{span}: file: {message}")]
    Io {
        /// The file (line and column 0).
        span: Span,
        /// The kind of I/O failure.
        kind: std::io::ErrorKind,
        /// The I/O error's text.
        message: String,
    },
    /// A filter with a `CALLOUT_*` action names no callout.
    #[error("{span}: {field}: a callout action needs `callout = ...`")]
    MissingCallout {
        /// The action.
        span: Span,
        /// `filter[i].callout`.
        field: String,
    },
    /// A `[[callout]]` has `params` but no `builtin` to configure.
    #[error("{span}: {field}: params configure a built-in callout: add builtin = \"...\"")]
    ParamsWithoutBuiltin {
        /// The params table.
        span: Span,
        /// `callout[i].params`.
        field: String,
    },
    /// A callout key the running policy registered with other parameters (a registered callout
    /// cannot be reconfigured in place).
    #[error(
        "{span}: {field}: callout {key} is registered by the running policy with other \
         parameters ({}); a registered callout cannot be reconfigured in place: drop its `key` \
         (a derived key follows the parameters) or give it a new one",
        if .previous.is_empty() { "the defaults" } else { .previous.as_str() }
    )]
    Reconfigured {
        /// The callout.
        span: Span,
        /// `callout[i].params`.
        field: String,
        /// The callout key given in the file.
        key: Guid,
        /// The running parameters (canonical text; empty: the defaults).
        previous: String,
    },
    /// Registering a built-in callout failed.
    #[error("{span}: {field}: {status}")]
    RegistrationFailed {
        /// The callout object.
        span: Span,
        /// `callout[i]` or the filter that implies it.
        field: String,
        /// The built-in.
        builtin: &'static str,
        /// What `FwpsCalloutRegister` returned.
        status: Status,
    },
    /// An object of the running policy could not be deleted during a replace.
    #[error("{span}: {object}: cannot remove the running policy's {object}: {error}")]
    RemovePrevious {
        /// `<running policy>` (line and column 0).
        span: Span,
        /// `filter`, `callout`, `sublayer` or `provider`.
        object: &'static str,
        /// The engine's error.
        error: Box<FwpError>,
    },
    /// The text is not TOML, or not the policy schema (an unknown key, a wrong type, a missing
    /// field, a duplicate key).
    #[error("{span}: toml: {message}")]
    Toml {
        /// Where the parser stopped (0:0 when it gave no position).
        span: Span,
        /// The parser's message.
        message: String,
    },
    /// A `callout` on a filter whose action is not `CALLOUT_*`.
    #[error("{span}: {field}: only CALLOUT_* actions take a callout")]
    UnexpectedCallout {
        /// The callout reference.
        span: Span,
        /// `filter[i].callout`.
        field: String,
    },
    /// No built-in callout has this name or key.
    #[error(
        "{span}: {field}: no built-in callout {name:?} (known: {}){}",
        builtin_names(),
        if *.dotted { "; quote a name that has dots: [builtin.\"wfp.dns-blocker\"]" } else { "" }
    )]
    UnknownBuiltin {
        /// The name.
        span: Span,
        /// `callout[i].builtin` or `builtin."NAME"`.
        field: String,
        /// The name as written.
        name: String,
        /// Whether it looks like an unquoted dotted name (`[builtin.wfp.dns-blocker]`).
        dotted: bool,
    },
    /// A filter's `callout` is not a `[[callout]]` name, a GUID or a built-in.
    #[error(
        "{span}: {field}: no callout {name:?}: not a [[callout]] name, a GUID or a built-in ({})",
        builtin_names()
    )]
    UnknownCallout {
        /// The reference.
        span: Span,
        /// `filter[i].callout`.
        field: String,
        /// The name as written.
        name: String,
    },
    /// A condition field no layer has.
    #[error("{span}: {field}: unknown condition {name:?}")]
    UnknownCondition {
        /// The field name.
        span: Span,
        /// `filter[i].condition[j].field`.
        field: String,
        /// The name as written.
        name: String,
    },
    /// A name that is not one of the WFP constants of its kind.
    #[error("{span}: {field}: unknown {kind} {name:?}")]
    UnknownConstant {
        /// The name.
        span: Span,
        /// `filter[i].action`, `callout[i].flags`, ...
        field: String,
        /// The family it should belong to.
        kind: Constant,
        /// The name as written.
        name: String,
    },
    /// No layer has this name.
    #[error("{span}: {field}: FWP_E_LAYER_NOT_FOUND: unknown layer {name:?}")]
    UnknownLayer {
        /// The name.
        span: Span,
        /// `filter[i].layer` or `callout[i].layer`.
        field: String,
        /// The name as written.
        name: String,
    },
    /// A provider reference that is neither a `[[provider]]` name nor a GUID.
    #[error("{span}: {field}: no provider named {name:?}")]
    UnknownProvider {
        /// The reference.
        span: Span,
        /// `sublayer[i].provider`, ...
        field: String,
        /// The name as written.
        name: String,
    },
    /// A provider context reference that is neither a `[[provider_context]]` name nor a GUID.
    #[error("{span}: {field}: no provider context named {name:?}")]
    UnknownProviderContext {
        /// The reference.
        span: Span,
        /// `filter[i].provider_context`.
        field: String,
        /// The name as written.
        name: String,
    },
    /// A sublayer reference that is neither a `[[sublayer]]` name, a built-in sublayer nor a GUID.
    #[error("{span}: {field}: no sublayer named {name:?}")]
    UnknownSublayer {
        /// The reference.
        span: Span,
        /// `filter[i].sublayer`.
        field: String,
        /// The name as written.
        name: String,
    },
}

impl PolicyError {
    /// Where: file, line and column.
    pub fn span(&self) -> &Span {
        match self {
            Self::BadBuiltinParameter { span, .. }
            | Self::BadCondition { span, .. }
            | Self::BadGuid { span, .. }
            | Self::BadInteger { span, .. }
            | Self::BadValue { span, .. }
            | Self::BadWeightRange { span, .. }
            | Self::BuiltinRejected { span, .. }
            | Self::DuplicateBuiltinTable { span, .. }
            | Self::Engine { span, .. }
            | Self::FieldNotInLayer { span, .. }
            | Self::Io { span, .. }
            | Self::MissingCallout { span, .. }
            | Self::ParamsWithoutBuiltin { span, .. }
            | Self::Reconfigured { span, .. }
            | Self::RegistrationFailed { span, .. }
            | Self::RemovePrevious { span, .. }
            | Self::Toml { span, .. }
            | Self::UnexpectedCallout { span, .. }
            | Self::UnknownBuiltin { span, .. }
            | Self::UnknownCallout { span, .. }
            | Self::UnknownCondition { span, .. }
            | Self::UnknownConstant { span, .. }
            | Self::UnknownLayer { span, .. }
            | Self::UnknownProvider { span, .. }
            | Self::UnknownProviderContext { span, .. }
            | Self::UnknownSublayer { span, .. } => span,
        }
    }

    /// The offending field, e.g. `filter[2].condition[0].value` (`file` for I/O errors, `toml`
    /// for syntax errors, the object kind for a running policy that cannot be removed).
    pub fn field(&self) -> &str {
        match self {
            Self::Io { .. } => "file",
            Self::Toml { .. } => "toml",
            Self::RemovePrevious { object, .. } => object,
            Self::BadBuiltinParameter { field, .. }
            | Self::BadCondition { field, .. }
            | Self::BadGuid { field, .. }
            | Self::BadInteger { field, .. }
            | Self::BadValue { field, .. }
            | Self::BadWeightRange { field, .. }
            | Self::BuiltinRejected { field, .. }
            | Self::DuplicateBuiltinTable { field, .. }
            | Self::Engine { field, .. }
            | Self::FieldNotInLayer { field, .. }
            | Self::MissingCallout { field, .. }
            | Self::ParamsWithoutBuiltin { field, .. }
            | Self::Reconfigured { field, .. }
            | Self::RegistrationFailed { field, .. }
            | Self::UnexpectedCallout { field, .. }
            | Self::UnknownBuiltin { field, .. }
            | Self::UnknownCallout { field, .. }
            | Self::UnknownCondition { field, .. }
            | Self::UnknownConstant { field, .. }
            | Self::UnknownLayer { field, .. }
            | Self::UnknownProvider { field, .. }
            | Self::UnknownProviderContext { field, .. }
            | Self::UnknownSublayer { field, .. } => field,
        }
    }

    /// What is wrong: the message without the `ORIGIN:LINE:COLUMN: FIELD: ` prefix (engine
    /// errors keep their `FWP_E_*` name).
    pub fn message(&self) -> String {
        let full = self.to_string();
        let prefix = format!("{}: {}: ", self.span(), self.field());
        match full.strip_prefix(&prefix) {
            Some(rest) => rest.to_string(),
            None => full,
        }
    }
}

/// The built-in callout names, for "known: ..." lists.
fn builtin_names() -> String {
    wfp_callouts::all()
        .iter()
        .map(|b| b.name)
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_read_origin_line_column_field_what() {
        let e = PolicyError::UnknownLayer {
            span: Span {
                origin: "p.toml".into(),
                line: 3,
                column: 9,
            },
            field: "filter[0].layer".into(),
            name: "NOPE".into(),
        };
        assert_eq!(
            e.to_string(),
            "p.toml:3:9: filter[0].layer: FWP_E_LAYER_NOT_FOUND: unknown layer \"NOPE\""
        );
        assert_eq!(e.field(), "filter[0].layer");
        assert_eq!(e.message(), "FWP_E_LAYER_NOT_FOUND: unknown layer \"NOPE\"");
        let io = PolicyError::Io {
            span: Span::whole("x.toml"),
            kind: std::io::ErrorKind::NotFound,
            message: "gone".into(),
        };
        assert_eq!(io.to_string(), "x.toml:0:0: file: gone");
        assert_eq!((io.field(), io.message().as_str()), ("file", "gone"));
    }
}
