//! Hand-built capture bytes for unit tests.

use crate::bytes::Endian;

fn put_u16(out: &mut Vec<u8>, e: Endian, v: u16) {
    out.extend_from_slice(&match e {
        Endian::Big => v.to_be_bytes(),
        Endian::Little => v.to_le_bytes(),
    });
}

fn put_u32(out: &mut Vec<u8>, e: Endian, v: u32) {
    out.extend_from_slice(&match e {
        Endian::Big => v.to_be_bytes(),
        Endian::Little => v.to_le_bytes(),
    });
}

fn put_u64(out: &mut Vec<u8>, e: Endian, v: u64) {
    out.extend_from_slice(&match e {
        Endian::Big => v.to_be_bytes(),
        Endian::Little => v.to_le_bytes(),
    });
}

/// Classic pcap file header.
pub(crate) fn pcap_header(e: Endian, nanos: bool, major: u16, minor: u16, link: u32) -> Vec<u8> {
    let mut out = Vec::new();
    put_u32(&mut out, e, if nanos { 0xA1B2_3C4D } else { 0xA1B2_C3D4 });
    put_u16(&mut out, e, major);
    put_u16(&mut out, e, minor);
    put_u32(&mut out, e, 0);
    put_u32(&mut out, e, 0);
    put_u32(&mut out, e, 65535);
    put_u32(&mut out, e, link);
    out
}

/// Classic pcap record with explicit header fields.
pub(crate) fn pcap_record(
    e: Endian,
    sec: u32,
    frac: u32,
    cap: u32,
    orig: u32,
    data: &[u8],
) -> Vec<u8> {
    let mut out = Vec::new();
    put_u32(&mut out, e, sec);
    put_u32(&mut out, e, frac);
    put_u32(&mut out, e, cap);
    put_u32(&mut out, e, orig);
    out.extend_from_slice(data);
    out
}

/// A pcapng block with a correct length (body padded to 4 bytes).
pub(crate) fn ng_block(e: Endian, block_type: u32, body: &[u8]) -> Vec<u8> {
    let mut padded = body.to_vec();
    while padded.len() % 4 != 0 {
        padded.push(0);
    }
    let len = u32::try_from(padded.len() + 12).unwrap_or(u32::MAX);
    ng_block_raw(e, block_type, len, &padded, len)
}

/// A pcapng block with explicit header and trailer lengths.
pub(crate) fn ng_block_raw(
    e: Endian,
    block_type: u32,
    len: u32,
    body: &[u8],
    trailer: u32,
) -> Vec<u8> {
    let mut out = Vec::new();
    put_u32(&mut out, e, block_type);
    put_u32(&mut out, e, len);
    out.extend_from_slice(body);
    put_u32(&mut out, e, trailer);
    out
}

/// Section Header Block, version 1.0.
pub(crate) fn shb(e: Endian) -> Vec<u8> {
    shb_version(e, 1, 0)
}

/// Section Header Block with a given version.
pub(crate) fn shb_version(e: Endian, major: u16, minor: u16) -> Vec<u8> {
    let mut body = Vec::new();
    put_u32(&mut body, e, 0x1A2B_3C4D);
    put_u16(&mut body, e, major);
    put_u16(&mut body, e, minor);
    put_u64(&mut body, e, u64::MAX);
    ng_block(e, 0x0A0D_0D0A, &body)
}

/// pcapng option bytes (code, value), padded, without the end-of-options marker.
pub(crate) fn ng_option(e: Endian, code: u16, value: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    put_u16(&mut out, e, code);
    put_u16(&mut out, e, u16::try_from(value.len()).unwrap_or(u16::MAX));
    out.extend_from_slice(value);
    while out.len() % 4 != 0 {
        out.push(0);
    }
    out
}

/// Interface Description Block with raw option bytes.
pub(crate) fn idb(e: Endian, link: u16, snaplen: u32, options: &[u8]) -> Vec<u8> {
    let mut body = Vec::new();
    put_u16(&mut body, e, link);
    put_u16(&mut body, e, 0);
    put_u32(&mut body, e, snaplen);
    body.extend_from_slice(options);
    ng_block(e, 1, &body)
}

/// Enhanced Packet Block.
pub(crate) fn epb(e: Endian, iface: u32, ts: u64, orig: u32, data: &[u8]) -> Vec<u8> {
    let mut body = Vec::new();
    put_u32(&mut body, e, iface);
    put_u32(&mut body, e, u32::try_from(ts >> 32).unwrap_or(u32::MAX));
    put_u32(
        &mut body,
        e,
        u32::try_from(ts & 0xFFFF_FFFF).unwrap_or(u32::MAX),
    );
    put_u32(&mut body, e, u32::try_from(data.len()).unwrap_or(u32::MAX));
    put_u32(&mut body, e, orig);
    body.extend_from_slice(data);
    ng_block(e, 6, &body)
}

/// Obsolete Packet Block.
pub(crate) fn opb(e: Endian, iface: u16, ts: u64, orig: u32, data: &[u8]) -> Vec<u8> {
    let mut body = Vec::new();
    put_u16(&mut body, e, iface);
    put_u16(&mut body, e, 0);
    put_u32(&mut body, e, u32::try_from(ts >> 32).unwrap_or(u32::MAX));
    put_u32(
        &mut body,
        e,
        u32::try_from(ts & 0xFFFF_FFFF).unwrap_or(u32::MAX),
    );
    put_u32(&mut body, e, u32::try_from(data.len()).unwrap_or(u32::MAX));
    put_u32(&mut body, e, orig);
    body.extend_from_slice(data);
    ng_block(e, 2, &body)
}

/// Simple Packet Block.
pub(crate) fn spb(e: Endian, orig: u32, data: &[u8]) -> Vec<u8> {
    let mut body = Vec::new();
    put_u32(&mut body, e, orig);
    body.extend_from_slice(data);
    ng_block(e, 3, &body)
}

/// Concatenates byte vectors.
pub(crate) fn cat(parts: &[Vec<u8>]) -> Vec<u8> {
    parts.concat()
}
