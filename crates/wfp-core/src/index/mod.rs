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
//!           lengths, hashed on those prefixes)        → candidate tables, best position first
//!        ─► prune maps (per dimension: key block     → presence filter → hash slot → bounds
//!           → set of tables reaching it)              → residual check (only when needed)
//!                                                     stop when no table left can do better
//!
//!  a commit changing a few filters (`with_changes`)
//!    base (Arc, shared with the previous snapshot) + tombstones (bitset over base positions)
//!    + added filters (sorted by evaluation order, boxes compiled on the base's dimensions)
//!    lookup: first live base match and first added match, the earlier in evaluation order wins
//!    compaction (a rebuild reusing every compiled filter) once the delta outgrows its bounds
//! ```
//!
//! The algorithm (tuple-space search with priority-ordered tables and early termination, plus
//! per-dimension table pruning) is described in `tuple.rs`; `compile.rs` turns conditions into
//! boxes; `prune.rs` builds the pruning maps; `delta.rs` holds the added filters of a snapshot
//! (`layer.rs` applies a transaction's filter changes to a layer's published view).
//!
//! Contract: [`SublayerIndex::next`] yields exactly what a linear scan over the sublayer's filters
//! in evaluation order (effective weight descending, then filter id; §7.3) yields —
//! `filters.iter().filter(|f| f.conditions().matches(values))` — for every policy, every history
//! of changes and every incoming value vector. Only conditions whose accepted set is exactly a
//! union of intervals over one typed field are indexed (EQUAL, NOT_EQUAL, GREATER…, RANGE on
//! integers, MACs and IPv6 addresses; V4 masks with contiguous masks; V6 prefixes); every other
//! group — FLAGS_*, strings, blobs, SIDs, FWP_EMPTY values, non-contiguous masks, second groups on
//! one field, very wide OR groups — is a wildcard in the index and confirmed by
//! `ConditionSet::matches` on the candidates. Small sublayers (fewer than `SCAN_BELOW` filters) or
//! sublayers with no indexable condition are scanned.
//!
//! The module performs no I/O, reads no clock, starts no threads, and allocates only at build and
//! at commit.

mod cache;
mod compile;
mod delta;
pub(crate) mod layer;
mod prune;
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
use crate::filter::RtFilter;
use crate::value::Value;

use delta::{Added, Delta};
use tuple::{Params, TupleIndex};

/// Sublayers with fewer filters than this are scanned linearly (the index would not pay off).
pub(crate) const SCAN_BELOW: usize = 32;

/// A delta holds at most this many added filters before it is compacted into a new base (each
/// costs a few nanoseconds per lookup while it waits).
const MAX_ADDED: usize = 64;

/// Tombstones are compacted away past this many, or past a quarter of the base (each costs only
/// a bit test on a candidate).
const MAX_DEAD: usize = 1024;

/// The index of one sublayer's filters: an immutable base shared between snapshots, and the
/// changes committed since it was built.
#[derive(Clone, Debug, Default)]
pub(crate) struct SublayerIndex {
    base: Arc<Base>,
    delta: Delta,
}

/// The filters of a sublayer when the base was built, in evaluation order, and their index.
#[derive(Debug, Default)]
struct Base {
    filters: Vec<Arc<RtFilter>>,
    inner: Inner,
}

#[derive(Debug, Default)]
enum Inner {
    /// Scanned: too few filters (`small`), or none with an indexable condition.
    #[default]
    Scan,
    /// The index, and what the next build of the sublayer reuses ([`cache`]).
    Tuples(TupleIndex, Box<cache::Cache>),
}

