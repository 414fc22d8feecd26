//! Test helpers: install a callout with a filter through the public engine API, build incoming
//! values and metadata by hand, and a small stream-layer simulator that follows the engine's stream
//! protocol (§9.2, brief decision 8) on top of `Engine::classify`.

#![allow(dead_code, reason = "each test binary uses a different subset")]

use std::net::Ipv4Addr;
use std::sync::Arc;

use wfp_core::callout::{LayerData, Metadata, StreamIoPacket};
use wfp_core::catalogue::{self, layers, LayerId};
use wfp_core::constants::{Direction, MetadataFields, StreamFlags};
use wfp_core::{
    ActionType, Callout, CalloutFlags, CalloutId, CalloutRegistration, CalloutSpec, Engine,
    FilterId, FilterSpec, Guid, StreamAction, Value,
};

/// A registered callout with its management object and one filter.
pub(crate) struct Installed {
    pub(crate) key: Guid,
    pub(crate) id: CalloutId,
    pub(crate) filter: FilterId,
}

/// Registers `callout` under `key`, adds its management callout at `layer` and one filter with
/// `action` (in the default sublayer).
pub(crate) fn install(
    engine: &Engine,
    name: &str,
    layer: LayerId,
    callout: Arc<dyn Callout>,
    flags: CalloutFlags,
    flow_delete: bool,
    action: ActionType,
) -> Installed {
    let key = Guid::from_name("test-callout", &format!("{name}@{}", layer.0));
    let reg = CalloutRegistration {
        key,
        flags,
        callout,
        flow_delete,
    };
    let id = engine.register_callout(reg).expect("register");
    engine
        .add_callout(CalloutSpec {
            key,
            name: name.to_string(),
            description: String::new(),
            flags: 0,
            provider: None,
            applicable_layer: layer,
        })
        .expect("add callout");
    let filter = add_filter(engine, name, layer, action, key);
    Installed { key, id, filter }
}

/// Adds a filter invoking the callout `key`.
pub(crate) fn add_filter(
    engine: &Engine,
    name: &str,
    layer: LayerId,
    action: ActionType,
    key: Guid,
) -> FilterId {
    let mut f = FilterSpec::new(format!("{name} filter"), layer, action);
    f.callout = Some(key);
    engine.add_filter(f).expect("add filter")
}

/// Metadata with a flow handle.
pub(crate) fn meta(flow: u64) -> Metadata {
    Metadata {
        present: MetadataFields::FLOW_HANDLE,
        flow_handle: flow,
        ..Metadata::default()
    }
}

/// Incoming values for `layer` with the named fields set (everything else FWP_EMPTY).
pub(crate) fn values(layer: LayerId, fields: &[(&str, Value)]) -> Vec<Value> {
    let def = catalogue::layer(layer).expect("layer");
    let mut v = vec![Value::Empty; def.fields.len()];
    for (name, value) in fields {
        let i = def
            .fields
            .iter()
            .position(|f| f.name == *name)
            .unwrap_or_else(|| panic!("{} has no field {name}", def.name));
        v[i] = value.clone();
    }
    v
}

pub(crate) const LOCAL: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 1);
pub(crate) const REMOTE: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 7);

/// ALE_FLOW_ESTABLISHED_V4 values of an outbound flow from LOCAL:`lport` to REMOTE:`rport`.
pub(crate) fn established_v4(protocol: u8, lport: u16, rport: u16) -> Vec<Value> {
    values(
        layers::ALE_FLOW_ESTABLISHED_V4,
        &[
            ("IP_PROTOCOL", Value::Uint8(protocol)),
            ("IP_LOCAL_ADDRESS", Value::Uint32(u32::from(LOCAL))),
            ("IP_LOCAL_PORT", Value::Uint16(lport)),
            ("IP_REMOTE_ADDRESS", Value::Uint32(u32::from(REMOTE))),
            ("IP_REMOTE_PORT", Value::Uint16(rport)),
            ("DIRECTION", Value::Uint32(Direction::Outbound as u32)),
            ("ALE_APP_ID", Value::blob_from_str("/usr/bin/curl")),
        ],
    )
}

/// STREAM_V4 values for the same connection.
pub(crate) fn stream_v4(lport: u16, rport: u16) -> Vec<Value> {
    values(
        layers::STREAM_V4,
        &[
            ("IP_LOCAL_ADDRESS", Value::Uint32(u32::from(LOCAL))),
            ("IP_LOCAL_PORT", Value::Uint16(lport)),
            ("IP_REMOTE_ADDRESS", Value::Uint32(u32::from(REMOTE))),
            ("IP_REMOTE_PORT", Value::Uint16(rport)),
        ],
    )
}

/// DATAGRAM_DATA_V4 values for a UDP datagram in `dir`.
pub(crate) fn datagram_v4(lport: u16, rport: u16, dir: Direction) -> Vec<Value> {
    values(
        layers::DATAGRAM_DATA_V4,
        &[
            ("IP_PROTOCOL", Value::Uint8(17)),
            ("IP_LOCAL_ADDRESS", Value::Uint32(u32::from(LOCAL))),
            ("IP_LOCAL_PORT", Value::Uint16(lport)),
            ("IP_REMOTE_ADDRESS", Value::Uint32(u32::from(REMOTE))),
            ("IP_REMOTE_PORT", Value::Uint16(rport)),
            ("DIRECTION", Value::Uint32(dir as u32)),
        ],
    )
}

