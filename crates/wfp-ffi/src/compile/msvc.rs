//! MSVC source extensions GCC and Clang reject outright, rewritten before compiling
//! (wdk-runtime.md §10: the build accepts what MSVC accepts with at most a warning).
//!
//! * A cast used as an lvalue under unary `&` — `InterlockedIncrement(&(LONG)x->n)` (MSVC's
//!   C4213 "cast on l-value", accepted with a warning) — becomes `((LONG*)&x->n)`, which is what
//!   MSVC compiles it to. The pattern `& ( IDENT ) IDENT` cannot be anything else: an identifier
//!   right after a parenthesised name only parses if that name is a type.
//! * MSVC's sized integer-literal suffixes (`-10000i64`, `0xFFui64`, `1i32`; WFPSampler's
//!   KrnlHlprWorkItemSleep): `i64` → `LL`, `ui64` → `ULL`, `ui8/16/32` → `U`, `i8/16/32` → none
//!   (an int literal), in number tokens only — wdk-runtime.md §10 lists these suffixes as MSVC-only.
//! * A member of a nested anonymous struct/union that repeats a name its enclosing scope already
//!   has ([`super::anon`]).
//!
//! Sources and the local headers they include are rewritten alike (`super::localcopy`).

/// `text` with every MSVC-only construct above rewritten, or `None` when it has none.
pub(crate) fn rewrite(text: &str) -> Option<String> {
    let casts = rewrite_lvalue_casts(text);
    let base = casts.as_deref().unwrap_or(text);
    let suffixes = rewrite_literal_suffixes(base).or(casts);
    let base = suffixes.as_deref().unwrap_or(text);
    super::anon::rewrite_member_clashes(base).or(suffixes)
}

/// `text` with MSVC's sized integer-literal suffixes replaced, or `None` when it has none.
pub(crate) fn rewrite_literal_suffixes(text: &str) -> Option<String> {
    let b = text.as_bytes();
    let mut out = String::with_capacity(text.len());
    let (mut i, mut copied, mut changed) = (0, 0, false);
    while i < b.len() {
        match b[i] {
            b'"' | b'\'' => i = skip_quoted(b, i),
            b'/' if b.get(i + 1) == Some(&b'/') => i = skip_until(b, i, b"\n"),
            b'/' if b.get(i + 1) == Some(&b'*') => i = skip_until(b, i + 2, b"*/"),
            c if c.is_ascii_digit() && (i == 0 || !is_ident(b[i - 1])) => {
                let end = ident_end(b, i);
                if let Some((digits, suffix)) = sized_suffix(&text[i..end]) {
                    out.push_str(&text[copied..i + digits]);
                    out.push_str(suffix);
                    copied = end;
                    changed = true;
                }
                i = end;
            }
            _ => i += 1,
        }
    }
    changed.then(|| {
        out.push_str(&text[copied..]);
        out
    })
}

/// A number token ending in an MSVC sized suffix: (length before the suffix, C replacement).
fn sized_suffix(token: &str) -> Option<(usize, &'static str)> {
    let lower = token.to_ascii_lowercase();
    for (msvc, c) in [
        ("ui64", "ULL"),
        ("i64", "LL"),
        ("ui32", "U"),
        ("ui16", "U"),
        ("ui8", "U"),
        ("i32", ""),
        ("i16", ""),
        ("i8", ""),
    ] {
        if let Some(digits) = lower.strip_suffix(msvc) {
            let hex = digits.starts_with("0x");
            let body = if hex { &digits[2..] } else { digits };
            let ok = !body.is_empty()
                && body.bytes().all(|d| {
                    if hex {
                        d.is_ascii_hexdigit()
                    } else {
                        d.is_ascii_digit()
                    }
                });
            return ok.then_some((digits.len(), c));
        }
    }
    None
}

/// `text` with every cast-as-lvalue under unary `&` rewritten, or `None` when it has none.
pub(crate) fn rewrite_lvalue_casts(text: &str) -> Option<String> {
    let b = text.as_bytes();
    let mut out = String::with_capacity(text.len());
    let (mut i, mut copied, mut changed) = (0, 0, false);
    while i < b.len() {
        match b[i] {
            b'"' | b'\'' => i = skip_quoted(b, i),
            b'/' if b.get(i + 1) == Some(&b'/') => i = skip_until(b, i, b"\n"),
            b'/' if b.get(i + 1) == Some(&b'*') => i = skip_until(b, i + 2, b"*/"),
            b'&' if is_unary_amp(b, i) => {
                if let Some((ty, expr, end)) = lvalue_cast_at(text, i + 1) {
                    out.push_str(&text[copied..i]);
                    out.push_str(&format!("(({ty}*)&{expr})"));
                    copied = end;
                    changed = true;
                    i = end;
                } else {
                    i += 1;
                }
            }
            _ => i += 1,
        }
    }
    changed.then(|| {
        out.push_str(&text[copied..]);
        out
    })
}

/// Index after the closing quote of the literal starting at `i`.
pub(super) fn skip_quoted(b: &[u8], i: usize) -> usize {
    let q = b[i];
    let mut j = i + 1;
    while j < b.len() && b[j] != q && b[j] != b'\n' {
        j += if b[j] == b'\\' { 2 } else { 1 };
    }
    j + 1
}

