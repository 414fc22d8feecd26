/* wfp-ddk wdf.h: the KMDF subset a callout driver's entry point uses (wdk-runtime.md §8): a non-PnP
 * driver, a control device (name, symbolic link, type, characteristics, class), the Parameters
 * registry key (values from the driver's configured parameters: `--driver-param NAME=VALUE`),
 * object contexts, I/O queues (default and others, request dispatching and forwarding, manual
 * queues, start / stop / purge, synchronization scopes) reachable through the host's ioctl / read /
 * write and other drivers' IRPs, request parameters and buffers. The documented signatures are plain functions here (no
 * WdfFunctions table); implemented by the wfp-ffi runtime (docs/c-abi.md). */
#ifndef WFP_DDK_WDF_H
#define WFP_DDK_WDF_H
#include "ntddk.h"
#include "wdmsec.h"
WFP_BEGIN_DECLS

#ifndef KMDF_VERSION_MAJOR
#define KMDF_VERSION_MAJOR 1
#endif
#ifndef KMDF_VERSION_MINOR
#define KMDF_VERSION_MINOR 33
#endif

typedef struct WDFDRIVER__ *WDFDRIVER;
typedef struct WDFDEVICE__ *WDFDEVICE;
typedef struct WDFQUEUE__ *WDFQUEUE;
typedef struct WDFREQUEST__ *WDFREQUEST;
typedef struct WDFMEMORY__ *WDFMEMORY;
typedef struct WDFKEY__ *WDFKEY;
typedef struct WDFWAITLOCK__ *WDFWAITLOCK;
typedef struct WDFSTRING__ *WDFSTRING;
typedef void *WDFOBJECT;
typedef struct WDFDEVICE_INIT *PWDFDEVICE_INIT;

#define WDF_NO_OBJECT_ATTRIBUTES NULL
#define WDF_NO_EVENT_CALLBACK NULL
#define WDF_NO_HANDLE NULL
#define WDF_NO_CONTEXT NULL
#define WDF_NO_SEND_OPTIONS NULL
#define WDF_STRUCTURE_SIZE(_s) ((ULONG)sizeof(_s))

typedef enum _WDF_TRI_STATE { WdfFalse = 0, WdfTrue = 1, WdfUseDefault = 2 } WDF_TRI_STATE;
typedef enum _WDF_EXECUTION_LEVEL {
    WdfExecutionLevelInvalid = 0, WdfExecutionLevelInheritFromParent, WdfExecutionLevelPassive, WdfExecutionLevelDispatch
} WDF_EXECUTION_LEVEL;
typedef enum _WDF_SYNCHRONIZATION_SCOPE {
    WdfSynchronizationScopeInvalid = 0, WdfSynchronizationScopeInheritFromParent, WdfSynchronizationScopeDevice,
    WdfSynchronizationScopeQueue, WdfSynchronizationScopeNone
} WDF_SYNCHRONIZATION_SCOPE;

