/* NDIS clones (NdisAllocateCloneNetBufferList with and without NDIS_CLONE_FLAGS_USE_ORIGINAL_MDLS,
 * ParentNetBufferList / ChildRefCount, clones of clones), NdisGetPoolFromNetBufferList,
 * NET_BUFFER pools (NdisAllocateNetBuffer, NdisAllocateNetBufferMdlAndData, NdisFreeNetBuffer),
 * NdisCopyFromNetBufferToNetBuffer across MDL boundaries and the LSO / checksum info views,
 * inside a driver; prints "ok NAME" / "FAIL NAME" (tests/ndis_clone.rs).
 * With -DMISUSE it also does what the Verifier reports: a parent freed before its clone, a clone
 * freed with other flags, a clone freed twice, an unknown pool handle, a NET_BUFFER freed twice;
 * and leaves the NBL pool, a NET_BUFFER pool and a NET_BUFFER behind. */
#include <ntddk.h>
#include <ndis.h>
#include <fwpsk.h>

#define TAG 'lCtR'
#define CHECK(name, cond) \
    do { if (cond) DbgPrint("ok %s\n", name); else DbgPrint("FAIL %s (line %d)\n", name, __LINE__); } while (0)

static UCHAR A[8] = { 1, 2, 3, 4, 5, 6, 7, 8 };
static UCHAR B[8] = { 9, 10, 11, 12, 13, 14, 15, 16 };

static NDIS_HANDLE NblPool(NDIS_HANDLE generic)
{
    NET_BUFFER_LIST_POOL_PARAMETERS p;
    RtlZeroMemory(&p, sizeof(p));
    p.Header.Type = NDIS_OBJECT_TYPE_DEFAULT;
    p.Header.Revision = NET_BUFFER_LIST_POOL_PARAMETERS_REVISION_1;
    p.Header.Size = NDIS_SIZEOF_NET_BUFFER_LIST_POOL_PARAMETERS_REVISION_1;
    p.ProtocolId = NDIS_PROTOCOL_ID_TCP_IP;
    p.fAllocateNetBuffer = TRUE;
    p.PoolTag = TAG;
    return NdisAllocateNetBufferListPool(generic, &p);
}

static NDIS_HANDLE NbPool(NDIS_HANDLE generic, ULONG dataSize)
{
    NET_BUFFER_POOL_PARAMETERS p;
    RtlZeroMemory(&p, sizeof(p));
    p.Header.Type = NDIS_OBJECT_TYPE_DEFAULT;
    p.Header.Revision = NET_BUFFER_POOL_PARAMETERS_REVISION_1;
    p.Header.Size = NDIS_SIZEOF_NET_BUFFER_POOL_PARAMETERS_REVISION_1;
    p.PoolTag = TAG;
    p.DataSize = dataSize;
    return NdisAllocateNetBufferPool(generic, &p);
}

static ULONG Sum(PNET_BUFFER nb)
{
    UCHAR tmp[16];
    PUCHAR d = (PUCHAR)NdisGetDataBuffer(nb, NET_BUFFER_DATA_LENGTH(nb), tmp, 1, 0);
    ULONG s = 0;
    for (ULONG i = 0; d && i < NET_BUFFER_DATA_LENGTH(nb); i++) s = s * 31 + d[i];
    return s;
}

