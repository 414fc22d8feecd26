//! Priority-ordered tuple-space search with per-dimension table pruning.
//!
//! Every box (see [`super::compile`]) has a *tuple*: per dimension, the length of the common
//! prefix of its bounds — all keys inside the box share those leading bits. Boxes with the same
//! tuple (after optional rounding, see [`Params`]) share a *table*: an open-addressing hash table
//! keyed on those leading bits. A bucket holds its boxes in evaluation order with their exact
//! bounds, as compact records next to one another (`store.rs`: a 4-byte slot per bucket, or in
//! unmerged tables the bucket's first record in its slot; a record keeps only the bounds the
//! table's masks do not imply).
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
//!    candidate tables (one 64-table word at a time, computed only when the search reaches it);
//! 2. tables are numbered in order of their best (lowest) filter position, so candidates are
//!    visited in that order and the search stops at the first table that cannot beat the best match
//!    found — the answer is the first matching filter in evaluation order; what this and the
//!    presence probe read of a table (positions, filter place, rotated masks: the keys are
//!    rotated once per lookup, so a table's hash is an AND and an XOR per dimension) is one
//!    cache line per table ([`Hot`]);
//! 3. each table has a small presence filter (a blocked Bloom filter, about 8 bits per bucket,
//!    cache-resident) consulted before its slots, so a candidate without the key rarely costs a
//!    cache miss; when it lets one through, an inline table's probe still ends within about one
//!    home's worth of slots (buckets in home order, displacements in the records: `store.rs`,
//!    `META_DISP`). A box of one exact application id in a table that does not key on it is
//!    entered with the bucket's hash mixed with that id ([`app_mix`]), so the other
//!    applications' boxes of a bucket do not let a lookup through to its slot.
//!
//! Measured on ClassBench sets (see `wfp-bench/benches/classify.rs`): about one slot read per
//! lookup, 40–80 ns at 10k filters and about 65 ns at 92k, with exact tuples (`tuple_step` 1).
//!
//! (Tuple-space search is Srinivasan et al.'s; priority-ordered tables with early termination
//! follow Daly & Torng's TupleMerge/PartitionSort; the pruning sets are the Lakshman–Stiliadis
//! bit-vector scheme applied to tables rather than rules.)

use std::sync::Arc;

use crate::filter::RtFilter;
use crate::value::Value;

use super::compile::{Compiled, Dim, FieldKind, Space, MAX_DIMS};
use super::fast_hash::FastMap;
use super::prune::{MapShape, Prune, MERGED_PRUNE_BITS, PRUNE_BITS};
use super::store::{
    self, slot_entry, Layout, EMPTY, MAX_RECORDS, META_LAST, META_RESIDUAL_SHIFT, META_VERIFY,
};

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

/// The hash of `keys` under a table's `masks`: its home slot, presence bits and (`store.rs`) 8-bit
/// slot tag.
#[inline]
fn hash(keys: &[u64; MAX_DIMS], masks: &[u64; MAX_DIMS]) -> u64 {
    hash_rotated(&rotated(keys), &rotated(masks))
}

/// `words` with each dimension rotated by its [`ROT`].
#[inline]
fn rotated(words: &[u64; MAX_DIMS]) -> [u64; MAX_DIMS] {
    let mut out = [0u64; MAX_DIMS];
    for ((o, w), r) in out.iter_mut().zip(words).zip(ROT) {
        *o = w.rotate_left(r);
    }
    out
}

/// [`hash`] from the keys and masks rotated ([`rotated`]): `(k & m).rotate_left(r)` is
/// `k.rotate_left(r) & m.rotate_left(r)`, so a lookup rotates its keys once and each candidate
/// table ([`Hot::rot_masks`]) costs an AND and an XOR per dimension (vectorised), not a rotation too —
/// hashing the keys once per candidate table was ~8% of a lookup's instructions (issue 15).
/// `masks` may be shorter than the keys (a [`Hot`] entry's first [`HOT_DIMS`]: the other
/// dimensions' masks are 0).
#[inline]
fn hash_rotated(keys: &[u64; MAX_DIMS], masks: &[u64]) -> u64 {
    let mut h = 0u64;
    for (k, m) in keys.iter().zip(masks) {
        h ^= k & m;
    }
    finish(h)
}

