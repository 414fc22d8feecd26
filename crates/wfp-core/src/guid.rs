//! `GUID`: the 128-bit keys of management objects (layers, sublayers, conditions, callouts, filters).
//!
//! Stored as the canonical big-endian text order (`{Data1-Data2-Data3-Data4}`); [`Guid::to_windows_bytes`]
//! gives the in-memory Windows layout (Data1..Data3 little-endian) used by the C ABI.

use std::fmt;
use std::str::FromStr;

/// A GUID, kept in the order its text form is written.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct Guid(pub [u8; 16]);

/// A string that is not a GUID.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("not a GUID: {0:?} (expected XXXXXXXX-XXXX-XXXX-XXXX-XXXXXXXXXXXX, braces optional)")]
pub struct GuidParseError(pub String);

impl Guid {
    /// `GUID_NULL`.
    pub const NULL: Self = Self([0; 16]);

    /// Parses a GUID at compile time (for the generated tables). Panics on malformed input, which is
    /// only ever a literal in this crate.
    pub const fn from_str_const(s: &str) -> Self {
        match parse(s.as_bytes()) {
            Some(g) => g,
            None => panic!("malformed GUID literal"),
        }
    }

    /// Builds a GUID from Windows' in-memory layout (`Data1`..`Data3` little-endian).
    pub fn from_windows_bytes(b: [u8; 16]) -> Self {
        let mut o = b;
        o[0..4].reverse();
        o[4..6].reverse();
        o[6..8].reverse();
        Self(o)
    }

    /// The Windows in-memory layout (`Data1`..`Data3` little-endian), as the C ABI passes it.
    pub fn to_windows_bytes(&self) -> [u8; 16] {
        let mut o = self.0;
        o[0..4].reverse();
        o[4..6].reverse();
        o[6..8].reverse();
        o
    }

    /// A deterministic GUID derived from a name, for objects a policy file names without a key.
    /// (FNV-1a over the name, two rounds; version nibble 8 marks it as "name-derived, project-local".)
    pub fn from_name(namespace: &str, name: &str) -> Self {
        Self::from_name_bytes(namespace, [name.as_bytes()])
    }

    /// [`Guid::from_name`] of `"{name}#{number}"`, without building that string (issue 15, B2:
    /// the key of every filter added without one).
    pub fn from_name_numbered(namespace: &str, name: &str, number: u64) -> Self {
        let mut digits = [0u8; 20];
        let mut at = digits.len();
        let mut n = number;
        loop {
            at -= 1;
            if let Some(d) = digits.get_mut(at) {
                *d = b'0' + (n % 10) as u8;
            }
            n /= 10;
            if n == 0 || at == 0 {
                break;
            }
        }
        let digits = digits.get(at..).unwrap_or(&[]);
        Self::from_name_bytes(namespace, [name.as_bytes(), b"#", digits])
    }

    fn from_name_bytes<const N: usize>(namespace: &str, name: [&[u8]; N]) -> Self {
        let mut h1: u64 = 0xcbf2_9ce4_8422_2325;
        let mut h2: u64 = 0x8422_2325_cbf2_9ce4;
        let bytes = name.into_iter().flat_map(|p| p.iter().copied());
        for b in namespace.bytes().chain([0u8]).chain(bytes) {
            h1 = (h1 ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3);
            h2 = (h2 ^ u64::from(b))
                .wrapping_mul(0x0000_0100_0000_01b3)
                .rotate_left(7);
        }
        let mut o = [0u8; 16];
        o[..8].copy_from_slice(&h1.to_be_bytes());
        o[8..].copy_from_slice(&h2.to_be_bytes());
        o[6] = (o[6] & 0x0f) | 0x80;
        o[8] = (o[8] & 0x3f) | 0x80;
        Self(o)
    }

    /// True for `GUID_NULL`.
    pub fn is_null(&self) -> bool {
        self.0 == [0; 16]
    }
}

const fn hex(c: u8) -> Option<u8> {
    match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        b'A'..=b'F' => Some(c - b'A' + 10),
        _ => None,
    }
}

const fn parse(s: &[u8]) -> Option<Guid> {
    let (start, end) = if s.len() == 38 && s[0] == b'{' && s[37] == b'}' {
        (1, 37)
    } else if s.len() == 36 {
        (0, 36)
    } else {
        return None;
    };
    let mut out = [0u8; 16];
    let mut i = start;
    let mut n = 0;
    while i < end {
        let pos = i - start;
        if pos == 8 || pos == 13 || pos == 18 || pos == 23 {
            if s[i] != b'-' {
                return None;
            }
            i += 1;
            continue;
        }
        let (Some(h), Some(l)) = (hex(s[i]), if i + 1 < end { hex(s[i + 1]) } else { None }) else {
            return None;
        };
        out[n] = (h << 4) | l;
        n += 1;
        i += 2;
    }
    if n == 16 {
        Some(Guid(out))
    } else {
        None
    }
}

impl FromStr for Guid {
    type Err = GuidParseError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        parse(s.trim().as_bytes()).ok_or_else(|| GuidParseError(s.to_string()))
    }
}

impl fmt::Display for Guid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let b = &self.0;
        write!(
            f,
            "{{{:02X}{:02X}{:02X}{:02X}-{:02X}{:02X}-{:02X}{:02X}-{:02X}{:02X}-{:02X}{:02X}{:02X}{:02X}{:02X}{:02X}}}",
            b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7], b[8], b[9], b[10], b[11], b[12], b[13], b[14], b[15]
        )
    }
}

impl fmt::Debug for Guid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The numbered form hashes exactly the bytes of `"{name}#{number}"`.
    #[test]
    fn numbered_name_equals_formatted_name() {
        for n in [0u64, 1, 9, 10, 12_345, u64::MAX] {
            for name in ["", "f", "classbench-7"] {
                assert_eq!(
                    Guid::from_name_numbered("filter", name, n),
                    Guid::from_name("filter", &format!("{name}#{n}"))
                );
            }
        }
    }

    #[test]
    fn round_trips_text_and_windows_layout() {
        let g: Guid = "{C86FD1BF-21CD-497E-A0BB-17425C885C58}".parse().unwrap();
        assert_eq!(g.to_string(), "{C86FD1BF-21CD-497E-A0BB-17425C885C58}");
        let w = g.to_windows_bytes();
        assert_eq!(&w[..4], &[0xBF, 0xD1, 0x6F, 0xC8]);
        assert_eq!(Guid::from_windows_bytes(w), g);
        assert_eq!(
            "c86fd1bf-21cd-497e-a0bb-17425c885c58"
                .parse::<Guid>()
                .unwrap(),
            g
        );
    }

    #[test]
    fn rejects_malformed() {
        for s in [
            "",
            "{}",
            "C86FD1BF21CD497EA0BB17425C885C58",
            "{C86FD1BF-21CD-497E-A0BB-17425C885C5Z}",
        ] {
            assert!(s.parse::<Guid>().is_err(), "{s}");
        }
    }
}
