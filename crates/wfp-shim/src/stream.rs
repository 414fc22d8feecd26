//! The STREAM layer (wfp-reference §9, brief decisions 8–9): in-order TCP bytes, per direction,
//! delivered to the matching stream filters as a **waterfall** — each callout sees only the bytes
//! every higher filter permitted; its verdict applies to `countBytesEnforced` leading bytes and the
//! rest is indicated again; NEED_MORE_DATA accumulates up to `countBytesRequired` *total* bytes
//! (at most 8 MiB, then BUFFER_LIMIT_REACHED); after FIN every callout holding data is indicated
//! with NO_MORE_DATA and must decide.
//!
//! Inline, bytes cannot be held across packets: held bytes belong to packets that were already
//! forwarded. A later BLOCK of held bytes therefore blocks the packet that completed the indication,
//! and DROP_CONNECTION ends the flow. The byte-level outcome (what each callout saw and decided) is
//! the same however the stream is segmented.

use std::collections::HashMap;
use std::sync::Arc;

use wfp_core::callout::{ClassifyOut, IncomingValues, LayerData, Metadata, StreamIoPacket};
use wfp_core::classify::{coerce, Invocation};
use wfp_core::constants::{ClassifyOutFlags, Rights, RtFilterFlags, StreamFlags};
use wfp_core::{ActionType, CalloutId, Engine, FilterId, LayerId, RtFilter, StreamAction, Value};

/// WFP's stream accumulation limit (§12).
pub const STREAM_BUFFER_LIMIT: usize = 8 * 1024 * 1024;

/// One callout's view of one direction of one stream.
#[derive(Debug, Default)]
struct CalloutStream {
    /// Bytes indicated to this callout and not yet permitted or blocked.
    pending: Vec<u8>,
    /// NEED_MORE_DATA: total bytes wanted before the next indication.
    required: usize,
    /// ALLOW_CONNECTION: never called again for this flow.
    allowed: bool,
    /// DEFER: paused until FwpsStreamContinue0 ([`StreamDirection::resume`]).
    deferred: bool,
    /// The filter's callout (FwpsStreamContinue0 names the callout, not the filter).
    callout: Option<CalloutId>,
    /// Bytes this callout missed because a higher filter blocked them (§9.2 missedBytes).
    missed: u64,
    /// NO_MORE_DATA was indicated.
    closed: bool,
}

/// What the stream filters did with one push.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct StreamOutcome {
    /// Bytes that passed every stream filter (what the peer should receive), in order.
    pub delivered: Vec<u8>,
    /// Bytes a filter blocked.
    pub blocked: u64,
    /// Bytes a callout is still holding (NEED_MORE_DATA / DEFER).
    pub held: u64,
    /// A callout asked to drop the connection (CALLOUT_UNKNOWN filter, DROP_CONNECTION).
    pub drop_connection: bool,
    /// The filter that blocked bytes or dropped the connection.
    pub deciding_filter: Option<FilterId>,
    /// Number of classifyFn invocations.
    pub indications: u32,
    /// Bytes stream callouts injected inline (spliced into `delivered`, §9.2).
    pub injected: u64,
    /// The injection handles of those injections.
    pub injectors: Vec<wfp_core::inject::InjectionHandle>,
    /// The push carried the direction's FIN and a callout blocked the indication that carried
    /// it (§9.2): the disconnect does not go on (an out-of-band callout re-injects it later
    /// with FwpsStreamInjectAsync0 and a DISCONNECT flag, or never).
    pub fin_blocked: bool,
}

/// Stream injections a callout made during its classifyFn, taken by [`StreamCall::splice`]: the
/// bytes and the injection handle of each, in order.
pub type Spliced = Vec<(Arc<[u8]>, wfp_core::inject::InjectionHandle)>;

impl StreamOutcome {
    /// Adds the outcome of the next push of the same direction (bytes in order; `held` is what
    /// is held after it; the first deciding filter stands).
    pub fn append(&mut self, next: Self) {
        self.delivered.extend_from_slice(&next.delivered);
        self.blocked += next.blocked;
        self.held = next.held;
        self.drop_connection |= next.drop_connection;
        self.deciding_filter = self.deciding_filter.or(next.deciding_filter);
        self.indications += next.indications;
        self.injected += next.injected;
        self.injectors.extend(next.injectors);
        self.fin_blocked |= next.fin_blocked;
    }
}