static void Clones(NDIS_HANDLE pool, PMDL chain)
{
    /* 12 bytes from offset 2: 3..8 in A, 9..14 in B. */
    PNET_BUFFER_LIST l = NdisAllocateNetBufferAndNetBufferList(pool, 0, 0, chain, 2, 12);
    CHECK("pool from list", NdisGetPoolFromNetBufferList(l) == pool);
    PNET_BUFFER_LIST c = NdisAllocateCloneNetBufferList(l, NULL, NULL, 0);
    PNET_BUFFER cn = c ? NET_BUFFER_LIST_FIRST_NB(c) : NULL;
    CHECK("clone parent and child count", c && c->ParentNetBufferList == l && l->ChildRefCount == 1);
    CHECK("clone starts at the data start with new MDLs",
          cn && NET_BUFFER_DATA_OFFSET(cn) == 0 && NET_BUFFER_DATA_LENGTH(cn) == 12 &&
          NET_BUFFER_FIRST_MDL(cn) != chain && MmGetMdlVirtualAddress(NET_BUFFER_FIRST_MDL(cn)) == A + 2 &&
          MmGetMdlByteCount(NET_BUFFER_FIRST_MDL(cn)) == 6 && NET_BUFFER_FIRST_MDL(cn)->Next &&
          MmGetMdlVirtualAddress(NET_BUFFER_FIRST_MDL(cn)->Next) == B);
    CHECK("clone shares the data", cn && Sum(cn) == Sum(NET_BUFFER_LIST_FIRST_NB(l)));
    A[2] = 42;
    CHECK("a write to the original is seen through the clone",
          cn && ((PUCHAR)MmGetSystemAddressForMdlSafe(NET_BUFFER_FIRST_MDL(cn), NormalPagePriority))[0] == 42);
    A[2] = 3;
    CHECK("clone without a pool has none", c && NdisGetPoolFromNetBufferList(c) == NULL);
    PNET_BUFFER_LIST o = NdisAllocateCloneNetBufferList(l, pool, NULL, NDIS_CLONE_FLAGS_USE_ORIGINAL_MDLS);
    PNET_BUFFER on = o ? NET_BUFFER_LIST_FIRST_NB(o) : NULL;
    CHECK("USE_ORIGINAL_MDLS shares the MDL chain", on && NET_BUFFER_CURRENT_MDL(on) == chain &&
          NET_BUFFER_CURRENT_MDL_OFFSET(on) == 2 && NET_BUFFER_DATA_LENGTH(on) == 12 && l->ChildRefCount == 2);
    CHECK("clone from a pool carries it and its protocol", o && NdisGetPoolFromNetBufferList(o) == pool &&
          *(PUCHAR)&NET_BUFFER_LIST_INFO(o, NetBufferListProtocolId) == NDIS_PROTOCOL_ID_TCP_IP);
    PNET_BUFFER_LIST cc = c ? NdisAllocateCloneNetBufferList(c, NULL, NULL, 0) : NULL;
    CHECK("clone of a clone", cc && cc->ParentNetBufferList == c && c->ChildRefCount == 1 && l->ChildRefCount == 2 &&
          Sum(NET_BUFFER_LIST_FIRST_NB(cc)) == Sum(NET_BUFFER_LIST_FIRST_NB(l)));
    if (cc) NdisFreeCloneNetBufferList(cc, 0);
    CHECK("freeing a clone of a clone", c && c->ChildRefCount == 0);
    if (o) NdisFreeCloneNetBufferList(o, NDIS_CLONE_FLAGS_USE_ORIGINAL_MDLS);
    if (c) NdisFreeCloneNetBufferList(c, 0);
    CHECK("freeing the clones", l->ChildRefCount == 0);

    /* An Fwps list can be cloned by NDIS too. */
    NET_BUFFER_LIST *f = NULL;
    NTSTATUS s = FwpsAllocateNetBufferAndNetBufferList0(NULL, 0, 0, chain, 0, 16, &f);
    PNET_BUFFER_LIST fc = NT_SUCCESS(s) ? NdisAllocateCloneNetBufferList(f, NULL, NULL, 0) : NULL;
    CHECK("NDIS clone of an Fwps list", fc && fc->ParentNetBufferList == f && f->ChildRefCount == 1 &&
          NET_BUFFER_DATA_LENGTH(NET_BUFFER_LIST_FIRST_NB(fc)) == 16);
    if (fc) NdisFreeCloneNetBufferList(fc, 0);

    /* FwpsAllocateCloneNetBufferList0 clones count in their parent's ChildRefCount too, until
     * FwpsFreeCloneNetBufferList0 (a clone of a clone counts in the clone only). */
    NET_BUFFER_LIST *wc = NULL, *wcc = NULL;
    if (f) FwpsAllocateCloneNetBufferList0(f, NULL, NULL, 0, &wc);
    if (wc) FwpsAllocateCloneNetBufferList0(wc, NULL, NULL, 0, &wcc);
    CHECK("Fwps clones count in ChildRefCount", wc && wcc && wc->ParentNetBufferList == f &&
          wcc->ParentNetBufferList == wc && f->ChildRefCount == 1 && wc->ChildRefCount == 1);
    if (wcc) FwpsFreeCloneNetBufferList0(wcc, 0);
    if (wc) FwpsFreeCloneNetBufferList0(wc, 0);
    CHECK("freeing Fwps clones gives the count back", f && f->ChildRefCount == 0);

    /* Fragments of f's 16 bytes from offset 2, at most 5 each, retreated by 4 (backfill 2 more),
     * then reassembled skipping those 4 bytes: f's bytes 3..16 again. */
    PNET_BUFFER_LIST frag = f ? NdisAllocateFragmentNetBufferList(f, NULL, NULL, 2, 5, 4, 2, 0) : NULL;
    PNET_BUFFER n1 = frag ? NET_BUFFER_LIST_FIRST_NB(frag) : NULL;
    PNET_BUFFER n2 = n1 ? NET_BUFFER_NEXT_NB(n1) : NULL;
    PNET_BUFFER n3 = n2 ? NET_BUFFER_NEXT_NB(n2) : NULL;
    UCHAR got[16] = {0};
    PUCHAR p3 = n3 ? NdisGetDataBuffer(n3, 8, got, 1, 0) : NULL;
    CHECK("fragments", frag && frag->ParentNetBufferList == f && f->ChildRefCount == 1 && n3 &&
          !NET_BUFFER_NEXT_NB(n3) && NET_BUFFER_DATA_LENGTH(n1) == 9 && NET_BUFFER_DATA_LENGTH(n2) == 9 &&
          NET_BUFFER_DATA_LENGTH(n3) == 8 && NET_BUFFER_DATA_OFFSET(n1) == 2 && NET_BUFFER_CURRENT_MDL_OFFSET(n2) == 2 &&
          p3 && p3[0] == 0 && p3[3] == 0 && p3[4] == 13 && p3[7] == 16);
    PNET_BUFFER_LIST whole = frag ? NdisAllocateReassembledNetBufferList(frag, NULL, 4, 0, 0, 0) : NULL;
    PNET_BUFFER wn = whole ? NET_BUFFER_LIST_FIRST_NB(whole) : NULL;
    PUCHAR w = wn ? NdisGetDataBuffer(wn, 14, got, 1, 0) : NULL;
    int same = w != NULL;
    for (int i = 0; same && i < 14; i++) same = w[i] == i + 3;
    CHECK("reassembled", whole && wn && !NET_BUFFER_NEXT_NB(wn) && NET_BUFFER_DATA_LENGTH(wn) == 14 && same &&
          whole->ParentNetBufferList == frag && frag->ChildRefCount == 1);
    if (whole) NdisFreeReassembledNetBufferList(whole, 0, 0);
    if (frag) NdisFreeFragmentNetBufferList(frag, 4, 0);
    CHECK("fragments freed", f && f->ChildRefCount == 0);

    /* NdisCopySend/ReceiveNetBufferListInfo copy their documented slots only. */
    NET_BUFFER_LIST *ia = NULL, *ib = NULL, *ic = NULL;
    FwpsAllocateNetBufferAndNetBufferList0(NULL, 0, 0, chain, 0, 4, &ia);
    FwpsAllocateNetBufferAndNetBufferList0(NULL, 0, 0, chain, 0, 4, &ib);
    FwpsAllocateNetBufferAndNetBufferList0(NULL, 0, 0, chain, 0, 4, &ic);
    if (ia && ib && ic) {
        for (int i = 0; i < MaxNetBufferListInfo; i++) NET_BUFFER_LIST_INFO(ia, i) = (PVOID)(ULONG_PTR)(100 + i);
        NdisCopySendNetBufferListInfo(ib, ia);
        NdisCopyReceiveNetBufferListInfo(ic, ia);
    }
    CHECK("send info copied", ia && ib && NET_BUFFER_LIST_INFO(ib, TcpIpChecksumNetBufferListInfo) == (PVOID)100 &&
          NET_BUFFER_LIST_INFO(ib, NetBufferListCancelId) == (PVOID)105 &&
          NET_BUFFER_LIST_INFO(ib, NetBufferListFilteringInfo) == (PVOID)115 &&
          NET_BUFFER_LIST_INFO(ib, NetBufferListHashValue) == NULL && NET_BUFFER_LIST_INFO(ib, WfpNetBufferListInfo) == NULL);
    CHECK("receive info copied", ic && NET_BUFFER_LIST_INFO(ic, NetBufferListHashValue) == (PVOID)108 &&
          NET_BUFFER_LIST_INFO(ic, NetBufferListHashInfo) == (PVOID)109 && NET_BUFFER_LIST_INFO(ic, NetBufferListCancelId) == NULL &&
          NET_BUFFER_LIST_INFO(ic, ClassificationHandleNetBufferListInfo) == NULL);
    if (ia) FwpsFreeNetBufferList0(ia);
    if (ib) FwpsFreeNetBufferList0(ib);
    if (ic) FwpsFreeNetBufferList0(ic);
#ifdef MISUSE
    NET_BUFFER_LIST *early = NULL;
    if (f) FwpsAllocateCloneNetBufferList0(f, NULL, NULL, 0, &early);
    if (f) FwpsFreeNetBufferList0(f);         /* parent freed before its Fwps clone: finding */
    if (early) FwpsFreeCloneNetBufferList0(early, 0); /* no longer counted: nothing to give back */
#else
    if (f) FwpsFreeNetBufferList0(f);
#endif
#ifdef MISUSE
    PNET_BUFFER_LIST orphan = NdisAllocateCloneNetBufferList(l, NULL, NULL, 0);
    NdisFreeNetBufferList(l);                 /* parent freed before its clone: finding */
    NdisFreeCloneNetBufferList(orphan, NDIS_CLONE_FLAGS_USE_ORIGINAL_MDLS); /* flags differ: finding */
    NdisFreeCloneNetBufferList(orphan, 0);    /* double free: finding */
    CHECK("unknown pool refused", NdisAllocateCloneNetBufferList(l, (NDIS_HANDLE)0x77, NULL, 0) == NULL);
    return;
#else
    NdisFreeNetBufferList(l);
#endif
}

