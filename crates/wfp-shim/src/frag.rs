//! IPv4 and IPv6 fragment reassembly with bounded memory.
//!
//! [`FragReassembler`] collects the fragments of a datagram and hands back the whole packet, with
//! the IP header rewritten as if it had never been fragmented (IPv4: total length, flags and
//! offset, header checksum; IPv6: the fragment header removed, the preceding next-header byte and
//! the payload length fixed). Parse the result again with [`crate::wire::parse`].
//!
//! ```text
//!  packet ──wire::parse──► ParsedPacket ──Fragment::from_parsed──► (FragKey, Fragment)
//!                                                                      │
//!          handle_fragment(now, key, fragment) ◄───────────────────────┘
//!             ├─► Incomplete               (held; more fragments needed)
//!             ├─► Reassembled(Vec<u8>)     (the whole IP packet)
//!             └─► Dropped(FragDrop)        (this fragment, or the whole datagram, discarded)
//!          handle_timeout(now) / poll_timeout()   (incomplete datagrams expire)
//! ```
//!
//! # Contract
//!
//! * **Keys**: IPv4 datagrams are identified by (source, destination, identification, protocol)
//!   (RFC 791); IPv6 ones by (source, destination, identification) (RFC 8200 §4.5).
//! * **Bounds**: at most [`FragConfig::max_datagrams`] datagrams in flight and
//!   [`FragConfig::max_bytes`] bytes held in total (fragment data, sized by the highest offset
//!   received, plus the first fragment's header). No datagram may exceed 65,535 bytes of IP packet.
//!   A fragment that would break a bound is dropped ([`FragDrop::DatagramLimit`],
//!   [`FragDrop::MemoryLimit`], [`FragDrop::TooLarge`]); datagrams already held are kept (like
//!   Linux since 4.17, there is no eviction of older datagrams).
//! * **Timeouts**: a datagram expires [`FragConfig::timeout_v4`] (default 30 s, Linux's
//!   `ipfrag_time`) or [`FragConfig::timeout_v6`] (default 60 s, RFC 8200) after its *first*
//!   fragment arrived; later fragments do not extend it. Expiry happens in
//!   [`FragReassembler::handle_timeout`]; [`FragReassembler::poll_timeout`] says when to call it.
//! * **Overlaps** (RFC 5722, and modern Linux for both IPv4 and IPv6): a fragment whose byte range
//!   is *exactly* that of a fragment already held is a duplicate; with identical bytes it is
//!   ignored, with different bytes it discards the datagram. Any other overlap discards the whole
//!   datagram ([`FragDrop::Overlap`]); later fragments with the same key start a new datagram.
//! * **Consistency**: a non-last fragment must carry a non-zero multiple of 8 bytes
//!   ([`FragDrop::Malformed`], the fragment alone is dropped). Two last fragments with different
//!   ends, or data beyond the end set by the last fragment, discard the datagram
//!   ([`FragDrop::Inconsistent`]).
//! * **Atomic fragments** (IPv6 fragment header with offset 0 and M = 0, RFC 6946) are returned
//!   reassembled at once, independently of any datagram held under the same key.
//! * The reassembled header is the first fragment's (offset 0).

use std::collections::{BTreeMap, HashMap};
use std::net::IpAddr;
use std::time::Duration;

use crate::time::Timestamp;
use crate::wire::{internet_checksum, IpInfo, IpVersion, ParsedPacket};

/// Largest IP packet (IPv4 total length; IPv6 fixed header excluded from the payload length).
const MAX_PACKET: usize = 65_535;
const IPV6_FIXED: usize = 40;

/// Bounds and timeouts of a [`FragReassembler`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FragConfig {
    /// Most bytes held across all datagrams (default 4 MiB, Linux's `ipfrag_high_thresh`).
    pub max_bytes: usize,
    /// Most datagrams being reassembled at once (default 1024).
    pub max_datagrams: usize,
    /// Lifetime of an incomplete IPv4 datagram, from its first fragment (default 30 s).
    pub timeout_v4: Duration,
    /// Lifetime of an incomplete IPv6 datagram, from its first fragment (default 60 s).
    pub timeout_v6: Duration,
}

