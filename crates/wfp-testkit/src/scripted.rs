//! Callouts for tests: [`ScriptedCallout`] runs a closure as its `classifyFn` and records everything
//! the engine did to it; [`PanickingCallout`] panics on every classify (brief decision 4: contained
//! and treated as unregistered).
//!
//! Records are appended under a short mutex, never held while the script runs, so a scripted callout
//! may block (on a barrier, in a concurrency test) or call back into the engine's flow-context API.

use std::sync::mpsc::{channel, Receiver, Sender};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, Once, PoisonError};

use wfp_callouts::test::{Behaviour, TestCallout};
use wfp_core::callout::{ClassifyContext, ClassifyOut, IncomingValues, LayerData, Metadata};
use wfp_core::constants::{NotifyType, RtFilterFlags};
use wfp_core::{
    ActionType, Callout, CalloutFlags, CalloutId, ClassifyOutFlags, FilterId, Guid, LayerId,
    Rights, RtFilter, Status,
};

/// The message every deliberate test panic carries; [`quiet_panics`] hides panics that contain it.
pub const PANIC_MARKER: &str = "wfp-testkit: deliberate callout panic";

/// What a script sees of one `classifyFn` invocation.
pub struct Call<'a> {
    /// The engine and this callout's run-time id (for `flow_associate_context`).
    pub ctx: &'a ClassifyContext<'a>,
    /// `inFixedValues`.
    pub values: &'a IncomingValues<'a>,
    /// `inMetaValues`.
    pub meta: &'a Metadata,
    /// The filter that invoked the callout.
    pub filter: &'a RtFilter,
    /// `flowContext` (0 when none).
    pub flow_context: u64,
}

/// One recorded `classifyFn` invocation.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Invocation {
    /// The invoking filter.
    pub filter_id: FilterId,
    /// The filter's action type.
    pub filter_action: ActionType,
    /// The filter's run-time flags.
    pub filter_flags: RtFilterFlags,
    /// The filter's `context` (set by the callout at ADD_FILTER, or the raw context).
    pub filter_context: u64,
    /// The layer classified.
    pub layer: LayerId,
    /// This callout's run-time id.
    pub callout_id: CalloutId,
    /// `classifyOut->rights` on entry.
    pub rights: Rights,
    /// `classifyOut->actionType` on entry (the preset decision).
    pub preset: ActionType,
    /// `flowContext`.
    pub flow_context: u64,
    /// The flow handle when the metadata carried one.
    pub flow_handle: Option<u64>,
    /// `actionType` on return (`None` if the script panicked).
    pub result: Option<ActionType>,
    /// `rights` on return (`None` if the script panicked).
    pub rights_after: Option<Rights>,
    /// `flags` on return (`None` if the script panicked).
    pub flags_after: Option<ClassifyOutFlags>,
}

impl Invocation {
    /// True when the callout was called with FWPS_RIGHT_ACTION_WRITE.
    pub fn had_write_right(&self) -> bool {
        self.rights.contains(Rights::ACTION_WRITE)
    }
}

/// One recorded `notifyFn` call.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Notification {
    /// The notify type.
    pub kind: NotifyType,
    /// `filterKey` (NULL for DELETE_FILTER).
    pub filter_key: Option<Guid>,
    /// The filter's id.
    pub filter_id: FilterId,
    /// What the callout answered.
    pub status: Status,
}

/// One recorded `flowDeleteFn` call.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FlowDeletion {
    /// `layerId`.
    pub layer: LayerId,
    /// `calloutId`.
    pub callout_id: CalloutId,
    /// `flowContext`.
    pub flow_context: u64,
}

