//! The index internals the benchmarks in `wfp-bench` measure: the index of one sublayer with its
//! sizes and work counters, the linear scan it replaces, and the committed sublayers of an engine.
//!
//! Compiled only with the non-default `bench-internals` feature, which only `wfp-bench` enables;
//! not a stable API. Rule-set formats (ClassBench) live in `wfp-bench`, never here.

use std::sync::Arc;

use crate::catalogue::{self, LayerId};
use crate::engine::Engine;
use crate::filter::RtFilter;
use crate::value::Value;

/// A built sublayer index.
#[derive(Debug)]
pub struct Index(super::SublayerIndex);

/// Sizes of a built index.
#[derive(Clone, Copy, Debug, Default)]
pub struct IndexStats {
    /// Indexed dimensions (0: the sublayer is scanned).
    pub dims: usize,
    /// Tuple tables.
    pub tables: usize,
    /// Boxes stored (filters, expanded by OR groups).
    pub boxes: usize,
    /// Non-empty hash buckets.
    pub buckets: usize,
    /// Largest bucket.
    pub max_bucket: usize,
    /// Approximate heap bytes of the index.
    pub bytes: usize,
}

/// Build parameters (defaults are what the engine uses).
#[derive(Clone, Copy, Debug)]
pub struct BuildParams {
    /// Tuples are rounded down to multiples of this (1: exact tuples).
    pub tuple_step: u32,
    /// Upper bound on tuple tables (at most 1024; merged tuples may use four times as many).
    pub max_tables: usize,
}

impl Default for BuildParams {
    fn default() -> Self {
        let p = super::Params::default();
        Self {
            tuple_step: p.tuple_step,
            max_tables: p.max_tables,
        }
    }
}

impl Index {
    /// Builds the index of one sublayer's filters (in evaluation order) at `layer`, as the
    /// engine does; `None` for an unknown layer.
    pub fn build(layer: LayerId, filters: &[Arc<RtFilter>]) -> Option<Self> {
        let def = catalogue::layer(layer)?;
        Some(Self(super::SublayerIndex::build(def, filters)))
    }

    /// [`Index::build`] with explicit parameters (always builds the tuple index).
    pub fn build_with(
        layer: LayerId,
        filters: &[Arc<RtFilter>],
        params: BuildParams,
    ) -> Option<Self> {
        let def = catalogue::layer(layer)?;
        let p = super::Params {
            tuple_step: params.tuple_step,
            max_tables: params.max_tables,
        };
        Some(Self(super::SublayerIndex::build_with(def, filters, p, 0)))
    }

    /// See `SublayerIndex::next_match`.
    #[inline]
    pub fn next_match(
        &self,
        filters: &[Arc<RtFilter>],
        values: &[Value],
        from: usize,
    ) -> Option<usize> {
        self.0.next_match(filters, values, from)
    }

    /// All matching positions, lazily (see `SublayerIndex::matches`).
    pub fn matches<'a>(
        &'a self,
        filters: &'a [Arc<RtFilter>],
        values: &'a [Value],
    ) -> impl Iterator<Item = usize> + 'a {
        self.0.matches(filters, values)
    }

    /// The first match from position 0 and the work it took: (tables probed, slots read,
    /// boxes checked); zeros for a scanned sublayer.
    pub fn probe_counts(
        &self,
        filters: &[Arc<RtFilter>],
        values: &[Value],
    ) -> (Option<usize>, [usize; 3]) {
        match self.0.main().map(|b| &b.inner) {
            Some(super::Inner::Tuples(t)) => {
                let (r, c) = t.probe_counts(filters, values);
                (r, [c.tables, c.slots, c.boxes])
            }
            _ => (super::scan(filters, values, 0), [0; 3]),
        }
    }

    /// This index after one commit per filter of `added` (each a single-filter transaction, as
    /// the engine applies it: the filters wait in the delta, spill into runs, or compact); `None`
    /// for an unknown layer.
    pub fn with_added(&self, layer: LayerId, added: &[Arc<RtFilter>]) -> Option<Self> {
        let def = catalogue::layer(layer)?;
        let mut ix = self.0.clone();
        for f in added {
            ix = ix.with_changes(def, &[f], &[]);
        }
        Some(Self(ix))
    }

    /// This index after one commit deleting `deleted`.
    pub fn with_deleted(&self, layer: LayerId, deleted: &[Arc<RtFilter>]) -> Option<Self> {
        let def = catalogue::layer(layer)?;
        let refs: Vec<&Arc<RtFilter>> = deleted.iter().collect();
        Some(Self(self.0.with_changes(def, &[], &refs)))
    }

    /// The first matching live filter in evaluation order, as classify walks it (runs, delta).
    #[inline]
    pub fn first(&self, values: &[Value]) -> Option<&Arc<RtFilter>> {
        let mut cursor = super::Cursor::default();
        self.0.next(values, &mut cursor).map(|h| h.filter)
    }

    /// Immutable runs and added filters waiting in the delta.
    pub fn shape(&self) -> (usize, usize) {
        (self.0.runs.len(), self.0.delta.len())
    }

    /// Sizes.
    pub fn stats(&self) -> IndexStats {
        let s = self.0.stats();
        IndexStats {
            dims: s.dims,
            tables: s.tables,
            boxes: s.boxes,
            buckets: s.buckets,
            max_bucket: s.max_bucket,
            bytes: s.bytes,
        }
    }
}

/// The linear scan the index replaces.
#[inline]
pub fn scan(filters: &[Arc<RtFilter>], values: &[Value], from: usize) -> Option<usize> {
    super::scan(filters, values, from)
}

/// The published filters of every sublayer at `layer`, each in evaluation order.
pub fn sublayer_filters(engine: &Engine, layer: LayerId) -> Vec<Vec<Arc<RtFilter>>> {
    let snap = engine.snapshot.load();
    snap.layer(usize::from(layer.0))
        .map(|l| {
            l.sublayers
                .iter()
                .map(|s| s.index.filters().cloned().collect())
                .collect()
        })
        .unwrap_or_default()
}
