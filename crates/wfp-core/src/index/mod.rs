//! Per-sublayer filter index: finds the next filter, in evaluation order, whose conditions match
//! the incoming values, without scanning every filter — and takes single-filter changes without a
//! rebuild (issue 15, B2).
//!
//! ```text
//!  build (per sublayer)                             lookup (per classify, allocation-free)
//!  filters in evaluation order                      incoming values
//!    │ compile: every condition group → exact          │ one key per dimension (absent when
//!    │ intervals on ≤ 8 dimensions, or "residual"      │ missing or of another type)
//!    ▼                                                 ▼
//!  boxes ─► tuple tables (boxes with equal prefix   prune maps: AND of per-dimension table sets
//!           lengths — or merged, for hard sets —      → candidate tables, best position first
//!           hashed on those prefixes)
//!        ─► prune maps (per dimension: key block     → presence filter → slot tag → record
//!           → set of tables reaching it)              → residual check (only when needed)
//!                                                     stop when no table left can do better
//!
//!  a commit changing a few filters (`with_changes`)
//!    runs (Arc'd, immutable, shared with the previous snapshot: the main one and at most two
//!    smaller ones) + tombstones per run (bitsets over run positions) + added filters (sorted by
//!    evaluation order, boxes compiled on the main run's dimensions and packed per dimension, in
//!    Arc'd chunks of at most 32: a commit copies one chunk, `delta.rs`)
//!    lookup: the first live match of each run and of the added filters; the earliest in
//!    evaluation order wins
//!    more than MAX_ADDED added filters become a run (an index of those alone), folding in the
//!    smallest run while it is under SMALL_RUN or not larger than what is folded (so a big run
//!    is rebuilt about once per doubling, not at every spill); a transaction adding more than
//!    MAX_ADDED goes straight to such a run; everything is compacted into one run (a fresh
//!    build) only when the smaller runs pass a quarter of the main one or tombstones pile up
//! ```
//!
//! The algorithm (tuple-space search with priority-ordered tables and early termination, plus
//! per-dimension table pruning) is described in `tuple.rs`; `compile.rs` turns conditions into
//! boxes; `prune.rs` builds the pruning maps; `delta.rs` holds tombstones and the added filters of
//! a snapshot (`layer.rs` applies a transaction's filter changes to a layer's published view).
//!
//! Each run also keeps a 16-byte *head* per position (filter id, action, clear-right flag): a
//! classify that ends at a static filter decides from the head (`Hit`) without reading the
//! filter object. Application ids (byte blobs) are keyed through a per-run dictionary of the blobs
//! the conditions name, in byte order, so their groups are exact intervals too (`compile.rs`).
//!
//! Contract: `SublayerIndex::next` yields exactly what a linear scan over the sublayer's filters
//! in evaluation order (effective weight descending, then filter id; §7.3) yields —
//! `filters.iter().filter(|f| f.conditions().matches(values))` — for every policy, every history
//! of changes and every incoming value vector. Only conditions whose accepted set is exactly a
//! union of intervals over one typed field are indexed (EQUAL, NOT_EQUAL, GREATER…, RANGE on
//! integers, MACs and IPv6 addresses, byte blobs; V4 masks with contiguous masks; V6 prefixes); every
//! other group — FLAGS_*, strings, blob PREFIX, SIDs, FWP_EMPTY values, non-contiguous masks, second groups on
//! one field, very wide OR groups — is a wildcard in the index and confirmed by
//! `ConditionSet::matches` on the candidates. Small sublayers (fewer than `SCAN_BELOW` filters) or
//! sublayers with no indexable condition are scanned.
//!
//! The module performs no I/O, reads no clock, starts no threads, and allocates only at build and
//! at commit.

mod compile;
pub(crate) use compile::group_intervals;
mod delta;
mod fast_hash;
pub(crate) mod layer;
mod prune;
mod store;
mod tuple;

// What the benchmarks in `wfp-bench` need from the index: only with the `bench-internals` feature,
// which no production crate enables.
#[cfg(feature = "bench-internals")]
#[doc(hidden)]
pub mod bench_internals;

#[cfg(test)]
mod tests;

use std::cmp::Ordering;
use std::sync::Arc;

use crate::catalogue::LayerDef;
use crate::constants::{ActionType, RtFilterFlags};
use crate::filter::{CalloutId, FilterId, RtFilter};
use crate::value::Value;

use delta::{Added, Dead, Delta};
use tuple::{Params, TupleIndex};

