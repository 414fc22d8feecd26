//! Parameters of built-ins created by name (crate-internal): checks the `(key, value)` pairs a host
//! or policy file gives (keys in the table on [`crate::builtin_with_config`]) and says what to
//! build. Checking needs no [`Host`]; only building the callouts that report somewhere does.
//!
//! ```text
//!  (b, params) ─ configure ─► Configured ─ build(b, host) ─► Arc<dyn Callout>
//!                  │ unknown key / bad value → ConfigError
//! ```

use std::net::IpAddr;
use std::sync::Arc;

use wfp_core::Callout;

use crate::{
    dns, stream_monitor, tls, Builtin, ConfigError, DatagramRedirector, Decision, DnsBlocker,
    EditMode, EditorConfig, Host, InspectorConfig, NameSet, PendingInspector, RedirectorConfig,
    Rule, SniBlocker, StreamEditor, StreamMonitorStream, StreamPatternBlocker, DEFAULT_DNS_NAMES,
    DEFAULT_EDIT_PATTERN, DEFAULT_EDIT_REPLACEMENT, DEFAULT_SNI_NAMES,
};

/// Checked parameters of one built-in: what [`Builtin::make_with`] builds.
pub(crate) enum Configured {
    /// No parameters (or a built-in that takes none): its own constructor, [`Builtin::make`].
    Defaults,
    /// A configured callout that needs nothing from the host.
    Ready(Arc<dyn Callout>),
    /// `wfp.stream-monitor.stream` keeping this many bytes per direction (it reports to the host).
    StreamCapture(usize),
    /// `wfp.pending-inspector` (it queues on the host's worker).
    Inspector(InspectorConfig),
    /// `wfp.stream-editor` (out-of-band edits go to the host's worker).
    Editor(EditorConfig),
    /// `wfp.datagram-redirector` (its redirections go to the host's table).
    Redirector(RedirectorConfig),
}

impl Configured {
    /// The callout, reporting to `host` where it reports anywhere.
    pub(crate) fn build(self, b: &Builtin, host: &Host) -> Arc<dyn Callout> {
        match self {
            Self::Defaults => (b.make)(host),
            Self::Ready(callout) => callout,
            Self::StreamCapture(capture) => Arc::new(StreamMonitorStream::new(
                Arc::clone(&host.stream_log),
                capture,
            )),
            Self::Inspector(config) => {
                Arc::new(PendingInspector::new(Arc::clone(&host.worker), config))
            }
            Self::Editor(config) => Arc::new(StreamEditor::new(config, Arc::clone(&host.worker))),
            Self::Redirector(config) => {
                Arc::new(DatagramRedirector::new(config, Arc::clone(&host.redirects)))
            }
        }
    }
}

/// Checks `params` for `b`: every key must be one it accepts, every value usable.
pub(crate) fn configure(
    b: &Builtin,
    params: &[(String, String)],
) -> Result<Configured, ConfigError> {
    let accepted = accepted_keys(b.name);
    if let Some((k, _)) = params
        .iter()
        .find(|(k, _)| !accepted.split(", ").any(|a| a == k))
    {
        return Err(ConfigError::UnknownParameter {
            callout: b.name,
            key: k.clone(),
            accepted,
        });
    }
    if params.is_empty() {
        return Ok(Configured::Defaults);
    }
    let given = Given {
        callout: b.name,
        params,
    };
    Ok(match b.name {
        "wfp.dns-blocker" => Configured::Ready(given.dns_blocker()?),
        "wfp.tls-sni-blocker" => Configured::Ready(given.sni_blocker()?),
        "wfp.stream-pattern-blocker" => Configured::Ready(given.pattern_blocker()?),
        "wfp.stream-monitor.stream" => Configured::StreamCapture(given.capture()?),
        "wfp.pending-inspector" => Configured::Inspector(given.inspector()?),
        "wfp.stream-editor" => Configured::Editor(given.editor()?),
        "wfp.datagram-redirector" => Configured::Redirector(given.redirector()?),
        _ => Configured::Defaults,
    })
}

/// The keys built-in `name` accepts, as listed in [`ConfigError::UnknownParameter`].
fn accepted_keys(name: &str) -> &'static str {
    match name {
        "wfp.dns-blocker" | "wfp.tls-sni-blocker" => "name, on_malformed",
        "wfp.stream-pattern-blocker" => "pattern, pattern_hex",
        "wfp.stream-monitor.stream" => "capture_bytes",
        "wfp.pending-inspector" => "remote, port, decision",
        "wfp.stream-editor" => "pattern, pattern_hex, replacement, replacement_hex, port, mode",
        "wfp.datagram-redirector" => "address, port, to_address, to_port",
        _ => "none",
    }
}

