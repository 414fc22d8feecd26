//! The changes committed to a sublayer since its runs were built (issue 15, B2).
//!
//! A snapshot's [`super::SublayerIndex`] is up to three `Arc`'d runs (filters in evaluation order
//! and their tuple index, never modified), a [`Dead`] bitset per run for deleted filters, and a
//! [`Delta`]: the added filters, sorted by evaluation order with their boxes compiled on the main
//! run's dimensions, in `Arc`'d chunks of at most 32 with their boxes packed per dimension. A
//! commit copies the tombstones, the chunk list and the one chunk it changes, so the previous
//! snapshot — still read by in-flight classifies — stays untouched and shares the rest.
//!
//! ```text
//!  commit: prev tombstones + chunk list ──clone──► kill(run position) / copy one chunk:
//!          remove added / insert added (a chunk past 32 splits in two)
//!  lookup: keys extracted once ─► per chunk from the cursor on: packed box columns, 64 boxes
//!          per dimension at a time (bit sets AND-ed, stop when empty) ─► candidates in order:
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
/// `hi - lo`), ordered by their filter's place in [`Chunk::added`] (issue 15, B2: a lookup over
/// the added filters cost ~10 ns per filter through their boxes one by one). A lookup tests 64
/// boxes per dimension at a time, widest dimensions (addresses) first, and stops at the first
/// dimension that rules them all out, so it reads about one or two columns.
///
/// Everything is one allocation (issue 15, B2: a commit copies the chunk it changes; a vector per
/// column made that a dozen allocations): `data` holds, per box, its owner (the number of its
/// filter in [`Chunk::added`]), then each column — one word per box (`lo | (hi - lo) << 32`)
/// when the dimension is at most 32 bits wide, else two (`lo`, `hi - lo`).
#[derive(Clone, Debug, Default)]
struct Packed {
    /// Columns: (dimension, words per box), by dimension width descending.
    cols: [(u8, u8); MAX_DIMS],
    ncols: u8,
    /// Boxes.
    n: usize,
    /// The owners (`n` words), then the columns.
    data: Vec<u64>,
}

/// Bit `i` set when byte `i` of `hit` is 1 (bytes are 0 or 1).
#[inline]
fn pack(hit: &[u8; 64]) -> u64 {
    let mut m = 0u64;
    for (i, c) in hit.chunks_exact(8).enumerate() {
        let mut w = [0u8; 8];
        w.copy_from_slice(c);
        // Gathers the low bit of each byte into the top byte, byte 0 lowest.
        m |= (u64::from_le_bytes(w).wrapping_mul(0x0102_0408_1020_4080) >> 56) << (8 * i);
    }
    m
}

impl Packed {
    /// Empty columns for dimensions of these widths (a space's, in order).
    fn new(widths: impl Iterator<Item = u32>) -> Self {
        let mut dims: Vec<(usize, u32)> = widths.enumerate().take(MAX_DIMS).collect();
        dims.sort_by_key(|&(d, w)| (std::cmp::Reverse(w), d));
        let mut p = Self::default();
        for ((d, w), c) in dims.into_iter().zip(&mut p.cols) {
            *c = (d as u8, if w <= 32 { 1 } else { 2 });
            p.ncols += 1;
        }
        p
    }

