//! Per-dimension table pruning: which tuple tables can hold a box containing a given key.
//!
//! For one dimension, the leading (at most 16) bits of a key form its *block*. The map gives, for
//! every block, the set of tables (a bitset, one bit per table) holding at least one box that
//! reaches into the block — a superset of the tables that can match, so AND-ing the sets of all
//! dimensions never loses a match. The blocks are resolved through a 256-entry top array whose
//! entries point into an array of set ids: to the one id of a uniform run of blocks, or to a leaf
//! of per-block ids — told apart by a flag that selects the block's low bits as an offset, so a
//! lookup takes no branch on it (issue 15: computing the candidate tables was ~16% of a lookup's
//! instructions, with a data-dependent branch per dimension).

use super::compile::Dim;
use super::fast_hash::FastMap;

/// Keys are pruned on at most this many leading bits (exact-tuple indexes: few tables, so small
/// sets).
pub(super) const PRUNE_BITS: u32 = 16;

/// Keys of indexes with merged tables are pruned on fewer bits: they have several times more
/// tables (so longer sets), and 16-bit blocks would give nearly every block its own set — a map
/// larger than the tables and a cache miss per dimension (measured on the hard sets of
/// `wfp-bench`: 10 bits halves the lookup time of 16).
pub(super) const MERGED_PRUNE_BITS: u32 = 10;

/// The shape of a dimension's map: tables, words per set, leading key bits per block.
#[derive(Clone, Copy, Debug)]
pub(super) struct MapShape {
    pub(super) tables: usize,
    pub(super) words: usize,
    pub(super) block_bits: u32,
}

/// A top-array entry pointing to a leaf (the block's low bits are added to it); otherwise it
/// points to the one id of a uniform run.
const LEAF: u32 = 1 << 31;

/// The pruning map of one dimension.
#[derive(Debug)]
pub(super) struct Prune {
    /// The dimension.
    pub(super) dim: usize,
    /// Block of a key: `key >> shift`.
    shift: u32,
    /// Bits of the block resolved by a leaf (0: `top` is indexed by the whole block).
    leaf_bits: u32,
    /// `(1 << leaf_bits) - 1`.
    leaf_mask: usize,
    /// Per run of `1 << leaf_bits` blocks: `LEAF |` the first id of its leaf in `ids`, or the
    /// place of the run's one id in `ids`.
    top: Vec<u32>,
    /// Set ids: leaves of `1 << leaf_bits` ids, and one entry per distinct id of uniform runs.
    ids: Vec<u16>,
    /// The set for an absent value: tables with a box that does not require this dimension.
    absent: u16,
    /// Table sets, `words` words each.
    sets: Vec<u64>,
    words: usize,
}

impl Prune {
    /// The tables that may hold a box containing `key` (`None`: the value is absent).
    #[inline]
    pub(super) fn tables(&self, key: Option<u64>) -> &[u64] {
        let id = self.set_id(key);
        let start = usize::from(id) * self.words;
        self.sets.get(start..start + self.words).unwrap_or(&[])
    }

    /// Where the set of [`Prune::tables`] starts in the sets ([`Prune::word`]).
    #[inline]
    pub(super) fn set_start(&self, key: Option<u64>) -> usize {
        usize::from(self.set_id(key)) * self.words
    }

    /// Word `i` of the sets (`set_start + k` is word `k` of a set; all tables past the end).
    #[inline]
    pub(super) fn word(&self, i: usize) -> u64 {
        self.sets.get(i).copied().unwrap_or(u64::MAX)
    }

    #[inline]
    fn set_id(&self, key: Option<u64>) -> u16 {
        let Some(k) = key else {
            return self.absent;
        };
        let block = usize::try_from(k >> self.shift).unwrap_or(0);
        // Blocks are below `1 << bits`, so the run is in `top`.
        let Some(&top) = self.top.get(block >> self.leaf_bits) else {
            return self.absent;
        };
        // A leaf's entry adds the block's low bits, a uniform run's adds nothing: no branch.
        let leaf = 0usize.wrapping_sub((top >> 31) as usize);
        let at = (top & !LEAF) as usize + (block & self.leaf_mask & leaf);
        self.ids.get(at).copied().unwrap_or(self.absent)
    }

    /// Approximate heap bytes.
    #[cfg(any(test, feature = "bench-internals"))]
    pub(super) fn bytes(&self) -> usize {
        std::mem::size_of::<Self>()
            + self.top.capacity() * 4
            + self.ids.capacity() * 2
            + self.sets.capacity() * 8
    }