impl Default for FragConfig {
    fn default() -> Self {
        Self {
            max_bytes: 4 << 20,
            max_datagrams: 1024,
            timeout_v4: Duration::from_secs(30),
            timeout_v6: Duration::from_secs(60),
        }
    }
}

/// Identifies the datagram a fragment belongs to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct FragKey {
    /// IP version.
    pub version: IpVersion,
    /// Source address.
    pub src: IpAddr,
    /// Destination address.
    pub dst: IpAddr,
    /// Identification (16 bits for IPv4).
    pub id: u32,
    /// IPv4 protocol; 0 for IPv6 (not part of the IPv6 key).
    pub protocol: u8,
}

impl FragKey {
    /// The key of a fragment's IP layer, or `None` when the packet is not a fragment.
    pub fn from_ip(ip: &IpInfo) -> Option<Self> {
        let fragment = ip.fragment.as_ref()?;
        Some(Self {
            version: ip.version,
            src: ip.src,
            dst: ip.dst,
            id: fragment.id,
            protocol: match ip.version {
                IpVersion::V4 => fragment.next_header,
                IpVersion::V6 => 0,
            },
        })
    }
}

/// One fragment: borrowed slices of the packet it arrived in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Fragment<'a> {
    version: IpVersion,
    header: &'a [u8],
    data: &'a [u8],
    offset: u16,
    more: bool,
    next_header_pos: usize,
    next_header: u8,
}

impl<'a> Fragment<'a> {
    /// The key and fragment of `packet`, which `parsed` describes. `None` when the packet is not a
    /// fragment or `parsed` does not fit `packet`.
    pub fn from_parsed(packet: &'a [u8], parsed: &ParsedPacket) -> Option<(FragKey, Self)> {
        let key = FragKey::from_ip(&parsed.ip)?;
        let info = parsed.ip.fragment?;
        let packet = packet.get(..parsed.ip.total_len)?;
        let header = packet.get(..info.unfragmentable_len)?;
        let data = packet.get(info.data_offset..)?;
        if parsed.ip.version == IpVersion::V6
            && (header.len() < IPV6_FIXED || info.next_header_pos >= header.len())
        {
            return None;
        }
        let fragment = Self {
            version: parsed.ip.version,
            header,
            data,
            offset: info.offset,
            more: info.more,
            next_header_pos: info.next_header_pos,
            next_header: info.next_header,
        };
        Some((key, fragment))
    }

    /// Offset of the data in the original payload, in bytes.
    pub fn offset(&self) -> u16 {
        self.offset
    }

    /// The more-fragments flag.
    pub fn more(&self) -> bool {
        self.more
    }

    /// The fragment's data.
    pub fn data(&self) -> &'a [u8] {
        self.data
    }

    /// Bytes of header that would precede `end` bytes of payload in the rebuilt packet.
    fn header_overhead(&self) -> usize {
        match self.version {
            IpVersion::V4 => self.header.len(),
            IpVersion::V6 => self.header.len().saturating_sub(IPV6_FIXED),
        }
    }
}

/// What [`FragReassembler::handle_fragment`] did with a fragment.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum FragOutcome {
    /// The fragment was dropped; see the reason for whether the datagram went with it.
    Dropped(FragDrop),
    /// The fragment is held; the datagram is not complete yet (also for ignored duplicates).
    Incomplete,
    /// The datagram is complete: the whole IP packet.
    Reassembled(Vec<u8>),
}