/// Index after the first `end` at or after `i` (or the end of the text).
pub(super) fn skip_until(b: &[u8], i: usize, end: &[u8]) -> usize {
    b[i..]
        .windows(end.len())
        .position(|w| w == end)
        .map_or(b.len(), |p| i + p + end.len())
}

pub(super) fn is_ident(c: u8) -> bool {
    c.is_ascii_alphanumeric() || c == b'_'
}

/// Whether the `&` at `i` is the unary address-of operator: not `&&`/`&=`, and not preceded by
/// an operand (an identifier, a literal, `)` or `]`).
fn is_unary_amp(b: &[u8], i: usize) -> bool {
    if matches!(b.get(i + 1), Some(b'&' | b'=')) || (i > 0 && b[i - 1] == b'&') {
        return false;
    }
    let prev = b[..i].iter().rev().find(|c| !c.is_ascii_whitespace());
    match prev {
        None => true,
        Some(&c) => !(is_ident(c) || c == b')' || c == b']' || c == b'"' || c == b'\''),
    }
}

fn skip_ws(b: &[u8], mut i: usize) -> usize {
    while i < b.len() && b[i].is_ascii_whitespace() {
        i += 1;
    }
    i
}

fn ident_end(b: &[u8], i: usize) -> usize {
    let mut j = i;
    while j < b.len() && is_ident(b[j]) {
        j += 1;
    }
    j
}

/// After a unary `&` at `i - 1`: `( TYPE ) postfix-expression` → (type, expression, end).
fn lvalue_cast_at(text: &str, i: usize) -> Option<(&str, &str, usize)> {
    let b = text.as_bytes();
    let i = skip_ws(b, i);
    if b.get(i) != Some(&b'(') {
        return None;
    }
    let t0 = skip_ws(b, i + 1);
    let t1 = ident_end(b, t0);
    if t1 == t0 || b[t0].is_ascii_digit() {
        return None;
    }
    let close = skip_ws(b, t1);
    if b.get(close) != Some(&b')') {
        return None;
    }
    let e0 = skip_ws(b, close + 1);
    if !b
        .get(e0)
        .is_some_and(|&c| is_ident(c) && !c.is_ascii_digit())
    {
        return None;
    }
    let end = postfix_end(b, ident_end(b, e0));
    Some((&text[t0..t1], &text[e0..end], end))
}

/// End of a chain of `->name`, `.name` and `[...]` after an identifier ending at `i`.
fn postfix_end(b: &[u8], mut i: usize) -> usize {
    loop {
        let j = skip_ws(b, i);
        let member = if b[j..].starts_with(b"->") {
            Some(j + 2)
        } else if b.get(j) == Some(&b'.') {
            Some(j + 1)
        } else {
            None
        };
        if let Some(m) = member {
            let m = skip_ws(b, m);
            let e = ident_end(b, m);
            if e == m {
                return i;
            }
            i = e;
        } else if b.get(j) == Some(&b'[') {
            let mut depth = 0usize;
            let mut k = j;
            while k < b.len() {
                match b[k] {
                    b'[' => depth += 1,
                    b']' => {
                        depth -= 1;
                        if depth == 0 {
                            break;
                        }
                    }
                    _ => {}
                }
                k += 1;
            }
            if k >= b.len() {
                return i;
            }
            i = k + 1;
        } else {
            return i;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::{rewrite, rewrite_literal_suffixes, rewrite_lvalue_casts};

    #[test]
    fn sized_integer_suffixes_become_c_suffixes() {
        let src = "t.QuadPart = numMS * -10000i64; m = 0xFFFFui64 | 7UI32 | 3i32; f(1.5f, x2i64);";
        assert_eq!(
            rewrite_literal_suffixes(src).unwrap(),
            "t.QuadPart = numMS * -10000LL; m = 0xFFFFULL | 7U | 3; f(1.5f, x2i64);"
        );
        for src in [
            "x = 10LL; y = 0x1F; s = \"5i64\"; // 6i64",
            "a = b2i64;",
            "v = 1e64;",
        ] {
            assert_eq!(rewrite_literal_suffixes(src), None, "{src}");
        }
        assert_eq!(
            rewrite("n = InterlockedAdd(&(LONG)c->n, 2i32);").unwrap(),
            "n = InterlockedAdd(((LONG*)&c->n), 2);"
        );
    }

    #[test]
    fn address_of_a_cast_member_chain_becomes_a_pointer_cast() {
        let src = "n = InterlockedIncrement(& (LONG)ctx->oob.pending);\n";
        assert_eq!(
            rewrite_lvalue_casts(src).unwrap(),
            "n = InterlockedIncrement(((LONG*)&ctx->oob.pending));\n"
        );
        let src = "f(x, &(ULONG)a[i + 1].b, 2)";
        assert_eq!(
            rewrite_lvalue_casts(src).unwrap(),
            "f(x, ((ULONG*)&a[i + 1].b), 2)"
        );
    }

    #[test]
    fn binary_and_casts_strings_and_comments_are_left_alone() {
        for src in [
            "x = flags & (ULONG)y;",
            "x = a && (LONG)b;",
            "x &= (LONG)b;",
            "p = &(x);",
            "p = &(x)->y;",
            "s = \"&(LONG)x\"; // &(LONG)y\n/* &(LONG)z */",
            "x = f() & (LONG)y;",
            "x = a[1] & (LONG)y;",
        ] {
            assert_eq!(rewrite_lvalue_casts(src), None, "{src}");
        }
    }
}
