//! The C test suite: `tests/c/layout.c` (every struct's size and offsets as `_Static_assert`s, the
//! header-only helpers at run time), `tests/c/ustrsafe.c` (ntstrsafe.h's UNICODE_STRING Ex and N
//! forms) and `tests/c/strsafe.c` (ntstrsafe.h, intsafe.h and the
//! formatter with WPP conversions at the edges of their buffers), each built with the driver flags
//! and run plain, with AddressSanitizer + UBSan, and under valgrind memcheck (0 errors, 0 bytes
//! definitely lost; skipped with a note when valgrind is absent); and every WDK-named header
//! preprocessed and compiled on its own at two NTDDI versions with -Wall -Wextra -Werror.

#[path = "support/valgrind.rs"]
mod valgrind;

use std::path::{Path, PathBuf};
use std::process::Command;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// Builds `tests/c/{source}` with the driver flags and `extra` into `out`.
fn gcc(source: &str, extra: &[&str], out: &Path) {
    let status = Command::new(std::env::var("CC").unwrap_or_else(|_| "cc".into()))
        .args(
            wfp_ffi::compile::CFLAGS
                .iter()
                .filter(|f| !["-fPIC", "-fvisibility=hidden"].contains(f)),
        )
        .args(wfp_ffi::compile::DEFINES.iter().map(|d| format!("-D{d}")))
        .arg("-Werror")
        .arg(format!("-I{}", wfp_ffi::compile::include_dir().display()))
        .arg(format!(
            "-I{}",
            root().join("crates/wfp-ffi/tests/c").display()
        ))
        .args(extra)
        .arg(root().join("crates/wfp-ffi/tests/c").join(source))
        .arg("-o")
        .arg(out)
        .status()
        .expect("a C compiler (cc)");
    assert!(status.success(), "compiling {source} {extra:?}");
}

fn run(cmd: &mut Command) -> String {
    let out = cmd.output().expect("run");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "{text}");
    assert!(text.contains("1 passed, 0 failed"), "{text}");
    text
}

/// Runs `tests/c/{source}` plain and with AddressSanitizer + UBSan; each must report
/// "1 passed, 0 failed".
fn plain_and_sanitized(source: &str) {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR"));
    let stem = source.trim_end_matches(".c");
    let plain = dir.join(format!("{stem}_plain"));
    gcc(source, &[], &plain);
    run(&mut Command::new(&plain));
    let asan = dir.join(format!("{stem}_asan"));
    gcc(
        source,
        &[
            "-fsanitize=address,undefined",
            "-fno-omit-frame-pointer",
            "-fno-sanitize-recover=all",
        ],
        &asan,
    );
    run(Command::new(&asan).env("ASAN_OPTIONS", "detect_leaks=1"));
}

/// Runs `tests/c/{source}` under valgrind memcheck (`support/valgrind.rs`): 0 errors, no
/// definite leak, "1 passed, 0 failed".
fn under_valgrind(source: &str) {
    let stem = source.trim_end_matches(".c");
    let bin = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("{stem}_valgrind"));
    gcc(source, &["-O0"], &bin);
    if let Some(text) = valgrind::memcheck(&bin, &[], None::<(&str, &str)>) {
        assert!(text.contains("1 passed, 0 failed"), "{text}");
    }
}

#[test]
fn layout_and_header_helpers_plain_and_with_address_sanitizer() {
    plain_and_sanitized("layout.c");
}

#[test]
fn layout_and_header_helpers_under_valgrind() {
    under_valgrind("layout.c");
}

#[test]
fn string_helpers_plain_and_with_sanitizers() {
    plain_and_sanitized("strsafe.c");
}

#[test]
fn string_helpers_under_valgrind() {
    under_valgrind("strsafe.c");
}

#[test]
fn unicode_string_ex_and_n_forms_plain_and_with_sanitizers() {
    plain_and_sanitized("ustrsafe.c");
}

#[test]
fn unicode_string_ex_and_n_forms_under_valgrind() {
    under_valgrind("ustrsafe.c");
}

#[test]
fn every_header_compiles_alone_at_two_ntddi_versions() {
    let headers = [
        "ntddk.h",
        "wdm.h",
        "ntifs.h",
        "ndis.h",
        "fwpsk.h",
        "fwpmk.h",
        "fwptypes.h",
        "fwpstypes.h",
        "fwpmtypes.h",
        "guiddef.h",
        "initguid.h",
        "ws2ipdef.h",
        "in6addr.h",
        "ntstrsafe.h",
        "intsafe.h",
        "ntintsafe.h",
        "ip2string.h",
    ];
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR"));
    for ntddi in ["0x0A00000C", "0x0A000000"] {
        for h in headers {
            let src = dir.join(format!("hdr_{}.c", h.replace('.', "_")));
            std::fs::write(&src, format!("#include <{h}>\nint wfp_header_check;\n")).unwrap();
            let status = Command::new(std::env::var("CC").unwrap_or_else(|_| "cc".into()))
                .args([
                    "-std=gnu11",
                    "-fshort-wchar",
                    "-fsyntax-only",
                    "-Wall",
                    "-Wextra",
                    "-Werror",
                    "-Wno-unused-parameter",
                    "-Wno-unused-function",
                ])
                .arg(format!("-DNTDDI_VERSION={ntddi}"))
                .arg("-DDBG=1")
                .arg(format!("-I{}", wfp_ffi::compile::include_dir().display()))
                .arg(&src)
                .status()
                .unwrap();
            assert!(status.success(), "{h} at NTDDI {ntddi}");
        }
    }
}
