//! ip2string.h (wdk-runtime.md §5): RtlIpv4/Ipv6StringToAddress(Ex)A/W and
//! RtlIpv4/Ipv6AddressToString(Ex)A/W. Addresses and ports are in network byte order.
//!
//! Parsing follows the documented rules: IPv4 strict = exactly four decimal parts; non-strict =
//! one to four parts in decimal, octal (`0` prefix) or hex (`0x`), the last part filling the
//! remaining bits. Parsing stops at the first character that cannot continue the address;
//! `*Terminator` points at it. The Ex forms need the whole string (with an optional `:port`,
//! `%scope` and `[...]`). Formatting: IPv6 in lowercase hex with the longest run (two or more) of
//! zero groups compressed to `::`, and IPv4-mapped, IPv4-compatible and ISATAP addresses with a
//! dotted tail, as Windows prints them.

use std::ffi::c_void;

use super::{boundary, NtStatus, STATUS_INVALID_PARAMETER, STATUS_SUCCESS};

// ---- pure parsing and formatting -----------------------------------------------------------

fn digit(c: u16, radix: u32) -> Option<u32> {
    char::from_u32(u32::from(c)).and_then(|c| c.to_digit(radix))
}

/// One IPv4 part at `s[i..]`: (value, next index). Strict = decimal only.
fn v4_part(s: &[u16], mut i: usize, strict: bool) -> Option<(u64, usize)> {
    let at = |k: usize| s.get(k).copied().unwrap_or(0);
    let mut radix = 10;
    if !strict && at(i) == u16::from(b'0') {
        if matches!(at(i + 1), 0x78 | 0x58) && digit(at(i + 2), 16).is_some() {
            radix = 16;
            i += 2;
        } else if digit(at(i + 1), 10).is_some() {
            radix = 8;
            i += 1;
        }
    }
    let start = i;
    let mut v: u64 = 0;
    while let Some(d) = digit(at(i), radix) {
        v = v
            .saturating_mul(u64::from(radix))
            .saturating_add(u64::from(d));
        i += 1;
    }
    (i > start).then_some((v, i))
}

/// Parses an IPv4 address at the start of `s`: (address bytes, index of the terminator).
pub(crate) fn parse_v4(s: &[u16], strict: bool) -> Option<([u8; 4], usize)> {
    let mut parts = Vec::with_capacity(4);
    let mut i = 0;
    loop {
        let (v, next) = v4_part(s, i, strict)?;
        parts.push(v);
        i = next;
        if parts.len() < 4
            && s.get(i) == Some(&u16::from(b'.'))
            && v4_part(s, i + 1, strict).is_some()
        {
            i += 1;
            continue;
        }
        break;
    }
    if strict && parts.len() != 4 {
        return None;
    }
    let n = parts.len();
    let last_bits = 8 * (5 - n as u32);
    let mut addr: u64 = 0;
    for (k, p) in parts.iter().enumerate() {
        if k + 1 < n {
            if *p > 255 {
                return None;
            }
            addr = (addr << 8) | p;
        } else {
            if last_bits < 64 && *p >= 1u64 << last_bits {
                return None;
            }
            addr = (addr << last_bits) | p;
        }
    }
    let a = u32::try_from(addr).ok()?;
    Some((a.to_be_bytes(), i))
}

/// Parses an IPv6 address at the start of `s`: (bytes, index of the terminator).
pub(crate) fn parse_v6(s: &[u16]) -> Option<([u8; 16], usize)> {
    let at = |k: usize| s.get(k).copied().unwrap_or(0);
    let colon = u16::from(b':');
    let mut groups: Vec<u16> = Vec::with_capacity(8);
    let mut gap: Option<usize> = None;
    let mut i = 0;
    if at(0) == colon && at(1) == colon {
        gap = Some(0);
        i = 2;
    }
    loop {
        // An embedded IPv4 tail.
        if groups.len() <= 6 {
            if let Some((v4, end)) = parse_v4(&s[i.min(s.len())..], true) {
                let dot = (i..i + end).any(|k| at(k) == u16::from(b'.'));
                if dot {
                    groups.push(u16::from_be_bytes([v4[0], v4[1]]));
                    groups.push(u16::from_be_bytes([v4[2], v4[3]]));
                    i += end;
                    break;
                }
            }
        }
        let start = i;
        let mut v: u32 = 0;
        while i - start < 4 {
            let Some(d) = digit(at(i), 16) else { break };
            v = v * 16 + d;
            i += 1;
        }
        if i == start {
            // "::" may end the address; anything else after a colon is an error.
            if gap == Some(groups.len()) && (i == 2 || at(i - 1) == colon) {
                break;
            }
            return None;
        }
        if digit(at(i), 16).is_some() {
            return None;
        }
        groups.push(u16::try_from(v).ok()?);
        if groups.len() == 8 || at(i) != colon {
            break;
        }
        if at(i + 1) == colon {
            if gap.is_some() {
                return None;
            }
            gap = Some(groups.len());
            i += 2;
            if digit(at(i), 16).is_none() {
                break;
            }
        } else {
            i += 1;
        }
    }
    let mut words = [0u16; 8];
    match gap {
        None if groups.len() != 8 => return None,
        None => words.copy_from_slice(&groups),
        Some(g) => {
            if groups.len() > 7 {
                return None;
            }
            let tail = groups.len() - g;
            words[..g].copy_from_slice(&groups[..g]);
            words[8 - tail..].copy_from_slice(&groups[g..]);
        }
    }
    let mut out = [0u8; 16];
    for (k, w) in words.iter().enumerate() {
        out[2 * k..2 * k + 2].copy_from_slice(&w.to_be_bytes());
    }
    Some((out, i))
}