/// Where a walk over a sublayer's matches stands ([`SublayerIndex::next`]); start with
/// `Cursor::default()`.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct Cursor {
    /// Next base position to consider.
    base: usize,
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
        Self::scanned(filters, delta)
    }

    /// Builds the index of `filters`, given in evaluation order; `layer` gives the field types.
    pub(crate) fn build(layer: &LayerDef, filters: &[Arc<RtFilter>]) -> Self {
        Self::build_from(layer, filters.to_vec(), Params::default(), SCAN_BELOW, None)
    }

    /// [`SublayerIndex::build`] for the next commit of a sublayer whose index was `prev`: the
    /// per-filter work of every filter still there (the same object) is reused ([`cache`]). The
    /// answers are those of a fresh build.
    pub(crate) fn rebuild(layer: &LayerDef, filters: Vec<Arc<RtFilter>>, prev: &Self) -> Self {
        Self::build_from(layer, filters, Params::default(), SCAN_BELOW, Some(prev))
    }

    #[cfg(any(test, feature = "bench-internals"))]
    fn build_with(
        layer: &LayerDef,
        filters: &[Arc<RtFilter>],
        params: Params,
        scan_below: usize,
    ) -> Self {
        Self::build_from(layer, filters.to_vec(), params, scan_below, None)
    }

    fn build_from(
        layer: &LayerDef,
        filters: Vec<Arc<RtFilter>>,
        params: Params,
        scan_below: usize,
        prev: Option<&Self>,
    ) -> Self {
        let delta = Delta::for_base(&filters);
        if filters.len() < scan_below || u32::try_from(filters.len()).is_err() {
            return Self::scanned(filters, delta);
        }
        let prev = prev.and_then(|p| match &p.base.inner {
            Inner::Tuples(_, c) => Some((p.base.filters.as_slice(), &**c)),
            Inner::Scan => None,
        });
        let Some(cache) = cache::Cache::build(layer, &filters, prev) else {
            return Self::scanned(filters, delta);
        };
        let index = TupleIndex::build(cache.dims.clone(), &cache.compiled, params);
        Self {
            base: Arc::new(Base {
                filters,
                inner: Inner::Tuples(index, Box::new(cache)),
            }),
            delta,
        }
    }

    fn scanned(filters: Vec<Arc<RtFilter>>, delta: Delta) -> Self {
        Self {
            base: Arc::new(Base {
                filters,
                inner: Inner::Scan,
            }),
            delta,
        }
    }

    /// The index after a commit that added `added` and deleted `deleted` (filters of this
    /// sublayer; a deleted filter not in the sublayer is ignored). Shares the base with `self`;
    /// costs about the size of the delta, except when the delta is compacted into a new base.
    pub(crate) fn with_changes(
        &self,
        layer: &LayerDef,
        added: &[Arc<RtFilter>],
        deleted: &[Arc<RtFilter>],
    ) -> Self {
        let mut delta = self.delta.clone();
        let dims = match &self.base.inner {
            Inner::Tuples(_, c) => Some(c.dims.as_slice()),
            Inner::Scan => None,
        };
        for f in deleted {
            if delta.remove_added(f) {
                continue;
            }
            if let Some(i) = self.base.position(f) {
                delta.kill(i, self.base.filters.len(), f);
            }
        }
        for f in added {
            delta.add(Added::new(f, dims));
        }
        let next = Self {
            base: Arc::clone(&self.base),
            delta,
        };
        let base_len = self.base.filters.len();
        let small_scan = matches!(self.base.inner, Inner::Scan) && base_len < SCAN_BELOW;
        let compact = next.delta.added.len() > MAX_ADDED
            || next.delta.dead > MAX_DEAD.min(base_len / 4).max(MAX_ADDED)
            || (small_scan && next.len() >= SCAN_BELOW);
        if compact {
            let filters: Vec<Arc<RtFilter>> = next.filters().cloned().collect();
            return Self::rebuild(layer, filters, &next);
        }
        next
    }

    /// The next matching filter after `cursor`, in evaluation order; advances `cursor` past it.
    #[inline]
    pub(crate) fn next(&self, values: &[Value], cursor: &mut Cursor) -> Option<&Arc<RtFilter>> {
        let base = self.base_next(values, cursor.base);
        if self.delta.added.is_empty() {
            let i = base?;
            cursor.base = i + 1;
            return self.base.filters.get(i);
        }
        let dims = match &self.base.inner {
            Inner::Tuples(_, c) => Some(c.dims.as_slice()),
            Inner::Scan => None,
        };
        let added = self.delta.next_match(dims, values, cursor.added);
        let bf = base.and_then(|i| self.base.filters.get(i));
        let af = added
            .and_then(|j| self.delta.added.get(j))
            .map(|a| &a.filter);
        match (bf, af, base, added) {
            (Some(b), Some(a), Some(i), Some(j)) => {
                if eval_order(b, a) == Ordering::Less {
                    cursor.base = i + 1;
                    Some(b)
                } else {
                    cursor.added = j + 1;
                    Some(a)
                }
            }
            (Some(b), None, Some(i), _) => {
                cursor.base = i + 1;
                Some(b)
            }
            (None, Some(a), _, Some(j)) => {
                cursor.added = j + 1;
                Some(a)
            }
            _ => None,
        }
    }

    /// The first live base position at or after `from` whose filter matches.
    #[inline]
    fn base_next(&self, values: &[Value], mut from: usize) -> Option<usize> {
        loop {
            let i = self.base.next_match(values, from)?;
            if !self.delta.is_dead(i) {
                return Some(i);
            }
            from = i + 1;
        }
    }

    /// Live filters up to and including `f` in evaluation order (matching or not): with
    /// [`SublayerIndex::len`], what a trace counts as not matched.
    pub(crate) fn rank(&self, f: &RtFilter) -> usize {
        let upto = |p: &RtFilter| eval_order(p, f) != Ordering::Greater;
        let base = self.base.filters.partition_point(|p| upto(p));
        let added = self.delta.added.partition_point(|a| upto(&a.filter));
        base - self.delta.dead_below(base) + added
    }

    /// Live filters in the sublayer.
    pub(crate) fn len(&self) -> usize {
        self.base.filters.len() - self.delta.dead + self.delta.added.len()
    }

    /// Whether the sublayer holds no filter.
    pub(crate) fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The live filters, in evaluation order.
    pub(crate) fn filters(&self) -> impl Iterator<Item = &Arc<RtFilter>> + '_ {
        let mut base = self
            .base
            .filters
            .iter()
            .enumerate()
            .filter(|(i, _)| !self.delta.is_dead(*i))
            .map(|(_, f)| f)
            .peekable();
        let mut added = self.delta.added.iter().map(|a| &a.filter).peekable();
        std::iter::from_fn(move || match (base.peek(), added.peek()) {
            (Some(b), Some(a)) if eval_order(b, a) != Ordering::Less => added.next(),
            (Some(_), _) => base.next(),
            (None, _) => added.next(),
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
        match &self.base.inner {
            Inner::Scan => scan(filters, values, from),
            Inner::Tuples(t, _) => t.next_match(filters, values, from),
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
        let mut s = match &self.base.inner {
            Inner::Scan => tuple::Stats::default(),
            Inner::Tuples(t, c) => {
                let mut s = t.stats();
                s.bytes += c.bytes();
                s
            }
        };
        s.bytes += self.base.filters.capacity() * 8 + self.delta.bytes();
        s
    }
}

impl Base {
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
            Inner::Tuples(t, _) => t.next_match(&self.filters, values, from),
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
