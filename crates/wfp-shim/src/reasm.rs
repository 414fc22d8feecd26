//! Per-direction TCP stream reassembly with first-copy-wins overlap handling.
//!
//! A [`StreamReassembler`] turns the segments of *one direction* of a TCP connection into the
//! in-order byte stream that direction carries, for the STREAM layer. Stream offsets are `u64`
//! byte counts from the first data byte (the byte after the SYN, at ISN + 1); sequence numbers are
//! compared with `u32` wrapping arithmetic relative to the next expected byte, so streams longer
//! than 4 GiB and sequence-number wraparound are handled.
//!
//! ```text
//!  Segment { seq, payload, cut, syn, fin, rst }
//!        │ push
//!        ▼
//!  ┌──────────────── StreamReassembler ──────────────────────────────────┐
//!  │ history (last bytes delivered) │ next │ out-of-order runs │ cut spans │
//!  └─────────────────────────────────────────────────────────────────────┘
//!        │ PushOutcome { delivered: Option<Delivery{offset, Cow bytes}>,
//!        │               anomaly, dropped, finished, reset }
//!        ▼ then, while Some: skip_missing() → SkipOutcome { missed, delivered, finished }
//! ```
//!
//! # Contract
//!
//! * **In order, exactly once**: every byte of the stream is delivered once, in order, with its
//!   absolute offset. A segment that starts at the next expected byte while nothing is buffered is
//!   delivered *borrowed* from the caller's payload (zero copy, `Cow::Borrowed`); when it closes a
//!   gap, it and the buffered bytes that follow are delivered as one owned buffer.
//! * **First copy wins** (brief decision 9): bytes already received — delivered and still in the
//!   history window, or buffered out of order — are never replaced. A retransmission or overlap
//!   with the *same* bytes is ignored silently (counted as duplicate bytes); with *different* bytes
//!   it is reported as [`Anomaly::Overlap`] (the span from the first to the last differing byte)
//!   and the new copy of those bytes is discarded. Bytes of the segment that overlap nothing are
//!   still accepted.
//! * **History**: to compare retransmissions of delivered bytes, the last
//!   [`ReasmConfig::history_bytes`] delivered bytes are kept (a ring, grown lazily). Retransmitted
//!   bytes older than that are ignored without comparison (`unverified_bytes`).
//! * **Out-of-order bound**: at most [`ReasmConfig::max_buffered_bytes`] bytes in at most
//!   [`ReasmConfig::max_buffered_segments`] disjoint runs (adjacent pieces are merged). A segment
//!   whose new bytes would exceed either bound has them dropped (the newest data is dropped, never
//!   data already buffered): [`DropReason::BufferFull`].
//! * **Window**: data starting more than [`ReasmConfig::max_window`] bytes beyond the next
//!   expected byte is dropped ([`DropReason::OutOfWindow`]); bytes before the stream's first byte
//!   are ignored.
//! * **FIN**: the first FIN fixes the stream's end. A later FIN at another position, or a FIN
//!   before bytes already received, is [`Anomaly::FinConflict`] and ignored; data beyond the end
//!   is [`Anomaly::DataAfterFin`] and discarded. `finished` is reported once, when every byte up to
//!   the FIN has been delivered.
//! * **RST**: ends the stream at once; buffered bytes are discarded; later segments are ignored.
//! * **Cut segments** (a capture's snapshot length kept only the first bytes): [`Segment::cut`]
//!   bytes follow the payload in sequence space but were never seen. They are not a hole that
//!   later segments wait behind: their span is remembered (at most
//!   [`ReasmConfig::max_buffered_segments`] spans; a span beyond that is forgotten and counted, and
//!   then stalls the stream like a lost segment) and, once every byte before it has been
//!   delivered, [`StreamReassembler::skip_missing`] skips it as missed bytes (counted) and delivers
//!   what follows. Bytes that arrive for a remembered span before it is reached are kept and
//!   delivered; a FIN on a cut segment ends the stream after the cut bytes.
//! * **Memory per stream**: `history_bytes + max_buffered_bytes` plus a few hundred bytes.
//! * One push reports at most one anomaly (precedence: overlap, data after FIN, FIN conflict) and
//!   at most one drop; the [`ReasmCounters`] count every occurrence.

use std::borrow::Cow;
use std::collections::{BTreeMap, VecDeque};

