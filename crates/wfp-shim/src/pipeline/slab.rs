//! The flows' layer state ([`FlowExtra`]) in one slab beside the flow table: the established-flow
//! fast path (issue 15, B5).
//!
//! ```text
//!  packet ──FlowKey──► FlowTable::handle_packet (the one hash of the 5-tuple)
//!                         │ FlowUpdate { handle, user, .. }
//!                         ▼ user = slot + 1 (set when the flow's FlowExtra was made)
//!                      FlowExtras::at(ExtraRef { slot, id })  (an index and an id check)
//!                         │ authorization, stream, reusable answers, offloaded sides
//! ```
//!
//! Every later step of a packet reaches its flow's [`FlowExtra`] through the [`ExtraRef`] flow
//! tracking found (no second map probe per step). By-id access (asynchronous work, flow ends,
//! management listings) goes through a side map from [`FlowId`] to the slot, off the packet path.

use std::collections::HashMap;
use std::hash::BuildHasherDefault;

use super::flows::{FlowExtra, FlowIdHasher};
use crate::flow::FlowId;

/// Where a flow's [`FlowExtra`] lives: its slot and the flow's id, checked on use (a reference
/// kept after the flow ended finds nothing).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct ExtraRef {
    slot: u32,
    id: FlowId,
}

impl ExtraRef {
    /// The flow.
    #[inline]
    pub(super) fn id(self) -> FlowId {
        self.id
    }

    /// The flow table's caller word naming this slot (`FlowTable::set_user`): slot + 1, so 0 names
    /// none.
    pub(super) fn user(self) -> u64 {
        u64::from(self.slot) + 1
    }

    /// The slot a flow table caller word names for flow `id` (`None` for 0).
    #[inline]
    pub(super) fn from_user(user: u64, id: FlowId) -> Option<Self> {
        let slot = u32::try_from(user.checked_sub(1)?).ok()?;
        Some(Self { slot, id })
    }
}

/// The [`FlowExtra`] of every tracked flow, by slot and by id.
#[derive(Default)]
pub(super) struct FlowExtras {
    slots: Vec<Option<(FlowId, FlowExtra)>>,
    free: Vec<u32>,
    by_id: HashMap<FlowId, u32, BuildHasherDefault<FlowIdHasher>>,
}

impl FlowExtras {
    /// The state at `r`, when it still belongs to `r`'s flow.
    #[inline]
    pub(super) fn at(&self, r: ExtraRef) -> Option<&FlowExtra> {
        match self.slots.get(r.slot as usize) {
            Some(Some((id, e))) if *id == r.id => Some(e),
            _ => None,
        }
    }

    /// [`FlowExtras::at`], mutable.
    #[inline]
    pub(super) fn at_mut(&mut self, r: ExtraRef) -> Option<&mut FlowExtra> {
        match self.slots.get_mut(r.slot as usize) {
            Some(Some((id, e))) if *id == r.id => Some(e),
            _ => None,
        }
    }

    /// Where flow `id`'s state lives.
    pub(super) fn ref_of(&self, id: FlowId) -> Option<ExtraRef> {
        let &slot = self.by_id.get(&id)?;
        Some(ExtraRef { slot, id })
    }

    /// Flow `id`'s state.
    pub(super) fn get(&self, id: &FlowId) -> Option<&FlowExtra> {
        self.at(self.ref_of(*id)?)
    }

    /// Flow `id`'s state, mutable.
    pub(super) fn get_mut(&mut self, id: &FlowId) -> Option<&mut FlowExtra> {
        self.at_mut(self.ref_of(*id)?)
    }

    /// Whether flow `id` has state.
    pub(super) fn contains_key(&self, id: &FlowId) -> bool {
        self.by_id.contains_key(id)
    }

    /// The flows with state.
    pub(super) fn keys(&self) -> impl Iterator<Item = &FlowId> + '_ {
        self.by_id.keys()
    }

    /// Stores flow `id`'s state (replacing any it had); where it lives.
    pub(super) fn insert(&mut self, id: FlowId, e: FlowExtra) -> ExtraRef {
        let _ = self.remove(&id);
        let slot = match self.free.pop() {
            Some(slot) => {
                if let Some(s) = self.slots.get_mut(slot as usize) {
                    *s = Some((id, e));
                }
                slot
            }
            None => {
                // At most one slot per tracked flow: the flow table's bound (u32) bounds it.
                let slot = u32::try_from(self.slots.len()).unwrap_or(u32::MAX);
                self.slots.push(Some((id, e)));
                slot
            }
        };
        self.by_id.insert(id, slot);
        ExtraRef { slot, id }
    }

    /// Takes flow `id`'s state out.
    pub(super) fn remove(&mut self, id: &FlowId) -> Option<FlowExtra> {
        let slot = self.by_id.remove(id)?;
        let (_, e) = self.slots.get_mut(slot as usize)?.take()?;
        self.free.push(slot);
        Some(e)
    }
}
