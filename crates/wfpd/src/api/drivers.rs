//! `/v1/drivers`: the daemon's C callout drivers ([`crate::drivers::Drivers`]). Viewers may
//! list; loading, unloading and device-control requests are writes, for admins only (the
//! connection's role check runs before this module).
//!
//! ```text
//!  GET    /v1/drivers                    → [DriverView]
//!  POST   /v1/drivers {"path","params"}  → DriverView       DriverEntry runs (PASSIVE_LEVEL)
//!  DELETE /v1/drivers/{name}             → DriverUnloaded   §5.3 unload, bounded
//!  POST   /v1/drivers/{name}/ioctl       → IoctlAnswer      EvtIoDeviceControl, bounded
//! ```

use wfp_api::drivers::{b64_decode, IOCTL_DEFAULT_OUTPUT, IOCTL_MAX_OUTPUT};
use wfp_api::http::Message;
use wfp_api::{IoctlRequest, LoadDriverRequest};

use super::conn::{body, json, Answer, Conn, Failure};
use crate::drivers::{DriverError, Drivers};

const STATUS_INVALID_PARAMETER: u32 = 0xC000_000D;

impl From<DriverError> for Failure {
    fn from(e: DriverError) -> Self {
        let (status, code, name) = e.code();
        Self::new(status, code, name, e.to_string())
    }
}

fn invalid(message: String) -> Failure {
    Failure::new(
        400,
        STATUS_INVALID_PARAMETER,
        "STATUS_INVALID_PARAMETER",
        message,
    )
}

/// Dispatches `/v1/drivers/<rest>` (`path` starts with `drivers`).
pub(crate) fn route(c: &mut Conn<'_>, method: &str, path: &[&str], m: &Message) -> Answer {
    let rest = path.get(1..).unwrap_or_default();
    let drivers = c.shared.drivers.get();
    match (method, rest) {
        ("GET", []) => json(&drivers.map_or_else(Vec::new, Drivers::list)),
        ("POST", []) => {
            let req: LoadDriverRequest = body(m)?;
            let view = hosted(drivers)?.load(&req.path, &req.params)?;
            tracing::info!(driver = %view.name, uid = c.peer.owner.user_id, "loaded through the API");
            json(&view)
        }
        ("DELETE", [name]) => {
            let name = decode(name)?;
            let report = hosted(drivers)?.unload(&name)?;
            tracing::info!(driver = %name, uid = c.peer.owner.user_id, "unloaded through the API");
            json(&report)
        }
        ("POST", [name, "ioctl"]) => {
            let req: IoctlRequest = body(m)?;
            let input = b64_decode(&req.input_b64)
                .ok_or_else(|| invalid("input_b64 is not base64".into()))?;
            let output_len = req.output_len.unwrap_or(IOCTL_DEFAULT_OUTPUT);
            if output_len > IOCTL_MAX_OUTPUT {
                return Err(invalid(format!(
                    "output_len {output_len} is over {IOCTL_MAX_OUTPUT}"
                )));
            }
            json(&hosted(drivers)?.ioctl(&decode(name)?, req.code, &input, output_len)?)
        }
        _ => Err(Failure::not_found(&format!(
            "{method} /v1/drivers/{}",
            rest.join("/")
        ))),
    }
}

/// The registry, or 503 when this server hosts no drivers (an API without a daemon).
fn hosted(drivers: Option<&Drivers>) -> Result<&Drivers, Failure> {
    drivers.ok_or_else(|| DriverError::Stopping.into())
}

/// Percent-decodes a path segment (the client encodes names).
fn decode(segment: &str) -> Result<String, Failure> {
    let bad = || invalid(format!("bad percent-encoding in {segment:?}"));
    let bytes = segment.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while let Some(&b) = bytes.get(i) {
        if b == b'%' {
            let hex = bytes.get(i + 1..i + 3).ok_or_else(bad)?;
            let hex = std::str::from_utf8(hex).map_err(|_| bad())?;
            out.push(u8::from_str_radix(hex, 16).map_err(|_| bad())?);
            i += 3;
        } else {
            out.push(b);
            i += 1;
        }
    }
    String::from_utf8(out).map_err(|_| bad())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_percent_decoded() {
        assert_eq!(decode("flowmon").ok(), Some("flowmon".into()));
        assert_eq!(decode("a%20b%2Fc").ok(), Some("a b/c".into()));
        for bad in ["%", "%2", "%zz", "%ff"] {
            assert!(decode(bad).is_err(), "{bad}");
        }
    }
}
