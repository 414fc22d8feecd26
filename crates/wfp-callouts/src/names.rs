//! Host-name lists for the DNS and SNI blockers.
//!
//! An entry is either an exact name (`tracker.example`) or a wildcard `*.example.com`, which matches
//! every name strictly **below** `example.com` (`a.example.com`, `a.b.example.com`) but not
//! `example.com` itself — list both to block both. Matching is ASCII case-insensitive and ignores one
//! trailing dot. Names are compared as bytes, so labels with unusual bytes never fail to parse; a
//! label that itself contains a `.` byte is seen as two labels, which can only make a name match
//! more often (never less).

use std::collections::HashSet;

use crate::ConfigError;

/// Longest name compared (a DNS name has at most 253 text characters); longer names never match.
pub const MAX_NAME_LEN: usize = 253;

/// A set of exact names and `*.suffix` wildcards.
#[derive(Clone, Debug, Default)]
pub struct NameSet {
    exact: HashSet<Box<[u8]>>,
    suffixes: HashSet<Box<[u8]>>,
}

impl NameSet {
    /// Builds a set from entries such as `"blocked.example"` and `"*.blocked.example"`.
    ///
    /// Errors: an empty entry or label, a `*` anywhere but as the whole first label, a label longer
    /// than 63 bytes, or a name longer than [`MAX_NAME_LEN`].
    pub fn new<I, S>(entries: I) -> Result<Self, ConfigError>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        let mut set = Self::default();
        for e in entries {
            set.insert(e.as_ref())?;
        }
        Ok(set)
    }

    /// Adds one entry (see [`NameSet::new`]).
    pub fn insert(&mut self, entry: &str) -> Result<(), ConfigError> {
        let bad = |reason| ConfigError::InvalidName {
            name: entry.to_string(),
            reason,
        };
        let trimmed = entry.trim();
        let trimmed = trimmed.strip_suffix('.').unwrap_or(trimmed);
        let (wild, name) = match trimmed.strip_prefix("*.") {
            Some(rest) => (true, rest),
            None => (false, trimmed),
        };
        if name.is_empty() {
            return Err(bad("empty name"));
        }
        if name.len() > MAX_NAME_LEN {
            return Err(bad("longer than 253 characters"));
        }
        for label in name.split('.') {
            if label.is_empty() {
                return Err(bad("empty label"));
            }
            if label.len() > 63 {
                return Err(bad("label longer than 63 characters"));
            }
            if label.contains('*') {
                return Err(bad(
                    "'*' is only allowed as the whole first label (\"*.example.com\")",
                ));
            }
        }
        let key: Box<[u8]> = name.to_ascii_lowercase().into_bytes().into();
        if wild {
            self.suffixes.insert(key);
        } else {
            self.exact.insert(key);
        }
        Ok(())
    }

    /// Number of entries.
    pub fn len(&self) -> usize {
        self.exact.len() + self.suffixes.len()
    }

    /// True when the set has no entries.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// True when `name` (dotted text bytes, any case, optional trailing dot) is listed or lies below
    /// a listed wildcard.
    pub fn matches(&self, name: &[u8]) -> bool {
        let name = name.strip_suffix(b".").unwrap_or(name);
        if name.is_empty() || name.len() > MAX_NAME_LEN {
            return false;
        }
        let mut buf = [0u8; MAX_NAME_LEN];
        let Some(lower) = buf.get_mut(..name.len()) else {
            return false;
        };
        lower.copy_from_slice(name);
        lower.make_ascii_lowercase();
        let lower: &[u8] = lower;
        if self.exact.contains(lower) {
            return true;
        }
        if self.suffixes.is_empty() {
            return false;
        }
        lower
            .iter()
            .enumerate()
            .filter(|(_, b)| **b == b'.')
            .any(|(i, _)| {
                lower
                    .get(i + 1..)
                    .is_some_and(|s| !s.is_empty() && self.suffixes.contains(s))
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exact_and_wildcard_entries_match_case_insensitively() {
        let s = NameSet::new(["Blocked.Example.", "*.ads.example"]).unwrap();
        assert!(s.matches(b"blocked.example"));
        assert!(s.matches(b"BLOCKED.EXAMPLE."));
        assert!(!s.matches(b"a.blocked.example"));
        assert!(s.matches(b"x.ads.example"));
        assert!(s.matches(b"x.y.ADS.example"));
        assert!(!s.matches(b"ads.example"));
        assert!(!s.matches(b"badads.example"));
        assert!(!s.matches(b""));
        assert!(!s.matches(b"."));
    }

    #[test]
    fn malformed_entries_are_refused() {
        for bad in ["", "*.", "a..b", "a*.b", "*.*.b", "x.*", &"a".repeat(64)] {
            assert!(NameSet::new([bad]).is_err(), "{bad:?}");
        }
        assert!(NameSet::new([format!("{}.x", "a.".repeat(130))]).is_err());
    }

    #[test]
    fn overlong_names_never_match() {
        let s = NameSet::new(["*.x"]).unwrap();
        let long = format!("{}x", "a.".repeat(200));
        assert!(!s.matches(long.as_bytes()));
    }
}
