//! One classify at one layer, as every stage makes it (§7.6, §8.3, brief decision 3): the layer's
//! incoming values filled from facts (only the fields its filters read), the no-filter fast path,
//! per-flow reuse of static answers (`decisions.rs`), and the layer visit applied to the verdict —
//! PERMIT goes on, BLOCK stops the packet, NONE_NO_MATCH takes [`super::ShimConfig::no_match`].

use std::cell::OnceCell;
use std::ops::ControlFlow::{self, Break, Continue};

use wfp_core::callout::{LayerData, Metadata};
use wfp_core::{ActionType, Hardness, LayerId, Trace};

use super::meta::LazyMeta;
use super::slab::ExtraRef;
use super::{LayerVisit, PacketDirection, PacketVerdict, Shim, Verdict};
use crate::flow::{Direction, FlowKey};
use crate::values::{fill_masked, PacketFacts};
use crate::wire::ParsedPacket;

/// One classify: the layer, what its values are made of, the metadata and the layer data.
pub(super) struct Step<'s> {
    /// The layer.
    pub(super) layer: LayerId,
    /// What the layer's incoming values are filled from.
    pub(super) facts: &'s PacketFacts,
    /// The incoming metadata (built only when the engine is asked).
    pub(super) meta: MetaRef<'s>,
    /// The layer data.
    pub(super) data: LayerData<'s>,
}

impl<'s> Step<'s> {
    /// A classify at `layer` of `facts` with `meta`, passing `data`.
    pub(super) fn new(
        layer: LayerId,
        facts: &'s PacketFacts,
        meta: impl Into<MetaRef<'s>>,
        data: LayerData<'s>,
    ) -> Self {
        Self {
            layer,
            facts,
            meta: meta.into(),
            data,
        }
    }
}

/// A classify's metadata: built, or a packet's [`LazyMeta`] (built on first use, so a classify
/// answered from the flow's reusable answers never builds it).
#[derive(Clone, Copy)]
pub(super) enum MetaRef<'s> {
    /// Built.
    Built(&'s Metadata),
    /// Built when read.
    Lazy(&'s LazyMeta<'s>),
    /// Built by the function when first read, kept in the cell (the IP-packet layers' metadata:
    /// a reused answer never builds it).
    Once(&'s OnceCell<Metadata>, &'s dyn Fn() -> Metadata),
}

impl<'s> MetaRef<'s> {
    /// The metadata.
    #[inline]
    pub(super) fn get(self) -> &'s Metadata {
        match self {
            Self::Built(m) => m,
            Self::Lazy(l) => l.get(),
            Self::Once(cell, build) => cell.get_or_init(build),
        }
    }
}

impl<'s> From<&'s Metadata> for MetaRef<'s> {
    fn from(m: &'s Metadata) -> Self {
        Self::Built(m)
    }
}

impl<'s> From<&'s LazyMeta<'s>> for MetaRef<'s> {
    fn from(m: &'s LazyMeta<'s>) -> Self {
        Self::Lazy(m)
    }
}

impl Shim {
    /// Starts a packet: the policy as of now (which layers hold filters, its epoch, the fields
    /// each layer's filters read), the packet counter, `v` reset for `direction`.
    pub(super) fn start_packet(&mut self, direction: PacketDirection, v: &mut PacketVerdict) {
        // One atomic load per packet while the policy is unchanged; the snapshot only after a
        // commit (its epoch is then at least the one read here).
        if self.masks_epoch != Some(self.engine.policy_epoch()) {
            self.refresh_policy();
        }
        self.stats.packets += 1;
        v.reset(direction);
    }

    /// The policy changed: which layers hold filters, its epoch, which fields each layer's
    /// filters read.
    #[cold]
    fn refresh_policy(&mut self) {
        let summary = self.engine.policy_summary();
        let mask = summary.nonempty_layers;
        self.layer_mask = [mask as u64, (mask >> 64) as u64];
        self.policy_epoch = summary.epoch;
        if self.masks_epoch != Some(summary.epoch) {
            let n = wfp_core::catalogue::all_layers().len();
            self.field_masks = (0..n)
                .map(|l| {
                    u16::try_from(l).map_or(u64::MAX, |l| self.engine.layer_fields_used(LayerId(l)))
                })
                .collect();
            self.masks_epoch = Some(summary.epoch);
        }
        self.later = self.later_layer_answers();
        self.header_copy = self.header_copy_layers();
    }

    /// Classifies `step`, records the visit, applies the no-match default. `Break` when the
    /// packet is blocked (the verdict is then final).
    pub(super) fn classify_step(
        &mut self,
        mut step: Step<'_>,
        v: &mut PacketVerdict,
    ) -> ControlFlow<()> {
        let layer = step.layer;
        if let Some(step) = self.unfiltered(layer, v) {
            return step;
        }
        let mut values = std::mem::take(&mut self.scratch);
        let mask = if self.config.trace {
            u64::MAX
        } else {
            self.field_mask(layer)
        };
        fill_masked(layer, step.facts, mask, &mut values);
        let mut trace = self.config.trace.then(Trace::default);
        let r = self.engine.classify(
            layer,
            &values,
            step.meta.get(),
            &mut step.data,
            trace.as_mut(),
        );
        self.scratch = values;
        self.record(LayerVisit::of(layer, &r, trace), r.absorbed(), v)
    }

