//! Per-sublayer filter index: finds the next filter, in evaluation order, whose conditions match
//! the incoming values, without scanning every filter.
//!
//! ```text
//!  build (at commit, per sublayer)                  lookup (per classify, allocation-free)
//!  filters in evaluation order                      incoming values
//!    │ compile: every condition group → exact          │ one key per dimension (absent when
//!    │ intervals on ≤ 8 dimensions, or "residual"      │ missing or of another type)
//!    ▼                                                 ▼
//!  boxes ─► tuple tables (boxes with equal prefix   prune maps: AND of per-dimension table sets
//!           lengths, hashed on those prefixes)        → candidate tables, best position first
//!        ─► prune maps (per dimension: key block     → presence filter → hash slot → bounds
//!           → set of tables reaching it)              → residual check (only when needed)
//!                                                     stop when no table left can do better
//! ```
//!
//! The algorithm (tuple-space search with priority-ordered tables and early termination, plus
//! per-dimension table pruning) is described in `tuple.rs`; `compile.rs` turns conditions into
//! boxes; `prune.rs` builds the pruning maps.
//!
//! Contract: `SublayerIndex::next_match` returns exactly what a linear scan
//! (`filters[from..].iter().position(|f| f.conditions().matches(values))`) returns, for every
//! policy and every incoming value vector. Only conditions whose accepted set is exactly a union of
//! intervals over one typed field are indexed (EQUAL, NOT_EQUAL, GREATER…, RANGE on integers, MACs
//! and IPv6 addresses; V4 masks with contiguous masks; V6 prefixes); every other group — FLAGS_*,
//! strings, blobs, SIDs, FWP_EMPTY values, non-contiguous masks, second groups on one field, very
//! wide OR groups — is a wildcard in the index and confirmed by `ConditionSet::matches` on the
//! candidates. Small sublayers (fewer than `SCAN_BELOW` filters) or sublayers with no indexable
//! condition are scanned.
//!
//! The module performs no I/O, reads no clock, starts no threads, and allocates only at build.

mod cache;
mod compile;
mod prune;
mod tuple;

// What the benchmarks in `wfp-bench` need from the index: only with the `bench-internals` feature,
// which no production crate enables.
#[cfg(feature = "bench-internals")]
#[doc(hidden)]
pub mod bench_internals;

#[cfg(test)]
mod tests;

use std::sync::Arc;

use crate::catalogue::LayerDef;
use crate::filter::RtFilter;
use crate::value::Value;

use tuple::{Params, TupleIndex};

/// Sublayers with fewer filters than this are scanned linearly (the index would not pay off).
pub(crate) const SCAN_BELOW: usize = 32;

/// The index of one sublayer's filters (built from the `Vec<Arc<RtFilter>>` in evaluation order,
/// queried with that same slice).
#[derive(Debug)]
pub(crate) struct SublayerIndex {
    inner: Inner,
}

#[derive(Debug)]
enum Inner {
    Scan,
    /// The index, and what the next build of the sublayer reuses ([`cache`]).
    Tuples(TupleIndex, Box<cache::Cache>),
}

impl Default for SublayerIndex {
    fn default() -> Self {
        Self::scan()
    }
}

impl SublayerIndex {
    /// An index that scans (always correct, for any filter slice).
    pub(crate) fn scan() -> Self {
        Self { inner: Inner::Scan }
    }

    /// Builds the index of `filters`, given in evaluation order; `layer` gives the field types.
    pub(crate) fn build(layer: &LayerDef, filters: &[Arc<RtFilter>]) -> Self {
        Self::build_from(layer, filters, Params::default(), SCAN_BELOW, None)
    }

    /// [`SublayerIndex::build`] for the next commit of a sublayer whose index was `prev`: the
    /// per-filter work of every filter still there (the same object) is reused ([`cache`]). The
    /// answers are those of a fresh build.
    pub(crate) fn rebuild(layer: &LayerDef, filters: &[Arc<RtFilter>], prev: &Self) -> Self {
        Self::build_from(layer, filters, Params::default(), SCAN_BELOW, Some(prev))
    }

    #[cfg(any(test, feature = "bench-internals"))]
    fn build_with(
        layer: &LayerDef,
        filters: &[Arc<RtFilter>],
        params: Params,
        scan_below: usize,
    ) -> Self {
        Self::build_from(layer, filters, params, scan_below, None)
    }

    fn build_from(
        layer: &LayerDef,
        filters: &[Arc<RtFilter>],
        params: Params,
        scan_below: usize,
        prev: Option<&Self>,
    ) -> Self {
        if filters.len() < scan_below || u32::try_from(filters.len()).is_err() {
            return Self::scan();
        }
        let prev = prev.and_then(|p| match &p.inner {
            Inner::Tuples(_, c) => Some(&**c),
            Inner::Scan => None,
        });
        let Some(cache) = cache::Cache::build(layer, filters, prev) else {
            return Self::scan();
        };
        let index = TupleIndex::build(cache.dims.clone(), &cache.compiled, params);
        Self {
            inner: Inner::Tuples(index, Box::new(cache)),
        }
    }

    /// The position (in `filters`) of the first filter at or after `from` whose conditions all match
    /// `values`. `filters` must be the slice the index was built from (a different slice gives
    /// wrong answers, never a panic).
    #[inline]
    pub(crate) fn next_match(
        &self,
        filters: &[Arc<RtFilter>],
        values: &[Value],
        from: usize,
    ) -> Option<usize> {
        match &self.inner {
            Inner::Scan => scan(filters, values, from),
            Inner::Tuples(t, _) => t.next_match(filters, values, from),
        }
    }

    /// All matching positions, in evaluation order, computed lazily.
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
        match &self.inner {
            Inner::Scan => tuple::Stats::default(),
            Inner::Tuples(t, c) => {
                let mut s = t.stats();
                s.bytes += c.bytes();
                s
            }
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
