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
//! table's masked key equals the record's masked `lo` on every dimension the table keys on);
//! every record of
//! the bucket shares that key, so its boxes are then checked on their range dimensions only
//! (`inside`), through readers that take no branch on the entry's kind (`Narrow`). At fw1_100k:
//! 8–36 bytes a record (about 20 on average) and 4.5 of slots per bucket, instead of a 64-byte
//! slot holding the first box of its bucket. (The presence filter in front of the slots stays:
//! without it, ipc1_10k and the fallback sets, whose lookups probe several tables lacking the key,
//! were measured about 1.5x slower.)
//!
//! Tables of exact or rounded tuples (not merged) store *inline* (`tuple.rs`, `fill`): their slots
//! are the buckets' first records (a free slot's position word `EMPTY`), plus a link word to the
//! bucket's other records when some bucket has more than one. A lookup then reads its record with
//! its slot rather than one dependent load later (fw1_100k about 210 -> 110 ns, 51.0 bytes/filter);
//! merged indexes (hard sets, where memory is tight) keep the 4-byte slots.

use super::compile::{Dim, MAX_DIMS};

/// A free hash slot (never a valid entry: record numbers stay below [`MAX_RECORDS`]).
pub(super) const EMPTY: u32 = u32::MAX;
/// Records per table: a slot holds the first record's number in 24 bits.
pub(super) const MAX_RECORDS: usize = (1 << 24) - 1;

/// Meta word: the required-dimension mask in bits 0..8, the last-record-of-its-bucket flag, the
/// verify flag, in an inline table's slot record its displacement ([`META_DISP_SHIFT`]), the
/// residual-group mask (`Compiled::residual`, 15 bits) in bits 16..31.
pub(super) const META_LAST: u32 = 1 << 8;
pub(super) const META_VERIFY: u32 = 1 << 9;
/// An inline slot record's distance from its home slot in bits 10..16, saturated at
/// [`MAX_DISP`]. Buckets are laid out in home order (ordered linear probing, as Robin Hood
/// hashing leaves them), so a probe compares keys only with residents of its own home (equal
/// displacement) and stops at the first resident homed after it (smaller displacement): a
/// probe for an absent key (a presence-filter false positive) reads about as many slots as one
/// for a present key, instead of the whole cluster (load about 0.89: ~40 slots; ipc1_10k read
/// ~10 slots and compared ~10 keys per lookup).
pub(super) const META_DISP_SHIFT: u32 = 10;
pub(super) const META_DISP: u32 = 0x3F << META_DISP_SHIFT;
pub(super) const MAX_DISP: u32 = 0x3F;
pub(super) const META_RESIDUAL_SHIFT: u32 = 16;
/// Record words before the bounds: position, meta.
pub(super) const REC_HEAD: usize = 2;

/// The slot entry of record number `rec` with hash `h`.
#[inline]
pub(super) fn slot_entry(h: u64, rec: usize) -> u32 {
    (tag(h) << 24) | (rec as u32 & 0x00FF_FFFF)
}

/// The 8-bit tag of hash `h` (bits the home slot and the presence filter hardly use).
#[inline]
pub(super) fn tag(h: u64) -> u32 {
    ((h >> 24) & 0xFF) as u32
}

/// The meta bits of an inline slot record `disp` slots past its home.
#[inline]
pub(super) fn disp_bits(disp: usize) -> u32 {
    (disp.min(MAX_DISP as usize) as u32) << META_DISP_SHIFT
}

/// How a record stores one dimension of its box.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
enum Kind {
    /// Every box of the table is the aligned block the table's mask selects: `lo` (the bucket's
    /// key), 1 word.
    #[default]
    Key32,
    /// The same past 32 bits: 2 words.
    Key64,
    /// An aligned block at least as long as the table's mask (IP prefixes in merged tables): `lo`,
    /// 1 word, its prefix length a byte of the record's bytes word.
    Block32,
    /// Any interval of a dimension at most 8 bits wide (protocols): `lo`, `hi - lo` as two bytes
    /// of the record's bytes word.
    Range8,
    /// Any interval of a dimension at most 16 bits wide: `lo | (hi - lo) << 16`, 1 word.
    Range16,
    /// Any interval: `lo`, `hi - lo`, 2 words.
    Range32,
    /// Any interval past 32 bits: 4 words.
    Range64,
}