    /// The fast path of [`Shim::classify_step`]: a layer without filters classifies to
    /// NONE_NO_MATCH whatever the values are. `Some` (the visit recorded) when it applies (no
    /// filters at `layer`, no trace), so a caller can skip building the classify's inputs.
    #[inline]
    pub(super) fn unfiltered(
        &mut self,
        layer: LayerId,
        v: &mut PacketVerdict,
    ) -> Option<ControlFlow<()>> {
        if self.config.trace || self.has_filters(layer) {
            return None;
        }
        let visit = LayerVisit::plain(layer, ActionType::NONE_NO_MATCH, Hardness::Soft, None);
        Some(self.record(visit, false, v))
    }

    /// [`Shim::classify_step`] at one of flow `flow`'s per-packet layers: answers from the flow's
    /// stored decisions when the engine said the last answer for these facts is reusable.
    pub(super) fn classify_flow_step(
        &mut self,
        flow: Option<ExtraRef>,
        mut step: Step<'_>,
        v: &mut PacketVerdict,
    ) -> ControlFlow<()> {
        let layer = step.layer;
        let Some(id) = flow.filter(|_| {
            self.config.reuse_decisions && !self.config.trace && self.has_filters(layer)
        }) else {
            return self.classify_step(step, v);
        };
        let epoch = self.policy_epoch;
        // The hit path: the flow's state by slot, one scan of its answers, a visit built from a
        // small copy.
        let hit = self.extra.at(id);
        if let Some(a) = hit.and_then(|e| e.decisions.get(layer, epoch, step.facts)) {
            let mut visit = LayerVisit::plain(layer, a.action, a.hardness, a.filter);
            visit.vetoed = a.vetoed;
            return self.record(visit, a.absorbed, v);
        }
        let mut values = std::mem::take(&mut self.scratch);
        let mask = self.field_mask(layer);
        fill_masked(layer, step.facts, mask, &mut values);
        let (r, reusable) =
            self.engine
                .classify_cacheable(layer, &values, step.meta.get(), &mut step.data);
        self.scratch = values;
        // Only an answer from the policy this packet's field masks came from: a commit between
        // the two could have made a field matter that the mask left empty.
        if let (Some(e), true) = (self.extra.at_mut(id), reusable == Some(epoch)) {
            e.decisions.put(layer, epoch, step.facts, &r);
        }
        self.record(LayerVisit::of(layer, &r, None), r.absorbed(), v)
    }

    /// The id of the tracked flow an inbound packet belongs to, when answers at `layer` could be
    /// reused (read-only: the flow table is updated later, by flow tracking).
    #[inline]
    pub(super) fn known_flow(&self, layer: LayerId, p: &ParsedPacket) -> Option<ExtraRef> {
        if !self.config.reuse_decisions || self.config.trace || !self.has_filters(layer) {
            return None;
        }
        let key = FlowKey::from_packet(Direction::Inbound, p)?;
        let flow = self.flows.flow(self.flows.lookup(&key)?)?;
        ExtraRef::from_user(flow.user(), flow.id())
    }

    /// Whether `layer` held filters when the current packet started (`layer_mask`).
    #[inline]
    pub(super) fn has_filters(&self, layer: LayerId) -> bool {
        let word = self.layer_mask[usize::from(layer.0 >> 6 & 1)];
        word >> (layer.0 & 63) & 1 != 0
    }

    /// Records a layer visit (stats, the verdict's visit list) and applies its action to the
    /// verdict: PERMIT goes on, BLOCK (ABSORB with `absorbed`) stops the packet, NONE_NO_MATCH takes
    /// [`super::ShimConfig::no_match`]. `Break` when the packet is stopped.
    pub(super) fn record(
        &mut self,
        visit: LayerVisit,
        absorbed: bool,
        v: &mut PacketVerdict,
    ) -> ControlFlow<()> {
        let (idx, verdict) = match visit.action {
            ActionType::PERMIT => (0, Verdict::Permit),
            ActionType::BLOCK if absorbed => (1, Verdict::Absorb),
            ActionType::BLOCK => (1, Verdict::Block),
            _ => (2, self.config.no_match),
        };
        if let Some(slot) = self.stats.per_layer.get_mut(usize::from(visit.layer.0)) {
            slot[idx] += 1;
        }
        v.layer = Some(visit.layer);
        if visit.filter.is_some() {
            v.reason = super::Reason::Filter;
            v.filter = visit.filter;
        }
        v.visits.push(visit);
        if verdict != Verdict::Permit {
            v.verdict = verdict;
            return Break(());
        }
        Continue(())
    }

    /// The fields `layer`'s filters read, as of the current packet's policy (all ones when a
    /// callout filter is there).
    #[inline]
    pub(super) fn field_mask(&self, layer: LayerId) -> u64 {
        self.field_masks
            .get(usize::from(layer.0))
            .copied()
            .unwrap_or(u64::MAX)
    }
}
