//! Priority-ordered tuple-space search with per-dimension table pruning.
//!
//! Every box (see [`super::compile`]) has a *tuple*: per dimension, the length of the common
//! prefix of its bounds — all keys inside the box share those leading bits. Boxes with the same
//! tuple (after optional rounding, see [`Params`]) share a *table*: an open-addressing hash table
//! keyed on those leading bits. A bucket holds the boxes of one masked key in evaluation order
//! with their exact bounds, packed to the dimensions' widths (`lo` and `hi - lo` in 1, 2, 4 or 8
//! bytes: 34 bytes for an IPv4 five-tuple, with the header word; issue 15, at most 64 bytes of
//! index per filter): the first box lives in the hash slot itself (which is recognised by its
//! masked bounds, no stored hash), the others in an overflow array.
//!
//! When the boxes have more distinct tuples than `max_tables` (rule sets where nearly every rule
//! has its own combination of prefix lengths and port ranges — `wfp-bench hard N`), tables are
//! *merged* instead (`merge_tuples`, after TupleMerge): a table keys on fewer leading bits than
//! its boxes fix. A box goes to the fitting table keying on the most bits whose bucket has room
//! (best fit); a new table is opened with the box's *relaxed* tuple — lengths rounded down to a
//! coarse grid, only the (at most three) dimensions fixing the most bits, 32 key bits when the box
//! has them — when the best fit would key on less than half of those bits. Tables are opened per
//! *epoch* (a slice of the evaluation order), so a lookup that matched early skips the later
//! epochs' tables, and merged indexes prune on 10-bit blocks (small, cache-resident maps). On the
//! hard sets this took the work per lookup from ~10 bucket reads and ~16 box checks to ~3 and ~4.
//!
//! A lookup does not probe every table:
//! 1. for every dimension where it discriminates, a [`Prune`] map turns the key's leading bits into
//!    the set of tables that can hold a box containing it; the AND over the dimensions gives the
//!    candidate tables;
//! 2. tables are numbered in order of their best (lowest) filter position, so candidates are
//!    visited in that order and the search stops at the first table that cannot beat the best match
//!    found — the answer is the first matching filter in evaluation order;
//! 3. each table has a small presence filter (a blocked Bloom filter, about 8 bits per bucket,
//!    cache-resident) consulted before its slots, so a candidate without the key rarely costs a
//!    cache miss.
//!
//! Measured on ClassBench sets (see `wfp-bench/benches/classify.rs`): about one slot read per
//! lookup, 40–80 ns at 10k filters and about 65 ns at 92k, with exact tuples (`tuple_step` 1).
//!
//! (Tuple-space search is Srinivasan et al.'s; priority-ordered tables with early termination
//! follow Daly & Torng's TupleMerge/PartitionSort; the pruning sets are the Lakshman–Stiliadis
//! bit-vector scheme applied to tables rather than rules.)

use std::collections::HashMap;
use std::sync::Arc;

use crate::filter::RtFilter;
use crate::value::Value;

use super::compile::{Compiled, Dim, FieldKind, Space, MAX_DIMS};
use super::prune::{MapShape, Prune, MERGED_PRUNE_BITS, PRUNE_BITS};

/// At most this many tables (one bit each in the pruning sets).
const MAX_WORDS: usize = 16;
const MAX_TABLES: usize = MAX_WORDS * 64;

/// Build parameters.
#[derive(Clone, Copy, Debug)]
pub(super) struct Params {
    /// Tuples are rounded down to multiples of this (1 = exact tuples); when the tuples still
    /// outnumber `max_tables`, they are merged (`merge_tuples`).
    pub(super) tuple_step: u32,
    /// Upper bound on tables of exact or rounded tuples (at most 1024); merged tables
    /// (`merge_tuples`) may use four times as many (still at most 1024): each holds fewer boxes.
    pub(super) max_tables: usize,
}

impl Default for Params {
    fn default() -> Self {
        Self {
            tuple_step: 1,
            max_tables: 256,
        }
    }
}

/// Per-dimension rotations for the hash: two 32-bit dimensions land in disjoint halves, 16- and
/// 8-bit ones in between (distinct keys may still share a hash; buckets stay exact, see below).
const ROT: [u32; MAX_DIMS] = [0, 32, 16, 48, 8, 40, 24, 56];

#[inline]
fn hash(keys: &[u64; MAX_DIMS], masks: &[u64; MAX_DIMS]) -> u64 {
    let mut h = 0u64;
    for i in 0..MAX_DIMS {
        h ^= (keys[i] & masks[i]).rotate_left(ROT[i]);
    }
    h = (h ^ (h >> 32)).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    h ^ (h >> 29)
}

/// The home slot of key hash `h` in a table of `cap` slots (multiply-shift onto any capacity).
#[inline]
fn home(h: u64, cap: usize) -> usize {
    ((u128::from(h) * cap as u128) >> 64) as usize
}

