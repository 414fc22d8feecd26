//! Test and bench binaries of this crate load C drivers in-process: the runtime's exported
//! `#[no_mangle]` functions must be in their dynamic symbol table for the drivers to bind to.
fn main() {
    println!("cargo:rustc-link-arg-tests=-rdynamic");
    println!("cargo:rustc-link-arg-benches=-rdynamic");
    println!("cargo:rerun-if-changed=build.rs");
}