/// The mixing steps of [`hash`] after the rotated masked keys are XORed into `h`.
#[inline]
fn finish(mut h: u64) -> u64 {
    h = (h ^ (h >> 32)).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    let t = (h ^ (h >> 29)) >> 32;
    // An odd multiplier: the product's low 32 bits determine `t`, hence the product.
    t.wrapping_mul(0xD6E8_FEB8_6659_FD93)
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

/// The presence hash of a box of exact application key `app` in a bucket of hash `h`, in a table
/// that does not key on the application (issue 15, fallback path): a lookup's presence probe then
/// lets through a bucket only when it holds an application-less box or one of the lookup's own
/// application, so the other applications' boxes of the same addresses and ports cost no slot
/// read.
#[inline]
fn app_mix(h: u64, app: u64) -> u64 {
    let x = (h ^ app.rotate_left(29)).wrapping_mul(0xD6E8_FEB8_6659_FD93);
    x ^ (x >> 31)
}

#[derive(Debug)]
struct Table {
    masks: [u64; MAX_DIMS],
    /// Slots: first slot number in [`TupleIndex::slots`].
    slot_start: usize,
    /// Slots of the table (`slot = home(hash, cap)`, linear probing).
    cap: usize,
    /// Slots in all (inline tables: buckets that probe past the last home slot take slots after
    /// it instead of wrapping around; `cap` otherwise; 32 bits: the table stays as small as
    /// before).
    nslots: u32,
    /// Records: first word in [`TupleIndex::records`].
    rec_start: usize,
    /// The slots are the buckets' first records (`stride` words each, `EMPTY` position when
    /// free; then a link word, the first word of the bucket's other records relative to
    /// `rec_start`, when some bucket has more than one), the other records after them — no
    /// `slots` of the table (see [`fill`]).
    inline: bool,
    stride: u8,
    /// What a record stores (`store.rs`).
    layout: Layout,
}

/// Dimensions whose rotated masks a [`Hot`] entry holds (an IPv4 5-tuple and one more).
const HOT_DIMS: usize = 6;

/// [`Hot::filter_mask`] bit: the table is *by application* — its presence filter also holds,
/// for boxes of one exact application id that the table does not key on, the bucket's hash
/// mixed with that id ([`app_mix`]) instead of the plain hash: a lookup probes both.
const HOT_BY_APP: u32 = 1 << 31;

/// What probing a candidate table reads until its presence filter lets the key through, in one
/// cache line (a `Table` spans several, and the candidate loop read two of them per table; issue
/// 15: about 3.5 candidate tables a lookup are turned away by their presence filter on ipc1_10k).
#[derive(Clone, Copy, Debug)]
#[repr(align(64))]
struct Hot {
    /// Lowest and highest filter position stored in the table.
    min_pos: u32,
    max_pos: u32,
    /// Presence filter: first word in [`TupleIndex::filter_bits`].
    filter_start: u32,
    /// The presence filter's word-index mask, [`HOT_BY_APP`] set when the table is by application.
    filter_mask: u32,
    /// The table's masks of the first [`HOT_DIMS`] dimensions, rotated for [`hash_rotated`].
    rot_masks: [u64; HOT_DIMS],
}

/// The first [`HOT_DIMS`] of `masks`, rotated ([`Hot::rot_masks`]).
fn hot_masks(masks: &[u64; MAX_DIMS]) -> [u64; HOT_DIMS] {
    let mut out = [0u64; HOT_DIMS];
    for (h, m) in out.iter_mut().zip(&rotated(masks)) {
        *h = *m;
    }
    out
}

/// The tuple-space index of one sublayer.
#[derive(Debug)]
pub(super) struct TupleIndex {
    space: Space,
    tables: Vec<Table>,
    /// Per table, what the candidate loop reads first ([`Hot`], a cache line each).
    hot: Vec<Hot>,
    /// The space has more than [`HOT_DIMS`] dimensions: hashes rotate `Table::masks`.
    wide: bool,
    /// Hash slots of all tables (`store.rs`: tag and first record of a bucket, or `EMPTY`).
    slots: Vec<u32>,
    /// Box records of all tables, by table, bucket and evaluation order (`store.rs`).
    records: Vec<u32>,
    /// Presence filters of all tables.
    filter_bits: Vec<u64>,
    /// Pruning maps, for the dimensions where they discriminate.
    prunes: Vec<Prune>,
    /// Words per table set.
    words: usize,
    /// The dimension of application ids (the first blob dimension), if any.
    app_dim: Option<usize>,
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
    pub(super) bytes: usize,
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
    /// The record's meta word (`store.rs`), without the last-of-bucket flag.
    fn meta(&self) -> u32 {
        let mut meta = u32::from(self.required & 0xFF)
            | (u32::from(self.residual & 0x7FFF) << META_RESIDUAL_SHIFT);
        if self.verify {
            meta |= META_VERIFY;
        }
        meta
    }
}

/// A table being built: its masks, and its boxes as (key hash, masked key, box number) sorted —
/// each run of equal hashes and keys is a bucket, its boxes in evaluation order.
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
    /// `None` past [`MAX_RECORDS`] boxes.
    pub(super) fn build(space: Space, compiled: &[Compiled], params: Params) -> Option<Self> {
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
        // A slot numbers records in 24 bits (`store.rs`): a sublayer with more boxes is scanned.
        let nboxes = u32::try_from(refs.len())
            .ok()
            .filter(|&n| n as usize <= MAX_RECORDS)?;

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
            let tuple_of = |r: &BoxRef<'_>| {
                let mut t = r.lens;
                for (l, d) in t.iter_mut().zip(dims) {
                    *l = if blobs || d.kind != FieldKind::Blob {
                        *l - *l % step
                    } else {
                        0
                    };
                }
                t
            };
            // Distinct tuples first, giving up past `max_tables` (hard sets fail every attempt:
            // no per-tuple lists built for nothing).
            let mut group_of: FastMap<[u8; MAX_DIMS], usize> = FastMap::default();
            let mut tuples: Vec<[u8; MAX_DIMS]> = Vec::new();
            let mut of_box: Vec<usize> = Vec::with_capacity(refs.len());
            for r in &refs {
                let t = tuple_of(r);
                let g = *group_of.entry(t).or_insert_with(|| {
                    tuples.push(t);
                    tuples.len() - 1
                });
                if tuples.len() > max_tables {
                    break;
                }
                of_box.push(g);
            }
            if tuples.len() <= max_tables {
                let mut out: Vec<([u8; MAX_DIMS], Vec<u32>)> =
                    tuples.into_iter().map(|t| (t, Vec::new())).collect();
                for (i, g) in (0..nboxes).zip(of_box) {
                    if let Some((_, ids)) = out.get_mut(g) {
                        ids.push(i);
                    }
                }
                groups = Some(out);
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
                let buckets = keyed.chunk_by(|a, b| a.0 == b.0 && a.1 == b.1).count();
                // Load factor about 0.87 (any capacity: `home` maps the hash onto it; the presence
                // filter keeps most absent keys away), and always a free slot: probing for an
                // absent key ends at one.
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

        let Filled {
            tables,
            hot,
            slots,
            records,
            filter_bits,
            table_of,
        } = fill(&planned, &refs, dims, !merged);
        drop(planned);

        let words = tables.len().div_ceil(64).max(1);
        // A small run (a spill of added filters, issue 15 B2) prunes on about twice as many
        // blocks as it has boxes, not on 2^16: its maps cost a few KB to build, not a few
        // hundred (a burst of single adds spills every `MAX_ADDED`).
        let small_bits = (usize::BITS - refs.len().leading_zeros() + 1).clamp(8, PRUNE_BITS);
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
                        MERGED_PRUNE_BITS.min(small_bits)
                    } else {
                        PRUNE_BITS.min(small_bits)
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

        let app_dim = dims.iter().position(|d| d.kind == FieldKind::Blob);
        Some(Self {
            app_dim,
            wide: dims.len() > HOT_DIMS,
            space,
            tables,
            hot,
            slots,
            records,
            filter_bits,
            prunes,
            words,
        })
    }

    /// The indexed dimensions.
    pub(super) fn space(&self) -> &Space {
        &self.space
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
        let q = Query {
            keys: &keys,
            rot_keys: rotated(&keys),
            app: self
                .app_dim
                .filter(|&d| present & (1 << d) != 0)
                .and_then(|d| keys.get(d).copied()),
            missing: (!present & 0xFF) as u32,
            from,
            filters,
            values,
        };
        // The candidate tables: per word of the table sets, the AND of the pruning maps' words
        // for the keys (absent dimensions per `present`), computed only when the search gets
        // there — a match in the first tables ends it before the later words are read.
        let key = |d: usize| (present & (1 << d) != 0).then(|| keys.get(d).copied().unwrap_or(0));
        let mut sets = [0usize; MAX_DIMS];
        for (s, p) in sets.iter_mut().zip(&self.prunes) {
            *s = p.set_start(key(p.dim));
        }
        let mut best = u32::MAX;
        for w in 0..self.words {
            let cand = self
                .prunes
                .iter()
                .zip(&sets)
                .fold(u64::MAX, |c, (p, &s)| c & p.word(s + w));
            if !self.visit(counter, &q, w * 64, cand, &mut best) {
                break;
            }
        }
        (best != u32::MAX).then_some(best as usize)
    }

    /// Probes the candidate tables `base + i` for the bits `i` of `cand`, in order, improving
    /// `best`; `false` once no later table can beat it.
    #[inline(always)]
    fn visit<C: Counter>(
        &self,
        counter: &mut C,
        q: &Query<'_>,
        base: usize,
        mut cand: u64,
        best: &mut u32,
    ) -> bool {
        while cand != 0 {
            let t = base + cand.trailing_zeros() as usize;
            cand &= cand - 1;
            let Some(hot) = self.hot.get(t) else {
                return false;
            };
            if hot.min_pos >= *best {
                return false;
            }
            if hot.max_pos < q.from {
                continue;
            }
            counter.table();
            let h = if self.wide {
                match self.tables.get(t) {
                    Some(table) => hash_rotated(&q.rot_keys, &rotated(&table.masks)),
                    None => return false,
                }
            } else {
                hash_rotated(&q.rot_keys, &hot.rot_masks)
            };
            let filter_mask = (hot.filter_mask & !HOT_BY_APP) as usize;
            let (fw, mask) = filter_probe(h, filter_mask);
            let probe = |fw: usize, mask: u64| {
                self.filter_bits
                    .get(hot.filter_start as usize + fw)
                    .is_some_and(|w| w & mask == mask)
            };
            let maybe = probe(fw, mask)
                || (hot.filter_mask & HOT_BY_APP != 0
                    && q.app.is_some_and(|a| {
                        let (fw, mask) = filter_probe(app_mix(h, a), filter_mask);
                        probe(fw, mask)
                    }));
            if !maybe {
                continue;
            }
            counter.slot();
            let Some(table) = self.tables.get(t) else {
                return false;
            };
            let Some(at) = self.bucket(table, h, q.keys) else {
                continue;
            };
            if let Some(pos) = self.walk(counter, table, at, q, *best) {
                *best = pos;
            }
        }
        true
    }

    /// The first word of the first record of the bucket of `keys` (hash `h`) in `table`, if any.
    #[inline]
    fn bucket(&self, table: &Table, h: u64, keys: &[u64; MAX_DIMS]) -> Option<usize> {
        let words = table.layout.words();
        let mut s = home(h, table.cap);
        if table.inline {
            // Ordered linear probing (`store.rs`, `META_DISP`): no wrap-around, `nslots` past
            // the home range.
            let mut disp = 0u32;
            while s < table.nslots as usize {
                let at = table.rec_start + s * usize::from(table.stride);
                let rec = self.records.get(at..at + words)?;
                let (&pos, &meta) = (rec.first()?, rec.get(1)?);
                let theirs = (meta & store::META_DISP) >> store::META_DISP_SHIFT;
                if pos == EMPTY || theirs < disp {
                    return None;
                }
                if theirs == disp && table.layout.key_eq(&table.masks, rec, keys) {
                    return Some(at);
                }
                s += 1;
                disp = (disp + 1).min(store::MAX_DISP);
            }
            return None;
        }
        let tag = store::tag(h);
        for _ in 0..table.cap {
            let e = *self.slots.get(table.slot_start + s)?;
            if e == EMPTY {
                return None;
            }
            if e >> 24 == tag {
                let at = table.rec_start + (e & 0x00FF_FFFF) as usize * words;
                let rec = self.records.get(at..at + words)?;
                if table.layout.key_eq(&table.masks, rec, keys) {
                    return Some(at);
                }
            }
            s = if s + 1 == table.cap { 0 } else { s + 1 };
        }
        None
    }

    /// The first matching box of the bucket whose first record starts at word `at`, if it beats
    /// `best`.
    #[inline]
    fn walk<C: Counter>(
        &self,
        counter: &mut C,
        table: &Table,
        mut at: usize,
        q: &Query<'_>,
        best: u32,
    ) -> Option<u32> {
        let words = table.layout.words();
        // An inline slot's record: the bucket goes on at its link.
        let mut linked = table.inline;
        loop {
            counter.boxed();
            let rec = self.records.get(at..at + words)?;
            let (&pos, &meta) = (rec.first()?, rec.get(1)?);
            if pos >= best {
                return None;
            }
            if q.check(&table.layout, pos, meta, rec) {
                return Some(pos);
            }
            if meta & META_LAST != 0 {
                return None;
            }
            at = if linked {
                table.rec_start + *self.records.get(at + words)? as usize
            } else {
                at + words
            };
            linked = false;
        }
    }

    #[cfg(any(test, feature = "bench-internals"))]
    pub(super) fn stats(&self) -> Stats {
        let mut buckets = 0;
        let mut boxes = 0;
        let mut max_bucket = 0;
        for (k, t) in self.tables.iter().enumerate() {
            let end = self
                .tables
                .get(k + 1)
                .map_or(self.records.len(), |n| n.rec_start);
            let mut recs = self.records.get(t.rec_start..end).unwrap_or(&[]);
            let mut n = 0;
            if t.inline {
                // Slots: one bucket each (its size counted from the first record alone, the
                // rest of it below without a bucket).
                let stride = usize::from(t.stride);
                let (slots, rest) = recs.split_at((t.nslots as usize * stride).min(recs.len()));
                for rec in slots.chunks_exact(stride) {
                    if rec.first().is_some_and(|&p| p != EMPTY) {
                        boxes += 1;
                        buckets += 1;
                        max_bucket = max_bucket.max(1);
                    }
                }
                recs = rest;
                n = 1;
            }
            for rec in recs.chunks_exact(t.layout.words()) {
                n += 1;
                boxes += 1;
                if rec.get(1).is_some_and(|m| m & META_LAST != 0) {
                    buckets += usize::from(!t.inline);
                    max_bucket = max_bucket.max(n);
                    n = usize::from(t.inline);
                }
            }
        }
        let bytes = self.slots.capacity() * 4
            + self.records.capacity() * 4
            + self.filter_bits.capacity() * 8
            + self.tables.capacity() * std::mem::size_of::<Table>()
            + self.hot.capacity() * std::mem::size_of::<Hot>()
            + self.prunes.iter().map(Prune::bytes).sum::<usize>()
            + self.space.dims.capacity() * std::mem::size_of::<Dim>()
            + self.space.blobs.bytes();
        Stats {
            dims: self.space.dims.len(),
            tables: self.tables.len(),
            boxes,
            buckets,
            max_bucket,
            bytes,
        }
    }
}

