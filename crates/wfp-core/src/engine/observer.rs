//! The commit observer: a callback told right before and right after a commit that changed
//! filters publishes its snapshot, so a data path that caches decisions outside the engine (wfpd's
//! flow offload) can revoke them before the commit returns to its caller. Sans-IO: only a call.

use std::sync::Arc;

use super::Engine;
use crate::catalogue::LayerId;

/// Where a commit that changed filters is when the observer is called.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CommitPhase<'a> {
    /// The new snapshot is built, not yet visible to classify; `layers` changed.
    Publishing {
        /// The layers whose filters changed, ascending.
        layers: &'a [LayerId],
    },
    /// The new snapshot is visible to classify.
    Published,
}

/// The callback. It runs on the committing thread with the writer lock held: it must not call
/// the management API (that would deadlock); run-time reads such as
/// [`Engine::layer_generation`] are fine.
pub type CommitObserver = Arc<dyn Fn(&Engine, CommitPhase<'_>) + Send + Sync>;

impl Engine {
    /// Sets (or with `None` removes) the commit observer.
    pub fn set_commit_observer(&self, observer: Option<CommitObserver>) {
        *self.commit_observer.lock() = observer;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::catalogue::layers;
    use crate::{ActionType, FilterSpec};
    use parking_lot::Mutex;

    #[test]
    fn a_filter_commit_is_observed_around_its_publication() {
        let engine = Engine::default();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let log = Arc::clone(&seen);
        let l = layers::INBOUND_TRANSPORT_V4;
        engine.set_commit_observer(Some(Arc::new(move |e: &Engine, p: CommitPhase<'_>| {
            // The generation shows whether classify already sees the new snapshot.
            let entry = match p {
                CommitPhase::Publishing { layers } => (layers.to_vec(), e.layer_generation(l)),
                CommitPhase::Published => (Vec::new(), e.layer_generation(l)),
            };
            log.lock().push(entry);
        })));
        let before = engine.layer_generation(l);
        engine
            .add_filter(FilterSpec::new("f", l, ActionType::BLOCK))
            .expect("add");
        let after = engine.layer_generation(l);
        assert_ne!(before, after);
        assert_eq!(*seen.lock(), vec![(vec![l], before), (Vec::new(), after)]);
        // A commit that changes no filter publishes nothing and is not observed.
        let txn = engine.begin();
        txn.commit();
        assert_eq!(seen.lock().len(), 2);
        engine.set_commit_observer(None);
        engine
            .add_filter(FilterSpec::new("g", l, ActionType::PERMIT))
            .expect("add");
        assert_eq!(seen.lock().len(), 2);
    }
}
