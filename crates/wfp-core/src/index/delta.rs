//! The changes committed to a sublayer since its runs were built (issue 15, B2).
//!
//! A snapshot's [`super::SublayerIndex`] is one or two `Arc`'d runs (filters in evaluation order and
//! their tuple index, never modified), a [`Dead`] bitset per run for deleted filters, and a
//! [`Delta`]: the added filters, kept sorted by evaluation order with their boxes compiled on the
//! main run's dimensions. A commit copies only these (a few hundred bytes to a few KB), so the
//! previous snapshot — still read by in-flight classifies — stays untouched and shares the runs.
//!
//! ```text
//!  commit: prev tombstones + delta ──clone──► kill(run position) / remove added / insert added
//!  lookup: keys extracted once ─► packed box columns from the cursor on, 64 boxes per
//!          dimension at a time (bit sets AND-ed, stop when empty) ─► candidates in order:
//!          required dims present, residual groups by ConditionSet::matches_groups ─► first match
//! ```
//!
//! It also counts, per condition field, the live filters reading it, so a layer's
//! `fields_used` stays exact across deletes without a walk over every filter.

use std::sync::Arc;

use crate::filter::RtFilter;
use crate::value::Value;

use super::compile::{self, Compiled, Space, MAX_DIMS};
use super::eval_order;

/// Field-use counts of the live filters of a sublayer.
#[derive(Clone, Debug)]
pub(super) struct FieldUse {
    /// Conditions on field `i` (fields 0..64).
    counts: [u32; 64],
    /// Filters that make every field readable: callout filters, conditions on fields past 63.
    all: u32,
}

impl Default for FieldUse {
    fn default() -> Self {
        Self {
            counts: [0; 64],
            all: 0,
        }
    }
}

impl FieldUse {
    fn update(&mut self, f: &RtFilter, add: bool) {
        let step = |c: &mut u32| {
            *c = if add {
                c.saturating_add(1)
            } else {
                c.saturating_sub(1)
            }
        };
        if f.action.is_callout() {
            step(&mut self.all);
        }
        for c in f.conditions().conditions() {
            match self.counts.get_mut(usize::from(c.field_index)) {
                Some(n) => step(n),
                None => step(&mut self.all),
            }
        }
    }

    /// Bit `i` for every field read, all ones when a filter reads everything.
    pub(super) fn mask(&self) -> u64 {
        if self.all > 0 {
            return u64::MAX;
        }
        (0..64)
            .zip(&self.counts)
            .filter(|(_, &n)| n > 0)
            .fold(0u64, |m, (i, _)| m | (1 << i))
    }
}

/// A filter added since the base was built.
#[derive(Debug)]
pub(super) struct Added {
    pub(super) filter: Arc<RtFilter>,
    /// Its boxes on the base's dimensions (`None`: the base is scanned, so is this filter).
    compiled: Option<Compiled>,
}

impl Added {
    /// `filter` compiled on `space` (the base's), if the base is indexed.
    pub(super) fn new(filter: &Arc<RtFilter>, space: Option<&Space>) -> Self {
        Self {
            filter: Arc::clone(filter),
            compiled: space.map(|sp| compile::compile(sp, filter.conditions().conditions())),
        }
    }

    /// Whether a candidate whose box contains the keys matches: required dimensions present, the
    /// residual groups by the full matcher (the compile invariant, `compile.rs`).
    #[inline]
    fn confirm(&self, present: u16, values: &[Value]) -> bool {
        let Some(c) = &self.compiled else {
            return self.filter.conditions().matches(values);
        };
        c.required & !present == 0
            && (!c.verify || self.filter.conditions().matches_groups(values, c.residual))
    }
}

/// The boxes of the added filters on the base's dimensions, one column per dimension (`lo` and
/// `hi - lo`), ordered by their filter's place in [`Delta::added`] (issue 15, B2: a lookup over
/// the added filters cost ~10 ns per filter through their boxes one by one). A lookup tests 64
/// boxes per dimension at a time and stops at the first dimension that rules them all out, so
/// it reads about one or two columns.
#[derive(Clone, Debug, Default)]
struct Packed {
    nd: usize,
    lo: [Vec<u64>; MAX_DIMS],
    span: [Vec<u64>; MAX_DIMS],
    /// Per box: the number of its filter in [`Delta::added`].
    owner: Vec<u32>,
}