/* ---- objects, attributes, contexts ---- */
typedef void EVT_WDF_OBJECT_CONTEXT_CLEANUP(WDFOBJECT Object);
typedef EVT_WDF_OBJECT_CONTEXT_CLEANUP *PFN_WDF_OBJECT_CONTEXT_CLEANUP;
typedef void EVT_WDF_OBJECT_CONTEXT_DESTROY(WDFOBJECT Object);
typedef EVT_WDF_OBJECT_CONTEXT_DESTROY *PFN_WDF_OBJECT_CONTEXT_DESTROY;
typedef struct _WDF_OBJECT_CONTEXT_TYPE_INFO *PWDF_OBJECT_CONTEXT_TYPE_INFO;
typedef const struct _WDF_OBJECT_CONTEXT_TYPE_INFO *PCWDF_OBJECT_CONTEXT_TYPE_INFO;
typedef PCWDF_OBJECT_CONTEXT_TYPE_INFO (*PFN_GET_UNIQUE_CONTEXT_TYPE)(void);
typedef struct _WDF_OBJECT_CONTEXT_TYPE_INFO {
    ULONG Size;
    PCHAR ContextName;
    size_t ContextSize;
    PCWDF_OBJECT_CONTEXT_TYPE_INFO UniqueType;
    PFN_GET_UNIQUE_CONTEXT_TYPE EvtDriverGetUniqueContextType;
} WDF_OBJECT_CONTEXT_TYPE_INFO;
typedef struct _WDF_OBJECT_ATTRIBUTES {
    ULONG Size;
    PFN_WDF_OBJECT_CONTEXT_CLEANUP EvtCleanupCallback;
    PFN_WDF_OBJECT_CONTEXT_DESTROY EvtDestroyCallback;
    WDF_EXECUTION_LEVEL ExecutionLevel;
    WDF_SYNCHRONIZATION_SCOPE SynchronizationScope;
    WDFOBJECT ParentObject;
    size_t ContextSizeOverride;
    PCWDF_OBJECT_CONTEXT_TYPE_INFO ContextTypeInfo;
} WDF_OBJECT_ATTRIBUTES, *PWDF_OBJECT_ATTRIBUTES;
FORCEINLINE void WDF_OBJECT_ATTRIBUTES_INIT(PWDF_OBJECT_ATTRIBUTES Attributes)
{
    memset(Attributes, 0, sizeof(*Attributes));
    Attributes->Size = sizeof(WDF_OBJECT_ATTRIBUTES);
    Attributes->SynchronizationScope = WdfSynchronizationScopeInheritFromParent;
    Attributes->ExecutionLevel = WdfExecutionLevelInheritFromParent;
}
#define WDF_TYPE_NAME_TO_TYPE_INFO(_contexttype) _WDF_##_contexttype##_TYPE_INFO
#define WDF_GET_CONTEXT_TYPE_INFO(_contexttype) (&WDF_TYPE_NAME_TO_TYPE_INFO(_contexttype))
#define WDF_DECLARE_CONTEXT_TYPE_WITH_NAME(_contexttype, _castingfunction) \
    WFP_CXX_EXTERN __attribute__((weak)) const WDF_OBJECT_CONTEXT_TYPE_INFO WDF_TYPE_NAME_TO_TYPE_INFO(_contexttype) = { \
        sizeof(WDF_OBJECT_CONTEXT_TYPE_INFO), (PCHAR)#_contexttype, sizeof(_contexttype), \
        &WDF_TYPE_NAME_TO_TYPE_INFO(_contexttype), NULL }; \
    static inline __attribute__((unused)) _contexttype *_castingfunction(WDFOBJECT Handle) \
    { return (_contexttype *)WdfObjectGetTypedContextWorker(Handle, WDF_GET_CONTEXT_TYPE_INFO(_contexttype)); }
#define WDF_DECLARE_CONTEXT_TYPE(_contexttype) WDF_DECLARE_CONTEXT_TYPE_WITH_NAME(_contexttype, WdfObjectGet_##_contexttype)
#define WDF_OBJECT_ATTRIBUTES_INIT_CONTEXT_TYPE(_attributes, _contexttype) \
    do { WDF_OBJECT_ATTRIBUTES_INIT(_attributes); (_attributes)->ContextTypeInfo = WDF_GET_CONTEXT_TYPE_INFO(_contexttype)->UniqueType; } while (0)
#define WDF_OBJECT_ATTRIBUTES_SET_CONTEXT_TYPE(_attributes, _contexttype) \
    ((_attributes)->ContextTypeInfo = WDF_GET_CONTEXT_TYPE_INFO(_contexttype)->UniqueType)
#define WdfObjectGetTypedContext(handle, type) \
    ((type *)WdfObjectGetTypedContextWorker((WDFOBJECT)(handle), WDF_GET_CONTEXT_TYPE_INFO(type)))
PVOID WdfObjectGetTypedContextWorker(WDFOBJECT Handle, PCWDF_OBJECT_CONTEXT_TYPE_INFO TypeInfo);
NTSTATUS WdfObjectAllocateContext(WDFOBJECT Handle, PWDF_OBJECT_ATTRIBUTES ContextAttributes, PVOID *Context);
/* Deletes a device (its queue, work items and contexts go with it), a registry key, a queue (its
 * work items go with it) or a work item. */
void WdfObjectDelete(WDFOBJECT Object);

