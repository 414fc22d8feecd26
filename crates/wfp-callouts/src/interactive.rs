//! # `wfp.interactive` — ask someone outside the engine ("allow this program to connect?")
//!
//! | layer | filter action | what it does |
//! |---|---|---|
//! | `ALE_AUTH_CONNECT_V4/V6`, `ALE_AUTH_RECV_ACCEPT_V4/V6` | `FWP_ACTION_CALLOUT_TERMINATING` | a new connection the filter matches (its conditions are the template): `FwpsPendOperation0` (§10.1), BLOCK+ABSORB, a [`Prompt`] published in the host's [`Prompts`]; the reauthorization the completion triggers (IS_REAUTHORIZE, CLASSIFY_COMPLETION) answers the decision |
//!
//! Registration: no flags, **with** flowDeleteFn (a flow's decision is forgotten at its end).
//! No parameters; the deadline, the default and the most prompts at once are the host's
//! ([`Prompts::set_policy`]; wfpd's `[api] pending_*` keys).
//!
//! ```text
//!  SYN ─► AUTH_CONNECT: pend ─► ABSORB (the data path holds the connection) ─► Prompt published
//!  client: GET /v1/pending, POST /v1/pending/{id} ─► Prompts::decide ─► FwpsCompleteOperation0
//!  host:   Prompts::expire(now) ─► past the deadline: the default, a PEND_TIMEOUT net event
//!  data path: handle_async ─► AUTH_CONNECT again (IS_REAUTHORIZE): PERMIT / BLOCK as decided
//! ```
//!
//! A connection that cannot be pended (no completion handle, or the host's limit of waiting
//! prompts reached) gets the default at once. Time is the host's: [`Prompts::expire`] and
//! [`Prompt::created`] use the [`crate::Clock`] the host sets (sans-IO, no clock read here).

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;
use wfp_core::callout::{ClassifyContext, ClassifyOut, IncomingValues, LayerData, Metadata};
use wfp_core::catalogue::{self, LayerId};
use wfp_core::constants::{ClassifyOutFlags, ConditionFlags};
use wfp_core::engine::{NetEventDetail, NetEventHeader};
use wfp_core::pend::CompletionContext;
use wfp_core::{
    ActionType, Callout, CalloutFlags, CalloutId, Engine, Guid, NetEvent, NetEventKind, RtFilter,
    Status,
};

use crate::support::{block, field, no_opinion, permit};
use crate::{Builtin, Clock, Decision, Host};

/// The built-in's table entry (registered in [`crate::all`]).
pub(crate) const BUILTIN: Builtin = Builtin {
    name: "wfp.interactive",
    key: Guid::from_str_const("57465001-0000-4000-8000-000000000120"),
    flags: CalloutFlags(0),
    flow_delete: true,
    description: "ALE_AUTH_CONNECT / RECV_ACCEPT: pends matching connections and publishes them to the host's prompts (wfpd: /v1/pending) until someone decides or the deadline applies the default",
    make,
};

fn make(host: &Host) -> Arc<dyn Callout> {
    Arc::new(Interactive::new(Arc::clone(&host.prompts)))
}

/// One pended connection waiting for a decision.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Prompt {
    /// The host-visible id (increasing from 1).
    pub id: u64,
    /// The completion context `FwpsPendOperation0` returned.
    pub context: CompletionContext,
    /// The flow handle.
    pub flow: u64,
    /// ALE_AUTH_CONNECT_V4/V6 or ALE_AUTH_RECV_ACCEPT_V4/V6.
    pub layer: LayerId,
    /// Addresses, ports, protocol, direction and app id from the incoming values.
    pub header: NetEventHeader,
    /// The host clock when it was pended.
    pub created: Duration,
    /// The host clock when the default applies.
    pub deadline: Duration,
    /// The default.
    pub default: Decision,
}

/// How a prompt was decided.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DecidedBy {
    /// [`Prompts::decide`].
    Client,
    /// [`Prompts::expire`] (the default).
    Timeout,
    /// At once, with the default (not pendable, or too many waiting).
    Immediate,
}

/// Counters of [`Prompts`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PromptStats {
    /// Connections pended and published.
    pub pended: u64,
    /// Decided by a client: permitted.
    pub client_permit: u64,
    /// Decided by a client: blocked.
    pub client_block: u64,
    /// Defaults applied at the deadline: permitted.
    pub timeout_permit: u64,
    /// Defaults applied at the deadline: blocked.
    pub timeout_block: u64,
    /// Defaults applied at once (not pendable, or the limit reached).
    pub immediate: u64,
    /// Decisions whose operation was no longer pending (the data path dropped it).
    pub late: u64,
}

/// Why [`Prompts::decide`] refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DecideError {
    /// No waiting prompt has this id (never existed, decided, or timed out).
    #[error("no pending authorization {0}")]
    NotFound(u64),
    /// The engine no longer holds the operation (the data path gave up on it).
    #[error("pending authorization {0} is no longer pended in the engine")]
    Gone(u64),
}

