//! Net events to live subscribers (`GET /v1/events`): the daemon publishes what it drains from
//! the engine; each subscriber has its query conditions and a bounded queue, and a subscriber that
//! does not keep up loses events (visible as gaps in `seq`, counted) instead of slowing anyone
//! down.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{self, Receiver, SyncSender, TrySendError};
use std::sync::Mutex;

use wfp_api::NetEventDto;
use wfp_core::engine::NetEventEnumTemplate;
use wfp_core::{NetEvent, NetEventKind};

/// Events a subscriber may have queued before it loses new ones.
pub const SUBSCRIBER_QUEUE: usize = 1024;

struct Subscriber {
    tx: SyncSender<NetEventDto>,
    template: NetEventEnumTemplate,
}

/// The subscribers, and counters of what was published.
#[derive(Default)]
pub struct EventHub {
    subscribers: Mutex<Vec<Subscriber>>,
    /// Events a slow subscriber lost.
    pub lost: AtomicU64,
    /// Events published, by kind ([`NetEventKind::ALL`] order).
    pub published: [AtomicU64; NetEventKind::ALL.len()],
}

impl EventHub {
    /// A new subscription to the events matching `template`.
    pub fn subscribe(&self, template: NetEventEnumTemplate) -> Receiver<NetEventDto> {
        let (tx, rx) = mpsc::sync_channel(SUBSCRIBER_QUEUE);
        self.subscribers
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .push(Subscriber { tx, template });
        rx
    }

    /// Hands `events` to every subscriber whose conditions they match; drops subscribers that
    /// went away.
    pub fn publish(&self, events: &[NetEvent]) {
        for e in events {
            if let Some(i) = NetEventKind::ALL.iter().position(|k| *k == e.kind) {
                if let Some(c) = self.published.get(i) {
                    c.fetch_add(1, Ordering::Relaxed);
                }
            }
        }
        let mut subs = self
            .subscribers
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if subs.is_empty() {
            return;
        }
        for e in events {
            let dto = NetEventDto::from(e);
            subs.retain(|s| {
                if !s.template.matches(e) {
                    return true;
                }
                match s.tx.try_send(dto.clone()) {
                    Ok(()) => true,
                    Err(TrySendError::Full(_)) => {
                        self.lost.fetch_add(1, Ordering::Relaxed);
                        true
                    }
                    Err(TrySendError::Disconnected(_)) => false,
                }
            });
        }
    }
}