/// Bounds of a [`StreamReassembler`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ReasmConfig {
    /// Most out-of-order bytes buffered (default 256 KiB).
    pub max_buffered_bytes: usize,
    /// Most disjoint out-of-order runs buffered (default 64).
    pub max_buffered_segments: usize,
    /// Delivered bytes kept to compare retransmissions against (default 64 KiB; 0 disables).
    pub history_bytes: usize,
    /// Data starting further than this beyond the next expected byte is dropped (default 2^30,
    /// TCP's largest window).
    pub max_window: u32,
}

impl Default for ReasmConfig {
    fn default() -> Self {
        Self {
            max_buffered_bytes: 256 << 10,
            max_buffered_segments: 64,
            history_bytes: 64 << 10,
            max_window: 1 << 30,
        }
    }
}

/// One TCP segment of the direction being reassembled.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Segment<'a> {
    /// Sequence number of the segment (of the SYN when `syn` is set).
    pub seq: u32,
    /// Payload bytes.
    pub payload: &'a [u8],
    /// SYN flag: the payload starts at `seq + 1`.
    pub syn: bool,
    /// FIN flag: the stream ends after the payload.
    pub fin: bool,
    /// RST flag: the stream is aborted (the payload is ignored).
    pub rst: bool,
    /// Payload bytes the segment carried after `payload` that were not captured (a capture's
    /// snapshot length cut them): they take sequence space, are never delivered, and are skipped
    /// as missed bytes by [`StreamReassembler::skip_missing`]. 0 for a whole segment.
    pub cut: u32,
}

impl<'a> Segment<'a> {
    /// A data segment without control flags.
    pub const fn data(seq: u32, payload: &'a [u8]) -> Self {
        Self {
            seq,
            payload,
            syn: false,
            fin: false,
            rst: false,
            cut: 0,
        }
    }
}

/// In-order bytes delivered by a push.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Delivery<'a> {
    /// Stream offset of the first byte.
    pub offset: u64,
    /// The bytes: borrowed from the pushed payload when possible.
    pub data: Cow<'a, [u8]>,
}

/// Content conflicts found by a push.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Anomaly {
    /// Data beyond the stream's FIN was discarded.
    DataAfterFin {
        /// Stream offset of the first discarded byte.
        offset: u64,
        /// Bytes discarded.
        len: u64,
    },
    /// A FIN at a different position than the first FIN, or before bytes already received, was
    /// ignored.
    FinConflict {
        /// Stream offset the ignored FIN claimed.
        offset: u64,
    },
    /// Bytes overlapping data already received differ from it; the first copy was kept.
    Overlap {
        /// Stream offset of the first differing byte.
        offset: u64,
        /// Span from the first to the last differing byte.
        len: u64,
    },
}

/// New bytes a push could not accept.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Dropped {
    /// Stream offset of the first dropped byte.
    pub offset: u64,
    /// Bytes dropped.
    pub len: u64,
    /// Why.
    pub reason: DropReason,
}

/// Why bytes were dropped.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum DropReason {
    /// The out-of-order buffer bound would be exceeded.
    BufferFull,
    /// The segment starts beyond [`ReasmConfig::max_window`].
    OutOfWindow,
}

/// What a push did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PushOutcome<'a> {
    /// Bytes now deliverable in order.
    pub delivered: Option<Delivery<'a>>,
    /// A content conflict (see [`Anomaly`]).
    pub anomaly: Option<Anomaly>,
    /// New bytes not accepted.
    pub dropped: Option<Dropped>,
    /// Every byte up to the FIN has now been delivered (reported once).
    pub finished: bool,
    /// This segment reset the stream.
    pub reset: bool,
}

/// What [`StreamReassembler::skip_gap`] or [`StreamReassembler::skip_missing`] did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SkipOutcome {
    /// Bytes skipped (never received).
    pub missed: u64,
    /// Buffered bytes now delivered, starting right after the gap.
    pub delivered: Option<Delivery<'static>>,
    /// Every byte up to the FIN has now been delivered or skipped.
    pub finished: bool,
}

