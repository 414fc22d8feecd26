//! `wfpctl replay --driver X.so --driver-param NAME=VALUE`: parameters reach the preceding driver's
//! Parameters key (WdfRegistryQueryULong / QueryUnicodeString), per driver.

use std::path::{Path, PathBuf};
use std::process::Command;

const PARAMS_DRIVER: &str = r#"
#include <ntddk.h>
#include <wdf.h>
static void Unload(WDFDRIVER d) { UNREFERENCED_PARAMETER(d); }
NTSTATUS DriverEntry(PDRIVER_OBJECT DriverObject, PUNICODE_STRING RegistryPath)
{
    WDF_DRIVER_CONFIG config;
    WDFDRIVER driver;
    WDFKEY key;
    ULONG mode = 0;
    WCHAR buf[32];
    UNICODE_STRING tag = { 0, sizeof(buf), buf };
    DECLARE_CONST_UNICODE_STRING(modeName, L"Mode");
    DECLARE_CONST_UNICODE_STRING(tagName, L"Tag");
    WDF_DRIVER_CONFIG_INIT(&config, WDF_NO_EVENT_CALLBACK);
    config.DriverInitFlags |= WdfDriverInitNonPnpDriver;
    config.EvtDriverUnload = Unload;
    NTSTATUS st = WdfDriverCreate(DriverObject, RegistryPath, WDF_NO_OBJECT_ATTRIBUTES, &config, &driver);
    if (!NT_SUCCESS(st)) return st;
    st = WdfDriverOpenParametersRegistryKey(driver, KEY_READ, WDF_NO_OBJECT_ATTRIBUTES, &key);
    if (!NT_SUCCESS(st)) return st;
    NTSTATUS a = WdfRegistryQueryULong(key, &modeName, &mode);
    NTSTATUS b = WdfRegistryQueryUnicodeString(key, &tagName, NULL, &tag);
    DbgPrint("params mode=%u (%x) tag=%wZ (%x)\n", mode, a, &tag, b);
    WdfRegistryClose(key);
    return STATUS_SUCCESS;
}
"#;

fn wfpctl() -> Command {
    Command::new(env!("CARGO_BIN_EXE_wfpctl"))
}

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

#[test]
fn driver_params_go_to_the_preceding_driver() {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR"));
    let src = dir.join("params_driver.c");
    std::fs::write(&src, PARAMS_DRIVER).unwrap();
    let (a, b) = (dir.join("params_a.so"), dir.join("params_b.so"));
    for so in [&a, &b] {
        let out = wfpctl()
            .args(["driver", "build"])
            .arg(&src)
            .arg("-o")
            .arg(so)
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    }
    let out = wfpctl()
        .arg("replay")
        .arg(root().join("examples/replay/capture.pcap"))
        .arg("--driver")
        .arg(&a)
        .args(["--driver-param", "Mode=0x10", "--driver-param", "Tag=sz:first"])
        .arg(format!("--driver={}", b.display()))
        .arg("--driver-param=mode=3")
        .arg("--verify")
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    assert!(err.contains("[params_a] params mode=16 (0) tag=first (0)"), "{err}");
    assert!(err.contains("[params_b] params mode=3 (0) tag= (c0000034)"), "{err}");

    let bad = wfpctl()
        .arg("replay")
        .arg(root().join("examples/replay/capture.pcap"))
        .args(["--driver-param", "Mode=1", "--driver"])
        .arg(&a)
        .output()
        .unwrap();
    assert!(!bad.status.success());
    assert!(
        String::from_utf8_lossy(&bad.stderr).contains("comes before any --driver"),
        "{}",
        String::from_utf8_lossy(&bad.stderr)
    );
}
