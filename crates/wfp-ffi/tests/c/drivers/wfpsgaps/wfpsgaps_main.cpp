/* wfpsgaps test driver (ours), entry point: runs the header checks (wfpsgaps_headers.cpp), layer-2
 * injection as WFPSampler's basic packet injection calls it — refused, as no handle has
 * FWPS_INJECTION_TYPE_L2 — and the MSVC dialect checks (wfpsgaps_util.cpp). Prints "ok NAME" /
 * "FAIL NAME". */
#include "wfpsgaps.h"

EXTERN_C DRIVER_INITIALIZE DriverEntry;
DRIVER_UNLOAD WfpsGapsUnload;

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
   InjectionChecks();
   DialectChecks();
   DbgPrint("done\n");
   return STATUS_SUCCESS;
}
