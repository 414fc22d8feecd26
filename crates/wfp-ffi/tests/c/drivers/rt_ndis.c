/* NDIS pools, NBLs with context space (NET_BUFFER_LIST_CONTEXT: preallocated by the pool, by the
 * allocation, by FwpsAllocateNetBufferAndNetBufferList0, grown and shrunk with
 * NdisAllocateNetBufferListContext / NdisFreeNetBufferListContext), generic objects and
 * MmGetSystemAddressForMdlSafe inside a driver; prints "ok NAME" / "FAIL NAME" (tests/runtime.rs).
 * With -DLEAK it leaves a pool, an NBL (with added context space) and a generic object behind. */
#include <ntddk.h>
#include <ndis.h>
#include <fwpsk.h>

#define TAG 'lbNt'
#define CHECK(name, cond) \
    do { if (cond) DbgPrint("ok %s\n", name); else DbgPrint("FAIL %s (line %d)\n", name, __LINE__); } while (0)

static UCHAR Data[64];

/* NET_BUFFER_LIST_CONTEXT space: the pool's preallocated block, growing into its unused front and
 * past it (a new block in front of the chain), shrinking back; the same on an Fwps list. */
static void ContextSpace(NDIS_HANDLE generic, const NET_BUFFER_LIST_POOL_PARAMETERS *p, PMDL mdl)
{
    NET_BUFFER_LIST_POOL_PARAMETERS c = *p;
    c.Header.Revision = NET_BUFFER_LIST_POOL_PARAMETERS_REVISION_1;
    c.ContextSize = 64;
    NDIS_HANDLE pool = NdisAllocateNetBufferListPool(generic, &c);
    PNET_BUFFER_LIST l = pool ? NdisAllocateNetBufferList(pool, 16, 0) : NULL;
    CHECK("pool ContextSize preallocates", l && l->Context && l->Context->Size == 64 && l->Context->Offset == 48);
    if (l == NULL) return;
    PUCHAR start = NET_BUFFER_LIST_CONTEXT_DATA_START(l);
    NDIS_STATUS s = NdisAllocateNetBufferListContext(l, 32, 0, TAG);
    CHECK("context grows into the unused front", s == NDIS_STATUS_SUCCESS && l->Context->Offset == 16 &&
          NET_BUFFER_LIST_CONTEXT_DATA_START(l) == start - 32);
    RtlFillMemory(NET_BUFFER_LIST_CONTEXT_DATA_START(l), 32, 0xAB);
    PNET_BUFFER_LIST_CONTEXT pre = l->Context;
    s = NdisAllocateNetBufferListContext(l, 32, 16, TAG);
    CHECK("context past the block: a new block in front", s == NDIS_STATUS_SUCCESS && l->Context != pre &&
          l->Context->Next == pre && l->Context->Size == 48 && l->Context->Offset == 16);
    RtlFillMemory(NET_BUFFER_LIST_CONTEXT_DATA_START(l), 32, 0xCD);
    CHECK("misaligned context size refused", NdisAllocateNetBufferListContext(l, 12, 0, TAG) == NDIS_STATUS_INVALID_PARAMETER);
    NdisFreeNetBufferListContext(l, 32);
    CHECK("freeing the added block restores the chain", l->Context == pre && pre->Offset == 16 &&
          NET_BUFFER_LIST_CONTEXT_DATA_START(l)[0] == 0xAB && NET_BUFFER_LIST_CONTEXT_DATA_START(l)[31] == 0xAB);
    NdisFreeNetBufferListContext(l, 32);
    CHECK("freeing within the preallocated block", l->Context == pre && pre->Offset == 48);

    NET_BUFFER_LIST *f = NULL;
    NTSTATUS fs = FwpsAllocateNetBufferAndNetBufferList0(NULL, 16, 16, mdl, 0, 8, &f);
    CHECK("FwpsAllocateNetBufferAndNetBufferList0 preallocates contextSize + contextBackFill",
          NT_SUCCESS(fs) && f->Context && f->Context->Size == 32 && f->Context->Offset == 16);
    NET_BUFFER_LIST *g = NULL;
    CHECK("FwpsAllocateNetBufferAndNetBufferList0 refuses a misaligned contextSize",
          FwpsAllocateNetBufferAndNetBufferList0(NULL, 4, 0, mdl, 0, 8, &g) == STATUS_INVALID_PARAMETER);
    if (NT_SUCCESS(fs)) {
        s = NdisAllocateNetBufferListContext(f, 64, 0, TAG);
        CHECK("context added to an Fwps list", s == NDIS_STATUS_SUCCESS && f->Context->Size == 64);
        RtlFillMemory(NET_BUFFER_LIST_CONTEXT_DATA_START(f), 64, 0x11);
        NdisFreeNetBufferListContext(f, 64);
        FwpsFreeNetBufferList0(f);
    }
    NdisFreeNetBufferList(l);
    NdisFreeNetBufferListPool(pool);
}

