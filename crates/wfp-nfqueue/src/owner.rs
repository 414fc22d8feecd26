//! Who owns a connection: socket diagnostics for the socket (inode, uid), then `/proc` for the
//! process (pid, executable), with a bounded cache.
//!
//! ```text
//!  (protocol, local, remote) ──SockDiag::lookup──► SocketInfo { inode, uid }
//!        inode ──cache hit (re-checked: /proc/PID/fd/FD still names socket:[inode])──► process
//!              └─miss──► scan /proc/PID/fd/* (recently seen PIDs first, then all) ──► PID, FD
//!        PID ──readlink /proc/PID/exe──► executable path
//! ```
//!
//! Fallbacks, never errors: a connection without a local socket (forwarded traffic, a socket
//! already closed) gives `None`; a socket whose process cannot be found (it exited, or the socket
//! has no file, as in TCP `TIME_WAIT`) gives a [`SocketOwner`] with `process: None`, so the uid is
//! still known. Each outcome is counted in [`OwnerStats`].
//!
//! Cost: one netlink round trip per lookup; a cache hit adds one `readlink(2)`; a miss scans the
//! file descriptors of the processes visible in `/proc` (the recently matched ones first). Call it
//! once per new flow, not per packet.

use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use crate::error::NfqError;
use crate::sockdiag::{DiagProtocol, SockDiag};

/// The process that owns a socket.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct ProcessInfo {
    /// Process id.
    pub pid: u32,
    /// The executable (`/proc/PID/exe`, without a trailing ` (deleted)`), when readable.
    pub exe: Option<PathBuf>,
}

/// A connection's local socket and, when found, its process.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct SocketOwner {
    /// The socket owner's uid.
    pub uid: u32,
    /// The socket inode (0 for sockets without a file).
    pub inode: u32,
    /// The owning process, when one still holds the socket open.
    pub process: Option<Arc<ProcessInfo>>,
}

/// Counters of an [`OwnerResolver`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub struct OwnerStats {
    /// Lookups made.
    pub lookups: u64,
    /// Lookups that found no local socket.
    pub no_socket: u64,
    /// Lookups answered from the cache (after re-checking it).
    pub cache_hits: u64,
    /// `/proc` scans.
    pub scans: u64,
    /// Sockets found whose process could not be found.
    pub no_process: u64,
    /// Socket-diagnostics failures (counted; the lookup then gives `None`).
    pub errors: u64,
}

#[derive(Clone, Debug)]
struct Entry {
    pid: u32,
    fd: u32,
    process: Arc<ProcessInfo>,
}

/// Looks up connection owners. One per worker thread (it owns a netlink socket).
#[derive(Debug)]
pub struct OwnerResolver {
    diag: SockDiag,
    proc_root: PathBuf,
    cache: HashMap<u32, Entry>,
    order: VecDeque<u32>,
    capacity: usize,
    hot: VecDeque<u32>,
    stats: OwnerStats,
}

/// How many recently matched PIDs are scanned before a full scan.
const HOT_PIDS: usize = 32;

impl OwnerResolver {
    /// A resolver caching up to `capacity` sockets (at least 1), reading `/proc`. Opens a
    /// socket-diagnostics socket in the calling thread's network namespace.
    pub fn open(capacity: usize) -> Result<Self, NfqError> {
        Self::with_proc_root(capacity, PathBuf::from("/proc"))
    }

    /// Like [`OwnerResolver::open`], reading processes under `proc_root` instead of `/proc`.
    pub fn with_proc_root(capacity: usize, proc_root: PathBuf) -> Result<Self, NfqError> {
        Ok(Self {
            diag: SockDiag::open(Duration::from_millis(200))?,
            proc_root,
            cache: HashMap::new(),
            order: VecDeque::new(),
            capacity: capacity.max(1),
            hot: VecDeque::new(),
            stats: OwnerStats::default(),
        })
    }

    /// The owner of the connection `local` ↔ `remote` (`local` is this host's end) for IP
    /// protocol `protocol`. `None` when there is no local socket (or the protocol is not TCP or
    /// UDP, or socket diagnostics failed — counted in [`OwnerStats::errors`]).
    pub fn lookup(
        &mut self,
        protocol: u8,
        local: SocketAddr,
        remote: SocketAddr,
    ) -> Option<SocketOwner> {
        self.stats.lookups += 1;
        let diag_protocol = DiagProtocol::from_ip_protocol(protocol)?;
        let info = match self.diag.lookup(diag_protocol, local, remote) {
            Ok(Some(info)) => info,
            Ok(None) => {
                self.stats.no_socket += 1;
                return None;
            }
            Err(_) => {
                self.stats.errors += 1;
                return None;
            }
        };
        let process = if info.inode == 0 {
            None
        } else {
            self.process_of(info.inode)
        };
        if process.is_none() {
            self.stats.no_process += 1;
        }
        Some(SocketOwner {
            uid: info.uid,
            inode: info.inode,
            process,
        })
    }

    /// The counters so far.
    pub fn stats(&self) -> OwnerStats {
        self.stats
    }

    /// The process holding socket `inode`: the cache (re-checked), else a scan.
    pub fn process_of(&mut self, inode: u32) -> Option<Arc<ProcessInfo>> {
        if let Some(entry) = self.cache.get(&inode) {
            if fd_names_socket(&self.proc_root, entry.pid, entry.fd, inode) {
                self.stats.cache_hits += 1;
                return Some(Arc::clone(&entry.process));
            }
            self.cache.remove(&inode);
        }
        self.stats.scans += 1;
        let (pid, fd) = self.scan(inode)?;
        let process = Arc::new(ProcessInfo {
            pid,
            exe: exe_of(&self.proc_root, pid),
        });
        self.remember(inode, pid, fd, Arc::clone(&process));
        Some(process)
    }