/// Sublayers with fewer filters than this are scanned linearly (the index would not pay off).
pub(crate) const SCAN_BELOW: usize = 32;

/// A delta holds at most this many added filters before they become a run (each costs about a
/// nanosecond per lookup while it waits, `delta.rs`'s packed columns). A spill builds an index
/// (0.1–0.5 ms), so it is kept to fewer than 1% of single-filter commits (issue 15, B2: at 64,
/// 1.6% of a burst of adds spilled and set the burst's p99 at 200–370 µs). Tiny in unit tests,
/// so that their random histories go through every spill and compaction.
const MAX_ADDED: usize = if cfg!(test) { 3 } else { 128 };

/// Tombstones of a run are compacted away past this many, or past a quarter of the run (each
/// costs only a bit test on a candidate).
const MAX_DEAD: usize = if cfg!(test) { 8 } else { 1024 };

/// Immutable runs per index: the main one and at most two smaller ones (made of added filters).
const MAX_RUNS: usize = 3;

/// A run of added filters smaller than this takes the next spill into it (it is rebuilt with
/// them); a larger one stays as it is until a spill of about its size or the run limit folds it
/// in. So the frequent spills rebuild at most this many filters, and a big run is rebuilt about
/// once per doubling (issue 15, B2: a spill into one growing run rebuilt up to a quarter of the
/// main run every `MAX_ADDED` adds).
const SMALL_RUN: usize = if cfg!(test) { 10 } else { 512 };

/// The index of one sublayer's filters: immutable runs shared between snapshots (the main base and
/// at most one smaller run of filters added since), and the changes committed since they were
/// built.
#[derive(Clone, Debug, Default)]
pub(crate) struct SublayerIndex {
    /// The main run first; never empty once built.
    runs: Vec<Run>,
    delta: Delta,
}

/// An immutable run and its tombstones.
#[derive(Clone, Debug, Default)]
struct Run {
    base: Arc<Base>,
    dead: Dead,
}

/// The filters of a run in evaluation order, their heads (same positions) and their index.
#[derive(Debug, Default)]
struct Base {
    filters: Vec<Arc<RtFilter>>,
    heads: Heads,
    inner: Inner,
}

/// What arbitration needs of a static (PERMIT/BLOCK) filter, kept next to the index so that a
/// classify ending at a static filter does not touch the filter object — a cache miss or two on
/// large policies (issue 15: `Engine::classify` cost against the index's).
#[derive(Clone, Copy, Debug)]
pub(crate) struct Head {
    pub(crate) filter_id: FilterId,
    pub(crate) action: ActionType,
    /// FWPS_FILTER_FLAG_CLEAR_ACTION_RIGHT.
    pub(crate) clears: bool,
    /// The filter has a callout id (read from the filter when set).
    has_callout: bool,
}

impl Head {
    fn of(f: &RtFilter) -> Self {
        Self {
            filter_id: f.filter_id,
            action: f.action,
            clears: f.flags.contains(RtFilterFlags::CLEAR_ACTION_RIGHT),
            has_callout: f.callout_id.is_some(),
        }
    }
}

/// The heads of a run's filters, 12 bytes each plus two flag bits (issue 15: at most 64 bytes of
/// index per filter; a `Head` is 16).
#[derive(Debug, Default)]
struct Heads {
    /// Per filter: filter id (low, high word), action type.
    words: Vec<[u32; 3]>,
    /// Bit `2i`: filter `i` clears the action right; bit `2i + 1`: it has a callout id.
    flags: Vec<u64>,
}

impl Heads {
    fn of(filters: &[Arc<RtFilter>]) -> Self {
        let mut flags = vec![0u64; (2 * filters.len()).div_ceil(64)];
        let words = filters
            .iter()
            .enumerate()
            .map(|(i, f)| {
                let h = Head::of(f);
                let bits = u64::from(h.clears) | u64::from(h.has_callout) << 1;
                if let Some(w) = flags.get_mut(2 * i / 64) {
                    *w |= bits << (2 * i % 64);
                }
                let id = h.filter_id.0;
                [id as u32, (id >> 32) as u32, h.action.0]
            })
            .collect();
        Self { words, flags }
    }

    #[inline]
    fn get(&self, i: usize) -> Option<Head> {
        let &[lo, hi, action] = self.words.get(i)?;
        let bits = self.flags.get(2 * i / 64)? >> (2 * i % 64);
        Some(Head {
            filter_id: FilterId(u64::from(lo) | u64::from(hi) << 32),
            action: ActionType(action),
            clears: bits & 1 != 0,
            has_callout: bits & 2 != 0,
        })
    }

