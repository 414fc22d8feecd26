//! Who is on the other end of a connection: SO_PEERCRED (checked once per connection, never what
//! the client claims), the peer's groups from `/proc/<pid>/status`, names from `/etc/passwd` and
//! `/etc/group`, and the role they give.

use std::os::unix::net::UnixStream;

use wfp_core::engine::SessionOwner;

/// What a peer may do.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    /// Everything (root, or a member of `admin_group`).
    Admin,
    /// Read only (a member of `viewer_group`).
    Viewer,
    /// Nothing: every request is answered 403.
    Refused,
}

/// The configured groups, resolved to ids at start.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Groups {
    /// `admin_group`.
    pub admin: Option<u32>,
    /// `viewer_group`.
    pub viewer: Option<u32>,
}

/// A connection's peer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Peer {
    /// Credentials and names, recorded as the session's owner.
    pub owner: SessionOwner,
    /// Primary and supplementary groups.
    pub groups: Vec<u32>,
    /// The role they give.
    pub role: Role,
}

/// Reads the peer's credentials. `None` when the kernel gives none (the connection is refused).
pub fn peer(stream: &UnixStream, configured: Groups) -> Option<Peer> {
    let cred = rustix::net::sockopt::socket_peercred(stream).ok()?;
    let pid = u32::try_from(rustix::process::Pid::as_raw(Some(cred.pid))).unwrap_or(0);
    let uid = cred.uid.as_raw();
    let gid = cred.gid.as_raw();
    let mut groups = vec![gid];
    groups.extend(supplementary_groups(pid));
    let role = if uid == 0 || configured.admin.is_some_and(|a| groups.contains(&a)) {
        Role::Admin
    } else if configured.viewer.is_some_and(|v| groups.contains(&v)) {
        Role::Viewer
    } else {
        Role::Refused
    };
    Some(Peer {
        owner: SessionOwner {
            process_id: pid,
            user_id: uid,
            group_id: gid,
            username: user_name(uid).unwrap_or_else(|| uid.to_string()),
        },
        groups,
        role,
    })
}

/// The `Groups:` line of `/proc/<pid>/status` (empty when the process is gone).
fn supplementary_groups(pid: u32) -> Vec<u32> {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines().find_map(|l| l.strip_prefix("Groups:")).map(|g| {
                g.split_whitespace()
                    .filter_map(|n| n.parse().ok())
                    .collect()
            })
        })
        .unwrap_or_default()
}

/// Field 3 of the `/etc/passwd`-format line whose field 1 is `name`, or field 1 of the line whose
/// field 3 is `id`.
fn lookup(file: &str, by_name: Option<&str>, by_id: Option<u32>) -> Option<(String, u32)> {
    let text = std::fs::read_to_string(file).ok()?;
    text.lines().find_map(|l| {
        let mut f = l.split(':');
        let name = f.next()?;
        let id: u32 = f.nth(1)?.parse().ok()?;
        let hit = by_name.is_some_and(|n| n == name) || by_id.is_some_and(|i| i == id);
        hit.then(|| (name.to_string(), id))
    })
}

/// A user's name.
pub fn user_name(uid: u32) -> Option<String> {
    lookup("/etc/passwd", None, Some(uid)).map(|(n, _)| n)
}

/// A group given by name or number → its id.
pub fn group_id(group: &str) -> Option<u32> {
    group
        .parse()
        .ok()
        .or_else(|| lookup("/etc/group", Some(group), None).map(|(_, id)| id))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn root_peer_is_admin_and_names_resolve() {
        let (a, _b) = UnixStream::pair().unwrap();
        let p = peer(&a, Groups::default()).unwrap();
        assert_eq!(p.owner.process_id, std::process::id());
        if p.owner.user_id == 0 {
            assert_eq!(p.role, Role::Admin);
            assert_eq!(p.owner.username, "root");
        }
        assert_eq!(group_id("0"), Some(0));
        assert_eq!(group_id("root"), Some(0));
        assert_eq!(group_id("no such group, surely"), None);
    }
}