/// The tables' storage, filled from their plans.
struct Filled {
    tables: Vec<Table>,
    hot: Vec<Hot>,
    slots: Vec<u32>,
    records: Vec<u32>,
    filter_bits: Vec<u64>,
    /// The table of every box, for the pruning maps.
    table_of: Vec<u32>,
}

/// Lays the planned tables out: per table its presence filter, hash slots and records
/// (`store.rs`), a bucket's records consecutive in evaluation order, the last one flagged. With
/// `inline` (indexes of exact or rounded tuples, the hot path of ClassBench-like sets), a table's
/// slots are its buckets' first records ([`Table::inline`]): a lookup reads its record with the
/// slot, not after it (fw1_100k, measured alternately: see the commit); merged indexes (hard
/// sets, memory-bound) keep 4-byte slots.
fn fill(planned: &[Planned], refs: &[BoxRef<'_>], dims: &[Dim], inline: bool) -> Filled {
    let total_slots: usize = if inline {
        0
    } else {
        planned.iter().map(|p| p.cap).sum()
    };
    let mut out = Filled {
        tables: Vec::with_capacity(planned.len()),
        hot: Vec::with_capacity(planned.len()),
        slots: vec![EMPTY; total_slots],
        records: Vec::new(),
        filter_bits: Vec::new(),
        table_of: vec![0u32; refs.len()],
    };
    let layouts: Vec<Layout> = planned
        .iter()
        .map(|p| {
            let boxes = p
                .keyed
                .iter()
                .filter_map(|&(_, _, i)| refs.get(i as usize).map(|r| r.bounds));
            Layout::of(&p.masks, dims, boxes)
        })
        .collect();
    let words: usize = planned
        .iter()
        .zip(&layouts)
        .map(|(p, l)| {
            let link = usize::from(p.buckets < p.keyed.len());
            match inline {
                true => {
                    inline_slots(p) * (l.words() + link) + (p.keyed.len() - p.buckets) * l.words()
                }
                false => p.keyed.len() * l.words(),
            }
        })
        .sum();
    out.records.reserve_exact(words);
    let mut slot_start = 0usize;
    let app_dim = dims.iter().position(|d| d.kind == FieldKind::Blob);
    for ((t, p), &layout) in (0u32..).zip(planned).zip(&layouts) {
        let rec_start = out.records.len();
        // Application ids the table does not key on go into its presence filter (`app_mix`).
        let app = app_dim.filter(|&d| {
            p.masks.get(d) == Some(&0)
                && p.keyed.iter().any(|&(_, _, i)| {
                    refs.get(i as usize)
                        .is_some_and(|r| exact_app(r, d).is_some())
                })
        });
        let entries = if app.is_some() {
            p.keyed.len()
        } else {
            p.buckets
        };
        let filter_words = (entries * 8).div_ceil(64).next_power_of_two();
        let filter_start = out.filter_bits.len();
        out.filter_bits.resize(filter_start + filter_words, 0);
        // A link word after an inline slot's record when some bucket has more than one.
        let stride = layout.words() + usize::from(inline && p.buckets < p.keyed.len());
        let nslots = if inline { inline_slots(p) } else { p.cap };
        if inline {
            out.records.resize(rec_start + nslots * stride, EMPTY);
        }
        let mut ctx = FillCtx {
            out: &mut out,
            p,
            refs,
            layout,
            t,
            filter_start,
            filter_words,
            slot_start,
            rec_start,
            stride,
            over: Vec::new(),
            nslots,
            next_slot: 0,
            app,
        };
        for bucket in p.keyed.chunk_by(|a, b| a.0 == b.0 && a.1 == b.1) {
            if inline {
                ctx.inline_bucket(bucket);
            } else {
                ctx.slotted_bucket(bucket);
            }
        }
        let over = std::mem::take(&mut ctx.over);
        out.records.extend(over);
        out.hot.push(Hot {
            min_pos: p.min_pos,
            max_pos: p.max_pos,
            filter_start: u32::try_from(filter_start).unwrap_or(u32::MAX),
            filter_mask: u32::try_from(filter_words - 1).unwrap_or(0)
                | if app.is_some() { HOT_BY_APP } else { 0 },
            rot_masks: hot_masks(&p.masks),
        });
        out.tables.push(Table {
            masks: p.masks,
            slot_start,
            cap: p.cap,
            nslots: u32::try_from(nslots).unwrap_or(u32::MAX),
            rec_start,
            inline,
            stride: u8::try_from(stride).unwrap_or(u8::MAX),
            layout,
        });
        if !inline {
            slot_start += p.cap;
        }
    }
    out
}

/// The slots of an inline table of plan `p`: each bucket, in hash (so home) order, takes the
/// first slot at or after its home that the previous one left free, with no wrap-around (ordered
/// linear probing, `store.rs` `META_DISP`): at least `cap`, more when the last buckets run past it.
fn inline_slots(p: &Planned) -> usize {
    let mut next = 0;
    for bucket in p.keyed.chunk_by(|a, b| a.0 == b.0 && a.1 == b.1) {
        if let Some(&(h, _, _)) = bucket.first() {
            next = home(h, p.cap).max(next) + 1;
        }
    }
    next.max(p.cap)
}

/// One table being laid out by [`fill`].
struct FillCtx<'a, 'b> {
    out: &'a mut Filled,
    p: &'a Planned,
    refs: &'a [BoxRef<'b>],
    layout: Layout,
    t: u32,
    filter_start: usize,
    filter_words: usize,
    slot_start: usize,
    rec_start: usize,
    /// Words per slot of an inline table.
    stride: usize,
    /// An inline table's records after the first of their bucket.
    over: Vec<u32>,
    /// An inline table's slots, and the first one not taken yet (buckets are laid out in order).
    nslots: usize,
    next_slot: usize,
    /// The application dimension when the presence filter holds application-mixed hashes.
    app: Option<usize>,
}

