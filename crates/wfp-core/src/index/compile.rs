//! Compiles filter conditions into exact boxes over the index dimensions.
//!
//! A *dimension* is one 64-bit (or narrower) slice of an incoming value: an integer field is one
//! dimension, an IPv6 address (`FWP_BYTE_ARRAY16_TYPE`) is two (high and low 64 bits). A condition
//! group (a run of same-field conditions, OR-ed) is *indexable* when every condition in it matches
//! exactly a union of intervals of that field's values — and never a value of another type, nor
//! FWP_EMPTY. Such a group becomes a set of boxes; every other group stays *residual* and is checked
//! afterwards by the real matcher ([`crate::condition::ConditionSet::matches`]).
//!
//! Byte blobs (application ids) are keyed through a per-index dictionary ([`Blobs`]): the distinct
//! blobs the conditions name, in byte order, get the odd keys 1, 3, 5, …; an incoming blob gets
//! its member's key, or — when no condition names it — the even key between its neighbours. The
//! keys keep the byte order, so EQUAL, NOT_EQUAL, GREATER… and RANGE groups on a blob field are
//! exact intervals like any other: no candidate goes to the full matcher for them (issue 15,
//! fallback path: the application id is a pre-decoded dimension, not a residual scan).
//!
//! Invariant (what makes the index exact): for a compiled filter `f` and any incoming values `v`,
//! `f.conditions().matches(v)` ⇔ ∃ box `b` of `f`: every required dimension of `v` is present and
//! inside `b`, and (when `f` has residual groups) the full matcher accepts `v`.

use std::collections::BTreeMap;
use std::sync::Arc;

use crate::catalogue::LayerDef;
use crate::condition::{Condition, MatchType};
use crate::filter::RtFilter;
use crate::value::{ConditionValue, DataType, Value};

/// At most this many dimensions are indexed per sublayer (an IPv6 address takes two).
pub(super) const MAX_DIMS: usize = 8;

/// At most this many boxes per filter; beyond it the widest OR groups become residual.
const MAX_BOXES_PER_FILTER: usize = 16;

/// How a field's values map to ordered unsigned keys.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum FieldKind {
    U8,
    U16,
    U32,
    U64,
    I8,
    I16,
    I32,
    I64,
    Mac,
    V6,
    /// FWP_BYTE_BLOB_TYPE (application ids): keyed through the index's [`Blobs`] dictionary (32
    /// bits; the bytes' order is kept).
    Blob,
}

/// A 64-bit hash of a byte blob (no per-process seed): its length and at most four 8-byte words —
/// the first, the middle and the last two — so a lookup hashes an application path in a few
/// multiplies whatever its length (issue 15, fallback path; the chunked hash over every word
/// took a good part of a lookup). Blobs sharing those words only share a hash: members are
/// still compared byte for byte ([`Blobs::member`]).
#[inline]
fn blob_hash(b: &[u8]) -> u64 {
    let n = b.len();
    let word = |at: usize| {
        b.get(at..at + 8)
            .and_then(|s| <[u8; 8]>::try_from(s).ok())
            .map_or(0, u64::from_le_bytes)
    };
    let words = if n >= 8 {
        [
            word(0),
            word(n / 2 - 4),
            word(n.saturating_sub(16)),
            word(n - 8),
        ]
    } else {
        let mut w = [0u8; 8];
        if let Some(dst) = w.get_mut(..n) {
            dst.copy_from_slice(b);
        }
        [u64::from_le_bytes(w), 0, 0, 0]
    };
    let mut h = 0x9E37_79B9_7F4A_7C15u64 ^ n as u64;
    for w in words {
        h = (h ^ w).wrapping_mul(0xFF51_AFD7_ED55_8CCD);
        h ^= h >> 32;
    }
    h
}

/// The byte blobs an index's conditions name, interned in byte order (issue 15, fallback path):
/// member `i` (0-based, sorted) has key `2i + 1`; a blob no condition names has key `2r`, `r` the
/// number of members below it. So `a < b` ⇔ `key(a) < key(b)` whenever one of them is a member,
/// and `key(a) == key(m)` ⇔ `a == m` for a member `m`: intervals between member keys are exact.
#[derive(Debug, Default)]
pub(super) struct Blobs {
    /// Distinct member blobs, sorted.
    sorted: Vec<Arc<[u8]>>,
    /// Open addressing on [`blob_hash`]: (hash, member key); key 0 marks a free slot. Length a
    /// power of two, at least twice the members.
    slots: Vec<(u64, u32)>,
}