    /// Words per box: the owner, then the columns'.
    fn sections(&self) -> impl Iterator<Item = usize> + '_ {
        std::iter::once(1).chain(
            self.cols
                .iter()
                .take(usize::from(self.ncols))
                .map(|&(_, w)| usize::from(w)),
        )
    }

    /// The owners of the boxes.
    #[inline]
    fn owners(&self) -> &[u64] {
        self.data.get(..self.n).unwrap_or(&[])
    }

    /// Words per box (all sections).
    fn row_words(&self) -> usize {
        self.sections().sum()
    }

    /// A copy without boxes `from..to`.
    fn cut(&self, from: usize, to: usize) -> Self {
        let n = self.n - (to - from);
        let mut data = Vec::with_capacity(n * self.row_words());
        let mut start = 0usize;
        for w in self.sections() {
            let sec = self.data.get(start..start + self.n * w).unwrap_or(&[]);
            data.extend_from_slice(sec.get(..from * w).unwrap_or(&[]));
            data.extend_from_slice(sec.get(to * w..).unwrap_or(&[]));
            start += self.n * w;
        }
        Self { data, n, ..*self }
    }

    /// Adds `delta` to the owners from box `from` on.
    fn shift_owners(&mut self, from: usize, delta: i64) {
        for o in self.data.get_mut(from..self.n).unwrap_or(&mut []) {
            *o = o.wrapping_add_signed(delta);
        }
    }

    /// A copy with the boxes of a filter inserted as number `at` (the later ones move up by one).
    /// One allocation: the commit that copies a chunk builds its new columns here directly.
    fn inserted(&self, at: u32, boxes: &[(u64, u64)]) -> Self {
        let nd = usize::from(self.ncols);
        if nd == 0 {
            return self.clone();
        }
        let b = self.owners().partition_point(|&o| o < u64::from(at));
        let k = boxes.len() / nd;
        let n = self.n + k;
        let mut data = Vec::with_capacity(n * self.row_words());
        // The owners, then each column: the boxes before `b`, the new ones, the rest.
        let owners = self.owners();
        data.extend_from_slice(owners.get(..b).unwrap_or(&[]));
        data.extend(std::iter::repeat_n(u64::from(at), k));
        data.extend(owners.get(b..).unwrap_or(&[]).iter().map(|o| o + 1));
        let mut start = self.n;
        for &(d, w) in self.cols.iter().take(nd) {
            let w = usize::from(w);
            let sec = self.data.get(start..start + self.n * w).unwrap_or(&[]);
            data.extend_from_slice(sec.get(..b * w).unwrap_or(&[]));
            for bx in boxes.chunks_exact(nd) {
                let (lo, hi) = bx.get(usize::from(d)).copied().unwrap_or((0, 0));
                if w == 1 {
                    data.push(lo | (hi - lo) << 32);
                } else {
                    data.extend([lo, hi - lo]);
                }
            }
            data.extend_from_slice(sec.get(b * w..).unwrap_or(&[]));
            start += self.n * w;
        }
        Self { data, n, ..*self }
    }

    /// The boxes of a filter inserted as number `at` (the later ones move up by one).
    #[cfg(test)]
    fn insert(&mut self, at: u32, boxes: &[(u64, u64)]) {
        *self = self.inserted(at, boxes);
    }

    /// The boxes of filters `at..` (numbered from 0), taken out of `self`.
    fn split_off(&mut self, at: usize) -> Self {
        let b = self.owners().partition_point(|&o| o < at as u64);
        let mut hi = self.cut(0, b);
        hi.shift_owners(0, -(at as i64));
        *self = self.cut(b, self.n);
        hi
    }

    /// A copy without the boxes of filter number `at` (the later ones move down by one).
    fn removed(&self, at: u32) -> Self {
        let b = self.owners().partition_point(|&o| o < u64::from(at));
        let e = self.owners().partition_point(|&o| o <= u64::from(at));
        let mut out = self.cut(b, e);
        out.shift_owners(b, -1);
        out
    }

    /// Drops the boxes of filter number `at` (the later ones move down by one).
    #[cfg(test)]
    fn remove(&mut self, at: u32) {
        *self = self.removed(at);
    }

    /// The boxes among `b..b + n` (at most 64) containing `keys`, as a bit set.
    #[inline]
    fn inside(&self, keys: &[u64; MAX_DIMS], b: usize, n: usize) -> u64 {
        let mut m = if n >= 64 { u64::MAX } else { (1u64 << n) - 1 };
        let mut start = self.n;
        for &(d, w) in self.cols.iter().take(usize::from(self.ncols)) {
            let w = usize::from(w);
            let k = keys.get(usize::from(d)).copied().unwrap_or(0);
            let sec = self
                .data
                .get(start + b * w..start + (b + n) * w)
                .unwrap_or(&[]);
            start += self.n * w;
            let mut hit = [0u8; 64];
            if w == 1 {
                // A narrow dimension's keys fit 32 bits.
                let k = k as u32;
                for (h, x) in hit.iter_mut().zip(sec) {
                    *h = u8::from(k.wrapping_sub(*x as u32) <= (x >> 32) as u32);
                }
            } else {
                for (h, x) in hit.iter_mut().zip(sec.chunks_exact(2)) {
                    if let [lo, span] = x {
                        *h = u8::from(k.wrapping_sub(*lo) <= *span);
                    }
                }
            }
            m &= pack(&hit);
            if m == 0 {
                break;
            }
        }
        m
    }

    /// Approximate heap bytes.
    #[cfg(any(test, feature = "bench-internals"))]
    fn bytes(&self) -> usize {
        self.data.capacity() * 8
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
///
/// The added filters are cut into chunks of at most [`CHUNK_MAX`], each `Arc`'d with its packed
/// boxes: a commit copies the chunk list (a few pointers) and the one chunk it changes, not every
/// added filter (issue 15, B2: copying a delta of 126 filters cost a single add 3.4 µs).
#[derive(Clone, Debug, Default)]
pub(super) struct Delta {
    /// Chunks of added filters, in evaluation order (every filter of a chunk before the next
    /// chunk's); never an empty chunk.
    chunks: Vec<Arc<Chunk>>,
    /// Filters before each chunk.
    starts: Vec<usize>,
    /// Added filters.
    len: usize,
    /// Field use of the live filters (runs and added).
    pub(super) fields: FieldUse,
    /// Some added filter is not compiled (`extend_raw`): lookups scan them.
    raw: bool,
}

/// A chunk splits in two past this many filters. Tiny in unit tests, so that their histories go
/// through several chunks.
const CHUNK_MAX: usize = if cfg!(test) { 2 } else { 32 };

/// Consecutive added filters (in evaluation order) and their packed boxes.
#[derive(Clone, Debug, Default)]
struct Chunk {
    /// One reference count each, so that copying a chunk costs one increment per filter.
    added: Vec<Arc<Added>>,
    packed: Packed,
}

impl Chunk {
    /// A copy with `a` inserted at `at` (`space`: the base's, `a` compiled on it), and whether
    /// `a` is compiled. Builds the new filter list and columns once (issue 15, B2: copying the
    /// chunk, then splicing its columns, copied them twice per add).
    fn with(&self, at: usize, a: Arc<Added>, space: Option<&Space>) -> (Self, bool) {
        let (packed, compiled) = match (&a.compiled, u32::try_from(at)) {
            (Some(c), Ok(n)) => {
                let packed = match space {
                    Some(sp) if self.packed.n == 0 => {
                        Packed::new(sp.dims.iter().map(|d| d.width)).inserted(n, &c.boxes)
                    }
                    _ => self.packed.inserted(n, &c.boxes),
                };
                (packed, true)
            }
            _ => (self.packed.clone(), false),
        };
        let mut added = Vec::with_capacity(self.added.len() + 1);
        added.extend_from_slice(self.added.get(..at).unwrap_or(&[]));
        added.push(a);
        added.extend_from_slice(self.added.get(at..).unwrap_or(&[]));
        (Self { added, packed }, compiled)
    }

    /// A copy without filter `at` (a compiled one when `compiled`).
    fn without(&self, at: usize, compiled: bool) -> Self {
        let packed = match (compiled, u32::try_from(at)) {
            (true, Ok(n)) => self.packed.removed(n),
            _ => self.packed.clone(),
        };
        let mut added = Vec::with_capacity(self.added.len().saturating_sub(1));
        added.extend_from_slice(self.added.get(..at).unwrap_or(&[]));
        added.extend_from_slice(self.added.get(at + 1..).unwrap_or(&[]));
        Self { added, packed }
    }
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

    /// Added filters.
    pub(super) fn len(&self) -> usize {
        self.len
    }

    /// Whether no filter was added.
    pub(super) fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The added filters, in evaluation order.
    pub(super) fn iter(&self) -> impl Iterator<Item = &Arc<RtFilter>> + '_ {
        self.chunks
            .iter()
            .flat_map(|c| c.added.iter().map(|a| &a.filter))
    }

    /// Added filter number `j` (in evaluation order).
    pub(super) fn get(&self, j: usize) -> Option<&Arc<RtFilter>> {
        let c = self.starts.partition_point(|&s| s <= j).checked_sub(1)?;
        let a = self.chunks.get(c)?.added.get(j - self.starts.get(c)?)?;
        Some(&a.filter)
    }

    /// Added filters for which `pred` holds (a prefix, in evaluation order).
    pub(super) fn partition_point(&self, pred: impl Fn(&RtFilter) -> bool) -> usize {
        let c = self
            .chunks
            .partition_point(|ch| ch.added.first().is_some_and(|a| pred(&a.filter)));
        let Some(prev) = c.checked_sub(1) else {
            return 0;
        };
        let (Some(ch), Some(&start)) = (self.chunks.get(prev), self.starts.get(prev)) else {
            return 0;
        };
        start + ch.added.partition_point(|a| pred(&a.filter))
    }

    fn restart(&mut self) {
        self.starts.clear();
        let mut n = 0;
        for c in &self.chunks {
            self.starts.push(n);
            n += c.added.len();
        }
        self.len = n;
    }

    /// Inserts an added filter at its place in evaluation order (`space`: the base's, the one
    /// `a` was compiled on). Copies one chunk.
    pub(super) fn add(&mut self, a: Added, space: Option<&Space>) {
        let a = Arc::new(a);
        self.fields.update(&a.filter, true);
        // The last chunk whose first filter comes before `a` (or the first chunk).
        let c = self
            .chunks
            .partition_point(|ch| {
                ch.added
                    .first()
                    .is_some_and(|x| eval_order(&x.filter, &a.filter).is_lt())
            })
            .saturating_sub(1);
        if self.chunks.is_empty() {
            self.chunks.push(Arc::new(Chunk::default()));
        }
        let Some(slot) = self.chunks.get_mut(c) else {
            return;
        };
        let at = slot
            .added
            .partition_point(|x| eval_order(&x.filter, &a.filter).is_lt());
        let (mut chunk, compiled) = slot.with(at, a, space);
        if !compiled {
            self.raw = true;
        }
        let hi = (chunk.added.len() > CHUNK_MAX).then(|| {
            let half = chunk.added.len() / 2;
            Chunk {
                added: chunk.added.split_off(half),
                packed: chunk.packed.split_off(half),
            }
        });
        *slot = Arc::new(chunk);
        if let Some(hi) = hi {
            self.chunks.insert(c + 1, Arc::new(hi));
        }
        self.restart();
    }

    /// Adds `filters` uncompiled (lookups would scan them): only for filters that become a run
    /// before the snapshot is published (`SublayerIndex::with_changes`).
    pub(super) fn extend_raw(&mut self, filters: &[&Arc<RtFilter>]) {
        for f in filters {
            self.fields.update(f, true);
        }
        let mut all: Vec<Arc<Added>> = self
            .chunks
            .iter()
            .flat_map(|c| c.added.iter().cloned())
            .collect();
        all.extend(filters.iter().map(|f| {
            Arc::new(Added {
                filter: Arc::clone(f),
                compiled: None,
            })
        }));
        all.sort_by(|a, b| eval_order(&a.filter, &b.filter));
        self.chunks = vec![Arc::new(Chunk {
            added: all,
            packed: Packed::default(),
        })];
        self.raw = true;
        self.restart();
    }

    /// Removes `f` from the added filters; false when it is not one of them. Copies one chunk.
    pub(super) fn remove_added(&mut self, f: &RtFilter) -> bool {
        let c = self
            .chunks
            .partition_point(|ch| {
                ch.added
                    .first()
                    .is_some_and(|x| eval_order(&x.filter, f).is_le())
            })
            .saturating_sub(1);
        let Some(at) = self.chunks.get(c).and_then(|ch| {
            let at = ch
                .added
                .binary_search_by(|a| eval_order(&a.filter, f))
                .ok()?;
            ch.added
                .get(at)
                .is_some_and(|a| a.filter.filter_id == f.filter_id)
                .then_some(at)
        }) else {
            return false;
        };
        let Some(slot) = self.chunks.get_mut(c) else {
            return false;
        };
        let Some(a) = slot.added.get(at).cloned() else {
            return false;
        };
        if slot.added.len() == 1 {
            self.chunks.remove(c);
        } else {
            *slot = Arc::new(slot.without(at, a.compiled.is_some()));
        }
        self.fields.update(&a.filter, false);
        self.restart();
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
        let first = self.starts.partition_point(|&s| s <= from).checked_sub(1)?;
        let Some(space) = space.filter(|_| !self.raw) else {
            return self
                .iter()
                .enumerate()
                .skip(from)
                .find(|(_, f)| f.conditions().matches(values))
                .map(|(i, _)| i);
        };
        let (keys, present) = space.keys(values);
        for (ch, &start) in self.chunks.iter().zip(&self.starts).skip(first) {
            let local = u32::try_from(from.saturating_sub(start)).ok()?;
            if let Some(i) = ch.next_match(&keys, present, values, local) {
                return Some(start + i);
            }
        }
        None
    }

    /// Approximate heap bytes.
    #[cfg(any(test, feature = "bench-internals"))]
    pub(super) fn bytes(&self) -> usize {
        self.chunks
            .iter()
            .map(|c| {
                c.added.capacity() * 8
                    + c.added.len() * std::mem::size_of::<Added>()
                    + c.packed.bytes()
            })
            .sum::<usize>()
            + self.chunks.capacity() * 8
            + self.starts.capacity() * 8
    }
}