/// A presence filter's word (under `word_mask`) and the two bits it sets for key hash `h`: a
/// blocked Bloom filter, about 8 bits per bucket, one load per probe (~5% false positives).
#[inline]
fn filter_probe(h: u64, word_mask: usize) -> (usize, u64) {
    let word = usize::try_from(h >> 12).unwrap_or(0) & word_mask;
    (word, (1 << (h & 63)) | (1 << ((h >> 6) & 63)))
}

/// Box header word: position in the low 32 bits, required-dimension mask in bits 32..40, the
/// last-box-of-its-bucket flag in bit 40, the residual-group mask (`Compiled::residual`, 15 bits)
/// in bits 48..63, the verify flag in bit 63.
const HEAD_POS_BITS: u32 = 32;
const HEAD_LAST: u64 = 1 << 40;
const HEAD_RESIDUAL_SHIFT: u32 = 48;
const HEAD_VERIFY: u64 = 1 << 63;
/// The header of a free hash slot (no position is `u32::MAX`).
const EMPTY: u64 = u64::MAX;
/// A slot's overflow start when its bucket has one box.
const NO_MORE: u64 = u32::MAX as u64;

/// How a box's bounds are packed: per dimension, `lo` then `hi - lo`, each in `bytes[d]` bytes
/// (little-endian), after the 8-byte header. A hash slot is a box followed by the 4-byte number
/// of its bucket's first overflow box ([`NO_MORE`]: none).
#[derive(Clone, Copy, Debug)]
struct Layout {
    nd: usize,
    bytes: [u8; MAX_DIMS],
    /// Per dimension: offset of `lo` in the box (`hi - lo` follows); a check reads every bound
    /// with one unaligned 8-byte load, masked to the width, no branch on widths (the arrays end
    /// with [`PAD`] spare bytes).
    off: [u8; MAX_DIMS],
    /// Bytes per box, header included.
    rec: usize,
}

/// Spare bytes after the last slot and box: the 8-byte loads of [`Layout`] stay inside.
const PAD: usize = 8;

impl Layout {
    fn of(dims: &[Dim]) -> Self {
        let mut bytes = [0u8; MAX_DIMS];
        for (b, d) in bytes.iter_mut().zip(dims) {
            *b = match d.width {
                0..=8 => 1,
                9..=16 => 2,
                17..=32 => 4,
                _ => 8,
            };
        }
        let nd = dims.len().min(MAX_DIMS);
        let mut off = [0u8; MAX_DIMS];
        let mut at = 8u8;
        for (o, &b) in off.iter_mut().zip(&bytes) {
            *o = at;
            // At most 8 + 8 * 16 bytes.
            at += 2 * b;
        }
        Self {
            nd,
            bytes,
            off,
            rec: usize::from(at),
        }
    }

    /// Bytes per hash slot.
    fn slot(&self) -> usize {
        self.rec + 4
    }

    /// Whether the box `rec` (with [`PAD`] bytes after it) has the masked key of `keys` (its
    /// `lo`s under `masks`).
    #[inline]
    fn same_key(&self, rec: &[u8], keys: &[u64; MAX_DIMS], masks: &[u64; MAX_DIMS]) -> bool {
        let mut same = true;
        for ((k, m), &at) in keys.iter().zip(masks).zip(&self.off).take(self.nd) {
            same &= (load(rec, usize::from(at)) ^ k) & m == 0;
        }
        same
    }

    /// Whether every key lies inside the box `rec` (with [`PAD`] bytes after it).
    #[inline]
    fn inside(&self, rec: &[u8], keys: &[u64; MAX_DIMS]) -> bool {
        let mut inside = true;
        for ((k, &at), &n) in keys.iter().zip(&self.off).zip(&self.bytes).take(self.nd) {
            let m = u64::MAX >> (64 - 8 * u32::from(n.clamp(1, 8)));
            let at = usize::from(at);
            let lo = load(rec, at) & m;
            let span = load(rec, at + usize::from(n)) & m;
            inside &= k.wrapping_sub(lo) <= span;
        }
        inside
    }

    /// Appends a box.
    fn push(&self, out: &mut Vec<u8>, head: u64, bounds: &[(u64, u64)]) {
        out.extend_from_slice(&head.to_le_bytes());
        for (&(lo, hi), &n) in bounds.iter().zip(&self.bytes) {
            let n = usize::from(n);
            out.extend_from_slice(lo.to_le_bytes().get(..n).unwrap_or(&[]));
            out.extend_from_slice((hi - lo).to_le_bytes().get(..n).unwrap_or(&[]));
        }
    }
}

/// The 8-byte little-endian word at `at` of `rec` (0 past its end).
#[inline]
fn load(rec: &[u8], at: usize) -> u64 {
    rec.get(at..at + 8)
        .and_then(|s| s.try_into().ok())
        .map_or(0, u64::from_le_bytes)
}