impl Kind {
    fn words(self) -> u8 {
        match self {
            Self::Range8 => 0,
            Self::Key32 | Self::Block32 | Self::Range16 => 1,
            Self::Key64 | Self::Range32 => 2,
            Self::Range64 => 4,
        }
    }

    /// The kind for a dimension `width` bits wide whose boxes, in a table with mask `mask`, are
    /// all the table's aligned block (`key`), all aligned blocks (`block`), or neither.
    fn of(width: u32, key: bool, block: bool, bytes: u8) -> Self {
        match (width, key, block) {
            (0..=32, true, _) => Self::Key32,
            (0..=8, false, _) if bytes <= 2 => Self::Range8,
            (_, true, _) => Self::Key64,
            (0..=16, false, _) => Self::Range16,
            (17..=32, false, true) => Self::Block32,
            (17..=32, false, false) => Self::Range32,
            _ => Self::Range64,
        }
    }
}

/// Whether `[lo, hi]` is an aligned block (`hi - lo + 1` a power of two dividing `lo`) in a
/// dimension of `max`, and its prefix length.
fn block_len(lo: u64, hi: u64, width: u32) -> Option<u8> {
    let host = lo ^ hi;
    let aligned = host & host.wrapping_add(1) == 0 && lo & host == 0 && hi == lo | host;
    aligned.then(|| (width - (64 - host.leading_zeros())) as u8)
}

/// The mask of a prefix `len` bits long in a 32-bit (or narrower) dimension `width` bits wide.
#[inline]
fn prefix_mask(width: u32, len: u32) -> u64 {
    let all = u64::MAX >> (64 - width.clamp(1, 64));
    all & !(all >> len.min(width)) & if len == 0 { 0 } else { u64::MAX }
}

/// How to read one entry of at most 32 bits from a record without branching on its kind:
/// `lo = rec[lo_word] >> lo_shift & lo_mask`, `s = rec[span_word] >> span_shift & span_mask`,
/// and the span is `s`, or for a prefix block `max >> s` (its length is `s`).
#[derive(Clone, Copy, Debug, Default)]
struct Narrow {
    dim: u8,
    lo_word: u8,
    lo_shift: u8,
    span_word: u8,
    span_shift: u8,
    block: bool,
    /// Width of the dimension (a block's span is `max >> len`).
    width: u8,
    lo_mask: u32,
    span_mask: u32,
}

impl Narrow {
    #[inline]
    fn lo(&self, rec: &[u32]) -> u64 {
        let w = rec.get(usize::from(self.lo_word)).copied().unwrap_or(0);
        u64::from((w >> self.lo_shift) & self.lo_mask)
    }

    #[inline]
    fn span(&self, rec: &[u32]) -> u64 {
        let w = rec.get(usize::from(self.span_word)).copied().unwrap_or(0);
        let s = (w >> self.span_shift) & self.span_mask;
        if self.block {
            let max = u64::MAX >> (64 - u32::from(self.width).clamp(1, 32));
            max >> s.min(32)
        } else {
            u64::from(s)
        }
    }
}

/// How to compare one keyed entry of a narrow record with the lookup's key: the record word
/// `word`, shifted right by `shift`, equals the key under the table's mask of dimension `dim`
/// (within the entry's bits: narrow keys fit 32 bits, an entry sharing its word with others has
/// them above the dimension's width).
#[derive(Clone, Copy, Debug, Default)]
struct KeyCheck {
    dim: u8,
    word: u8,
    shift: u8,
}