NTSTATUS DriverEntry(PDRIVER_OBJECT DriverObject, PUNICODE_STRING RegistryPath)
{
    UNREFERENCED_PARAMETER(RegistryPath);
    NDIS_HANDLE generic = NdisAllocateGenericObject(DriverObject, TAG, 16);
    CHECK("NdisAllocateGenericObject", generic != NULL && ((PNDIS_GENERIC_OBJECT)generic)->DriverObject == DriverObject);

    NET_BUFFER_LIST_POOL_PARAMETERS p;
    RtlZeroMemory(&p, sizeof(p));
    p.Header.Type = NDIS_OBJECT_TYPE_DEFAULT;
    p.Header.Revision = NET_BUFFER_LIST_POOL_PARAMETERS_REVISION_1;
    p.Header.Size = NDIS_SIZEOF_NET_BUFFER_LIST_POOL_PARAMETERS_REVISION_1;
    p.ProtocolId = NDIS_PROTOCOL_ID_TCP_IP;
    p.fAllocateNetBuffer = TRUE;
    p.PoolTag = TAG;
    NDIS_HANDLE pool = NdisAllocateNetBufferListPool(generic, &p);
    CHECK("NdisAllocateNetBufferListPool", pool != NULL);
    p.Header.Revision = 0;
    CHECK("bad header -> NULL", NdisAllocateNetBufferListPool(generic, &p) == NULL);

    for (int i = 0; i < 64; i++) Data[i] = (UCHAR)i;
    PMDL first = IoAllocateMdl(Data, 16, FALSE, FALSE, NULL);
    PMDL second = IoAllocateMdl(Data + 16, 48, FALSE, FALSE, NULL);
    MmBuildMdlForNonPagedPool(first);
    MmBuildMdlForNonPagedPool(second);
    first->Next = second;
    CHECK("MmGetSystemAddressForMdlSafe", MmGetSystemAddressForMdlSafe(second, NormalPagePriority | MdlMappingNoExecute) == Data + 16);

    PNET_BUFFER_LIST nbl = NdisAllocateNetBufferAndNetBufferList(pool, 24, 8, first, 20, 40);
    CHECK("NdisAllocateNetBufferAndNetBufferList", nbl != NULL && NET_BUFFER_LIST_FIRST_NB(nbl) != NULL);
    PNET_BUFFER nb = NET_BUFFER_LIST_FIRST_NB(nbl);
    CHECK("NET_BUFFER data offset and length", NET_BUFFER_DATA_OFFSET(nb) == 20 && NET_BUFFER_DATA_LENGTH(nb) == 40);
    CHECK("current MDL located", NET_BUFFER_CURRENT_MDL(nb) == second && NET_BUFFER_CURRENT_MDL_OFFSET(nb) == 4);
    UCHAR storage[8];
    UCHAR *d = NdisGetDataBuffer(nb, 8, storage, 1, 0);
    CHECK("NdisGetDataBuffer reads at the data start", d != NULL && d[0] == 20 && d[7] == 27);
    /* DATA_SIZE is the block's Size: all of its context space, used (24) and unused (8). */
    CHECK("context data size", NET_BUFFER_LIST_CONTEXT_DATA_SIZE(nbl) == 32 && nbl->Context->Offset == 8);
    PUCHAR ctx = NET_BUFFER_LIST_CONTEXT_DATA_START(nbl);
    RtlFillMemory(ctx, 24, 0xEE);
    CHECK("context data after the backfill, 16-aligned start", ((ULONG_PTR)ctx & 7) == 0);
    CHECK("pool handle and protocol id", nbl->NdisPoolHandle == pool && *(PUCHAR)&NET_BUFFER_LIST_INFO(nbl, NetBufferListProtocolId) == NDIS_PROTOCOL_ID_TCP_IP);
    PNET_BUFFER_LIST bare = NdisAllocateNetBufferList(pool, 0, 0);
    CHECK("NdisAllocateNetBufferList", bare != NULL && NET_BUFFER_LIST_FIRST_NB(bare) == NULL && bare->Context == NULL);
    NdisFreeNetBufferList(bare);

    NET_BUFFER_LIST_POOL_PARAMETERS q = p;
    q.Header.Revision = NET_BUFFER_LIST_POOL_PARAMETERS_REVISION_1;
    q.fAllocateNetBuffer = FALSE;
    NDIS_HANDLE nbless = NdisAllocateNetBufferListPool(NULL, &q);
    CHECK("NB-less pool refuses NdisAllocateNetBufferAndNetBufferList", NdisAllocateNetBufferAndNetBufferList(nbless, 0, 0, first, 0, 1) == NULL);
    NdisFreeNetBufferListPool(nbless);

    ContextSpace(generic, &p, first);

#ifdef LEAK
    NdisAllocateNetBufferListContext(nbl, 64, 0, TAG);
#else
    NdisFreeNetBufferList(nbl);
    NdisFreeNetBufferListPool(pool);
    NdisFreeGenericObject(generic);
#endif
    first->Next = NULL;
    IoFreeMdl(first);
    IoFreeMdl(second);
    DbgPrint("done\n");
    return STATUS_SUCCESS;
}
