//! Rewriting MSVC-only constructs ([`super::msvc::rewrite`]) in a source and in the local headers
//! it includes. A header is rewritten through a copy: the source and every header it includes with
//! quotes (transitively; found beside the includer or in the include directories, as the compiler
//! finds them) are copied into one directory under their include names, rewritten where needed,
//! each with a `#line` naming the original, and the source is compiled from there — so every
//! quoted include, from the source or from a header, finds the copies first. Without any rewrite
//! nothing is copied and the original source is compiled.

use std::collections::BTreeMap;
use std::path::{Component, Path, PathBuf};

use super::{msvc, read_source, BuildError, SourceText};

/// A file of the closure: its text and the rewritten text, if any rewrite applied.
struct Local {
    path: PathBuf,
    source: SourceText,
    fixed: Option<String>,
}

/// The compile input for `src`: `None` when neither it nor a local header needs a rewrite; else the
/// rewritten copy (`work/<name>` when only the source changed, `work/<name>.d/<name>` with the
/// headers beside it when a header did).
pub(super) fn prepare(
    src: &Path,
    work: &Path,
    name: &str,
    include_dirs: &[PathBuf],
) -> Result<Option<PathBuf>, BuildError> {
    let source = read_source(src).map_err(io(src))?;
    let fixed = msvc::rewrite(&source.text);
    let headers = closure(src, &source.text, include_dirs);
    if fixed.is_none() && headers.values().all(|h| h.fixed.is_none()) {
        return Ok(None);
    }
    let dir = if headers.values().any(|h| h.fixed.is_some()) {
        let d = work.join(format!("{name}.d"));
        for (include, h) in &headers {
            write_copy(&d.join(include), &h.path, &h.source, h.fixed.as_deref())?;
        }
        d
    } else {
        work.to_path_buf()
    };
    let copy = dir.join(name);
    write_copy(&copy, src, &source, fixed.as_deref())?;
    Ok(Some(copy))
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> BuildError {
    let path = path.to_path_buf();
    move |source| BuildError::Io { path, source }
}

/// Writes `text` (or the original) to `to` in the original's encoding, after a `#line`.
fn write_copy(
    to: &Path,
    from: &Path,
    source: &SourceText,
    text: Option<&str>,
) -> Result<(), BuildError> {
    if let Some(parent) = to.parent() {
        std::fs::create_dir_all(parent).map_err(io(parent))?;
    }
    let line = format!("#line 1 \"{}\"\n", from.display());
    let body = line + text.unwrap_or(&source.text);
    std::fs::write(to, source.encode(&body)).map_err(io(to))
}

/// The names in `#include "NAME"` lines of `text` (not generated `.tmh` files; relative names
/// without `..` only).
fn quoted_includes(text: &str) -> Vec<String> {
    text.lines()
        .filter_map(|line| {
            let rest = line.trim_start().strip_prefix('#')?.trim_start();
            let name = rest.strip_prefix("include")?.trim().strip_prefix('"')?;
            name.split('"').next().map(str::to_string)
        })
        .filter(|n| {
            !n.ends_with(".tmh")
                && Path::new(n)
                    .components()
                    .all(|c| matches!(c, Component::Normal(_)))
        })
        .collect()
}

/// Every local header `src` includes with quotes, transitively, by include name (first found wins).
fn closure(src: &Path, text: &str, include_dirs: &[PathBuf]) -> BTreeMap<String, Local> {
    let mut found: BTreeMap<String, Local> = BTreeMap::new();
    let mut pending: Vec<(PathBuf, Vec<String>)> = vec![(src.to_path_buf(), quoted_includes(text))];
    while let Some((includer, names)) = pending.pop() {
        let here = includer.parent().map(Path::to_path_buf).unwrap_or_default();
        for n in names {
            if found.contains_key(&n) {
                continue;
            }
            let hit = std::iter::once(&here)
                .chain(include_dirs)
                .map(|d| d.join(&n))
                .find_map(|p| read_source(&p).ok().map(|s| (p, s)));
            let Some((path, source)) = hit else { continue };
            pending.push((path.clone(), quoted_includes(&source.text)));
            let fixed = msvc::rewrite(&source.text);
            found.insert(
                n,
                Local {
                    path,
                    source,
                    fixed,
                },
            );
        }
    }
    found
}