/* ---- driver ---- */
typedef void EVT_WDF_DRIVER_UNLOAD(WDFDRIVER Driver);
typedef EVT_WDF_DRIVER_UNLOAD *PFN_WDF_DRIVER_UNLOAD;
typedef NTSTATUS EVT_WDF_DRIVER_DEVICE_ADD(WDFDRIVER Driver, PWDFDEVICE_INIT DeviceInit);
typedef EVT_WDF_DRIVER_DEVICE_ADD *PFN_WDF_DRIVER_DEVICE_ADD;
typedef enum _WDF_DRIVER_INIT_FLAGS {
    WdfDriverInitNonPnpDriver = 0x00000001,
    WdfDriverInitNoDispatchOverride = 0x00000002,
    WdfVerifyOn = 0x00000004,
    WdfVerifierOn = 0x00000008,
    WdfDriverInitCompanion = 0x00000010
} WDF_DRIVER_INIT_FLAGS;
typedef struct _WDF_DRIVER_CONFIG {
    ULONG Size;
    PFN_WDF_DRIVER_DEVICE_ADD EvtDriverDeviceAdd;
    PFN_WDF_DRIVER_UNLOAD EvtDriverUnload;
    ULONG DriverInitFlags;
    ULONG DriverPoolTag;
} WDF_DRIVER_CONFIG, *PWDF_DRIVER_CONFIG;
FORCEINLINE void WDF_DRIVER_CONFIG_INIT(PWDF_DRIVER_CONFIG Config, PFN_WDF_DRIVER_DEVICE_ADD EvtDriverDeviceAdd)
{
    memset(Config, 0, sizeof(*Config));
    Config->Size = sizeof(WDF_DRIVER_CONFIG);
    Config->EvtDriverDeviceAdd = EvtDriverDeviceAdd;
}
/* Non-PnP drivers only (WdfDriverInitNonPnpDriver): with an EvtDriverDeviceAdd and no such flag it
 * returns STATUS_NOT_SUPPORTED (there is no PnP manager to call it). Sets DriverObject->DriverUnload
 * to the framework's, which calls EvtDriverUnload and then deletes the driver's devices. */
NTSTATUS WdfDriverCreate(PDRIVER_OBJECT DriverObject, PCUNICODE_STRING RegistryPath,
                         PWDF_OBJECT_ATTRIBUTES DriverAttributes, PWDF_DRIVER_CONFIG DriverConfig, WDFDRIVER *Driver);
PDRIVER_OBJECT WdfDriverWdmGetDriverObject(WDFDRIVER Driver);
WDFDRIVER WdfWdmDriverGetWdfDriverHandle(PDRIVER_OBJECT DriverObject);
WDFDRIVER WdfGetDriver(void);

/* ---- control devices ---- */
typedef enum _WDF_DEVICE_IO_TYPE {
    WdfDeviceIoUndefined = 0, WdfDeviceIoNeither, WdfDeviceIoBuffered, WdfDeviceIoDirect, WdfDeviceIoBufferedOrDirect = 4
} WDF_DEVICE_IO_TYPE;
PWDFDEVICE_INIT WdfControlDeviceInitAllocate(WDFDRIVER Driver, const UNICODE_STRING *SDDLString);
void WdfDeviceInitSetDeviceType(PWDFDEVICE_INIT DeviceInit, DEVICE_TYPE DeviceType);
void WdfDeviceInitSetCharacteristics(PWDFDEVICE_INIT DeviceInit, ULONG DeviceCharacteristics, BOOLEAN OrInValues);
void WdfDeviceInitSetDeviceClass(PWDFDEVICE_INIT DeviceInit, const GUID *DeviceClassGuid);
void WdfDeviceInitSetIoType(PWDFDEVICE_INIT DeviceInit, WDF_DEVICE_IO_TYPE IoType);
void WdfDeviceInitSetExclusive(PWDFDEVICE_INIT DeviceInit, BOOLEAN IsExclusive);
NTSTATUS WdfDeviceInitAssignName(PWDFDEVICE_INIT DeviceInit, PCUNICODE_STRING DeviceName);
void WdfDeviceInitFree(PWDFDEVICE_INIT DeviceInit);
NTSTATUS WdfDeviceCreate(PWDFDEVICE_INIT *DeviceInit, PWDF_OBJECT_ATTRIBUTES DeviceAttributes, WDFDEVICE *Device);
NTSTATUS WdfDeviceCreateSymbolicLink(WDFDEVICE Device, PCUNICODE_STRING SymbolicLinkName);
void WdfControlFinishInitializing(WDFDEVICE Device);
PDEVICE_OBJECT WdfDeviceWdmGetDeviceObject(WDFDEVICE Device);
WDFDRIVER WdfDeviceGetDriver(WDFDEVICE Device);

