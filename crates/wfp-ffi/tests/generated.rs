//! The generated headers (layer/field ids, management GUIDs, expected ABI layout) match the
//! engine's catalogue and the `#[repr(C)]` mirrors. `WFP_FFI_REGENERATE=1` rewrites them.

use std::path::Path;

#[test]
fn generated_headers_are_current() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let regenerate = std::env::var_os("WFP_FFI_REGENERATE").is_some();
    let mut stale = Vec::new();
    for (rel, body) in wfp_ffi::gen::generated_files() {
        let path = root.join(rel);
        if regenerate {
            std::fs::write(&path, &body).unwrap();
            continue;
        }
        let current = std::fs::read_to_string(&path).unwrap_or_default();
        if current != body {
            stale.push(rel);
        }
    }
    assert!(
        stale.is_empty(),
        "generated files out of date: {stale:?} (regenerate: WFP_FFI_REGENERATE=1 cargo test -p wfp-ffi --test generated)"
    );
}

#[test]
fn every_layer_and_field_id_is_in_the_header() {
    let h = wfp_ffi::gen::fwps_builtin_h();
    assert!(h.contains("FWPS_LAYER_ALE_AUTH_CONNECT_V4 = 48,"));
    assert!(h.contains("FWPS_LAYER_STREAM_PACKET_V6 = 71,"));
    assert!(h.contains("FWPS_FIELD_OUTBOUND_TRANSPORT_V4_IP_REMOTE_PORT = 5,"));
    assert!(h.contains("FWPS_FIELD_ALE_AUTH_CONNECT_V6_MAX = 41"));
    assert!(h.contains("FWPS_FIELD_STREAM_V4_MAX = 8"));
    // Discard twins share their base layer's enum, as in the WDK.
    assert!(!h.contains("FWPS_FIELDS_INBOUND_TRANSPORT_V4_DISCARD"));
    let g = wfp_ffi::gen::fwpm_guids_h();
    assert!(g.contains("DEFINE_GUID(FWPM_LAYER_INBOUND_IPPACKET_V4, 0xc86fd1bf, 0x21cd, 0x497e, 0xa0, 0xbb, 0x17, 0x42, 0x5c, 0x88, 0x5c, 0x58);"));
    assert!(g.contains("FWPM_CONDITION_IP_REMOTE_PORT"));
}

#[test]
fn every_exported_function_is_in_the_porting_guide_table() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let doc = std::fs::read_to_string(root.join("docs/c-abi.md")).unwrap();
    let missing: Vec<&str> = wfp_ffi::exported_functions()
        .into_iter()
        .filter(|name| {
            // Versioned names are listed as `Name0/1/2/3`, families as `FwpmTransactionBegin0/
            // Commit0/Abort0` (the last word after a slash).
            let base = name.trim_end_matches(|c: char| c.is_ascii_digit());
            let last = name
                .rfind(|c: char| c.is_ascii_uppercase())
                .map_or(*name, |i| &name[i..]);
            !doc.contains(name)
                && !doc.contains(&format!("{base}0/"))
                && !doc.contains(&format!("/{last}"))
        })
        .collect();
    assert!(missing.is_empty(), "not in docs/c-abi.md: {missing:?}");
}
