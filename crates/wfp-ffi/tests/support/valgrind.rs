//! valgrind memcheck for test programs (`tests/c/` binaries and test binaries re-run in a child
//! process): one invocation and one set of checks, shared by `c_suite.rs` (`#[path]`) and
//! [`super::run_inner_under_valgrind`].

use std::ffi::OsStr;
use std::path::Path;
use std::process::Command;

/// Runs `program` with `args` (and `env`) under valgrind memcheck and asserts: it succeeded, 0
/// errors, 0 bytes definitely lost. Returns its output (stdout then stderr) for further checks,
/// or `None` (with a note) when valgrind is not installed.
pub(crate) fn memcheck<S: AsRef<OsStr>>(
    program: &Path,
    args: &[&str],
    env: Option<(&str, S)>,
) -> Option<String> {
    if Command::new("valgrind").arg("--version").output().is_err() {
        eprintln!(
            "note: valgrind not installed; skipping the memcheck run (apt-get install valgrind)"
        );
        return None;
    }
    let mut cmd = Command::new("valgrind");
    cmd.args([
        "--error-exitcode=99",
        "--leak-check=full",
        "--errors-for-leak-kinds=definite",
        "--show-leak-kinds=definite",
    ])
    .arg(program)
    .args(args);
    if let Some((name, value)) = env {
        cmd.env(name, value);
    }
    let out = cmd.output().expect("run valgrind");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "{text}");
    assert!(text.contains("ERROR SUMMARY: 0 errors"), "{text}");
    assert!(
        text.contains("definitely lost: 0 bytes") || text.contains("All heap blocks were freed"),
        "{text}"
    );
    Some(text)
}
