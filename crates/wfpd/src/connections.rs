//! `GET /v1/connections`: the connection monitor's live flows (`wfp.connection-monitor`, placed
//! by the policy at ALE_FLOW_ESTABLISHED and the byte-counting layers), as JSON.
//!
//! ```text
//!  wfp.connection-monitor ─► Host::connections (ConnectionLog) ◄── live() ── GET /v1/connections
//!     flowDeleteFn: finished ─► drained by Daemon::tick (logged "connection closed"), no longer
//!                               listed
//! ```
//!
//! Without the monitor in the policy the list is empty.

use serde::Serialize;
use wfp_callouts::{Connection, ConnectionLog};
use wfp_core::constants::Direction;

/// One open connection (`ConnectionView` in `docs/api.md`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ConnectionView {
    /// The flow handle.
    pub flow: u64,
    /// `ALE_FLOW_ESTABLISHED_V4` or `ALE_FLOW_ESTABLISHED_V6`.
    pub layer: String,
    /// IP_PROTOCOL (6 TCP, 17 UDP, ...).
    pub protocol: u8,
    /// IP_LOCAL_ADDRESS, when known.
    pub local_address: Option<String>,
    /// IP_LOCAL_PORT.
    pub local_port: u16,
    /// IP_REMOTE_ADDRESS, when known.
    pub remote_address: Option<String>,
    /// IP_REMOTE_PORT.
    pub remote_port: u16,
    /// `outbound` (this host initiated it) or `inbound`; `null` when unknown.
    pub direction: Option<&'static str>,
    /// The process path (ALE_APP_ID's source), when the socket owner was found.
    pub process_path: Option<String>,
    /// The process id.
    pub process_id: Option<u64>,
    /// The user (uid).
    pub user: Option<u64>,
    /// Bytes sent (stream bytes, or UDP payload bytes).
    pub bytes_out: u64,
    /// Bytes received.
    pub bytes_in: u64,
    /// Milliseconds since it was established.
    pub age_ms: u64,
}

impl ConnectionView {
    /// The view of `c`, `now` being the monitor's clock.
    pub fn of(c: &Connection, now: std::time::Duration) -> Self {
        Self {
            flow: c.flow_handle,
            layer: wfp_core::catalogue::layer(c.layer)
                .map_or_else(|| c.layer.0.to_string(), |l| l.name.to_string()),
            protocol: c.tuple.protocol,
            local_address: c.tuple.local_addr.map(|a| a.to_string()),
            local_port: c.tuple.local_port,
            remote_address: c.tuple.remote_addr.map(|a| a.to_string()),
            remote_port: c.tuple.remote_port,
            direction: c.direction.map(|d| match d {
                Direction::Outbound => "outbound",
                Direction::Inbound => "inbound",
            }),
            process_path: c.process_path.as_deref().map(str::to_owned),
            process_id: c.process_id,
            user: c.user,
            bytes_out: c.outbound.bytes,
            bytes_in: c.inbound.bytes,
            age_ms: u64::try_from(now.saturating_sub(c.start).as_millis()).unwrap_or(u64::MAX),
        }
    }
}

/// The live connections of `log`, by flow handle.
pub fn list(log: &ConnectionLog) -> Vec<ConnectionView> {
    let now = log.clock().now();
    log.live()
        .iter()
        .map(|c| ConnectionView::of(c, now))
        .collect()
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::time::Duration;

    use wfp_callouts::Clock;
    use wfp_core::catalogue::layers;

    use super::*;

    #[test]
    fn a_connection_is_shown_with_its_owner_bytes_and_age() {
        let c = Connection {
            flow_handle: 9,
            layer: layers::ALE_FLOW_ESTABLISHED_V6,
            tuple: wfp_callouts::flow_logger::FiveTuple {
                protocol: 6,
                local_addr: Some("fd77::1".parse().expect("addr")),
                local_port: 40000,
                remote_addr: Some("fd77::2".parse().expect("addr")),
                remote_port: 7200,
            },
            direction: Some(Direction::Outbound),
            process_path: Some(Arc::from("/usr/bin/client")),
            process_id: Some(42),
            user: Some(1000),
            start: Duration::from_secs(10),
            end: Duration::from_secs(10),
            outbound: Default::default(),
            inbound: Default::default(),
        };
        let v = ConnectionView::of(&c, Duration::from_millis(12_500));
        assert_eq!(v.layer, "ALE_FLOW_ESTABLISHED_V6");
        assert_eq!(v.remote_address.as_deref(), Some("fd77::2"));
        assert_eq!(
            (v.direction, v.user, v.age_ms),
            (Some("outbound"), Some(1000), 2500)
        );
        let json = serde_json::to_value(&v).expect("json");
        assert_eq!(json["process_path"], "/usr/bin/client");
        assert_eq!(json["bytes_in"], 0);
        // An empty log lists nothing.
        assert!(list(&ConnectionLog::new(Arc::new(Clock::new()))).is_empty());
    }
}
