//! Safe teardown of deleted filters (§3.2, §12 (a)): a filter's DELETE_FILTER notify is delivered
//! only once no classify can still see the filter.
//!
//! Every published snapshot holds the filter through an `Arc`; a classify keeps its snapshot (and
//! a data path keeps the filters [`crate::Engine::matching_filters`] gave it) for as long as it
//! runs. The engine keeps only a `Weak` of a deleted filter plus the copy notifyFn receives: when
//! the weak count of strong owners reaches zero, no classify on any older snapshot is left, and the
//! notify is delivered — at the end of a classify, at the next commit, or by
//! [`crate::Engine::deliver_deferred_notifications`].

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Weak};

use parking_lot::Mutex;

use crate::constants::NotifyType;
use crate::filter::{CalloutId, RtFilter};

struct Deferred {
    weak: Weak<RtFilter>,
    copy: RtFilter,
    callout: CalloutId,
}

#[derive(Default)]
pub(crate) struct Teardown {
    queue: Mutex<Vec<Deferred>>,
    pending: AtomicUsize,
}

impl crate::Engine {
    /// Queues DELETE_FILTER for filters deleted by a commit; delivers at once those no classify
    /// holds. The caller must have dropped its own strong references.
    pub(crate) fn defer_delete_notifies(&self, deleted: Vec<Arc<RtFilter>>) {
        // Nothing to queue nor waiting (only commits, under the writer lock, add to the queue):
        // a single-filter commit skips the lock (issue 15, B2).
        if self.teardown.pending.load(Ordering::SeqCst) == 0
            && deleted.iter().all(|f| f.callout_id.is_none())
        {
            return;
        }
        {
            let mut q = self.teardown.queue.lock();
            for f in deleted {
                let Some(callout) = f.callout_id else {
                    continue;
                };
                q.push(Deferred {
                    weak: Arc::downgrade(&f),
                    copy: (*f).clone(),
                    callout,
                });
            }
            self.teardown.pending.store(q.len(), Ordering::SeqCst);
        }
        self.deliver_deferred_notifications();
    }

    /// Delivers every deferred DELETE_FILTER notify whose filter no classify can see any more;
    /// returns how many are still waiting. Called after each classify when some are queued.
    pub fn deliver_deferred_notifications(&self) -> usize {
        let ready: Vec<Deferred> = {
            let mut q = self.teardown.queue.lock();
            let (ready, waiting): (Vec<_>, Vec<_>) =
                q.drain(..).partition(|d| d.weak.strong_count() == 0);
            *q = waiting;
            self.teardown.pending.store(q.len(), Ordering::SeqCst);
            ready
        };
        for mut d in ready {
            self.notify(d.callout, NotifyType::DeleteFilter, None, &mut d.copy);
        }
        self.teardown.pending.load(Ordering::SeqCst)
    }

    /// DELETE_FILTER notifies waiting for classifies to return.
    pub fn deferred_notification_count(&self) -> usize {
        self.teardown.pending.load(Ordering::SeqCst)
    }

    /// One atomic load on the classify path: deliver only when something waits.
    pub(crate) fn after_classify(&self) {
        if self.teardown.pending.load(Ordering::Relaxed) != 0 {
            self.deliver_deferred_notifications();
        }
    }
}
