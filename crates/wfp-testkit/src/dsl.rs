//! The test DSL: a [`Harness`] owning an engine, one-line setup helpers, packet templates and
//! verdicts (style habit 12: small macros over plain functions, struct-update templates).
//!
//! ```
//! use wfp_testkit::prelude::*;
//!
//! let h = Harness::new();
//! let fw = h.sublayer("firewall", 10);
//! let block = h.filter(layers::INBOUND_TRANSPORT_V4, fw, 5, ActionType::BLOCK);
//! let (r, _trace) = classify!(h, at INBOUND_TRANSPORT_V4,
//!     TransportV4 { remote_port: 22, ..TCP_TEMPL } => Block(Hard));
//! assert_eq!(r.deciding_filter, Some(block));
//! ```
//!
//! Every helper panics with a readable message when the engine refuses a setup step: a test whose
//! setup fails must fail. Use [`Harness::add`] to observe a refusal as a `Result`.

use std::net::Ipv4Addr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::{self, JoinHandle};

use wfp_callouts::test::{Behaviour, TestCallout};
use wfp_core::callout::{CalloutRegistration, LayerData, Metadata};
use wfp_core::catalogue::{self, condition_by_name};
use wfp_core::constants::MetadataFields;
use wfp_core::{
    ActionType, Callout, CalloutFlags, CalloutId, CalloutSpec, ClassifyResult, ConditionSpec,
    ConditionValue, Engine, EngineOptions, FilterFlags, FilterId, FilterSpec, FwpError, Guid,
    Hardness, LayerId, MatchType, Status, SublayerSpec, Trace, Value, WeightSpec,
};

use crate::scripted::{Gate, PanickingCallout, ScriptedCallout};

/// An engine plus helpers. Object names are generated (`t-filter-7`), so tests only name what
/// matters to them.
pub struct Harness {
    engine: Arc<Engine>,
    seq: AtomicU64,
}

/// A management callout and its run-time id (the id it has, or will have, when registered).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CalloutHandle {
    /// `calloutKey`.
    pub key: Guid,
    /// `calloutId`.
    pub id: CalloutId,
}

/// What runs behind a management callout.
#[derive(Clone)]
pub enum CalloutImpl {
    /// A built-in `wfp.test.*` policy-testing callout ([`wfp_callouts::test::TestCallout`]).
    Test(Behaviour),
    /// A recording scripted callout (registered with its own flags and flowDeleteFn presence).
    Scripted(Arc<ScriptedCallout>),
    /// A callout whose classifyFn panics.
    Panicking,
    /// Only the management object: never registered (brief decision 4).
    Unregistered,
    /// Any callout, with its registration flags and whether it has a flowDeleteFn.
    Custom {
        /// The functions.
        callout: Arc<dyn Callout>,
        /// FWP_CALLOUT_FLAG_*.
        flags: CalloutFlags,
        /// flowDeleteFn present.
        flow_delete: bool,
    },
}

impl CalloutImpl {
    /// The run-time registration for `key`, or `None` for [`CalloutImpl::Unregistered`].
    pub fn registration(&self, key: Guid) -> Option<CalloutRegistration> {
        let (callout, flags, flow_delete): (Arc<dyn Callout>, CalloutFlags, bool) = match self {
            Self::Test(b) => (Arc::new(TestCallout(*b)), CalloutFlags::default(), false),
            Self::Scripted(s) => (s.clone(), s.flags(), s.has_flow_delete()),
            Self::Panicking => (Arc::new(PanickingCallout), CalloutFlags::default(), false),
            Self::Unregistered => return None,
            Self::Custom {
                callout,
                flags,
                flow_delete,
            } => (callout.clone(), *flags, *flow_delete),
        };
        Some(CalloutRegistration {
            key,
            flags,
            callout,
            flow_delete,
        })
    }
}

impl From<Behaviour> for CalloutImpl {
    fn from(b: Behaviour) -> Self {
        Self::Test(b)
    }
}

impl From<Arc<ScriptedCallout>> for CalloutImpl {
    fn from(s: Arc<ScriptedCallout>) -> Self {
        Self::Scripted(s)
    }
}

impl From<&Arc<ScriptedCallout>> for CalloutImpl {
    fn from(s: &Arc<ScriptedCallout>) -> Self {
        Self::Scripted(s.clone())
    }
}

impl Default for Harness {
    fn default() -> Self {
        Self::new()
    }
}

