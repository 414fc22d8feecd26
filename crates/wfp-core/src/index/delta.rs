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
//!  lookup: keys extracted once ─► added filters from the cursor on: required dims present,
//!          key inside a box, residual groups by ConditionSet::matches_groups ─► first match
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
#[derive(Clone, Debug)]
pub(super) struct Added {
    pub(super) filter: Arc<RtFilter>,
    /// Its boxes on the base's dimensions (`None`: the base is scanned, so is this filter).
    compiled: Option<Arc<Compiled>>,
}

impl Added {
    /// `filter` compiled on `space` (the base's), if the base is indexed.
    pub(super) fn new(filter: &Arc<RtFilter>, space: Option<&Space>) -> Self {
        Self {
            filter: Arc::clone(filter),
            compiled: space
                .map(|sp| Arc::new(compile::compile(sp, filter.conditions().conditions()))),
        }
    }

    /// Whether the filter matches: its boxes against the extracted keys (the compile invariant,
    /// `compile.rs`), the full matcher for residual groups.
    #[inline]
    fn matches(&self, q: &Keys<'_>) -> bool {
        let Some(c) = &self.compiled else {
            return self.filter.conditions().matches(q.values);
        };
        if c.required & !q.present != 0 || q.nd == 0 {
            return false;
        }
        let inside = c.boxes.chunks_exact(q.nd).any(|b| {
            q.keys
                .iter()
                .zip(b)
                .all(|(k, (lo, hi))| *lo <= *k && *k <= *hi)
        });
        inside
            && (!c.verify
                || self
                    .filter
                    .conditions()
                    .matches_groups(q.values, c.residual))
    }
}

/// One lookup's keys over the base's dimensions.
struct Keys<'a> {
    keys: [u64; MAX_DIMS],
    present: u16,
    nd: usize,
    values: &'a [Value],
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

    /// Inserts an added filter at its place in evaluation order.
    pub(super) fn add(&mut self, a: Added) {
        let a = Arc::new(a);
        let at = self
            .added
            .partition_point(|x| eval_order(&x.filter, &a.filter).is_lt());
        self.fields.update(&a.filter, true);
        self.added.insert(at, a);
    }

    /// Adds `filters` uncompiled (`Added::matches` would scan them): only for filters that
    /// become a run before the snapshot is published (`SublayerIndex::with_changes`).
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
    }

    /// Removes `f` from the added filters; false when it is not one of them.
    pub(super) fn remove_added(&mut self, f: &RtFilter) -> bool {
        let Some(at) = self
            .added
            .iter()
            .position(|a| a.filter.filter_id == f.filter_id)
        else {
            return false;
        };
        let a = self.added.remove(at);
        self.fields.update(&a.filter, false);
        true
    }

    /// A filter of a run was deleted.
    pub(super) fn forget(&mut self, f: &RtFilter) {
        self.fields.update(f, false);
    }

    /// The first added filter at or after `from` that matches `values`; `space`: the base's
    /// (`None`: scanned base).
    #[inline]
    pub(super) fn next_match(
        &self,
        space: Option<&Space>,
        values: &[Value],
        from: usize,
    ) -> Option<usize> {
        let rest = self.added.get(from..)?;
        let mut q = Keys {
            keys: [0; MAX_DIMS],
            present: 0,
            nd: 0,
            values,
        };
        if let Some(space) = space {
            q.nd = space.dims.len().min(MAX_DIMS);
            (q.keys, q.present) = space.keys(values);
        }
        rest.iter().position(|a| a.matches(&q)).map(|i| i + from)
    }

    /// Approximate heap bytes.
    #[cfg(any(test, feature = "bench-internals"))]
    pub(super) fn bytes(&self) -> usize {
        self.added.capacity() * 8 + self.added.len() * std::mem::size_of::<Added>()
    }
}
