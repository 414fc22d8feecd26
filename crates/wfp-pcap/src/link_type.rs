//! Link-layer header types as numbered in capture files (`LINKTYPE_*`).
//!
//! The numbers are the ones registered for pcap and pcapng files (tcpdump.org's `linktypes.html`),
//! not the platform-specific `DLT_*` values, with one exception kept for old files: 12 and 14, the
//! historical `DLT_RAW` values, are also understood as raw IP by [`crate::decode_link`].

use std::fmt;

/// A capture file's link-layer header type (`LINKTYPE_*` number).
///
/// Classic pcap stores it in the low 26 bits of a 32-bit header field (the upper bits carry FCS
/// information, which the reader drops); pcapng stores it as 16 bits per interface.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct LinkType(pub u32);

impl LinkType {
    /// `LINKTYPE_NULL` (0): BSD loopback, 4-byte address family in the capturing host's byte order.
    pub const NULL: Self = Self(0);
    /// `LINKTYPE_ETHERNET` (1): Ethernet II / 802.3, optionally 802.1Q/802.1ad tagged.
    pub const ETHERNET: Self = Self(1);
    /// `LINKTYPE_PPP` (9): PPP (not decoded by this crate).
    pub const PPP: Self = Self(9);
    /// Historical `DLT_RAW` (12) found in old files: raw IPv4 or IPv6.
    pub const RAW_12: Self = Self(12);
    /// Historical OpenBSD/BSD-OS `DLT_RAW` (14): raw IPv4 or IPv6.
    pub const RAW_14: Self = Self(14);
    /// `LINKTYPE_RAW` (101): raw IPv4 or IPv6, version taken from the first nibble.
    pub const RAW: Self = Self(101);
    /// `LINKTYPE_C_HDLC` (104): Cisco HDLC (not decoded by this crate).
    pub const C_HDLC: Self = Self(104);
    /// `LINKTYPE_IEEE802_11` (105): 802.11 without radio header (not decoded by this crate).
    pub const IEEE802_11: Self = Self(105);
    /// `LINKTYPE_LOOP` (108): OpenBSD loopback, 4-byte address family in network byte order.
    pub const LOOP: Self = Self(108);
    /// `LINKTYPE_LINUX_SLL` (113): Linux "cooked" capture, version 1 (16-byte header).
    pub const LINUX_SLL: Self = Self(113);
    /// `LINKTYPE_IEEE802_11_RADIOTAP` (127): 802.11 with radiotap header (not decoded).
    pub const IEEE802_11_RADIOTAP: Self = Self(127);
    /// `LINKTYPE_IPV4` (228): raw IPv4 only.
    pub const IPV4: Self = Self(228);
    /// `LINKTYPE_IPV6` (229): raw IPv6 only.
    pub const IPV6: Self = Self(229);
    /// `LINKTYPE_NFLOG` (239): Linux netfilter log messages (not decoded by this crate).
    pub const NFLOG: Self = Self(239);
    /// `LINKTYPE_LINUX_SLL2` (276): Linux "cooked" capture, version 2 (20-byte header).
    pub const LINUX_SLL2: Self = Self(276);

    /// The libpcap name of this link type (`"EN10MB"`, `"LINUX_SLL"`, ...), for the types this
    /// crate knows by name.
    pub fn name(self) -> Option<&'static str> {
        let name = match self.0 {
            0 => "NULL",
            1 => "EN10MB",
            9 => "PPP",
            12 | 14 | 101 => "RAW",
            104 => "C_HDLC",
            105 => "IEEE802_11",
            108 => "LOOP",
            113 => "LINUX_SLL",
            127 => "802_11_RADIOTAP",
            228 => "IPV4",
            229 => "IPV6",
            239 => "NFLOG",
            276 => "LINUX_SLL2",
            _ => return None,
        };
        Some(name)
    }
}

impl fmt::Display for LinkType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.name() {
            Some(name) => write!(f, "{name} ({})", self.0),
            None => write!(f, "{}", self.0),
        }
    }
}

impl From<u32> for LinkType {
    fn from(value: u32) -> Self {
        Self(value)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_names_known_types_and_numbers_others() {
        assert_eq!(LinkType::ETHERNET.to_string(), "EN10MB (1)");
        assert_eq!(LinkType::LINUX_SLL2.to_string(), "LINUX_SLL2 (276)");
        assert_eq!(LinkType(4242).to_string(), "4242");
        assert_eq!(LinkType::RAW_12.name(), Some("RAW"));
    }
}