    /// Approximate heap bytes.
    #[cfg(any(test, feature = "bench-internals"))]
    fn bytes(&self) -> usize {
        self.words.capacity() * 12 + self.flags.capacity() * 8
    }
}

/// A matching filter: the filter and its head.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Hit<'a> {
    pub(crate) filter: &'a Arc<RtFilter>,
    pub(crate) head: Head,
}

impl Hit<'_> {
    /// The filter's callout id (the filter is read only when it has one).
    pub(crate) fn callout_id(&self) -> Option<CalloutId> {
        if self.head.has_callout {
            self.filter.callout_id
        } else {
            None
        }
    }
}

#[derive(Debug, Default)]
enum Inner {
    /// Scanned: too few filters, or none with an indexable condition.
    #[default]
    Scan,
    /// The tuple index (boxed: its per-table arrays made it the one large variant).
    Tuples(Box<TupleIndex>),
}

/// Where a walk over a sublayer's matches stands ([`SublayerIndex::next`]); start with
/// `Cursor::default()`.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct Cursor {
    /// Next position to consider, per run.
    runs: [usize; MAX_RUNS],
    /// Next added filter to consider.
    added: usize,
}

/// Evaluation order inside a sublayer (§7.3 + brief decision 2): effective weight descending, then
/// lower filter id first — the order `engine/mgmt.rs` sorts a sublayer's filters in.
pub(crate) fn eval_order(a: &RtFilter, b: &RtFilter) -> Ordering {
    b.weight.cmp(&a.weight).then(a.filter_id.cmp(&b.filter_id))
}

impl SublayerIndex {
    /// An index that scans `filters` (given in evaluation order; always correct).
    pub(crate) fn scan(filters: Vec<Arc<RtFilter>>) -> Self {
        let delta = Delta::for_base(&filters);
        Self::single(Base::scanned(filters), delta)
    }

    /// Builds the index of `filters`, given in evaluation order; `layer` gives the field types.
    pub(crate) fn build(layer: &LayerDef, filters: &[Arc<RtFilter>]) -> Self {
        Self::build_from(layer, filters.to_vec(), Params::default(), SCAN_BELOW)
    }

    #[cfg(any(test, feature = "bench-internals"))]
    fn build_with(
        layer: &LayerDef,
        filters: &[Arc<RtFilter>],
        params: Params,
        scan_below: usize,
    ) -> Self {
        Self::build_from(layer, filters.to_vec(), params, scan_below)
    }

    fn build_from(
        layer: &LayerDef,
        filters: Vec<Arc<RtFilter>>,
        params: Params,
        scan_below: usize,
    ) -> Self {
        let delta = Delta::for_base(&filters);
        Self::single(Base::build(layer, filters, params, scan_below), delta)
    }

    fn single(base: Base, delta: Delta) -> Self {
        Self {
            runs: vec![Run {
                base: Arc::new(base),
                dead: Dead::default(),
            }],
            delta,
        }
    }

    /// The main run (for the bench: the index as built, before any change).
    #[cfg(feature = "bench-internals")]
    fn main(&self) -> Option<&Base> {
        self.runs.first().map(|r| &*r.base)
    }

    /// The main run's key space, on which added filters are compiled (`None`: scanned).
    fn space(&self) -> Option<&compile::Space> {
        match &self.runs.first()?.base.inner {
            Inner::Tuples(t) => Some(t.space()),
            Inner::Scan => None,
        }
    }

    /// The index after a commit that added `added` and deleted `deleted` (filters of this
    /// sublayer; a deleted filter not in the sublayer is ignored). Shares the runs with `self`;
    /// costs about the size of the delta, except when added filters become a run (about the cost
    /// of building an index of the smaller run) or everything is compacted into one run.
    pub(crate) fn with_changes(
        &self,
        layer: &LayerDef,
        added: &[&Arc<RtFilter>],
        deleted: &[&Arc<RtFilter>],
    ) -> Self {
        let mut next = self.clone();
        for f in deleted {
            next.delete(f);
        }
        let main_len = next.runs.first().map_or(0, |r| r.base.filters.len());
        if next.delta.len() + added.len() > MAX_ADDED {
            // They become a run (or part of one) right below: not compiled on the main run's
            // dimensions, nor inserted one by one.
            next.delta.extend_raw(added);
        } else {
            let space = self.space();
            for f in added {
                next.delta.add(Added::new(f, space), space);
            }
        }
        let small_scan = next
            .runs
            .first()
            .is_none_or(|r| matches!(r.base.inner, Inner::Scan) && main_len < SCAN_BELOW);
        next.renew_small_runs(layer);
        let too_dead = next.runs.first().is_some_and(Run::too_dead);
        if too_dead || (small_scan && next.len() >= SCAN_BELOW) {
            return next.compact(layer);
        }
        if next.delta.len() > MAX_ADDED {
            return next.spill(layer, main_len);
        }
        next
    }