static void NetBuffers(NDIS_HANDLE generic, PMDL chain)
{
    NDIS_HANDLE plain = NbPool(generic, 0), data = NbPool(generic, 32);
    CHECK("NET_BUFFER pools", plain && data);
    CHECK("bad NET_BUFFER pool parameters refused", ({
        NET_BUFFER_POOL_PARAMETERS bad;
        RtlZeroMemory(&bad, sizeof(bad));
        NdisAllocateNetBufferPool(generic, &bad) == NULL;
    }));
    PNET_BUFFER nb = NdisAllocateNetBuffer(plain, chain, 5, 6);
    CHECK("NdisAllocateNetBuffer", nb && NET_BUFFER_FIRST_MDL(nb) == chain && NET_BUFFER_DATA_OFFSET(nb) == 5 &&
          NET_BUFFER_CURRENT_MDL(nb) == chain && NET_BUFFER_CURRENT_MDL_OFFSET(nb) == 5 &&
          NET_BUFFER_DATA_LENGTH(nb) == 6 && nb->NdisPoolHandle == plain);
    CHECK("MdlAndData needs a DataSize", NdisAllocateNetBufferMdlAndData(plain) == NULL);
    PNET_BUFFER own = NdisAllocateNetBufferMdlAndData(data);
    CHECK("NdisAllocateNetBufferMdlAndData", own && NET_BUFFER_DATA_LENGTH(own) == 32 && NET_BUFFER_FIRST_MDL(own) &&
          MmGetMdlByteCount(NET_BUFFER_FIRST_MDL(own)) == 32 && NET_BUFFER_DATA_OFFSET(own) == 0);
    ULONG copied = 99;
    NDIS_STATUS s = own && nb ? NdisCopyFromNetBufferToNetBuffer(own, 4, 6, nb, 0, &copied) : NDIS_STATUS_FAILURE;
    PUCHAR dst = own ? (PUCHAR)MmGetSystemAddressForMdlSafe(NET_BUFFER_FIRST_MDL(own), NormalPagePriority) : NULL;
    CHECK("copy across the source's MDLs", s == NDIS_STATUS_SUCCESS && copied == 6 && dst && dst[3] == 0 &&
          dst[4] == 6 && dst[6] == 8 && dst[7] == 9 && dst[9] == 11 && dst[10] == 0 &&
          NET_BUFFER_DATA_LENGTH(own) == 32);
    s = own && nb ? NdisCopyFromNetBufferToNetBuffer(own, 0, 100, nb, 2, &copied) : NDIS_STATUS_FAILURE;
    CHECK("copy stops at the source's data end", s == NDIS_STATUS_SUCCESS && copied == 4 && dst && dst[0] == 8 && dst[3] == 11);
    s = own && nb ? NdisCopyFromNetBufferToNetBuffer(nb, 0, 100, own, 0, &copied) : NDIS_STATUS_FAILURE;
    CHECK("copy stops at the destination's MDL end", s == NDIS_STATUS_SUCCESS && copied == 11 && A[5] == 8 && B[7] == 0);
    RtlCopyMemory(A, "\x01\x02\x03\x04\x05\x06\x07\x08", 8);
    RtlCopyMemory(B, "\x09\x0a\x0b\x0c\x0d\x0e\x0f\x10", 8);
    s = own && nb ? NdisCopyFromNetBufferToNetBuffer(own, 40, 4, nb, 0, &copied) : NDIS_STATUS_FAILURE;
    CHECK("copy past the destination copies nothing", s == NDIS_STATUS_SUCCESS && copied == 0);
    if (nb) NdisFreeNetBuffer(nb);
    if (own) NdisFreeNetBuffer(own);
#ifdef MISUSE
    NdisFreeNetBuffer(nb);                     /* double free: finding */
    NdisAllocateNetBufferMdlAndData(data);     /* left behind with its pool */
    NdisFreeNetBufferPool(plain);
#else
    NdisFreeNetBufferPool(plain);
    NdisFreeNetBufferPool(data);
#endif
}