/// The `n`-byte little-endian word at `at` of `rec` (0 past its end).
#[inline]
fn read(rec: &[u8], at: usize, n: u8) -> u64 {
    let word = |k: usize| rec.get(at..at + k);
    match n {
        1 => rec.get(at).map_or(0, |&b| u64::from(b)),
        2 => word(2)
            .and_then(|s| s.try_into().ok())
            .map_or(0, |a| u64::from(u16::from_le_bytes(a))),
        4 => word(4)
            .and_then(|s| s.try_into().ok())
            .map_or(0, |a| u64::from(u32::from_le_bytes(a))),
        _ => word(8)
            .and_then(|s| s.try_into().ok())
            .map_or(0, u64::from_le_bytes),
    }
}

#[derive(Debug)]
struct Table {
    masks: [u64; MAX_DIMS],
    /// Lowest and highest filter position stored in the table.
    min_pos: u32,
    max_pos: u32,
    /// Presence filter: first word in [`TupleIndex::filter_bits`] and word-index mask.
    filter_start: u32,
    filter_mask: u32,
    /// Slots: first slot number in [`TupleIndex::slots`].
    slot_start: usize,
    /// Slots of the table (`slot = home(hash, cap)`, linear probing).
    cap: usize,
}

/// The tuple-space index of one sublayer.
#[derive(Debug)]
pub(super) struct TupleIndex {
    space: Space,
    tables: Vec<Table>,
    /// Hash slots of all tables, [`Layout::slot`] bytes each (header [`EMPTY`]: free).
    slots: Vec<u8>,
    /// The first slot's offset in `slots` (aligned to 64 bytes).
    slot_base: usize,
    /// Overflow boxes, [`Layout::rec`] bytes each, a bucket's consecutive (the last flagged).
    boxes: Vec<u8>,
    layout: Layout,
    /// Presence filters of all tables.
    filter_bits: Vec<u64>,
    /// Pruning maps, for the dimensions where they discriminate.
    prunes: Vec<Prune>,
    /// Words per table set.
    words: usize,
}

/// Sizes, for the bench and tests.
#[cfg(any(test, feature = "bench-internals"))]
#[derive(Clone, Copy, Debug, Default)]
pub(super) struct Stats {
    pub(super) dims: usize,
    pub(super) tables: usize,
    pub(super) boxes: usize,
    pub(super) buckets: usize,
    pub(super) max_bucket: usize,
    /// The index: tables, slots, boxes, presence filters, pruning maps, heads, tombstones.
    pub(super) bytes: usize,
    /// The filter list (pointers to the filter objects, in evaluation order).
    pub(super) list_bytes: usize,
}

fn mask_of(width: u32, len: u32) -> u64 {
    if len == 0 {
        return 0;
    }
    let all = if width >= 64 {
        u64::MAX
    } else {
        (1u64 << width) - 1
    };
    all & !all.checked_shr(len.min(width)).unwrap_or(0)
}

/// A box in evaluation order.
struct BoxRef<'a> {
    pos: u32,
    required: u16,
    verify: bool,
    residual: u16,
    /// `[lo, hi]` per dimension.
    bounds: &'a [(u64, u64)],
    /// The tuple: common prefix length of the bounds, per dimension.
    lens: [u8; MAX_DIMS],
}

impl BoxRef<'_> {
    fn head(&self) -> u64 {
        let mut head = u64::from(self.pos)
            | (u64::from(self.required & 0xFF) << HEAD_POS_BITS)
            | (u64::from(self.residual & 0x7FFF) << HEAD_RESIDUAL_SHIFT);
        if self.verify {
            head |= HEAD_VERIFY;
        }
        head
    }
}

/// A table being built: its masks, and its boxes as (key hash, masked key, box number) sorted —
/// each run of equal masked keys is a bucket.
struct Planned {
    masks: [u64; MAX_DIMS],
    keyed: Vec<(u64, [u64; MAX_DIMS], u32)>,
    buckets: usize,
    cap: usize,
    min_pos: u32,
    max_pos: u32,
}