/// Why a fragment was dropped.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum FragDrop {
    /// [`FragConfig::max_datagrams`] datagrams are in flight; the fragment of a new one is dropped.
    DatagramLimit,
    /// Ends disagree (two last fragments, or data past the last fragment); datagram discarded.
    Inconsistent,
    /// A non-last fragment whose length is zero or not a multiple of 8; fragment dropped.
    Malformed,
    /// Holding the fragment would exceed [`FragConfig::max_bytes`]; fragment dropped.
    MemoryLimit,
    /// The fragment overlaps one already held (other than an identical duplicate); datagram
    /// discarded.
    Overlap,
    /// The datagram would exceed 65,535 bytes; fragment dropped (datagram discarded if the
    /// first fragment's header makes the complete datagram too large).
    TooLarge,
}

/// Counters of a [`FragReassembler`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct FragCounters {
    /// Fragments handled.
    pub fragments: u64,
    /// Datagrams reassembled (including atomic fragments).
    pub reassembled: u64,
    /// Identical duplicates ignored.
    pub duplicates: u64,
    /// Incomplete datagrams expired.
    pub timed_out: u64,
    /// Fragments dropped for [`FragDrop::DatagramLimit`].
    pub dropped_datagram_limit: u64,
    /// Fragments dropped for [`FragDrop::Inconsistent`].
    pub dropped_inconsistent: u64,
    /// Fragments dropped for [`FragDrop::Malformed`].
    pub dropped_malformed: u64,
    /// Fragments dropped for [`FragDrop::MemoryLimit`].
    pub dropped_memory_limit: u64,
    /// Fragments dropped for [`FragDrop::Overlap`].
    pub dropped_overlap: u64,
    /// Fragments dropped for [`FragDrop::TooLarge`].
    pub dropped_too_large: u64,
}

/// Reassembles fragmented IPv4 and IPv6 datagrams. See the module doc for the contract.
///
/// Call order: [`FragReassembler::handle_fragment`] for every fragment, then (or whenever
/// [`FragReassembler::poll_timeout`] is due) [`FragReassembler::handle_timeout`].
#[derive(Debug)]
pub struct FragReassembler {
    config: FragConfig,
    datagrams: HashMap<FragKey, Datagram>,
    deadlines: BTreeMap<(Timestamp, u64), FragKey>,
    next_serial: u64,
    bytes_in_use: usize,
    last_now: Timestamp,
    counters: FragCounters,
}

#[derive(Debug)]
struct Datagram {
    /// Rebuild header from the offset-0 fragment.
    first: Option<FirstHeader>,
    /// Fragment data, sized by the highest end received.
    data: Vec<u8>,
    /// Byte ranges received, sorted by start, disjoint.
    pieces: Vec<(usize, usize)>,
    /// End of the payload, once the last fragment arrived.
    end: Option<usize>,
    deadline: (Timestamp, u64),
    charged: usize,
}

#[derive(Debug)]
struct FirstHeader {
    version: IpVersion,
    bytes: Vec<u8>,
    next_header_pos: usize,
    next_header: u8,
}

impl FragReassembler {
    /// A reassembler with the given bounds.
    pub fn new(config: FragConfig) -> Self {
        Self {
            config,
            datagrams: HashMap::new(),
            deadlines: BTreeMap::new(),
            next_serial: 0,
            bytes_in_use: 0,
            last_now: Timestamp::ZERO,
            counters: FragCounters::default(),
        }
    }

