//! Flow contexts (`FwpsFlowAssociateContext0`, `FwpsFlowRemoveContext0`, `FwpsFlowAbort0`, §6).
//!
//! Key = (flow, layer, callout), one context each. Entries are sharded by flow id behind short
//! mutexes that are never held while a callout runs. A classify that invokes a callout for a flow
//! marks the entry active; removing an active context answers STATUS_PENDING and the flowDeleteFn
//! runs when the last such classify returns (brief decision 5).

use std::collections::HashMap;

use parking_lot::Mutex;

use crate::catalogue::LayerId;
use crate::filter::CalloutId;

const SHARDS: usize = 64;

#[derive(Clone, Copy, Debug)]
pub(crate) struct Entry {
    pub(crate) layer: LayerId,
    pub(crate) callout: CalloutId,
    pub(crate) context: u64,
    pub(crate) active: u32,
    pub(crate) remove_pending: bool,
}

/// What a removal produced: contexts whose flowDeleteFn must now be called.
pub(crate) type Deleted = Vec<(LayerId, CalloutId, u64)>;

pub(crate) struct FlowContexts {
    shards: Vec<Mutex<HashMap<u64, Vec<Entry>>>>,
}

pub(crate) enum Associate {
    Done,
    Exists,
}

pub(crate) enum Remove {
    Removed(u64),
    Pending,
    NotFound,
}

impl FlowContexts {
    pub(crate) fn new() -> Self {
        Self {
            shards: (0..SHARDS).map(|_| Mutex::new(HashMap::new())).collect(),
        }
    }

    fn shard(&self, flow: u64) -> &Mutex<HashMap<u64, Vec<Entry>>> {
        // Flow ids are sequential; a multiplicative hash spreads them over the shards.
        let h = flow.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 58;
        &self.shards[(h as usize) % SHARDS]
    }

    pub(crate) fn associate(
        &self,
        flow: u64,
        layer: LayerId,
        callout: CalloutId,
        context: u64,
    ) -> Associate {
        let mut s = self.shard(flow).lock();
        let list = s.entry(flow).or_default();
        if list
            .iter()
            .any(|e| e.layer == layer && e.callout == callout)
        {
            return Associate::Exists;
        }
        list.push(Entry {
            layer,
            callout,
            context,
            active: 0,
            remove_pending: false,
        });
        Associate::Done
    }

    pub(crate) fn remove(&self, flow: u64, layer: LayerId, callout: CalloutId) -> Remove {
        let mut s = self.shard(flow).lock();
        let Some(list) = s.get_mut(&flow) else {
            return Remove::NotFound;
        };
        let Some(pos) = list
            .iter()
            .position(|e| e.layer == layer && e.callout == callout && !e.remove_pending)
        else {
            return Remove::NotFound;
        };
        if list[pos].active > 0 {
            list[pos].remove_pending = true;
            return Remove::Pending;
        }
        let e = list.swap_remove(pos);
        if list.is_empty() {
            s.remove(&flow);
        }
        Remove::Removed(e.context)
    }

    /// Ends a flow: every idle context is removed now (returned), active ones when their classify
    /// returns (counted).
    pub(crate) fn end_flow(&self, flow: u64) -> (Deleted, usize) {
        let mut s = self.shard(flow).lock();
        let Some(list) = s.get_mut(&flow) else {
            return (Vec::new(), 0);
        };
        let mut out = Vec::new();
        let mut deferred = 0;
        list.retain_mut(|e| {
            if e.active > 0 {
                if !e.remove_pending {
                    deferred += 1;
                }
                e.remove_pending = true;
                true
            } else {
                if !e.remove_pending {
                    out.push((e.layer, e.callout, e.context));
                }
                false
            }
        });
        if list.is_empty() {
            s.remove(&flow);
        }
        (out, deferred)
    }

    /// Looks a context up and marks it active for the duration of a classify. Contexts pending
    /// removal are invisible.
    pub(crate) fn begin_use(&self, flow: u64, layer: LayerId, callout: CalloutId) -> Option<u64> {
        let mut s = self.shard(flow).lock();
        let e = s
            .get_mut(&flow)?
            .iter_mut()
            .find(|e| e.layer == layer && e.callout == callout && !e.remove_pending)?;
        e.active += 1;
        Some(e.context)
    }

    /// Ends a use started by `begin_use`; returns the context if its removal was deferred to now.
    pub(crate) fn end_use(&self, flow: u64, layer: LayerId, callout: CalloutId) -> Option<u64> {
        let mut s = self.shard(flow).lock();
        let list = s.get_mut(&flow)?;
        let pos = list
            .iter()
            .position(|e| e.layer == layer && e.callout == callout && e.active > 0)?;
        list[pos].active -= 1;
        if list[pos].active == 0 && list[pos].remove_pending {
            let e = list.swap_remove(pos);
            if list.is_empty() {
                s.remove(&flow);
            }
            return Some(e.context);
        }
        None
    }

    pub(crate) fn get(&self, flow: u64, layer: LayerId, callout: CalloutId) -> Option<u64> {
        let s = self.shard(flow).lock();
        s.get(&flow)?
            .iter()
            .find(|e| e.layer == layer && e.callout == callout && !e.remove_pending)
            .map(|e| e.context)
    }

    pub(crate) fn count(&self) -> usize {
        self.shards
            .iter()
            .map(|s| s.lock().values().map(Vec::len).sum::<usize>())
            .sum()
    }
}