impl Blobs {
    /// The dictionary of `all` (any order, repeats allowed); members past 2^31 are dropped (their
    /// conditions then stay residual).
    fn new(mut all: Vec<Arc<[u8]>>) -> Self {
        all.sort_unstable();
        all.dedup();
        all.truncate(1 << 30);
        if all.is_empty() {
            return Self::default();
        }
        let cap = (all.len() * 2).next_power_of_two();
        let mut slots = vec![(0u64, 0u32); cap];
        for (i, b) in (0u32..).zip(&all) {
            let h = blob_hash(b);
            let mut s = (h as usize) & (cap - 1);
            while slots.get(s).is_some_and(|e| e.1 != 0) {
                s = (s + 1) & (cap - 1);
            }
            if let Some(e) = slots.get_mut(s) {
                *e = (h, 2 * i + 1);
            }
        }
        Self { sorted: all, slots }
    }

    /// The key of member `b`; `None` when no condition of the index names it.
    #[inline]
    fn member(&self, b: &[u8]) -> Option<u32> {
        let mask = self.slots.len().checked_sub(1)?;
        let h = blob_hash(b);
        let mut s = (h as usize) & mask;
        loop {
            let &(eh, key) = self.slots.get(s)?;
            if key == 0 {
                return None;
            }
            if eh == h
                && self
                    .sorted
                    .get((key / 2) as usize)
                    .is_some_and(|m| **m == *b)
            {
                return Some(key);
            }
            s = (s + 1) & mask;
        }
    }

    /// The key of any incoming blob.
    #[inline]
    fn key(&self, b: &[u8]) -> u32 {
        self.member(b).unwrap_or_else(|| {
            let r = self.sorted.partition_point(|m| **m < *b);
            u32::try_from(2 * r).unwrap_or(u32::MAX)
        })
    }

    /// Approximate heap bytes.
    #[cfg(any(test, feature = "bench-internals"))]
    pub(super) fn bytes(&self) -> usize {
        self.sorted.capacity() * 16 + self.slots.capacity() * 16
    }
}

/// An index's key space: its dimensions and the blob dictionary they key through.
#[derive(Debug, Default)]
pub(super) struct Space {
    pub(super) dims: Vec<Dim>,
    /// Boxed: most indexes name no blob, and the index stays small next to `Inner::Scan`.
    pub(super) blobs: Box<Blobs>,
}

impl Space {
    /// The key of every dimension for the incoming values, and the mask of those present.
    #[inline]
    pub(super) fn keys(&self, values: &[Value]) -> ([u64; MAX_DIMS], u16) {
        let mut keys = [0u64; MAX_DIMS];
        let mut present = 0u16;
        for ((k, dim), d) in keys.iter_mut().zip(&self.dims).zip(0..) {
            let v = if dim.kind == FieldKind::Blob {
                match values.get(dim.field) {
                    Some(Value::ByteBlob(b)) => Some(u64::from(self.blobs.key(b))),
                    _ => None,
                }
            } else {
                dim.extract(values)
            };
            if let Some(v) = v {
                *k = v;
                present |= 1 << d;
            }
        }
        (keys, present)
    }
}

impl FieldKind {
    /// The kinds the index can key on; other types (strings, blobs, tokens, floats) are residual.
    pub(super) fn of(t: DataType) -> Option<Self> {
        Some(match t {
            DataType::Uint8 => Self::U8,
            DataType::Uint16 => Self::U16,
            DataType::Uint32 => Self::U32,
            DataType::Uint64 => Self::U64,
            DataType::Int8 => Self::I8,
            DataType::Int16 => Self::I16,
            DataType::Int32 => Self::I32,
            DataType::Int64 => Self::I64,
            DataType::ByteArray6 => Self::Mac,
            DataType::ByteArray16 => Self::V6,
            DataType::ByteBlob => Self::Blob,
            _ => return None,
        })
    }

    /// Bits of the whole key.
    fn width(self) -> u32 {
        match self {
            Self::U8 | Self::I8 => 8,
            Self::U16 | Self::I16 => 16,
            Self::U32 | Self::I32 | Self::Blob => 32,
            Self::U64 | Self::I64 => 64,
            Self::Mac => 48,
            Self::V6 => 128,
        }
    }

