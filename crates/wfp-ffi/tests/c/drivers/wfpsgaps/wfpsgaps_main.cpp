/* wfpsgaps test driver (ours), entry point: runs the header checks (wfpsgaps_headers.cpp), then the
 * runtime pieces WFPSampler's syslib calls — DPCs pinned with KeSetTargetProcessorDpc to every
 * processor in turn, NdisCopySend/ReceiveNetBufferListInfo, and layer-2 injection, which is refused
 * (no handle has FWPS_INJECTION_TYPE_L2). Prints "ok NAME" / "FAIL NAME". */
#include "wfpsgaps.h"

EXTERN_C DRIVER_INITIALIZE DriverEntry;
DRIVER_UNLOAD WfpsGapsUnload;

struct DPC_PROBE {
   KDPC dpc;
   KEVENT done;
   volatile ULONG ranOn;
   volatile KIRQL irql;
};

static void WfpsGapsDpc(PKDPC dpc, PVOID context, PVOID arg1, PVOID arg2)
{
   UNREFERENCED_PARAMETER(dpc);
   UNREFERENCED_PARAMETER(arg1);
   UNREFERENCED_PARAMETER(arg2);
   DPC_PROBE* probe = (DPC_PROBE*)context;
   probe->ranOn = KeGetCurrentProcessorNumber();
   probe->irql = KeGetCurrentIrql();
   KeSetEvent(&probe->done, IO_NO_INCREMENT, FALSE);
}

/* Queues a DPC targeted at each processor, from PASSIVE_LEVEL and from DISPATCH_LEVEL on another
 * processor's number; each must run where it was targeted. */
static void DpcChecks(void)
{
   static DPC_PROBE probe;
   ULONG count = KeQueryActiveProcessorCount(NULL);
   ULONG good = 0;
   for (ULONG target = 0; target < count; target++) {
      KeInitializeDpc(&probe.dpc, WfpsGapsDpc, &probe);
      KeInitializeEvent(&probe.done, NotificationEvent, FALSE);
      KeSetTargetProcessorDpc(&probe.dpc, (CCHAR)target);
      probe.ranOn = MAXULONG;
      KIRQL old;
      KeRaiseIrql(DISPATCH_LEVEL, &old);
      BOOLEAN queued = KeInsertQueueDpc(&probe.dpc, NULL, NULL);
      KeLowerIrql(old);
      KeWaitForSingleObject(&probe.done, Executive, KernelMode, FALSE, NULL);
      if (queued && probe.ranOn == target && probe.irql == DISPATCH_LEVEL) good++;
      else DbgPrint("dpc target %lu ran on %lu\n", target, probe.ranOn);
   }
   CHECK("dpc_targeted_to_each_processor", count >= 1 && good == count);
   /* Re-initialising drops the target: KeInitializeDpc writes the whole KDPC. */
   KeInitializeDpc(&probe.dpc, WfpsGapsDpc, &probe);
   CHECK("dpc_initialize_clears_target", probe.dpc.Number == 0);
}

static const ULONG sendSlots[] = {0, 1, 2, 4, 5, 6, 7, 12, 13, 15};
static const ULONG receiveSlots[] = {0, 1, 2, 4, 6, 7, 8, 9, 12, 13, 15};

static BOOLEAN InList(const ULONG* list, ULONG n, ULONG slot)
{
   for (ULONG i = 0; i < n; i++) if (list[i] == slot) return TRUE;
   return FALSE;
}

/* Copies between two lists whose slots all differ; exactly the documented slots must arrive. */
static BOOLEAN CopyMatches(BOOLEAN send)
{
   static NET_BUFFER_LIST src, dst;
   for (ULONG i = 0; i < MaxNetBufferListInfo; i++) {
      src.NetBufferListInfo[i] = (PVOID)(ULONG_PTR)(0x100 + i);
      dst.NetBufferListInfo[i] = (PVOID)(ULONG_PTR)(0x200 + i);
   }
   if (send) NdisCopySendNetBufferListInfo(&dst, &src);
   else NdisCopyReceiveNetBufferListInfo(&dst, &src);
   const ULONG* list = send ? sendSlots : receiveSlots;
   ULONG n = send ? RTL_NUMBER_OF(sendSlots) : RTL_NUMBER_OF(receiveSlots);
   for (ULONG i = 0; i < MaxNetBufferListInfo; i++) {
      ULONG_PTR want = InList(list, n, i) ? 0x100 + i : 0x200 + i;
      if ((ULONG_PTR)dst.NetBufferListInfo[i] != want || (ULONG_PTR)src.NetBufferListInfo[i] != 0x100 + i) {
         DbgPrint("slot %lu: %p\n", i, dst.NetBufferListInfo[i]);
         return FALSE;
      }
   }
   return TRUE;
}

