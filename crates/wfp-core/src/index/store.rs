//! The compact records of a tuple table's boxes (issue 15: at most 64 bytes of index per filter).
//!
//! A table's hash slots are one `u32` each (an 8-bit hash tag and the number of the bucket's first
//! record in the table); a bucket's records follow one another in evaluation order, the last one
//! flagged. A record is `[position, meta, stored bounds..]` in `u32` words, and stores only what
//! the table's masks do not already say, per dimension ([`Layout`]):
//!
//! ```text
//!  every box of the table is the aligned block the table's mask selects (IP prefixes, exact
//!  values, wildcards):  mask 0 → nothing; else `lo` (1 word, 2 past 32 bits) — the bucket's key
//!  any other box (port ranges; boxes of merged tables, longer than the table's mask):
//!                       `lo`, `hi - lo` (2 words, 4 past 32 bits)
//! ```
//!
//! A lookup finds its bucket by tag, then confirms it on the first record's key (`key_eq`: the
//! table's masked key equals the record's masked `lo` on every stored dimension); every record of
//! the bucket shares that key, so its boxes are then checked on their range dimensions only
//! (`inside`). At fw1_100k: 24–28 bytes a record, 4.5 a slot, instead of a 64-byte slot holding
//! the first box of its bucket.

use super::compile::{Dim, MAX_DIMS};

/// A free hash slot (never a valid entry: record numbers stay below [`MAX_RECORDS`]).
pub(super) const EMPTY: u32 = u32::MAX;
/// Records per table: a slot holds the first record's number in 24 bits.
pub(super) const MAX_RECORDS: usize = (1 << 24) - 1;

/// Meta word: the required-dimension mask in bits 0..8, the last-record-of-its-bucket flag, the
/// verify flag, the residual-group mask (`Compiled::residual`, 15 bits) in bits 16..31.
pub(super) const META_LAST: u32 = 1 << 8;
pub(super) const META_VERIFY: u32 = 1 << 9;
pub(super) const META_RESIDUAL_SHIFT: u32 = 16;
/// Record words before the bounds: position, meta.
pub(super) const REC_HEAD: usize = 2;

/// The slot entry of record number `rec` with hash `h`.
#[inline]
pub(super) fn slot_entry(h: u64, rec: usize) -> u32 {
    (tag(h) << 24) | (rec as u32 & 0x00FF_FFFF)
}

/// The 8-bit tag of hash `h` (bits the home slot and presence filter hardly use).
#[inline]
pub(super) fn tag(h: u64) -> u32 {
    ((h >> 24) & 0xFF) as u32
}

/// What a table stores of its boxes, per dimension it stores anything of.
#[derive(Clone, Copy, Debug, Default)]
pub(super) struct Layout {
    /// Entries.
    n: u8,
    /// Per entry: the dimension.
    dim: [u8; MAX_DIMS],
    /// Per entry: its first word in a record.
    off: [u8; MAX_DIMS],
    /// Bit `k`: entry `k` stores a range (`lo`, `hi - lo`), else only `lo`.
    range: u8,
    /// Bit `k`: entry `k` is wider than 32 bits (two words per value).
    wide: u8,
    /// Words per record.
    words: u8,
}

impl Layout {
    /// The layout of a table with `masks` over `dims` holding `boxes` (`[lo, hi]` per dimension).
    pub(super) fn of<'a>(
        masks: &[u64; MAX_DIMS],
        dims: &[Dim],
        boxes: impl Iterator<Item = &'a [(u64, u64)]> + Clone,
    ) -> Self {
        let mut l = Self {
            words: REC_HEAD as u8,
            ..Self::default()
        };
        for (d, (dim, &mask)) in dims.iter().zip(masks).enumerate().take(MAX_DIMS) {
            let host = !mask & dim.max();
            let block = boxes.clone().all(|b| {
                b.get(d)
                    .is_some_and(|&(lo, hi)| lo & host == 0 && hi == lo | host)
            });
            if block && mask == 0 {
                continue;
            }
            let k = usize::from(l.n);
            let wide = dim.width > 32;
            let words = (1 + u8::from(!block)) * (1 + u8::from(wide));
            if let (Some(dd), Some(o)) = (l.dim.get_mut(k), l.off.get_mut(k)) {
                *dd = d as u8;
                *o = l.words;
            }
            l.range |= u8::from(!block) << k;
            l.wide |= u8::from(wide) << k;
            l.words += words;
            l.n += 1;
        }
        l
    }

    /// Words per record.
    #[inline]
    pub(super) fn words(&self) -> usize {
        usize::from(self.words)
    }

    /// Appends the record of a box.
    pub(super) fn push(&self, out: &mut Vec<u32>, pos: u32, meta: u32, bounds: &[(u64, u64)]) {
        out.extend([pos, meta]);
        for k in 0..usize::from(self.n) {
            let d = usize::from(self.dim.get(k).copied().unwrap_or(0));
            let (lo, hi) = bounds.get(d).copied().unwrap_or((0, 0));
            let mut values = [lo, hi - lo].into_iter();
            let count = if self.range & (1 << k) != 0 { 2 } else { 1 };
            for v in values.by_ref().take(count) {
                out.push(v as u32);
                if self.wide & (1 << k) != 0 {
                    out.push((v >> 32) as u32);
                }
            }
        }
    }

    /// The value of entry `k` at word offset `o` of `rec` (`lo`, or at `o + width` the span).
    #[inline]
    fn value(rec: &[u32], o: usize, wide: bool) -> u64 {
        let low = u64::from(rec.get(o).copied().unwrap_or(0));
        if wide {
            low | u64::from(rec.get(o + 1).copied().unwrap_or(0)) << 32
        } else {
            low
        }
    }

    /// Whether record `rec` belongs to the bucket of `keys` in a table with `masks`: its masked
    /// `lo` equals the masked key on every stored dimension.
    #[inline]
    pub(super) fn key_eq(
        &self,
        masks: &[u64; MAX_DIMS],
        rec: &[u32],
        keys: &[u64; MAX_DIMS],
    ) -> bool {
        let mut eq = true;
        for k in 0..usize::from(self.n) {
            let d = usize::from(self.dim.get(k).copied().unwrap_or(0));
            let o = usize::from(self.off.get(k).copied().unwrap_or(0));
            let m = masks.get(d).copied().unwrap_or(0);
            let lo = Self::value(rec, o, self.wide & (1 << k) != 0);
            eq &= (keys.get(d).copied().unwrap_or(0) ^ lo) & m == 0;
        }
        eq
    }

    /// Whether the box of record `rec` (of the bucket of `keys`) contains `keys` on its range
    /// dimensions (the others are the bucket's key).
    #[inline]
    pub(super) fn inside(&self, rec: &[u32], keys: &[u64; MAX_DIMS]) -> bool {
        let mut bits = self.range;
        let mut inside = true;
        while bits != 0 {
            let k = bits.trailing_zeros() as usize;
            bits &= bits - 1;
            let d = usize::from(self.dim.get(k).copied().unwrap_or(0));
            let o = usize::from(self.off.get(k).copied().unwrap_or(0));
            let wide = self.wide & (1 << k) != 0;
            let lo = Self::value(rec, o, wide);
            let span = Self::value(rec, o + 1 + usize::from(wide), wide);
            inside &= keys.get(d).copied().unwrap_or(0).wrapping_sub(lo) <= span;
        }
        inside
    }
}