    /// Handle one fragment of the datagram `key`.
    pub fn handle_fragment(
        &mut self,
        now: Timestamp,
        key: FragKey,
        frag: Fragment<'_>,
    ) -> FragOutcome {
        let now = self.clamp(now);
        self.counters.fragments += 1;
        let start = usize::from(frag.offset);
        let end = start + frag.data.len();
        if frag.more && (frag.data.is_empty() || frag.data.len() % 8 != 0) {
            return self.drop_fragment(FragDrop::Malformed);
        }
        if frag.header_overhead() + end > MAX_PACKET {
            return self.drop_fragment(FragDrop::TooLarge);
        }
        if start == 0 && !frag.more {
            // An atomic fragment (RFC 6946): complete on its own.
            let first = FirstHeader::of(&frag);
            return match first.rebuild(frag.data) {
                Some(packet) => {
                    self.counters.reassembled += 1;
                    FragOutcome::Reassembled(packet)
                }
                None => self.drop_fragment(FragDrop::TooLarge),
            };
        }

        if !self.datagrams.contains_key(&key) {
            if self.datagrams.len() >= self.config.max_datagrams {
                return self.drop_fragment(FragDrop::DatagramLimit);
            }
            let timeout = match key.version {
                IpVersion::V4 => self.config.timeout_v4,
                IpVersion::V6 => self.config.timeout_v6,
            };
            let deadline = (now.saturating_add(timeout), self.next_serial);
            self.next_serial += 1;
            self.deadlines.insert(deadline, key);
            let datagram = Datagram {
                first: None,
                data: Vec::new(),
                pieces: Vec::new(),
                end: None,
                deadline,
                charged: 0,
            };
            self.datagrams.insert(key, datagram);
        }
        let Some(datagram) = self.datagrams.get_mut(&key) else {
            return FragOutcome::Incomplete;
        };

        // Overlaps and duplicates.
        for &(s, e) in &datagram.pieces {
            if s == start && e == end {
                if datagram.data.get(s..e) == Some(frag.data) {
                    self.counters.duplicates += 1;
                    return FragOutcome::Incomplete;
                }
                return self.discard(key, FragDrop::Overlap);
            }
            if start < e && s < end {
                return self.discard(key, FragDrop::Overlap);
            }
        }
        // Ends.
        let max_received = datagram.pieces.iter().map(|&(_, e)| e).max().unwrap_or(0);
        if !frag.more {
            if datagram.end.is_some_and(|known| known != end) || max_received > end {
                return self.discard(key, FragDrop::Inconsistent);
            }
        } else if datagram.end.is_some_and(|known| end > known) {
            return self.discard(key, FragDrop::Inconsistent);
        }
        // Memory.
        let growth = end.saturating_sub(datagram.data.len())
            + if start == 0 { frag.header.len() } else { 0 };
        if self.bytes_in_use + growth > self.config.max_bytes {
            if datagram.pieces.is_empty() {
                self.remove(&key);
            }
            return self.drop_fragment(FragDrop::MemoryLimit);
        }

        // Store.
        self.bytes_in_use += growth;
        datagram.charged += growth;
        if datagram.data.len() < end {
            datagram.data.resize(end, 0);
        }
        if let Some(slot) = datagram.data.get_mut(start..end) {
            slot.copy_from_slice(frag.data);
        }
        let at = datagram.pieces.partition_point(|&(s, _)| s < start);
        datagram.pieces.insert(at, (start, end));
        if !frag.more {
            datagram.end = Some(end);
        }
        if start == 0 {
            datagram.first = Some(FirstHeader::of(&frag));
        }

        if !datagram.is_complete() {
            return FragOutcome::Incomplete;
        }
        let Some(datagram) = self.remove(&key) else {
            return FragOutcome::Incomplete;
        };
        let total = datagram.end.unwrap_or(0);
        match datagram
            .first
            .as_ref()
            .and_then(|f| f.rebuild(datagram.data.get(..total)?))
        {
            Some(packet) => {
                self.counters.reassembled += 1;
                FragOutcome::Reassembled(packet)
            }
            None => self.drop_fragment(FragDrop::TooLarge),
        }
    }

    /// Expire every datagram whose deadline is at or before `now`.
    pub fn handle_timeout(&mut self, now: Timestamp) {
        let now = self.clamp(now);
        while let Some(entry) = self.deadlines.first_entry() {
            if entry.key().0 > now {
                break;
            }
            let key = entry.remove();
            if let Some(d) = self.datagrams.remove(&key) {
                self.bytes_in_use -= d.charged;
                self.counters.timed_out += 1;
            }
        }
    }

    /// When [`FragReassembler::handle_timeout`] next has work, if any datagram is held.
    pub fn poll_timeout(&self) -> Option<Timestamp> {
        self.deadlines.keys().next().map(|&(t, _)| t)
    }

