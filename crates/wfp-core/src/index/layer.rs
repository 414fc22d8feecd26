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

use std::sync::Arc;

use crate::catalogue::{self, LayerId};
use crate::engine::{LayerView, SublayerView};
use crate::filter::RtFilter;
use crate::guid::Guid;

/// The view of `layer` after a transaction that added `added` and deleted `deleted` (filters of
/// any layer; those of other layers are ignored). `generation`: the layer's new generation.
pub(crate) fn apply(
    prev: &LayerView,
    layer: LayerId,
    generation: u64,
    added: &[Arc<RtFilter>],
    deleted: &[Arc<RtFilter>],
) -> Option<LayerView> {
    let def = catalogue::layer(layer)?;
    // Net changes: a filter added and deleted in the same transaction never became visible.
    let added: Vec<Arc<RtFilter>> = added
        .iter()
        .filter(|f| f.layer == layer && !deleted.iter().any(|d| d.filter_id == f.filter_id))
        .cloned()
        .collect();
    let deleted: Vec<Arc<RtFilter>> = deleted
        .iter()
        .filter(|f| f.layer == layer)
        .cloned()
        .collect();
    // Every touched sublayer must already be listed.
    let listed = |key: &Guid| prev.sublayers.iter().any(|s| s.key == *key);
    if !added.iter().all(|f| listed(&f.sublayer)) {
        return None;
    }
    let sublayers: Vec<SublayerView> = prev
        .sublayers
        .iter()
        .map(|s| {
            let add: Vec<Arc<RtFilter>> = added
                .iter()
                .filter(|f| f.sublayer == s.key)
                .cloned()
                .collect();
            let del: Vec<Arc<RtFilter>> = deleted
                .iter()
                .filter(|f| f.sublayer == s.key)
                .cloned()
                .collect();
            let index = if add.is_empty() && del.is_empty() {
                s.index.clone()
            } else {
                s.index.with_changes(def, &add, &del)
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
        generation,
        fields_used,
    })
}
