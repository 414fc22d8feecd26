//! The AddressSanitizer runtime of the C compiler (`$CC`, default `cc`), for test binaries that
//! re-run one of their tests with drivers built with `-fsanitize=address` (`LD_PRELOAD`).

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