    /// The smaller runs with too many tombstones dropped (no live filter left) or rebuilt from
    /// their live filters alone (past three quarters dead) — not a compaction of everything (issue 15, B2: deleting a burst
    /// of added filters emptied their run and rebuilt the whole layer, 0.28 s at 100k).
    fn renew_small_runs(&mut self, layer: &LayerDef) {
        let mut k = 1;
        while let Some(r) = self.runs.get_mut(k) {
            if r.live_len() == 0 {
                self.runs.remove(k);
                continue;
            }
            // A tombstone costs a lookup only a skipped candidate, a rebuild a few hundred
            // microseconds: a smaller run is rebuilt once three quarters of it are dead (deleting
            // a burst of added filters one by one then rebuilds each run about three times).
            if r.dead.count * 4 > r.base.filters.len() * 3 {
                let live: Vec<Arc<RtFilter>> = r.live().cloned().collect();
                *r = Run {
                    base: Arc::new(Base::build(layer, live, Params::default(), SCAN_BELOW)),
                    dead: Dead::default(),
                };
            }
            k += 1;
        }
    }

    /// Deletes `f` (an added filter, or a tombstone in the run holding it; ignored when absent).
    fn delete(&mut self, f: &RtFilter) {
        if self.delta.remove_added(f) {
            return;
        }
        for run in &mut self.runs {
            if let Some(i) = run.base.position(f) {
                if run.dead.kill(i, run.base.filters.len()) {
                    self.delta.forget(f);
                }
                return;
            }
        }
    }

    /// Everything into one new run.
    fn compact(&self, layer: &LayerDef) -> Self {
        let filters: Vec<Arc<RtFilter>> = self.filters().cloned().collect();
        let mut out = Self::build_from(layer, filters, Params::default(), SCAN_BELOW);
        out.delta.fields = self.delta.fields.clone();
        out
    }

    /// The added filters into a new run, folding in the smaller runs that are small (below
    /// [`SMALL_RUN`]), no larger than what is folded so far, or one too many; or, when the runs
    /// of added filters together would pass a quarter of the main one, everything into one run.
    fn spill(self, layer: &LayerDef, main_len: usize) -> Self {
        let added = self.delta.len();
        let extra: usize = self.runs.iter().skip(1).map(Run::live_len).sum();
        if extra + added > (main_len / 4).max(4 * MAX_ADDED) {
            return self.compact(layer);
        }
        let mut runs = self.runs;
        let mut folded: Vec<Run> = Vec::new();
        let mut size = added;
        while runs.len() > 1 {
            let Some(last) = runs.last() else { break };
            let l = last.live_len();
            if l >= SMALL_RUN && l > size && runs.len() < MAX_RUNS {
                break;
            }
            size += l;
            folded.extend(runs.pop());
        }
        let mut filters: Vec<Arc<RtFilter>> = Vec::with_capacity(size);
        for r in &folded {
            filters.extend(r.live().cloned());
        }
        filters.extend(self.delta.iter().cloned());
        if !folded.is_empty() {
            filters.sort_by(|a, b| eval_order(a, b));
        }
        let base = Base::build(layer, filters, Params::default(), SCAN_BELOW);
        runs.push(Run {
            base: Arc::new(base),
            dead: Dead::default(),
        });
        Self {
            runs,
            delta: Delta::with_fields(self.delta.fields),
        }
    }