/// Counters of a [`StreamReassembler`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ReasmCounters {
    /// Segments pushed (before the stream was reset).
    pub segments: u64,
    /// Bytes delivered.
    pub delivered_bytes: u64,
    /// Received bytes identical to bytes already received.
    pub duplicate_bytes: u64,
    /// Retransmitted bytes older than the history window (not compared).
    pub unverified_bytes: u64,
    /// Pushes with an [`Anomaly::Overlap`].
    pub overlap_anomalies: u64,
    /// Bytes discarded in overlap spans that differed.
    pub overlap_bytes: u64,
    /// Pushes with an [`Anomaly::DataAfterFin`].
    pub data_after_fin: u64,
    /// Pushes with an [`Anomaly::FinConflict`].
    pub fin_conflicts: u64,
    /// Pushes whose new bytes were dropped for [`DropReason::BufferFull`].
    pub buffer_full_drops: u64,
    /// Bytes dropped for [`DropReason::BufferFull`].
    pub buffer_full_bytes: u64,
    /// Segments dropped for [`DropReason::OutOfWindow`].
    pub out_of_window_drops: u64,
    /// Bytes before the stream's first byte, ignored.
    pub before_start_bytes: u64,
    /// Bytes skipped by [`StreamReassembler::skip_gap`] and [`StreamReassembler::skip_missing`].
    pub skipped_bytes: u64,
    /// Bytes of cut segments skipped by [`StreamReassembler::skip_missing`] (part of
    /// `skipped_bytes`).
    pub cut_bytes: u64,
    /// Spans of cut segments forgotten because [`ReasmConfig::max_buffered_segments`] spans were
    /// already waiting.
    pub cut_spans_dropped: u64,
    /// Segments ignored because the stream was reset.
    pub after_reset: u64,
}

/// Where the stream is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum StreamState {
    /// Every byte up to the FIN has been delivered.
    Finished,
    /// Bytes may still arrive.
    Open,
    /// Aborted by RST.
    Reset,
}

/// The history ring's first allocation (see `StreamReassembler::advance`).
const HISTORY_START_BYTES: usize = 1024;

/// Reassembles one direction of a TCP connection. See the module doc for the contract.
///
/// Call order: [`StreamReassembler::push`] for every segment of the direction (data, FIN, RST,
/// retransmissions included); optionally [`StreamReassembler::skip_gap`] when a hole will never be
/// filled (a capture that lost a segment, or a flow being torn down); after every push,
/// [`StreamReassembler::skip_missing`] until it returns `None` when segments may be cut
/// ([`Segment::cut`]).
#[derive(Clone, Debug)]
pub struct StreamReassembler {
    config: ReasmConfig,
    /// Sequence number of stream offset 0.
    base_seq: u32,
    /// Offset of the next byte to deliver (= bytes delivered or skipped).
    next: u64,
    /// Out-of-order runs, keyed by offset; disjoint, non-adjacent, all beyond `next`.
    ooo: BTreeMap<u64, Vec<u8>>,
    buffered: usize,
    /// Spans of cut segments not reached yet: start → end (may overlap each other and runs).
    missing: BTreeMap<u64, u64>,
    /// The last bytes delivered, ending at `next`.
    history: VecDeque<u8>,
    fin: Option<u64>,
    state: StreamState,
    counters: ReasmCounters,
}

/// Running record of differing bytes during one push.
#[derive(Default)]
struct Diff {
    first: Option<u64>,
    last: u64,
}

impl Diff {
    fn note(&mut self, at: u64) {
        self.first = Some(self.first.map_or(at, |f| f.min(at)));
        self.last = self.last.max(at);
    }
}

impl StreamReassembler {
    /// A stream whose first data byte has sequence number `first_seq`.
    pub fn new(first_seq: u32, config: ReasmConfig) -> Self {
        Self {
            config,
            base_seq: first_seq,
            next: 0,
            ooo: BTreeMap::new(),
            buffered: 0,
            missing: BTreeMap::new(),
            history: VecDeque::new(),
            fin: None,
            state: StreamState::Open,
            counters: ReasmCounters::default(),
        }
    }

    /// A stream opened by a SYN with sequence number `isn` (data starts at `isn + 1`).
    pub fn after_syn(isn: u32, config: ReasmConfig) -> Self {
        Self::new(isn.wrapping_add(1), config)
    }

