//! One stored object: a fixed 20-byte header and a JSON payload (the object's `wfp-api` DTO).
//! The layout is documented byte by byte in `docs/store-format.md`; [`encode`] and [`decode`]
//! are its only implementation.
//!
//! ```text
//!  0      4        6      7          8              16             20
//!  | WFPR | ver u16 | kind | reserved | seq u64 (LE) | len u32 (LE) | JSON payload (len bytes) |
//! ```

use crate::StoreError;

/// The four magic bytes every record starts with.
pub const MAGIC: [u8; 4] = *b"WFPR";
/// The record layout version this build writes and the newest it reads.
pub const RECORD_VERSION: u16 = 1;
/// Header length in bytes.
pub const HEADER_LEN: usize = 20;

/// Which object a record holds (byte 6 of the record, byte 0 of the table key). The load order
/// is [`crate::Contents::install`]'s (providers, sublayers, callouts, provider contexts, filters, boot-time filters),
/// not the numbers: kinds 5 and 6 came with store format version 2.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[repr(u8)]
pub enum Kind {
    /// `FWPM_PROVIDER0` (payload: `ProviderDto`).
    Provider = 1,
    /// `FWPM_SUBLAYER0` (payload: `SublayerDto`).
    Sublayer = 2,
    /// `FWPM_CALLOUT0` (payload: `CalloutDto`).
    Callout = 3,
    /// `FWPM_FILTER0` (payload: `FilterDto`).
    Filter = 4,
    /// `FWPM_PROVIDER_CONTEXT3` (payload: `ProviderContextDto`; store format 2).
    ProviderContext = 5,
    /// `FWPM_FILTER0` with FWPM_FILTER_FLAG_BOOTTIME (payload: `FilterDto`; store format 2).
    /// A kind of its own so that no reader mistakes it for a filter to enforce at run time.
    BoottimeFilter = 6,
}

impl Kind {
    /// From the stored byte.
    pub fn from_byte(b: u8) -> Option<Self> {
        match b {
            1 => Some(Self::Provider),
            2 => Some(Self::Sublayer),
            3 => Some(Self::Callout),
            4 => Some(Self::Filter),
            5 => Some(Self::ProviderContext),
            6 => Some(Self::BoottimeFilter),
            _ => None,
        }
    }
}

/// A decoded record.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Record {
    /// The object kind.
    pub kind: Kind,
    /// Commit order (objects are re-added in this order, so filter ids keep their relative
    /// order and equal-weight ties resolve as before the restart).
    pub seq: u64,
    /// The JSON payload.
    pub payload: Vec<u8>,
}

/// The bytes of `r`.
pub fn encode(r: &Record) -> Result<Vec<u8>, StoreError> {
    let len = u32::try_from(r.payload.len()).map_err(|_| StoreError::TooLarge(r.payload.len()))?;
    let mut out = Vec::with_capacity(HEADER_LEN + r.payload.len());
    out.extend_from_slice(&MAGIC);
    out.extend_from_slice(&RECORD_VERSION.to_le_bytes());
    out.push(r.kind as u8);
    out.push(0);
    out.extend_from_slice(&r.seq.to_le_bytes());
    out.extend_from_slice(&len.to_le_bytes());
    out.extend_from_slice(&r.payload);
    Ok(out)
}

fn field<const N: usize>(b: &[u8], at: usize, what: &'static str) -> Result<[u8; N], StoreError> {
    b.get(at..at + N)
        .and_then(|s| <[u8; N]>::try_from(s).ok())
        .ok_or(StoreError::Corrupt {
            offset: at,
            reason: what.to_string(),
        })
}

/// Decodes and checks a record: magic, version, kind, reserved byte, exact length.
pub fn decode(b: &[u8]) -> Result<Record, StoreError> {
    let corrupt = |offset: usize, reason: String| StoreError::Corrupt { offset, reason };
    if field::<4>(b, 0, "record shorter than its header")? != MAGIC {
        return Err(corrupt(0, "bad magic (not a WFPR record)".into()));
    }
    let version = u16::from_le_bytes(field(b, 4, "record shorter than its header")?);
    if version > RECORD_VERSION {
        return Err(StoreError::NewerFormat {
            what: "record",
            found: u32::from(version),
            supported: u32::from(RECORD_VERSION),
        });
    }
    let [kind] = field::<1>(b, 6, "record shorter than its header")?;
    let kind = Kind::from_byte(kind).ok_or_else(|| corrupt(6, format!("unknown kind {kind}")))?;
    if field::<1>(b, 7, "record shorter than its header")? != [0] {
        return Err(corrupt(7, "reserved byte is not zero".into()));
    }
    let seq = u64::from_le_bytes(field(b, 8, "record shorter than its header")?);
    let len = u32::from_le_bytes(field(b, 16, "record shorter than its header")?);
    let payload = b.get(HEADER_LEN..).unwrap_or_default();
    if usize::try_from(len).ok() != Some(payload.len()) {
        return Err(corrupt(
            16,
            format!("payload length {len} but {} bytes follow", payload.len()),
        ));
    }
    Ok(Record {
        kind,
        seq,
        payload: payload.to_vec(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layout_is_pinned() {
        let bytes = encode(&Record {
            kind: Kind::Filter,
            seq: 0x0102,
            payload: b"{}".to_vec(),
        })
        .unwrap();
        assert_eq!(
            bytes,
            [b'W', b'F', b'P', b'R', 1, 0, 4, 0, 2, 1, 0, 0, 0, 0, 0, 0, 2, 0, 0, 0, b'{', b'}']
        );
        assert_eq!(decode(&bytes).unwrap().seq, 0x0102);
    }

    #[test]
    fn every_damaged_header_is_refused() {
        let good = encode(&Record {
            kind: Kind::Sublayer,
            seq: 7,
            payload: b"{\"name\":\"x\"}".to_vec(),
        })
        .unwrap();
        for cut in 0..good.len() {
            assert!(decode(&good[..cut]).is_err(), "cut at {cut}");
        }
        for (at, value) in [(0, b'X'), (4, 9), (6, 0), (6, 77), (7, 1), (16, 99)] {
            let mut bad = good.clone();
            bad[at] = value;
            assert!(decode(&bad).is_err(), "byte {at} = {value}");
        }
        let mut newer = good;
        newer[4] = 2;
        assert!(matches!(
            decode(&newer),
            Err(StoreError::NewerFormat { found: 2, .. })
        ));
    }
}
