//! Test support shared by the integration tests (`mod support;`): the valgrind re-exec that runs
//! one `#[ignore]`d test of the current test binary in a child process under memcheck (the
//! memcheck run itself is `valgrind.rs`, which `c_suite.rs` uses for its C programs).

mod valgrind;

use std::ffi::OsStr;

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
    let exe = std::env::current_exe().expect("the test binary");
    let args = [
        "--ignored",
        "--exact",
        inner,
        "--test-threads=1",
        "--nocapture",
    ];
    let text = valgrind::memcheck(&exe, &args, Some((env_name, value)))?;
    assert!(text.contains(done_marker), "{text}");
    Some(text)
}