/// The classify inputs of one stream indication that do not change within a push: the engine, the
/// layer with its incoming values and metadata, and the direction flags.
#[derive(Clone, Copy)]
pub struct StreamCall<'a> {
    /// The engine whose stream filters are run.
    pub engine: &'a Engine,
    /// STREAM_V4 or STREAM_V6.
    pub layer: LayerId,
    /// The layer's incoming values.
    pub values: &'a [Value],
    /// The incoming metadata (the flow handle).
    pub meta: &'a Metadata,
    /// SEND or RECEIVE (and DISCONNECT/ABORT as appropriate).
    pub flags: StreamFlags,
    /// Takes the stream injections a callout (by id) made into this stream during its last
    /// indication (`FwpsStreamInjectAsync0` inside classifyFn): they are spliced into the stream
    /// at that point, after the bytes the callout permitted before and ahead of the bytes it
    /// decides now, so only the filters after it see them (§9.2, T-ST-2). `None`: no splicing.
    pub splice: Option<&'a dyn Fn(CalloutId) -> Spliced>,
}

/// Per-direction stream state of one flow: one callout state per stream filter seen.
#[derive(Debug, Default)]
pub struct StreamDirection {
    callouts: HashMap<FilterId, CalloutStream>,
    /// Total bytes pushed, and missed ([`StreamDirection::missed`]).
    pub offset: u64,
    /// Bytes missed so far: a callout indicated for the first time reports them.
    missed_total: u64,
}

impl StreamDirection {
    /// `FwpsStreamContinue0` for this direction: ends a DEFER of `callout`. Returns false when the
    /// callout had not deferred this stream. The held bytes are indicated again by the next push
    /// (an empty push does it at once).
    pub fn resume(&mut self, callout: CalloutId) -> bool {
        let mut found = false;
        for st in self.callouts.values_mut() {
            if st.callout == Some(callout) && st.deferred {
                st.deferred = false;
                found = true;
            }
        }
        found
    }

    /// Bytes of the stream that were never seen (a capture cut them, see
    /// [`crate::reasm::StreamReassembler::skip_missing`]): every callout's next indication reports
    /// them in `missedBytes` (§9.2), with those a higher filter blocked.
    pub fn missed(&mut self, bytes: u64) {
        self.offset += bytes;
        self.missed_total += bytes;
        for st in self.callouts.values_mut() {
            st.missed += bytes;
        }
    }

    /// True when the callout of `filter` answered ALLOW_CONNECTION for this direction (it is not
    /// called again; flow offload reads it).
    pub fn allowed(&self, filter: FilterId) -> bool {
        self.callouts.get(&filter).is_some_and(|c| c.allowed)
    }

    /// True when some callout still holds bytes (NEED_MORE_DATA / DEFER).
    pub fn holds_data(&self) -> bool {
        self.callouts.values().any(|c| !c.pending.is_empty())
    }

    /// Pushes new in-order bytes (`data`, possibly empty) through the stream filters at
    /// `call.layer`. `fin` marks the end of this direction (NO_MORE_DATA).
    pub fn push(&mut self, call: &StreamCall<'_>, data: &[u8], fin: bool) -> StreamOutcome {
        let chain = call.engine.matching_filters(call.layer, call.values);
        self.push_chain(call, &chain, data, fin)
    }

    /// Pushes bytes a stream callout `injector` injected out of band (§9.2, T-ST-2): only the
    /// stream filters after the injector's see them. `fin`: the injection carried the
    /// direction's disconnect (an out-of-band editor re-injects the FIN it blocked), so the
    /// filters below get their NO_MORE_DATA indication now.
    pub fn push_injected(
        &mut self,
        call: &StreamCall<'_>,
        data: &[u8],
        injector: CalloutId,
        fin: bool,
    ) -> StreamOutcome {
        let chain = call
            .engine
            .stream_filters_below(call.layer, call.values, injector);
        self.push_chain(call, &chain, data, fin)
    }

