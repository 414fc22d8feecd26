//! Network namespaces: entering a named one (`setns(2)`), and a temporary one for tests and
//! benchmarks that deletes itself.
//!
//! A network namespace is a per-thread property: [`enter_netns`] moves only the calling thread
//! (and threads it starts afterwards). Sockets keep the namespace they were created in, so open
//! queues and sockets after entering.

use std::fs::File;
use std::os::fd::AsRawFd;
use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};

use crate::error::NfqError;
use crate::sys::{self, Op};

/// Checks that `name` is a plausible `ip netns` name (no path separators, not `.`/`..`).
pub(crate) fn check_name(name: &str) -> Result<(), NfqError> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && name != "."
        && name != ".."
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b'.');
    if ok {
        Ok(())
    } else {
        Err(NfqError::Netns {
            name: name.to_owned(),
            reason: "invalid name (allowed: A-Z a-z 0-9 - _ ., at most 64)".to_owned(),
        })
    }
}

/// Moves the calling thread into the network namespace `name` created by `ip netns add`
/// (`/run/netns/NAME`). Needs `CAP_SYS_ADMIN`.
pub fn enter_netns(name: &str) -> Result<(), NfqError> {
    check_name(name)?;
    let path = format!("/run/netns/{name}");
    let file = File::open(&path).map_err(|e| NfqError::Netns {
        name: name.to_owned(),
        reason: format!("open {path}: {e}"),
    })?;
    sys::call(Op::SetNetns {
        fd: file.as_raw_fd(),
    })
    .map_err(|e| NfqError::Netns {
        name: name.to_owned(),
        reason: format!("setns: {}", e.io()),
    })?;
    Ok(())
}

/// A network namespace created with `ip netns add` and deleted (with everything in it: rules,
/// queues' packets, interfaces) when this value is dropped, also during a panic.
///
/// The name is `<prefix>-<pid>-<counter>`, unique per process. Loopback is brought up.
#[derive(Debug)]
pub struct TempNetns {
    name: String,
}

impl TempNetns {
    /// Creates the namespace and brings up its `lo`. Needs root and `ip` (iproute2).
    pub fn create(prefix: &str) -> Result<Self, NfqError> {
        static COUNTER: AtomicU32 = AtomicU32::new(0);
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        let name = format!("{prefix}-{}-{n}", std::process::id());
        check_name(&name)?;
        run_ip(&name, &["netns", "add", &name])?;
        let netns = Self { name };
        run_ip(&netns.name, &["-n", &netns.name, "link", "set", "lo", "up"])?;
        Ok(netns)
    }

    /// The namespace name (for `ip netns exec` and [`crate::rules::RuleSet::netns`]).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Moves the calling thread into this namespace (see [`enter_netns`]).
    pub fn enter(&self) -> Result<(), NfqError> {
        enter_netns(&self.name)
    }
}

impl Drop for TempNetns {
    fn drop(&mut self) {
        let _ = run_ip(&self.name, &["netns", "del", &self.name]);
    }
}

fn run_ip(name: &str, args: &[&str]) -> Result<(), NfqError> {
    let output = Command::new("ip")
        .args(args)
        .output()
        .map_err(|e| NfqError::Netns {
            name: name.to_owned(),
            reason: format!("run ip: {e}"),
        })?;
    if output.status.success() {
        Ok(())
    } else {
        Err(NfqError::Netns {
            name: name.to_owned(),
            reason: format!(
                "ip {} failed: {}",
                args.join(" "),
                String::from_utf8_lossy(&output.stderr).trim()
            ),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_checked() {
        assert!(check_name("wfpnq-12-0").is_ok());
        for bad in ["", ".", "..", "a/b", "a b", &"x".repeat(65)] {
            assert!(check_name(bad).is_err(), "{bad:?}");
        }
        assert!(enter_netns("../etc").is_err());
    }
}