pub(crate) fn format_v4(a: [u8; 4]) -> String {
    format!("{}.{}.{}.{}", a[0], a[1], a[2], a[3])
}

pub(crate) fn format_v6(a: [u8; 16]) -> String {
    let w: Vec<u16> = a
        .chunks(2)
        .map(|c| u16::from_be_bytes([c[0], c[1]]))
        .collect();
    let v4 = [a[12], a[13], a[14], a[15]];
    let zeros6 = w[..6].iter().all(|x| *x == 0);
    if w[..5].iter().all(|x| *x == 0) && w[5] == 0xFFFF {
        return format!("::ffff:{}", format_v4(v4));
    }
    if zeros6 && w[6] != 0 {
        return format!("::{}", format_v4(v4));
    }
    let isatap = (w[4] == 0 || w[4] == 0x0200) && w[5] == 0x5EFE;
    let n = if isatap { 6 } else { 8 };
    // The longest run of two or more zero groups (the first on a tie).
    let (mut best, mut best_len, mut k) = (0, 0, 0);
    while k < n {
        if w[k] == 0 {
            let start = k;
            while k < n && w[k] == 0 {
                k += 1;
            }
            if k - start > best_len {
                best = start;
                best_len = k - start;
            }
        } else {
            k += 1;
        }
    }
    let hex = |r: &[u16]| {
        r.iter()
            .map(|x| format!("{x:x}"))
            .collect::<Vec<_>>()
            .join(":")
    };
    let mut s = if best_len >= 2 {
        format!("{}::{}", hex(&w[..best]), hex(&w[best + best_len..n]))
    } else {
        hex(&w[..n])
    };
    if isatap {
        if !s.ends_with(':') {
            s.push(':');
        }
        s.push_str(&format_v4(v4));
    }
    s
}

/// `a.b.c.d:port` / `[v6%scope]:port` parsing for the Ex forms; the whole text must match.
fn parse_port(s: &[u16]) -> Option<u16> {
    if s.is_empty() || s.len() > 5 {
        return None;
    }
    let mut v: u32 = 0;
    for c in s {
        v = v * 10 + digit(*c, 10)?;
    }
    u16::try_from(v).ok()
}

pub(crate) fn parse_v4_ex(s: &[u16], strict: bool) -> Option<([u8; 4], u16)> {
    let (a, end) = parse_v4(s, strict)?;
    match s.get(end) {
        None => Some((a, 0)),
        Some(&c) if c == u16::from(b':') => Some((a, parse_port(&s[end + 1..])?)),
        Some(_) => None,
    }
}

pub(crate) fn parse_v6_ex(s: &[u16]) -> Option<([u8; 16], u32, u16)> {
    let bracket = s.first() == Some(&u16::from(b'['));
    let body = if bracket { &s[1..] } else { s };
    let (a, mut i) = parse_v6(body)?;
    let mut scope = 0u32;
    if body.get(i) == Some(&u16::from(b'%')) {
        i += 1;
        let start = i;
        while let Some(d) = body.get(i).and_then(|c| digit(*c, 10)) {
            scope = scope.checked_mul(10)?.checked_add(d)?;
            i += 1;
        }
        if i == start {
            return None;
        }
    }
    let rest = &body[i..];
    if !bracket {
        return rest.is_empty().then_some((a, scope, 0));
    }
    match rest {
        [c] if *c == u16::from(b']') => Some((a, scope, 0)),
        [c, d, port @ ..] if *c == u16::from(b']') && *d == u16::from(b':') => {
            Some((a, scope, parse_port(port)?))
        }
        _ => None,
    }
}