/* ---- registry: the driver's Parameters key ---- */
/* KEY_* access rights and REG_* types: wfp/kmrt.h. */
NTSTATUS WdfDriverOpenParametersRegistryKey(WDFDRIVER Driver, ACCESS_MASK DesiredAccess,
                                            PWDF_OBJECT_ATTRIBUTES KeyAttributes, WDFKEY *Key);
NTSTATUS WdfRegistryQueryULong(WDFKEY Key, PCUNICODE_STRING ValueName, PULONG Value);
NTSTATUS WdfRegistryQueryUnicodeString(WDFKEY Key, PCUNICODE_STRING ValueName, PUSHORT ValueByteLength, PUNICODE_STRING Value);
NTSTATUS WdfRegistryQueryValue(WDFKEY Key, PCUNICODE_STRING ValueName, ULONG ValueLength, PVOID Value,
                               PULONG ValueLengthQueried, PULONG ValueType);
void WdfRegistryClose(WDFKEY Key);
/* ---- wait locks: a mutex held across calls; parent the driver (deleted with it, or by
 * WdfObjectDelete). Acquire at PASSIVE_LEVEL, or with *Timeout == 0 (a poll) up to
 * DISPATCH_LEVEL; Timeout NULL waits forever, negative is relative and positive absolute 100-ns
 * units. Not recursive: a second acquire by the holder is a Verifier finding (STATUS_TIMEOUT). */
NTSTATUS WdfWaitLockCreate(PWDF_OBJECT_ATTRIBUTES LockAttributes, WDFWAITLOCK *Lock);
NTSTATUS WdfWaitLockAcquire(WDFWAITLOCK Lock, PLONGLONG Timeout);
void WdfWaitLockRelease(WDFWAITLOCK Lock);

/* ---- work items (wdfworkitem.h): EvtWorkItem runs at PASSIVE_LEVEL on a host worker thread.
 * The parent (Attributes->ParentObject, required: STATUS_WDF_PARENT_NOT_SPECIFIED) is a device or
 * a queue (else STATUS_INVALID_DEVICE_REQUEST); the item is deleted with it, or by WdfObjectDelete
 * (which waits for a queued or running callback, or, called inside the callback, completes when
 * it returns). Enqueueing an item already queued does nothing (KMDF 1.7+). WdfWorkItemFlush
 * (PASSIVE_LEVEL) returns once the item's callback ran. No synchronization scopes here:
 * AutomaticSerialization changes nothing. ---- */
typedef struct WDFWORKITEM__ *WDFWORKITEM;
typedef void EVT_WDF_WORKITEM(WDFWORKITEM WorkItem);
typedef EVT_WDF_WORKITEM *PFN_WDF_WORKITEM;
typedef struct _WDF_WORKITEM_CONFIG {
    ULONG Size;
    PFN_WDF_WORKITEM EvtWorkItemFunc;
    BOOLEAN AutomaticSerialization;
} WDF_WORKITEM_CONFIG, *PWDF_WORKITEM_CONFIG;
_Static_assert(sizeof(WDF_WORKITEM_CONFIG) == 24, "WDF_WORKITEM_CONFIG");
FORCEINLINE void WDF_WORKITEM_CONFIG_INIT(PWDF_WORKITEM_CONFIG Config, PFN_WDF_WORKITEM EvtWorkItemFunc)
{
    memset(Config, 0, sizeof(*Config));
    Config->Size = sizeof(WDF_WORKITEM_CONFIG);
    Config->EvtWorkItemFunc = EvtWorkItemFunc;
    Config->AutomaticSerialization = TRUE;
}
#define STATUS_WDF_PARENT_NOT_SPECIFIED ((NTSTATUS)0xC0200212L)
NTSTATUS WdfWorkItemCreate(PWDF_WORKITEM_CONFIG Config, PWDF_OBJECT_ATTRIBUTES Attributes, WDFWORKITEM *WorkItem);
void WdfWorkItemEnqueue(WDFWORKITEM WorkItem);
void WdfWorkItemFlush(WDFWORKITEM WorkItem);
WDFOBJECT WdfWorkItemGetParentObject(WDFWORKITEM WorkItem);

