//! What [`super::Shim::handle_packet`] answers: the verdict, why ([`Reason`], with a stable name
//! per reason and text only when printed), and every layer visited.

use std::fmt;

use wfp_core::{ActionType, ClassifyResult, FilterId, Hardness, LayerId, Trace};

use super::PacketDirection;
use crate::flow::FlowId;
use crate::frag::FragDrop;
use crate::wire::ParseError;

/// What the data path does with a packet.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Verdict {
    /// Let it through.
    Permit,
    /// Drop it.
    Block,
    /// Drop it silently (BLOCK with FWPS_CLASSIFY_OUT_FLAG_ABSORB: no discard layer, no event).
    Absorb,
}

/// Why a packet got its verdict.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Reason {
    /// A filter decided at `layer`.
    Filter,
    /// No filter decided anywhere; every layer applied the no-match default.
    NoMatch,
    /// The packet could not be parsed.
    Malformed(Malformed),
    /// A fragment was dropped (capture cut, unusable header, or by the reassembler: overlap,
    /// limits).
    FragmentDropped(FragmentDrop),
    /// A fragment is held until its datagram completes; the raw and fragment indications decided.
    FragmentHeld,
    /// A stream filter blocked bytes of this segment.
    StreamBlocked,
    /// A stream callout dropped the connection (DROP_CONNECTION); for the connection's later
    /// segments, `layer` and `filter` of the verdict name the drop.
    ConnectionDropped,
    /// A later segment of a TCP connection whose authorization (ALE_AUTH_CONNECT /
    /// ALE_AUTH_RECV_ACCEPT) was blocked: the connection does not exist, so the segment must not
    /// start a new flow mid-stream. `layer` and `filter` of the verdict name the refusal.
    ConnectionRefused,
    /// A retransmission or overlap carried different bytes than the first copy (brief decision 9).
    StreamOverlap,
    /// Held: a callout pended the flow's ALE authorization (§10.1, BLOCK+ABSORB). The packet is
    /// classified again when the operation completes ([`super::Shim::handle_async`], an
    /// [`super::OutputOrigin::Released`] output) or dropped.
    Pended,
    /// A later packet of a flow a callout aborted (`FwpsFlowAbort0`, §6). `layer` and `filter`
    /// of the verdict are those of the flow's last decision.
    FlowAborted,
    /// A packet of a connection a callout redirected (ALE_CONNECT_REDIRECT / ALE_BIND_REDIRECT,
    /// §10.3) that the shim could not rewrite (an IPv6 packet with extension headers): blocked
    /// rather than sent to the original destination.
    RedirectFailed,
}

impl Reason {
    /// The reason's stable snake_case name (for counters, logs and machine-readable output):
    /// `filter`, `no_match`, `malformed`, `fragment_dropped`, `fragment_held`, `stream_blocked`,
    /// `connection_dropped`, `connection_refused`, `stream_overlap`, `pended`, `flow_aborted`,
    /// `redirect_failed`.
    pub const fn name(&self) -> &'static str {
        match self {
            Self::Filter => "filter",
            Self::NoMatch => "no_match",
            Self::Malformed(_) => "malformed",
            Self::FragmentDropped(_) => "fragment_dropped",
            Self::FragmentHeld => "fragment_held",
            Self::StreamBlocked => "stream_blocked",
            Self::ConnectionDropped => "connection_dropped",
            Self::ConnectionRefused => "connection_refused",
            Self::StreamOverlap => "stream_overlap",
            Self::Pended => "pended",
            Self::FlowAborted => "flow_aborted",
            Self::RedirectFailed => "redirect_failed",
        }
    }
}

/// What could not be parsed, and why ([`Reason::Malformed`]). Printed, the parse error's text,
/// prefixed `reassembled datagram: ` for a datagram reassembled from fragments.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Malformed {
    /// The packet as the data path gave it.
    Packet(ParseError),
    /// The datagram reassembled from the packet's fragments.
    Reassembled(ParseError),
}

