//! What the `wfpctl` CLI tests share: running the built binary against a socket, reading its
//! output, a per-test scratch directory, and wfpd's management API server in process.

#![allow(dead_code, reason = "each test binary uses its own subset")]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::Arc;

use wfp_core::Engine;
use wfpd::api::{ApiConfig, Server};

/// `wfpctl ARGS... --socket SOCKET`, waited for.
pub(crate) fn wfpctl(socket: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_wfpctl"))
        .args(args)
        .arg("--socket")
        .arg(socket)
        .output()
        .unwrap()
}

/// stdout then stderr, for assertions and failure messages.
pub(crate) fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// A fresh, empty scratch directory for the test named `tag` in this process.
pub(crate) fn dir(tag: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("wfpctl-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// An engine served by wfpd's management API on a socket in a scratch directory (no queues).
pub(crate) struct InProcessApi {
    pub(crate) engine: Arc<Engine>,
    pub(crate) dir: PathBuf,
    pub(crate) sock: PathBuf,
    server: Option<Server>,
}

impl InProcessApi {
    pub(crate) fn start(tag: &str) -> Self {
        let dir = dir(tag);
        let engine = Arc::new(Engine::default());
        let mut config = ApiConfig::default();
        config.socket = Some(dir.join("wfpd.sock"));
        let server = Server::start(Arc::clone(&engine), None, config).unwrap();
        let sock = server.path().to_path_buf();
        Self {
            engine,
            dir,
            sock,
            server: Some(server),
        }
    }
}

impl Drop for InProcessApi {
    fn drop(&mut self) {
        drop(self.server.take());
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
