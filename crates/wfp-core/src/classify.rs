//! Classification and filter arbitration (wfp-reference §7.3–7.5, brief decisions 1–4 and 11).
//!
//! For one layer, every sublayer is evaluated in order (weight descending, then creation order);
//! inside a sublayer the matching filters run in order (effective weight descending, then filter id)
//! until one returns PERMIT or BLOCK. The running decision carries FWPS_RIGHT_ACTION_WRITE: while it
//! is set a lower sublayer may override; once cleared only a callout BLOCK can change a PERMIT
//! (a veto, which also produces a net event).

use std::cell::Cell;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::Ordering;
use std::sync::Arc;

use crate::callout::{ClassifyContext, ClassifyOut, IncomingValues, LayerData, Metadata};
use crate::catalogue::{self, LayerId};
use crate::constants::{
    ActionType, CalloutFlags, ClassifyOutFlags, ConditionFlags, Rights, RtFilterFlags, StreamAction,
};
use crate::engine::{
    ContractViolation, DecisionSummary, Engine, NetEvent, NetEventDetail, NetEventHeader,
    NetEventKind, Registered,
};
use crate::filter::{CalloutId, FilterId, RtFilter};
use crate::guid::Guid;
use crate::index::Hit;
use crate::redirect::RedirectSlot;
use crate::value::Value;

/// Whether a decision can still be overridden by a lower sublayer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Hardness {
    /// FWPS_RIGHT_ACTION_WRITE was cleared: final (except a callout veto of a PERMIT).
    Hard,
    /// The write right is still set: a lower sublayer may override.
    Soft,
}

/// The outcome of one classify.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClassifyResult {
    /// FWP_ACTION_PERMIT, FWP_ACTION_BLOCK, or FWP_ACTION_NONE_NO_MATCH when no filter decided.
    pub action: ActionType,
    /// Hard or soft (meaningless for NONE_NO_MATCH).
    pub hardness: Hardness,
    /// The filter whose decision stands.
    pub deciding_filter: Option<FilterId>,
    /// FWPS_CLASSIFY_OUT_FLAG_* of the deciding callout (ABSORB: drop silently).
    pub flags: ClassifyOutFlags,
    /// Set when the decision is a veto of a hard permit.
    pub vetoed: bool,
    /// A stream action set by a stream-layer callout (the engine stops at the first one).
    pub stream: Option<StreamVerdict>,
}

impl ClassifyResult {
    /// True for a BLOCK carrying FWPS_CLASSIFY_OUT_FLAG_ABSORB.
    pub fn absorbed(&self) -> bool {
        self.action == ActionType::BLOCK && self.flags.contains(ClassifyOutFlags::ABSORB)
    }
}

/// What a stream callout asked for (§9.2).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StreamVerdict {
    /// The filter whose callout set it.
    pub filter: FilterId,
    /// The callout.
    pub callout: CalloutId,
    /// FWPS_STREAM_ACTION_*.
    pub action: StreamAction,
    /// `countBytesRequired`.
    pub count_bytes_required: u32,
    /// `countBytesEnforced`.
    pub count_bytes_enforced: u64,
    /// The callout's `actionType` (only meaningful with StreamAction::None).
    pub action_type: ActionType,
}

/// How one callout invocation went ([`Engine::invoke_callout`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Invocation {
    /// classifyFn ran; `out` is what it left in `FWPS_CLASSIFY_OUT0`.
    Ran {
        /// The classify-out after the call.
        out: ClassifyOut,
        /// The callout's run-time id.
        callout: CalloutId,
    },
    /// The callout is not registered (or is unregistering): apply §5.4.
    Unregistered,
    /// CONDITIONAL_ON_FLOW and no context for (flow, layer, callout): the filter contributes nothing.
    SkippedNoFlowContext,
    /// classifyFn panicked; contained and counted; treat as unregistered.
    Panicked,
}