static void Infos(void)
{
    NDIS_TCP_LARGE_SEND_OFFLOAD_NET_BUFFER_LIST_INFO lso;
    lso.Value = NULL;
    lso.LsoV2Transmit.MSS = 1460;
    lso.LsoV2Transmit.TcpHeaderOffset = 20;
    lso.LsoV2Transmit.Type = NDIS_TCP_LARGE_SEND_OFFLOAD_V2_TYPE;
    lso.LsoV2Transmit.IPVersion = NDIS_TCP_LARGE_SEND_OFFLOAD_IPv6;
    CHECK("LSO info bits", ((ULONG_PTR)lso.Value & 0xFFFFF) == 1460 &&
          (((ULONG_PTR)lso.Value >> 20) & 0x3FF) == 20 && (((ULONG_PTR)lso.Value >> 30) & 3) == 3);
    NDIS_TCP_IP_CHECKSUM_NET_BUFFER_LIST_INFO ck;
    ck.Value = NULL;
    ck.Receive.TcpChecksumSucceeded = 1;
    ck.Receive.IpChecksumSucceeded = 1;
    CHECK("checksum info bits", (ULONG_PTR)ck.Value == 0x28);
}

NTSTATUS DriverEntry(PDRIVER_OBJECT d, PUNICODE_STRING r)
{
    UNREFERENCED_PARAMETER(r);
    NDIS_HANDLE generic = NdisAllocateGenericObject(d, TAG, 0);
    NDIS_HANDLE pool = NblPool(generic);
    PMDL a = IoAllocateMdl(A, sizeof(A), FALSE, FALSE, NULL);
    PMDL b = IoAllocateMdl(B, sizeof(B), FALSE, FALSE, NULL);
    MmBuildMdlForNonPagedPool(a);
    MmBuildMdlForNonPagedPool(b);
    a->Next = b;
    Clones(pool, a);
    NetBuffers(generic, a);
    Infos();
#ifndef MISUSE
    NdisFreeNetBufferListPool(pool);
    NdisFreeGenericObject(generic);
    IoFreeMdl(a);
    IoFreeMdl(b);
#endif
    DbgPrint("done\n");
    return STATUS_SUCCESS;
}