impl TupleIndex {
    /// Builds from compiled filters (index = position in evaluation order).
    pub(super) fn build(space: Space, compiled: &[Compiled], params: Params) -> Self {
        let dims = space.dims.as_slice();
        let nd = dims.len().max(1);
        let mut refs: Vec<BoxRef<'_>> = Vec::new();
        for (pos, c) in compiled.iter().enumerate() {
            let Ok(pos) = u32::try_from(pos) else { break };
            for bounds in c.boxes.chunks_exact(nd) {
                let mut lens = [0u8; MAX_DIMS];
                for ((l, dim), (lo, hi)) in lens.iter_mut().zip(dims).zip(bounds) {
                    let len = dim.width - (64 - (lo ^ hi).leading_zeros()).min(dim.width);
                    *l = u8::try_from(len).unwrap_or(0);
                }
                refs.push(BoxRef {
                    pos,
                    required: c.required,
                    verify: c.verify,
                    residual: c.residual,
                    bounds,
                    lens,
                });
            }
        }
        let Ok(nboxes) = u32::try_from(refs.len()) else {
            return Self::empty(space);
        };

        // Group the boxes by (rounded) tuple, coarsening the rounding at most twice — and at
        // each rounding, when the tuples outnumber the tables, trying again with application ids
        // (blob dimensions) left out of the tuples (their boxes still check them exactly: a
        // policy where half the filters name an application would otherwise double its tuples
        // and go to merged tables, ~4x slower on ipc1_10k); when there are still more tuples
        // than tables, merge them (`merge_tuples`).
        let max_tables = params.max_tables.clamp(1, MAX_TABLES);
        let first = u8::try_from(params.tuple_step.clamp(1, 128)).unwrap_or(1);
        let has_blob = dims.iter().any(|d| d.kind == FieldKind::Blob);
        let mut groups: Option<Vec<([u8; MAX_DIMS], Vec<u32>)>> = None;
        let attempts = [first, first.saturating_mul(2), first.saturating_mul(4)]
            .into_iter()
            .flat_map(|step| [(step, true), (step, false)])
            .filter(|&(_, blobs)| blobs || has_blob);
        for (step, blobs) in attempts {
            let mut by_tuple: HashMap<[u8; MAX_DIMS], Vec<u32>> = HashMap::new();
            for (i, r) in (0..nboxes).zip(&refs) {
                let mut t = r.lens;
                for (l, d) in t.iter_mut().zip(dims) {
                    *l = if blobs || d.kind != FieldKind::Blob {
                        *l - *l % step
                    } else {
                        0
                    };
                }
                by_tuple.entry(t).or_default().push(i);
            }
            if by_tuple.len() <= max_tables {
                groups = Some(by_tuple.into_iter().collect());
                break;
            }
        }
        let merged = groups.is_none();
        let groups =
            groups.unwrap_or_else(|| merge_tuples(&refs, dims, MAX_TABLES.min(max_tables * 4)));
        let pos_of = |i: u32| refs.get(i as usize).map_or(u32::MAX, |r| r.pos);

        // Tables, in order of their best position (boxes are numbered in evaluation order, so
        // every group's list is sorted by position).
        let mut planned: Vec<Planned> = groups
            .into_iter()
            .map(|(tuple, ids)| {
                let mut masks = [0u64; MAX_DIMS];
                for ((m, l), d) in masks.iter_mut().zip(&tuple).zip(dims) {
                    *m = mask_of(d.width, u32::from(*l));
                }
                let mut keyed: Vec<(u64, [u64; MAX_DIMS], u32)> = ids
                    .iter()
                    .map(|&i| {
                        let mut key = [0u64; MAX_DIMS];
                        if let Some(r) = refs.get(i as usize) {
                            for ((k, (lo, _)), m) in key.iter_mut().zip(r.bounds).zip(&masks) {
                                *k = *lo & m;
                            }
                        }
                        (hash(&key, &masks), key, i)
                    })
                    .collect();
                keyed.sort_unstable();
                let buckets = keyed.chunk_by(|a, b| (a.0, a.1) == (b.0, b.1)).count();
                // Load factor at most 0.8 (the presence filter keeps most absent keys away), and
                // always a free slot: probing for an absent key ends at one.
                // Load factor about 0.87 (any capacity: `home` maps the hash onto it), and always a
                // free slot: probing for an absent key ends at one.
                let cap = buckets + buckets / 8 + 2;
                Planned {
                    masks,
                    keyed,
                    buckets,
                    cap,
                    min_pos: ids.first().map_or(u32::MAX, |&i| pos_of(i)),
                    max_pos: ids.last().map_or(0, |&i| pos_of(i)),
                }
            })
            .collect();
        planned.sort_by_key(|p| (p.min_pos, p.max_pos, p.masks));

        let layout = Layout::of(dims);
        let srec = layout.slot();
        let total_slots: usize = planned.iter().map(|p| p.cap).sum();
        let mut slots: Vec<u8> = Vec::with_capacity(total_slots * srec + PAD + 64);
        let slot_base = slots.as_ptr().align_offset(64).min(63);
        slots.resize(slot_base + total_slots * srec + PAD, 0xFF);
        let mut boxes: Vec<u8> = Vec::new();
        let mut filter_bits: Vec<u64> = Vec::new();
        let mut tables: Vec<Table> = Vec::with_capacity(planned.len());
        // The table of every box, for the pruning maps.
        let mut table_of = vec![0u32; refs.len()];
        let mut slot_start = 0usize;
        let mut line: Vec<u8> = Vec::with_capacity(srec);
        for (t, p) in (0u32..).zip(&planned) {
            let filter_words = (p.buckets * 8).div_ceil(64).next_power_of_two();
            let filter_start = filter_bits.len();
            filter_bits.resize(filter_start + filter_words, 0);
            for bucket in p.keyed.chunk_by(|a, b| (a.0, a.1) == (b.0, b.1)) {
                let Some(&(h, _, _)) = bucket.first() else {
                    continue;
                };
                let (word, mask) = filter_probe(h, filter_words - 1);
                if let Some(w) = filter_bits.get_mut(filter_start + word) {
                    *w |= mask;
                }
                let mut s = home(h, p.cap);
                let at = |s: usize| slot_base + (slot_start + s) * srec;
                while slots
                    .get(at(s)..at(s) + 8)
                    .is_some_and(|w| read(w, 0, 8) != EMPTY)
                {
                    s = if s + 1 == p.cap { 0 } else { s + 1 };
                }
                let mut rs = bucket.iter().filter_map(|&(_, _, i)| {
                    if let Some(slot) = table_of.get_mut(i as usize) {
                        *slot = t;
                    }
                    refs.get(i as usize)
                });
                let Some(first) = rs.next() else { continue };
                let more = if bucket.len() > 1 {
                    (boxes.len() / layout.rec) as u64
                } else {
                    NO_MORE
                };
                for (k, r) in (2..).zip(rs) {
                    let last = if k == bucket.len() { HEAD_LAST } else { 0 };
                    layout.push(&mut boxes, r.head() | last, r.bounds);
                }
                line.clear();
                layout.push(&mut line, first.head(), first.bounds);
                line.extend_from_slice(&(more as u32).to_le_bytes());
                if let Some(dst) = slots.get_mut(at(s)..at(s) + line.len()) {
                    dst.copy_from_slice(&line);
                }
            }
            tables.push(Table {
                masks: p.masks,
                min_pos: p.min_pos,
                max_pos: p.max_pos,
                filter_start: u32::try_from(filter_start).unwrap_or(u32::MAX),
                filter_mask: u32::try_from(filter_words - 1).unwrap_or(0),
                slot_start,
                cap: p.cap,
            });
            slot_start += p.cap;
        }
        drop(planned);
        boxes.extend_from_slice(&[0; PAD]);
        boxes.shrink_to_fit();
        filter_bits.shrink_to_fit();

        let words = tables.len().div_ceil(64).max(1);
        // Keep the maps that discriminate: on keys sampled from the boxes themselves, a map must
        // leave at most 3/4 of the tables on average to be worth its lookup.
        let samples: Vec<&BoxRef<'_>> = refs.iter().step_by((refs.len() / 2048).max(1)).collect();
        let tables_n = tables.len().max(1);
        let prunes = dims
            .iter()
            .enumerate()
            .filter_map(|(d, dim)| {
                let boxes = refs.iter().zip(&table_of).map(|(r, &t)| {
                    let (lo, hi) = r.bounds.get(d).copied().unwrap_or((0, u64::MAX));
                    (t, r.required & (1 << d) != 0, lo, hi)
                });
                let shape = MapShape {
                    tables: tables.len(),
                    words,
                    block_bits: if merged {
                        MERGED_PRUNE_BITS
                    } else {
                        PRUNE_BITS
                    },
                };
                Prune::build(d, dim, boxes, shape)
            })
            .filter(|p| {
                let kept: usize = samples
                    .iter()
                    .map(|r| {
                        let key = r.bounds.get(p.dim).map(|(lo, _)| *lo);
                        p.tables(key)
                            .iter()
                            .map(|w| w.count_ones() as usize)
                            .sum::<usize>()
                    })
                    .sum();
                kept * 4 <= samples.len() * tables_n * 3
            })
            .collect();

        Self {
            space,
            tables,
            slots,
            slot_base,
            boxes,
            layout,
            filter_bits,
            prunes,
            words,
        }
    }

