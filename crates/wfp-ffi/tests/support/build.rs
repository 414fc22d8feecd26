//! Building the test drivers of our own (`tests/c/drivers`) into the test target directory, the
//! one way every integration test does it (`#[path = "support/build.rs"] mod builder;`).

#![allow(dead_code, reason = "each test binary uses its own subset")]

use std::path::{Path, PathBuf};

use wfp_ffi::compile::{build, BuildOptions};

/// `tests/c/drivers/<file>`.
pub(crate) fn source(file: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/c/drivers")
        .join(file)
}

/// Builds `sources` into `<CARGO_TARGET_TMPDIR>/<image>.so` with `defines` (`NAME` or
/// `NAME=VALUE`) and extra compiler `flags`; a build error fails the test, naming the image.
pub(crate) fn driver(
    image: &str,
    sources: &[PathBuf],
    defines: &[&str],
    flags: &[&str],
) -> PathBuf {
    let out = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("{image}.so"));
    build(&BuildOptions {
        sources: sources.to_vec(),
        output: out.clone(),
        defines: defines.iter().map(|d| (*d).to_string()).collect(),
        extra_flags: flags.iter().map(|f| (*f).to_string()).collect(),
        ..BuildOptions::default()
    })
    .unwrap_or_else(|e| panic!("building {image}: {e}"));
    out
}

/// Writes `text` as `<CARGO_TARGET_TMPDIR>/<name>.c` (a driver a test writes inline).
pub(crate) fn write_source(name: &str, text: &str) -> PathBuf {
    let p = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("{name}.c"));
    std::fs::write(&p, text).unwrap_or_else(|e| panic!("writing {name}.c: {e}"));
    p
}