/// One direction of a simulated stream.
#[derive(Default)]
pub(crate) struct Side {
    /// Bytes indicated but not yet decided (the engine's accumulation buffer).
    pending: Vec<u8>,
    /// `countBytesRequired` of the last NEED_MORE_DATA.
    required: usize,
    /// Permitted bytes, in order: what the peer receives.
    pub(crate) delivered: Vec<u8>,
    /// Blocked bytes.
    pub(crate) blocked: usize,
}

/// A connection at STREAM_V4 driven through `Engine::classify`, following the stream protocol:
/// NEED_MORE_DATA accumulates until `countBytesRequired` total bytes are held, then everything held
/// is re-indicated; PERMIT/BLOCK apply to `countBytesEnforced` leading bytes and the rest is
/// re-indicated at once; DROP_CONNECTION ends the connection; ALLOW_CONNECTION permits the rest of
/// the flow without classifying it again.
pub(crate) struct StreamSim<'e> {
    engine: &'e Engine,
    layer: LayerId,
    values: Vec<Value>,
    meta: Metadata,
    pub(crate) outbound: Side,
    pub(crate) inbound: Side,
    pub(crate) dropped: bool,
    pub(crate) allowed: bool,
    pub(crate) classifies: usize,
    /// Every stream action answered, in order.
    pub(crate) actions: Vec<StreamAction>,
}

impl<'e> StreamSim<'e> {
    pub(crate) fn new(engine: &'e Engine, flow: u64) -> Self {
        Self {
            engine,
            layer: layers::STREAM_V4,
            values: stream_v4(40000, 443),
            meta: meta(flow),
            outbound: Side::default(),
            inbound: Side::default(),
            dropped: false,
            allowed: false,
            classifies: 0,
            actions: Vec::new(),
        }
    }

    /// A segment of outbound data.
    pub(crate) fn send(&mut self, data: &[u8]) {
        self.segment(StreamFlags::SEND, data);
    }

    /// A segment of inbound data.
    pub(crate) fn receive(&mut self, data: &[u8]) {
        self.segment(StreamFlags::RECEIVE, data);
    }

    /// Outbound FIN: whatever is held is indicated with SEND_DISCONNECT.
    pub(crate) fn send_fin(&mut self) {
        self.segment(StreamFlags::SEND | StreamFlags::SEND_DISCONNECT, &[]);
    }

    /// Indicates one segment with `flags` (a *_DISCONNECT flag marks the end of the direction).
    pub(crate) fn segment(&mut self, flags: StreamFlags, data: &[u8]) {
        let inbound = flags.contains(StreamFlags::RECEIVE);
        let fin = flags.intersects(StreamFlags::SEND_DISCONNECT | StreamFlags::RECEIVE_DISCONNECT);
        self.side(inbound).pending.extend_from_slice(data);
        loop {
            let (dropped, allowed) = (self.dropped, self.allowed);
            let side = self.side(inbound);
            if dropped {
                side.pending.clear();
                return;
            }
            if allowed {
                let rest: Vec<u8> = side.pending.drain(..).collect();
                side.delivered.extend_from_slice(&rest);
                return;
            }
            if side.pending.is_empty() || (!fin && side.pending.len() < side.required) {
                return;
            }
            let held = std::mem::take(&mut side.pending);
            let mut ld = LayerData::Stream(StreamIoPacket::new(flags, &held));
            let res = self
                .engine
                .classify(self.layer, &self.values, &self.meta, &mut ld, None);
            self.classifies += 1;
            let LayerData::Stream(io) = ld else {
                unreachable!("layer data kind changed")
            };
            let (action, required, enforced) = match res.stream {
                Some(v) => (v.action, v.count_bytes_required, v.count_bytes_enforced),
                None => (
                    StreamAction::None,
                    io.count_bytes_required,
                    io.count_bytes_enforced,
                ),
            };
            self.actions.push(action);
            let side = self.side(inbound);
            match action {
                StreamAction::NeedMoreData => {
                    assert!(!fin, "NEED_MORE_DATA after the stream ended");
                    let required = required as usize;
                    assert!(
                        required > held.len(),
                        "asked for {required} bytes in total while holding {}",
                        held.len()
                    );
                    side.required = required;
                    side.pending = held;
                    return;
                }
                StreamAction::DropConnection => {
                    side.blocked += held.len();
                    self.dropped = true;
                    return;
                }
                StreamAction::AllowConnection => {
                    side.delivered.extend_from_slice(&held);
                    self.allowed = true;
                    return;
                }
                StreamAction::None | StreamAction::Defer => {
                    let n = usize::try_from(enforced)
                        .ok()
                        .filter(|n| *n > 0 && *n <= held.len())
                        .unwrap_or(held.len());
                    if res.action == ActionType::BLOCK {
                        side.blocked += n;
                    } else {
                        side.delivered.extend_from_slice(&held[..n]);
                    }
                    side.required = 0;
                    side.pending = held[n..].to_vec();
                }
            }
        }
    }

    fn side(&mut self, inbound: bool) -> &mut Side {
        if inbound {
            &mut self.inbound
        } else {
            &mut self.outbound
        }
    }
}