impl Malformed {
    /// The parse error.
    pub const fn error(&self) -> &ParseError {
        match self {
            Self::Packet(e) | Self::Reassembled(e) => e,
        }
    }
}

impl fmt::Display for Malformed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Packet(e) => write!(f, "{e}"),
            Self::Reassembled(e) => write!(f, "reassembled datagram: {e}"),
        }
    }
}

/// Why a fragment was dropped ([`Reason::FragmentDropped`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum FragmentDrop {
    /// The capture cut the fragment ([`super::PacketContext::truncated`]): the data a reassembly
    /// needs is not there. Printed `cut by the capture: it cannot be reassembled`.
    CaptureCut,
    /// The fragment's header cannot be used for reassembly. Printed `unusable fragment header`.
    UnusableHeader,
    /// The reassembler dropped it. Printed as the [`FragDrop`] variant's name (`Overlap`, …).
    Reassembly(FragDrop),
}

impl fmt::Display for FragmentDrop {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::CaptureCut => "cut by the capture: it cannot be reassembled",
            Self::UnusableHeader => "unusable fragment header",
            Self::Reassembly(FragDrop::DatagramLimit) => "DatagramLimit",
            Self::Reassembly(FragDrop::Inconsistent) => "Inconsistent",
            Self::Reassembly(FragDrop::Malformed) => "Malformed",
            Self::Reassembly(FragDrop::MemoryLimit) => "MemoryLimit",
            Self::Reassembly(FragDrop::Overlap) => "Overlap",
            Self::Reassembly(FragDrop::TooLarge) => "TooLarge",
        })
    }
}

/// One layer a packet was classified at.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LayerVisit {
    /// The layer.
    pub layer: LayerId,
    /// PERMIT, BLOCK or NONE_NO_MATCH.
    pub action: ActionType,
    /// Hard or soft.
    pub hardness: Hardness,
    /// The deciding filter.
    pub filter: Option<FilterId>,
    /// The decision was a veto.
    pub vetoed: bool,
    /// The full arbitration trace (when [`super::ShimConfig::trace`] is on).
    pub trace: Option<Trace>,
}

impl LayerVisit {
    /// The visit a classify at `layer` with result `r` makes.
    #[inline]
    pub(super) fn of(layer: LayerId, r: &ClassifyResult, trace: Option<Trace>) -> Self {
        Self {
            layer,
            action: r.action,
            hardness: r.hardness,
            filter: r.deciding_filter,
            vetoed: r.vetoed,
            trace,
        }
    }

    /// A visit decided without arbitration (no veto, no trace): `action` with `hardness`, by
    /// `filter` if one decided.
    #[inline]
    pub(super) fn plain(
        layer: LayerId,
        action: ActionType,
        hardness: Hardness,
        filter: Option<FilterId>,
    ) -> Self {
        Self {
            layer,
            action,
            hardness,
            filter,
            vetoed: false,
            trace: None,
        }
    }
}

/// The outcome of [`super::Shim::handle_packet`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PacketVerdict {
    /// What to do with the packet.
    pub verdict: Verdict,
    /// Why.
    pub reason: Reason,
    /// The layer that decided a BLOCK (or the last layer visited).
    pub layer: Option<LayerId>,
    /// The filter that decided, if a filter did.
    pub filter: Option<FilterId>,
    /// The flow's handle (FWPS flow id), when the packet belongs to one; for a loopback packet
    /// ([`PacketDirection::Loopback`]) the sender's flow.
    pub flow: Option<FlowId>,
    /// For a loopback packet, the receiver's flow (once its side was classified); else `None`.
    pub peer_flow: Option<FlowId>,
    /// The direction used.
    pub direction: PacketDirection,
    /// Every classify made for the packet, in order.
    pub visits: Vec<LayerVisit>,
    /// A PERMIT whose bytes changed: a stream callout edited the segment (blocked bytes and
    /// injected others inline, §9.2), or an earlier length-changing edit of its connection moved
    /// its sequence / acknowledgement numbers. The data path sends these bytes instead.
    pub edited: Option<EditedPacket>,
    /// Whether the later packets of the flow in this direction could get another answer
    /// (`docs/offload.md`): [`super::Offload::Eligible`] lets the data path carry them.
    pub offload: super::Offload,
    /// A packet of a connection a callout redirected (§10.3): the connection's addresses before
    /// and after. The packet was classified with the new addresses and `edited` holds it
    /// rewritten (when permitted).
    pub redirected: Option<Redirected>,
}

