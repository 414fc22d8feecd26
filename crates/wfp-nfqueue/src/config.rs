//! Queue configuration: what [`crate::Queue::open`] asks the kernel for, and local buffer sizes.

use std::time::Duration;

use crate::error::NfqError;
use crate::packet::Verdict;

/// The largest copy range the kernel accepts (`NFQNL_MAX_COPY_RANGE`, 0xffff).
pub const MAX_COPY_RANGE: u32 = 0xffff;

/// How much of each packet the kernel copies to userspace (`NFQA_CFG_PARAMS`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum CopyMode {
    /// `NFQNL_COPY_NONE`: nothing is copied (not even metadata in some kernels). Rarely useful.
    None,
    /// `NFQNL_COPY_META`: metadata only, no payload.
    Meta,
    /// `NFQNL_COPY_PACKET`: metadata and at most this many payload bytes. 0 or anything above
    /// [`MAX_COPY_RANGE`] means the kernel maximum (0xffff).
    Packet(u32),
}

impl CopyMode {
    /// The `(copy_mode, copy_range)` pair sent to the kernel.
    pub(crate) fn raw(self) -> (u8, u32) {
        match self {
            Self::None => (0, 0),
            Self::Meta => (1, 0),
            Self::Packet(range) => (2, range),
        }
    }

    /// The largest payload the kernel can send under this mode.
    pub(crate) fn max_payload(self) -> usize {
        match self {
            Self::None | Self::Meta => 0,
            Self::Packet(0) => MAX_COPY_RANGE as usize,
            Self::Packet(range) => range.min(MAX_COPY_RANGE) as usize,
        }
    }
}

/// The queue flags (`NFQA_CFG_FLAGS`, sent with a mask covering all four).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct QueueFlags {
    /// `NFQA_CFG_F_FAIL_OPEN`: when the queue is full (or the socket buffer overflows) the
    /// kernel **accepts** the packet instead of dropping it. Off by default (fail-closed). The
    /// kernel does not count fail-open events; see [`crate::QueueStats::id_gaps`] and
    /// [`crate::kernel_queue_stats`] for what can be observed.
    pub fail_open: bool,
    /// `NFQA_CFG_F_CONNTRACK`: attach `NFQA_CT`/`NFQA_CT_INFO`. Needs kernel support
    /// (`CONFIG_NETFILTER_NETLINK_GLUE_CT`); see [`QueueConfig::require_flags`].
    pub conntrack: bool,
    /// `NFQA_CFG_F_GSO`: the kernel may queue GSO super-packets without segmenting them (faster;
    /// payloads can be up to 64 KiB and checksums may be unfilled, see
    /// [`crate::SkbInfo::csum_not_ready`]).
    pub gso: bool,
    /// `NFQA_CFG_F_UID_GID`: attach the local socket owner's uid/gid.
    pub uid_gid: bool,
}

impl QueueFlags {
    /// `NFQA_CFG_F_FAIL_OPEN`.
    pub const FAIL_OPEN: u32 = 1 << 0;
    /// `NFQA_CFG_F_CONNTRACK`.
    pub const CONNTRACK: u32 = 1 << 1;
    /// `NFQA_CFG_F_GSO`.
    pub const GSO: u32 = 1 << 2;
    /// `NFQA_CFG_F_UID_GID`.
    pub const UID_GID: u32 = 1 << 3;
    /// Every flag this crate manages: the `NFQA_CFG_MASK` it sends.
    pub const MASK: u32 = Self::FAIL_OPEN | Self::CONNTRACK | Self::GSO | Self::UID_GID;

    /// The flag bits.
    pub fn bits(self) -> u32 {
        let mut bits = 0;
        if self.fail_open {
            bits |= Self::FAIL_OPEN;
        }
        if self.conntrack {
            bits |= Self::CONNTRACK;
        }
        if self.gso {
            bits |= Self::GSO;
        }
        if self.uid_gid {
            bits |= Self::UID_GID;
        }
        bits
    }
}