/// What one filter did during a classify (one line of the decision trace).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum StepOutcome {
    /// The filter decided PERMIT or BLOCK and the decision was taken.
    Decided {
        /// PERMIT or BLOCK.
        action: ActionType,
        /// Hard or soft.
        hardness: Hardness,
    },
    /// CONTINUE: no decision, next filter.
    Continue,
    /// The filter returned PERMIT/BLOCK but a hard decision stood; the sublayer ends.
    Overridden {
        /// What the filter returned.
        action: ActionType,
    },
    /// A callout without the write right left the action unchanged (or wrote something other than a
    /// veto): the filter contributes nothing (brief decision 11).
    NoRight {
        /// What the callout left in `actionType`.
        action: ActionType,
    },
    /// A callout BLOCK overrode a hard PERMIT.
    Veto,
    /// CONDITIONAL_ON_FLOW callout with no context for this flow: skipped.
    SkippedNoFlowContext,
    /// Unregistered callout on an INSPECTION filter: skipped.
    SkippedUnregistered,
    /// Unregistered callout on a TERMINATING/UNKNOWN filter, acting as a static BLOCK or PERMIT.
    Unregistered {
        /// BLOCK (hard), or PERMIT with PERMIT_IF_CALLOUT_UNREGISTERED.
        action: ActionType,
    },
    /// The callout panicked and was treated as unregistered.
    Panicked,
    /// A stream action ended the classify.
    StreamAction(StreamAction),
}

/// One trace line.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TraceStep {
    /// Sublayer key.
    pub sublayer: Guid,
    /// Sublayer name.
    pub sublayer_name: Arc<str>,
    /// Sublayer weight.
    pub sublayer_weight: u16,
    /// Filter id.
    pub filter_id: FilterId,
    /// Filter name.
    pub filter_name: Arc<str>,
    /// Effective weight.
    pub weight: u64,
    /// Filter action type.
    pub action_type: ActionType,
    /// Decision before this filter ran.
    pub before: ActionType,
    /// Whether the write right was set before this filter ran.
    pub write_right_before: bool,
    /// What happened.
    pub outcome: StepOutcome,
}

/// The full decision trace of a classify: every matching filter considered, in order.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Trace {
    /// The steps.
    pub steps: Vec<TraceStep>,
    /// Filters at the layer whose conditions did not match (counted, not listed).
    pub not_matched: usize,
}

impl Trace {
    /// A one-line explanation of why the final action won.
    pub fn explain(&self, result: &ClassifyResult) -> String {
        let Some(id) = result.deciding_filter else {
            return "no filter decided: FWP_ACTION_NONE_NO_MATCH (the data path applies its default)".into();
        };
        let step = self.steps.iter().rev().find(|s| {
            s.filter_id == id
                && matches!(
                    s.outcome,
                    StepOutcome::Decided { .. }
                        | StepOutcome::Veto
                        | StepOutcome::Unregistered { .. }
                        | StepOutcome::Panicked
                )
        });
        let name = step.map_or_else(
            || format!("filter {}", id.0),
            |s| {
                format!(
                    "filter {} \"{}\" in sublayer \"{}\"",
                    id.0, s.filter_name, s.sublayer_name
                )
            },
        );
        if result.vetoed {
            return format!("{name} vetoed a hard PERMIT with a callout BLOCK");
        }
        let hard = match result.hardness {
            Hardness::Hard => "hard (write right cleared; no lower sublayer could override it)",
            Hardness::Soft => "soft (no lower sublayer overrode it)",
        };
        format!("{name} decided {} {hard}", result.action.name())
    }
}

/// Coerces a callout's `actionType` by its filter's action type (§2.5 table).
pub fn coerce(result: ActionType, filter_action: ActionType) -> ActionType {
    match filter_action {
        ActionType::CALLOUT_TERMINATING => match result {
            ActionType::PERMIT => ActionType::PERMIT,
            _ => ActionType::BLOCK,
        },
        ActionType::CALLOUT_UNKNOWN => match result {
            ActionType::PERMIT | ActionType::BLOCK => result,
            _ => ActionType::CONTINUE,
        },
        ActionType::CALLOUT_INSPECTION => ActionType::CONTINUE,
        other => other,
    }
}

/// Per-classify inputs that callouts see besides the values (bundled to keep signatures short).
struct Extras<'a> {
    /// The writable request at a redirect layer.
    redirect: Option<&'a RedirectSlot>,
}

/// One callout call's inputs.
struct Call<'a> {
    values: &'a IncomingValues<'a>,
    meta: &'a Metadata,
    flow: Option<u64>,
    extras: &'a Extras<'a>,
}