    /// The next matching filter after `cursor`, in evaluation order; advances `cursor` past it.
    #[inline]
    pub(crate) fn next(&self, values: &[Value], cursor: &mut Cursor) -> Option<Hit<'_>> {
        if let ([run], true) = (self.runs.as_slice(), self.delta.is_empty()) {
            let i = run.next_live(values, cursor.runs[0])?;
            cursor.runs[0] = i + 1;
            return Some(Hit {
                filter: run.base.filters.get(i)?,
                head: run.base.heads.get(i)?,
            });
        }
        // (run, position, filter, head); run MAX_RUNS: the added filters. Filter objects are
        // read (for their weight) only to order two matches: a run's match is decided from its
        // head, which a classify reads anyway.
        let mut best: Option<(usize, usize, &Arc<RtFilter>, Head)> = None;
        for ((r, run), from) in self.runs.iter().enumerate().zip(cursor.runs) {
            let Some(i) = run.next_live(values, from) else {
                continue;
            };
            let (Some(f), Some(h)) = (run.base.filters.get(i), run.base.heads.get(i)) else {
                continue;
            };
            if best.is_none_or(|(_, _, b, _)| eval_order(f, b).is_lt()) {
                best = Some((r, i, f, h));
            }
        }
        if let Some(j) = self.delta.next_match(self.space(), values, cursor.added) {
            if let Some(a) = self.delta.get(j) {
                if best.is_none_or(|(_, _, b, _)| eval_order(a, b).is_lt()) {
                    best = Some((MAX_RUNS, j, a, Head::of(a)));
                }
            }
        }
        let (r, i, filter, head) = best?;
        match cursor.runs.get_mut(r) {
            Some(c) => *c = i + 1,
            None => cursor.added = i + 1,
        }
        Some(Hit { filter, head })
    }

    /// Live filters up to and including `f` in evaluation order (matching or not): with
    /// [`SublayerIndex::len`], what a trace counts as not matched.
    pub(crate) fn rank(&self, f: &RtFilter) -> usize {
        let upto = |p: &RtFilter| eval_order(p, f) != Ordering::Greater;
        let runs: usize = self
            .runs
            .iter()
            .map(|r| {
                let n = r.base.filters.partition_point(|p| upto(p));
                n - r.dead.below(n)
            })
            .sum();
        runs + self.delta.partition_point(upto)
    }

    /// Live filters in the sublayer.
    pub(crate) fn len(&self) -> usize {
        let runs: usize = self
            .runs
            .iter()
            .map(|r| r.base.filters.len() - r.dead.count)
            .sum();
        runs + self.delta.len()
    }

    /// Whether the sublayer holds no filter.
    pub(crate) fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The live filters, in evaluation order.
    pub(crate) fn filters(&self) -> impl Iterator<Item = &Arc<RtFilter>> + '_ {
        type Source<'a> = std::iter::Peekable<Box<dyn Iterator<Item = &'a Arc<RtFilter>> + 'a>>;
        let mut sources: Vec<Source<'_>> = self
            .runs
            .iter()
            .map(|r| (Box::new(r.live()) as Box<dyn Iterator<Item = _>>).peekable())
            .collect();
        sources.push((Box::new(self.delta.iter()) as Box<dyn Iterator<Item = _>>).peekable());
        std::iter::from_fn(move || {
            let mut pick: Option<(usize, &Arc<RtFilter>)> = None;
            for (k, s) in sources.iter_mut().enumerate() {
                if let Some(&f) = s.peek() {
                    if pick.is_none_or(|(_, b)| eval_order(f, b).is_lt()) {
                        pick = Some((k, f));
                    }
                }
            }
            sources.get_mut(pick?.0)?.next()
        })
    }

    /// Bit `i` set when some filter's condition reads field `i`; all ones when a callout filter is
    /// present (callouts see every value) or a field number is past 63.
    pub(crate) fn fields_used(&self) -> u64 {
        self.delta.fields.mask()
    }

    /// The position (in `filters`) of the first filter at or after `from` whose conditions all
    /// match `values`, for an index with no delta built from `filters` (a different slice gives
    /// wrong answers, never a panic).
    #[cfg(any(test, feature = "bench-internals"))]
    #[inline]
    pub(crate) fn next_match(
        &self,
        filters: &[Arc<RtFilter>],
        values: &[Value],
        from: usize,
    ) -> Option<usize> {
        match self.runs.first().map(|r| &r.base.inner) {
            Some(Inner::Tuples(t)) => t.next_match(filters, values, from),
            _ => scan(filters, values, from),
        }
    }

    /// All matching positions, in evaluation order, computed lazily (no delta: see
    /// [`SublayerIndex::next_match`]).
    #[cfg(any(test, feature = "bench-internals"))]
    pub(crate) fn matches<'a>(
        &'a self,
        filters: &'a [Arc<RtFilter>],
        values: &'a [Value],
    ) -> Matches<'a> {
        Matches {
            index: self,
            filters,
            values,
            from: 0,
        }
    }

    #[cfg(any(test, feature = "bench-internals"))]
    fn stats(&self) -> tuple::Stats {
        let mut s = tuple::Stats::default();
        for r in &self.runs {
            if let Inner::Tuples(t) = &r.base.inner {
                let one = t.stats();
                s.dims = s.dims.max(one.dims);
                s.tables += one.tables;
                s.boxes += one.boxes;
                s.buckets += one.buckets;
                s.max_bucket = s.max_bucket.max(one.max_bucket);
                s.bytes += one.bytes;
            }
            s.bytes += r.base.filters.capacity() * 8 + r.base.heads.bytes() + r.dead.bytes();
        }
        s.bytes += self.delta.bytes();
        s
    }
}

