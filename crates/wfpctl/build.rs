//! `wfpctl replay --driver` loads C callout drivers into this process: the wfp-ffi runtime's
//! exported functions must be in the binary's dynamic symbol table so a driver's imports bind to
//! them at dlopen time (the Linux counterpart of linking a driver against the WDK's import
//! libraries).
fn main() {
    println!("cargo:rustc-link-arg-bins=-rdynamic");
    // tests/driver_daemon.rs hosts wfpd's driver registry (and so the drivers) in the test.
    println!("cargo:rustc-link-arg-tests=-rdynamic");
    println!("cargo:rerun-if-changed=build.rs");
}