    /// The indexed dimensions.
    pub(super) fn space(&self) -> &Space {
        &self.space
    }

    /// An index with no tables (matches nothing).
    fn empty(space: Space) -> Self {
        Self {
            space,
            tables: Vec::new(),
            slots: Vec::new(),
            slot_base: 0,
            boxes: Vec::new(),
            layout: Layout::of(&[]),
            filter_bits: Vec::new(),
            prunes: Vec::new(),
            words: 1,
        }
    }

    /// The first position `>= from` whose filter matches `values`.
    #[inline]
    pub(super) fn next_match(
        &self,
        filters: &[Arc<RtFilter>],
        values: &[Value],
        from: usize,
    ) -> Option<usize> {
        self.search(&mut (), filters, values, from)
    }

    /// [`TupleIndex::next_match`] from position 0, counting the work done (for the bench).
    #[cfg(feature = "bench-internals")]
    pub(super) fn probe_counts(
        &self,
        filters: &[Arc<RtFilter>],
        values: &[Value],
    ) -> (Option<usize>, ProbeCounts) {
        let mut c = ProbeCounts::default();
        let r = self.search(&mut c, filters, values, 0);
        (r, c)
    }

    #[inline]
    fn search<C: Counter>(
        &self,
        counter: &mut C,
        filters: &[Arc<RtFilter>],
        values: &[Value],
        from: usize,
    ) -> Option<usize> {
        let from = u32::try_from(from).ok()?;
        let (keys, present) = self.space.keys(values);
        let present = u64::from(present);

        // Candidate tables.
        let words = self.words;
        let mut cand = [u64::MAX; MAX_WORDS];
        for p in &self.prunes {
            let key = (present & (1 << p.dim) != 0).then(|| keys.get(p.dim).copied().unwrap_or(0));
            for (c, s) in cand.iter_mut().zip(p.tables(key)) {
                *c &= s;
            }
        }

        let q = Query {
            keys: &keys,
            missing: (!present & 0xFF) << HEAD_POS_BITS,
            layout: &self.layout,
            from,
            filters,
            values,
        };
        let mut best = u32::MAX;
        'words: for (w, &word) in cand.iter().take(words).enumerate() {
            let mut bits = word;
            while bits != 0 {
                let t = w * 64 + bits.trailing_zeros() as usize;
                bits &= bits - 1;
                let Some(table) = self.tables.get(t) else {
                    break 'words;
                };
                if table.min_pos >= best {
                    break 'words;
                }
                if table.max_pos < from {
                    continue;
                }
                counter.table();
                let h = hash(&keys, &table.masks);
                let (fw, mask) = filter_probe(h, table.filter_mask as usize);
                let maybe = self
                    .filter_bits
                    .get(table.filter_start as usize + fw)
                    .is_some_and(|w| w & mask == mask);
                if !maybe {
                    continue;
                }
                counter.slot();
                let Some(slot) = self.slot(table, h, &keys) else {
                    continue;
                };
                counter.boxed();
                let head = read(slot, 0, 8);
                match q.check(head, slot, best) {
                    Check::Match(pos) => {
                        best = pos;
                        continue;
                    }
                    Check::Later => continue,
                    Check::No => {}
                }
                let more = read(slot, self.layout.rec, 4);
                if more == NO_MORE {
                    continue;
                }
                let rec = self.layout.rec;
                let mut b = more as usize;
                while let Some(r) = self.boxes.get(b * rec..(b + 1) * rec + PAD) {
                    counter.boxed();
                    let head = read(r, 0, 8);
                    match q.check(head, r, best) {
                        Check::Match(pos) => {
                            best = pos;
                            break;
                        }
                        Check::Later => break,
                        Check::No => {}
                    }
                    if head & HEAD_LAST != 0 {
                        break;
                    }
                    b += 1;
                }
            }
        }
        (best != u32::MAX).then_some(best as usize)
    }

    /// The slot of the bucket of `keys` (key hash `h`) in `table`, if any.
    #[inline]
    fn slot(&self, table: &Table, h: u64, keys: &[u64; MAX_DIMS]) -> Option<&[u8]> {
        let srec = self.layout.slot();
        let mut s = home(h, table.cap);
        for _ in 0..table.cap {
            let at = self.slot_base + (table.slot_start + s) * srec;
            let slot = self.slots.get(at..at + srec + PAD)?;
            if read(slot, 0, 8) == EMPTY {
                return None;
            }
            if self.layout.same_key(slot, keys, &table.masks) {
                return Some(slot);
            }
            s = if s + 1 == table.cap { 0 } else { s + 1 };
        }
        None
    }

    #[cfg(any(test, feature = "bench-internals"))]
    pub(super) fn stats(&self) -> Stats {
        let mut buckets = 0;
        let mut max_bucket = 0;
        let rec = self.layout.rec;
        for slot in self
            .slots
            .get(self.slot_base..)
            .unwrap_or(&[])
            .chunks_exact(self.layout.slot())
        {
            if read(slot, 0, 8) == EMPTY {
                continue;
            }
            buckets += 1;
            let mut n = 1;
            let more = read(slot, rec, 4);
            if more != NO_MORE {
                let mut b = more as usize;
                while let Some(r) = self.boxes.get(b * rec..(b + 1) * rec) {
                    n += 1;
                    if read(r, 0, 8) & HEAD_LAST != 0 {
                        break;
                    }
                    b += 1;
                }
            }
            max_bucket = max_bucket.max(n);
        }
        let bytes = self.slots.capacity()
            + self.boxes.capacity()
            + self.filter_bits.capacity() * 8
            + self.tables.capacity() * std::mem::size_of::<Table>()
            + self.prunes.iter().map(Prune::bytes).sum::<usize>()
            + self.space.dims.capacity() * std::mem::size_of::<Dim>()
            + self.space.blobs.bytes();
        Stats {
            dims: self.space.dims.len(),
            tables: self.tables.len(),
            boxes: buckets + self.boxes.len() / rec.max(1),
            buckets,
            max_bucket,
            bytes,
            list_bytes: 0,
        }
    }
}