/// True when the layer's FLAGS value carries FWP_CONDITION_FLAG_IS_REAUTHORIZE.
pub(crate) fn is_reauthorize(layer: LayerId, values: &[Value]) -> bool {
    let Some(i) =
        catalogue::layer(layer).and_then(|l| l.fields.iter().position(|f| f.name == "FLAGS"))
    else {
        return false;
    };
    matches!(values.get(i), Some(Value::Uint32(f)) if f & ConditionFlags::IS_REAUTHORIZE.0 != 0)
}

struct State {
    action: ActionType,
    write: bool,
    deciding: Option<FilterId>,
    flags: ClassifyOutFlags,
    vetoed: bool,
    stream: Option<StreamVerdict>,
    /// The deciding filter's callout and the hard permit a veto overrode (for net events).
    deciding_callout: Option<CalloutId>,
    overridden: Option<FilterId>,
    /// Matching filters considered.
    considered: u32,
}

impl State {
    /// Before any filter: NONE_NO_MATCH with the write right.
    fn new() -> Self {
        Self {
            action: ActionType::NONE_NO_MATCH,
            write: true,
            deciding: None,
            flags: ClassifyOutFlags::default(),
            vetoed: false,
            stream: None,
            deciding_callout: None,
            overridden: None,
            considered: 0,
        }
    }
}

/// Where a PERMIT/BLOCK came from (for the trace).
#[derive(Clone, Copy, PartialEq, Eq)]
enum Origin {
    Filter,
    Unregistered,
    Panicked,
}

enum Eval {
    /// PERMIT/BLOCK with "clears the right", the classify-out flags and its origin.
    Decision(ActionType, bool, ClassifyOutFlags, Origin),
    Continue(StepOutcome),
    Veto(ClassifyOutFlags),
    Stream(StreamVerdict),
}

impl Engine {
    /// Classifies at `layer` (§7.5): `values` in the layer's FWPS_FIELD order, `meta` as the shim
    /// filled it, `layer_data` passed to callouts. Pass `trace` to record every filter considered.
    pub fn classify(
        &self,
        layer: LayerId,
        values: &[Value],
        meta: &Metadata,
        layer_data: &mut LayerData<'_>,
        trace: Option<&mut Trace>,
    ) -> ClassifyResult {
        let r = self.classify_inner(layer, values, meta, layer_data, trace, None);
        self.after_classify();
        r.0
    }

    /// [`Engine::classify`], also telling whether the result may be reused: `Some(epoch)` when
    /// only static PERMIT/BLOCK filters matched and nothing else happened (no callout ran, no veto
    /// event was raised) — the result is then a pure function of `values` under the policy of
    /// [`PolicySummary::epoch`](crate::engine::PolicySummary::epoch) `epoch`, and a data path may answer identical values with it for
    /// as long as the engine's epoch is still `epoch` (a flow's per-packet layers, for example).
    /// `None` when any callout filter matched: callouts see every packet.
    pub fn classify_cacheable(
        &self,
        layer: LayerId,
        values: &[Value],
        meta: &Metadata,
        layer_data: &mut LayerData<'_>,
    ) -> (ClassifyResult, Option<u64>) {
        let r = self.classify_inner(layer, values, meta, layer_data, None, None);
        self.after_classify();
        r
    }

    /// A classify at a redirect layer, with the writable request in `slot` ([`crate::redirect`]).
    pub(crate) fn classify_with_redirect(
        &self,
        layer: LayerId,
        values: &[Value],
        meta: &Metadata,
        layer_data: &mut LayerData<'_>,
        slot: &RedirectSlot,
    ) -> ClassifyResult {
        let r = self.classify_inner(layer, values, meta, layer_data, None, Some(slot));
        self.after_classify();
        r.0
    }

    fn classify_inner(
        &self,
        layer: LayerId,
        values: &[Value],
        meta: &Metadata,
        layer_data: &mut LayerData<'_>,
        trace: Option<&mut Trace>,
        redirect: Option<&RedirectSlot>,
    ) -> (ClassifyResult, Option<u64>) {
        let extras = Extras { redirect };
        self.pend_enter(meta, layer, values);
        let r = self.arbitrate(layer, values, meta, layer_data, trace, &extras);
        self.pend_leave(meta);
        r
    }