/// The host's policy for prompts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PromptPolicy {
    /// Time a prompt waits for a decision.
    pub deadline: Duration,
    /// What applies at the deadline (and at once when a connection cannot wait).
    pub default: Decision,
    /// Prompts waiting at once; beyond, the default applies at once.
    pub max_waiting: usize,
}

impl Default for PromptPolicy {
    fn default() -> Self {
        Self {
            deadline: Duration::from_secs(30),
            default: Decision::Block,
            max_waiting: 1024,
        }
    }
}

#[derive(Default)]
struct State {
    next_id: u64,
    waiting: BTreeMap<u64, Prompt>,
    decided: HashMap<u64, Decision>,
    policy: PromptPolicy,
    stats: PromptStats,
}

/// Where `wfp.interactive` publishes its prompts and the host decides them (owned by the
/// [`Host`]). Cloning the `Arc` shares it.
pub struct Prompts {
    state: Mutex<State>,
    clock: Arc<Clock>,
}

impl std::fmt::Debug for Prompts {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let st = self.state.lock();
        f.debug_struct("Prompts")
            .field("waiting", &st.waiting.len())
            .field("policy", &st.policy)
            .field("stats", &st.stats)
            .finish()
    }
}

impl Prompts {
    /// Empty, timed by `clock` (the host's), with the default policy.
    pub fn new(clock: Arc<Clock>) -> Self {
        Self {
            state: Mutex::new(State::default()),
            clock,
        }
    }

    /// Sets the deadline, default and limit for prompts created from now on.
    pub fn set_policy(&self, policy: PromptPolicy) {
        self.state.lock().policy = policy;
    }

    /// The policy.
    pub fn policy(&self) -> PromptPolicy {
        self.state.lock().policy
    }

    /// The prompts waiting now, oldest first.
    pub fn waiting(&self) -> Vec<Prompt> {
        self.state.lock().waiting.values().cloned().collect()
    }

    /// The waiting prompts with an id greater than `id` (a reader's cursor), oldest first.
    pub fn waiting_after(&self, id: u64) -> Vec<Prompt> {
        let st = self.state.lock();
        st.waiting
            .range(id.saturating_add(1)..)
            .map(|(_, p)| p.clone())
            .collect()
    }

    /// Counters.
    pub fn stats(&self) -> PromptStats {
        self.state.lock().stats
    }

    /// The host's clock now (what [`Prompt::created`] and [`Prompt::deadline`] are measured on).
    pub fn now(&self) -> Duration {
        self.clock.now()
    }

    /// Decides prompt `id`: records the decision for its flow and completes the pended operation
    /// (`FwpsCompleteOperation0`); the data path's reauthorization then gets the decision.
    pub fn decide(
        &self,
        engine: &Engine,
        id: u64,
        decision: Decision,
    ) -> Result<Prompt, DecideError> {
        let prompt = self
            .state
            .lock()
            .waiting
            .remove(&id)
            .ok_or(DecideError::NotFound(id))?;
        match self.complete(engine, &prompt, decision) {
            Status::SUCCESS => {
                let mut st = self.state.lock();
                match decision {
                    Decision::Allow => st.stats.client_permit += 1,
                    Decision::Block => st.stats.client_block += 1,
                }
                Ok(prompt)
            }
            _ => Err(DecideError::Gone(id)),
        }
    }

    /// Applies the default to every prompt past its deadline at `now` (the host clock) and
    /// records a PEND_TIMEOUT net event for each; returns them.
    pub fn expire(&self, engine: &Engine, now: Duration) -> Vec<Prompt> {
        let expired: Vec<Prompt> = {
            let mut st = self.state.lock();
            let ids: Vec<u64> = st
                .waiting
                .values()
                .filter(|p| p.deadline <= now)
                .map(|p| p.id)
                .collect();
            ids.iter().filter_map(|id| st.waiting.remove(id)).collect()
        };
        for p in &expired {
            let status = self.complete(engine, p, p.default);
            if status == Status::SUCCESS {
                let mut st = self.state.lock();
                match p.default {
                    Decision::Allow => st.stats.timeout_permit += 1,
                    Decision::Block => st.stats.timeout_block += 1,
                }
            }
            engine.report_net_event(NetEvent {
                flow: Some(p.flow),
                header: p.header.clone(),
                detail: Some(NetEventDetail::PendTimeout {
                    pending_id: p.id,
                    permitted: p.default == Decision::Allow,
                }),
                ..NetEvent::new(NetEventKind::PendTimeout, p.layer)
            });
        }
        expired
    }

