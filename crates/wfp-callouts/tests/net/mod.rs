//! Test helpers for the asynchronous built-ins: real IPv4 packets (checksums filled by the
//! shim's builder) through a real [`Shim`] over an engine with announced flows, the built-in
//! created by name with parameters and the host's worker run before `handle_async`, as a replay
//! does.

#![allow(dead_code, reason = "each test binary uses a different subset")]

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;

use wfp_callouts::{builtin, Host};
use wfp_core::engine::FlowTracking;
use wfp_core::{ActionType, CalloutId, Engine, EngineOptions, LayerId};
use wfp_shim::wire::build::ip_packet;
use wfp_shim::{PacketContext, PacketDirection, PacketVerdict, Shim, ShimConfig, ShimOutput};
use wfp_shim::{Timestamp, Verdict};

pub(crate) const SYN: u8 = 0x02;
pub(crate) const ACK: u8 = 0x10;
pub(crate) const PSH_ACK: u8 = 0x18;
pub(crate) const FIN_ACK: u8 = 0x11;

pub(crate) const CLIENT: SocketAddr =
    SocketAddr::new(IpAddr::V4(Ipv4Addr::new(10, 0, 0, 1)), 40000);
pub(crate) const SERVER: SocketAddr = SocketAddr::new(IpAddr::V4(Ipv4Addr::new(192, 0, 2, 7)), 80);

/// A TCP segment in an IPv4 packet, every checksum valid.
pub(crate) fn tcp(
    src: SocketAddr,
    dst: SocketAddr,
    seq: u32,
    ack: u32,
    flags: u8,
    payload: &[u8],
) -> Vec<u8> {
    let mut seg = Vec::with_capacity(20 + payload.len());
    seg.extend_from_slice(&src.port().to_be_bytes());
    seg.extend_from_slice(&dst.port().to_be_bytes());
    seg.extend_from_slice(&seq.to_be_bytes());
    seg.extend_from_slice(&ack.to_be_bytes());
    seg.extend_from_slice(&[5 << 4, flags, 0xff, 0xff, 0, 0, 0, 0]);
    seg.extend_from_slice(payload);
    ip_packet(src.ip(), dst.ip(), 6, &seg).expect("ipv4 packet")
}

/// A UDP datagram in an IPv4 packet, every checksum valid.
pub(crate) fn udp(src: SocketAddr, dst: SocketAddr, payload: &[u8]) -> Vec<u8> {
    let len = u16::try_from(8 + payload.len()).expect("small");
    let mut seg = Vec::with_capacity(usize::from(len));
    seg.extend_from_slice(&src.port().to_be_bytes());
    seg.extend_from_slice(&dst.port().to_be_bytes());
    seg.extend_from_slice(&len.to_be_bytes());
    seg.extend_from_slice(&[0, 0]);
    seg.extend_from_slice(payload);
    ip_packet(src.ip(), dst.ip(), 17, &seg).expect("ipv4 packet")
}

/// (seq, ack, flags, payload) of a TCP packet; `None` for anything else.
pub(crate) fn tcp_fields(p: &[u8]) -> Option<(u32, u32, u8, Vec<u8>)> {
    let parsed = wfp_shim::wire::parse(p).ok()?;
    let wfp_shim::wire::Transport::Tcp(t) = &parsed.transport else {
        return None;
    };
    Some((
        t.seq,
        t.ack,
        p.get(33)?.to_owned(),
        p.get(t.payload.clone())?.to_vec(),
    ))
}

/// An engine with announced flows, its shim, and the host of its built-ins.
pub(crate) struct Net {
    pub(crate) engine: Arc<Engine>,
    pub(crate) shim: Shim,
    pub(crate) host: Host,
    pub(crate) now: Timestamp,
}

impl Net {
    pub(crate) fn new() -> Self {
        let engine = Arc::new(Engine::new(EngineOptions {
            flow_tracking: FlowTracking::Announced,
            ..EngineOptions::default()
        }));
        Self {
            shim: Shim::new(Arc::clone(&engine), ShimConfig::default()),
            engine,
            host: Host::new(),
            now: Timestamp::from_secs(1),
        }
    }

    /// The built-in `name` with `params` at `layer`, one filter with `action`.
    pub(crate) fn install(
        &self,
        name: &str,
        layer: LayerId,
        action: ActionType,
        params: &[(&str, &str)],
    ) -> CalloutId {
        let b = builtin(name).expect("built-in");
        let params: Vec<(String, String)> = params
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let callout = b.make_with(&self.host, &params).expect("parameters");
        crate::common::install(
            &self.engine,
            name,
            layer,
            callout,
            b.flags,
            b.flow_delete,
            action,
        )
        .id
    }

    fn packet(&mut self, dir: PacketDirection, bytes: &[u8], ctx: &PacketContext) -> PacketVerdict {
        self.now = self.now.saturating_add(std::time::Duration::from_millis(1));
        self.host.clock.set(self.now.as_duration());
        self.shim.handle_packet(self.now, dir, bytes, ctx)
    }

    /// An outbound packet.
    pub(crate) fn send(&mut self, bytes: &[u8]) -> PacketVerdict {
        self.packet(PacketDirection::Outbound, bytes, &PacketContext::default())
    }

    /// An outbound packet with a data-path context (socket owner...).
    pub(crate) fn send_with(&mut self, bytes: &[u8], ctx: &PacketContext) -> PacketVerdict {
        self.packet(PacketDirection::Outbound, bytes, ctx)
    }

    /// An inbound packet.
    pub(crate) fn recv(&mut self, bytes: &[u8]) -> PacketVerdict {
        self.packet(PacketDirection::Inbound, bytes, &PacketContext::default())
    }

    /// What a replay does after each packet: the host's worker, then the shim's asynchronous
    /// step; the outputs it produced.
    pub(crate) fn work(&mut self) -> Vec<ShimOutput> {
        self.host.worker.run(&self.engine);
        self.shim.handle_async(self.now);
        std::iter::from_fn(|| self.shim.poll_output()).collect()
    }

    /// A client → server TCP handshake (client ISN 1000, server ISN 5000), every packet permitted.
    pub(crate) fn handshake(&mut self) {
        for v in [
            self.send(&tcp(CLIENT, SERVER, 1000, 0, SYN, b"")),
            self.recv(&tcp(SERVER, CLIENT, 5000, 1001, SYN | ACK, b"")),
            self.send(&tcp(CLIENT, SERVER, 1001, 5001, ACK, b"")),
        ] {
            assert_eq!(v.verdict, Verdict::Permit, "{v:?}");
        }
    }
}