    fn max(self) -> u128 {
        match self.width() {
            128 => u128::MAX,
            w => (1u128 << w) - 1,
        }
    }

    fn dims(self) -> usize {
        if self == Self::V6 {
            2
        } else {
            1
        }
    }

    /// The order-preserving key of `v`, only when `v` has exactly this kind's type (WFP never
    /// converts between types, so a value of any other type matches no indexable condition);
    /// `None` for blobs, which are keyed through a dictionary ([`Blobs`]).
    pub(super) fn key(self, v: &Value) -> Option<u128> {
        Some(match (self, v) {
            (Self::U8, Value::Uint8(x)) => u128::from(*x),
            (Self::U16, Value::Uint16(x)) => u128::from(*x),
            (Self::U32, Value::Uint32(x)) => u128::from(*x),
            (Self::U64, Value::Uint64(x)) => u128::from(*x),
            (Self::I8, Value::Int8(x)) => u128::from(x.to_ne_bytes()[0] ^ 0x80),
            (Self::I16, Value::Int16(x)) => {
                u128::from(u16::from_ne_bytes(x.to_ne_bytes()) ^ 0x8000)
            }
            (Self::I32, Value::Int32(x)) => {
                u128::from(u32::from_ne_bytes(x.to_ne_bytes()) ^ 0x8000_0000)
            }
            (Self::I64, Value::Int64(x)) => {
                u128::from(u64::from_ne_bytes(x.to_ne_bytes()) ^ 0x8000_0000_0000_0000)
            }
            (Self::Mac, Value::ByteArray6(m)) => {
                m.iter().fold(0u128, |a, b| (a << 8) | u128::from(*b))
            }
            (Self::V6, Value::ByteArray16(b)) => u128::from_be_bytes(*b),
            _ => return None,
        })
    }
}

/// Which part of a field a dimension reads.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Part {
    Whole,
    High,
    Low,
}

/// One indexed dimension.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct Dim {
    /// Index into the incoming values.
    pub(super) field: usize,
    pub(super) kind: FieldKind,
    pub(super) part: Part,
    /// Bits of this dimension's key (≤ 64).
    pub(super) width: u32,
}

impl Dim {
    /// This dimension's key for the incoming values; `None` when the value is missing or of
    /// another type (FWP_EMPTY included).
    #[inline]
    pub(super) fn extract(&self, values: &[Value]) -> Option<u64> {
        let v = values.get(self.field)?;
        // The common cases first, without going through u128.
        match (self.kind, v) {
            (FieldKind::U32, Value::Uint32(x)) => return Some(u64::from(*x)),
            (FieldKind::U16, Value::Uint16(x)) => return Some(u64::from(*x)),
            (FieldKind::U8, Value::Uint8(x)) => return Some(u64::from(*x)),
            (FieldKind::U64, Value::Uint64(x)) => return Some(*x),
            _ => {}
        }
        let k = self.kind.key(v)?;
        Some(split(k, self.part))
    }

    /// The largest key of this dimension.
    pub(super) fn max(&self) -> u64 {
        if self.width >= 64 {
            u64::MAX
        } else {
            (1u64 << self.width) - 1
        }
    }
}

fn split(k: u128, part: Part) -> u64 {
    let [hi, lo] = [(k >> 64) as u64, k as u64];
    match part {
        Part::Whole | Part::Low => lo,
        Part::High => hi,
    }
}

/// Picks the dimensions for a sublayer: the fields most often constrained by an indexable group,
/// until [`MAX_DIMS`] dimensions are used.
#[cfg(test)]
pub(super) fn choose_dims(layer: &LayerDef, filters: &[std::sync::Arc<RtFilter>]) -> Vec<Dim> {
    let blobs = blob_dictionary(layer, filters);
    let mut counts: BTreeMap<usize, usize> = BTreeMap::new();
    for f in filters {
        for field in indexable_fields(layer, f, &blobs) {
            *counts.entry(field).or_default() += 1;
        }
    }
    dims_from_counts(layer, counts)
}