    /// Records `decision` for the prompt's flow, then completes its operation; on failure the
    /// flow's previous decision is restored and the late completion counted.
    fn complete(&self, engine: &Engine, p: &Prompt, decision: Decision) -> Status {
        let previous = self.state.lock().decided.insert(p.flow, decision);
        let status = engine.complete_operation(p.context, None);
        if status != Status::SUCCESS {
            let mut st = self.state.lock();
            match previous {
                Some(d) => st.decided.insert(p.flow, d),
                None => st.decided.remove(&p.flow),
            };
            st.stats.late += 1;
        }
        status
    }

    /// Publishes a new prompt; `None` when the limit is reached.
    fn publish(
        &self,
        context: CompletionContext,
        flow: u64,
        values: &IncomingValues<'_>,
    ) -> Option<u64> {
        let now = self.clock.now();
        let mut st = self.state.lock();
        if st.waiting.len() >= st.policy.max_waiting {
            return None;
        }
        st.next_id += 1;
        let id = st.next_id;
        let prompt = Prompt {
            id,
            context,
            flow,
            layer: values.layer,
            header: NetEventHeader::from_values(values.layer, values.values),
            created: now,
            deadline: now.saturating_add(st.policy.deadline),
            default: st.policy.default,
        };
        st.waiting.insert(id, prompt);
        st.stats.pended += 1;
        Some(id)
    }

    fn has_room(&self) -> bool {
        let st = self.state.lock();
        st.waiting.len() < st.policy.max_waiting
    }

    fn decision(&self, flow: u64) -> Option<Decision> {
        self.state.lock().decided.get(&flow).copied()
    }

    fn forget(&self, flow: u64) {
        self.state.lock().decided.remove(&flow);
    }

    fn immediate(&self, flow: u64) -> Decision {
        let mut st = self.state.lock();
        st.stats.immediate += 1;
        let d = st.policy.default;
        st.decided.insert(flow, d);
        d
    }
}

/// `wfp.interactive` (see the module doc).
pub struct Interactive {
    prompts: Arc<Prompts>,
}

impl Interactive {
    /// Publishes its prompts in `prompts`.
    pub fn new(prompts: Arc<Prompts>) -> Self {
        Self { prompts }
    }

    fn answer(&self, flow: u64, d: Decision, call: &Call<'_, '_>, out: &mut ClassifyOut) {
        match d {
            Decision::Allow => {
                permit(out, call.filter);
                // Tie the decision to the flow's end (flowDeleteFn forgets it).
                let _ = call.ctx.engine().flow_associate_context(
                    flow,
                    call.values.layer,
                    call.ctx.callout_id(),
                    flow,
                );
            }
            Decision::Block => {
                self.prompts.forget(flow);
                block(out);
            }
        }
    }
}

struct Call<'c, 'v> {
    ctx: &'c ClassifyContext<'c>,
    values: &'c IncomingValues<'v>,
    meta: &'c Metadata,
    filter: &'c RtFilter,
}

impl Callout for Interactive {
    fn classify(
        &self,
        ctx: &ClassifyContext<'_>,
        values: &IncomingValues<'_>,
        meta: &Metadata,
        _layer_data: &mut LayerData<'_>,
        filter: &RtFilter,
        _flow_context: u64,
        out: &mut ClassifyOut,
    ) {
        let call = Call {
            ctx,
            values,
            meta,
            filter,
        };
        let name = catalogue::layer(values.layer).map_or("", |l| l.name);
        let authorizes =
            name.starts_with("ALE_AUTH_CONNECT") || name.starts_with("ALE_AUTH_RECV_ACCEPT");
        let Some(flow) = meta.flow().filter(|_| authorizes) else {
            return no_opinion(out, filter);
        };
        let flags = field(values, "FLAGS").as_u64().unwrap_or(0);
        let reauthorize = flags & u64::from(ConditionFlags::IS_REAUTHORIZE.0) != 0;
        let decided = self.prompts.decision(flow);
        if reauthorize || decided.is_some() {
            let d = decided.unwrap_or_else(|| self.prompts.policy().default);
            return self.answer(flow, d, &call, out);
        }
        if !self.prompts.has_room() {
            let d = self.prompts.immediate(flow);
            return self.answer(flow, d, &call, out);
        }
        match call.ctx.pend_operation(call.meta) {
            Ok(context) => {
                if self.prompts.publish(context, flow, values).is_none() {
                    // Filled up meanwhile: the default, applied by the reauthorization that
                    // completing at once triggers.
                    self.prompts.immediate(flow);
                    let _ = ctx.engine().complete_operation(context, None);
                }
                out.action_type = ActionType::BLOCK;
                out.flags |= ClassifyOutFlags::ABSORB;
                out.clear_write();
            }
            // Not pendable here (no completion handle): the default now.
            Err(_) => {
                let d = self.prompts.immediate(flow);
                self.answer(flow, d, &call, out);
            }
        }
    }

    fn flow_delete(&self, _layer: LayerId, _callout_id: CalloutId, flow_context: u64) {
        self.prompts.forget(flow_context);
    }
}
