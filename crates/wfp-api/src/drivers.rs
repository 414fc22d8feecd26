//! Bodies of the `/v1/drivers` endpoints (C callout drivers hosted by the running daemon,
//! `docs/api.md` "Drivers") and the base64 both ends use for device-control buffers.
//!
//! ```text
//!  GET    /v1/drivers                                 → [DriverView]
//!  POST   /v1/drivers              LoadDriverRequest  → DriverView        (admin)
//!  DELETE /v1/drivers/{name}                          → DriverUnloaded    (admin)
//!  POST   /v1/drivers/{name}/ioctl IoctlRequest       → IoctlAnswer       (admin)
//! ```

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// The largest output buffer an ioctl may ask for (bytes).
pub const IOCTL_MAX_OUTPUT: usize = 1 << 20;

/// The output buffer an ioctl gets when the request names none (bytes).
pub const IOCTL_DEFAULT_OUTPUT: usize = 4096;

/// `POST /v1/drivers`: load a driver image into the daemon (its DriverEntry runs there).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LoadDriverRequest {
    /// The image: absolute, or relative to the daemon's configuration directory.
    pub path: String,
    /// The driver's Parameters key: `NAME` → `VALUE` (`dword:N`, `sz:TEXT`, or inferred: a
    /// number that fits 32 bits is a REG_DWORD, anything else a REG_SZ).
    #[serde(default)]
    pub params: BTreeMap<String, String>,
}

/// One driver loaded in the daemon (`GET /v1/drivers`, and the answer of a load).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DriverView {
    /// The driver's name (its image's file stem); unique in the daemon.
    pub name: String,
    /// The image it was loaded from (absolute).
    pub path: String,
    /// Load parameters as given.
    #[serde(default)]
    pub params: BTreeMap<String, String>,
    /// When it was loaded: seconds since the Unix epoch.
    pub loaded_at: u64,
    /// How it was loaded: `config` (a `[[driver]]` table) or `api`.
    #[serde(default)]
    pub origin: String,
    /// Driver Verifier findings so far.
    #[serde(default)]
    pub findings: usize,
    /// Its WDF devices (`\Device\Name`, or `(unnamed)`).
    #[serde(default)]
    pub devices: Vec<String>,
}

/// The answer of `DELETE /v1/drivers/{name}`: the unload finished (wfp-reference §5.3).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DriverUnloaded {
    /// The driver.
    pub name: String,
    /// What the Driver Verifier found (leaks, callouts left registered, ...), one line each.
    #[serde(default)]
    pub findings: Vec<String>,
}

/// `POST /v1/drivers/{name}/ioctl`: a device-control request to the driver's default queue
/// (EvtIoDeviceControl).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IoctlRequest {
    /// The IOCTL code (`CTL_CODE(type, function, method, access)`).
    pub code: u32,
    /// The input buffer, base64 (empty: no input).
    #[serde(default)]
    pub input_b64: String,
    /// The output buffer's size; default [`IOCTL_DEFAULT_OUTPUT`], at most
    /// [`IOCTL_MAX_OUTPUT`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub output_len: Option<usize>,
}

/// The answer of an ioctl: the driver completed the request.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct IoctlAnswer {
    /// The NTSTATUS the driver completed the request with.
    pub status: u32,
    /// `IoStatus.Information` (bytes returned).
    #[serde(default)]
    pub information: u64,
    /// The output bytes, base64.
    #[serde(default)]
    pub output_b64: String,
}

impl IoctlAnswer {
    /// NT_SUCCESS: severity success or informational.
    pub fn success(&self) -> bool {
        self.status >> 30 <= 1
    }
}

const B64: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/// RFC 4648 base64 with padding.
pub fn b64_encode(data: &[u8]) -> String {
    let mut out = String::with_capacity(data.len().div_ceil(3) * 4);
    for chunk in data.chunks(3) {
        let byte = |i: usize| u32::from(chunk.get(i).copied().unwrap_or(0));
        let n = byte(0) << 16 | byte(1) << 8 | byte(2);
        for i in 0..4 {
            if i <= chunk.len() {
                let six = (n >> (18 - 6 * i) & 63) as usize;
                out.push(char::from(B64.get(six).copied().unwrap_or(b'A')));
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// RFC 4648 base64 (padding optional, whitespace ignored); `None` on any other character.
pub fn b64_decode(text: &str) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(text.len() / 4 * 3);
    let (mut acc, mut bits) = (0u32, 0u32);
    for c in text.bytes().filter(|c| !c.is_ascii_whitespace()) {
        if c == b'=' {
            break;
        }
        let v = B64.iter().position(|x| *x == c)?;
        acc = (acc << 6 | u32::try_from(v).ok()?) & 0xff_ffff;
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push(u8::try_from(acc >> bits & 0xff).ok()?);
        }
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_rfc4648_vectors() {
        for (plain, coded) in [
            ("", ""),
            ("f", "Zg=="),
            ("fo", "Zm8="),
            ("foo", "Zm9v"),
            ("foob", "Zm9vYg=="),
            ("fooba", "Zm9vYmE="),
            ("foobar", "Zm9vYmFy"),
        ] {
            assert_eq!(b64_encode(plain.as_bytes()), coded);
            assert_eq!(b64_decode(coded).unwrap(), plain.as_bytes());
        }
        assert_eq!(b64_decode("Zm9v\nYg"), Some(b"foob".to_vec()));
        assert_eq!(b64_decode("Zm9*"), None);
        let all: Vec<u8> = (0..=255).collect();
        assert_eq!(b64_decode(&b64_encode(&all)).unwrap(), all);
    }

    #[test]
    fn bodies_have_the_documented_shape() {
        let r: IoctlRequest = serde_json::from_str(r#"{"code":2236419}"#).unwrap();
        assert_eq!(
            (r.code, r.input_b64.as_str(), r.output_len),
            (0x22_2003, "", None)
        );
        assert!(serde_json::from_str::<IoctlRequest>(r#"{"code":1,"x":2}"#).is_err());
        let l: LoadDriverRequest = serde_json::from_str(r#"{"path":"/a.so"}"#).unwrap();
        assert!(l.params.is_empty());
        let a = IoctlAnswer {
            status: 0xC000_000D,
            ..IoctlAnswer::default()
        };
        assert!(!a.success());
        assert!(IoctlAnswer::default().success());
    }
}