    fn arbitrate(
        &self,
        layer: LayerId,
        values: &[Value],
        meta: &Metadata,
        layer_data: &mut LayerData<'_>,
        mut trace: Option<&mut Trace>,
        extras: &Extras<'_>,
    ) -> (ClassifyResult, Option<u64>) {
        let snapshot = self.snapshot.load();
        let epoch = snapshot.epoch;
        let mut st = State::new();
        let Some(view) = snapshot.layer(usize::from(layer.0)) else {
            return (finish(st), Some(epoch));
        };
        if view.sublayers.is_empty() {
            return (finish(st), Some(epoch));
        }
        // The callout table is read only when a callout filter matches (static filters never
        // need it).
        let mut registry = None;
        let mut pure = true;
        let flow = meta
            .flow()
            .filter(|_| catalogue::layer(layer).is_some_and(|l| l.is_flow_capable()));
        let incoming = IncomingValues { layer, values };
        'sublayers: for sub in &view.sublayers {
            // The index yields exactly the filters a linear scan would match, in order.
            let mut cursor = crate::index::Cursor::default();
            // Filters of the sublayer walked past so far (for the trace).
            let mut walked = 0;
            while let Some(hit) = sub.index.next(values, &mut cursor) {
                let f = hit.filter;
                if let Some(t) = trace.as_deref_mut() {
                    let rank = sub.index.rank(f);
                    t.not_matched += rank.saturating_sub(walked + 1);
                    walked = rank;
                }
                st.considered = st.considered.saturating_add(1);
                let before = (st.action, st.write);
                let table: &[Option<Arc<Registered>>] = if hit.head.action.is_callout() {
                    pure = false;
                    registry.get_or_insert_with(|| self.registry.snapshot())
                } else {
                    &[]
                };
                let call = Call {
                    values: &incoming,
                    meta,
                    flow,
                    extras,
                };
                let eval = self.evaluate(&hit, &st, table, &call, layer_data);
                // A PERMIT/BLOCK ends the sublayer even when a hard decision ignores it (§7.3, §7.5).
                let ends_sublayer = !matches!(eval, Eval::Continue(_));
                let stream_stop = matches!(eval, Eval::Stream(_));
                let outcome = self.apply(&mut st, &hit, eval, &call);
                if let Some(t) = trace.as_deref_mut() {
                    t.steps.push(TraceStep {
                        sublayer: sub.key,
                        sublayer_name: sub.name.clone(),
                        sublayer_weight: sub.weight,
                        filter_id: f.filter_id,
                        filter_name: f.name.clone(),
                        weight: f.weight,
                        action_type: f.action,
                        before: before.0,
                        write_right_before: before.1,
                        outcome,
                    });
                }
                if stream_stop {
                    break 'sublayers;
                }
                if ends_sublayer {
                    continue 'sublayers;
                }
            }
            if let Some(t) = trace.as_deref_mut() {
                t.not_matched += sub.index.len().saturating_sub(walked);
            }
        }
        // A veto or a classify net event is not something a cached answer would repeat.
        let recorded = self.record_classify(&st, &incoming, flow);
        let reusable = (pure && !st.vetoed && !recorded).then_some(epoch);
        (finish(st), reusable)
    }

    fn evaluate(
        &self,
        hit: &Hit<'_>,
        st: &State,
        registry: &[Option<Arc<Registered>>],
        call: &Call<'_>,
        layer_data: &mut LayerData<'_>,
    ) -> Eval {
        // Static filters from the index's head alone (the filter object is not read).
        match hit.head.action {
            ActionType::PERMIT => {
                let clears = hit.head.clears;
                return Eval::Decision(
                    ActionType::PERMIT,
                    clears,
                    ClassifyOutFlags::default(),
                    Origin::Filter,
                );
            }
            ActionType::BLOCK => {
                return Eval::Decision(
                    ActionType::BLOCK,
                    true,
                    ClassifyOutFlags::default(),
                    Origin::Filter,
                )
            }
            _ => {}
        }
        let f: &RtFilter = hit.filter;
        let reg = f
            .callout_id
            .and_then(|id| registry.get(id.0 as usize))
            .and_then(Option::as_ref);
        let preset = ClassifyOut {
            action_type: if st.action == ActionType::NONE_NO_MATCH {
                ActionType::CONTINUE
            } else {
                st.action
            },
            out_context: 0,
            filter_id: f.filter_id.0,
            rights: if st.write {
                Rights::ACTION_WRITE
            } else {
                Rights::default()
            },
            flags: ClassifyOutFlags::default(),
        };
        let (out, callout) = match self.invoke_registered(reg, f, call, layer_data, preset) {
            Invocation::Ran { out, callout } => (out, callout),
            Invocation::Unregistered => return unregistered(f),
            Invocation::SkippedNoFlowContext => {
                return Eval::Continue(StepOutcome::SkippedNoFlowContext)
            }
            Invocation::Panicked => {
                return match unregistered(f) {
                    Eval::Decision(a, c, fl, _) => Eval::Decision(a, c, fl, Origin::Panicked),
                    _ => Eval::Continue(StepOutcome::Panicked),
                }
            }
        };
        // §9.2: any stream action other than NONE makes the engine ignore actionType.
        if let LayerData::Stream(io) = layer_data {
            if io.stream_action != StreamAction::None {
                let mut v = StreamVerdict {
                    filter: f.filter_id,
                    callout,
                    action: io.stream_action,
                    count_bytes_required: io.count_bytes_required,
                    count_bytes_enforced: io.count_bytes_enforced,
                    action_type: out.action_type,
                };
                // §9.2 / T-ST-7: DEFER is recorded (inbound) or refused (outbound).
                self.stream_verdict(&mut v, call.flow, f.layer, io.stream_data.flags);
                return Eval::Stream(v);
            }
        }
        if !matches!(layer_data, LayerData::Stream(_)) {
            // §2.6 rule 8: the stream layer has its own protocol; elsewhere the contract holds.
            if let Some(v) = contract_violation(st, f, &out) {
                self.report_contract(f, v, call);
            }
        }
        if !st.write {
            // Brief decision 11: without the right only a BLOCK over a (hard) PERMIT counts — a veto.
            if out.action_type == ActionType::BLOCK
                && st.action == ActionType::PERMIT
                && f.action != ActionType::CALLOUT_INSPECTION
            {
                return Eval::Veto(out.flags);
            }
            return Eval::Continue(StepOutcome::NoRight {
                action: out.action_type,
            });
        }
        let res = coerce(out.action_type, f.action);
        if res == ActionType::CONTINUE {
            return Eval::Continue(StepOutcome::Continue);
        }
        Eval::Decision(
            res,
            !out.rights.contains(Rights::ACTION_WRITE),
            out.flags,
            Origin::Filter,
        )
    }

    /// Runs one callout filter's callout, the way classify does (§6.3 CONDITIONAL_ON_FLOW check,
    /// flow context lookup, in-flight accounting, panic containment), with `out` as the preset
    /// `FWPS_CLASSIFY_OUT0`. For data paths that run their own protocol over a layer's callouts —
    /// the stream layer's waterfall (§9.2) — instead of [`Engine::classify`]'s arbitration.
    pub fn invoke_callout(
        &self,
        filter: &RtFilter,
        values: &IncomingValues<'_>,
        meta: &Metadata,
        layer_data: &mut LayerData<'_>,
        out: ClassifyOut,
    ) -> Invocation {
        let reg = filter.callout_id.and_then(|id| self.registry.get(id));
        let flow = meta
            .flow()
            .filter(|_| catalogue::layer(filter.layer).is_some_and(|l| l.is_flow_capable()));
        let extras = Extras { redirect: None };
        let call = Call {
            values,
            meta,
            flow,
            extras: &extras,
        };
        let must_decide = out
            .flags
            .intersects(ClassifyOutFlags::NO_MORE_DATA | ClassifyOutFlags::BUFFER_LIMIT_REACHED);
        let r = self.invoke_registered(reg.as_ref(), filter, &call, layer_data, out);
        // §9.2 / T-ST-7: a DEFER answered to a data path's own stream protocol is recorded like
        // one answered to `classify`, so FwpsStreamContinue0 can resume it (not when the callout
        // had to decide: NO_MORE_DATA / BUFFER_LIMIT_REACHED).
        if let (Invocation::Ran { out, callout }, LayerData::Stream(io)) = (&r, &*layer_data) {
            if io.stream_action == StreamAction::Defer && !must_decide {
                let mut v = StreamVerdict {
                    filter: filter.filter_id,
                    callout: *callout,
                    action: io.stream_action,
                    count_bytes_required: io.count_bytes_required,
                    count_bytes_enforced: io.count_bytes_enforced,
                    action_type: out.action_type,
                };
                self.stream_verdict(&mut v, flow, filter.layer, io.stream_data.flags);
            }
        }
        self.after_classify();
        r
    }

    /// The filters at `layer` whose conditions match, in evaluation order (sublayers by weight, then
    /// filters by weight) — what [`Engine::classify`] would consider.
    pub fn matching_filters(&self, layer: LayerId, values: &[Value]) -> Vec<Arc<RtFilter>> {
        let snapshot = self.snapshot.load();
        let Some(view) = snapshot.layer(usize::from(layer.0)) else {
            return Vec::new();
        };
        view.sublayers
            .iter()
            .flat_map(|s| {
                let mut cursor = crate::index::Cursor::default();
                std::iter::from_fn(move || s.index.next(values, &mut cursor).map(|h| h.filter))
            })
            .cloned()
            .collect()
    }

    fn invoke_registered(
        &self,
        reg: Option<&Arc<Registered>>,
        f: &RtFilter,
        call: &Call<'_>,
        layer_data: &mut LayerData<'_>,
        mut out: ClassifyOut,
    ) -> Invocation {
        let flow = call.flow;
        let Some(reg) = reg else {
            return Invocation::Unregistered;
        };
        let Some(in_flight) = reg.enter() else {
            return Invocation::Unregistered;
        };
        if self.skip_mid_stream(reg, f, flow) {
            return Invocation::SkippedNoFlowContext;
        }
        // §6.3: a CONDITIONAL_ON_FLOW callout only runs for flows holding its context at this layer.
        let flow_ctx = flow.and_then(|fl| self.flows.begin_use(fl, f.layer, reg.id));
        if reg.flags.contains(CalloutFlags::CONDITIONAL_ON_FLOW) && flow_ctx.is_none() {
            return Invocation::SkippedNoFlowContext;
        }
        let stream_tracked = match (&mut *layer_data, flow) {
            (LayerData::Stream(io), Some(fl)) => {
                io.stream_action = StreamAction::None;
                io.count_bytes_required = 0;
                io.count_bytes_enforced = 0;
                self.stream_enter(fl, reg.id)
            }
            (LayerData::Stream(io), None) => {
                io.stream_action = StreamAction::None;
                io.count_bytes_required = 0;
                io.count_bytes_enforced = 0;
                false
            }
            _ => false,
        };
        let current = call.extras.redirect.map(|s| s.current.borrow().clone());
        let ctx = ClassifyContext {
            engine: self,
            callout_id: reg.id,
            layer: f.layer,
            filter_id: f.filter_id,
            flow,
            token: self.invocation_seq.fetch_add(1, Ordering::Relaxed),
            values: call.values.values,
            redirect: current.as_ref(),
            acquired: Cell::new(false),
        };
        reg.invocations.fetch_add(1, Ordering::Relaxed);
        let ran = catch_unwind(AssertUnwindSafe(|| {
            reg.callout.classify(
                &ctx,
                call.values,
                call.meta,
                layer_data,
                f,
                flow_ctx.unwrap_or(0),
                &mut out,
            );
        }));
        drop(in_flight);
        if ctx.acquired.get() {
            self.handles_returned(ctx.token, call.extras);
        }
        if let (true, Some(fl)) = (stream_tracked, flow) {
            self.stream_leave(fl, reg.id);
        }
        if let (Some(fl), Some(_)) = (flow, flow_ctx) {
            if let Some(ctx) = self.flows.end_use(fl, f.layer, reg.id) {
                self.call_flow_delete(f.layer, reg.id, ctx);
            }
        }
        if ran.is_err() {
            reg.panics.fetch_add(1, Ordering::Relaxed);
            self.stats.callout_panics.fetch_add(1, Ordering::Relaxed);
            self.push_event(NetEvent {
                filter_id: Some(f.filter_id),
                callout_id: Some(reg.id),
                flow,
                header: NetEventHeader::from_values(f.layer, call.values.values),
                ..NetEvent::new(NetEventKind::CalloutPanic, f.layer)
            });
            return Invocation::Panicked;
        }
        Invocation::Ran {
            out,
            callout: reg.id,
        }
    }

    /// §1.1 FWP_CALLOUT_FLAG_ALLOW_MID_STREAM_INSPECTION: without it, a stream callout is not
    /// attached to an announced flow that existed before its filter was added.
    fn skip_mid_stream(&self, reg: &Registered, f: &RtFilter, flow: Option<u64>) -> bool {
        if reg
            .flags
            .contains(CalloutFlags::ALLOW_MID_STREAM_INSPECTION)
            || crate::pend::base_name(f.layer) != Some("STREAM")
        {
            return false;
        }
        flow.and_then(|fl| self.flow_stream_mark(fl))
            .is_some_and(|mark| f.filter_id > mark)
    }

    /// A classifyFn that acquired classify handles returned: a redirect request it applied becomes
    /// the current one for the callouts after it; a pend is recorded.
    fn handles_returned(&self, token: u64, extras: &Extras<'_>) {
        let (request, pended) = self.pend_invocation_returned(token);
        if let Some(slot) = extras.redirect {
            if let Some(req) = request {
                *slot.current.borrow_mut() = req;
            }
            if pended {
                slot.pended.set(true);
            }
        }
    }

    fn apply(&self, st: &mut State, hit: &Hit<'_>, eval: Eval, call: &Call<'_>) -> StepOutcome {
        let f = hit.filter;
        match eval {
            Eval::Continue(o) => o,
            Eval::Stream(v) => {
                st.stream = Some(v);
                StepOutcome::StreamAction(v.action)
            }
            Eval::Veto(flags) => self.veto(st, f, flags, call),
            Eval::Decision(res, clears, flags, origin) => {
                if st.write || st.action == ActionType::NONE_NO_MATCH {
                    st.action = res;
                    st.write = !clears;
                    st.deciding = Some(hit.head.filter_id);
                    st.deciding_callout = hit.callout_id();
                    st.flags = if res == ActionType::BLOCK {
                        flags
                    } else {
                        ClassifyOutFlags::default()
                    };
                    let hardness = if st.write {
                        Hardness::Soft
                    } else {
                        Hardness::Hard
                    };
                    match origin {
                        Origin::Filter => StepOutcome::Decided {
                            action: res,
                            hardness,
                        },
                        Origin::Unregistered => StepOutcome::Unregistered { action: res },
                        Origin::Panicked => StepOutcome::Panicked,
                    }
                } else if st.action == ActionType::PERMIT
                    && res == ActionType::BLOCK
                    && !hit.head.action.is_callout()
                    && self.options.static_veto
                {
                    self.veto(st, f, flags, call)
                } else {
                    StepOutcome::Overridden { action: res }
                }
            }
        }
    }

    fn veto(
        &self,
        st: &mut State,
        f: &RtFilter,
        flags: ClassifyOutFlags,
        call: &Call<'_>,
    ) -> StepOutcome {
        let overridden = st.deciding;
        st.action = ActionType::BLOCK;
        st.write = false;
        st.deciding = Some(f.filter_id);
        st.deciding_callout = f.callout_id;
        st.overridden = overridden;
        st.flags = flags;
        st.vetoed = true;
        self.stats.vetoes.fetch_add(1, Ordering::Relaxed);
        // §11.5: a BLOCK with ABSORB is silent, a veto included (T-ARB-15).
        if flags.contains(ClassifyOutFlags::ABSORB) {
            return StepOutcome::Veto;
        }
        let layer = call.values.layer;
        self.push_event(NetEvent {
            filter_id: Some(f.filter_id),
            overridden_filter_id: overridden,
            callout_id: f.callout_id,
            flow: call.flow,
            header: NetEventHeader::from_values(layer, call.values.values),
            ..NetEvent::new(NetEventKind::Veto, layer)
        });
        StepOutcome::Veto
    }
}

