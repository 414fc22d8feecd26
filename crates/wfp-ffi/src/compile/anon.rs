//! Duplicate member names through nested anonymous structs and unions, which MSVC accepts and
//! GCC / Clang reject ("conflicts with a previous declaration"), with or without
//! `-fms-extensions`. WFPSampler's IP header type has one (HelperFunctions_Headers.h):
//!
//! ```c
//! union { UINT8 typeOfService; UINT8 differentiatedServicesCodePoint;
//!         struct { UINT8 explicitCongestionNotification : 2; UINT8 typeOfService : 6; }; };
//! ```
//!
//! The members of an anonymous aggregate belong to the enclosing scope, so the bit-field repeats
//! the union's byte-wide `typeOfService`. The rewrite keeps the first declaration of a name in a
//! scope and takes the name off the later ones: a repeated bit-field becomes an unnamed bit-field
//! of the same type and width (`UINT8 : 6;` — the layout is unchanged), any other repeated member
//! gets the suffix `_msvc_dup<n>`. A use of the name then means the first declaration. Which of the
//! two MSVC's lookup picks is not documented; WFPSampler's files read never use the repeated name
//! (only the layout matters there). Nothing else changes: a scope without a repeat is left as it is.

use super::msvc::{is_ident, skip_quoted, skip_until};

/// One declared member name: byte range in the text, and whether a `: width` follows it.
struct Member {
    start: usize,
    end: usize,
    bitfield: bool,
}

/// `text` with every repeated member name of an anonymous-aggregate scope removed or renamed (see
/// the module comment), or `None` when it has none.
pub(crate) fn rewrite_member_clashes(text: &str) -> Option<String> {
    let b = text.as_bytes();
    let mut edits: Vec<(usize, usize, String)> = Vec::new();
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'"' | b'\'' => i = skip_quoted(b, i),
            b'/' if b.get(i + 1) == Some(&b'/') => i = skip_until(b, i, b"\n"),
            b'/' if b.get(i + 1) == Some(&b'*') => i = skip_until(b, i + 2, b"*/"),
            c if is_ident(c) => {
                let end = ident_end(b, i);
                let word = &text[i..end];
                let after_word = i == 0 || !is_ident(b[i - 1]);
                i = match aggregate_body(b, end).filter(|_| after_word && is_aggregate(word)) {
                    Some(open) => {
                        let (names, close) = scope(b, open + 1, &mut edits);
                        resolve(text, names, &mut edits);
                        close + 1
                    }
                    None => end,
                };
            }
            _ => i += 1,
        }
    }
    if edits.is_empty() {
        return None;
    }
    edits.sort_by_key(|e| e.0);
    let mut out = String::with_capacity(text.len());
    let mut copied = 0;
    for (start, end, with) in edits {
        out.push_str(&text[copied..start]);
        out.push_str(&with);
        copied = end;
    }
    out.push_str(&text[copied..]);
    Some(out)
}

fn is_aggregate(word: &str) -> bool {
    word == "struct" || word == "union"
}

fn ident_end(b: &[u8], mut i: usize) -> usize {
    while i < b.len() && is_ident(b[i]) {
        i += 1;
    }
    i
}

fn skip_ws(b: &[u8], mut i: usize) -> usize {
    while i < b.len() && b[i].is_ascii_whitespace() {
        i += 1;
    }
    i
}

/// After `struct` / `union` ending at `i`: the index of the `{` of its body (`struct {`,
/// `struct TAG {`, `struct DECLSPEC_ALIGN(16) TAG {` is not recognised), if it has one.
fn aggregate_body(b: &[u8], i: usize) -> Option<usize> {
    let mut j = skip_ws(b, i);
    if j < b.len() && is_ident(b[j]) && !b[j].is_ascii_digit() {
        j = skip_ws(b, ident_end(b, j));
    }
    (b.get(j) == Some(&b'{')).then_some(j)
}

/// Index of the bracket closing the one opened just before `i` (or the end of the text).
fn close_of(b: &[u8], mut i: usize, open: u8, close: u8) -> usize {
    let mut depth = 1usize;
    while i < b.len() {
        match b[i] {
            b'"' | b'\'' => {
                i = skip_quoted(b, i);
                continue;
            }
            c if c == open => depth += 1,
            c if c == close => {
                depth -= 1;
                if depth == 0 {
                    return i;
                }
            }
            _ => {}
        }
        i += 1;
    }
    b.len()
}

/// The member names a scope (an aggregate body starting at `i`) declares, its own and those of
/// the anonymous aggregates nested in it, in order; and the index of its closing `}`. Nested
/// named aggregates are scopes of their own (their repeats are resolved here, into `edits`).
fn scope(b: &[u8], mut i: usize, edits: &mut Vec<(usize, usize, String)>) -> (Vec<Member>, usize) {
    let mut names = Vec::new();
    let mut segment = i;
    // The declarators after a nested body (`} name;`) have their type before the body.
    let mut after_body = false;
    while i < b.len() {
        match b[i] {
            b'}' => return (names, i),
            b'"' | b'\'' => i = skip_quoted(b, i),
            b'/' if b.get(i + 1) == Some(&b'/') => i = skip_until(b, i, b"\n"),
            b'/' if b.get(i + 1) == Some(&b'*') => i = skip_until(b, i + 2, b"*/"),
            b'#' => i = skip_until(b, i, b"\n"),
            b';' => {
                names.extend(declarators(b, segment, i, !after_body));
                i += 1;
                segment = i;
                after_body = false;
            }
            b'(' => i = close_of(b, i + 1, b'(', b')') + 1,
            b'{' => {
                let keyword = last_aggregate_keyword(b, segment, i);
                let close = if keyword {
                    let (inner, close) = scope(b, i + 1, edits);
                    let after = skip_ws(b, close + 1);
                    if b.get(after) == Some(&b';') {
                        names.extend(inner); // anonymous: its names are this scope's
                    } else {
                        let text = std::str::from_utf8(b).unwrap_or_default();
                        resolve(text, inner, edits);
                    }
                    close
                } else {
                    close_of(b, i + 1, b'{', b'}') // a member function body or initialiser
                };
                // What follows a nested body (`} name;` or `};`) is its declarator list.
                // A function body ends its declaration without a `;`.
                i = close + 1;
                segment = i;
                after_body = keyword;
            }
            _ => i += 1,
        }
    }
    (names, b.len())
}