impl Packed {
    /// Room for the boxes of a filter inserted as number `at` (the later ones move up by one).
    fn insert(&mut self, at: u32, nd: usize, boxes: &[(u64, u64)]) {
        if self.owner.is_empty() {
            self.nd = nd.min(MAX_DIMS);
        }
        let b = self.owner.partition_point(|&o| o < at);
        for o in self.owner.get_mut(b..).unwrap_or(&mut []) {
            *o += 1;
        }
        let count = boxes.len().checked_div(self.nd).unwrap_or(0);
        for (j, bx) in boxes.chunks_exact(self.nd.max(1)).take(count).enumerate() {
            for ((lo, span), (l, h)) in self.lo.iter_mut().zip(&mut self.span).zip(bx) {
                lo.insert(b + j, *l);
                span.insert(b + j, h - l);
            }
            self.owner.insert(b + j, at);
        }
    }

    /// Drops the boxes of filter number `at` (the later ones move down by one).
    fn remove(&mut self, at: u32) {
        let b = self.owner.partition_point(|&o| o < at);
        let e = self.owner.partition_point(|&o| o <= at);
        for (lo, span) in self.lo.iter_mut().zip(&mut self.span).take(self.nd) {
            lo.drain(b..e);
            span.drain(b..e);
        }
        self.owner.drain(b..e);
        for o in self.owner.get_mut(b..).unwrap_or(&mut []) {
            *o -= 1;
        }
    }

    /// The boxes among `b..b + n` (at most 64) containing `keys`, as a bit set.
    #[inline]
    fn inside(&self, keys: &[u64; MAX_DIMS], b: usize, n: usize) -> u64 {
        let mut m = if n >= 64 { u64::MAX } else { (1u64 << n) - 1 };
        for ((lo, span), &k) in self.lo.iter().zip(&self.span).zip(keys).take(self.nd) {
            let (Some(lo), Some(span)) = (lo.get(b..b + n), span.get(b..b + n)) else {
                return 0;
            };
            let mut dm = 0u64;
            for (i, (l, s)) in lo.iter().zip(span).enumerate() {
                dm |= u64::from(k.wrapping_sub(*l) <= *s) << i;
            }
            m &= dm;
            if m == 0 {
                break;
            }
        }
        m
    }

    /// Approximate heap bytes.
    #[cfg(any(test, feature = "bench-internals"))]
    fn bytes(&self) -> usize {
        let cols: usize = self.lo.iter().chain(&self.span).map(Vec::capacity).sum();
        cols * 8 + self.owner.capacity() * 4
    }
}

/// Tombstones of one immutable run: bit `i` set when its position `i` was deleted.
#[derive(Clone, Debug, Default)]
pub(super) struct Dead {
    /// Empty when nothing was deleted.
    bits: Vec<u64>,
    /// Set bits.
    pub(super) count: usize,
}

impl Dead {
    /// Marks position `i` (of a run of `len`) deleted; false when it already was.
    pub(super) fn kill(&mut self, i: usize, len: usize) -> bool {
        if self.bits.is_empty() {
            self.bits = vec![0; len.div_ceil(64)];
        }
        let Some(w) = self.bits.get_mut(i / 64) else {
            return false;
        };
        let bit = 1u64 << (i % 64);
        if *w & bit != 0 {
            return false;
        }
        *w |= bit;
        self.count += 1;
        true
    }

    #[inline]
    pub(super) fn is_dead(&self, i: usize) -> bool {
        self.count != 0
            && self
                .bits
                .get(i / 64)
                .is_some_and(|w| w & (1 << (i % 64)) != 0)
    }

    /// Tombstones at positions below `n`.
    pub(super) fn below(&self, n: usize) -> usize {
        let full: usize = self
            .bits
            .iter()
            .take(n / 64)
            .map(|w| w.count_ones() as usize)
            .sum();
        let part = match (n % 64, self.bits.get(n / 64)) {
            (0, _) | (_, None) => 0,
            (r, Some(w)) => (w & ((1u64 << r) - 1)).count_ones() as usize,
        };
        full + part
    }

    /// Approximate heap bytes.
    #[cfg(any(test, feature = "bench-internals"))]
    pub(super) fn bytes(&self) -> usize {
        self.bits.capacity() * 8
    }
}

