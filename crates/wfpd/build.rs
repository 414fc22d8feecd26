//! wfpd loads C callout drivers (`[[driver]]`) into its process: the wfp-ffi runtime's exported
//! functions must be in the dynamic symbol table so a driver's imports bind to them at dlopen.
fn main() {
    println!("cargo:rustc-link-arg=-rdynamic");
    println!("cargo:rerun-if-changed=build.rs");
}
