//! The policy file format: a parsed [`Policy`] (WFP object specs in file order, with their source
//! positions) and what adding it to an engine did ([`Applied`]).
//!
//! ```text
//!  POLICY.toml ─ schema (serde, spans) ─ resolve (names → specs) ─► Policy ─ apply ─► Engine
//!                      └──────────── every failure: PolicyError { span, field, ... } ◄──┘
//! ```
//!
//! The work is split by stage: `schema` (the TOML types), `resolve` (WFP names and references →
//! object specs), `apply` (one engine transaction; [`replace_all`]) and `error` ([`PolicyError`],
//! [`Span`]). This module holds the types they share and the public entry points.

use std::path::Path;
use std::sync::Arc;

use wfp_callouts::{Builtin, Host};
use wfp_core::{
    CalloutFlags, CalloutId, CalloutSpec, Engine, EngineOptions, FilterId, FilterSpec, Guid,
    ProviderContextSpec, ProviderSpec, SublayerSpec,
};

pub use crate::apply::replace_all;
pub use crate::error::{Constant, PolicyError, Span};
use crate::params::Params;

/// A parsed policy: WFP object specs in file order, with their source positions.
#[derive(Clone, Debug)]
pub struct Policy {
    pub(crate) origin: String,
    /// Engine options requested by the `[engine]` table.
    pub options: EngineOptions,
    pub(crate) providers: Vec<(ProviderSpec, Origin)>,
    pub(crate) sublayers: Vec<(SublayerSpec, Origin)>,
    pub(crate) callouts: Vec<CalloutEntry>,
    pub(crate) provider_contexts: Vec<(ProviderContextSpec, Origin)>,
    pub(crate) filters: Vec<(FilterSpec, Origin)>,
    /// `[builtin."NAME"]` tables, by built-in name, in file order.
    pub(crate) builtin_params: Vec<(&'static str, Params)>,
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
    /// Provider context keys in file order.
    pub provider_contexts: Vec<Guid>,
    /// The parameters of every built-in callout of the policy (canonical text), by callout key:
    /// how a replace tells a reconfiguration from a reuse.
    pub(crate) builtin_params: Vec<(Guid, String)>,
}

/// Where an object came from in the file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Origin {
    pub(crate) line: usize,
    pub(crate) column: usize,
    /// `filter[2]`, `callout[0]`, ...
    pub(crate) field: String,
}

impl Origin {
    /// The position in the file named `origin`.
    pub(crate) fn span(&self, origin: &str) -> Span {
        Span {
            origin: origin.to_string(),
            line: self.line,
            column: self.column,
        }
    }
}

/// A callout object of the policy and the run-time implementation to register for it.
#[derive(Clone, Debug)]
pub(crate) struct CalloutEntry {
    pub(crate) spec: CalloutSpec,
    pub(crate) builtin: Option<&'static Builtin>,
    /// Parameters for `builtin` (empty: its defaults).
    pub(crate) params: Params,
    pub(crate) registered: bool,
    pub(crate) extra_flags: CalloutFlags,
    pub(crate) origin: Origin,
}

impl Policy {
    /// Reads and parses a policy file.
    pub fn load(path: &Path) -> Result<Self, PolicyError> {
        let origin = path.display().to_string();
        let src = std::fs::read_to_string(path).map_err(|e| PolicyError::Io {
            span: Span::whole(origin.clone()),
            kind: e.kind(),
            message: e.to_string(),
        })?;
        Self::parse(&src, &origin)
    }

    /// Parses policy text; `origin` names it in errors.
    pub fn parse(src: &str, origin: &str) -> Result<Self, PolicyError> {
        crate::resolve::parse(src, origin)
    }

    /// A policy with no objects (what parsing starts from).
    pub(crate) fn empty(origin: &str, options: EngineOptions) -> Self {
        Self {
            origin: origin.to_string(),
            options,
            providers: Vec::new(),
            sublayers: Vec::new(),
            callouts: Vec::new(),
            provider_contexts: Vec::new(),
            filters: Vec::new(),
            builtin_params: Vec::new(),
        }
    }

    /// Number of filters.
    pub fn filter_count(&self) -> usize {
        self.filters.len()
    }