static volatile LONG completions;

static void NTAPI WfpsGapsInjectComplete(void* context, NET_BUFFER_LIST* nbl, BOOLEAN dispatchLevel)
{
   UNREFERENCED_PARAMETER(context);
   UNREFERENCED_PARAMETER(nbl);
   UNREFERENCED_PARAMETER(dispatchLevel);
   InterlockedIncrement(&completions);
}

static void InjectionChecks(void)
{
   HANDLE l2 = NULL, transport = NULL;
   NET_BUFFER_LIST* nbl = NULL;
   CHECK("l2_handle_refused",
         FwpsInjectionHandleCreate0(AF_UNSPEC, FWPS_INJECTION_TYPE_L2, &l2) == STATUS_FWP_INVALID_PARAMETER);
   NTSTATUS s = FwpsInjectionHandleCreate0(AF_INET, FWPS_INJECTION_TYPE_TRANSPORT, &transport);
   CHECK("transport_handle", NT_SUCCESS(s));
   s = FwpsAllocateNetBufferAndNetBufferList0(NULL, 0, 0, NULL, 0, 0, &nbl);
   CHECK("nbl_allocated", NT_SUCCESS(s) && nbl != NULL);
   if (!NT_SUCCESS(s)) return;
   CHECK("mac_send_refused", FwpsInjectMacSendAsync0(transport, NULL, 0, FWPS_LAYER_OUTBOUND_MAC_FRAME_ETHERNET, 1, 0,
                                                     nbl, WfpsGapsInjectComplete, NULL) == STATUS_FWP_INVALID_PARAMETER);
   CHECK("mac_receive_refused", FwpsInjectMacReceiveAsync0(transport, NULL, 0, FWPS_LAYER_INBOUND_MAC_FRAME_ETHERNET, 1,
                                                           0, nbl, WfpsGapsInjectComplete, NULL) ==
                                STATUS_FWP_INVALID_PARAMETER);
   BYTE switchId[16] = {1};
   FWP_BYTE_BLOB vSwitchId = {sizeof(switchId), switchId};
   CHECK("vswitch_ingress_refused", FwpsInjectvSwitchEthernetIngressAsync0(transport, NULL, 0, NULL, &vSwitchId, 2, 0,
                                                                          nbl, WfpsGapsInjectComplete, NULL) ==
                                    STATUS_FWP_INVALID_PARAMETER);
   /* The list is still the driver's: freeing it is legal, and no completion ran. */
   FwpsFreeNetBufferList0(nbl);
   CHECK("no_completion", completions == 0);
   FwpsInjectionHandleDestroy0(transport);
}

static void DialectChecks(void)
{
   CHECK("inline_from_other_unit", WfpsGapsRoundUp(13, 8) == 16 && WfpsGapsRelativeTimeout(250) == -2500000LL &&
                                   WfpsGapsMask(12) == 0xFFF && WfpsGapsMask(64) == ~0ULL);
   CHECK("literal_suffixes", WfpsGapsSuffixSum() == 1 + 2 + 3 + 4 + 5 + 100);
   WFPSGAPS_TOS tos = {};
   tos.tosByte = 0xB9; /* DSCP 46, ECN 1 */
   CHECK("anonymous_member_repeat", sizeof(tos) == 2 && tos.ecn == 1 && tos.precedence == 0xB9);
}

void WfpsGapsUnload(PDRIVER_OBJECT DriverObject)
{
   UNREFERENCED_PARAMETER(DriverObject);
}

NTSTATUS DriverEntry(PDRIVER_OBJECT DriverObject, PUNICODE_STRING RegistryPath)
{
   UNREFERENCED_PARAMETER(RegistryPath);
   DriverObject->DriverUnload = WfpsGapsUnload;
   WfpsGapsHeaderChecks();
   DpcChecks();
   CHECK("copy_send_info", CopyMatches(TRUE));
   CHECK("copy_receive_info", CopyMatches(FALSE));
   InjectionChecks();
   DialectChecks();
   DbgPrint("done\n");
   return STATUS_SUCCESS;
}