/// Boxes that share a bucket of a merged table before a new table is opened.
const MERGE_COLLISIONS: u32 = 2;

/// Merged tables are opened per *epoch* — a slice of the evaluation order, at least this many
/// boxes, at most [`MERGE_EPOCHS`] of them — so that a lookup whose best match lies in an early
/// epoch skips the later epochs' tables altogether (their lowest position cannot beat it), instead
/// of reading the buckets of every later match. Tiny in unit tests, so that their random sets go
/// through several epochs.
const MERGE_EPOCH_BOXES: usize = if cfg!(test) { 4 } else { 2048 };
const MERGE_EPOCHS: usize = 16;

/// A relaxed tuple keys on at least this many bits when the box fixes that many (after rounding
/// to the grid), on at most [`MERGE_DIMS`] dimensions.
const MERGE_KEY_BITS: u32 = 32;
const MERGE_DIMS: usize = 3;

/// A prefix length of a dimension `width` bits wide rounded down to the grid merged tables use
/// (few distinct relaxed tuples, so few tables): multiples of 2 below 4 bits, of 4 below 8, then of 8 (of 16
/// past 32-bit dimensions); dimensions of 8 bits or less (protocols: a handful of values) are
/// left to the pruning maps (but see [`relax`]).
fn merge_round(width: u32, len: u8) -> u8 {
    let grid = match (width, len) {
        (0..=8, _) => return 0,
        (9..=32, 0..=3) => 2,
        (9..=32, 4..=7) => 4,
        (9..=32, _) => 8,
        _ => 16,
    };
    len - len % grid
}