impl Chunk {
    /// The first filter of the chunk at or after `from` whose box contains the keys and that
    /// matches.
    #[inline]
    fn next_match(
        &self,
        keys: &[u64; MAX_DIMS],
        present: u16,
        values: &[Value],
        from: u32,
    ) -> Option<usize> {
        let p = &self.packed;
        let owners = p.owners();
        let mut b = owners.partition_point(|&o| o < u64::from(from));
        let end = owners.len();
        while b < end {
            let n = (end - b).min(64);
            let mut m = p.inside(keys, b, n);
            while m != 0 {
                let i = m.trailing_zeros() as usize;
                m &= m - 1;
                let Some(&o) = owners.get(b + i) else { break };
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
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::{Packed, MAX_DIMS};

    /// A box on dimensions of `widths`: per dimension a seed picking bounds (some wildcards,
    /// some single values, some ranges).
    fn make_box(widths: &[u32], seeds: &[(u64, u64, u8)]) -> Vec<(u64, u64)> {
        widths
            .iter()
            .zip(seeds)
            .map(|(&w, &(a, b, kind))| {
                let max = if w >= 64 { u64::MAX } else { (1u64 << w) - 1 };
                let (a, b) = (a & max & 0xFF, b & max & 0xFF);
                match kind % 3 {
                    0 => (0, max),
                    1 => (a, a),
                    _ => (a.min(b), a.max(b)),
                }
            })
            .collect()
    }

    /// `p` against the boxes of `model` (per filter, in order) on every key vector.
    fn check(
        p: &Packed,
        model: &[Vec<Vec<(u64, u64)>>],
        keys: &[Vec<u64>],
    ) -> Result<(), TestCaseError> {
        let flat: Vec<(u32, &Vec<(u64, u64)>)> = (0u32..)
            .zip(model)
            .flat_map(|(o, bs)| bs.iter().map(move |b| (o, b)))
            .collect();
        prop_assert_eq!(p.owners().len(), flat.len());
        for k in keys {
            let mut keys = [0u64; MAX_DIMS];
            keys.copy_from_slice(k);
            for start in (0..flat.len()).step_by(64) {
                let n = (flat.len() - start).min(64);
                let got = p.inside(&keys, start, n);
                let mut want = 0u64;
                for (i, (o, b)) in flat.iter().skip(start).take(n).enumerate() {
                    prop_assert_eq!(p.owners().get(start + i), Some(&u64::from(*o)));
                    if b.iter().zip(&keys).all(|((lo, hi), k)| lo <= k && k <= hi) {
                        want |= 1 << i;
                    }
                }
                prop_assert_eq!(got, want);
            }
        }
        Ok(())
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 64, failure_persistence: None, ..ProptestConfig::default() })]

        /// Packed columns (past 64 boxes, narrow and wide dimensions, filters inserted at any
        /// place and removed, then split in two) answer `inside` exactly as a box-by-box check.
        #[test]
        fn packed_columns_equal_box_by_box(
            widths in prop::collection::vec(prop::sample::select(vec![8u32, 16, 32, 64]), 1..=MAX_DIMS),
            ops in prop::collection::vec((any::<bool>(), any::<u16>(), prop::collection::vec(
                prop::collection::vec((any::<u64>(), any::<u64>(), any::<u8>()), MAX_DIMS), 1..3)), 1..160),
            keys in prop::collection::vec(prop::collection::vec(0u64..0x100, MAX_DIMS), 1..8),
        ) {
            let mut p = Packed::new(widths.iter().copied());
            // Per filter (in order): its boxes.
            let mut model: Vec<Vec<Vec<(u64, u64)>>> = Vec::new();
            for (add, at, seeds) in &ops {
                if *add || model.is_empty() {
                    let at = usize::from(*at) % (model.len() + 1);
                    let boxes: Vec<Vec<(u64, u64)>> = seeds.iter().map(|s| make_box(&widths, s)).collect();
                    let flat: Vec<(u64, u64)> = boxes.iter().flatten().copied().collect();
                    p.insert(at as u32, &flat);
                    model.insert(at, boxes);
                } else {
                    let at = usize::from(*at) % model.len();
                    p.remove(at as u32);
                    model.remove(at);
                }
            }
            let half = model.len() / 2;
            let mut lo = p.clone();
            let hi = lo.split_off(half);
            check(&p, &model, &keys)?;
            check(&lo, model.get(..half).unwrap_or(&[]), &keys)?;
            check(&hi, model.get(half..).unwrap_or(&[]), &keys)?;
        }
    }
}
