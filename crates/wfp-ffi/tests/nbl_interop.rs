//! NBL interop between NDIS and Fwps (wdk-runtime.md §6, wfp-reference §9.2):
//! FwpsAllocateNetBufferAndNetBufferList0 takes a pool from NdisAllocateNetBufferListPool (the
//! list carries it and the pool's protocol id, and counts against the pool until
//! FwpsFreeNetBufferList0); each list has one owner — freeing it with the other family's function
//! is a Verifier finding and the right free is still done; an unknown pool handle is refused.

use std::path::Path;
use std::sync::Arc;

use wfp_core::Engine;
use wfp_ffi::compile::{build, BuildOptions};
use wfp_ffi::verifier::Finding;
use wfp_ffi::{DriverHost, HostConfig};

const SOURCE: &str = r#"
#include <ntddk.h>
#include <ndis.h>
#include <fwpsk.h>
#define TAG 'pilN'
static UCHAR bytes[16] = { 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16 };

static NDIS_HANDLE Pool(void)
{
    NET_BUFFER_LIST_POOL_PARAMETERS p;
    RtlZeroMemory(&p, sizeof(p));
    p.Header.Type = NDIS_OBJECT_TYPE_DEFAULT;
    p.Header.Revision = NET_BUFFER_LIST_POOL_PARAMETERS_REVISION_1;
    p.Header.Size = NDIS_SIZEOF_NET_BUFFER_LIST_POOL_PARAMETERS_REVISION_1;
    p.ProtocolId = NDIS_PROTOCOL_ID_TCP_IP;
    p.fAllocateNetBuffer = TRUE;
    p.PoolTag = TAG;
    return NdisAllocateNetBufferListPool(NULL, &p);
}

NTSTATUS DriverEntry(PDRIVER_OBJECT d, PUNICODE_STRING r)
{
    NDIS_HANDLE pool = Pool();
    PMDL mdl = IoAllocateMdl(bytes, sizeof(bytes), FALSE, FALSE, NULL);
    MmBuildMdlForNonPagedPool(mdl);
    NET_BUFFER_LIST *a = NULL, *b = NULL, *c = NULL, *bad = NULL;
    NTSTATUS s = FwpsAllocateNetBufferAndNetBufferList0(pool, 0, 0, mdl, 4, 8, &a);
    DbgPrint("nbl: from pool %#x handle %u protocol %u length %lu\n", s, a->NdisPoolHandle == pool,
             *(PUCHAR)&NET_BUFFER_LIST_INFO(a, NetBufferListProtocolId),
             NET_BUFFER_DATA_LENGTH(NET_BUFFER_LIST_FIRST_NB(a)));
    UCHAR tmp[2];
    PUCHAR first = (PUCHAR)NdisGetDataBuffer(NET_BUFFER_LIST_FIRST_NB(a), 2, tmp, 1, 0);
    DbgPrint("nbl: data %u %u\n", first[0], first[1]);
    DbgPrint("nbl: unknown pool %#x\n", FwpsAllocateNetBufferAndNetBufferList0((NDIS_HANDLE)0x99, 0, 0, mdl, 0, 4, &bad));
    s = FwpsAllocateNetBufferAndNetBufferList0(NULL, 0, 0, mdl, 0, 4, &b);
    DbgPrint("nbl: no pool %#x handle %u\n", s, b->NdisPoolHandle == NULL);
    c = NdisAllocateNetBufferAndNetBufferList(pool, 0, 0, mdl, 0, 4);
    /* The pool is busy with the Fwps list a and the NDIS list c: freeing it now is a finding. */
    FwpsFreeNetBufferList0(a);
    NdisFreeNetBufferList(b);       /* wrong family: finding, freed anyway */
    FwpsFreeNetBufferList0(c);      /* wrong family: finding, freed anyway */
    FwpsFreeNetBufferList0(a);      /* double free */
    NdisFreeNetBufferListPool(pool); /* nothing outstanding any more: no finding */
    NDIS_HANDLE busy = Pool();
    s = FwpsAllocateNetBufferAndNetBufferList0(busy, 0, 0, mdl, 0, 4, &a);
    NdisFreeNetBufferListPool(busy); /* a still allocated from it: finding */
    FwpsFreeNetBufferList0(a);
    IoFreeMdl(mdl);
    return STATUS_SUCCESS;
}
"#;

#[test]
fn fwps_lists_from_ndis_pools_with_one_owner_per_list() {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR"));
    let src = dir.join("nbl_interop.c");
    std::fs::write(&src, SOURCE).unwrap();
    let so = dir.join("nbl_interop.so");
    build(&BuildOptions {
        sources: vec![src],
        output: so.clone(),
        ..BuildOptions::default()
    })
    .unwrap();
    let engine = Arc::new(Engine::default());
    let host = DriverHost::new(engine, HostConfig::default());
    let driver = host.load(&so).unwrap();
    let report = driver.unload().unwrap();
    let log: Vec<String> = host.drain_log().into_iter().map(|l| l.text).collect();
    assert_eq!(
        log,
        [
            "nbl: from pool 0x0 handle 1 protocol 2 length 8",
            "nbl: data 5 6",
            "nbl: unknown pool 0xc000000d",
            "nbl: no pool 0x0 handle 1",
        ]
    );
    let texts: Vec<String> = report.findings.iter().map(ToString::to_string).collect();
    let f = &report.findings;
    assert_eq!(f.len(), 5, "{texts:#?}");
    assert!(matches!(
        f[0],
        Finding::BadHandle {
            function: "FwpsAllocateNetBufferAndNetBufferList0"
        }
    ));
    assert!(
        texts[1].contains("NdisFreeNetBufferList: list")
            && texts[1].contains("FwpsFreeNetBufferList0"),
        "{texts:#?}"
    );
    assert!(
        texts[2].contains("FwpsFreeNetBufferList0: list")
            && texts[2].contains("free it with NdisFreeNetBufferList"),
        "{texts:#?}"
    );
    assert!(matches!(
        f[3],
        Finding::DoubleFree {
            what: "FwpsFreeNetBufferList0",
            ..
        }
    ));
    assert!(
        texts[4].contains("NdisFreeNetBufferListPool with 1 NET_BUFFER_LIST(s)"),
        "{texts:#?}"
    );
}
