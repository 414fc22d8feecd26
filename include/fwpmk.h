/* wfp-ddk fwpmk.h: kernel-mode management acting on the hosting engine (wfp-reference.md §11,
 * wdk-runtime.md §7). An engine handle opened with FWPM_SESSION_FLAG_DYNAMIC owns what it adds:
 * closing it (or unloading the driver) deletes those objects. FWPM_LAYER_* / FWPM_CONDITION_* /
 * FWPM_SUBLAYER_* GUIDs are in wfp/fwpm_guids.h (generated from the engine's catalogue). */
#ifndef WFP_DDK_FWPMK_H
#define WFP_DDK_FWPMK_H
#include "fwpmtypes.h"
/* The WDK resolves the FWPM_* GUIDs without INITGUID from fwpkclnt.lib; here each image gets
 * weak (selectany) copies, whether or not the source defines INITGUID. */
#define WFP_DDK_DEFINE_GUIDS
#include "wfp/fwpm_guids.h"
#undef WFP_DDK_DEFINE_GUIDS
#include "guiddef.h"
WFP_BEGIN_DECLS
NTSTATUS FwpmEngineOpen0(const WCHAR *serverName, UINT32 authnService, SEC_WINNT_AUTH_IDENTITY_W *authIdentity,
                         const FWPM_SESSION0 *session, HANDLE *engineHandle);
NTSTATUS FwpmEngineClose0(HANDLE engineHandle);
NTSTATUS FwpmTransactionBegin0(HANDLE engineHandle, UINT32 flags);
NTSTATUS FwpmTransactionCommit0(HANDLE engineHandle);
NTSTATUS FwpmTransactionAbort0(HANDLE engineHandle);
NTSTATUS FwpmProviderAdd0(HANDLE engineHandle, const FWPM_PROVIDER0 *provider, PSECURITY_DESCRIPTOR sd);
NTSTATUS FwpmSubLayerAdd0(HANDLE engineHandle, const FWPM_SUBLAYER0 *subLayer, PSECURITY_DESCRIPTOR sd);
NTSTATUS FwpmSubLayerDeleteByKey0(HANDLE engineHandle, const GUID *key);
NTSTATUS FwpmCalloutAdd0(HANDLE engineHandle, const FWPM_CALLOUT0 *callout, PSECURITY_DESCRIPTOR sd, UINT32 *id);
NTSTATUS FwpmCalloutDeleteById0(HANDLE engineHandle, UINT32 id);
NTSTATUS FwpmCalloutDeleteByKey0(HANDLE engineHandle, const GUID *key);
NTSTATUS FwpmFilterAdd0(HANDLE engineHandle, const FWPM_FILTER0 *filter, PSECURITY_DESCRIPTOR sd, UINT64 *id);
NTSTATUS FwpmFilterDeleteById0(HANDLE engineHandle, UINT64 id);
NTSTATUS FwpmFilterDeleteByKey0(HANDLE engineHandle, const GUID *key);
NTSTATUS FwpmProviderContextAdd0(HANDLE engineHandle, const FWPM_PROVIDER_CONTEXT0 *providerContext,
                                 PSECURITY_DESCRIPTOR sd, UINT64 *id);
NTSTATUS FwpmProviderContextAdd1(HANDLE engineHandle, const FWPM_PROVIDER_CONTEXT1 *providerContext,
                                 PSECURITY_DESCRIPTOR sd, UINT64 *id);
NTSTATUS FwpmProviderContextAdd2(HANDLE engineHandle, const FWPM_PROVIDER_CONTEXT2 *providerContext,
                                 PSECURITY_DESCRIPTOR sd, UINT64 *id);
NTSTATUS FwpmProviderContextAdd3(HANDLE engineHandle, const FWPM_PROVIDER_CONTEXT3 *providerContext,
                                 PSECURITY_DESCRIPTOR sd, UINT64 *id);
NTSTATUS FwpmProviderContextDeleteById0(HANDLE engineHandle, UINT64 id);
NTSTATUS FwpmProviderContextDeleteByKey0(HANDLE engineHandle, const GUID *key);
NTSTATUS FwpmProviderContextGetByKey0(HANDLE engineHandle, const GUID *key,
                                      FWPM_PROVIDER_CONTEXT0 **providerContext);
void FwpmFreeMemory0(void **p);
/* The engine runs in the host process for the host's lifetime: FwpmBfeStateGet0 is
 * FWPM_SERVICE_RUNNING whenever a driver can call it, and a subscriber's callback is never called
 * (the state never changes while the driver is loaded). A subscription must be ended with
 * FwpmBfeStateUnsubscribeChanges0; one left at unload is a Verifier finding. */
typedef void (*FWPM_SERVICE_STATE_CHANGE_CALLBACK0)(void *context, FWPM_SERVICE_STATE newState);
FWPM_SERVICE_STATE FwpmBfeStateGet0(void);
NTSTATUS FwpmBfeStateSubscribeChanges0(void *deviceObject, FWPM_SERVICE_STATE_CHANGE_CALLBACK0 callback,
                                       void *context, HANDLE *changeHandle);
NTSTATUS FwpmBfeStateUnsubscribeChanges0(HANDLE changeHandle);
#define FwpmBfeStateGet FwpmBfeStateGet0
#define FwpmBfeStateSubscribeChanges FwpmBfeStateSubscribeChanges0
#define FwpmBfeStateUnsubscribeChanges FwpmBfeStateUnsubscribeChanges0
#define FwpmEngineOpen FwpmEngineOpen0
#define FwpmEngineClose FwpmEngineClose0
#define FwpmTransactionBegin FwpmTransactionBegin0
#define FwpmTransactionCommit FwpmTransactionCommit0
#define FwpmTransactionAbort FwpmTransactionAbort0
#define FwpmProviderAdd FwpmProviderAdd0
#define FwpmSubLayerAdd FwpmSubLayerAdd0
#define FwpmSubLayerDeleteByKey FwpmSubLayerDeleteByKey0
#define FwpmCalloutAdd FwpmCalloutAdd0
#define FwpmCalloutDeleteById FwpmCalloutDeleteById0
#define FwpmCalloutDeleteByKey FwpmCalloutDeleteByKey0
#define FwpmFilterAdd FwpmFilterAdd0
#define FwpmFilterDeleteById FwpmFilterDeleteById0
#define FwpmFilterDeleteByKey FwpmFilterDeleteByKey0
#define FwpmFreeMemory FwpmFreeMemory0
#define FwpmProviderContextAdd FwpmProviderContextAdd3
#define FwpmProviderContextDeleteById FwpmProviderContextDeleteById0
#define FwpmProviderContextDeleteByKey FwpmProviderContextDeleteByKey0
WFP_END_DECLS
#endif