/// Whether the declaration text between `from` and the `{` at `to` starts a struct/union body.
fn last_aggregate_keyword(b: &[u8], from: usize, to: usize) -> bool {
    let text = std::str::from_utf8(&b[from..to]).unwrap_or_default();
    let words: Vec<&str> = text
        .split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
        .filter(|w| !w.is_empty())
        .collect();
    // `struct {` or `struct TAG {`.
    words.iter().rev().take(2).any(|w| is_aggregate(w))
}

/// The data-member names a declaration `b[from..to]` (without its `;`) declares: for each
/// comma-separated declarator, the identifier before its `:` width, `[` bound or `=` (plain data
/// members only: declarations with parentheses, and typedef / enum / using / friend / static /
/// template / operator ones, declare nothing here).
fn declarators(b: &[u8], from: usize, to: usize, typed_first: bool) -> Vec<Member> {
    let text = std::str::from_utf8(&b[from..to]).unwrap_or_default();
    let skip = [
        "typedef", "enum", "using", "friend", "static", "template", "operator",
    ];
    if text.contains('(')
        || text
            .split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .any(|w| skip.contains(&w))
    {
        return Vec::new();
    }
    let mut out = Vec::new();
    let mut part_start = from;
    for (k, &c) in b[from..=to.min(b.len() - 1)].iter().enumerate() {
        let at = from + k;
        if c == b',' || at == to {
            if let Some(m) = declarator_name(b, part_start, at, typed_first && part_start == from) {
                out.push(m);
            }
            part_start = at + 1;
        }
    }
    out
}

/// The name in one declarator `b[from..to]`: the last identifier before `:`, `[` or `=`. In the
/// first declarator the type comes first: a lone identifier there is a type (`UINT32 : 4;`, an
/// unnamed bit-field), not a name.
fn declarator_name(b: &[u8], from: usize, to: usize, first: bool) -> Option<Member> {
    let stop = (from..to)
        .find(|&k| matches!(b[k], b':' | b'[' | b'='))
        .unwrap_or(to);
    let bitfield = stop < to && b[stop] == b':' && b.get(stop + 1) != Some(&b':');
    let mut end = stop;
    while end > from && b[end - 1].is_ascii_whitespace() {
        end -= 1;
    }
    let mut start = end;
    while start > from && is_ident(b[start - 1]) {
        start -= 1;
    }
    let typed = !first
        || b[from..start]
            .iter()
            .any(|&c| is_ident(c) || c == b'*' || c == b'&');
    (start < end && typed && !b[start].is_ascii_digit()).then_some(Member {
        start,
        end,
        bitfield,
    })
}

/// Records the edits that take each repeated name of one scope off its later declarations.
fn resolve(text: &str, names: Vec<Member>, edits: &mut Vec<(usize, usize, String)>) {
    let mut seen: Vec<&str> = Vec::new();
    let mut repeats = 0;
    for m in names {
        let name = &text[m.start..m.end];
        if !seen.contains(&name) {
            seen.push(name);
            continue;
        }
        repeats += 1;
        let with = if m.bitfield {
            String::new()
        } else {
            format!("{name}_msvc_dup{repeats}")
        };
        edits.push((m.start, m.end, with));
    }
}

#[cfg(test)]
mod tests {
    use super::rewrite_member_clashes;

    #[test]
    fn a_repeated_bitfield_in_a_nested_anonymous_struct_loses_its_name() {
        let src = "typedef struct _H {\n   union {\n      UINT8 tos;\n      UINT8 dscp;\n      struct {\n         UINT8 ecn : 2;\n         UINT8 tos : 6;\n      };\n   };\n   UINT16 len;\n} H;\n";
        let want = src.replace("UINT8 tos : 6;", "UINT8  : 6;");
        assert_eq!(rewrite_member_clashes(src).unwrap(), want);
    }

    #[test]
    fn a_repeated_plain_member_is_renamed_and_named_scopes_are_separate() {
        let src = "struct A { int x; union { int y; struct { int x; int z; }; }; struct B { int x; } b; };";
        assert_eq!(
            rewrite_member_clashes(src).unwrap(),
            "struct A { int x; union { int y; struct { int x_msvc_dup1; int z; }; }; struct B { int x; } b; };"
        );
    }

    #[test]
    fn scopes_without_repeats_functions_and_text_are_left_alone() {
        for src in [
            "typedef struct _IPV4_HEADER { union { UINT8 VersionAndHeaderLength; struct { UINT8 HeaderLength : 4; UINT8 Version : 4; }; }; } IPV4_HEADER;",
            "struct S { int a; int f(int a) { int b; return a; } int b; };",
            "struct P { int x; }; struct Q { int x; };",
            "union U { struct { int lo; int hi; } s; struct { int lo; int hi; } t; };",
            "typedef struct _V6 { union { UINT32 v; struct { UINT32 : 4; UINT32 Version : 4; UINT32 : 24; }; }; } V6;",
            "const char* s = \"struct { int a; int a; }\";",
            "void f(void) { struct { int a; } v; int a; }",
        ] {
            assert_eq!(rewrite_member_clashes(src), None, "{src}");
        }
    }
}