type ClassifyScript = dyn Fn(&Call<'_>, &mut ClassifyOut) + Send + Sync;
type NotifyScript = dyn Fn(NotifyType, Option<&Guid>, &mut RtFilter) -> Status + Send + Sync;
type FlowDeleteScript = dyn Fn(LayerId, CalloutId, u64) + Send + Sync;

/// A callout whose `classifyFn` is a closure, recording every call the engine makes.
///
/// Build it with [`ScriptedCallout::new`] (or a shortcut such as [`ScriptedCallout::behaving`]),
/// adjust it with the `on_*` / `with_*` methods, then [`ScriptedCallout::build`] it into an `Arc`
/// that both the engine and the test hold.
pub struct ScriptedCallout {
    classify: Box<ClassifyScript>,
    notify: Option<Box<NotifyScript>>,
    flow_delete: Option<Box<FlowDeleteScript>>,
    flags: CalloutFlags,
    has_flow_delete: bool,
    invocations: Mutex<Vec<Invocation>>,
    notifications: Mutex<Vec<Notification>>,
    flow_deletions: Mutex<Vec<FlowDeletion>>,
}

impl ScriptedCallout {
    /// A callout running `script` as its `classifyFn`. It registers with no flags and with a
    /// flowDeleteFn; `notifyFn` answers STATUS_SUCCESS.
    pub fn new<F>(script: F) -> Self
    where
        F: Fn(&Call<'_>, &mut ClassifyOut) + Send + Sync + 'static,
    {
        Self {
            classify: Box::new(script),
            notify: None,
            flow_delete: None,
            flags: CalloutFlags::default(),
            has_flow_delete: true,
            invocations: Mutex::new(Vec::new()),
            notifications: Mutex::new(Vec::new()),
            flow_deletions: Mutex::new(Vec::new()),
        }
    }

    /// Behaves exactly like the built-in `wfp.test.*` callout (it runs
    /// [`wfp_callouts::test::TestCallout`]) and records.
    pub fn behaving(behaviour: Behaviour) -> Self {
        let inner = TestCallout(behaviour);
        Self::new(move |call, out| {
            inner.classify(
                call.ctx,
                call.values,
                call.meta,
                &mut LayerData::None,
                call.filter,
                call.flow_context,
                out,
            );
        })
    }

    /// With the write right: writes `action` and, when `clear` is set, clears the right. Without it:
    /// returns unchanged (rule 2.6-1).
    pub fn returning(action: ActionType, clear: bool) -> Self {
        Self::new(move |_, out| {
            if out.can_write() {
                out.action_type = action;
                if clear {
                    out.clear_write();
                }
            }
        })
    }

    /// Writes `action` (and sets `flags`, and clears the right when `clear`) whether or not it holds
    /// the write right — for vectors that test how the engine treats a callout's output.
    pub fn forcing(action: ActionType, clear: bool, flags: ClassifyOutFlags) -> Self {
        Self::new(move |_, out| {
            out.action_type = action;
            out.flags = flags;
            if clear {
                out.clear_write();
            }
        })
    }

    /// Records and changes nothing (the "just return" callout).
    pub fn passive() -> Self {
        Self::new(|_, _| {})
    }

    /// Panics on every classify (with [`PANIC_MARKER`]).
    pub fn panicking() -> Self {
        Self::new(|_, _| panic!("{PANIC_MARKER}"))
    }

    /// Sets the `notifyFn` (default: record and answer STATUS_SUCCESS).
    pub fn on_notify<F>(mut self, f: F) -> Self
    where
        F: Fn(NotifyType, Option<&Guid>, &mut RtFilter) -> Status + Send + Sync + 'static,
    {
        self.notify = Some(Box::new(f));
        self
    }

    /// Runs `f` inside `flowDeleteFn` (after recording the call).
    pub fn on_flow_delete<F>(mut self, f: F) -> Self
    where
        F: Fn(LayerId, CalloutId, u64) + Send + Sync + 'static,
    {
        self.flow_delete = Some(Box::new(f));
        self
    }

    /// Registration flags (FWP_CALLOUT_FLAG_*).
    pub fn with_flags(mut self, flags: CalloutFlags) -> Self {
        self.flags = flags;
        self
    }

    /// Registers with `flowDeleteFn == NULL` (contexts cannot be associated, T-FLOW-4).
    pub fn without_flow_delete(mut self) -> Self {
        self.has_flow_delete = false;
        self
    }

    /// Wraps it in the `Arc` the engine and the test share.
    pub fn build(self) -> Arc<Self> {
        Arc::new(self)
    }

    /// The registration flags.
    pub fn flags(&self) -> CalloutFlags {
        self.flags
    }

    /// Whether it registers a flowDeleteFn.
    pub fn has_flow_delete(&self) -> bool {
        self.has_flow_delete
    }

    /// Every classify invocation so far, in call order.
    pub fn invocations(&self) -> Vec<Invocation> {
        lock(&self.invocations).clone()
    }

    /// How many times `classifyFn` ran.
    pub fn invocation_count(&self) -> usize {
        lock(&self.invocations).len()
    }

    /// Every `notifyFn` call so far.
    pub fn notifications(&self) -> Vec<Notification> {
        lock(&self.notifications).clone()
    }

    /// Every `flowDeleteFn` call so far.
    pub fn flow_deletions(&self) -> Vec<FlowDeletion> {
        lock(&self.flow_deletions).clone()
    }

    /// Forgets the recorded calls.
    pub fn clear_records(&self) {
        lock(&self.invocations).clear();
        lock(&self.notifications).clear();
        lock(&self.flow_deletions).clear();
    }
}

impl Callout for ScriptedCallout {
    fn classify(
        &self,
        ctx: &ClassifyContext<'_>,
        values: &IncomingValues<'_>,
        meta: &Metadata,
        _layer_data: &mut LayerData<'_>,
        filter: &RtFilter,
        flow_context: u64,
        out: &mut ClassifyOut,
    ) {
        let index = {
            let mut inv = lock(&self.invocations);
            inv.push(Invocation {
                filter_id: filter.filter_id(),
                filter_action: filter.action(),
                filter_flags: filter.flags(),
                filter_context: filter.context,
                layer: values.layer,
                callout_id: ctx.callout_id(),
                rights: out.rights,
                preset: out.action_type,
                flow_context,
                flow_handle: meta.flow(),
                result: None,
                rights_after: None,
                flags_after: None,
            });
            inv.len() - 1
        };
        let call = Call {
            ctx,
            values,
            meta,
            filter,
            flow_context,
        };
        (self.classify)(&call, out);
        if let Some(rec) = lock(&self.invocations).get_mut(index) {
            rec.result = Some(out.action_type);
            rec.rights_after = Some(out.rights);
            rec.flags_after = Some(out.flags);
        }
    }

    fn notify(
        &self,
        notify_type: NotifyType,
        filter_key: Option<&Guid>,
        filter: &mut RtFilter,
    ) -> Status {
        let status = match &self.notify {
            Some(f) => f(notify_type, filter_key, filter),
            None => Status::SUCCESS,
        };
        lock(&self.notifications).push(Notification {
            kind: notify_type,
            filter_key: filter_key.copied(),
            filter_id: filter.filter_id(),
            status,
        });
        status
    }

    fn flow_delete(&self, layer: LayerId, callout_id: CalloutId, flow_context: u64) {
        lock(&self.flow_deletions).push(FlowDeletion {
            layer,
            callout_id,
            flow_context,
        });
        if let Some(f) = &self.flow_delete {
            f(layer, callout_id, flow_context);
        }
    }
}

/// A callout whose `classifyFn` always panics (with [`PANIC_MARKER`]).
#[derive(Debug, Default)]
pub struct PanickingCallout;

impl Callout for PanickingCallout {
    fn classify(
        &self,
        _ctx: &ClassifyContext<'_>,
        _values: &IncomingValues<'_>,
        _meta: &Metadata,
        _layer_data: &mut LayerData<'_>,
        _filter: &RtFilter,
        _flow_context: u64,
        _out: &mut ClassifyOut,
    ) {
        panic!("{PANIC_MARKER}");
    }
}

/// A rendezvous for holding a callout inside `classifyFn` while the test acts on another thread
/// (T-FLOW-9, T-REG-13) — without a timeout and without hanging when the callout is never invoked:
/// the classifying thread reports [`Gate::finished`], so [`Gate::wait_entered`] returns `false`
/// instead of blocking forever.
///
/// ```text
///   callout (classify thread)      test thread
///   gate.pass() ── Entered ──────► gate.wait_entered() == true
///      (blocks)                    … act: flow_remove_context → PENDING …
///      ◄──────────────────────────  gate.release()
///   returns; thread calls gate.finished()
/// ```
pub struct Gate {
    events: Sender<GateEvent>,
    inbox: Mutex<Receiver<GateEvent>>,
    released: Mutex<bool>,
    wake: Condvar,
}

enum GateEvent {
    Entered,
    Finished,
}

impl Gate {
    /// A closed gate.
    pub fn new() -> Arc<Self> {
        let (events, inbox) = channel();
        Arc::new(Self {
            events,
            inbox: Mutex::new(inbox),
            released: Mutex::new(false),
            wake: Condvar::new(),
        })
    }

    /// Called inside the callout: reports "entered", then blocks until [`Gate::release`].
    pub fn pass(&self) {
        let _ = self.events.send(GateEvent::Entered);
        let mut open = lock(&self.released);
        while !*open {
            open = self.wake.wait(open).unwrap_or_else(PoisonError::into_inner);
        }
    }

    /// Called by the classifying thread once its classify returned.
    pub fn finished(&self) {
        let _ = self.events.send(GateEvent::Finished);
    }

    /// Waits for the callout to enter (`true`) or for the classify to finish without entering
    /// (`false`).
    pub fn wait_entered(&self) -> bool {
        matches!(lock(&self.inbox).recv(), Ok(GateEvent::Entered))
    }

    /// Opens the gate for good.
    pub fn release(&self) {
        *lock(&self.released) = true;
        self.wake.notify_all();
    }
}

/// Installs (once per process) a panic hook that hides panics carrying [`PANIC_MARKER`] and passes
/// every other panic to the previous hook, so deliberate callout panics do not flood test output.
pub fn quiet_panics() {
    static INSTALL: Once = Once::new();
    INSTALL.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            let payload = info.payload();
            let text = payload
                .downcast_ref::<&str>()
                .copied()
                .or_else(|| payload.downcast_ref::<String>().map(String::as_str));
            if text.is_some_and(|t| t.contains(PANIC_MARKER)) {
                return;
            }
            previous(info);
        }));
    });
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}
