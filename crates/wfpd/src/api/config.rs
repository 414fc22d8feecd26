//! `[api]` and `[store]`: the management socket and the persistent-object store.

use std::path::PathBuf;

use serde::Deserialize;

/// `[api]`: the local management API (`docs/api.md`). Absent `socket` → no API.
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, default)]
#[non_exhaustive]
pub struct ApiConfig {
    /// The Unix socket's path (a file system path; abstract sockets are not used).
    pub socket: Option<PathBuf>,
    /// Group (name or number) whose members may change policy; root always may.
    pub admin_group: Option<String>,
    /// Group whose members may read (list, enumerate, watch) but not change anything.
    ///
    /// The socket is created mode 0660 owned by root and by `viewer_group` when set (admins must
    /// be members of it too to reach the socket), else by `admin_group` (mode 0600, root only,
    /// without either). File access only lets a process connect; every connection's peer
    /// credentials (SO_PEERCRED) then decide admin, viewer or refused.
    pub viewer_group: Option<String>,
    /// Largest request body accepted (413 beyond).
    pub max_request_bytes: usize,
    /// Time a client has to send a whole request once it started one (408 beyond).
    pub request_timeout_ms: u64,
    /// Time an idle connection is kept open between requests.
    pub idle_timeout_ms: u64,
    /// Connections served at once (503 beyond).
    pub max_connections: usize,
    /// Time a pended authorization (`/v1/pending`, `wfp.interactive`) waits for a decision.
    pub pending_deadline_ms: u64,
    /// What applies at that deadline: `"permit"` or `"block"`.
    pub pending_default: PendingDefault,
    /// Pended authorizations waiting at once; beyond, the default applies at once.
    pub pending_max: usize,
    /// Also serve `/v1/metrics` on this TCP address (`"127.0.0.1:9464"`); absent: socket only.
    pub metrics_listen: Option<std::net::SocketAddr>,
    /// Allow a `metrics_listen` address that is not loopback.
    pub metrics_allow_remote: bool,
}

/// `[api] pending_default`.
#[derive(Clone, Copy, Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum PendingDefault {
    /// Permit the connection.
    Permit,
    /// Block it (the default).
    #[default]
    Block,
}

impl ApiConfig {
    /// The prompts' policy these keys give.
    pub fn prompt_policy(&self) -> wfp_callouts::interactive::PromptPolicy {
        wfp_callouts::interactive::PromptPolicy {
            deadline: std::time::Duration::from_millis(self.pending_deadline_ms),
            default: match self.pending_default {
                PendingDefault::Permit => wfp_callouts::Decision::Allow,
                PendingDefault::Block => wfp_callouts::Decision::Block,
            },
            max_waiting: self.pending_max,
        }
    }
}

impl Default for ApiConfig {
    fn default() -> Self {
        Self {
            socket: None,
            admin_group: None,
            viewer_group: None,
            max_request_bytes: 1024 * 1024,
            request_timeout_ms: 5_000,
            idle_timeout_ms: 300_000,
            max_connections: 64,
            pending_deadline_ms: 30_000,
            pending_default: PendingDefault::Block,
            pending_max: 1024,
            metrics_listen: None,
            metrics_allow_remote: false,
        }
    }
}

/// `[store]`: where persistent objects live (`docs/store-format.md`). Absent `path` → persistent
/// objects last until the daemon stops.
#[derive(Clone, Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, default)]
#[non_exhaustive]
pub struct StoreConfig {
    /// The redb file.
    pub path: Option<PathBuf>,
    /// The boot-time ruleset file (§11.3; `nft -f` input, loaded at boot by
    /// `wfpd-boottime.service` and by wfpd before it opens the store). Default: `boottime.nft`
    /// beside `path`.
    pub boottime_rules: Option<PathBuf>,
}

impl StoreConfig {
    /// The boot-time ruleset file: `boottime_rules`, else `boottime.nft` beside the store; none
    /// without a store (boot-time filters then last only as long as the daemon).
    pub fn boottime_rules_path(&self) -> Option<PathBuf> {
        let beside = || self.path.as_ref().map(|p| p.with_file_name("boottime.nft"));
        self.boottime_rules.clone().or_else(beside)
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use crate::Config;

    #[test]
    fn api_and_store_sections_parse_and_refuse_unknown_keys() {
        let base = "[policy]\nfiles = [\"p.toml\"]\n";
        let c = Config::parse(
            &format!(
                "{base}[api]\nsocket = \"/run/wfpd/wfpd.sock\"\nadmin_group = \"wfp\"\n\
                 request_timeout_ms = 100\n[store]\npath = \"/var/lib/wfpd/store.redb\"\n"
            ),
            "t",
        )
        .unwrap();
        assert_eq!(
            c.api.socket.as_deref(),
            Some(Path::new("/run/wfpd/wfpd.sock"))
        );
        assert_eq!(c.api.request_timeout_ms, 100);
        assert_eq!(c.api.max_request_bytes, 1024 * 1024);
        assert_eq!(
            c.store.path.as_deref(),
            Some(Path::new("/var/lib/wfpd/store.redb"))
        );
        let none = Config::parse(base, "t").unwrap();
        assert!(none.api.socket.is_none() && none.store.path.is_none());
        assert!(Config::parse(&format!("{base}[api]\nsockt = \"x\"\n"), "t").is_err());
        assert!(Config::parse(&format!("{base}[store]\nfile = \"x\"\n"), "t").is_err());
    }

    #[test]
    fn pending_and_metrics_keys_parse() {
        let base = "[policy]\nfiles = [\"p.toml\"]\n";
        let c = Config::parse(
            &format!(
                "{base}[api]\nsocket = \"/run/wfpd/wfpd.sock\"\npending_deadline_ms = 1500\n\
                 pending_default = \"permit\"\npending_max = 3\nmetrics_listen = \"127.0.0.1:9464\"\n"
            ),
            "t",
        )
        .unwrap();
        let p = c.api.prompt_policy();
        assert_eq!(p.deadline, std::time::Duration::from_millis(1500));
        assert_eq!(p.default, wfp_callouts::Decision::Allow);
        assert_eq!(p.max_waiting, 3);
        assert_eq!(
            c.api.metrics_listen,
            Some("127.0.0.1:9464".parse().unwrap())
        );
        let d = Config::parse(base, "t").unwrap().api.prompt_policy();
        assert_eq!(
            (d.default, d.deadline),
            (
                wfp_callouts::Decision::Block,
                std::time::Duration::from_secs(30)
            )
        );
        assert!(
            Config::parse(&format!("{base}[api]\npending_default = \"maybe\"\n"), "t").is_err()
        );
    }
}
