//! Values that cross the queue boundary: the queued packet with its metadata, and verdicts.
//!
//! Everything here is plain data. A [`QueuedPacket`] is produced only by the parser in
//! [`crate::wire`], which checks every attribute length, so its fields are always consistent with
//! what the kernel sent (a field is `None` when the kernel did not send the attribute).

use std::time::Duration;

/// The kernel's id of a queued packet, unique and increasing within one queue.
///
/// A verdict names the packet by this id. Ids are assigned by the kernel in queueing order
/// (`++id_sequence`), which is what makes [`crate::Queue::verdict_batch`] meaningful.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct PacketId(pub u32);

/// The netfilter hook at which the packet was queued (`nfqnl_msg_packet_hdr.hook`).
///
/// Numbers are the `NF_INET_*` values for the IPv4/IPv6 families; other families (bridge, ARP)
/// reuse the same numbers with other meanings, so anything unknown is kept as [`Hook::Other`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum Hook {
    /// `NF_INET_PRE_ROUTING` (0).
    #[default]
    PreRouting,
    /// `NF_INET_LOCAL_IN` (1): iptables `INPUT`.
    LocalIn,
    /// `NF_INET_FORWARD` (2): iptables `FORWARD`.
    Forward,
    /// `NF_INET_LOCAL_OUT` (3): iptables `OUTPUT`.
    LocalOut,
    /// `NF_INET_POST_ROUTING` (4).
    PostRouting,
    /// Any other hook number.
    Other(u8),
}

impl Hook {
    /// Maps the kernel's hook number.
    pub fn from_raw(raw: u8) -> Self {
        match raw {
            0 => Self::PreRouting,
            1 => Self::LocalIn,
            2 => Self::Forward,
            3 => Self::LocalOut,
            4 => Self::PostRouting,
            other => Self::Other(other),
        }
    }

    /// The kernel's hook number.
    pub fn raw(self) -> u8 {
        match self {
            Self::PreRouting => 0,
            Self::LocalIn => 1,
            Self::Forward => 2,
            Self::LocalOut => 3,
            Self::PostRouting => 4,
            Self::Other(other) => other,
        }
    }
}

/// Conntrack's view of the packet (`enum ip_conntrack_info`, from `NFQA_CT_INFO`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum CtInfo {
    /// `IP_CT_ESTABLISHED` (0): part of an established connection, original direction.
    Established,
    /// `IP_CT_RELATED` (1): related to an existing connection (e.g. ICMP error, FTP data).
    Related,
    /// `IP_CT_NEW` (2): starts a new connection (or belongs to one not yet seen in reply).
    New,
    /// `IP_CT_ESTABLISHED_REPLY` (3): established connection, reply direction.
    EstablishedReply,
    /// `IP_CT_RELATED_REPLY` (4): related connection, reply direction.
    RelatedReply,
    /// Any other value (future kernels, `IP_CT_UNTRACKED` is never sent).
    Other(u32),
}

impl CtInfo {
    /// Maps the kernel's `ip_conntrack_info` number.
    pub fn from_raw(raw: u32) -> Self {
        match raw {
            0 => Self::Established,
            1 => Self::Related,
            2 => Self::New,
            3 => Self::EstablishedReply,
            4 => Self::RelatedReply,
            other => Self::Other(other),
        }
    }

    /// True for the reply-direction values.
    pub fn is_reply(self) -> bool {
        matches!(self, Self::EstablishedReply | Self::RelatedReply)
    }
}

/// Selected fields of the nested `NFQA_CT` attribute (`CTA_*` from `nfnetlink_conntrack.h`).
///
/// The kernel sends `NFQA_CT` only when the queue has the `CONNTRACK` flag, the kernel was built
/// with `CONFIG_NETFILTER_NETLINK_GLUE_CT`, and the packet has a conntrack entry.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct Conntrack {
    /// `CTA_ID`: the conntrack entry's id.
    pub id: Option<u32>,
    /// `CTA_STATUS`: `IPS_*` status bits (e.g. `IPS_SEEN_REPLY` = 2, `IPS_ASSURED` = 4).
    pub status: Option<u32>,
    /// `CTA_MARK`: the connection mark.
    pub mark: Option<u32>,
    /// `CTA_ZONE`: the conntrack zone.
    pub zone: Option<u16>,
}

/// `NFQA_SKB_INFO` bits.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct SkbInfo(pub u32);

impl SkbInfo {
    /// `NFQA_SKB_CSUMNOTREADY`: checksums look wrong but will be filled in by offload.
    pub const CSUM_NOT_READY: u32 = 1 << 0;
    /// `NFQA_SKB_GSO`: the packet is a GSO super-packet (larger than the device MTU).
    pub const GSO: u32 = 1 << 1;
    /// `NFQA_SKB_CSUM_NOTVERIFIED`: the checksum was not verified by the device.
    pub const CSUM_NOT_VERIFIED: u32 = 1 << 2;

    /// True if the checksum is not yet filled in (do not validate it).
    pub fn csum_not_ready(self) -> bool {
        self.0 & Self::CSUM_NOT_READY != 0
    }

    /// True for a GSO super-packet.
    pub fn gso(self) -> bool {
        self.0 & Self::GSO != 0
    }

    /// True if no device verified the checksum.
    pub fn csum_not_verified(self) -> bool {
        self.0 & Self::CSUM_NOT_VERIFIED != 0
    }
}

/// A link-layer source address (`NFQA_HWADDR`), present for packets received on an
/// Ethernet-like device.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct HwAddr {
    /// Number of valid bytes in `bytes` (at most 8).
    pub len: u8,
    /// The address, zero-padded.
    pub bytes: [u8; 8],
}

