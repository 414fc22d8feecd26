//! MSVC source extensions GCC and Clang reject outright, rewritten before compiling
//! (wdk-runtime.md §10: the build accepts what MSVC accepts with at most a warning).
//!
//! * A cast used as an lvalue under unary `&` — `InterlockedIncrement(&(LONG)x->n)` (MSVC's C4213
//!   "cast on l-value", accepted with a warning) — becomes `((LONG*)&x->n)`, which is what MSVC
//!   compiles it to. The pattern `& ( IDENT ) IDENT` cannot be anything else: an identifier right
//!   after a parenthesised name only parses if that name is a type.
//! * MSVC's sized integer-literal suffixes (`-10000i64`, `0xFFui64`, `1i32`, …; [`rewrite_literal_suffixes`]).
//! * A member of a nested anonymous struct/union that repeats a name its enclosing scope already
//!   has ([`super::anon`]).
//!
//! [`rewrite`] applies all of them; sources and the local headers they include are rewritten alike.

/// `text` with every rewrite of this module and [`super::anon`] applied, or `None` when none applies.
pub(crate) fn rewrite(text: &str) -> Option<String> {
    let a = rewrite_lvalue_casts(text);
    let b = rewrite_literal_suffixes(a.as_deref().unwrap_or(text));
    let c = super::anon::rewrite_member_clashes(b.as_deref().or(a.as_deref()).unwrap_or(text));
    c.or(b).or(a)
}

/// MSVC's integer-literal suffixes `i64` / `ui64` (documented) and `i32` / `i16` / `i8` and their
/// `ui` forms (accepted by MSVC; any letter case), which GCC and Clang reject ("unable to find
/// numeric literal operator"), as standard suffixes outside strings, character literals and
/// comments: `i64` → `LL`, `ui64` → `ULL`; `ui32` / `ui16` / `ui8` → `U`; `i32` / `i16` / `i8` →
/// none (an `int` literal: a 16- or 8-bit literal is promoted to `int` in every arithmetic use
/// anyway; only `sizeof` of the bare literal differs). `None` when the text has none.
pub(crate) fn rewrite_literal_suffixes(text: &str) -> Option<String> {
    const SUFFIXES: &[(&str, &str)] = &[
        ("ui64", "ULL"),
        ("i64", "LL"),
        ("ui32", "U"),
        ("i32", ""),
        ("ui16", "U"),
        ("i16", ""),
        ("ui8", "U"),
        ("i8", ""),
    ];
    let b = text.as_bytes();
    let mut out = String::with_capacity(text.len());
    let (mut i, mut copied, mut changed) = (0, 0, false);
    while i < b.len() {
        match b[i] {
            b'"' | b'\'' => i = skip_quoted(b, i),
            b'/' if b.get(i + 1) == Some(&b'/') => i = skip_until(b, i, b"\n"),
            b'/' if b.get(i + 1) == Some(&b'*') => i = skip_until(b, i + 2, b"*/"),
            c if c.is_ascii_digit() && (i == 0 || !(is_ident(b[i - 1]) || b[i - 1] == b'.')) => {
                let mut end = i;
                while end < b.len() && (is_ident(b[end]) || b[end] == b'.') {
                    end += 1;
                }
                let token = text[i..end].to_ascii_lowercase();
                let hit = SUFFIXES.iter().find_map(|(suffix, standard)| {
                    let body = token.strip_suffix(suffix)?;
                    is_integer_literal(body).then_some((body.len(), *standard))
                });
                if let Some((body_len, standard)) = hit {
                    out.push_str(&text[copied..i + body_len]);
                    out.push_str(standard);
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

/// A decimal, octal or hexadecimal integer literal without suffix (`10000`, `0`, `0x7F`).
fn is_integer_literal(body: &str) -> bool {
    match body.strip_prefix("0x") {
        Some(hex) => !hex.is_empty() && hex.bytes().all(|c| c.is_ascii_hexdigit()),
        None => !body.is_empty() && body.bytes().all(|c| c.is_ascii_digit()),
    }
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
    use super::{rewrite_literal_suffixes, rewrite_lvalue_casts};

    #[test]
    fn msvc_literal_suffixes_become_standard_ones() {
        let src = "t.QuadPart = numMS * -10000i64; m = 0xFFFFFFFFui64 | 1UI64; a = 5i32 + 3i16 + 1i8 + 2ui8;";
        assert_eq!(
            rewrite_literal_suffixes(src).unwrap(),
            "t.QuadPart = numMS * -10000LL; m = 0xFFFFFFFFULL | 1ULL; a = 5 + 3 + 1 + 2U;"
        );
        assert_eq!(
            rewrite_literal_suffixes("#if X > 0i64\n").unwrap(),
            "#if X > 0LL\n"
        );
    }

    #[test]
    fn suffix_lookalikes_strings_and_comments_are_left_alone() {
        for src in [
            "s = \"10i64\"; // 5i64\n/* 7ui64 */",
            "x = var1i64 + a.b2i64;",
            "c = '1'; d = 1.5; e = 1e10; f = 0x10; g = 10ULL;",
            "h = 1i65 + 0xi64;",
        ] {
            assert_eq!(rewrite_literal_suffixes(src), None, "{src}");
        }
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
