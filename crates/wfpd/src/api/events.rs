//! Net events to live subscribers (`GET /v1/events`): the daemon publishes what it drains from
//! the engine; each subscriber has a bounded queue, and a subscriber that does not keep up loses
//! events (visible as gaps in `seq`, counted) instead of slowing anyone down.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{self, Receiver, SyncSender, TrySendError};
use std::sync::Mutex;

use wfp_api::NetEventDto;
use wfp_core::NetEvent;

/// Events a subscriber may have queued before it loses new ones.
pub const SUBSCRIBER_QUEUE: usize = 1024;

/// The subscribers and the event sequence.
#[derive(Default)]
pub struct EventHub {
    subscribers: Mutex<Vec<SyncSender<NetEventDto>>>,
    seq: AtomicU64,
    /// Events a slow subscriber lost.
    pub lost: AtomicU64,
}

impl EventHub {
    /// A new subscription.
    pub fn subscribe(&self) -> Receiver<NetEventDto> {
        let (tx, rx) = mpsc::sync_channel(SUBSCRIBER_QUEUE);
        self.subscribers
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .push(tx);
        rx
    }

    /// Hands `events` to every subscriber; drops subscribers that went away.
    pub fn publish(&self, events: &[NetEvent]) {
        if events.is_empty() {
            return;
        }
        let mut subs = self
            .subscribers
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        for e in events {
            let dto = NetEventDto {
                seq: self.seq.fetch_add(1, Ordering::Relaxed) + 1,
                kind: e.kind.name().to_string(),
                layer: e.layer.to_string(),
                layer_id: e.layer.0,
                filter_id: e.filter_id.map(|f| f.0),
                overridden_filter_id: e.overridden_filter_id.map(|f| f.0),
                callout_id: e.callout_id.map(|c| c.0),
                flow: e.flow,
            };
            subs.retain(|s| match s.try_send(dto.clone()) {
                Ok(()) => true,
                Err(TrySendError::Full(_)) => {
                    self.lost.fetch_add(1, Ordering::Relaxed);
                    true
                }
                Err(TrySendError::Disconnected(_)) => false,
            });
        }
    }
}