/// The fields one filter constrains with an indexable group (each once): its votes in
/// [`dims_from_counts`].
pub(super) fn indexable_fields(layer: &LayerDef, filter: &RtFilter, blobs: &Blobs) -> Vec<usize> {
    let conds = filter.conditions().conditions();
    let mut seen: Vec<usize> = Vec::new();
    for g in groups(conds) {
        let Some(first) = g.first() else { continue };
        let field = usize::from(first.field_index);
        if seen.contains(&field) {
            continue;
        }
        let Some(kind) = layer
            .fields
            .get(field)
            .and_then(|fd| FieldKind::of(fd.data_type))
        else {
            continue;
        };
        if g.iter().all(|c| intervals(c, kind, blobs).is_some()) {
            seen.push(field);
        }
    }
    seen
}

/// The dimensions for per-field vote counts (filters constraining the field with an indexable
/// group): most votes first, ties to the lower field, until [`MAX_DIMS`] dimensions are used.
pub(super) fn dims_from_counts(layer: &LayerDef, counts: BTreeMap<usize, usize>) -> Vec<Dim> {
    let mut ranked: Vec<(usize, usize)> = counts.into_iter().collect();
    ranked.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
    let mut dims = Vec::new();
    for (field, _) in ranked {
        let Some(kind) = layer
            .fields
            .get(field)
            .and_then(|fd| FieldKind::of(fd.data_type))
        else {
            continue;
        };
        if dims.len() + kind.dims() > MAX_DIMS {
            continue;
        }
        if kind == FieldKind::V6 {
            for part in [Part::High, Part::Low] {
                dims.push(Dim {
                    field,
                    kind,
                    part,
                    width: 64,
                });
            }
        } else {
            dims.push(Dim {
                field,
                kind,
                part: Part::Whole,
                width: kind.width(),
            });
        }
    }
    dims
}

/// The dimensions for `filters` (the fields most often constrained by an indexable group) and every
/// filter's boxes over them, in order; `None` when no field is indexable. Nothing of it is kept
/// once the tuple index is built (issue 15: at most 64 bytes of index per filter), so a later
/// build compiles again.
pub(super) fn compile_all(
    layer: &LayerDef,
    filters: &[std::sync::Arc<RtFilter>],
) -> Option<(Space, Vec<Compiled>)> {
    let blobs = blob_dictionary(layer, filters);
    let mut counts: BTreeMap<usize, usize> = BTreeMap::new();
    for f in filters {
        for field in indexable_fields(layer, f, &blobs) {
            *counts.entry(field).or_default() += 1;
        }
    }
    let dims = dims_from_counts(layer, counts);
    if dims.is_empty() {
        return None;
    }
    let space = Space {
        dims,
        blobs: Box::new(blobs),
    };
    let compiled = filters
        .iter()
        .map(|f| compile(&space, f.conditions().conditions()))
        .collect();
    Some((space, compiled))
}

/// The dictionary of every blob the conditions of `filters` name on blob-typed fields.
fn blob_dictionary(layer: &LayerDef, filters: &[std::sync::Arc<RtFilter>]) -> Blobs {
    let mut all: Vec<Arc<[u8]>> = Vec::new();
    for f in filters {
        for c in f.conditions().conditions() {
            let is_blob = layer
                .fields
                .get(usize::from(c.field_index))
                .is_some_and(|fd| fd.data_type == DataType::ByteBlob);
            if !is_blob {
                continue;
            }
            match &c.value {
                ConditionValue::Value(Value::ByteBlob(b)) => all.push(Arc::clone(b)),
                ConditionValue::Range(Value::ByteBlob(lo), Value::ByteBlob(hi)) => {
                    all.extend([Arc::clone(lo), Arc::clone(hi)]);
                }
                _ => {}
            }
        }
    }
    Blobs::new(all)
}

/// A filter reduced to boxes over the dimensions.
#[derive(Debug)]
pub(super) struct Compiled {
    /// Inclusive `[lo, hi]` per dimension, `dims.len()` pairs per box; empty when the filter can
    /// never match.
    pub(super) boxes: Vec<(u64, u64)>,
    /// Dimensions whose incoming value must be present (of the field's type).
    pub(super) required: u16,
    /// Some group is residual: candidates must be confirmed by the full matcher.
    pub(super) verify: bool,
    /// The residual groups (bit `i`: group `i`; groups from 15 on are always checked), for
    /// `ConditionSet::matches_groups`.
    pub(super) residual: u16,
}

/// One constrained field's boxes over its one or two dimensions: inline up to [`INLINE_BOXES`]
/// (a group of one condition: one interval or a complement's two; an IPv6 prefix is one box), on
/// the heap past that (wide OR groups, IPv6 ranges and complements).
#[derive(Debug)]
struct FieldBoxes {
    inline: [[(u64, u64); 2]; INLINE_BOXES],
    n: usize,
    heap: Vec<[(u64, u64); 2]>,
}