/// What a table stores of its boxes, per dimension it stores anything of.
#[derive(Clone, Copy, Debug, Default)]
pub(super) struct Layout {
    /// Every entry at most 32 bits wide: the branch-free readers below apply.
    narrow: bool,
    /// Per entry (narrow layouts): its reader.
    readers: [Narrow; MAX_DIMS],
    /// The checked entries (narrow layouts; `nchecked` of them).
    checked_idx: [u8; MAX_DIMS],
    nchecked: u8,
    /// The entries whose dimension the table keys on (narrow layouts; `nkeyed` of them). Only those tell a
    /// bucket's records from another's (issue 15: `key_eq` read every entry, port ranges of
    /// unkeyed dimensions included — ~150 instructions a lookup on ipc1_10k).
    keyed: [KeyCheck; MAX_DIMS],
    nkeyed: u8,
    /// Entries.
    n: u8,
    /// Per entry: the dimension.
    dim: [u8; MAX_DIMS],
    /// Per entry: its first word in a record.
    off: [u8; MAX_DIMS],
    /// Per entry: how it is stored.
    kind: [Kind; MAX_DIMS],
    /// Per entry of kind `Block32` or `Range8`: its (first) byte in the bytes word.
    byte: [u8; MAX_DIMS],
    /// Per entry: the dimension's width.
    width: [u8; MAX_DIMS],
    /// Bit `k`: entry `k` is checked by `inside` (not a key).
    checked: u8,
    /// The bytes word (when some entry is `Block32` or `Range8`).
    lens_off: u8,
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
        // Bytes of the bytes word taken.
        let mut blocks = 0u8;
        for (d, (dim, &mask)) in dims.iter().zip(masks).enumerate().take(MAX_DIMS) {
            let host = !mask & dim.max();
            let bounds = boxes.clone().filter_map(|b| b.get(d).copied());
            let key = bounds
                .clone()
                .all(|(lo, hi)| lo & host == 0 && hi == lo | host);
            if key && mask == 0 {
                continue;
            }
            let block = blocks < 4
                && bounds
                    .clone()
                    .all(|(lo, hi)| block_len(lo, hi, dim.width).is_some());
            let kind = Kind::of(dim.width, key, block, blocks);
            let k = usize::from(l.n);
            if let (Kind::Block32 | Kind::Range8, Some(b)) = (kind, l.byte.get_mut(k)) {
                *b = blocks;
                blocks += if kind == Kind::Range8 { 2 } else { 1 };
            }
            if let (Some(dd), Some(o), Some(kk), Some(w)) = (
                l.dim.get_mut(k),
                l.off.get_mut(k),
                l.kind.get_mut(k),
                l.width.get_mut(k),
            ) {
                *dd = d as u8;
                *o = l.words;
                *kk = kind;
                *w = dim.width as u8;
            }
            l.checked |= u8::from(!key) << k;
            l.words += kind.words();
            l.n += 1;
        }
        if blocks > 0 {
            l.lens_off = l.words;
            l.words += 1;
        }
        l.readers_of();
        l.keyed_of(masks);
        l
    }

    /// Marks the entries of a narrow layout whose dimension the table's `masks` key on.
    fn keyed_of(&mut self, masks: &[u64; MAX_DIMS]) {
        if !self.narrow {
            return;
        }
        for r in self.readers.iter().take(usize::from(self.n)) {
            if masks.get(usize::from(r.dim)).is_some_and(|&m| m != 0) {
                if let Some(slot) = self.keyed.get_mut(usize::from(self.nkeyed)) {
                    *slot = KeyCheck {
                        dim: r.dim,
                        word: r.lo_word,
                        shift: r.lo_shift,
                    };
                    self.nkeyed += 1;
                }
            }
        }
    }

    /// Fills the branch-free readers when every entry is at most 32 bits wide.
    fn readers_of(&mut self) {
        let n = usize::from(self.n);
        self.narrow = self
            .kind
            .iter()
            .take(n)
            .all(|k| !matches!(k, Kind::Key64 | Kind::Range64));
        if !self.narrow {
            return;
        }
        for k in 0..n {
            let (Some(&dim), Some(&off), Some(&kind), Some(&byte), Some(&width)) = (
                self.dim.get(k),
                self.off.get(k),
                self.kind.get(k),
                self.byte.get(k),
                self.width.get(k),
            ) else {
                continue;
            };
            let lens = self.lens_off;
            let r = |lo: (u8, u8, u32), span: (u8, u8, u32), block: bool| Narrow {
                dim,
                lo_word: lo.0,
                lo_shift: lo.1,
                lo_mask: lo.2,
                span_word: span.0,
                span_shift: span.1,
                span_mask: span.2,
                block,
                width,
            };
            let reader = match kind {
                Kind::Key32 => r((off, 0, u32::MAX), (off, 0, 0), false),
                Kind::Block32 => r((off, 0, u32::MAX), (lens, 8 * byte, 0xFF), true),
                Kind::Range8 => r((lens, 8 * byte, 0xFF), (lens, 8 * byte + 8, 0xFF), false),
                Kind::Range16 => r((off, 0, 0xFFFF), (off, 16, 0xFFFF), false),
                Kind::Range32 | Kind::Key64 | Kind::Range64 => {
                    r((off, 0, u32::MAX), (off + 1, 0, u32::MAX), false)
                }
            };
            if let Some(slot) = self.readers.get_mut(k) {
                *slot = reader;
            }
            if kind != Kind::Key32 {
                if let Some(slot) = self.checked_idx.get_mut(usize::from(self.nchecked)) {
                    *slot = k as u8;
                }
                self.nchecked += 1;
            }
        }
    }

    /// Words per record.
    #[inline]
    pub(super) fn words(&self) -> usize {
        usize::from(self.words)
    }

    /// Appends the record of a box.
    pub(super) fn push(&self, out: &mut Vec<u32>, pos: u32, meta: u32, bounds: &[(u64, u64)]) {
        out.extend([pos, meta]);
        let mut lens = 0u32;
        for k in 0..usize::from(self.n) {
            let d = usize::from(self.dim.get(k).copied().unwrap_or(0));
            let (lo, hi) = bounds.get(d).copied().unwrap_or((0, 0));
            let span = hi - lo;
            match self.kind.get(k).copied().unwrap_or_default() {
                Kind::Key32 => out.push(lo as u32),
                Kind::Key64 => out.extend([lo as u32, (lo >> 32) as u32]),
                Kind::Block32 => {
                    let width = u32::from(self.width.get(k).copied().unwrap_or(32));
                    let len = block_len(lo, hi, width).unwrap_or(0);
                    let byte = u32::from(self.byte.get(k).copied().unwrap_or(0));
                    lens |= u32::from(len) << (8 * byte);
                    out.push(lo as u32);
                }
                Kind::Range8 => {
                    let byte = u32::from(self.byte.get(k).copied().unwrap_or(0));
                    lens |= ((lo | span << 8) as u32 & 0xFFFF) << (8 * byte);
                }
                Kind::Range16 => out.push((lo | span << 16) as u32),
                Kind::Range32 => out.extend([lo as u32, span as u32]),
                Kind::Range64 => out.extend([
                    lo as u32,
                    (lo >> 32) as u32,
                    span as u32,
                    (span >> 32) as u32,
                ]),
            }
        }
        if self.lens_off != 0 {
            out.push(lens);
        }
    }

    /// The word at `o` of `rec`, widened.
    #[inline]
    fn word(rec: &[u32], o: usize) -> u64 {
        u64::from(rec.get(o).copied().unwrap_or(0))
    }

    /// The `lo` of entry `k` in `rec`.
    #[inline]
    fn lo(&self, rec: &[u32], k: usize) -> u64 {
        let o = usize::from(self.off.get(k).copied().unwrap_or(0));
        match self.kind.get(k).copied().unwrap_or_default() {
            Kind::Key32 | Kind::Block32 | Kind::Range32 => Self::word(rec, o),
            Kind::Range8 => {
                let byte = u32::from(self.byte.get(k).copied().unwrap_or(0));
                (Self::word(rec, usize::from(self.lens_off)) >> (8 * byte)) & 0xFF
            }
            Kind::Range16 => Self::word(rec, o) & 0xFFFF,
            Kind::Key64 | Kind::Range64 => Self::word(rec, o) | Self::word(rec, o + 1) << 32,
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
        if self.narrow {
            for c in self.keyed.iter().take(usize::from(self.nkeyed)) {
                let d = usize::from(c.dim);
                let w = rec.get(usize::from(c.word)).copied().unwrap_or(0);
                let m = masks.get(d).copied().unwrap_or(0) as u32;
                eq &= ((w >> c.shift) ^ keys.get(d).copied().unwrap_or(0) as u32) & m == 0;
            }
            return eq;
        }
        for k in 0..usize::from(self.n) {
            let d = usize::from(self.dim.get(k).copied().unwrap_or(0));
            let m = masks.get(d).copied().unwrap_or(0);
            eq &= (keys.get(d).copied().unwrap_or(0) ^ self.lo(rec, k)) & m == 0;
        }
        eq
    }

    /// Whether the box of record `rec` (of the bucket of `keys`) contains `keys` on its dimensions
    /// that are not the bucket's key.
    #[inline]
    pub(super) fn inside(&self, rec: &[u32], keys: &[u64; MAX_DIMS]) -> bool {
        let mut inside = true;
        if self.narrow {
            for &k in self.checked_idx.iter().take(usize::from(self.nchecked)) {
                let Some(r) = self.readers.get(usize::from(k)) else {
                    continue;
                };
                let key = keys.get(usize::from(r.dim)).copied().unwrap_or(0);
                inside &= key.wrapping_sub(r.lo(rec)) <= r.span(rec);
            }
            return inside;
        }
        let mut bits = self.checked;
        while bits != 0 {
            let k = bits.trailing_zeros() as usize;
            bits &= bits - 1;
            let d = usize::from(self.dim.get(k).copied().unwrap_or(0));
            let o = usize::from(self.off.get(k).copied().unwrap_or(0));
            let key = keys.get(d).copied().unwrap_or(0);
            inside &= match self.kind.get(k).copied().unwrap_or_default() {
                Kind::Key32 | Kind::Key64 => true,
                Kind::Block32 => {
                    let lens = Self::word(rec, usize::from(self.lens_off));
                    let byte = u32::from(self.byte.get(k).copied().unwrap_or(0));
                    let len = ((lens >> (8 * byte)) & 0xFF) as u32;
                    let width = u32::from(self.width.get(k).copied().unwrap_or(32));
                    (key ^ Self::word(rec, o)) & prefix_mask(width, len) == 0
                }
                Kind::Range8 => {
                    let byte = u32::from(self.byte.get(k).copied().unwrap_or(0));
                    let w = Self::word(rec, usize::from(self.lens_off)) >> (8 * byte);
                    key.wrapping_sub(w & 0xFF) <= (w >> 8) & 0xFF
                }
                Kind::Range16 => {
                    let w = Self::word(rec, o);
                    key.wrapping_sub(w & 0xFFFF) <= w >> 16
                }
                Kind::Range32 => key.wrapping_sub(Self::word(rec, o)) <= Self::word(rec, o + 1),
                Kind::Range64 => {
                    let lo = Self::word(rec, o) | Self::word(rec, o + 1) << 32;
                    let span = Self::word(rec, o + 2) | Self::word(rec, o + 3) << 32;
                    key.wrapping_sub(lo) <= span
                }
            };
        }
        inside
    }
}

#[cfg(test)]
mod tests {
    use super::{block_len, prefix_mask};

    #[test]
    fn blocks_and_prefix_masks() {
        assert_eq!(block_len(0x0A00_0000, 0x0AFF_FFFF, 32), Some(8));
        assert_eq!(block_len(0, 0xFFFF_FFFF, 32), Some(0));
        assert_eq!(block_len(5, 5, 32), Some(32));
        assert_eq!(block_len(1024, 65535, 16), None);
        assert_eq!(block_len(4, 11, 16), None);
        assert_eq!(prefix_mask(32, 0), 0);
        assert_eq!(prefix_mask(32, 8), 0xFF00_0000);
        assert_eq!(prefix_mask(32, 32), 0xFFFF_FFFF);
        assert_eq!(prefix_mask(24, 24), 0xFF_FFFF);
    }
}