impl Harness {
    /// A harness over a fresh engine with default options.
    pub fn new() -> Self {
        Self::with_options(EngineOptions::default())
    }

    /// A harness over a fresh engine with `options`.
    pub fn with_options(options: EngineOptions) -> Self {
        Self {
            engine: Arc::new(Engine::new(options)),
            seq: AtomicU64::new(0),
        }
    }

    /// The engine (clone the `Arc` to share it with threads).
    pub fn engine(&self) -> &Arc<Engine> {
        &self.engine
    }

    /// A unique object name with `prefix`.
    pub fn name(&self, prefix: &str) -> String {
        format!("t-{prefix}-{}", self.seq.fetch_add(1, Ordering::Relaxed))
    }

    /// Adds a sublayer (`FwpmSubLayerAdd0`) with `weight`; returns its key.
    ///
    /// # Panics
    /// When the engine refuses it.
    pub fn sublayer(&self, name: &str, weight: u16) -> Guid {
        let spec = SublayerSpec {
            name: format!("{name}#{}", self.seq.fetch_add(1, Ordering::Relaxed)),
            weight,
            ..SublayerSpec::default()
        };
        self.engine
            .add_sublayer(spec)
            .unwrap_or_else(|e| panic!("sublayer {name}: {e}"))
    }

    /// Adds a static or callout filter without conditions and with an exact (FWP_UINT64) weight.
    ///
    /// # Panics
    /// When the engine refuses it (for example a callout action: use [`Harness::callout_filter`]).
    pub fn filter(
        &self,
        layer: LayerId,
        sublayer: Guid,
        weight: u64,
        action: ActionType,
    ) -> FilterId {
        self.add_ok(self.build(layer, action).sublayer(sublayer).weight(weight))
    }

    /// A filter builder at `layer` with `action` (name generated, default sublayer, auto weight).
    pub fn build(&self, layer: LayerId, action: ActionType) -> FilterBuilder {
        FilterBuilder {
            spec: FilterSpec::new(self.name("filter"), layer, action),
        }
    }

    /// `FwpmFilterAdd0`: the engine's answer, unchanged.
    pub fn add(&self, filter: impl Into<FilterSpec>) -> Result<FilterId, FwpError> {
        self.engine.add_filter(filter.into())
    }

    /// `FwpmFilterAdd0` that must succeed.
    ///
    /// # Panics
    /// When the engine refuses the filter.
    pub fn add_ok(&self, filter: impl Into<FilterSpec>) -> FilterId {
        let spec = filter.into();
        let name = spec.name.clone();
        self.engine
            .add_filter(spec)
            .unwrap_or_else(|e| panic!("filter {name}: {e}"))
    }

    /// Deletes a filter that must exist.
    ///
    /// # Panics
    /// When the engine refuses.
    pub fn delete(&self, id: FilterId) {
        self.engine
            .delete_filter(id)
            .unwrap_or_else(|e| panic!("delete filter {}: {e}", id.0));
    }

    /// Adds a management callout applicable at `layer` (`FwpmCalloutAdd0`) without registering it.
    ///
    /// # Panics
    /// When the engine refuses it.
    pub fn management_callout(&self, layer: LayerId) -> CalloutHandle {
        self.management_callout_with_key(layer, Guid::NULL)
    }

    /// Adds a management callout with a chosen key (NULL → generated).
    ///
    /// # Panics
    /// When the engine refuses it.
    pub fn management_callout_with_key(&self, layer: LayerId, key: Guid) -> CalloutHandle {
        let name = self.name("callout");
        let spec = CalloutSpec {
            key,
            name: name.clone(),
            description: String::new(),
            flags: 0,
            provider: None,
            applicable_layer: layer,
        };
        let id = self
            .engine
            .add_callout(spec)
            .unwrap_or_else(|e| panic!("callout {name}: {e}"));
        let key = self
            .engine
            .callouts()
            .into_iter()
            .find(|c| c.id == id)
            .map(|c| c.spec.key)
            .unwrap_or_else(|| panic!("callout {name} vanished after add"));
        CalloutHandle { key, id }
    }

    /// `FwpsCalloutRegister` of `imp` under `handle.key` (nothing happens for `Unregistered`).
    pub fn register(
        &self,
        handle: CalloutHandle,
        imp: impl Into<CalloutImpl>,
    ) -> Result<CalloutId, Status> {
        match imp.into().registration(handle.key) {
            Some(reg) => self.engine.register_callout(reg),
            None => Ok(handle.id),
        }
    }

