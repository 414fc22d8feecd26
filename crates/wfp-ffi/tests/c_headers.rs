//! `tests/c/strsafe.c`: the header-only string helpers (ntstrsafe.h, intsafe.h, the formatter with
//! WPP conversions) at the edges of their buffers, built with the driver flags and run plain, with
//! AddressSanitizer + UBSan, and under valgrind memcheck (skipped with a note without valgrind).

use std::path::{Path, PathBuf};
use std::process::Command;

fn source() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/c/strsafe.c")
}

fn compile(extra: &[&str], out: &Path) {
    let status = Command::new(std::env::var("CC").unwrap_or_else(|_| "cc".into()))
        .args(
            wfp_ffi::compile::CFLAGS
                .iter()
                .filter(|f| !["-fPIC", "-fvisibility=hidden"].contains(f)),
        )
        .args(wfp_ffi::compile::DEFINES.iter().map(|d| format!("-D{d}")))
        .arg("-Werror")
        .arg(format!("-I{}", wfp_ffi::compile::include_dir().display()))
        .args(extra)
        .arg(source())
        .arg("-o")
        .arg(out)
        .status()
        .expect("a C compiler (cc)");
    assert!(status.success(), "compiling strsafe.c {extra:?}");
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

#[test]
fn string_helpers_plain_and_with_sanitizers() {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR"));
    let plain = dir.join("strsafe_plain");
    compile(&[], &plain);
    run(&mut Command::new(&plain));
    let asan = dir.join("strsafe_asan");
    compile(
        &[
            "-fsanitize=address,undefined",
            "-fno-omit-frame-pointer",
            "-fno-sanitize-recover=all",
        ],
        &asan,
    );
    run(Command::new(&asan).env("ASAN_OPTIONS", "detect_leaks=1"));
}

#[test]
fn string_helpers_under_valgrind() {
    if Command::new("valgrind").arg("--version").output().is_err() {
        eprintln!("note: valgrind not installed; skipping the memcheck run");
        return;
    }
    let bin = Path::new(env!("CARGO_TARGET_TMPDIR")).join("strsafe_valgrind");
    compile(&["-O0"], &bin);
    let text = run(Command::new("valgrind")
        .args([
            "--error-exitcode=1",
            "--leak-check=full",
            "--errors-for-leak-kinds=definite",
        ])
        .arg(&bin));
    assert!(text.contains("ERROR SUMMARY: 0 errors"), "{text}");
}