const INLINE_BOXES: usize = 2;

impl FieldBoxes {
    fn new() -> Self {
        Self {
            inline: [[(0, 0); 2]; INLINE_BOXES],
            n: 0,
            heap: Vec::new(),
        }
    }

    fn push(&mut self, b: [(u64, u64); 2]) {
        if self.heap.is_empty() {
            if let Some(slot) = self.inline.get_mut(self.n) {
                *slot = b;
                self.n += 1;
                return;
            }
            self.heap.extend_from_slice(&self.inline);
        }
        self.heap.push(b);
    }

    fn as_slice(&self) -> &[[(u64, u64); 2]] {
        if self.heap.is_empty() {
            self.inline.get(..self.n).unwrap_or(&[])
        } else {
            &self.heap
        }
    }
}

/// A constrained field in [`compile`]: its first dimension, its group, its boxes.
type Field = (usize, usize, FieldBoxes);

/// Compiles one filter's conditions against `space` (a blob its dictionary lacks leaves its group
/// residual). Allocates only the result (issue 15, B2: a dozen small vectors per filter were
/// about 3,000 instructions of every added filter and of every filter a spill or build compiles).
pub(super) fn compile(space: &Space, conditions: &[Condition]) -> Compiled {
    let dims = space.dims.as_slice();
    // Group `gi` becomes residual: the candidates' check must cover it.
    let mut residual = 0u16;
    let mut mark = |gi: usize| {
        residual |= if gi < 15 { 1 << gi } else { 0 };
    };
    // Each field of an indexable group has its own dimensions, and a field has one such group:
    // at most MAX_DIMS of either.
    let mut fields: [Option<Field>; MAX_DIMS] = [const { None }; MAX_DIMS];
    let mut nfields = 0usize;
    let mut done = [usize::MAX; MAX_DIMS];
    let mut ndone = 0usize;
    let mut any_residual = false;
    for (gi, g) in groups(conditions).enumerate() {
        let Some(first) = g.first() else { continue };
        let field = usize::from(first.field_index);
        let Some(d0) = dims.iter().position(|d| d.field == field) else {
            mark(gi);
            any_residual = true;
            continue;
        };
        if done.iter().take(ndone).any(|&f| f == field) {
            // A second group on the same field (non-consecutive conditions): AND-ed, residual.
            mark(gi);
            any_residual = true;
            continue;
        }
        let kind = dims.get(d0).map_or(FieldKind::U8, |d| d.kind);
        // Filled in place (no copy of the inline boxes).
        let Some(slot) = fields.get_mut(nfields) else {
            mark(gi);
            any_residual = true;
            continue;
        };
        let (_, _, boxes) = slot.insert((d0, gi, FieldBoxes::new()));
        if group_boxes(g, kind, &space.blobs, boxes).is_none() {
            *slot = None;
            mark(gi);
            any_residual = true;
            continue;
        }
        if boxes.as_slice().is_empty() {
            // An indexable group that no value satisfies: the filter never matches.
            return Compiled {
                boxes: Vec::new(),
                required: 0,
                verify: false,
                residual: 0,
            };
        }
        nfields += 1;
        if let Some(slot) = done.get_mut(ndone) {
            *slot = field;
            ndone += 1;
        }
    }
    let fields = fields.get_mut(..nfields).unwrap_or(&mut []);
    // Bound the cross product: the widest OR groups become residual.
    let product = loop {
        let product = fields
            .iter()
            .flatten()
            .try_fold(1usize, |acc, (_, _, b)| acc.checked_mul(b.as_slice().len()))
            .unwrap_or(usize::MAX);
        if product <= MAX_BOXES_PER_FILTER {
            break product;
        }
        let widest = fields
            .iter_mut()
            .filter(|f| f.is_some())
            .max_by_key(|f| f.as_ref().map_or(0, |(_, _, b)| b.as_slice().len()));
        match widest.and_then(Option::take) {
            Some((_, gi, _)) => {
                mark(gi);
                any_residual = true;
            }
            None => break 1,
        }
    };
    let mut required = 0u16;
    for (d0, _, _) in fields.iter().flatten() {
        let n = dims.get(*d0).map_or(1, |d| d.kind.dims());
        for k in 0..n {
            required |= 1 << (d0 + k);
        }
    }
    // Box `b` of the cross product takes, per field, box `digit` of the field's boxes, the last
    // field's digit varying fastest.
    let mut out = Vec::with_capacity(product * dims.len());
    for b in 0..product {
        let mut bx = [(0u64, 0u64); MAX_DIMS];
        for (slot, d) in bx.iter_mut().zip(dims) {
            *slot = (0, d.max());
        }
        let mut rest = b;
        for (d0, _, fboxes) in fields.iter().rev().flatten() {
            let fb = fboxes.as_slice();
            let len = fb.len().max(1);
            let Some(pick) = fb.get(rest % len) else {
                continue;
            };
            rest /= len;
            let n = dims.get(*d0).map_or(1, |d| d.kind.dims());
            for (k, iv) in pick.iter().take(n).enumerate() {
                if let Some(slot) = bx.get_mut(d0 + k) {
                    *slot = *iv;
                }
            }
        }
        out.extend(bx.iter().take(dims.len()).copied());
    }
    Compiled {
        boxes: out,
        required,
        verify: any_residual,
        residual,
    }
}