/* ---- I/O queue and requests ---- */
/* CTL_CODE, METHOD_* and FILE_*_ACCESS: wfp/irp.h (wdm.h). */
typedef enum _WDF_IO_QUEUE_DISPATCH_TYPE {
    WdfIoQueueDispatchInvalid = 0, WdfIoQueueDispatchSequential, WdfIoQueueDispatchParallel, WdfIoQueueDispatchManual,
    WdfIoQueueDispatchMax
} WDF_IO_QUEUE_DISPATCH_TYPE;
typedef void EVT_WDF_IO_QUEUE_IO_DEFAULT(WDFQUEUE Queue, WDFREQUEST Request);
typedef EVT_WDF_IO_QUEUE_IO_DEFAULT *PFN_WDF_IO_QUEUE_IO_DEFAULT;
typedef void EVT_WDF_IO_QUEUE_IO_READ(WDFQUEUE Queue, WDFREQUEST Request, size_t Length);
typedef EVT_WDF_IO_QUEUE_IO_READ *PFN_WDF_IO_QUEUE_IO_READ;
typedef void EVT_WDF_IO_QUEUE_IO_WRITE(WDFQUEUE Queue, WDFREQUEST Request, size_t Length);
typedef EVT_WDF_IO_QUEUE_IO_WRITE *PFN_WDF_IO_QUEUE_IO_WRITE;
typedef void EVT_WDF_IO_QUEUE_IO_DEVICE_CONTROL(WDFQUEUE Queue, WDFREQUEST Request, size_t OutputBufferLength,
                                                size_t InputBufferLength, ULONG IoControlCode);
typedef EVT_WDF_IO_QUEUE_IO_DEVICE_CONTROL *PFN_WDF_IO_QUEUE_IO_DEVICE_CONTROL;
typedef EVT_WDF_IO_QUEUE_IO_DEVICE_CONTROL EVT_WDF_IO_QUEUE_IO_INTERNAL_DEVICE_CONTROL;
typedef EVT_WDF_IO_QUEUE_IO_INTERNAL_DEVICE_CONTROL *PFN_WDF_IO_QUEUE_IO_INTERNAL_DEVICE_CONTROL;
typedef void EVT_WDF_IO_QUEUE_IO_STOP(WDFQUEUE Queue, WDFREQUEST Request, ULONG ActionFlags);
typedef EVT_WDF_IO_QUEUE_IO_STOP *PFN_WDF_IO_QUEUE_IO_STOP;
typedef void EVT_WDF_IO_QUEUE_IO_RESUME(WDFQUEUE Queue, WDFREQUEST Request);
typedef EVT_WDF_IO_QUEUE_IO_RESUME *PFN_WDF_IO_QUEUE_IO_RESUME;
typedef void EVT_WDF_IO_QUEUE_IO_CANCELED_ON_QUEUE(WDFQUEUE Queue, WDFREQUEST Request);
typedef EVT_WDF_IO_QUEUE_IO_CANCELED_ON_QUEUE *PFN_WDF_IO_QUEUE_IO_CANCELED_ON_QUEUE;
typedef struct _WDF_IO_QUEUE_CONFIG {
    ULONG Size;
    WDF_IO_QUEUE_DISPATCH_TYPE DispatchType;
    WDF_TRI_STATE PowerManaged;
    BOOLEAN AllowZeroLengthRequests;
    BOOLEAN DefaultQueue;
    PFN_WDF_IO_QUEUE_IO_DEFAULT EvtIoDefault;
    PFN_WDF_IO_QUEUE_IO_READ EvtIoRead;
    PFN_WDF_IO_QUEUE_IO_WRITE EvtIoWrite;
    PFN_WDF_IO_QUEUE_IO_DEVICE_CONTROL EvtIoDeviceControl;
    PFN_WDF_IO_QUEUE_IO_INTERNAL_DEVICE_CONTROL EvtIoInternalDeviceControl;
    PFN_WDF_IO_QUEUE_IO_STOP EvtIoStop;
    PFN_WDF_IO_QUEUE_IO_RESUME EvtIoResume;
    PFN_WDF_IO_QUEUE_IO_CANCELED_ON_QUEUE EvtIoCanceledOnQueue;
    union {
        struct { ULONG NumberOfPresentedRequests; } Parallel;
    } Settings;
    WDFDRIVER Driver;
} WDF_IO_QUEUE_CONFIG, *PWDF_IO_QUEUE_CONFIG;
FORCEINLINE void WDF_IO_QUEUE_CONFIG_INIT(PWDF_IO_QUEUE_CONFIG Config, WDF_IO_QUEUE_DISPATCH_TYPE DispatchType)
{
    memset(Config, 0, sizeof(*Config));
    Config->Size = sizeof(WDF_IO_QUEUE_CONFIG);
    Config->PowerManaged = WdfUseDefault;
    Config->DispatchType = DispatchType;
    if (DispatchType == WdfIoQueueDispatchParallel) Config->Settings.Parallel.NumberOfPresentedRequests = (ULONG)-1;
}
FORCEINLINE void WDF_IO_QUEUE_CONFIG_INIT_DEFAULT_QUEUE(PWDF_IO_QUEUE_CONFIG Config, WDF_IO_QUEUE_DISPATCH_TYPE DispatchType)
{
    WDF_IO_QUEUE_CONFIG_INIT(Config, DispatchType);
    Config->DefaultQueue = TRUE;
}
/* Requests reach the queue WdfDeviceConfigureRequestDispatching names for their type (read, write,
 * device control, internal device control), else the default queue; the queue presents them to
 * EvtIoDeviceControl / EvtIoInternalDeviceControl / EvtIoRead / EvtIoWrite, or EvtIoDefault for a
 * type it has no callback for, by its dispatch type (Sequential one at a time, Parallel as they
 * come, Manual never: WdfIoQueueRetrieveNextRequest). The host's ioctl / read / write caller's
 * request is presented on its thread when the queue can take it then. A read's buffer is the
 * request's output buffer, a write's its input buffer (the other direction:
 * STATUS_INVALID_DEVICE_REQUEST), by the device's WdfDeviceInitSetIoType: buffered (the default)
 * or direct. WdfDeviceIoNeither reads / writes and METHOD_NEITHER device controls: the safe
 * retrieve functions fail (STATUS_INVALID_DEVICE_REQUEST); the device's EvtIoInCallerContext
 * reads the requester's buffers below. Synchronization scope (WDF_OBJECT_ATTRIBUTES of the driver,
 * device or queue): Queue or Device serialises the queue callbacks under the queue's / device's
 * lock (callbacks then run at DISPATCH_LEVEL, or PASSIVE_LEVEL with WdfExecutionLevelPassive). */