    /// Datagrams being reassembled.
    pub fn len(&self) -> usize {
        self.datagrams.len()
    }

    /// Whether no datagram is being reassembled.
    pub fn is_empty(&self) -> bool {
        self.datagrams.is_empty()
    }

    /// Bytes held across all datagrams (the quantity bounded by [`FragConfig::max_bytes`]).
    pub fn bytes_in_use(&self) -> usize {
        self.bytes_in_use
    }

    /// Counters since creation.
    pub fn counters(&self) -> &FragCounters {
        &self.counters
    }

    /// The configuration.
    pub fn config(&self) -> &FragConfig {
        &self.config
    }

    fn clamp(&mut self, now: Timestamp) -> Timestamp {
        self.last_now = self.last_now.max(now);
        self.last_now
    }

    fn remove(&mut self, key: &FragKey) -> Option<Datagram> {
        let datagram = self.datagrams.remove(key)?;
        self.deadlines.remove(&datagram.deadline);
        self.bytes_in_use -= datagram.charged;
        Some(datagram)
    }

    fn discard(&mut self, key: FragKey, reason: FragDrop) -> FragOutcome {
        self.remove(&key);
        self.drop_fragment(reason)
    }

    fn drop_fragment(&mut self, reason: FragDrop) -> FragOutcome {
        let c = &mut self.counters;
        match reason {
            FragDrop::DatagramLimit => c.dropped_datagram_limit += 1,
            FragDrop::Inconsistent => c.dropped_inconsistent += 1,
            FragDrop::Malformed => c.dropped_malformed += 1,
            FragDrop::MemoryLimit => c.dropped_memory_limit += 1,
            FragDrop::Overlap => c.dropped_overlap += 1,
            FragDrop::TooLarge => c.dropped_too_large += 1,
        }
        FragOutcome::Dropped(reason)
    }
}

impl Default for FragReassembler {
    fn default() -> Self {
        Self::new(FragConfig::default())
    }
}

impl Datagram {
    fn is_complete(&self) -> bool {
        let (Some(end), Some(_)) = (self.end, &self.first) else {
            return false;
        };
        let mut cursor = 0;
        for &(s, e) in &self.pieces {
            if s != cursor {
                return false;
            }
            cursor = e;
        }
        cursor == end
    }
}

impl FirstHeader {
    fn of(frag: &Fragment<'_>) -> Self {
        Self {
            version: frag.version,
            bytes: frag.header.to_vec(),
            next_header_pos: frag.next_header_pos,
            next_header: frag.next_header,
        }
    }

    /// The whole packet: this header (rewritten) followed by `payload`. `None` when too large.
    fn rebuild(&self, payload: &[u8]) -> Option<Vec<u8>> {
        let mut out = Vec::with_capacity(self.bytes.len() + payload.len());
        out.extend_from_slice(&self.bytes);
        match self.version {
            IpVersion::V4 => {
                let total = u16::try_from(out.len() + payload.len()).ok()?;
                let header_len = out.len();
                let header = out.get_mut(..header_len)?;
                header.get_mut(2..4)?.copy_from_slice(&total.to_be_bytes());
                let flags = u16::from_be_bytes([*header.get(6)?, *header.get(7)?]) & 0xc000;
                header.get_mut(6..8)?.copy_from_slice(&flags.to_be_bytes());
                header.get_mut(10..12)?.copy_from_slice(&[0, 0]);
                let checksum = internet_checksum(header);
                header
                    .get_mut(10..12)?
                    .copy_from_slice(&checksum.to_be_bytes());
            }
            IpVersion::V6 => {
                let payload_len = u16::try_from(out.len() - IPV6_FIXED + payload.len()).ok()?;
                *out.get_mut(self.next_header_pos)? = self.next_header;
                out.get_mut(4..6)?
                    .copy_from_slice(&payload_len.to_be_bytes());
            }
        }
        out.extend_from_slice(payload);
        Some(out)
    }
}