/// The boxes of an OR group of conditions on a field of `kind`; `None` when some condition is not
/// exactly an interval set. A group of one condition needs no allocation.
fn group_boxes(
    g: &[Condition],
    kind: FieldKind,
    blobs: &Blobs,
    out: &mut FieldBoxes,
) -> Option<()> {
    let mut push = |lo: u128, hi: u128| {
        if kind == FieldKind::V6 {
            v6_boxes(lo, hi, out);
        } else {
            out.push([(lo as u64, hi as u64), (0, 0)]);
        }
    };
    if let [c] = g {
        // One condition's intervals are already sorted, disjoint and non-adjacent.
        for &(lo, hi) in intervals(c, kind, blobs)?.as_slice() {
            push(lo, hi);
        }
    } else {
        let mut set: Vec<(u128, u128)> = Vec::new();
        for c in g {
            set.extend_from_slice(intervals(c, kind, blobs)?.as_slice());
        }
        for (lo, hi) in merge(set) {
            push(lo, hi);
        }
    }
    Some(())
}

/// The groups of a condition list: runs of consecutive conditions on the same field (the same
/// rule as [`crate::condition::ConditionSet::new`]).
pub(super) fn groups(conditions: &[Condition]) -> impl Iterator<Item = &[Condition]> {
    conditions.chunk_by(|a, b| a.field_index == b.field_index)
}

/// The exact set of `t`-typed values one OR group of conditions accepts, as sorted, disjoint
/// inclusive intervals over order-preserving keys; `None` when the type has no key order here or
/// some condition is not exactly an interval set. Enumeration templates compare filters with it
/// (§11.4 `FWP_FILTER_ENUM_TYPE`, `engine/enum_match.rs`).
pub(crate) fn group_intervals(group: &[Condition], t: DataType) -> Option<Vec<(u128, u128)>> {
    let kind = FieldKind::of(t)?;
    if kind == FieldKind::Blob {
        // Keys of blobs are only ordered within one index's dictionary.
        return None;
    }
    let mut all = Vec::new();
    for c in group {
        all.extend_from_slice(intervals(c, kind, &Blobs::default())?.as_slice());
    }
    Some(merge(all))
}