// ---- C side --------------------------------------------------------------------------------

/// Reads a NUL-terminated narrow (`wide` false) or UTF-16 string as code units.
fn read_units(p: *const c_void, wide: bool) -> Vec<u16> {
    let mut v = Vec::new();
    if p.is_null() {
        return v;
    }
    let mut k = 0usize;
    loop {
        // SAFETY: the caller's NUL-terminated string; reading stops at the terminator.
        let c = unsafe {
            if wide {
                *p.cast::<u16>().add(k)
            } else {
                u16::from(*p.cast::<u8>().add(k))
            }
        };
        if c == 0 {
            return v;
        }
        v.push(c);
        k += 1;
    }
}

/// Writes `text` and a NUL; returns the address of the NUL.
fn write_units(out: *mut c_void, text: &str, wide: bool) -> *mut c_void {
    // SAFETY: the caller's buffer, which the API requires to hold the longest address form
    // (16 / 46 chars, checked against *Length by the Ex forms before calling this).
    unsafe {
        if wide {
            let o = out.cast::<u16>();
            let units: Vec<u16> = text.encode_utf16().collect();
            std::ptr::copy_nonoverlapping(units.as_ptr(), o, units.len());
            *o.add(units.len()) = 0;
            o.add(units.len()).cast()
        } else {
            let o = out.cast::<u8>();
            std::ptr::copy_nonoverlapping(text.as_ptr(), o, text.len());
            *o.add(text.len()) = 0;
            o.add(text.len()).cast()
        }
    }
}

fn string_to_v4(
    s: *const c_void,
    strict: u8,
    term: *mut *const c_void,
    out: *mut [u8; 4],
    wide: bool,
) -> NtStatus {
    if s.is_null() || out.is_null() {
        return STATUS_INVALID_PARAMETER;
    }
    let units = read_units(s, wide);
    let parsed = parse_v4(&units, strict != 0);
    let end = parsed.map_or(0, |(_, e)| e);
    // SAFETY: caller's out-pointers (out checked, term optional); the terminator points into `s`.
    unsafe {
        if let Some(t) = term.as_mut() {
            *t = s.cast::<u8>().add(end * if wide { 2 } else { 1 }).cast();
        }
        match parsed {
            Some((a, _)) => {
                *out = a;
                STATUS_SUCCESS
            }
            None => STATUS_INVALID_PARAMETER,
        }
    }
}

fn string_to_v6(
    s: *const c_void,
    term: *mut *const c_void,
    out: *mut [u8; 16],
    wide: bool,
) -> NtStatus {
    if s.is_null() || out.is_null() {
        return STATUS_INVALID_PARAMETER;
    }
    let units = read_units(s, wide);
    let parsed = parse_v6(&units);
    let end = parsed.map_or(0, |(_, e)| e);
    // SAFETY: as in string_to_v4.
    unsafe {
        if let Some(t) = term.as_mut() {
            *t = s.cast::<u8>().add(end * if wide { 2 } else { 1 }).cast();
        }
        match parsed {
            Some((a, _)) => {
                *out = a;
                STATUS_SUCCESS
            }
            None => STATUS_INVALID_PARAMETER,
        }
    }
}

macro_rules! string_to_address {
    ($v4:ident, $v6:ident, $wide:expr) => {
        #[no_mangle]
        pub(crate) unsafe extern "C" fn $v4(
            s: *const c_void,
            strict: u8,
            term: *mut *const c_void,
            out: *mut [u8; 4],
        ) -> NtStatus {
            boundary(stringify!($v4), STATUS_INVALID_PARAMETER, || {
                string_to_v4(s, strict, term, out, $wide)
            })
        }

        #[no_mangle]
        pub(crate) unsafe extern "C" fn $v6(
            s: *const c_void,
            term: *mut *const c_void,
            out: *mut [u8; 16],
        ) -> NtStatus {
            boundary(stringify!($v6), STATUS_INVALID_PARAMETER, || {
                string_to_v6(s, term, out, $wide)
            })
        }
    };
}
string_to_address!(RtlIpv4StringToAddressA, RtlIpv6StringToAddressA, false);
string_to_address!(RtlIpv4StringToAddressW, RtlIpv6StringToAddressW, true);

