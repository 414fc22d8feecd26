/* NDIS pools, NBLs with context space, generic objects and MmGetSystemAddressForMdlSafe inside a
 * driver; prints "ok NAME" / "FAIL NAME" (tests/runtime.rs). With -DLEAK it leaves a pool, an NBL
 * and a generic object behind. */
#include <ntddk.h>
#include <ndis.h>

#define TAG 'lbNt'
#define CHECK(name, cond) \
    do { if (cond) DbgPrint("ok %s\n", name); else DbgPrint("FAIL %s (line %d)\n", name, __LINE__); } while (0)

static UCHAR Data[64];

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
    CHECK("context data size", NET_BUFFER_LIST_CONTEXT_DATA_SIZE(nbl) == 24);
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

#ifndef LEAK
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
