//! User identity for the ALE user-id conditions (ALE_USER_ID, ALE_REMOTE_USER_ID, ...).
//!
//! WFP matches an incoming *token* against a condition *security descriptor* with an access check
//! (§8.5). On Linux the token is the socket owner's uid and groups, and the descriptor is written in
//! a small subset of SDDL whose SIDs use the Unix mapping `S-1-22-1-<uid>` (user) and
//! `S-1-22-2-<gid>` (group), plus `WD` (Everyone):
//!
//! ```text
//! D:(A;;CC;;;S-1-22-1-1000)(D;;CC;;;S-1-22-2-27)(A;;CC;;;WD)
//! ```
//!
//! ACEs are checked in order; the first ACE whose SID matches the token decides (`A` grants, `D`
//! denies); no matching ACE denies. Rights are not interpreted (any right counts as "may connect").

use std::fmt;

/// The identity an incoming classify carries (FWP_TOKEN_INFORMATION_TYPE).
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct Token {
    /// User id.
    pub uid: u32,
    /// Group ids (primary first).
    pub gids: Vec<u32>,
}

/// Whom an ACE names.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Trustee {
    /// `WD`, Everyone.
    Everyone,
    /// `S-1-22-1-<uid>`.
    User(u32),
    /// `S-1-22-2-<gid>`.
    Group(u32),
}

/// One access-control entry.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Ace {
    /// `A`: grant.
    Allow(Trustee),
    /// `D`: deny.
    Deny(Trustee),
}

/// A parsed security descriptor (DACL only).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SecurityDescriptor {
    text: String,
    aces: Vec<Ace>,
}

/// An SDDL string outside the supported subset.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("unsupported security descriptor {text:?}: {reason}")]
pub struct SddlError {
    /// The input.
    pub text: String,
    /// What is wrong.
    pub reason: &'static str,
}

impl SecurityDescriptor {
    /// Parses the SDDL subset described in the module docs.
    pub fn parse(text: &str) -> Result<Self, SddlError> {
        let err = |reason| SddlError {
            text: text.to_string(),
            reason,
        };
        let t = text.trim();
        let dacl = t
            .find("D:")
            .map(|i| &t[i + 2..])
            .ok_or_else(|| err("missing D: (DACL)"))?;
        let mut aces = Vec::new();
        let mut rest = dacl.trim_start_matches(|c: char| c.is_ascii_alphabetic()); // DACL flags like P, AI
        while let Some(open) = rest.find('(') {
            let close = rest[open..].find(')').ok_or_else(|| err("unclosed ACE"))? + open;
            let parts: Vec<&str> = rest[open + 1..close].split(';').collect();
            if parts.len() != 6 {
                return Err(err("an ACE needs six ';'-separated fields"));
            }
            let trustee = match parts[5].trim() {
                "WD" | "S-1-1-0" => Trustee::Everyone,
                s => {
                    if let Some(u) = s.strip_prefix("S-1-22-1-") {
                        Trustee::User(u.parse().map_err(|_| err("bad uid in S-1-22-1-<uid>"))?)
                    } else if let Some(g) = s.strip_prefix("S-1-22-2-") {
                        Trustee::Group(g.parse().map_err(|_| err("bad gid in S-1-22-2-<gid>"))?)
                    } else {
                        return Err(err(
                            "only WD, S-1-22-1-<uid> and S-1-22-2-<gid> are supported",
                        ));
                    }
                }
            };
            aces.push(match parts[0].trim() {
                "A" => Ace::Allow(trustee),
                "D" => Ace::Deny(trustee),
                _ => return Err(err("ACE type must be A or D")),
            });
            rest = &rest[close + 1..];
        }
        if aces.is_empty() {
            return Err(err("the DACL has no ACE"));
        }
        Ok(Self {
            text: t.to_string(),
            aces,
        })
    }

    /// The descriptor as written.
    pub fn text(&self) -> &str {
        &self.text
    }

    /// The access check: first matching ACE decides; none matching denies.
    pub fn grants(&self, token: &Token) -> bool {
        for ace in &self.aces {
            let (allow, trustee) = match *ace {
                Ace::Allow(t) => (true, t),
                Ace::Deny(t) => (false, t),
            };
            let hit = match trustee {
                Trustee::Everyone => true,
                Trustee::User(u) => token.uid == u,
                Trustee::Group(g) => token.gids.contains(&g),
            };
            if hit {
                return allow;
            }
        }
        false
    }
}

impl fmt::Display for SecurityDescriptor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn first_matching_ace_decides() {
        let sd =
            SecurityDescriptor::parse("D:(D;;CC;;;S-1-22-2-27)(A;;CC;;;S-1-22-1-1000)").unwrap();
        assert!(sd.grants(&Token {
            uid: 1000,
            gids: vec![100]
        }));
        assert!(!sd.grants(&Token {
            uid: 1000,
            gids: vec![27]
        }));
        assert!(!sd.grants(&Token {
            uid: 0,
            gids: vec![0]
        }));
        let everyone = SecurityDescriptor::parse("O:SYD:(A;;CC;;;WD)").unwrap();
        assert!(everyone.grants(&Token::default()));
    }

    #[test]
    fn rejects_unsupported_sddl() {
        assert!(SecurityDescriptor::parse("O:SY").is_err());
        assert!(SecurityDescriptor::parse("D:(A;;CC;;;BA)").is_err());
        assert!(SecurityDescriptor::parse("D:(A;;CC;;S-1-22-1-0)").is_err());
    }
}