    /// `FwpsCalloutUnregisterById0`.
    pub fn unregister(&self, id: CalloutId) -> Status {
        self.engine.unregister_callout(id)
    }

    /// A management callout at `layer` with `imp` registered behind it.
    ///
    /// # Panics
    /// When adding or registering fails.
    pub fn callout(&self, layer: LayerId, imp: impl Into<CalloutImpl>) -> CalloutHandle {
        let handle = self.management_callout(layer);
        let id = self
            .register(handle, imp)
            .unwrap_or_else(|s| panic!("register callout: {s}"));
        assert_eq!(
            id, handle.id,
            "run-time id differs from the management calloutId"
        );
        handle
    }

    /// A fresh callout (management object + registration per `imp`) and a filter with
    /// `action_type` invoking it, without conditions, exact weight.
    ///
    /// # Panics
    /// When the engine refuses any step.
    pub fn callout_filter(
        &self,
        layer: LayerId,
        sublayer: Guid,
        weight: u64,
        action_type: ActionType,
        imp: impl Into<CalloutImpl>,
    ) -> (FilterId, CalloutId) {
        self.callout_filter_with(layer, sublayer, weight, action_type, imp, |b| b)
    }

    /// Like [`Harness::callout_filter`], letting `adjust` add flags or conditions to the filter.
    ///
    /// # Panics
    /// When the engine refuses any step.
    pub fn callout_filter_with(
        &self,
        layer: LayerId,
        sublayer: Guid,
        weight: u64,
        action_type: ActionType,
        imp: impl Into<CalloutImpl>,
        adjust: impl FnOnce(FilterBuilder) -> FilterBuilder,
    ) -> (FilterId, CalloutId) {
        let handle = self.callout(layer, imp);
        let builder = self
            .build(layer, action_type)
            .sublayer(sublayer)
            .weight(weight)
            .callout(handle.key);
        (self.add_ok(adjust(builder)), handle.id)
    }

    /// A layer's incoming values with the named fields set (others FWP_EMPTY).
    ///
    /// # Panics
    /// On an unknown layer or field name.
    pub fn values(&self, layer: LayerId, fields: &[(&str, Value)]) -> Vec<Value> {
        values(layer, fields)
    }

    /// Classifies without a flow handle; returns the result and the full trace.
    pub fn classify(&self, layer: LayerId, values: impl IntoValues) -> (ClassifyResult, Trace) {
        self.classify_meta(layer, values, &Metadata::default())
    }

    /// Classifies with `flow` as the flow handle (FWPS_METADATA_FIELD_FLOW_HANDLE set).
    pub fn classify_flow(
        &self,
        layer: LayerId,
        values: impl IntoValues,
        flow: u64,
    ) -> (ClassifyResult, Trace) {
        self.classify_meta(layer, values, &flow_meta(flow))
    }

    /// Classifies with explicit metadata.
    pub fn classify_meta(
        &self,
        layer: LayerId,
        values: impl IntoValues,
        meta: &Metadata,
    ) -> (ClassifyResult, Trace) {
        let values = values.into_values(layer);
        let mut trace = Trace::default();
        let r = self
            .engine
            .classify(layer, &values, meta, &mut LayerData::None, Some(&mut trace));
        (r, trace)
    }

    /// Classifies on a new thread and reports [`Gate::finished`] when the classify returns; pair it
    /// with a callout that calls [`Gate::pass`].
    pub fn spawn_classify(
        &self,
        layer: LayerId,
        values: impl IntoValues,
        meta: Metadata,
        gate: &Arc<Gate>,
    ) -> JoinHandle<ClassifyResult> {
        let engine = self.engine.clone();
        let values = values.into_values(layer);
        let gate = gate.clone();
        thread::spawn(move || {
            let r = engine.classify(layer, &values, &meta, &mut LayerData::None, None);
            gate.finished();
            r
        })
    }

    /// Classifies and asserts the verdict (the function behind [`crate::classify!`]).
    ///
    /// # Panics
    /// When the verdict differs, with the trace's explanation.
    pub fn expect(
        &self,
        layer: LayerId,
        values: impl IntoValues,
        expected: Verdict,
    ) -> (ClassifyResult, Trace) {
        let (r, t) = self.classify(layer, values);
        let got = Verdict::of(&r);
        assert_eq!(
            got,
            expected,
            "at {layer}: {}\ntrace: {:#?}",
            t.explain(&r),
            t.steps
        );
        (r, t)
    }
}