    /// A new engine with this policy's options and objects; its built-in callouts report to
    /// `host`.
    pub fn build_engine(&self, host: &Host) -> Result<(Arc<Engine>, Applied), PolicyError> {
        let engine = Arc::new(Engine::new(self.options.clone()));
        let applied = self.apply(&engine, host)?;
        Ok((engine, applied))
    }

    /// Registers the referenced built-in callouts, then adds every object in one transaction. On any
    /// error the transaction is aborted, newly registered callouts are unregistered, and the error
    /// names the object's line. The built-ins are built with `host` (their clock and logs).
    pub fn apply(&self, engine: &Engine, host: &Host) -> Result<Applied, PolicyError> {
        crate::apply::apply(self, engine, host)
    }

    /// Replaces what `previous` added (by [`Policy::apply`] or an earlier replace) with this
    /// policy, in **one transaction**: classify sees either the old policy or the new one, never a
    /// mix and never neither. See [`replace_all`].
    pub fn replace(
        &self,
        engine: &Engine,
        previous: &Applied,
        host: &Host,
    ) -> Result<Applied, PolicyError> {
        let mut out = replace_all(engine, std::slice::from_ref(previous), &[self], host)?;
        Ok(out.pop().unwrap_or_default())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use wfp_core::{catalogue, layers, ActionType, Metadata, Value};

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
        let (engine, applied) = p.build_engine(&Host::new()).unwrap();
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
            (e.span().line, e.field()),
            (16, "filter[0].condition[1].value"),
            "{e}"
        );
        assert!(matches!(e, PolicyError::BadValue { .. }), "{e:?}");
        let bad = GOOD.replace("CALLOUT_TERMINATING", "CALLOUT_NOPE");
        let e = Policy::parse(&bad, "bad.toml").unwrap_err();
        assert_eq!((e.span().line, e.field()), (22, "filter[1].action"), "{e}");
        assert!(
            matches!(
                e,
                PolicyError::UnknownConstant {
                    kind: Constant::Action,
                    ..
                }
            ),
            "{e:?}"
        );
        let bad = GOOD.replace("name = \"veto\"", "name = \"veto\"\ncolour = 1");
        let e = Policy::parse(&bad, "bad.toml").unwrap_err();
        assert!(e.message().contains("colour"), "{e}");
        assert!(matches!(e, PolicyError::Toml { .. }), "{e:?}");
        assert_eq!(e.span().line, 20, "{e}"); // the table holding the unknown key
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
            .build_engine(&Host::new())
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
            .build_engine(&Host::new())
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
        let e = p.apply(&engine, &Host::new()).unwrap_err();
        assert!(e.message().contains("FWP_E_TYPE_MISMATCH"), "{e}");
        assert_eq!(e.field(), "filter[0]");
        assert!(
            matches!(&e, PolicyError::Engine { error, .. }
                if matches!(**error, wfp_core::FwpError::TypeMismatch { .. })),
            "{e:?}"
        );
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
        let host = Host::new();
        let (engine, applied) = good.build_engine(&host).unwrap();
        assert_eq!(connect_action(&engine, 443), ActionType::BLOCK);
        assert_eq!(connect_action(&engine, 80), ActionType::BLOCK);
        let veto_key = applied.registered[0].0;

        // Same objects again (same sublayer keys): deleting and re-adding in one transaction.
        let again = good.replace(&engine, &applied, &host).unwrap();
        assert_eq!(engine.filters().len(), 2);
        assert_eq!(
            again.registered, applied.registered,
            "still registered, kept"
        );

        // A different policy: the callout the old one registered is released.
        let block80 = Policy::parse(BLOCK_80, "b.toml").unwrap();
        let swapped = block80.replace(&engine, &again, &host).unwrap();
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
        let e = bad.replace(&engine, &swapped, &host).unwrap_err();
        assert!(e.message().contains("FWP_E_TYPE_MISMATCH"), "{e}");
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
        let both = replace_all(&engine, &[swapped], &[&good, &empty], &host).unwrap();
        assert_eq!(both.len(), 2);
        assert_eq!(connect_action(&engine, 443), ActionType::BLOCK);
        assert_eq!(both[0].registered.len(), 1);
    }
}