    fn push_chain(
        &mut self,
        call: &StreamCall<'_>,
        chain: &[Arc<RtFilter>],
        data: &[u8],
        fin: bool,
    ) -> StreamOutcome {
        self.offset += data.len() as u64;
        let mut out = StreamOutcome::default();
        let mut input = data.to_vec();
        let mut blocked_above = 0u64;
        // §9.2: the disconnect travels with the last indication; a callout that blocks it takes
        // the FIN out of the stream below it (it may inject its own later: `push_injected`).
        let fin_in = fin;
        let mut fin = fin;
        for f in chain {
            let missed_total = self.missed_total;
            let st = self
                .callouts
                .entry(f.filter_id())
                .or_insert_with(|| CalloutStream {
                    missed: missed_total,
                    ..CalloutStream::default()
                });
            st.callout = f.callout_id();
            // §9.2 missedBytes: what higher filters blocked before this callout could see it.
            st.missed += blocked_above;
            let blocked_before = out.blocked;
            if st.allowed || st.closed && input.is_empty() {
                continue;
            }
            match f.action() {
                ActionType::PERMIT => continue,
                ActionType::BLOCK => {
                    block(&mut out, f, input.len());
                    blocked_above += input.len() as u64;
                    input.clear();
                    fin = false;
                    continue;
                }
                _ => {}
            }
            st.pending.extend_from_slice(&input);
            input.clear();
            let (passed, fin_passed) = indicate(call, f, st, fin, &mut out);
            input = passed;
            fin &= fin_passed;
            blocked_above += out.blocked - blocked_before;
            if out.drop_connection {
                break;
            }
        }
        out.held = self.callouts.values().map(|s| s.pending.len() as u64).sum();
        out.delivered = input;
        out.fin_blocked = fin_in && !fin && !out.drop_connection;
        out
    }
}

fn block(out: &mut StreamOutcome, f: &RtFilter, n: usize) {
    if n > 0 {
        out.blocked += n as u64;
        out.deciding_filter.get_or_insert(f.filter_id());
    }
}

/// Indicates a callout's pending bytes until it has decided them all or holds them; returns the
/// bytes it permitted, in order, and whether the disconnect (`fin`) went on: false when the
/// callout blocked the indication that carried it.
fn indicate(
    call: &StreamCall<'_>,
    f: &Arc<RtFilter>,
    st: &mut CalloutStream,
    fin: bool,
    out: &mut StreamOutcome,
) -> (Vec<u8>, bool) {
    let mut passed = Vec::new();
    let mut fin_passed = true;
    // Bounded: every round either consumes bytes, holds, or ends (one extra round for an empty FIN).
    let mut fin_round = fin;
    loop {
        let round = Round {
            fin,
            limit: st.pending.len() >= STREAM_BUFFER_LIMIT,
            send: call.flags.contains(StreamFlags::SEND),
        };
        if st.pending.is_empty() && !fin_round {
            break;
        }
        if (st.deferred || st.pending.len() < st.required) && !fin && !round.limit {
            break;
        }
        fin_round = false;
        let Some(reply) = classify_pending(call, f, st, round, out) else {
            break;
        };
        if let (Some(take), Some(c)) = (call.splice, st.callout) {
            for (data, h) in take(c) {
                passed.extend_from_slice(&data);
                out.injected += data.len() as u64;
                out.injectors.push(h);
            }
        }
        let len = st.pending.len();
        let (action, enforced) = match answer(f, st, &reply, round) {
            Answer::Hold => break,
            Answer::DropConnection => {
                out.drop_connection = true;
                block(out, f, len);
                st.pending.clear();
                return (passed, false);
            }
            Answer::Decide(action, enforced) => (action, enforced),
        };
        if round.fin && enforced >= len {
            fin_passed = action != ActionType::BLOCK;
        }
        st.required = 0;
        let chunk: Vec<u8> = st.pending.drain(..enforced).collect();
        if action == ActionType::BLOCK {
            block(out, f, chunk.len());
        } else {
            passed.extend_from_slice(&chunk);
        }
        if st.allowed {
            passed.append(&mut st.pending);
            break;
        }
        if st.pending.is_empty() {
            break;
        }
    }
    (passed, fin_passed)
}

/// One indication round of a callout.
#[derive(Clone, Copy)]
struct Round {
    /// The direction ended: NO_MORE_DATA, the callout must decide.
    fin: bool,
    /// The callout holds [`STREAM_BUFFER_LIMIT`] bytes: BUFFER_LIMIT_REACHED, it must decide.
    limit: bool,
    /// Outbound data (SEND): DEFER is not allowed.
    send: bool,
}

/// What a callout answered to one indication.
struct Reply {
    /// How the invocation went.
    invocation: Invocation,
    /// `streamAction`.
    action: StreamAction,
    /// `countBytesRequired`.
    required: u32,
    /// `countBytesEnforced`.
    enforced: u64,
}

