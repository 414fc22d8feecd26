//! The two-namespace lab of the live tests (`async_live.rs`, `mgmt_live.rs`): a client namespace
//! where wfpd runs, a server namespace, and a veth pair between them. Each test crate describes
//! its own addresses and link names ([`LabSpec`]) so that crates running at once never collide.

use std::net::{IpAddr, SocketAddr};
use std::path::Path;
use std::process::Command;

use wfp_nfqueue::{enter_netns, TempNetns};

use super::{config, Daemon, TempDir};

/// Runs `ip` with `args`; panics with its stderr when it fails.
pub(crate) fn ip(args: &[&str]) {
    let out = Command::new("ip").args(args).output().expect("ip");
    assert!(
        out.status.success(),
        "ip {}: {}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr)
    );
}

pub(crate) fn addr(ip: &str, port: u16) -> SocketAddr {
    SocketAddr::new(ip.parse::<IpAddr>().expect("address"), port)
}

/// Runs `body` on a new thread inside namespace `ns` (a server: it runs while the test goes on).
pub(crate) fn spawn_in<T: Send + 'static>(
    ns: &TempNetns,
    body: impl FnOnce() -> T + Send + 'static,
) -> std::thread::JoinHandle<T> {
    let name = ns.name().to_owned();
    std::thread::spawn(move || {
        enter_netns(&name).expect("enter netns");
        body()
    })
}

/// Runs `body` inside namespace `ns` and waits for it.
pub(crate) fn run_in<T: Send + 'static>(
    ns: &TempNetns,
    body: impl FnOnce() -> T + Send + 'static,
) -> T {
    spawn_in(ns, body)
        .join()
        .unwrap_or_else(|p| std::panic::resume_unwind(p))
}

/// The shape of a lab: link names and addresses of each side.
#[derive(Clone, Copy)]
pub(crate) struct LabSpec {
    /// The client side's veth (wfpd's hooks match it).
    pub(crate) client_dev: &'static str,
    /// The server side's veth.
    pub(crate) server_dev: &'static str,
    /// IPv4 client and server addresses with their prefix length, e.g. `"10.77.0.1/24"`.
    pub(crate) v4: (&'static str, &'static str),
    /// IPv6 ones (the daemon then queues IPv6 too), or none.
    pub(crate) v6: Option<(&'static str, &'static str)>,
}

/// The client namespace (wfpd, clients) and the server namespace, joined by a veth pair.
pub(crate) struct Lab {
    pub(crate) client: TempNetns,
    pub(crate) server: TempNetns,
    spec: LabSpec,
}

impl Lab {
    /// The lab with namespaces `{prefix}c-PID-N` and `{prefix}s-PID-N`.
    pub(crate) fn new(prefix: &str, spec: LabSpec) -> Self {
        let client = TempNetns::create(&format!("{prefix}c")).expect("client netns");
        let server = TempNetns::create(&format!("{prefix}s")).expect("server netns");
        let (c, s) = (client.name(), server.name());
        let (cd, sd) = (spec.client_dev, spec.server_dev);
        ip(&[
            "-n", c, "link", "add", cd, "type", "veth", "peer", "name", sd, "netns", s,
        ]);
        ip(&["-n", c, "addr", "add", spec.v4.0, "dev", cd]);
        ip(&["-n", s, "addr", "add", spec.v4.1, "dev", sd]);
        if let Some((c6, s6)) = spec.v6 {
            ip(&["-n", c, "addr", "add", c6, "dev", cd, "nodad"]);
            ip(&["-n", s, "addr", "add", s6, "dev", sd, "nodad"]);
        }
        ip(&["-n", c, "link", "set", cd, "up"]);
        ip(&["-n", s, "link", "set", sd, "up"]);
        Self {
            client,
            server,
            spec,
        }
    }

    /// Adds `cidr` to the server side's veth.
    pub(crate) fn add_server_addr(&self, cidr: &str) {
        let mut args = vec!["-n", self.server.name(), "addr", "add", cidr];
        args.extend(["dev", self.spec.server_dev]);
        if cidr.contains(':') {
            args.push("nodad");
        }
        ip(&args);
    }

    /// wfpd on the client side, queueing what crosses the veth (IPv6 too when the lab has it),
    /// with `policy` and `extra` appended to its configuration.
    pub(crate) fn daemon(&self, dir: &TempDir, policy: &str, extra: &str) -> Daemon {
        let policy = dir.write("policy.toml", policy);
        let dev = self.spec.client_dev;
        let ipv6 = if self.spec.v6.is_some() {
            "ipv6 = true\n"
        } else {
            ""
        };
        let hooks = format!(
            "[rules]\n{ipv6}hooks = [ {{ hook = \"OUTPUT\", matches = [\"-o\", \"{dev}\"] }}, \
             {{ hook = \"INPUT\", matches = [\"-i\", \"{dev}\"] }} ]\n\n{extra}"
        );
        let cfg = config(dir, &[&policy], &hooks);
        Daemon::start(&self.client, dir, &cfg)
    }

    /// The server side's TCP retransmissions so far (`/proc/net/snmp`, per namespace).
    pub(crate) fn server_retransmissions(&self) -> u64 {
        let out = Command::new("ip")
            .args(["netns", "exec", self.server.name(), "cat", "/proc/net/snmp"])
            .output()
            .expect("snmp");
        let text = String::from_utf8_lossy(&out.stdout);
        let mut tcp = text.lines().filter(|l| l.starts_with("Tcp:"));
        let (names, values) = (tcp.next().unwrap_or(""), tcp.next().unwrap_or(""));
        names
            .split_whitespace()
            .zip(values.split_whitespace())
            .find(|(n, _)| *n == "RetransSegs")
            .and_then(|(_, v)| v.parse().ok())
            .expect("RetransSegs")
    }
}

/// The API socket line of a daemon's configuration (`[api] socket = ...`).
pub(crate) fn api_section(socket: &Path) -> String {
    format!("[api]\nsocket = {:?}\n", socket.display().to_string())
}