impl Engine {
    /// Brief decision 4 / §2.6: a callout contract violation is counted and recorded as a
    /// CALLOUT_CONTRACT net event naming the filter, the callout and the broken rule.
    fn report_contract(&self, f: &RtFilter, v: ContractViolation, call: &Call<'_>) {
        self.stats
            .contract_violations
            .fetch_add(1, Ordering::Relaxed);
        let layer = call.values.layer;
        self.push_event(NetEvent {
            filter_id: Some(f.filter_id),
            callout_id: f.callout_id,
            flow: call.flow,
            header: NetEventHeader::from_values(layer, call.values.values),
            detail: Some(NetEventDetail::CalloutContract(v)),
            ..NetEvent::new(NetEventKind::CalloutContract, layer)
        });
    }

    /// §11.5 / T-MGMT-13: a classify ending in a BLOCK records FWPM_NET_EVENT_TYPE_CLASSIFY_DROP
    /// with the blocking filter and layer, unless the BLOCK carries ABSORB (silent, T-ARB-15);
    /// a PERMIT records CLASSIFY_ALLOW only with the CLASSIFY_ALLOW keyword. True when recorded.
    fn record_classify(
        &self,
        st: &State,
        incoming: &IncomingValues<'_>,
        flow: Option<u64>,
    ) -> bool {
        let layer = incoming.layer;
        let kind = if st.action == ActionType::BLOCK {
            if st.flags.contains(ClassifyOutFlags::ABSORB) {
                return false;
            }
            NetEventKind::ClassifyDrop
        } else if st.action == ActionType::PERMIT {
            NetEventKind::ClassifyAllow
        } else {
            return false;
        };
        if !self.wants_classify_event(kind == NetEventKind::ClassifyDrop) {
            return false;
        }
        self.push_event(NetEvent {
            filter_id: st.deciding,
            overridden_filter_id: st.overridden,
            callout_id: st.deciding_callout,
            flow,
            decision: Some(DecisionSummary {
                hardness: if st.write {
                    Hardness::Soft
                } else {
                    Hardness::Hard
                },
                vetoed: st.vetoed,
                filters_considered: st.considered,
            }),
            header: NetEventHeader::from_values(layer, incoming.values),
            ..NetEvent::new(kind, layer)
        });
        true
    }
}