/// Added filters and the field use of every live filter (see the module doc).
#[derive(Clone, Debug, Default)]
pub(super) struct Delta {
    /// Added filters, in evaluation order.
    /// One reference count each, so that a commit's copy of the delta costs one increment per
    /// added filter (issue 15, B2).
    pub(super) added: Vec<Arc<Added>>,
    /// Field use of the live filters (runs and added).
    pub(super) fields: FieldUse,
    /// The boxes of `added` (when every one is compiled: see `raw`).
    packed: Packed,
    /// Some added filter is not compiled (`extend_raw`): lookups scan them.
    raw: bool,
}

impl Delta {
    /// The empty delta of runs holding `filters`.
    pub(super) fn for_base(filters: &[Arc<RtFilter>]) -> Self {
        let mut fields = FieldUse::default();
        for f in filters {
            fields.update(f, true);
        }
        Self {
            fields,
            ..Self::default()
        }
    }

    /// No added filter; `fields`: the field use of the runs' live filters.
    pub(super) fn with_fields(fields: FieldUse) -> Self {
        Self {
            fields,
            ..Self::default()
        }
    }

    /// Inserts an added filter at its place in evaluation order (`nd`: the base's dimensions).
    pub(super) fn add(&mut self, a: Added, nd: usize) {
        let a = Arc::new(a);
        let at = self
            .added
            .partition_point(|x| eval_order(&x.filter, &a.filter).is_lt());
        self.fields.update(&a.filter, true);
        match (&a.compiled, u32::try_from(at)) {
            (Some(c), Ok(n)) => self.packed.insert(n, nd, &c.boxes),
            _ => self.raw = true,
        }
        self.added.insert(at, a);
    }

    /// Adds `filters` uncompiled (lookups would scan them): only for filters that become a run
    /// before the snapshot is published (`SublayerIndex::with_changes`).
    pub(super) fn extend_raw(&mut self, filters: &[&Arc<RtFilter>]) {
        for f in filters {
            self.fields.update(f, true);
        }
        self.added.extend(filters.iter().map(|f| {
            Arc::new(Added {
                filter: Arc::clone(f),
                compiled: None,
            })
        }));
        self.added.sort_by(|a, b| eval_order(&a.filter, &b.filter));
        self.raw = true;
    }

    /// Removes `f` from the added filters; false when it is not one of them.
    pub(super) fn remove_added(&mut self, f: &RtFilter) -> bool {
        let Ok(at) = self.added.binary_search_by(|a| eval_order(&a.filter, f)) else {
            return false;
        };
        if self
            .added
            .get(at)
            .is_none_or(|a| a.filter.filter_id != f.filter_id)
        {
            return false;
        }
        let a = self.added.remove(at);
        if let (Some(_), Ok(n)) = (&a.compiled, u32::try_from(at)) {
            self.packed.remove(n);
        }
        self.fields.update(&a.filter, false);
        true
    }

    /// A filter of a run was deleted.
    pub(super) fn forget(&mut self, f: &RtFilter) {
        self.fields.update(f, false);
    }

    /// The first added filter in `from..until` that matches `values`; `space`: the base's
    /// (`None`: scanned base).
    #[inline]
    pub(super) fn next_match(
        &self,
        space: Option<&Space>,
        values: &[Value],
        from: usize,
        until: usize,
    ) -> Option<usize> {
        let until = until.min(self.added.len());
        let rest = self.added.get(from..until)?;
        let Some(space) = space.filter(|_| !self.raw) else {
            return rest
                .iter()
                .position(|a| a.filter.conditions().matches(values))
                .map(|i| i + from);
        };
        let (keys, present) = space.keys(values);
        let p = &self.packed;
        let (from, until) = (u32::try_from(from).ok()?, u32::try_from(until).ok()?);
        let mut b = p.owner.partition_point(|&o| o < from);
        let end = p.owner.partition_point(|&o| o < until);
        while b < end {
            let n = (end - b).min(64);
            let mut m = p.inside(&keys, b, n);
            while m != 0 {
                let i = m.trailing_zeros() as usize;
                m &= m - 1;
                let Some(&o) = p.owner.get(b + i) else { break };
                if self
                    .added
                    .get(o as usize)
                    .is_some_and(|a| a.confirm(present, values))
                {
                    return Some(o as usize);
                }
            }
            b += n;
        }
        None
    }

    /// Approximate heap bytes.
    #[cfg(any(test, feature = "bench-internals"))]
    pub(super) fn bytes(&self) -> usize {
        self.added.capacity() * 8
            + self.added.len() * std::mem::size_of::<Added>()
            + self.packed.bytes()
    }
}