NTSTATUS WdfIoQueueCreate(WDFDEVICE Device, PWDF_IO_QUEUE_CONFIG Config, PWDF_OBJECT_ATTRIBUTES QueueAttributes, WDFQUEUE *Queue);
NTSTATUS WdfRequestRetrieveInputBuffer(WDFREQUEST Request, size_t MinimumRequiredLength, PVOID *Buffer, size_t *Length);
NTSTATUS WdfRequestRetrieveOutputBuffer(WDFREQUEST Request, size_t MinimumRequiredSize, PVOID *Buffer, size_t *Length);
NTSTATUS WdfRequestRetrieveInputMemory(WDFREQUEST Request, WDFMEMORY *Memory);
NTSTATUS WdfRequestRetrieveOutputMemory(WDFREQUEST Request, WDFMEMORY *Memory);
PVOID WdfMemoryGetBuffer(WDFMEMORY Memory, size_t *BufferSize);
WDFQUEUE WdfRequestGetIoQueue(WDFREQUEST Request);
void WdfRequestSetInformation(WDFREQUEST Request, ULONG_PTR Information);
void WdfRequestComplete(WDFREQUEST Request, NTSTATUS Status);
void WdfRequestCompleteWithInformation(WDFREQUEST Request, NTSTATUS Status, ULONG_PTR Information);
/* In caller context: with WdfDeviceInitSetIoInCallerContextCallback every request of the device
 * reaches EvtIoInCallerContext first, on the requester's thread, before any queue; the driver
 * queues it with WdfDeviceEnqueueRequest (the default queue's callback runs then) or completes
 * it. Only there: WdfRequestRetrieveUnsafeUserInputBuffer / OutputBuffer (the requester's
 * Type3InputBuffer / UserBuffer of a METHOD_NEITHER device control or WdfDeviceIoNeither write /
 * read; other requests STATUS_INVALID_DEVICE_REQUEST) and WdfRequestProbeAndLockUserBufferForRead
 * / ForWrite (a WDFMEMORY on Length bytes at Buffer, valid until the request completes).
 * Called elsewhere: STATUS_INVALID_DEVICE_REQUEST and a Verifier finding. */
