//! Error types, one per boundary: queue I/O ([`NfqError`]), message parsing ([`ParseError`]),
//! rule installation ([`crate::rules::RulesError`]).
//!
//! Verdicts are not errors: a malformed message gets a defined verdict and a counter, and only
//! appears here through [`crate::parse_packet_message`].

use std::io;

/// Errors of the queue data path (socket setup, configuration, I/O).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum NfqError {
    /// A system call failed.
    #[error("{call} failed: {source}")]
    Syscall {
        /// The call that failed (e.g. `"recvmmsg"`).
        call: &'static str,
        /// The OS error.
        #[source]
        source: io::Error,
    },
    /// The kernel rejected a configuration request for a queue (e.g. `EBUSY`: another socket
    /// already owns the queue; `EPERM`: not permitted, needs `CAP_NET_ADMIN`).
    #[error("kernel rejected {request} for queue {queue}: {source}")]
    Config {
        /// The queue number.
        queue: u16,
        /// The request (e.g. `"bind"`).
        request: &'static str,
        /// The error the kernel answered with.
        #[source]
        source: io::Error,
    },
    /// The kernel did not acknowledge a configuration request in time.
    #[error("no acknowledgement for {request} on queue {queue} within the timeout")]
    AckTimeout {
        /// The queue number.
        queue: u16,
        /// The request.
        request: &'static str,
    },
    /// A configuration value is out of range.
    #[error("invalid queue configuration: {reason}")]
    InvalidConfig {
        /// What is wrong.
        reason: &'static str,
    },
    /// A network namespace could not be entered or managed.
    #[error("network namespace {name}: {reason}")]
    Netns {
        /// The namespace name.
        name: String,
        /// What went wrong.
        reason: String,
    },
    /// A worker thread could not be started.
    #[error("could not start the worker thread for queue {queue}: {source}")]
    Spawn {
        /// The queue number.
        queue: u16,
        /// The OS error.
        #[source]
        source: io::Error,
    },
    /// A worker thread panicked outside the packet handler (the handler's own panics are
    /// contained and counted in [`crate::QueueStats::handler_panics`]).
    #[error("the worker thread for queue {queue} panicked")]
    WorkerPanicked {
        /// The queue number.
        queue: u16,
    },
    /// A replacement payload (`NFQA_PAYLOAD`) longer than a netlink attribute can carry.
    #[error("replacement payload of {len} bytes exceeds {max} bytes")]
    PayloadTooLong {
        /// Its length.
        len: usize,
        /// The longest payload a verdict can carry.
        max: usize,
    },
    /// A packet handed to [`crate::RawSender`] is not a whole IPv4 / IPv6 packet (no version
    /// nibble, a header shorter than its fixed part).
    #[error("not an IPv4 or IPv6 packet ({len} bytes)")]
    NotIp {
        /// Its length.
        len: usize,
    },
}

/// Why a netlink message could not be parsed as a queued packet.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ParseError {
    /// The message is shorter than a header it must contain, or its length field points past the
    /// end of the received bytes (a truncated read).
    #[error("message truncated: need {needed} bytes, have {available}")]
    Truncated {
        /// Bytes the header or length field requires.
        needed: usize,
        /// Bytes available.
        available: usize,
        /// The packet id, if it could be read before the truncation.
        packet_id: Option<u32>,
    },
    /// An attribute's length is impossible (shorter than its header, past the end of the
    /// message, or wrong for its type).
    #[error("attribute {attr} has invalid length {len}")]
    BadAttribute {
        /// The attribute type (`NFQA_*`, or `CTA_*` inside `NFQA_CT`).
        attr: u16,
        /// Its length field (or payload length for a fixed-size type).
        len: usize,
        /// The packet id, if it was read before the bad attribute.
        packet_id: Option<u32>,
    },
    /// The message has no `NFQA_PACKET_HDR`, so it carries no packet id.
    #[error("packet message without NFQA_PACKET_HDR")]
    MissingPacketHeader,
    /// The message is not an nfqueue packet message.
    #[error("not a queued-packet message (type {msg_type:#06x})")]
    NotAPacket {
        /// The netlink message type.
        msg_type: u16,
    },
}

impl ParseError {
    /// The packet id, when it was readable: such a packet still needs a verdict.
    pub fn packet_id(&self) -> Option<u32> {
        match self {
            Self::Truncated { packet_id, .. } | Self::BadAttribute { packet_id, .. } => *packet_id,
            Self::MissingPacketHeader | Self::NotAPacket { .. } => None,
        }
    }
}
