//! A layer's next published view from the previous one and a transaction's filter changes,
//! without visiting the layer's other filters (issue 15, B2).
//!
//! ```text
//!  prev LayerView (published) ─┬─ untouched sublayers: shared base, delta copied
//!  added / deleted filters ────┴─ touched sublayers: SublayerIndex::with_changes ─► LayerView
//! ```
//!
//! The result equals what a full build of the layer from the management state gives (same
//! sublayers in the same order, same filters in the same order, same `fields_used`) when `prev`
//! was built from the state before the transaction — true because every commit publishes under
//! the writer lock. A change this cannot express (a filter in a sublayer the view does not list
//! yet, an unknown layer) returns `None`: the caller builds the layer in full.

use std::collections::HashSet;
use std::sync::Arc;

use crate::catalogue::{self, LayerId};
use crate::engine::{LayerView, SublayerView};
use crate::filter::{FilterId, RtFilter};
use crate::guid::Guid;

/// The view of `layer` after a transaction that added `added` and deleted `deleted` (filters of
/// any layer; those of other layers are ignored).
pub(crate) fn apply(
    prev: &LayerView,
    layer: LayerId,
    added: &[Arc<RtFilter>],
    deleted: &[Arc<RtFilter>],
) -> Option<LayerView> {
    let def = catalogue::layer(layer)?;
    // Net changes: a filter added and deleted in the same transaction never became visible (a
    // set, not a scan per added filter: transactions may hold thousands of each).
    let gone: HashSet<FilterId> = if added.is_empty() {
        HashSet::new()
    } else {
        deleted
            .iter()
            .filter(|f| f.layer == layer)
            .map(|f| f.filter_id)
            .collect()
    };
    let mut added: Vec<&Arc<RtFilter>> = added
        .iter()
        .filter(|f| f.layer == layer && !gone.contains(&f.filter_id))
        .collect();
    let mut deleted: Vec<&Arc<RtFilter>> = deleted.iter().filter(|f| f.layer == layer).collect();
    // Grouped by sublayer, so each touched sublayer takes one contiguous slice of each.
    added.sort_by_key(|f| f.sublayer);
    deleted.sort_by_key(|f| f.sublayer);
    // Every touched sublayer must already be listed.
    let listed = |key: &Guid| prev.sublayers.iter().any(|s| s.key == *key);
    let all_listed = added
        .chunk_by(|a, b| a.sublayer == b.sublayer)
        .all(|c| c.first().is_none_or(|f| listed(&f.sublayer)));
    if !all_listed {
        return None;
    }
    let sublayers: Vec<SublayerView> = prev
        .sublayers
        .iter()
        .map(|s| {
            let add = of_sublayer(&added, &s.key);
            let del = of_sublayer(&deleted, &s.key);
            let index = if add.is_empty() && del.is_empty() {
                s.index.clone()
            } else {
                s.index.with_changes(def, add, del)
            };
            SublayerView {
                key: s.key,
                name: Arc::clone(&s.name),
                weight: s.weight,
                index,
            }
        })
        .filter(|s| !s.index.is_empty())
        .collect();
    let fields_used = sublayers
        .iter()
        .fold(0u64, |m, s| m | s.index.fields_used());
    Some(LayerView {
        sublayers,
        fields_used,
    })
}

/// The filters of sublayer `key` in `sorted` (sorted by sublayer key).
fn of_sublayer<'a>(sorted: &'a [&'a Arc<RtFilter>], key: &Guid) -> &'a [&'a Arc<RtFilter>] {
    let lo = sorted.partition_point(|f| f.sublayer < *key);
    let hi = lo
        + sorted
            .get(lo..)
            .map_or(0, |r| r.partition_point(|f| f.sublayer == *key));
    sorted.get(lo..hi).unwrap_or(&[])
}