    fn scan(&mut self, inode: u32) -> Option<(u32, u32)> {
        let target = format!("socket:[{inode}]");
        let hot: Vec<u32> = self.hot.iter().copied().collect();
        for pid in hot {
            if let Some(fd) = find_fd(&self.proc_root, pid, &target) {
                return Some((pid, fd));
            }
        }
        let entries = std::fs::read_dir(&self.proc_root).ok()?;
        for entry in entries.flatten() {
            let Some(pid) = entry
                .file_name()
                .to_str()
                .and_then(|s| s.parse::<u32>().ok())
            else {
                continue;
            };
            if let Some(fd) = find_fd(&self.proc_root, pid, &target) {
                self.hot.retain(|&p| p != pid);
                self.hot.push_front(pid);
                self.hot.truncate(HOT_PIDS);
                return Some((pid, fd));
            }
        }
        None
    }

    fn remember(&mut self, inode: u32, pid: u32, fd: u32, process: Arc<ProcessInfo>) {
        while self.cache.len() >= self.capacity {
            match self.order.pop_front() {
                Some(old) => {
                    self.cache.remove(&old);
                }
                None => {
                    self.cache.clear();
                    break;
                }
            }
        }
        if self
            .cache
            .insert(inode, Entry { pid, fd, process })
            .is_none()
        {
            self.order.push_back(inode);
        }
        // `order` may hold inodes already dropped on a failed re-check; keep it bounded.
        if self.order.len() > self.capacity.saturating_mul(2) {
            self.order.retain(|i| self.cache.contains_key(i));
        }
    }
}

/// True if `/proc/PID/fd/FD` is a link to `socket:[inode]`.
fn fd_names_socket(root: &Path, pid: u32, fd: u32, inode: u32) -> bool {
    let path = root.join(pid.to_string()).join("fd").join(fd.to_string());
    let want = format!("socket:[{inode}]");
    std::fs::read_link(path).is_ok_and(|target| target.as_os_str() == want.as_str())
}

/// The number of the descriptor of `pid` that links to `target`, if any.
fn find_fd(root: &Path, pid: u32, target: &str) -> Option<u32> {
    let dir = root.join(pid.to_string()).join("fd");
    for entry in std::fs::read_dir(dir).ok()?.flatten() {
        if std::fs::read_link(entry.path()).is_ok_and(|t| t.as_os_str() == target) {
            return entry.file_name().to_str().and_then(|s| s.parse().ok());
        }
    }
    None
}

/// `/proc/PID/exe`, without the ` (deleted)` the kernel appends for a replaced binary.
fn exe_of(root: &Path, pid: u32) -> Option<PathBuf> {
    let exe = std::fs::read_link(root.join(pid.to_string()).join("exe")).ok()?;
    let text = exe.to_string_lossy();
    match text.strip_suffix(" (deleted)") {
        Some(stripped) => Some(PathBuf::from(stripped)),
        None => Some(exe),
    }
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::symlink;

    use super::*;
    use crate::sys::fake::FakeKernel;

    /// One fake process: pid, exe link, (fd, link target) pairs.
    type FakeProcess<'a> = (u32, &'a str, &'a [(u32, &'a str)]);

    /// A fake /proc.
    fn fake_proc(name: &str, procs: &[FakeProcess<'_>]) -> PathBuf {
        let root = std::env::temp_dir().join(format!("wfpnq-proc-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&root);
        for (pid, exe, fds) in procs {
            let dir = root.join(pid.to_string());
            std::fs::create_dir_all(dir.join("fd")).expect("mkdir");
            symlink(exe, dir.join("exe")).expect("exe link");
            for (fd, target) in *fds {
                symlink(target, dir.join("fd").join(fd.to_string())).expect("fd link");
            }
        }
        std::fs::create_dir_all(root.join("self")).expect("non-numeric entry");
        root
    }

    #[test]
    fn scans_once_then_hits_the_cache_until_the_socket_moves() {
        let _fake = FakeKernel::install();
        let root = fake_proc(
            "scan",
            &[
                (10, "/usr/bin/other", &[(0, "/dev/null"), (3, "socket:[5]")]),
                (
                    20,
                    "/usr/bin/Python3.11 (deleted)",
                    &[(4, "socket:[99]"), (5, "pipe:[1]")],
                ),
            ],
        );
        let mut owners = OwnerResolver::with_proc_root(2, root.clone()).expect("open");
        let p = owners.process_of(99).expect("found");
        assert_eq!(p.pid, 20);
        assert_eq!(p.exe.as_deref(), Some(Path::new("/usr/bin/Python3.11")));
        assert_eq!(owners.stats().scans, 1);
        assert_eq!(owners.process_of(99).map(|p| p.pid), Some(20));
        assert_eq!(owners.stats().cache_hits, 1);
        // The socket closes and the fd number is reused for something else: the re-check fails.
        std::fs::remove_file(root.join("20/fd/4")).expect("rm");
        symlink("socket:[100]", root.join("20/fd/4")).expect("relink");
        assert_eq!(owners.process_of(99), None);
        assert_eq!(owners.process_of(100).map(|p| p.pid), Some(20));
        assert_eq!(owners.process_of(5).map(|p| p.pid), Some(10));
        assert_eq!(owners.process_of(12345), None);
        assert!(owners.cache.len() <= 2, "bounded");
        let _ = std::fs::remove_dir_all(root);
    }
}