macro_rules! address_to_string {
    ($v4:ident, $v6:ident, $wide:expr) => {
        #[no_mangle]
        pub(crate) unsafe extern "C" fn $v4(a: *const [u8; 4], out: *mut c_void) -> *mut c_void {
            boundary(stringify!($v4), std::ptr::null_mut(), || {
                // SAFETY: the caller's in_addr (checked non-null).
                match unsafe { a.as_ref() } {
                    Some(a) if !out.is_null() => write_units(out, &format_v4(*a), $wide),
                    _ => std::ptr::null_mut(),
                }
            })
        }

        #[no_mangle]
        pub(crate) unsafe extern "C" fn $v6(a: *const [u8; 16], out: *mut c_void) -> *mut c_void {
            boundary(stringify!($v6), std::ptr::null_mut(), || {
                // SAFETY: the caller's in6_addr (checked non-null).
                match unsafe { a.as_ref() } {
                    Some(a) if !out.is_null() => write_units(out, &format_v6(*a), $wide),
                    _ => std::ptr::null_mut(),
                }
            })
        }
    };
}
address_to_string!(RtlIpv4AddressToStringA, RtlIpv6AddressToStringA, false);
address_to_string!(RtlIpv4AddressToStringW, RtlIpv6AddressToStringW, true);

/// The Ex formatters: STATUS_INVALID_PARAMETER and the needed length (chars incl. NUL) when the
/// buffer is short.
fn to_string_ex(text: &str, out: *mut c_void, len: *mut u32, wide: bool) -> NtStatus {
    // SAFETY: the caller's in/out length (checked non-null).
    let Some(len) = (unsafe { len.as_mut() }) else {
        return STATUS_INVALID_PARAMETER;
    };
    let need = u32::try_from(text.len() + 1).unwrap_or(u32::MAX);
    if out.is_null() || *len < need {
        *len = need;
        return STATUS_INVALID_PARAMETER;
    }
    write_units(out, text, wide);
    *len = need;
    STATUS_SUCCESS
}

fn v4_ex_text(a: [u8; 4], port_be: u16) -> String {
    let port = u16::from_be(port_be);
    if port == 0 {
        format_v4(a)
    } else {
        format!("{}:{port}", format_v4(a))
    }
}

fn v6_ex_text(a: [u8; 16], scope: u32, port_be: u16) -> String {
    let port = u16::from_be(port_be);
    let mut s = format_v6(a);
    if scope != 0 {
        s = format!("{s}%{scope}");
    }
    if port != 0 {
        s = format!("[{s}]:{port}");
    }
    s
}

macro_rules! ex_forms {
    ($v4s:ident, $v6s:ident, $v4p:ident, $v6p:ident, $wide:expr) => {
        #[no_mangle]
        pub(crate) unsafe extern "C" fn $v4s(
            a: *const [u8; 4],
            port: u16,
            out: *mut c_void,
            len: *mut u32,
        ) -> NtStatus {
            boundary(stringify!($v4s), STATUS_INVALID_PARAMETER, || {
                // SAFETY: the caller's in_addr (checked non-null).
                match unsafe { a.as_ref() } {
                    Some(a) => to_string_ex(&v4_ex_text(*a, port), out, len, $wide),
                    None => STATUS_INVALID_PARAMETER,
                }
            })
        }

        #[no_mangle]
        pub(crate) unsafe extern "C" fn $v6s(
            a: *const [u8; 16],
            scope: u32,
            port: u16,
            out: *mut c_void,
            len: *mut u32,
        ) -> NtStatus {
            boundary(stringify!($v6s), STATUS_INVALID_PARAMETER, || {
                // SAFETY: the caller's in6_addr (checked non-null).
                match unsafe { a.as_ref() } {
                    Some(a) => to_string_ex(&v6_ex_text(*a, scope, port), out, len, $wide),
                    None => STATUS_INVALID_PARAMETER,
                }
            })
        }

        #[no_mangle]
        pub(crate) unsafe extern "C" fn $v4p(
            s: *const c_void,
            strict: u8,
            out: *mut [u8; 4],
            port: *mut u16,
        ) -> NtStatus {
            boundary(stringify!($v4p), STATUS_INVALID_PARAMETER, || {
                if s.is_null() || out.is_null() || port.is_null() {
                    return STATUS_INVALID_PARAMETER;
                }
                match parse_v4_ex(&read_units(s, $wide), strict != 0) {
                    Some((a, p)) => {
                        // SAFETY: the caller's out-pointers (checked non-null).
                        unsafe {
                            *out = a;
                            *port = p.to_be();
                        }
                        STATUS_SUCCESS
                    }
                    None => STATUS_INVALID_PARAMETER,
                }
            })
        }

        #[no_mangle]
        pub(crate) unsafe extern "C" fn $v6p(
            s: *const c_void,
            out: *mut [u8; 16],
            scope: *mut u32,
            port: *mut u16,
        ) -> NtStatus {
            boundary(stringify!($v6p), STATUS_INVALID_PARAMETER, || {
                if s.is_null() || out.is_null() || scope.is_null() || port.is_null() {
                    return STATUS_INVALID_PARAMETER;
                }
                match parse_v6_ex(&read_units(s, $wide)) {
                    Some((a, sc, p)) => {
                        // SAFETY: the caller's out-pointers (checked non-null).
                        unsafe {
                            *out = a;
                            *scope = sc;
                            *port = p.to_be();
                        }
                        STATUS_SUCCESS
                    }
                    None => STATUS_INVALID_PARAMETER,
                }
            })
        }
    };
}
ex_forms!(
    RtlIpv4AddressToStringExA,
    RtlIpv6AddressToStringExA,
    RtlIpv4StringToAddressExA,
    RtlIpv6StringToAddressExA,
    false
);
ex_forms!(
    RtlIpv4AddressToStringExW,
    RtlIpv6AddressToStringExW,
    RtlIpv4StringToAddressExW,
    RtlIpv6StringToAddressExW,
    true
);