    /// Handle one segment.
    pub fn push<'a>(&mut self, seg: Segment<'a>) -> PushOutcome<'a> {
        let mut out = PushOutcome::default();
        if self.state == StreamState::Reset {
            self.counters.after_reset += 1;
            return out;
        }
        self.counters.segments += 1;
        if let Some(data) = self.plain_next(&seg) {
            // The next bytes of an open stream, nothing buffered, no FIN known, no flags, no cut
            // (nearly every data segment): what the general path below does for it, without its
            // range arithmetic.
            let offset = self.next;
            self.advance(data);
            out.delivered = Some(Delivery {
                offset,
                data: Cow::Borrowed(data),
            });
            return out;
        }
        if seg.rst {
            self.state = StreamState::Reset;
            self.ooo.clear();
            self.buffered = 0;
            self.missing.clear();
            out.reset = true;
            return out;
        }

        let data_seq = if seg.syn {
            seg.seq.wrapping_add(1)
        } else {
            seg.seq
        };
        let rel = i64::from(data_seq.wrapping_sub(self.next_seq()) as i32);
        let len = seg.payload.len();
        let cut = u64::from(seg.cut);
        if rel > i64::from(self.config.max_window)
            || len as u64 + cut > u64::from(self.config.max_window)
        {
            self.counters.out_of_window_drops += 1;
            out.dropped = Some(Dropped {
                offset: self.next.saturating_add(rel.unsigned_abs()),
                len: len as u64,
                reason: DropReason::OutOfWindow,
            });
            return out;
        }
        // Absolute range [a, b) of the payload; trim what lies before the stream start.
        let mut payload = seg.payload;
        let mut a = i128::from(self.next) + i128::from(rel);
        if a < 0 {
            let skip = usize::try_from(-a).unwrap_or(usize::MAX).min(payload.len());
            self.counters.before_start_bytes += skip as u64;
            payload = payload.get(skip..).unwrap_or(&[]);
            a += skip as i128;
        }
        let b = a + payload.len() as i128;

        let mut diff = Diff::default();
        let mut anomaly_after_fin = None;
        let mut anomaly_fin = None;

        if seg.fin {
            anomaly_fin = self.accept_fin(b + i128::from(cut));
        }
        if cut > 0 {
            self.note_missing(b, cut);
        }
        if a < 0 || payload.is_empty() {
            return self.finish_push(out, diff, anomaly_after_fin, anomaly_fin);
        }
        let (a, b) = (a as u64, b as u64);

        // Part already delivered: compare with the history.
        if a < self.next {
            self.compare_history(a, payload, b.min(self.next), &mut diff);
        }
        // New part, cut at the FIN.
        let mut new_start = a.max(self.next);
        let mut new_end = b;
        if let Some(fin) = self.fin {
            if new_end > fin {
                let from = new_start.max(fin);
                anomaly_after_fin = Some(Anomaly::DataAfterFin {
                    offset: from,
                    len: new_end - from,
                });
                self.counters.data_after_fin += 1;
                new_end = from;
            }
        }
        if new_start >= new_end {
            return self.finish_push(out, diff, anomaly_after_fin, anomaly_fin);
        }
        let slice = |s: u64, e: u64| -> &'a [u8] {
            payload
                .get((s - a) as usize..(e - a) as usize)
                .unwrap_or(&[])
        };

        // In order with nothing buffered (nearly every segment): the new part is the one gap and
        // it starts the stream, so it is delivered as it is, with no list of gaps to build.
        if self.ooo.is_empty() && new_start == self.next {
            let data = slice(new_start, new_end);
            self.advance(data);
            out.delivered = Some(Delivery {
                offset: new_start,
                data: Cow::Borrowed(data),
            });
            return self.finish_push(out, diff, anomaly_after_fin, anomaly_fin);
        }
        // Compare with buffered runs and find the gaps this segment fills.
        let mut gaps: Vec<(u64, u64)> = Vec::new();
        let mut cursor = new_start;
        if !self.ooo.is_empty() {
            let first = self
                .ooo
                .range(..=new_start)
                .next_back()
                .map_or(new_start, |(&s, _)| s);
            for (&s, run) in self.ooo.range(first..new_end) {
                let e = s + run.len() as u64;
                if e <= cursor {
                    continue;
                }
                if s > cursor {
                    gaps.push((cursor, s));
                }
                let (os, oe) = (s.max(new_start), e.min(new_end));
                let old = run.get((os - s) as usize..(oe - s) as usize).unwrap_or(&[]);
                let new = slice(os, oe);
                for (i, (x, y)) in old.iter().zip(new).enumerate() {
                    if x == y {
                        self.counters.duplicate_bytes += 1;
                    } else {
                        diff.note(os + i as u64);
                    }
                }
                cursor = cursor.max(e);
            }
        }
        if cursor < new_end {
            gaps.push((cursor, new_end));
        }
        new_start = gaps.first().map_or(new_end, |g| g.0);

        // Deliver from `next` if this segment starts there.
        let mut rest = &gaps[..];
        if new_start == self.next {
            if let [(s, e), tail @ ..] = rest {
                rest = tail;
                if self.ooo.first_key_value().map(|(&k, _)| k) != Some(*e) {
                    let data = slice(*s, *e);
                    self.advance(data);
                    out.delivered = Some(Delivery {
                        offset: *s,
                        data: Cow::Borrowed(data),
                    });
                } else {
                    let mut buf = slice(*s, *e).to_vec();
                    let mut at = *e;
                    loop {
                        if let Some(entry) = self.ooo.first_entry() {
                            if *entry.key() == at {
                                let run = entry.remove();
                                self.buffered -= run.len();
                                at += run.len() as u64;
                                buf.extend_from_slice(&run);
                                if let [(gs, ge), tail @ ..] = rest {
                                    if *gs == at {
                                        buf.extend_from_slice(slice(*gs, *ge));
                                        at = *ge;
                                        rest = tail;
                                        continue;
                                    }
                                }
                                continue;
                            }
                        }
                        break;
                    }
                    self.advance(&buf);
                    out.delivered = Some(Delivery {
                        offset: *s,
                        data: Cow::Owned(buf),
                    });
                }
            }
        }
        if !rest.is_empty() {
            self.buffer_gaps(rest, &slice, &mut out);
        }
        self.finish_push(out, diff, anomaly_after_fin, anomaly_fin)
    }

    /// Give up on the hole before the first buffered run (or before the FIN when nothing is
    /// buffered): skip it and deliver what follows. `None` when there is no hole to skip.
    pub fn skip_gap(&mut self) -> Option<SkipOutcome> {
        if self.state != StreamState::Open {
            return None;
        }
        let target = match self.ooo.keys().next() {
            Some(&k) => k,
            None => self.fin.filter(|&f| f > self.next)?,
        };
        Some(self.skip_to(target))
    }

    /// Moves the stream start to `target` (the bytes before it are missed) and delivers the
    /// buffered run that starts there, if any.
    fn skip_to(&mut self, target: u64) -> SkipOutcome {
        let missed = target - self.next;
        self.next = target;
        self.history.clear();
        self.counters.skipped_bytes += missed;
        let delivered = self.ooo.remove(&target).map(|run| {
            self.buffered -= run.len();
            self.advance(&run);
            Delivery {
                offset: target,
                data: Cow::Owned(run),
            }
        });
        let finished = self.check_finished();
        SkipOutcome {
            missed,
            delivered,
            finished,
        }
    }

    /// Skip the span of a cut segment ([`Segment::cut`]) once every byte before it has been
    /// delivered: the bytes up to its end (or up to bytes that did arrive for it) count as missed,
    /// and the buffered run that follows, if any, is delivered. `None` when no cut span starts at
    /// the next expected byte. Call it after every push until it returns `None`: a span can be
    /// followed by a run, then another span.
    #[inline]
    pub fn skip_missing(&mut self) -> Option<SkipOutcome> {
        if self.missing.is_empty() {
            return None;
        }
        self.skip_missing_span()
    }

    /// [`StreamReassembler::skip_missing`] when some span is remembered.
    fn skip_missing_span(&mut self) -> Option<SkipOutcome> {
        if self.state != StreamState::Open {
            return None;
        }
        let (start, end) = loop {
            let (&s, &e) = self.missing.first_key_value()?;
            if e <= self.next {
                self.missing.remove(&s);
                continue;
            }
            if s > self.next {
                return None;
            }
            break (s, e);
        };
        let mut target = end;
        if let Some(&k) = self.ooo.keys().next() {
            target = target.min(k);
        }
        if let Some(f) = self.fin {
            target = target.min(f);
        }
        if target <= self.next {
            // The FIN is here: nothing after it can be missed.
            self.missing.clear();
            return None;
        }
        if target == end {
            self.missing.remove(&start);
        }
        self.counters.cut_bytes += target - self.next;
        Some(self.skip_to(target))
    }

    /// Cut bytes waiting to be skipped by [`StreamReassembler::skip_missing`] (their spans may
    /// overlap, so this is an upper bound).
    pub fn missing_bytes(&self) -> u64 {
        self.missing
            .iter()
            .map(|(&s, &e)| e - s.max(self.next).min(e))
            .sum()
    }

    /// Sequence number of the next byte expected.
    pub fn next_seq(&self) -> u32 {
        self.base_seq.wrapping_add(self.next as u32)
    }

    /// Stream offset of the next byte expected (= bytes delivered or skipped).
    pub fn next_offset(&self) -> u64 {
        self.next
    }

    /// The stream offset of sequence number `seq`, interpreted within ±2^31 of the next byte
    /// expected; `None` when that lies before the stream start.
    pub fn offset_of(&self, seq: u32) -> Option<u64> {
        let rel = i64::from(seq.wrapping_sub(self.next_seq()) as i32);
        u64::try_from(i128::from(self.next) + i128::from(rel)).ok()
    }

    /// Out-of-order bytes buffered.
    pub fn buffered_bytes(&self) -> usize {
        self.buffered
    }

    /// Disjoint out-of-order runs buffered.
    pub fn buffered_segments(&self) -> usize {
        self.ooo.len()
    }

    /// Stream offset of the FIN, once known.
    pub fn fin_offset(&self) -> Option<u64> {
        self.fin
    }

    /// Open, finished or reset.
    pub fn state(&self) -> StreamState {
        self.state
    }

    /// Counters since creation.
    pub fn counters(&self) -> &ReasmCounters {
        &self.counters
    }

    /// Record a FIN ending the stream at `at`; returns the anomaly if it is ignored.
    fn accept_fin(&mut self, at: i128) -> Option<Anomaly> {
        let conflict = |at: i128| Anomaly::FinConflict {
            offset: u64::try_from(at).unwrap_or(0),
        };
        let Ok(at) = u64::try_from(at) else {
            self.counters.fin_conflicts += 1;
            return Some(conflict(at));
        };
        match self.fin {
            Some(fin) if fin == at => None,
            Some(_) => {
                self.counters.fin_conflicts += 1;
                Some(conflict(i128::from(at)))
            }
            None => {
                let buffered_end = self
                    .ooo
                    .last_key_value()
                    .map_or(0, |(&k, v)| k + v.len() as u64);
                if at < self.next || buffered_end > at {
                    self.counters.fin_conflicts += 1;
                    Some(conflict(i128::from(at)))
                } else {
                    self.fin = Some(at);
                    None
                }
            }
        }
    }

    /// Remember the `cut` bytes at absolute offset `at` (after a cut segment's payload) for
    /// [`StreamReassembler::skip_missing`]; the part before `next` or after the FIN is ignored.
    fn note_missing(&mut self, at: i128, cut: u64) {
        let mut end = at + i128::from(cut);
        if let Some(f) = self.fin {
            end = end.min(i128::from(f));
        }
        let start = at.max(i128::from(self.next));
        let (Ok(start), Ok(end)) = (u64::try_from(start), u64::try_from(end)) else {
            return;
        };
        if start >= end {
            return;
        }
        if let Some(e) = self.missing.get_mut(&start) {
            *e = (*e).max(end);
            return;
        }
        if self.missing.len() >= self.config.max_buffered_segments {
            self.counters.cut_spans_dropped += 1;
            return;
        }
        self.missing.insert(start, end);
    }

    /// Compare the part of `payload` (starting at offset `a`) below `end` (<= next) with the
    /// history.
    fn compare_history(&mut self, a: u64, payload: &[u8], end: u64, diff: &mut Diff) {
        let hist_start = self.next - self.history.len() as u64;
        if a < hist_start {
            self.counters.unverified_bytes += end.min(hist_start) - a;
        }
        let from = a.max(hist_start);
        if from >= end {
            return;
        }
        let old = self
            .history
            .range((from - hist_start) as usize..(end - hist_start) as usize);
        let new = payload
            .get((from - a) as usize..(end - a) as usize)
            .unwrap_or(&[]);
        for (i, (x, y)) in old.zip(new).enumerate() {
            if x == y {
                self.counters.duplicate_bytes += 1;
            } else {
                diff.note(from + i as u64);
            }
        }
    }

    /// Buffer the gaps `rest` (not deliverable yet), or drop them all if a bound would break.
    fn buffer_gaps<'a>(
        &mut self,
        rest: &[(u64, u64)],
        slice: &impl Fn(u64, u64) -> &'a [u8],
        out: &mut PushOutcome<'a>,
    ) {
        let bytes: u64 = rest.iter().map(|(s, e)| e - s).sum();
        let mut runs = self.ooo.len() as i64;
        for &(s, e) in rest {
            let left = self
                .ooo
                .range(..s)
                .next_back()
                .is_some_and(|(&k, v)| k + v.len() as u64 == s);
            let right = self.ooo.contains_key(&e);
            runs += 1 - i64::from(left) - i64::from(right);
        }
        if self.buffered as u64 + bytes > self.config.max_buffered_bytes as u64
            || runs > self.config.max_buffered_segments as i64
        {
            self.counters.buffer_full_drops += 1;
            self.counters.buffer_full_bytes += bytes;
            out.dropped = Some(Dropped {
                offset: rest.first().map_or(0, |g| g.0),
                len: bytes,
                reason: DropReason::BufferFull,
            });
            return;
        }
        for &(s, e) in rest {
            self.insert_run(s, slice(s, e));
        }
    }

    /// Insert a piece into the out-of-order map, merging it with adjacent runs.
    fn insert_run(&mut self, start: u64, bytes: &[u8]) {
        self.buffered += bytes.len();
        let end = start + bytes.len() as u64;
        let mut key = start;
        match self.ooo.range_mut(..start).next_back() {
            Some((&k, run)) if k + run.len() as u64 == start => {
                run.extend_from_slice(bytes);
                key = k;
            }
            _ => {
                self.ooo.insert(start, bytes.to_vec());
            }
        }
        if let Some(next) = self.ooo.remove(&end) {
            if let Some(run) = self.ooo.get_mut(&key) {
                run.extend_from_slice(&next);
            }
        }
    }

    /// `seg`'s payload when it is exactly the next bytes of an open stream with nothing
    /// buffered and no FIN known, and the segment carries no SYN, FIN, RST or cut span.
    #[inline]
    fn plain_next<'a>(&self, seg: &Segment<'a>) -> Option<&'a [u8]> {
        let plain = !(seg.syn || seg.fin || seg.rst) && seg.cut == 0;
        (plain
            && self.state == StreamState::Open
            && self.fin.is_none()
            && self.ooo.is_empty()
            && !seg.payload.is_empty()
            && seg.payload.len() as u64 <= u64::from(self.config.max_window)
            && seg.seq == self.next_seq())
        .then_some(seg.payload)
    }

    /// Mark `data` (starting at `next`) delivered.
    fn advance(&mut self, data: &[u8]) {
        self.next += data.len() as u64;
        self.counters.delivered_bytes += data.len() as u64;
        let cap = self.config.history_bytes;
        if cap == 0 {
            return;
        }
        if self.history.capacity() == 0 {
            // Small segments would otherwise regrow the ring from 8 bytes up (a reallocation
            // every few segments): start at the first kilobyte or the segment, whichever is more.
            self.history
                .reserve(data.len().max(HISTORY_START_BYTES).min(cap));
        }
        if data.len() >= cap {
            self.history.clear();
            self.history
                .extend(data.get(data.len() - cap..).unwrap_or(&[]));
        } else {
            let excess = (self.history.len() + data.len()).saturating_sub(cap);
            if excess > 0 {
                self.history.drain(..excess);
            }
            self.history.extend(data);
        }
    }

    fn check_finished(&mut self) -> bool {
        if self.state == StreamState::Open && self.fin == Some(self.next) {
            self.state = StreamState::Finished;
            return true;
        }
        false
    }

    fn finish_push<'a>(
        &mut self,
        mut out: PushOutcome<'a>,
        diff: Diff,
        after_fin: Option<Anomaly>,
        fin: Option<Anomaly>,
    ) -> PushOutcome<'a> {
        let overlap = diff.first.map(|first| {
            let len = diff.last - first + 1;
            self.counters.overlap_anomalies += 1;
            self.counters.overlap_bytes += len;
            Anomaly::Overlap { offset: first, len }
        });
        out.anomaly = overlap.or(after_fin).or(fin);
        out.finished = self.check_finished();
        out
    }
}
