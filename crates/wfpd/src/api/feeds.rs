//! What the queue workers feed the API with ([`Feeds`]): classify results and latency
//! (`/v1/metrics`) and their shim's flow table (`/v1/flows`, through the [`super::FlowBoard`]).
//!
//! ```text
//!  worker: each packet ─► ClassifyMetrics::observe(deciding layer, verdict, latency)
//!          end of batch / timer, at most every PUBLISH_EVERY ─► Shim::flow_rows ─► flow_dto
//!                                                           ─► FlowBoard::publish(queue, rows)
//! ```

use std::sync::Arc;
use std::time::Duration;

use wfp_api::FlowDto;
use wfp_shim::flow::{Direction, FlowState, Side};
use wfp_shim::pipeline::FlowRow;
use wfp_shim::Timestamp;

use super::metrics::ClassifyMetrics;
use super::FlowBoard;

/// How often a worker publishes its flows at most.
pub const PUBLISH_EVERY: Duration = Duration::from_millis(500);

/// The API's sinks a queue worker writes to (set once in [`crate::worker::WorkerShared::feeds`]
/// when the API starts).
pub struct Feeds {
    /// Classify results and latency.
    pub classify: Arc<ClassifyMetrics>,
    /// The flow table every worker publishes into.
    pub flows: Arc<FlowBoard>,
}

impl std::fmt::Debug for Feeds {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Feeds").finish_non_exhaustive()
    }
}

/// `CamelCase` → `snake_case` (the state names of [`FlowDto::state`]).
fn snake(name: &str) -> String {
    let mut out = String::with_capacity(name.len() + 4);
    for (i, c) in name.chars().enumerate() {
        if c.is_ascii_uppercase() && i > 0 {
            out.push('_');
        }
        out.push(c.to_ascii_lowercase());
    }
    out
}

fn state_name(state: FlowState) -> String {
    match state {
        FlowState::Datagram(s) => snake(&format!("{s:?}")),
        FlowState::Tcp(s) => snake(&format!("{s:?}")),
    }
}

/// The API row of one of queue `queue`'s flows at `now` (the worker's clock).
pub fn flow_dto(queue: u16, now: Timestamp, row: &FlowRow<'_>) -> FlowDto {
    let f = row.flow;
    let key = f.key();
    // The side that sends outbound packets: the initiator when the flow was opened outbound.
    let (out, inb) = match f.initiator() {
        Direction::Outbound => (Side::Initiator, Side::Responder),
        Direction::Inbound => (Side::Responder, Side::Initiator),
    };
    let ms = |d: Duration| u64::try_from(d.as_millis()).unwrap_or(u64::MAX);
    let carried = row.carried.unwrap_or_default();
    FlowDto {
        flow: f.id().get(),
        queue,
        ip_version: if key.local_addr().is_ipv4() { 4 } else { 6 },
        protocol: key.protocol(),
        local_addr: key.local_addr(),
        local_port: key.local_port(),
        remote_addr: key.remote_addr(),
        remote_port: key.remote_port(),
        direction: match f.initiator() {
            Direction::Outbound => "outbound".into(),
            Direction::Inbound => "inbound".into(),
        },
        state: state_name(f.state()),
        layer_ids: row.auth_layer.map(|l| l.0).into_iter().collect(),
        app_id: row.app_id.map(|a| String::from_utf8_lossy(a).into_owned()),
        // Plus what the kernel carried without the shim while the flow was offloaded.
        bytes_out: f.bytes(out) + carried.bytes[out.index()],
        bytes_in: f.bytes(inb) + carried.bytes[inb.index()],
        packets_out: f.packets(out) + carried.packets[out.index()],
        packets_in: f.packets(inb) + carried.packets[inb.index()],
        age_ms: ms(now.saturating_duration_since(f.first_seen())),
        idle_ms: ms(now.saturating_duration_since(f.last_seen())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn state_names_are_snake_case() {
        assert_eq!(snake("SynSent"), "syn_sent");
        assert_eq!(snake("Established"), "established");
        assert_eq!(
            state_name(FlowState::Tcp(wfp_shim::flow::TcpState::TimeWait)),
            "time_wait"
        );
    }
}