/// The exact set of `kind`-typed keys a condition accepts, as inclusive intervals; `None` when the
/// condition is not exactly an interval set over typed values (it then stays residual).
fn intervals(c: &Condition, kind: FieldKind, blobs: &Blobs) -> Option<Ivs> {
    // Blobs through the dictionary: only members have exact keys (see [`Blobs`]).
    let key = |v: &Value| match (kind, v) {
        (FieldKind::Blob, Value::ByteBlob(b)) => blobs.member(b).map(u128::from),
        (FieldKind::Blob, _) => None,
        _ => kind.key(v),
    };
    let max = kind.max();
    let complement = |lo: u128, hi: u128| -> Ivs {
        let mut out = Ivs::default();
        if lo > 0 {
            out.push(0, lo - 1);
        }
        if hi < max {
            out.push(hi + 1, max);
        }
        out
    };
    let one = |lo: u128, hi: u128| {
        let mut out = Ivs::default();
        out.push(lo, hi);
        out
    };
    match &c.value {
        ConditionValue::Value(v) => {
            let k = key(v)?;
            Some(match c.match_type {
                MatchType::Equal => one(k, k),
                MatchType::NotEqual => complement(k, k),
                MatchType::Greater => {
                    if k < max {
                        one(k + 1, max)
                    } else {
                        Ivs::default()
                    }
                }
                MatchType::GreaterOrEqual => one(k, max),
                MatchType::Less => {
                    if k > 0 {
                        one(0, k - 1)
                    } else {
                        Ivs::default()
                    }
                }
                MatchType::LessOrEqual => one(0, k),
                _ => return None,
            })
        }
        ConditionValue::Range(lo, hi) => {
            if c.match_type != MatchType::Range {
                return None;
            }
            let (lo, hi) = (key(lo)?, key(hi)?);
            Some(if lo <= hi {
                one(lo, hi)
            } else {
                Ivs::default()
            })
        }
        ConditionValue::V4AddrMask { addr, mask } => {
            if kind != FieldKind::U32 || mask.leading_ones() + mask.trailing_zeros() != 32 {
                return None;
            }
            let lo = u128::from(addr & mask);
            let hi = u128::from((addr & mask) | !mask);
            Some(match c.match_type {
                MatchType::NotEqual => complement(lo, hi),
                _ => one(lo, hi),
            })
        }
        ConditionValue::V6AddrMask { addr, prefix_len } => {
            if kind != FieldKind::V6 {
                return None;
            }
            let len = u32::from((*prefix_len).min(128));
            let host = u128::MAX.checked_shr(len).unwrap_or(0);
            let a = u128::from_be_bytes(*addr);
            let (lo, hi) = (a & !host, a | host);
            Some(match c.match_type {
                MatchType::NotEqual => complement(lo, hi),
                _ => one(lo, hi),
            })
        }
    }
}

/// The keys one condition accepts: at most two intervals (one, or a complement's two), sorted,
/// disjoint and non-adjacent — kept inline (issue 15, B2: no allocation per condition).
#[derive(Clone, Copy, Debug, Default)]
struct Ivs {
    iv: [(u128, u128); 2],
    n: usize,
}

impl Ivs {
    fn push(&mut self, lo: u128, hi: u128) {
        if let Some(slot) = self.iv.get_mut(self.n) {
            *slot = (lo, hi);
            self.n += 1;
        }
    }

    fn as_slice(&self) -> &[(u128, u128)] {
        self.iv.get(..self.n).unwrap_or(&[])
    }
}

/// Sorted, disjoint, non-adjacent intervals.
fn merge(mut set: Vec<(u128, u128)>) -> Vec<(u128, u128)> {
    // In place: most groups are one interval (issue 15, B2: allocations were a quarter of a
    // 1,000-filter build).
    set.sort_unstable();
    let mut n = 0usize;
    for i in 0..set.len() {
        let Some(&(lo, hi)) = set.get(i) else { break };
        match n.checked_sub(1).and_then(|l| set.get_mut(l)) {
            Some(last) if lo <= last.1.saturating_add(1) => last.1 = last.1.max(hi),
            _ => {
                if let Some(slot) = set.get_mut(n) {
                    *slot = (lo, hi);
                }
                n += 1;
            }
        }
    }
    set.truncate(n);
    set
}

/// A 128-bit interval as at most three boxes over (high 64 bits, low 64 bits), pushed to `out`.
fn v6_boxes(lo: u128, hi: u128, out: &mut FieldBoxes) {
    let (lh, ll) = ((lo >> 64) as u64, lo as u64);
    let (hh, hl) = ((hi >> 64) as u64, hi as u64);
    if lh == hh {
        out.push([(lh, lh), (ll, hl)]);
        return;
    }
    if ll == 0 {
        // The first high value is covered completely: fold it into the middle run.
        if hl == u64::MAX {
            out.push([(lh, hh), (0, u64::MAX)]);
            return;
        }
        out.push([(lh, hh - 1), (0, u64::MAX)]);
        out.push([(hh, hh), (0, hl)]);
        return;
    }
    out.push([(lh, lh), (ll, u64::MAX)]);
    if hl == u64::MAX {
        out.push([(lh + 1, hh), (0, u64::MAX)]);
        return;
    }
    if lh + 1 < hh {
        out.push([(lh + 1, hh - 1), (0, u64::MAX)]);
    }
    out.push([(hh, hh), (0, hl)]);
}