/// A connection a callout redirected at ALE_BIND_REDIRECT / ALE_CONNECT_REDIRECT
/// (wfp-reference §10.3): what its endpoints were and what the final request made them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Redirection {
    /// IP protocol (6 or 17).
    pub protocol: u8,
    /// The local endpoint the application used.
    pub original_local: std::net::SocketAddr,
    /// The destination the application connected to (`originalDestination`).
    pub original_remote: std::net::SocketAddr,
    /// The local endpoint after the bind redirect (`original_local` when none changed it).
    pub local: std::net::SocketAddr,
    /// The destination after the connect redirect (`original_remote` when none changed it).
    pub remote: std::net::SocketAddr,
    /// `modifierFilterId` of the final request: the filter whose callout made the last change.
    pub filter: Option<FilterId>,
    /// The layer of that change (ALE_CONNECT_REDIRECT_V4/V6 or ALE_BIND_REDIRECT_V4/V6).
    pub layer: LayerId,
    /// `localRedirectTargetPID` of the final request (0: not set).
    pub local_redirect_target_pid: u32,
    /// The redirect records (who redirected the connection, oldest first).
    pub records: std::sync::Arc<wfp_core::redirect::RedirectRecords>,
}

/// [`PacketVerdict::redirected`]: the connection's redirection, and whether this packet is the
/// one whose redirect classify made it (the connection's first).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Redirected {
    /// The redirection.
    pub connection: std::sync::Arc<Redirection>,
    /// This packet's classify at the redirect layers made the redirection.
    pub first: bool,
}

/// The bytes to send instead of a packet ([`PacketVerdict::edited`]): a whole IP packet with
/// valid lengths and checksums.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EditedPacket {
    /// The packet, from the IP header.
    pub bytes: Vec<u8>,
    /// The injection handles whose stream injections went into it (empty for a packet only
    /// shifted by an earlier edit).
    pub injectors: Vec<wfp_core::inject::InjectionHandle>,
}

impl PacketVerdict {
    /// A PERMIT / NO_MATCH verdict with no visits, for a packet travelling `direction`.
    pub fn new(direction: PacketDirection) -> Self {
        Self {
            verdict: Verdict::Permit,
            reason: Reason::NoMatch,
            layer: None,
            filter: None,
            flow: None,
            peer_flow: None,
            direction,
            visits: Vec::new(),
            edited: None,
            offload: super::Offload::Keep(super::KeepReason::NoFlow),
            redirected: None,
        }
    }

    /// Back to [`PacketVerdict::new`], keeping the visit list's capacity.
    pub(super) fn reset(&mut self, direction: PacketDirection) {
        self.verdict = Verdict::Permit;
        self.reason = Reason::NoMatch;
        self.layer = None;
        self.filter = None;
        self.flow = None;
        self.peer_flow = None;
        self.direction = direction;
        self.visits.clear();
        self.edited = None;
        self.offload = super::Offload::Keep(super::KeepReason::NoFlow);
        self.redirected = None;
    }

    /// Blocks the packet for `reason`.
    #[inline]
    pub(super) fn block(&mut self, reason: Reason) {
        self.verdict = Verdict::Block;
        self.reason = reason;
    }
}