impl Run {
    /// Tombstones past [`MAX_DEAD`], or past a quarter of the run (at least [`MAX_ADDED`]).
    fn too_dead(&self) -> bool {
        let limit = MAX_DEAD.min(self.base.filters.len() / 4).max(MAX_ADDED);
        self.dead.count > limit
    }

    /// Live filters in the run.
    fn live_len(&self) -> usize {
        self.base.filters.len() - self.dead.count
    }

    /// The live filters, in evaluation order.
    fn live(&self) -> impl Iterator<Item = &Arc<RtFilter>> + '_ {
        self.base
            .filters
            .iter()
            .enumerate()
            .filter(|(i, _)| !self.dead.is_dead(*i))
            .map(|(_, f)| f)
    }

    /// The first live position at or after `from` whose filter matches.
    #[inline]
    fn next_live(&self, values: &[Value], mut from: usize) -> Option<usize> {
        loop {
            let i = self.base.next_match(values, from)?;
            if !self.dead.is_dead(i) {
                return Some(i);
            }
            from = i + 1;
        }
    }
}

impl Base {
    fn scanned(filters: Vec<Arc<RtFilter>>) -> Self {
        Self::with_inner(filters, Inner::Scan)
    }

    fn with_inner(filters: Vec<Arc<RtFilter>>, inner: Inner) -> Self {
        Self {
            heads: Heads::of(&filters),
            filters,
            inner,
        }
    }

    /// The run of `filters` (in evaluation order).
    fn build(
        layer: &LayerDef,
        filters: Vec<Arc<RtFilter>>,
        params: Params,
        scan_below: usize,
    ) -> Self {
        if filters.len() < scan_below || u32::try_from(filters.len()).is_err() {
            return Self::scanned(filters);
        }
        let Some((space, compiled)) = compile::compile_all(layer, &filters) else {
            return Self::scanned(filters);
        };
        match TupleIndex::build(space, &compiled, params) {
            Some(index) => Self::with_inner(filters, Inner::Tuples(Box::new(index))),
            None => Self::scanned(filters),
        }
    }

    /// The position of `f` in the base (found by evaluation order, confirmed by filter id).
    fn position(&self, f: &RtFilter) -> Option<usize> {
        let i = self.filters.binary_search_by(|p| eval_order(p, f)).ok()?;
        self.filters
            .get(i)
            .is_some_and(|p| p.filter_id == f.filter_id)
            .then_some(i)
    }

    #[inline]
    fn next_match(&self, values: &[Value], from: usize) -> Option<usize> {
        match &self.inner {
            Inner::Scan => scan(&self.filters, values, from),
            Inner::Tuples(t) => t.next_match(&self.filters, values, from),
        }
    }
}

/// Iterator over matching filter positions (see [`SublayerIndex::matches`]).
#[cfg(any(test, feature = "bench-internals"))]
#[derive(Debug)]
pub(crate) struct Matches<'a> {
    index: &'a SublayerIndex,
    filters: &'a [Arc<RtFilter>],
    values: &'a [Value],
    from: usize,
}

#[cfg(any(test, feature = "bench-internals"))]
impl Iterator for Matches<'_> {
    type Item = usize;

    fn next(&mut self) -> Option<usize> {
        let i = self
            .index
            .next_match(self.filters, self.values, self.from)?;
        self.from = i + 1;
        Some(i)
    }
}

/// The linear scan: the reference the index must agree with.
#[inline]
fn scan(filters: &[Arc<RtFilter>], values: &[Value], from: usize) -> Option<usize> {
    let rest = filters.get(from..)?;
    rest.iter()
        .position(|f| f.conditions().matches(values))
        .map(|i| i + from)
}