impl HwAddr {
    /// The valid bytes of the address.
    pub fn as_slice(&self) -> &[u8] {
        let len = usize::from(self.len).min(self.bytes.len());
        self.bytes.get(..len).unwrap_or(&[])
    }
}

/// One packet waiting in a kernel queue for a verdict, with the metadata the kernel sent.
///
/// Every packet read from a [`crate::Queue`] must get exactly one verdict (or be covered by a
/// batch verdict); an undecided packet occupies a queue slot until the socket is closed, at which
/// point the kernel drops it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct QueuedPacket {
    /// The queue number the packet came from (`nfgenmsg.res_id`).
    pub queue: u16,
    /// The packet id to use in the verdict.
    pub id: PacketId,
    /// The link-layer protocol (EtherType, e.g. `0x0800` IPv4, `0x86dd` IPv6).
    pub hw_protocol: u16,
    /// The hook the packet was queued at.
    pub hook: Hook,
    /// The packet bytes (network header first for IPv4/IPv6), at most the copy range.
    pub payload: Vec<u8>,
    /// `NFQA_CAP_LEN`: the full packet length, sent only when `payload` was cut short.
    pub cap_len: Option<u32>,
    /// `NFQA_MARK`: the packet mark.
    pub mark: Option<u32>,
    /// `NFQA_IFINDEX_INDEV`.
    pub indev: Option<u32>,
    /// `NFQA_IFINDEX_OUTDEV`.
    pub outdev: Option<u32>,
    /// `NFQA_IFINDEX_PHYSINDEV` (bridged packets).
    pub phys_indev: Option<u32>,
    /// `NFQA_IFINDEX_PHYSOUTDEV` (bridged packets).
    pub phys_outdev: Option<u32>,
    /// `NFQA_HWADDR`.
    pub hw_addr: Option<HwAddr>,
    /// `NFQA_UID`: owner uid of the local socket (queue flag `UID_GID`).
    pub uid: Option<u32>,
    /// `NFQA_GID`: owner gid of the local socket (queue flag `UID_GID`).
    pub gid: Option<u32>,
    /// `NFQA_CT_INFO` (queue flag `CONNTRACK`).
    pub ct_info: Option<CtInfo>,
    /// `NFQA_CT` (queue flag `CONNTRACK`).
    pub conntrack: Option<Conntrack>,
    /// `NFQA_SKB_INFO`.
    pub skb_info: Option<SkbInfo>,
    /// `NFQA_TIMESTAMP`: receive time since the Unix epoch, when the skb carries one.
    pub timestamp: Option<Duration>,
    /// `NFQA_PRIORITY`: `skb->priority`.
    pub priority: Option<u32>,
}

impl QueuedPacket {
    /// Clears every field, keeping the payload's allocation for reuse.
    pub(crate) fn reset(&mut self) {
        let mut payload = std::mem::take(&mut self.payload);
        payload.clear();
        *self = Self {
            payload,
            ..Self::default()
        };
    }

    /// True if the kernel cut the payload short (`cap_len` larger than the payload).
    pub fn is_truncated(&self) -> bool {
        self.cap_len
            .is_some_and(|len| usize::try_from(len).map_or(true, |len| len > self.payload.len()))
    }
}

/// What the kernel does with a queued packet.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum Verdict {
    /// `NF_ACCEPT` (1): continue with the next rule/hook.
    Accept,
    /// `NF_DROP` (0): free the packet. The default: fail-closed.
    #[default]
    Drop,
    /// `NF_REPEAT` (4): run the same hook again from the start. The packet is queued again by the
    /// same rule unless something changed, so use it with a mark the rule excludes
    /// (e.g. `-m mark ! --mark 0x1/0x1`), or the packet loops through userspace.
    Repeat,
}

impl Verdict {
    /// The kernel's verdict number (`NF_*`).
    pub fn code(self) -> u32 {
        match self {
            Self::Drop => 0,
            Self::Accept => 1,
            Self::Repeat => 4,
        }
    }
}

/// A verdict plus an optional new packet mark (`NFQA_MARK` in the verdict message).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct Decision {
    /// The verdict.
    pub verdict: Verdict,
    /// If set, the kernel sets `skb->mark` to this value before applying the verdict.
    pub mark: Option<u32>,
}

impl From<Verdict> for Decision {
    fn from(verdict: Verdict) -> Self {
        Self {
            verdict,
            mark: None,
        }
    }
}

/// What a [`crate::PacketHandler`] answers for one packet ([`crate::PacketHandler::answer`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Answer {
    /// The verdict now.
    Now(Decision),
    /// The verdict now, with the packet's bytes replaced (`NFQA_PAYLOAD`): an edited packet.
    Replace {
        /// The verdict (ACCEPT for an edited packet that goes on).
        decision: Decision,
        /// The new packet, network header first, checksums valid.
        payload: Vec<u8>,
    },
    /// No verdict yet: the packet stays in the kernel's queue (its id held by the handler) until
    /// the handler answers it through [`crate::PacketHandler::poll_verdict`]. The handler must
    /// answer every held packet exactly once, also when it stops
    /// ([`crate::PacketHandler::finish`]); the kernel drops what is still held when the queue
    /// closes.
    Hold,
}

impl From<Decision> for Answer {
    fn from(decision: Decision) -> Self {
        Self::Now(decision)
    }
}

/// A verdict for a packet the handler held ([`Answer::Hold`]), given later.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Deferred {
    /// The held packet.
    pub id: PacketId,
    /// Its verdict.
    pub decision: Decision,
    /// The packet's mark when it was queued (the worker ORs its accept mark into it).
    pub packet_mark: Option<u32>,
    /// Replacement bytes (`NFQA_PAYLOAD`), if the packet was edited.
    pub payload: Option<Vec<u8>>,
}