typedef void EVT_WDF_IO_IN_CALLER_CONTEXT(WDFDEVICE Device, WDFREQUEST Request);
typedef EVT_WDF_IO_IN_CALLER_CONTEXT *PFN_WDF_IO_IN_CALLER_CONTEXT;
void WdfDeviceInitSetIoInCallerContextCallback(PWDFDEVICE_INIT DeviceInit, PFN_WDF_IO_IN_CALLER_CONTEXT EvtIoInCallerContext);
NTSTATUS WdfDeviceEnqueueRequest(WDFDEVICE Device, WDFREQUEST Request);
NTSTATUS WdfRequestRetrieveUnsafeUserInputBuffer(WDFREQUEST Request, size_t MinimumRequiredLength, PVOID *InputBuffer, size_t *Length);
NTSTATUS WdfRequestRetrieveUnsafeUserOutputBuffer(WDFREQUEST Request, size_t MinimumRequiredLength, PVOID *OutputBuffer, size_t *Length);
NTSTATUS WdfRequestProbeAndLockUserBufferForRead(WDFREQUEST Request, PVOID Buffer, size_t Length, WDFMEMORY *MemoryObject);
NTSTATUS WdfRequestProbeAndLockUserBufferForWrite(WDFREQUEST Request, PVOID Buffer, size_t Length, WDFMEMORY *MemoryObject);

