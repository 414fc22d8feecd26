//! FwpsQueryConnectionSioFormatRedirectRecords0 (wfp-reference §10.3; WDK fwpsk.h) from C
//! (`tests/c/drivers/rt_sioredir.c`) on a real engine and the shim's packet pipeline: a
//! connection the driver redirected carries redirect records at ALE_AUTH_CONNECT; their SIO form
//! ("WFPR", count, then redirect handle and context per redirect) is sized, refused into a short
//! or misaligned buffer, and written; a handle that is not the classify's is a Verifier finding.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;

use wfp_core::Engine;
use wfp_ffi::compile::{build, BuildOptions};
use wfp_ffi::{DriverHost, Finding, HostConfig};
use wfp_shim::wire::build::ip_packet;
use wfp_shim::{PacketContext, PacketDirection, Shim, ShimConfig, Timestamp};

/// A TCP SYN `src` → `dst`.
fn syn(src: SocketAddr, dst: SocketAddr) -> Vec<u8> {
    let mut seg = Vec::new();
    seg.extend_from_slice(&src.port().to_be_bytes());
    seg.extend_from_slice(&dst.port().to_be_bytes());
    seg.extend_from_slice(&1000u32.to_be_bytes());
    seg.extend_from_slice(&0u32.to_be_bytes());
    seg.extend_from_slice(&[0x50, 0x02, 0xff, 0xff, 0, 0, 0, 0]);
    ip_packet(src.ip(), dst.ip(), 6, &seg).unwrap()
}

#[test]
fn redirect_records_in_sio_form_from_a_driver() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/c/drivers");
    let so = Path::new(env!("CARGO_TARGET_TMPDIR")).join("rt_sioredir.so");
    build(&BuildOptions {
        sources: vec![dir.join("rt_sioredir.c")],
        output: so.clone(),
        ..BuildOptions::default()
    })
    .unwrap();
    let engine = Arc::new(Engine::default());
    let host = DriverHost::new(engine.clone(), HostConfig::default());
    let driver = host.load(&so).unwrap();
    let config = ShimConfig {
        local_networks: vec![("10.0.0.1".parse().unwrap(), 32)],
        ..ShimConfig::default()
    };
    let mut shim = Shim::new(engine.clone(), config);
    let packet = syn(
        "10.0.0.1:40000".parse().unwrap(),
        "192.0.2.7:80".parse().unwrap(),
    );
    let now = Timestamp::from_nanos(1_000_000);
    shim.handle_packet(
        now,
        PacketDirection::Outbound,
        &packet,
        &PacketContext::default(),
    );
    host.settle(std::time::Duration::from_secs(5));
    shim.handle_async(now);
    let report = driver.unload().unwrap();
    let log: Vec<String> = host.drain_log().into_iter().map(|l| l.text).collect();
    assert_eq!(
        log,
        [
            "sio: size 0xc0000023 needed 24",
            "sio: short 0xc0000023 needed 24",
            "sio: misaligned 0x80000002",
            "sio: null handle 0xc000000d",
            "sio: foreign handle 0xc000000d",
            "sio: records 0x0 bytes 24 magic 1 count 1 ours 1 context 0",
        ]
    );
    assert_eq!(
        report.findings,
        [Finding::BadHandle {
            function: "FwpsQueryConnectionSioFormatRedirectRecords0"
        }]
    );
}