/// A filter under construction (wraps a [`FilterSpec`]).
#[derive(Clone, Debug)]
pub struct FilterBuilder {
    spec: FilterSpec,
}

impl FilterBuilder {
    /// The sublayer (NULL → FWPM_SUBLAYER_UNIVERSAL).
    pub fn sublayer(mut self, key: Guid) -> Self {
        self.spec.sublayer = key;
        self
    }

    /// An exact FWP_UINT64 weight.
    pub fn weight(mut self, w: u64) -> Self {
        self.spec.weight = WeightSpec::Exact(w);
        self
    }

    /// Any weight form.
    pub fn weight_spec(mut self, w: WeightSpec) -> Self {
        self.spec.weight = w;
        self
    }

    /// Adds FWPM_FILTER_FLAG_* bits.
    pub fn flags(mut self, flags: FilterFlags) -> Self {
        self.spec.flags |= flags;
        self
    }

    /// The callout the action references.
    pub fn callout(mut self, key: Guid) -> Self {
        self.spec.callout = Some(key);
        self
    }

    /// `rawContext`.
    pub fn raw_context(mut self, context: u64) -> Self {
        self.spec.raw_context = context;
        self
    }

    /// A fixed filter key.
    pub fn key(mut self, key: Guid) -> Self {
        self.spec.key = key;
        self
    }

    /// Appends a condition on a named field (`IP_REMOTE_PORT`, `FWPM_CONDITION_ALE_APP_ID`, …).
    ///
    /// # Panics
    /// On an unknown condition name.
    pub fn condition(
        mut self,
        field: &str,
        match_type: MatchType,
        value: impl Into<ConditionValue>,
    ) -> Self {
        let id = condition_by_name(field).unwrap_or_else(|| panic!("unknown condition {field}"));
        self.spec.conditions.push(ConditionSpec {
            field: id,
            match_type,
            value: value.into(),
        });
        self
    }

    /// Shorthand for an FWP_MATCH_EQUAL condition.
    ///
    /// # Panics
    /// On an unknown condition name.
    pub fn when(self, field: &str, value: Value) -> Self {
        self.condition(field, MatchType::Equal, value)
    }

    /// The spec.
    pub fn spec(self) -> FilterSpec {
        self.spec
    }
}

impl From<FilterBuilder> for FilterSpec {
    fn from(b: FilterBuilder) -> Self {
        b.spec
    }
}

/// A classify outcome as tests state it: `Permit(Hard)`, `Block(Soft)`, `NoMatch`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// FWP_ACTION_PERMIT with its hardness.
    Permit(Hardness),
    /// FWP_ACTION_BLOCK with its hardness.
    Block(Hardness),
    /// FWP_ACTION_NONE_NO_MATCH: no filter decided.
    NoMatch,
}

impl Verdict {
    /// The verdict of a classify result.
    ///
    /// # Panics
    /// When the result carries an action the engine must never return.
    pub fn of(r: &ClassifyResult) -> Self {
        match r.action {
            ActionType::PERMIT => Self::Permit(r.hardness),
            ActionType::BLOCK => Self::Block(r.hardness),
            ActionType::NONE_NO_MATCH => Self::NoMatch,
            other => panic!("classify returned {}", other.name()),
        }
    }
}

/// Values of the IPv4 transport tuple, set into whichever of these fields a layer has
/// (`IP_PROTOCOL`, `IP_LOCAL_ADDRESS`, `IP_REMOTE_ADDRESS`, `IP_LOCAL_PORT`, `IP_REMOTE_PORT`,
/// `FLAGS`). Use with struct-update syntax: `TransportV4 { remote_port: 22, ..TCP_TEMPL }`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TransportV4 {
    /// IP_PROTOCOL.
    pub protocol: u8,
    /// IP_LOCAL_ADDRESS.
    pub local_addr: Ipv4Addr,
    /// IP_REMOTE_ADDRESS.
    pub remote_addr: Ipv4Addr,
    /// IP_LOCAL_PORT.
    pub local_port: u16,
    /// IP_REMOTE_PORT.
    pub remote_port: u16,
    /// FLAGS (FWP_CONDITION_FLAG_*).
    pub flags: u32,
}