/// The key of box `r` on dimension `d` when it requires exactly one value there.
fn exact_app(r: &BoxRef<'_>, d: usize) -> Option<u64> {
    let &(lo, hi) = r.bounds.get(d)?;
    (lo == hi && r.required & (1 << d) != 0).then_some(lo)
}

impl FillCtx<'_, '_> {
    /// Sets the presence bits of a bucket of hash `h`: its plain hash, or for each box of one
    /// exact application id (when the table does not key on it) the hash mixed with that id.
    fn bucket_presence(&mut self, h: u64, bucket: &[(u64, [u64; MAX_DIMS], u32)]) {
        let Some(d) = self.app else {
            self.presence(h);
            return;
        };
        for &(_, _, i) in bucket {
            let app = self.refs.get(i as usize).and_then(|r| exact_app(r, d));
            self.presence(app.map_or(h, |a| app_mix(h, a)));
        }
    }

    /// Sets the presence bits of a bucket of hash `h`.
    fn presence(&mut self, h: u64) {
        let (word, mask) = filter_probe(h, self.filter_words - 1);
        if let Some(w) = self.out.filter_bits.get_mut(self.filter_start + word) {
            *w |= mask;
        }
    }

    /// Appends the record of box `i` (the `k`-th of a bucket of `n`) to `out`.
    fn push(&mut self, into_over: bool, i: u32, k: usize, n: usize) {
        let Some(r) = self.refs.get(i as usize) else {
            return;
        };
        if let Some(slot) = self.out.table_of.get_mut(i as usize) {
            *slot = self.t;
        }
        let last = if k == n { META_LAST } else { 0 };
        let out = if into_over {
            &mut self.over
        } else {
            &mut self.out.records
        };
        self.layout.push(out, r.pos, r.meta() | last, r.bounds);
    }