/// §2.5 / §2.6: the contract rule a callout's answer breaks, if any (the first that applies):
/// an action type outside BLOCK/PERMIT/CONTINUE/NONE, ABSORB without BLOCK, a PERMIT written
/// without the write right (rule 1; BLOCK is the allowed veto), a BLOCK that keeps the right (rule 2a; not for
/// INSPECTION filters, whose result is CONTINUE whatever it says).
fn contract_violation(st: &State, f: &RtFilter, out: &ClassifyOut) -> Option<ContractViolation> {
    let a = out.action_type;
    let valid = [
        ActionType::BLOCK,
        ActionType::PERMIT,
        ActionType::CONTINUE,
        ActionType::NONE,
        ActionType::NONE_NO_MATCH,
    ];
    if !valid.contains(&a) {
        return Some(ContractViolation::InvalidActionType { returned: a });
    }
    if out.flags.contains(ClassifyOutFlags::ABSORB) && a != ActionType::BLOCK {
        return Some(ContractViolation::AbsorbWithoutBlock { returned: a });
    }
    if !st.write {
        // Writing CONTINUE / NONE contributes nothing (what `wfp.test.continue` does); a PERMIT
        // over a decision that is not one is the write rule 1 forbids (T-CL-2).
        return (a == ActionType::PERMIT && st.action != ActionType::PERMIT)
            .then_some(ContractViolation::WriteWithoutRight { written: a });
    }
    (a == ActionType::BLOCK
        && out.rights.contains(Rights::ACTION_WRITE)
        && f.action != ActionType::CALLOUT_INSPECTION)
        .then_some(ContractViolation::BlockKeepsRight)
}