    /// The map of dimension `d` for `boxes` — (table, whether the box requires the dimension,
    /// `lo`, `hi`) — in the given `shape`: a sweep over the boxes' block ranges. `None` when it would prune nothing (every block and absence allow every table), or
    /// would need more than 2^16 distinct sets.
    pub(super) fn build(
        d: usize,
        dim: &Dim,
        boxes: impl Iterator<Item = (u32, bool, u64, u64)>,
        shape: MapShape,
    ) -> Option<Self> {
        let MapShape {
            tables,
            words,
            block_bits,
        } = shape;
        let bits = dim.width.min(block_bits);
        let shift = dim.width - bits;
        let blocks = 1usize << bits;
        // Events: (block, table, +1 at the first block / -1 past the last).
        let mut events: Vec<(u32, u32, i32)> = Vec::new();
        let mut absent = vec![0u64; words];
        for (t, required, lo, hi) in boxes {
            if !required {
                *absent.get_mut(t as usize / 64)? |= 1 << (t % 64);
            }
            let b0 = u32::try_from(lo >> shift).ok()?;
            let b1 = u32::try_from(hi >> shift).ok()?;
            events.push((b0, t, 1));
            events.push((b1 + 1, t, -1));
        }
        // By block (a counting sort: blocks are few; the order inside a block does not matter,
        // every event of a block is applied before its set is read).
        let events = by_block(&events, blocks);
        let mut sets = Vec::new();
        let mut set_ids = FastMap::default();
        let mut counts = vec![0i32; tables];
        let mut current = vec![0u64; words];
        let mut flat = vec![0u16; blocks];
        let mut at = 0usize;
        let mut e = 0usize;
        while at < blocks {
            while let Some(&(b, t, delta)) = events.get(e) {
                if b as usize > at {
                    break;
                }
                let t = t as usize;
                let c = counts.get_mut(t)?;
                *c += delta;
                let word = current.get_mut(t / 64)?;
                if *c > 0 {
                    *word |= 1 << (t % 64);
                } else {
                    *word &= !(1 << (t % 64));
                }
                e += 1;
            }
            let next = events
                .get(e)
                .map_or(blocks, |&(b, _, _)| (b as usize).min(blocks));
            let id = intern(&current, &mut sets, &mut set_ids, words)?;
            flat.get_mut(at..next)?.fill(id);
            at = next;
        }
        let absent = intern(&absent, &mut sets, &mut set_ids, words)?;
        let full = |id: u16| {
            let start = usize::from(id) * words;
            sets.get(start..start + words).is_some_and(|set| {
                (0..tables).all(|t| set.get(t / 64).is_some_and(|w| w & (1 << (t % 64)) != 0))
            })
        };
        if flat.iter().all(|&id| id == absent) && full(absent) {
            return None;
        }
        // Compress: a 256-entry top array; uniform runs need no leaf, only one entry per distinct
        // id.
        let leaf_bits = bits.saturating_sub(8);
        let (mut top, mut ids) = (Vec::new(), Vec::new());
        let mut uniform: FastMap<u16, u32> = FastMap::default();
        for chunk in flat.chunks(1 << leaf_bits) {
            let first = chunk.first().copied().unwrap_or(absent);
            if chunk.iter().all(|&id| id == first) {
                let at = match uniform.get(&first) {
                    Some(&at) => at,
                    None => {
                        let at = u32::try_from(ids.len()).ok().filter(|&a| a < LEAF)?;
                        ids.push(first);
                        uniform.insert(first, at);
                        at
                    }
                };
                top.push(at);
            } else {
                let at = u32::try_from(ids.len()).ok().filter(|&a| a < LEAF)?;
                top.push(LEAF | at);
                ids.extend_from_slice(chunk);
            }
        }
        // Grown by doubling: half of it could be spare (issue 15: memory per filter).
        sets.shrink_to_fit();
        top.shrink_to_fit();
        ids.shrink_to_fit();
        Some(Self {
            dim: d,
            shift,
            leaf_bits,
            leaf_mask: (1 << leaf_bits) - 1,
            top,
            ids,
            absent,
            sets,
            words,
        })
    }
}

/// `events` ordered by block (their first field, at most `blocks`; larger ones last).
fn by_block(events: &[(u32, u32, i32)], blocks: usize) -> Vec<(u32, u32, i32)> {
    let mut start = vec![0u32; blocks + 2];
    let slot = |b: u32| (b as usize).min(blocks) + 1;
    for &(b, _, _) in events {
        if let Some(c) = start.get_mut(slot(b)) {
            *c += 1;
        }
    }
    for i in 1..start.len() {
        let prev = start.get(i - 1).copied().unwrap_or(0);
        if let Some(c) = start.get_mut(i) {
            *c += prev;
        }
    }
    let mut out = vec![(0u32, 0u32, 0i32); events.len()];
    for &e in events {
        if let Some(c) = start.get_mut(slot(e.0) - 1) {
            if let Some(o) = out.get_mut(*c as usize) {
                *o = e;
            }
            *c += 1;
        }
    }
    out
}

/// Interns a table set, returning its id (`None` past `u16` ids).
fn intern(
    set: &[u64],
    sets: &mut Vec<u64>,
    ids: &mut FastMap<Vec<u64>, u16>,
    words: usize,
) -> Option<u16> {
    if let Some(&id) = ids.get(set) {
        return Some(id);
    }
    let id = u16::try_from(sets.len() / words).ok()?;
    sets.extend_from_slice(set);
    ids.insert(set.to_vec(), id);
    Some(id)
}