/// An inbound TCP segment template: 10.0.0.1:80 ← 192.0.2.7:49152.
pub const TCP_TEMPL: TransportV4 = TransportV4 {
    protocol: 6,
    local_addr: Ipv4Addr::new(10, 0, 0, 1),
    remote_addr: Ipv4Addr::new(192, 0, 2, 7),
    local_port: 80,
    remote_port: 49152,
    flags: 0,
};

/// A UDP datagram template: 10.0.0.1:53 ← 192.0.2.7:49153.
pub const UDP_TEMPL: TransportV4 = TransportV4 {
    protocol: 17,
    local_addr: Ipv4Addr::new(10, 0, 0, 1),
    remote_addr: Ipv4Addr::new(192, 0, 2, 7),
    local_port: 53,
    remote_port: 49153,
    flags: 0,
};

/// Anything that can become a layer's incoming-value array.
pub trait IntoValues {
    /// The values in the layer's FWPS_FIELD order.
    fn into_values(self, layer: LayerId) -> Vec<Value>;
}

impl IntoValues for TransportV4 {
    fn into_values(self, layer: LayerId) -> Vec<Value> {
        let Some(def) = catalogue::layer(layer) else {
            return Vec::new();
        };
        let mut v = vec![Value::Empty; def.fields.len()];
        let mut set = |name: &str, value: Value| {
            if let Some(slot) = def.field_index_by_name(name).and_then(|i| v.get_mut(i)) {
                *slot = value;
            }
        };
        set("IP_PROTOCOL", Value::Uint8(self.protocol));
        set("IP_LOCAL_ADDRESS", Value::ipv4(self.local_addr));
        set("IP_REMOTE_ADDRESS", Value::ipv4(self.remote_addr));
        set("IP_LOCAL_PORT", Value::Uint16(self.local_port));
        set("IP_REMOTE_PORT", Value::Uint16(self.remote_port));
        set("FLAGS", Value::Uint32(self.flags));
        v
    }
}

impl IntoValues for Vec<Value> {
    fn into_values(self, _layer: LayerId) -> Vec<Value> {
        self
    }
}

impl IntoValues for &Vec<Value> {
    fn into_values(self, _layer: LayerId) -> Vec<Value> {
        self.clone()
    }
}

impl IntoValues for &[Value] {
    fn into_values(self, _layer: LayerId) -> Vec<Value> {
        self.to_vec()
    }
}

/// A layer's incoming values with the named fields set (others FWP_EMPTY).
///
/// # Panics
/// On an unknown layer or a field the layer does not have.
pub fn values(layer: LayerId, fields: &[(&str, Value)]) -> Vec<Value> {
    let def = catalogue::layer(layer).unwrap_or_else(|| panic!("unknown layer {layer}"));
    let mut v = vec![Value::Empty; def.fields.len()];
    for (name, value) in fields {
        let i = def
            .field_index_by_name(name)
            .unwrap_or_else(|| panic!("layer {} has no field {name}", def.name));
        v[i] = value.clone();
    }
    v
}

/// Metadata carrying `flow` as the flow handle.
pub fn flow_meta(flow: u64) -> Metadata {
    Metadata {
        present: MetadataFields::FLOW_HANDLE,
        flow_handle: flow,
        ..Metadata::default()
    }
}

/// Classifies through a [`Harness`] and asserts the verdict; evaluates to `(ClassifyResult, Trace)`.
///
/// `classify!(h, at INBOUND_TRANSPORT_V4, TransportV4 { remote_port: 22, ..TCP_TEMPL } => Block(Hard))`
/// — the layer is a name from `wfp_core::catalogue::layers`; the values anything [`IntoValues`].
/// Append `, by FILTER_ID` to assert the deciding filter too.
#[macro_export]
macro_rules! classify {
    ($h:expr, at $layer:ident, $values:expr => $verdict:expr) => {
        $h.expect(
            $crate::wfp_core::catalogue::layers::$layer,
            $values,
            $verdict,
        )
    };
    ($h:expr, at $layer:ident, $values:expr => $verdict:expr, by $filter:expr) => {{
        let (r, t) = $h.expect(
            $crate::wfp_core::catalogue::layers::$layer,
            $values,
            $verdict,
        );
        assert_eq!(
            r.deciding_filter,
            Some($filter),
            "deciding filter: {}",
            t.explain(&r)
        );
        (r, t)
    }};
}
