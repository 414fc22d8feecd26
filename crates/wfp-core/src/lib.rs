//! # wfp-core — the Windows Filtering Platform filter engine, sans I/O
//!
//! This crate is the engine that callouts register with: WFP's values and constants (with WFP's
//! names and numbers), the layer catalogue, management objects (providers, sublayers, callouts,
//! filters) with transactions, classification with WFP's exact filter arbitration, the run-time
//! callout API (`FWPS_CALLOUT`-style registration, notify, flow contexts, flowDeleteFn) and a
//! per-decision trace.
//!
//! It performs no I/O, reads no clock and starts no threads; it contains no `unsafe`. Packets become
//! classify calls in `wfp-shim`; policy files are parsed by `wfp-policy`.
//!
//! ```text
//!   wfp-policy / wfpd / wfp-ffi ──► Engine::begin() ─► Transaction ─commit─► published Snapshot
//!                                                                                │
//!   wfp-shim (packets) ──► Engine::classify(layer, values, meta, layer_data) ◄────┘
//!                               │  filters in sublayer/weight order, rights, veto
//!                               ▼
//!                          Callout::classify / notify / flow_delete  (registered callouts)
//! ```
//!
//! Module map:
//! - [`guid`], [`value`], [`constants`], [`status`], [`security`] — WFP's data types and numbers.
//! - [`catalogue`] — layers, fields (`FWPS_FIELD_*` order), conditions; the single source of truth.
//! - [`condition`] — match types and the AND-of-ORs combination rule.
//! - [`filter`] — management object specs, weights, the run-time filter.
//! - [`provider_context`] — provider contexts (typed data filters carry to callouts, §11.4).
//! - [`engine`] — the engine: transactions, snapshots, callout registry, flow contexts, net events.
//! - [`classify`] — arbitration and the decision trace.
//! - `index` — the per-sublayer filter index (tuple-space search with pruning) classify uses to
//!   find the next matching filter without scanning; equal to a linear scan by contract.
//! - [`callout`] — the callout trait and classify-time structures.
//! - [`pend`], [`redirect`], [`inject`], [`stream`] — asynchronous classification, writable layer
//!   data, injection and stream DEFER/continue (§9.2, §10): state plus events a data path drains
//!   (`poll_pend_event`, `poll_injection`, `poll_stream_event`, `poll_flow_event`).
//! - [`manual`] — design notes: semantics decisions and where WFP's docs are silent.

#![forbid(unsafe_code)]

pub mod callout;
pub mod catalogue;
pub mod classify;
pub mod condition;
pub mod constants;
pub mod engine;
pub mod filter;
pub mod guid;
#[cfg(feature = "bench-internals")]
#[doc(hidden)]
pub mod index;
#[cfg(not(feature = "bench-internals"))]
mod index;
pub mod inject;
pub mod manual;
pub mod pend;
pub mod provider_context;
pub mod redirect;
pub mod security;
pub mod status;
pub mod stream;
pub mod value;

pub use callout::{
    Callout, CalloutRegistration, ClassifyContext, ClassifyOut, IncomingValues, LayerData,
    Metadata, StreamIoPacket,
};
pub use catalogue::{layers, LayerId};
pub use classify::{ClassifyResult, Hardness, StepOutcome, Trace, TraceStep};
pub use condition::{ConditionSpec, MatchType};
pub use constants::{
    ActionType, CalloutFlags, ClassifyOutFlags, ConditionFlags, FilterFlags, NotifyType, Rights,
    StreamAction,
};
pub use engine::{
    DecisionSummary, Engine, EngineOptions, FlowEvent, FlowStatus, FlowTracking, NetEvent,
    NetEventEnumTemplate, NetEventKind, PolicySummary, Reauthorization, Transaction,
};
pub use filter::{
    CalloutId, CalloutSpec, FilterId, FilterSpec, ProviderSpec, RtFilter, SublayerSpec, WeightSpec,
};
pub use guid::Guid;
pub use provider_context::{
    ProviderContext, ProviderContextId, ProviderContextSpec, ProviderContextType,
};
pub use status::{FwpError, Status};
pub use value::{ConditionValue, DataType, Value};
