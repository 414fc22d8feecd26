//! The AddressSanitizer runtime of the C compiler (`$CC`, default `cc`), for test binaries that
//! re-run one of their tests with drivers built with `-fsanitize=address` (`LD_PRELOAD`).

use std::ffi::OsStr;
use std::path::Path;

/// The absolute path of the compiler's `libasan.so`, or `None` (with a note naming `what` is
/// skipped) when the compiler has none.
pub(crate) fn runtime(what: &str) -> Option<String> {
    let cc = std::env::var("CC").unwrap_or_else(|_| "cc".into());
    let out = std::process::Command::new(&cc)
        .arg("-print-file-name=libasan.so")
        .output()
        .ok()?;
    let lib = String::from_utf8_lossy(&out.stdout).trim().to_string();
    if Path::new(&lib).is_absolute() {
        Some(lib)
    } else {
        eprintln!("note: {cc} has no libasan.so; skipping {what}");
        None
    }
}

/// Runs the ignored test `inner` of this test binary in a child process with the AddressSanitizer
/// runtime preloaded and `env_name` set to what `build` returns (drivers built with
/// `-fsanitize=address`; built only when the runtime exists), and asserts: the child succeeded,
/// printed `done_marker`, and AddressSanitizer reported nothing. Returns the child's output for
/// further checks, or `None` (with a note) when the compiler has no AddressSanitizer runtime.
pub(crate) fn run_inner<T: AsRef<OsStr>>(
    inner: &str,
    env_name: &str,
    done_marker: &str,
    build: impl FnOnce() -> T,
) -> Option<String> {
    let lib = runtime("the AddressSanitizer run")?;
    let value = build();
    let out = std::process::Command::new(std::env::current_exe().expect("the test binary"))
        .args([
            "--ignored",
            "--exact",
            inner,
            "--test-threads=1",
            "--nocapture",
        ])
        .env(env_name, value)
        .env("LD_PRELOAD", lib)
        .env(
            "ASAN_OPTIONS",
            "detect_leaks=1:abort_on_error=0:exitcode=98",
        )
        .output()
        .expect("run the test binary");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "{text}");
    assert!(text.contains(done_marker), "{text}");
    assert!(!text.contains("AddressSanitizer"), "{text}");
    Some(text)
}