/// What a reply means for the callout's pending bytes.
enum Answer {
    /// Hold them (NEED_MORE_DATA, DEFER) and stop indicating.
    Hold,
    /// Block them and drop the connection.
    DropConnection,
    /// `action` for the first `enforced` bytes.
    Decide(ActionType, usize),
}

/// Indicates the callout's pending bytes once (with NO_MORE_DATA / BUFFER_LIMIT_REACHED as
/// `round` says). `None` if the layer data came back as something other than a stream.
fn classify_pending(
    call: &StreamCall<'_>,
    f: &Arc<RtFilter>,
    st: &mut CalloutStream,
    round: Round,
    out: &mut StreamOutcome,
) -> Option<Reply> {
    let mut ioflags = call.flags;
    // The stream's last indication: DISCONNECT after a FIN, ABORT (set by the caller) after a
    // RST or an end without the disconnect — not both.
    let abort = call
        .flags
        .intersects(StreamFlags::SEND_ABORT | StreamFlags::RECEIVE_ABORT);
    if round.fin && !abort {
        ioflags |= if round.send {
            StreamFlags::SEND_DISCONNECT
        } else {
            StreamFlags::RECEIVE_DISCONNECT
        };
    }
    let mut io = StreamIoPacket::new(ioflags, &st.pending);
    io.missed_bytes = std::mem::take(&mut st.missed);
    let mut cflags = ClassifyOutFlags::default();
    if round.fin {
        cflags |= ClassifyOutFlags::NO_MORE_DATA;
        st.closed = true;
    }
    if round.limit {
        cflags |= ClassifyOutFlags::BUFFER_LIMIT_REACHED;
    }
    let preset = ClassifyOut {
        action_type: ActionType::NONE,
        out_context: 0,
        filter_id: f.filter_id().0,
        rights: Rights::ACTION_WRITE,
        flags: cflags,
    };
    let values = IncomingValues {
        layer: call.layer,
        values: call.values,
    };
    let mut ld = LayerData::Stream(io);
    let invocation = call
        .engine
        .invoke_callout(f, &values, call.meta, &mut ld, preset);
    out.indications += 1;
    let LayerData::Stream(io) = ld else {
        return None;
    };
    Some(Reply {
        invocation,
        action: io.stream_action,
        required: io.count_bytes_required,
        enforced: io.count_bytes_enforced,
    })
}

/// What `reply` means for the `st.pending` bytes of filter `f`'s callout.
fn answer(f: &RtFilter, st: &mut CalloutStream, reply: &Reply, round: Round) -> Answer {
    let len = st.pending.len();
    let (fin, limit) = (round.fin, round.limit);
    let co = match &reply.invocation {
        Invocation::Ran { out, .. } => out,
        Invocation::SkippedNoFlowContext => return Answer::Decide(ActionType::PERMIT, len),
        Invocation::Unregistered | Invocation::Panicked => {
            let permit = f.action() == ActionType::CALLOUT_INSPECTION
                || f.flags()
                    .contains(RtFilterFlags::PERMIT_IF_CALLOUT_UNREGISTERED);
            let action = if permit {
                ActionType::PERMIT
            } else {
                ActionType::BLOCK
            };
            return Answer::Decide(action, len);
        }
    };
    match reply.action {
        StreamAction::NeedMoreData if !fin && !limit => {
            // Brief decision 8: countBytesRequired is the total to accumulate.
            st.required = (reply.required as usize).max(len + 1);
            Answer::Hold
        }
        StreamAction::Defer if !fin && !limit && !round.send => {
            st.deferred = true;
            Answer::Hold
        }
        StreamAction::DropConnection if f.action() == ActionType::CALLOUT_UNKNOWN => {
            Answer::DropConnection
        }
        StreamAction::AllowConnection => {
            st.allowed = true;
            Answer::Decide(ActionType::PERMIT, len)
        }
        StreamAction::None => {
            let n = match reply.enforced as usize {
                0 => len,
                n => n.min(len),
            };
            Answer::Decide(coerce(co.action_type, f.action()), n)
        }
        // A stream action the filter type ignores, or NEED_MORE_DATA when no more can
        // come: the callout broke the contract; its filter type's coercion decides.
        _ => Answer::Decide(coerce(co.action_type, f.action()), len),
    }
}
