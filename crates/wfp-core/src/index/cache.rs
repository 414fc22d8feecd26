//! What an index keeps of its filters so the next commit of the sublayer does not start over
//! (issue 15, B2, first step).
//!
//! A commit that adds or deletes a few filters used to re-derive everything from every filter:
//! each filter's votes for the indexed dimensions and its compiled boxes. Both depend only on the
//! filter's conditions (immutable in an [`RtFilter`]) and, for the boxes, on the chosen dimensions.
//! The index therefore keeps, per filter in evaluation order, the filter itself, its votes and its
//! boxes; the next build walks the old and the new evaluation orders together (both sorted by
//! effective weight descending, then filter id) and reuses the work of every filter that is the
//! same object (`Arc::ptr_eq`) — and the boxes only while the dimensions stay the same. A filter is
//! never matched by id alone, so a reused entry always describes exactly that filter's conditions.
//!
//! ```text
//!  previous Cache (filters, votes, boxes, dims) ──┐
//!  new filters in evaluation order ───────────────┴─► walk ─► votes ─► dims ─► boxes ─► TupleIndex
//!                                                   (reused or computed per filter)
//! ```

use std::cmp::Ordering;
use std::collections::BTreeMap;
use std::sync::Arc;

use crate::catalogue::LayerDef;
use crate::filter::RtFilter;

use super::compile::{self, Compiled, Dim};
use super::eval_order;

/// Per filter (in evaluation order): its votes and its boxes over `dims`.
#[derive(Debug)]
pub(super) struct Cache {
    pub(super) dims: Vec<Dim>,
    /// The fields each filter constrains with an indexable group ([`compile::indexable_fields`]).
    votes: Vec<Box<[u8]>>,
    /// Each filter's boxes over `dims`.
    pub(super) compiled: Vec<Arc<Compiled>>,
}

/// For every filter of `next`, the position in `prev` of the same object, if there. Both lists are
/// in evaluation order, so one forward walk finds them; a filter out of order (never the case for
/// a sublayer's list) is only not reused.
fn same_objects(prev: &[Arc<RtFilter>], next: &[Arc<RtFilter>]) -> Vec<Option<usize>> {
    let mut i = 0;
    next.iter()
        .map(|f| {
            while let Some(p) = prev.get(i) {
                if Arc::ptr_eq(p, f) || eval_order(p, f) != Ordering::Less {
                    break;
                }
                i += 1;
            }
            let hit = prev.get(i).is_some_and(|p| Arc::ptr_eq(p, f));
            hit.then(|| {
                i += 1;
                i - 1
            })
        })
        .collect()
}

impl Cache {
    /// The votes, dimensions and boxes of `filters` (in evaluation order), reusing what `prev`
    /// (the previous base's filters and cache) computed for the same filter objects. `None` when
    /// no field is indexable.
    pub(super) fn build(
        layer: &LayerDef,
        filters: &[Arc<RtFilter>],
        prev: Option<(&[Arc<RtFilter>], &Self)>,
    ) -> Option<Self> {
        let hits = match prev {
            Some((old, _)) => same_objects(old, filters),
            None => vec![None; filters.len()],
        };
        let prev = prev.map(|(_, c)| c);
        let votes: Vec<Box<[u8]>> = filters
            .iter()
            .zip(&hits)
            .map(
                |(f, hit)| match hit.and_then(|i| prev.and_then(|p| p.votes.get(i))) {
                    Some(v) => v.clone(),
                    None => compile::indexable_fields(layer, f)
                        .into_iter()
                        .filter_map(|x| u8::try_from(x).ok())
                        .collect(),
                },
            )
            .collect();
        let mut counts: BTreeMap<usize, usize> = BTreeMap::new();
        for field in votes.iter().flat_map(|v| v.iter()) {
            *counts.entry(usize::from(*field)).or_default() += 1;
        }
        let dims = compile::dims_from_counts(layer, counts);
        if dims.is_empty() {
            return None;
        }
        // Boxes depend on the dimensions: reuse them only while those stay the same.
        let same_dims = prev.filter(|p| p.dims == dims);
        let compiled = filters
            .iter()
            .zip(&hits)
            .map(
                |(f, hit)| match hit.and_then(|i| same_dims.and_then(|p| p.compiled.get(i))) {
                    Some(c) => Arc::clone(c),
                    None => Arc::new(compile::compile(&dims, f.conditions().conditions())),
                },
            )
            .collect();
        Some(Self {
            dims,
            votes,
            compiled,
        })
    }

    /// The boxes kept for this very filter object.
    #[cfg(test)]
    pub(super) fn compiled_of(
        &self,
        filters: &[Arc<RtFilter>],
        filter: &Arc<RtFilter>,
    ) -> Option<Arc<Compiled>> {
        let at = filters.iter().position(|f| Arc::ptr_eq(f, filter))?;
        self.compiled.get(at).cloned()
    }

    /// Approximate heap bytes kept per build (the filters themselves apart).
    #[cfg(any(test, feature = "bench-internals"))]
    pub(super) fn bytes(&self) -> usize {
        let boxes: usize = self
            .compiled
            .iter()
            .map(|c| std::mem::size_of::<Compiled>() + 16 + c.boxes.capacity() * 16)
            .sum();
        let votes: usize = self.votes.iter().map(|v| v.len()).sum();
        self.votes.capacity() * std::mem::size_of::<Box<[u8]>>()
            + votes
            + self.compiled.capacity() * 8
            + boxes
            + self.dims.capacity() * std::mem::size_of::<Dim>()
    }
}
