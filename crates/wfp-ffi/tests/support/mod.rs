//! Test support shared by the integration tests (`mod support;`): the valgrind re-exec that runs
//! one `#[ignore]`d test of the current test binary in a child process under memcheck.

use std::ffi::OsStr;
use std::process::Command;

/// Runs the ignored test `inner` of this test binary under valgrind memcheck with `env_name` set
/// to `value` (the driver or drivers to load), and asserts: the child succeeded, printed
/// `done_marker`, 0 errors and 0 bytes definitely lost. Returns the child's output for further
/// checks, or `None` (with a note) when valgrind is not installed.
pub(crate) fn run_inner_under_valgrind(
    inner: &str,
    env_name: &str,
    value: impl AsRef<OsStr>,
    done_marker: &str,
) -> Option<String> {
    if Command::new("valgrind").arg("--version").output().is_err() {
        eprintln!("note: valgrind not installed; skipping");
        return None;
    }
    let out = Command::new("valgrind")
        .args([
            "--error-exitcode=99",
            "--leak-check=full",
            "--errors-for-leak-kinds=definite",
            "--show-leak-kinds=definite",
        ])
        .arg(std::env::current_exe().expect("the test binary"))
        .args([
            "--ignored",
            "--exact",
            inner,
            "--test-threads=1",
            "--nocapture",
        ])
        .env(env_name, value)
        .output()
        .expect("run valgrind");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "{text}");
    assert!(text.contains(done_marker), "{text}");
    assert!(text.contains("ERROR SUMMARY: 0 errors"), "{text}");
    assert!(
        text.contains("definitely lost: 0 bytes") || text.contains("All heap blocks were freed"),
        "{text}"
    );
    Some(text)
}