/// Boxes a bucket of a merged table keying on `bits` bits may hold: [`MERGE_COLLISIONS`], but a
/// table keying on (almost) nothing is one list of near-wildcard boxes, scanned in evaluation
/// order, rather than many tables of two boxes each.
fn collision_limit(bits: u32) -> u32 {
    if bits < 8 {
        16
    } else {
        MERGE_COLLISIONS
    }
}

/// The bits a tuple keys on.
fn key_bits(tuple: &[u8; MAX_DIMS]) -> u32 {
    tuple.iter().map(|&l| u32::from(l)).sum()
}

/// The relaxed tuple of a table opened for a box of tuple `lens`: every length rounded down to
/// its grid, then only the dimensions fixing the most bits, until [`MERGE_KEY_BITS`] bits or
/// [`MERGE_DIMS`] dimensions (so boxes of other shapes fit the table too).
fn relax(lens: &[u8; MAX_DIMS], dims: &[Dim]) -> [u8; MAX_DIMS] {
    let mut rounded = [0u8; MAX_DIMS];
    for ((r, &l), d) in rounded.iter_mut().zip(lens).zip(dims) {
        // Hashed blobs (application ids) take a handful of values: keying on them alone would
        // pile every box of one application into one bucket.
        if d.kind != FieldKind::Blob {
            *r = merge_round(d.width, l);
        }
    }
    let mut order: Vec<usize> = (0..dims.len().min(MAX_DIMS)).collect();
    order.sort_by_key(|&d| (std::cmp::Reverse(rounded.get(d).copied().unwrap_or(0)), d));
    let mut t = [0u8; MAX_DIMS];
    let mut bits = 0u32;
    for d in order.into_iter().take(MERGE_DIMS) {
        let Some(&l) = rounded.get(d) else { continue };
        if l == 0 || bits >= MERGE_KEY_BITS {
            break;
        }
        if let Some(slot) = t.get_mut(d) {
            *slot = l;
        }
        bits += u32::from(l);
    }
    if bits == 0 {
        // A near-wildcard box: key on its exact narrow dimensions (the protocol) if any.
        for ((t, &l), d) in t.iter_mut().zip(lens).zip(dims) {
            if d.width <= 8 && u32::from(l) == d.width {
                *t = l;
            }
        }
    }
    t
}