/// Everything needed to open one queue. Build with [`QueueConfig::new`] and adjust fields.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct QueueConfig {
    /// The queue number (iptables `--queue-num`).
    pub queue_num: u16,
    /// How much of each packet to copy. Default: whole packets up to 0xffff bytes.
    pub copy_mode: CopyMode,
    /// `NFQA_CFG_QUEUE_MAXLEN`: packets the kernel holds waiting for a verdict before it drops
    /// (or, with `fail_open`, accepts) new ones. Default 1024 (the kernel's own default).
    pub max_len: u32,
    /// Queue flags. Default: none (fail-closed, no conntrack, no GSO, no uid/gid).
    pub flags: QueueFlags,
    /// If false (the default), a kernel that refuses `conntrack` (`EOPNOTSUPP`) gets the queue
    /// without it and [`crate::Queue::flags`] reports what was applied. If true, that is an error.
    /// `fail_open`, `gso` and `uid_gid` are never dropped silently.
    pub require_flags: bool,
    /// Socket receive buffer in bytes (`SO_RCVBUFFORCE`, falling back to `SO_RCVBUF`).
    /// Default 4 MiB.
    pub recv_buffer_bytes: u32,
    /// `NETLINK_NO_ENOBUFS`: if true, the kernel no longer reports receive-buffer overflow with
    /// `ENOBUFS`. Default false: overflows are reported and counted in
    /// [`crate::QueueStats::enobufs`] (reading continues either way).
    pub no_enobufs: bool,
    /// Messages read per `recvmmsg(2)` call (1..=1024). Default 32.
    pub batch_slots: usize,
    /// How long [`crate::Queue::recv_batch`] waits for a packet before returning
    /// [`crate::RecvStatus::TimedOut`]. `None` (default): wait until a packet arrives or the
    /// queue is stopped.
    pub recv_timeout: Option<Duration>,
    /// How long to wait for the kernel's acknowledgement of a configuration request.
    /// Default 2 s.
    pub ack_timeout: Duration,
    /// Verdict given to a packet whose message was malformed or truncated but whose id could be
    /// read. Default [`Verdict::Drop`] (fail-closed). Every such verdict is counted.
    pub malformed_verdict: Verdict,
    /// Verdict given by [`crate::run_worker`] when the packet handler panics (the panic is
    /// contained and counted). Default [`Verdict::Drop`] (fail-closed).
    pub panic_verdict: Verdict,
    /// Verdicts are buffered and sent in one `sendto(2)` once this many bytes accumulate (or on
    /// [`crate::Queue::flush`], or before `recv_batch` waits). Default 16 KiB (≈ 400 verdicts).
    pub verdict_flush_bytes: usize,
    /// Merge consecutive single verdicts with the same verdict and mark into one batch verdict
    /// (`NFQNL_MSG_VERDICT_BATCH`) where that decides exactly the same packets. Default true.
    ///
    /// The kernel handles a batch verdict much faster than the same number of single verdict
    /// messages. A batch verdict up to id N decides every packet of the queue still waiting
    /// with an id up to N, so [`crate::Queue::verdict`] widens the previous message only when
    /// the packet is the oldest received one still undecided — every packet received before it
    /// has a verdict in an earlier message, which the kernel applies first — and only while
    /// the queue knows every packet the kernel may hold below it. The kernel gives ids in
    /// delivery order and does not keep a packet whose message it failed to deliver (socket
    /// overflow: the id gap is not waiting), so the only packet it may hold unseen is one
    /// whose message arrived without a readable id; after such a message coalescing stops for
    /// the life of the queue. Verdicts given out of order simply go out one by one.
    ///
    /// One observable difference: a batch verdict naming only packets that are gone (e.g.
    /// decided by a watchdog's [`crate::VerdictSender`]) yields one `ENOENT` in
    /// [`crate::QueueStats::kernel_errors`], not one per packet.
    pub coalesce_verdicts: bool,
}

impl QueueConfig {
    /// Defaults for queue `queue_num` (see each field).
    pub fn new(queue_num: u16) -> Self {
        Self {
            queue_num,
            copy_mode: CopyMode::Packet(MAX_COPY_RANGE),
            max_len: 1024,
            flags: QueueFlags::default(),
            require_flags: false,
            recv_buffer_bytes: 4 << 20,
            no_enobufs: false,
            batch_slots: 32,
            recv_timeout: None,
            ack_timeout: Duration::from_secs(2),
            malformed_verdict: Verdict::Drop,
            panic_verdict: Verdict::Drop,
            verdict_flush_bytes: 16 << 10,
            coalesce_verdicts: true,
        }
    }

    /// Checks the values that the kernel would not check for us.
    pub(crate) fn validate(&self) -> Result<(), NfqError> {
        if self.batch_slots == 0 || self.batch_slots > 1024 {
            return Err(NfqError::InvalidConfig {
                reason: "batch_slots must be in 1..=1024",
            });
        }
        if self.max_len == 0 {
            return Err(NfqError::InvalidConfig {
                reason: "max_len must be at least 1",
            });
        }
        if self.verdict_flush_bytes > crate::queue::MAX_FLUSH_BYTES {
            return Err(NfqError::InvalidConfig {
                reason: "verdict_flush_bytes must be at most 128 KiB",
            });
        }
        Ok(())
    }

    /// Size of one receive slot: the largest message the kernel can send under this config.
    pub(crate) fn slot_size(&self) -> usize {
        // Metadata attributes (headers, ifindexes, hwaddr, conntrack, uid/gid, vlan, L2 header,
        // security context) are well under 2 KiB; the payload is at most the copy range.
        self.copy_mode.max_payload() + 2048
    }
}