/// Brief decision 4 / §5.4: an unregistered callout's filter acts as a static hard BLOCK, as a static
/// PERMIT with PERMIT_IF_CALLOUT_UNREGISTERED, and is skipped for INSPECTION.
fn unregistered(f: &RtFilter) -> Eval {
    if f.action == ActionType::CALLOUT_INSPECTION {
        return Eval::Continue(StepOutcome::SkippedUnregistered);
    }
    if f.flags
        .contains(RtFilterFlags::PERMIT_IF_CALLOUT_UNREGISTERED)
    {
        let clears = f.flags.contains(RtFilterFlags::CLEAR_ACTION_RIGHT);
        Eval::Decision(
            ActionType::PERMIT,
            clears,
            ClassifyOutFlags::default(),
            Origin::Unregistered,
        )
    } else {
        Eval::Decision(
            ActionType::BLOCK,
            true,
            ClassifyOutFlags::default(),
            Origin::Unregistered,
        )
    }
}

fn finish(st: State) -> ClassifyResult {
    ClassifyResult {
        action: st.action,
        hardness: if st.write {
            Hardness::Soft
        } else {
            Hardness::Hard
        },
        deciding_filter: st.deciding,
        flags: st.flags,
        vetoed: st.vetoed,
        stream: st.stream,
    }
}