    /// A bucket of a table of 4-byte slots: its slot, then its records.
    fn slotted_bucket(&mut self, bucket: &[(u64, [u64; MAX_DIMS], u32)]) {
        let Some(&(h, _, _)) = bucket.first() else {
            return;
        };
        self.bucket_presence(h, bucket);
        let cap = self.p.cap;
        let mut s = home(h, cap);
        while self
            .out
            .slots
            .get(self.slot_start + s)
            .is_some_and(|&e| e != EMPTY)
        {
            s = if s + 1 == cap { 0 } else { s + 1 };
        }
        let rec = (self.out.records.len() - self.rec_start) / self.layout.words().max(1);
        if let Some(e) = self.out.slots.get_mut(self.slot_start + s) {
            *e = slot_entry(h, rec);
        }
        for (k, &(_, _, i)) in (1..).zip(bucket) {
            self.push(false, i, k, bucket.len());
        }
    }

    /// A bucket of an inline table: its first record in its slot (with the link to the rest when
    /// the bucket has more), the rest after the slots.
    fn inline_bucket(&mut self, bucket: &[(u64, [u64; MAX_DIMS], u32)]) {
        let Some(&(h, _, first)) = bucket.first() else {
            return;
        };
        self.bucket_presence(h, bucket);
        let (cap, stride) = (self.p.cap, self.stride);
        // Buckets come in hash order, so in home order: the first slot at or past the home that
        // the previous bucket left free (`inline_slots`).
        let s = home(h, cap).max(self.next_slot);
        self.next_slot = s + 1;
        let link = u32::try_from(self.nslots * stride + self.over.len()).unwrap_or(u32::MAX);
        let mut rec = Vec::with_capacity(stride);
        std::mem::swap(&mut rec, &mut self.over);
        self.push(true, first, 1, bucket.len());
        std::mem::swap(&mut rec, &mut self.over);
        if let Some(meta) = rec.get_mut(1) {
            *meta |= store::disp_bits(s - home(h, cap));
        }
        if stride > self.layout.words() {
            rec.push(link);
        }
        let at = self.rec_start + s * stride;
        if let Some(dst) = self.out.records.get_mut(at..at + stride) {
            dst.copy_from_slice(&rec);
        }
        for (k, &(_, _, i)) in (1..).zip(bucket).skip(1) {
            self.push(true, i, k, bucket.len());
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
        counts: FastMap<u64, u32>,
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
                let mut counts = FastMap::default();
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
    /// `keys` rotated for [`hash_rotated`].
    rot_keys: [u64; MAX_DIMS],
    /// The application key, when the index has an application dimension and it is present.
    app: Option<u64>,
    /// Meta bits of required dimensions whose value is absent.
    missing: u32,
    from: u32,
    filters: &'a [Arc<RtFilter>],
    values: &'a [Value],
}

impl Query<'_> {
    /// Whether the box of record `rec` (position `pos`, meta word `meta`; of the bucket of the
    /// keys, in a table of `layout`) matches.
    #[inline]
    fn check(&self, layout: &Layout, pos: u32, meta: u32, rec: &[u32]) -> bool {
        if pos < self.from || meta & self.missing != 0 || !layout.inside(rec, self.keys) {
            return false;
        }
        // Only the residual groups: the box matched the others exactly.
        let residual = ((meta >> META_RESIDUAL_SHIFT) & 0x7FFF) as u16;
        meta & META_VERIFY == 0
            || self
                .filters
                .get(pos as usize)
                .is_some_and(|f| f.conditions().matches_groups(self.values, residual))
    }
}

#[cfg(test)]
mod tests {
    use super::{home, inline_slots, Planned, MAX_DIMS};

    /// Buckets homed at the last slots of an inline table take slots past `cap` instead of
    /// wrapping around to its first ones (ordered linear probing: a lookup stops at the first
    /// resident homed after its key, which a wrapped bucket would break).
    #[test]
    fn inline_buckets_run_past_cap_instead_of_wrapping() {
        let cap = 4;
        let hashes = [0u64, 1, u64::MAX - 2, u64::MAX - 1, u64::MAX];
        let keyed = (0u32..)
            .zip(hashes)
            .map(|(i, h)| (h, [u64::from(i); MAX_DIMS], i))
            .collect();
        let p = Planned {
            masks: [0; MAX_DIMS],
            keyed,
            buckets: hashes.len(),
            cap,
            min_pos: 0,
            max_pos: 4,
        };
        let homes: Vec<usize> = hashes.iter().map(|&h| home(h, cap)).collect();
        assert_eq!(homes, [0, 0, 3, 3, 3]);
        // Slots 0, 1, 3, 4, 5.
        assert_eq!(inline_slots(&p), 6);
        let spread = Planned {
            keyed: p.keyed.iter().take(2).cloned().collect(),
            buckets: 2,
            ..p
        };
        assert_eq!(inline_slots(&spread), cap);
    }
}