#[cfg(test)]
mod tests {
    use super::*;

    fn u(s: &str) -> Vec<u16> {
        s.encode_utf16().collect()
    }

    #[test]
    fn ipv4_strict_and_loose_forms() {
        assert_eq!(
            parse_v4(&u("192.168.1.2"), true),
            Some(([192, 168, 1, 2], 11))
        );
        assert_eq!(parse_v4(&u("1.2.3.4:80"), true), Some(([1, 2, 3, 4], 7)));
        assert_eq!(parse_v4(&u("1.2.3"), true), None);
        assert_eq!(parse_v4(&u("1.2.3"), false), Some(([1, 2, 0, 3], 5)));
        assert_eq!(parse_v4(&u("0x7f.1"), false), Some(([127, 0, 0, 1], 6)));
        assert_eq!(parse_v4(&u("010.0.0.1"), false), Some(([8, 0, 0, 1], 9)));
        assert_eq!(
            parse_v4(&u("3232235777"), false),
            Some(([192, 168, 1, 1], 10))
        );
        assert_eq!(parse_v4(&u("256.1.1.1"), true), None);
        assert_eq!(parse_v4(&u("x"), false), None);
    }

    #[test]
    fn ipv6_forms() {
        let p = |s: &str| parse_v6(&u(s)).map(|(a, e)| (format_v6(a), e));
        assert_eq!(p("::1"), Some(("::1".into(), 3)));
        assert_eq!(p("::"), Some(("::".into(), 2)));
        assert_eq!(p("fe80::1:2%5"), Some(("fe80::1:2".into(), 9)));
        assert_eq!(
            p("2001:db8:0:0:1:0:0:1"),
            Some(("2001:db8::1:0:0:1".into(), 20))
        );
        assert_eq!(p("::ffff:10.0.0.1"), Some(("::ffff:10.0.0.1".into(), 15)));
        assert_eq!(p("1:2:3:4:5:6:7:8"), Some(("1:2:3:4:5:6:7:8".into(), 15)));
        assert_eq!(p("1:2:3:4:5:6:7"), None);
        assert_eq!(p("1::2::3"), None);
        assert_eq!(p("12345::"), None);
        assert_eq!(
            p("fe80::0:5efe:10.1.2.3"),
            Some(("fe80::5efe:10.1.2.3".into(), 21))
        );
    }

    #[test]
    fn ex_forms_take_ports_and_scopes() {
        assert_eq!(
            parse_v4_ex(&u("1.2.3.4:8080"), true),
            Some(([1, 2, 3, 4], 8080))
        );
        assert_eq!(parse_v4_ex(&u("1.2.3.4:"), true), None);
        assert_eq!(parse_v4_ex(&u("1.2.3.4x"), true), None);
        let (a, s, p) = parse_v6_ex(&u("[fe80::1%7]:443")).unwrap();
        assert_eq!((format_v6(a).as_str(), s, p), ("fe80::1", 7, 443));
        assert_eq!(
            parse_v6_ex(&u("fe80::1%7")).map(|x| (x.1, x.2)),
            Some((7, 0))
        );
        assert_eq!(v6_ex_text(a, 7, 443u16.to_be()), "[fe80::1%7]:443");
        assert_eq!(v4_ex_text([1, 2, 3, 4], 80u16.to_be()), "1.2.3.4:80");
    }
}