/// The parameters given to one built-in, keys already checked.
struct Given<'a> {
    callout: &'static str,
    params: &'a [(String, String)],
}

impl<'a> Given<'a> {
    /// Every value of `key`, in order.
    fn values(&self, key: &'static str) -> impl Iterator<Item = &'a str> + 'a {
        self.params
            .iter()
            .filter(move |(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    /// The last value of `key` (non-repeatable keys: the last one wins).
    fn last(&self, key: &'static str) -> Option<&'a str> {
        self.values(key).last()
    }

    fn invalid(&self, key: &str, value: &str, reason: &'static str) -> ConfigError {
        ConfigError::InvalidValue {
            callout: self.callout,
            key: key.to_string(),
            value: value.to_string(),
            reason,
        }
    }

    /// The `name` entries (repeatable, comma-separated), or `defaults` when there is no `name`.
    fn names(&self, defaults: &[&str]) -> Result<NameSet, ConfigError> {
        let listed: Vec<&str> = self
            .values("name")
            .flat_map(|v| v.split(','))
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .collect();
        if listed.is_empty() && self.values("name").next().is_none() {
            NameSet::new(defaults)
        } else {
            NameSet::new(listed)
        }
    }

    /// The value of `key` among `choices`; the first is the default when `key` is absent.
    fn choice<T: Copy>(
        &self,
        key: &'static str,
        choices: [(&str, T); 2],
        reason: &'static str,
    ) -> Result<T, ConfigError> {
        let [(_, default), _] = choices;
        let Some(v) = self.last(key) else {
            return Ok(default);
        };
        choices
            .iter()
            .find(|(name, _)| *name == v)
            .map(|(_, t)| *t)
            .ok_or_else(|| self.invalid(key, v, reason))
    }

    fn dns_blocker(&self) -> Result<Arc<dyn Callout>, ConfigError> {
        let on = self.choice(
            "on_malformed",
            [
                ("continue", dns::OnMalformed::Continue),
                ("block", dns::OnMalformed::Block),
            ],
            "expected continue or block",
        )?;
        let names = self.names(DEFAULT_DNS_NAMES)?;
        Ok(Arc::new(DnsBlocker::with_names(names).on_malformed(on)))
    }

    fn sni_blocker(&self) -> Result<Arc<dyn Callout>, ConfigError> {
        let on = self.choice(
            "on_malformed",
            [
                ("allow", tls::OnMalformed::Allow),
                ("block", tls::OnMalformed::Block),
            ],
            "expected allow or block",
        )?;
        let names = self.names(DEFAULT_SNI_NAMES)?;
        Ok(Arc::new(SniBlocker::with_names(names).on_malformed(on)))
    }

    fn pattern_blocker(&self) -> Result<Arc<dyn Callout>, ConfigError> {
        let mut patterns: Vec<Vec<u8>> = self
            .values("pattern")
            .map(|v| v.as_bytes().to_vec())
            .collect();
        for v in self.values("pattern_hex") {
            patterns.push(
                parse_hex(v).ok_or_else(|| {
                    self.invalid("pattern_hex", v, "expected pairs of hex digits")
                })?,
            );
        }
        Ok(Arc::new(StreamPatternBlocker::new(patterns)?))
    }

    fn capture(&self) -> Result<usize, ConfigError> {
        match self.last("capture_bytes") {
            None => Ok(stream_monitor::DEFAULT_CAPTURE),
            Some(v) => v
                .trim()
                .parse::<usize>()
                .ok()
                .filter(|n| *n <= stream_monitor::MAX_CAPTURE)
                .ok_or_else(|| self.invalid("capture_bytes", v, "expected a number 0..=65536")),
        }
    }
}

impl Given<'_> {
    fn inspector(&self) -> Result<InspectorConfig, ConfigError> {
        let remote = match self.last("remote") {
            None => None,
            Some(v) => Some(
                v.trim()
                    .parse()
                    .map_err(|_| self.invalid("remote", v, "expected an IP address"))?,
            ),
        };
        let decision = self.choice(
            "decision",
            [("allow", Decision::Allow), ("block", Decision::Block)],
            "expected allow or block",
        )?;
        Ok(InspectorConfig {
            remote,
            port: self.port()?,
            decision,
        })
    }

    fn editor(&self) -> Result<EditorConfig, ConfigError> {
        let pattern = self
            .bytes("pattern")?
            .unwrap_or_else(|| DEFAULT_EDIT_PATTERN.to_vec());
        if pattern.is_empty() {
            return Err(ConfigError::InvalidPattern {
                pattern: String::new(),
                reason: "the stream editor needs a non-empty pattern",
            });
        }
        let mode = self.choice(
            "mode",
            [
                ("inline", EditMode::Inline),
                ("out-of-band", EditMode::OutOfBand),
            ],
            "expected inline or out-of-band",
        )?;
        Ok(EditorConfig {
            rule: Rule {
                pattern,
                replacement: self
                    .bytes("replacement")?
                    .unwrap_or_else(|| DEFAULT_EDIT_REPLACEMENT.to_vec()),
            },
            port: self.port()?,
            mode,
        })
    }

    fn redirector(&self) -> Result<RedirectorConfig, ConfigError> {
        let ip = |key: &'static str| -> Result<Option<IpAddr>, ConfigError> {
            self.last(key)
                .map(|v| {
                    v.trim()
                        .parse()
                        .map_err(|_| self.invalid(key, v, "expected an IP address"))
                })
                .transpose()
        };
        let config = RedirectorConfig {
            address: ip("address")?,
            port: self.port()?,
            to_address: ip("to_address")?,
            to_port: self
                .last("to_port")
                .map(|v| {
                    v.trim()
                        .parse::<u16>()
                        .map_err(|_| self.invalid("to_port", v, "expected a port number 0..=65535"))
                })
                .transpose()?,
        };
        if let (Some(a), Some(to)) = (config.address, config.to_address) {
            if a.is_ipv4() != to.is_ipv4() {
                let v = to.to_string();
                return Err(self.invalid("to_address", &v, "not of address's family"));
            }
        }
        Ok(config)
    }

    /// `port` (absent: `None`).
    fn port(&self) -> Result<Option<u16>, ConfigError> {
        self.last("port")
            .map(|v| {
                v.trim()
                    .parse::<u16>()
                    .map_err(|_| self.invalid("port", v, "expected a port number 0..=65535"))
            })
            .transpose()
    }

    /// The last of `key` (UTF-8 bytes) and `<key>_hex` (hex digits); `None` when neither is given.
    fn bytes(&self, key: &'static str) -> Result<Option<Vec<u8>>, ConfigError> {
        let hex_key = match key {
            "pattern" => "pattern_hex",
            _ => "replacement_hex",
        };
        let last = self
            .params
            .iter()
            .rev()
            .find(|(k, _)| k == key || k == hex_key);
        match last {
            None => Ok(None),
            Some((k, v)) if k == key => Ok(Some(v.as_bytes().to_vec())),
            Some((_, v)) => parse_hex(v)
                .map(Some)
                .ok_or_else(|| self.invalid(hex_key, v, "expected pairs of hex digits")),
        }
    }
}

fn parse_hex(s: &str) -> Option<Vec<u8>> {
    let digits: Vec<u8> = s.bytes().filter(|b| !b.is_ascii_whitespace()).collect();
    if digits.len() % 2 != 0 {
        return None;
    }
    digits
        .chunks(2)
        .map(|pair| {
            let hi = char::from(*pair.first()?).to_digit(16)?;
            let lo = char::from(*pair.get(1)?).to_digit(16)?;
            u8::try_from(hi * 16 + lo).ok()
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_patterns() {
        assert_eq!(parse_hex("00ff10"), Some(vec![0, 0xff, 0x10]));
        assert_eq!(parse_hex("0 0f f"), Some(vec![0, 0xff]));
        assert_eq!(parse_hex("0"), None);
    }

    fn redirector(params: &[(&str, &str)]) -> Result<RedirectorConfig, ConfigError> {
        let params: Vec<(String, String)> = params
            .iter()
            .map(|(k, v)| ((*k).to_string(), (*v).to_string()))
            .collect();
        Given {
            callout: "wfp.datagram-redirector",
            params: &params,
        }
        .redirector()
    }

    #[test]
    fn redirector_parameters() {
        let r = redirector(&[
            ("address", "192.0.2.1"),
            ("port", "53"),
            ("to_port", "5353"),
        ])
        .expect("valid");
        let peer = "192.0.2.1:53".parse().expect("addr");
        assert_eq!(
            r.target(peer),
            Some("192.0.2.1:5353".parse().expect("addr"))
        );
        assert_eq!(r.target("192.0.2.1:54".parse().expect("addr")), None);
        assert_eq!(redirector(&[]).expect("valid").target(peer), None);
        // Each key alone is valid (a policy file checks them one by one).
        for one in ["address", "to_address"] {
            assert!(redirector(&[(one, "::1")]).is_ok());
        }
        for bad in [
            &[("address", "192.0.2.1"), ("to_address", "::1")][..],
            &[("address", "x")],
            &[("to_port", "70000")],
            &[("port", "")],
        ] {
            assert!(redirector(bad).is_err(), "{bad:?}");
        }
    }
}