/// Tuple merging (after Daly & Torng's TupleMerge) for sets with more distinct tuples than tables:
/// boxes, in evaluation order, go to the *best fitting* table — among tables whose tuple is no
/// longer than theirs on every dimension (so the table's masked key is common to every point of
/// the box) and whose bucket for them holds fewer than [`MERGE_COLLISIONS`] boxes, the one keying
/// on the most bits — unless that table keys on less than half the bits of the box's relaxed tuple
/// ([`relax`]), in which case a table of the relaxed tuple is opened. Keying every box on many
/// bits keeps false bucket hits (slot reads whose boxes then fail) rare. Past `max_tables - 1`
/// tables, a box goes to the fitting table where its bucket is smallest (or, when none fits, to
/// one all-wildcard table).
fn merge_tuples(
    refs: &[BoxRef<'_>],
    dims: &[Dim],
    max_tables: usize,
) -> Vec<([u8; MAX_DIMS], Vec<u32>)> {
    struct Merged {
        tuple: [u8; MAX_DIMS],
        masks: [u64; MAX_DIMS],
        bits: u32,
        counts: HashMap<u64, u32>,
        ids: Vec<u32>,
    }
    let masks_of = |tuple: &[u8; MAX_DIMS]| {
        let mut masks = [0u64; MAX_DIMS];
        for ((m, l), d) in masks.iter_mut().zip(tuple).zip(dims) {
            *m = mask_of(d.width, u32::from(*l));
        }
        masks
    };
    let mut tables: Vec<Merged> = Vec::new();
    // The current epoch's table numbers by key bits, most first: the first fitting table with room
    // is the best.
    let mut by_bits: Vec<usize> = Vec::new();
    let mut wild: Vec<u32> = Vec::new();
    let epochs = (refs.len() / MERGE_EPOCH_BOXES).clamp(1, MERGE_EPOCHS);
    let mut epoch = 0;
    for (i, r) in (0u32..).zip(refs) {
        let e = i as usize * epochs / refs.len().max(1);
        if e != epoch && tables.len() + 1 < max_tables {
            epoch = e;
            by_bits.clear();
        }
        let mut key = [0u64; MAX_DIMS];
        for (k, (lo, _)) in key.iter_mut().zip(r.bounds) {
            *k = *lo;
        }
        let fits = |t: &Merged| t.tuple.iter().zip(&r.lens).all(|(a, b)| a <= b);
        let tuple = relax(&r.lens, dims);
        let want = key_bits(&tuple);
        let mut best: Option<(usize, u64)> = None;
        for &t in &by_bits {
            let Some(m) = tables.get(t) else { continue };
            if !fits(m) {
                continue;
            }
            let h = hash(&key, &m.masks);
            if m.counts.get(&h).copied().unwrap_or(0) < collision_limit(m.bits) {
                best = Some((t, h));
                break;
            }
        }
        let full = tables.len() + 1 >= max_tables;
        let good = |t: usize| tables.get(t).is_some_and(|m| m.bits * 2 >= want);
        match best {
            Some((t, h)) if full || good(t) => {
                if let Some(m) = tables.get_mut(t) {
                    *m.counts.entry(h).or_default() += 1;
                    m.ids.push(i);
                }
            }
            _ if full => {
                // No table left to open: the fitting table whose bucket for this box is smallest.
                let least = tables
                    .iter_mut()
                    .filter(|t| fits(t))
                    .map(|t| {
                        let h = hash(&key, &t.masks);
                        let c = t.counts.get(&h).copied().unwrap_or(0);
                        (c, h, t)
                    })
                    .min_by_key(|(c, _, _)| *c);
                match least {
                    Some((_, h, t)) => {
                        *t.counts.entry(h).or_default() += 1;
                        t.ids.push(i);
                    }
                    None => wild.push(i),
                }
            }
            _ => {
                let masks = masks_of(&tuple);
                let mut counts = HashMap::new();
                counts.insert(hash(&key, &masks), 1);
                let n = tables.len();
                tables.push(Merged {
                    tuple,
                    masks,
                    bits: want,
                    counts,
                    ids: vec![i],
                });
                let at =
                    by_bits.partition_point(|&t| tables.get(t).is_some_and(|m| m.bits >= want));
                by_bits.insert(at, n);
            }
        }
    }
    let mut out: Vec<([u8; MAX_DIMS], Vec<u32>)> =
        tables.into_iter().map(|t| (t.tuple, t.ids)).collect();
    if !wild.is_empty() {
        out.push(([0; MAX_DIMS], wild));
    }
    out
}

/// Work counters of one lookup; `()` counts nothing (and compiles to nothing).
pub(super) trait Counter {
    /// A candidate table is probed (hash and presence filter).
    fn table(&mut self) {}
    /// The presence filter passed: a slot is read.
    fn slot(&mut self) {}
    /// A box is checked.
    fn boxed(&mut self) {}
}

impl Counter for () {}

/// Counts of [`Counter`] events.
#[cfg(feature = "bench-internals")]
#[derive(Clone, Copy, Debug, Default)]
pub(super) struct ProbeCounts {
    pub(super) tables: usize,
    pub(super) slots: usize,
    pub(super) boxes: usize,
}

#[cfg(feature = "bench-internals")]
impl Counter for ProbeCounts {
    fn table(&mut self) {
        self.tables += 1;
    }
    fn slot(&mut self) {
        self.slots += 1;
    }
    fn boxed(&mut self) {
        self.boxes += 1;
    }
}

/// What one lookup compares boxes against.
struct Query<'a> {
    keys: &'a [u64; MAX_DIMS],
    /// Header bits of required dimensions whose value is absent.
    missing: u64,
    layout: &'a Layout,
    from: u32,
    filters: &'a [Arc<RtFilter>],
    values: &'a [Value],
}

enum Check {
    /// The box's filter matches, at this position.
    Match(u32),
    /// The box cannot improve on the best match (nor can later boxes of its bucket).
    Later,
    /// No match here.
    No,
}

impl Query<'_> {
    #[inline]
    /// Checks box record `rec` (header `head`).
    fn check(&self, head: u64, rec: &[u8], best: u32) -> Check {
        let pos = head as u32;
        if pos >= best {
            return Check::Later;
        }
        if pos < self.from || head & self.missing != 0 {
            return Check::No;
        }
        let inside = self.layout.inside(rec, self.keys);
        if !inside {
            return Check::No;
        }
        // Only the residual groups: the box matched the others exactly.
        let residual = ((head >> HEAD_RESIDUAL_SHIFT) & 0x7FFF) as u16;
        if head & HEAD_VERIFY != 0
            && !self
                .filters
                .get(pos as usize)
                .is_some_and(|f| f.conditions().matches_groups(self.values, residual))
        {
            return Check::No;
        }
        Check::Match(pos)
    }
}