/* ---- request parameters, queues beyond the default one, synchronization locks ---- */
typedef enum _WDF_REQUEST_TYPE {
    WdfRequestTypeCreate = 0x0, WdfRequestTypeCreateNamedPipe = 0x1, WdfRequestTypeClose = 0x2,
    WdfRequestTypeRead = 0x3, WdfRequestTypeWrite = 0x4, WdfRequestTypeQueryInformation = 0x5,
    WdfRequestTypeSetInformation = 0x6, WdfRequestTypeQueryEA = 0x7, WdfRequestTypeSetEA = 0x8,
    WdfRequestTypeFlushBuffers = 0x9, WdfRequestTypeQueryVolumeInformation = 0xa,
    WdfRequestTypeSetVolumeInformation = 0xb, WdfRequestTypeDirectoryControl = 0xc,
    WdfRequestTypeFileSystemControl = 0xd, WdfRequestTypeDeviceControl = 0xe,
    WdfRequestTypeDeviceControlInternal = 0xf, WdfRequestTypeShutdown = 0x10, WdfRequestTypeLockControl = 0x11,
    WdfRequestTypeCleanup = 0x12, WdfRequestTypeCreateMailSlot = 0x13, WdfRequestTypeQuerySecurity = 0x14,
    WdfRequestTypeSetSecurity = 0x15, WdfRequestTypePower = 0x16, WdfRequestTypeSystemControl = 0x17,
    WdfRequestTypeDeviceChange = 0x18, WdfRequestTypeQueryQuota = 0x19, WdfRequestTypeSetQuota = 0x1a,
    WdfRequestTypePnp = 0x1b, WdfRequestTypeOther, WdfRequestTypeMax
} WDF_REQUEST_TYPE;
typedef struct _WDF_REQUEST_PARAMETERS {
    USHORT Size;
    UCHAR MinorFunction;
    WDF_REQUEST_TYPE Type;
    union {
        struct { PVOID SecurityContext; ULONG POINTER_ALIGNMENT Options; USHORT POINTER_ALIGNMENT FileAttributes;
                 USHORT ShareAccess; ULONG POINTER_ALIGNMENT EaLength; } Create;
        struct { size_t Length; ULONG POINTER_ALIGNMENT Key; LONGLONG DeviceOffset; } Read;
        struct { size_t Length; ULONG POINTER_ALIGNMENT Key; LONGLONG DeviceOffset; } Write;
        struct { size_t OutputBufferLength; size_t POINTER_ALIGNMENT InputBufferLength;
                 ULONG POINTER_ALIGNMENT IoControlCode; PVOID Type3InputBuffer; } DeviceIoControl;
        struct { PVOID Arg1; PVOID Arg2; ULONG POINTER_ALIGNMENT IoControlCode; PVOID Arg4; } Others;
    } Parameters;
} WDF_REQUEST_PARAMETERS, *PWDF_REQUEST_PARAMETERS;
FORCEINLINE void WDF_REQUEST_PARAMETERS_INIT(PWDF_REQUEST_PARAMETERS Parameters)
{
    memset(Parameters, 0, sizeof(*Parameters));
    Parameters->Size = sizeof(WDF_REQUEST_PARAMETERS);
}
typedef PVOID WDFCONTEXT;
typedef void EVT_WDF_IO_QUEUE_STATE(WDFQUEUE Queue, WDFCONTEXT Context);
typedef EVT_WDF_IO_QUEUE_STATE *PFN_WDF_IO_QUEUE_STATE;
#define STATUS_WDF_PAUSED ((NTSTATUS)0xC0200203L)
#define STATUS_WDF_BUSY ((NTSTATUS)0xC0200204L)
/* Type, DeviceIoControl (device control and internal device control) and Read / Write (Key 0). */
void WdfRequestGetParameters(WDFREQUEST Request, PWDF_REQUEST_PARAMETERS Parameters);
/* Read, Write, DeviceControl, DeviceControlInternal (Create: STATUS_NOT_SUPPORTED here). */
NTSTATUS WdfDeviceConfigureRequestDispatching(WDFDEVICE Device, WDFQUEUE Queue, WDF_REQUEST_TYPE RequestType);
NTSTATUS WdfRequestForwardToIoQueue(WDFREQUEST Request, WDFQUEUE DestinationQueue);
NTSTATUS WdfIoQueueRetrieveNextRequest(WDFQUEUE Queue, WDFREQUEST *OutRequest);
void WdfIoQueueStart(WDFQUEUE Queue);
void WdfIoQueueStop(WDFQUEUE Queue, PFN_WDF_IO_QUEUE_STATE StopComplete, WDFCONTEXT Context);
void WdfIoQueueStopSynchronously(WDFQUEUE Queue);
void WdfIoQueuePurge(WDFQUEUE Queue, PFN_WDF_IO_QUEUE_STATE PurgeComplete, WDFCONTEXT Context);
void WdfIoQueuePurgeSynchronously(WDFQUEUE Queue);
WDFDEVICE WdfIoQueueGetDevice(WDFQUEUE Queue);
void WdfObjectAcquireLock(WDFOBJECT Object);
void WdfObjectReleaseLock(WDFOBJECT Object);

_Static_assert(sizeof(WDF_REQUEST_PARAMETERS) == 40, "WDF_REQUEST_PARAMETERS");
_Static_assert(offsetof(WDF_REQUEST_PARAMETERS, Type) == 4, "WDF_REQUEST_PARAMETERS.Type");
_Static_assert(offsetof(WDF_REQUEST_PARAMETERS, Parameters.DeviceIoControl.IoControlCode) == 24,
               "WDF_REQUEST_PARAMETERS.Parameters.DeviceIoControl.IoControlCode");
_Static_assert(offsetof(WDF_REQUEST_PARAMETERS, Parameters.Read.DeviceOffset) == 24,
               "WDF_REQUEST_PARAMETERS.Parameters.Read.DeviceOffset");
_Static_assert(sizeof(WDF_DRIVER_CONFIG) == 32, "WDF_DRIVER_CONFIG");
_Static_assert(sizeof(WDF_OBJECT_ATTRIBUTES) == 56, "WDF_OBJECT_ATTRIBUTES");
_Static_assert(sizeof(WDF_OBJECT_CONTEXT_TYPE_INFO) == 40, "WDF_OBJECT_CONTEXT_TYPE_INFO");
_Static_assert(sizeof(WDF_IO_QUEUE_CONFIG) == 96, "WDF_IO_QUEUE_CONFIG");
_Static_assert(offsetof(WDF_IO_QUEUE_CONFIG, EvtIoDeviceControl) == 40, "WDF_IO_QUEUE_CONFIG.EvtIoDeviceControl");
WFP_END_DECLS
#endif
