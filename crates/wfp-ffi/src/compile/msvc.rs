//! MSVC source extensions GCC and Clang reject outright, rewritten before compiling
//! (wdk-runtime.md §10: the build accepts what MSVC accepts with at most a warning).
//!
//! * A cast used as an lvalue under unary `&` — `InterlockedIncrement(&(LONG)x->n)` (MSVC's C4213
//!   "cast on l-value", accepted with a warning) — becomes `((LONG*)&x->n)`, which is what MSVC
//!   compiles it to. The pattern `& ( IDENT ) IDENT` cannot be anything else: an identifier right
//!   after a parenthesised name only parses if that name is a type.
//! * A member of a nested anonymous struct/union that repeats a name its enclosing scope already
//!   has ([`super::anon`]).
//!
//! [`rewrite`] applies all of them; sources and the local headers they include are rewritten alike.

/// `text` with every rewrite of this module and [`super::anon`] applied, or `None` when none applies.
pub(crate) fn rewrite(text: &str) -> Option<String> {
    let a = rewrite_lvalue_casts(text);
    let c = super::anon::rewrite_member_clashes(a.as_deref().unwrap_or(text));
    c.or(a)
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
    use super::rewrite_lvalue_casts;

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
