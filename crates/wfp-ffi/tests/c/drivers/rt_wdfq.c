/* rt_wdfq test driver (ours): KMDF queues beyond the default one. A control device with
 *   - the default queue (parallel, EvtIoDeviceControl): routes the host's requests by code;
 *   - Manual (manual dispatch): requests parked there, taken with WdfIoQueueRetrieveNextRequest;
 *   - Internal (sequential, EvtIoInternalDeviceControl): internal device controls, dispatched
 *     with WdfDeviceConfigureRequestDispatching, sent by this driver to its own device;
 *   - Reads (sequential, EvtIoRead): reads, dispatched there;
 *   - Serial (parallel, WdfSynchronizationScopeQueue, WdfExecutionLevelPassive) and Free
 *     (parallel, no scope): the same slow callback, which counts how many run at once;
 *   - Spin (parallel, WdfSynchronizationScopeQueue, default level): reports its IRQL.
 * Built with -DRT_DEVICE_SCOPE the device has WdfSynchronizationScopeDevice (passive level) and
 * every queue inherits it: Free and Reads are then serialised with Serial too.
 * DriverEntry prints `ok NAME` / `FAIL NAME` for its synchronous checks, then `done`. */
#include <ntddk.h>
#include <wdf.h>

DRIVER_INITIALIZE DriverEntry;

#define IOCTL(n) CTL_CODE(0x12, (n), METHOD_BUFFERED, FILE_ANY_ACCESS)
#define IOCTL_SERIAL IOCTL(0xA00)
#define IOCTL_FREE IOCTL(0xA01)
#define IOCTL_MAX IOCTL(0xA02)
#define IOCTL_PARK IOCTL(0xA03)
#define IOCTL_UNPARK IOCTL(0xA04)
#define IOCTL_PURGE IOCTL(0xA05)
#define IOCTL_SPIN IOCTL(0xA06)
#define IOCTL_PARAMS IOCTL(0xA07)
#define IOCTL_INTERNAL CTL_CODE(0x12, 0xB00, METHOD_BUFFERED, FILE_ANY_ACCESS)

static WDFDEVICE Device;
static WDFQUEUE Manual, Internal, Reads, Serial, Free, Spin;
static volatile LONG Inside, MaxInside, Parked;
static volatile LONG PurgeDone;

#define CHECK(name, cond) DbgPrint("%s %s", (cond) ? "ok" : "FAIL", name)

/* Counts the callbacks inside at once (rendezvous: waits up to 1 s for a second one). */
static void Crowd(void)
{
    LARGE_INTEGER ms = {.QuadPart = -10 * 1000};
    LONG n = InterlockedIncrement(&Inside), m, i;
    while ((m = MaxInside) < n && InterlockedCompareExchange(&MaxInside, n, m) != m) {
    }
    for (i = 0; i < 1000 && Inside < 2; i++) KeDelayExecutionThread(KernelMode, FALSE, &ms);
    if (Inside >= 2) {
        m = MaxInside;
        while (m < 2 && InterlockedCompareExchange(&MaxInside, 2, m) != m) m = MaxInside;
    }
    KeDelayExecutionThread(KernelMode, FALSE, &ms);
    InterlockedDecrement(&Inside);
}

static void Complete4(WDFREQUEST request, NTSTATUS st, LONG value)
{
    PVOID out;
    if (NT_SUCCESS(WdfRequestRetrieveOutputBuffer(request, sizeof(LONG), &out, NULL))) {
        *(LONG *)out = value;
        WdfRequestCompleteWithInformation(request, st, sizeof(LONG));
    } else {
        WdfRequestComplete(request, st);
    }
}

static void SlowIoctl(WDFQUEUE queue, WDFREQUEST request, size_t out, size_t in, ULONG code)
{
    UNREFERENCED_PARAMETER(out);
    UNREFERENCED_PARAMETER(in);
    UNREFERENCED_PARAMETER(code);
    Crowd();
    Complete4(request, WdfRequestGetIoQueue(request) == queue ? STATUS_SUCCESS : STATUS_INTERNAL_ERROR,
              (LONG)KeGetCurrentIrql());
}

static void SpinIoctl(WDFQUEUE queue, WDFREQUEST request, size_t out, size_t in, ULONG code)
{
    UNREFERENCED_PARAMETER(queue);
    UNREFERENCED_PARAMETER(out);
    UNREFERENCED_PARAMETER(in);
    UNREFERENCED_PARAMETER(code);
    Complete4(request, STATUS_SUCCESS, (LONG)KeGetCurrentIrql());
}

static void ReadIo(WDFQUEUE queue, WDFREQUEST request, size_t length)
{
    WDF_REQUEST_PARAMETERS params;
    PVOID out;
    UNREFERENCED_PARAMETER(queue);
    WDF_REQUEST_PARAMETERS_INIT(&params);
    WdfRequestGetParameters(request, &params);
    Crowd();
    if (params.Type != WdfRequestTypeRead || params.Parameters.Read.Length != length || length < 8 ||
        !NT_SUCCESS(WdfRequestRetrieveOutputBuffer(request, 8, &out, NULL))) {
        WdfRequestComplete(request, STATUS_INTERNAL_ERROR);
        return;
    }
    RtlCopyMemory(out, "readq ok", 8);
    WdfRequestCompleteWithInformation(request, STATUS_SUCCESS, 8);
}

/* Internal device controls: parameters checked, input reversed into the output. */
static void InternalIoctl(WDFQUEUE queue, WDFREQUEST request, size_t out_len, size_t in_len, ULONG code)
{
    WDF_REQUEST_PARAMETERS params;
    PUCHAR in, out;
    size_t i;
    UNREFERENCED_PARAMETER(queue);
    WDF_REQUEST_PARAMETERS_INIT(&params);
    WdfRequestGetParameters(request, &params);
    if (params.Type != WdfRequestTypeDeviceControlInternal || params.Parameters.DeviceIoControl.IoControlCode != code ||
        params.Parameters.DeviceIoControl.InputBufferLength != in_len ||
        params.Parameters.DeviceIoControl.OutputBufferLength != out_len || code != IOCTL_INTERNAL ||
        !NT_SUCCESS(WdfRequestRetrieveInputBuffer(request, in_len, (PVOID *)&in, NULL))) {
        WdfRequestComplete(request, STATUS_INTERNAL_ERROR);
        return;
    }
    {
        UCHAR copy[16];
        if (in_len > sizeof(copy) || out_len < in_len ||
            !NT_SUCCESS(WdfRequestRetrieveOutputBuffer(request, in_len, (PVOID *)&out, NULL))) {
            WdfRequestComplete(request, STATUS_BUFFER_TOO_SMALL);
            return;
        }
        RtlCopyMemory(copy, in, in_len); /* METHOD_BUFFERED: one system buffer */
        for (i = 0; i < in_len; i++) out[i] = copy[in_len - 1 - i];
    }
    WdfRequestCompleteWithInformation(request, STATUS_SUCCESS, in_len);
}

static void PurgeComplete(WDFQUEUE queue, WDFCONTEXT context)
{
    if (queue == Manual && context == (WDFCONTEXT)&PurgeDone) InterlockedIncrement(&PurgeDone);
}

static void DefaultIoctl(WDFQUEUE queue, WDFREQUEST request, size_t out, size_t in, ULONG code)
{
    WDFREQUEST parked;
    NTSTATUS st;
    UNREFERENCED_PARAMETER(queue);
    UNREFERENCED_PARAMETER(out);
    UNREFERENCED_PARAMETER(in);
    switch (code) {
    case IOCTL_SERIAL:
    case IOCTL_FREE:
    case IOCTL_SPIN:
        st = WdfRequestForwardToIoQueue(request, code == IOCTL_SERIAL ? Serial : code == IOCTL_FREE ? Free : Spin);
        if (!NT_SUCCESS(st)) WdfRequestComplete(request, st);
        return;
    case IOCTL_MAX:
        Complete4(request, STATUS_SUCCESS, InterlockedExchange(&MaxInside, 0));
        return;
    case IOCTL_PARK:
        /* Forwarded twice is refused: the driver no longer owns it once it is in Manual. */
        st = WdfRequestForwardToIoQueue(request, Manual);
        if (!NT_SUCCESS(st)) { WdfRequestComplete(request, st); return; }
        if (WdfRequestForwardToIoQueue(request, Free) != STATUS_INVALID_DEVICE_REQUEST) DbgPrint("FAIL forward twice");
        InterlockedIncrement(&Parked);
        return;
    case IOCTL_UNPARK:
        if (Parked == 0) { WdfRequestComplete(request, STATUS_RETRY); return; }
        st = WdfIoQueueRetrieveNextRequest(Manual, &parked);
        if (!NT_SUCCESS(st)) { WdfRequestComplete(request, st); return; }
        InterlockedDecrement(&Parked);
        Complete4(parked, STATUS_SUCCESS, 0x1234);
        Complete4(request, STATUS_SUCCESS, 0x5678);
        return;
    case IOCTL_PURGE:
        if (Parked == 0) { WdfRequestComplete(request, STATUS_RETRY); return; }
        WdfIoQueuePurge(Manual, PurgeComplete, (WDFCONTEXT)&PurgeDone);
        InterlockedDecrement(&Parked);
        st = WdfRequestForwardToIoQueue(request, Manual); /* purged: refused */
        WdfIoQueueStart(Manual);
        Complete4(request, STATUS_SUCCESS, (PurgeDone == 1 && st == STATUS_WDF_BUSY) ? 1 : (LONG)st);
        return;
    case IOCTL_PARAMS: {
        WDF_REQUEST_PARAMETERS params;
        WDF_REQUEST_PARAMETERS_INIT(&params);
        WdfRequestGetParameters(request, &params);
        Complete4(request,
                  (params.Type == WdfRequestTypeDeviceControl && params.Parameters.DeviceIoControl.IoControlCode == code &&
                   params.Parameters.DeviceIoControl.InputBufferLength == in &&
                   params.Parameters.DeviceIoControl.OutputBufferLength == out)
                      ? STATUS_SUCCESS
                      : STATUS_INTERNAL_ERROR,
                  (LONG)in);
        return;
    }
    default:
        WdfRequestComplete(request, STATUS_INVALID_DEVICE_REQUEST);
    }
}

static NTSTATUS MakeQueue(WDF_IO_QUEUE_DISPATCH_TYPE type, BOOLEAN isDefault, PFN_WDF_IO_QUEUE_IO_DEVICE_CONTROL ioctl,
                          WDF_SYNCHRONIZATION_SCOPE scope, WDF_EXECUTION_LEVEL level, WDFQUEUE *queue)
{
    WDF_IO_QUEUE_CONFIG config;
    WDF_OBJECT_ATTRIBUTES attrs;
    if (isDefault) WDF_IO_QUEUE_CONFIG_INIT_DEFAULT_QUEUE(&config, type);
    else WDF_IO_QUEUE_CONFIG_INIT(&config, type);
    config.EvtIoDeviceControl = ioctl;
    WDF_OBJECT_ATTRIBUTES_INIT(&attrs);
    attrs.SynchronizationScope = scope;
    attrs.ExecutionLevel = level;
    return WdfIoQueueCreate(Device, &config, &attrs, queue);
}

/* Sends an internal device control to this driver's own device and checks the reply. */
static void SelfInternal(void)
{
    UNICODE_STRING name = RTL_CONSTANT_STRING(L"\\Device\\RtWdfQ");
    PFILE_OBJECT file;
    PDEVICE_OBJECT dev;
    IO_STATUS_BLOCK iosb = {0};
    KEVENT done;
    UCHAR in[4] = {1, 2, 3, 4}, out[8] = {0};
    PIRP irp;
    NTSTATUS st = IoGetDeviceObjectPointer(&name, FILE_READ_DATA, &file, &dev);
    if (!NT_SUCCESS(st)) { DbgPrint("FAIL open own device %x", st); return; }
    KeInitializeEvent(&done, NotificationEvent, FALSE);
    irp = IoBuildDeviceIoControlRequest(IOCTL_INTERNAL, dev, in, sizeof(in), out, sizeof(out), TRUE, &done, &iosb);
    if (irp) {
        st = IoCallDriver(dev, irp);
        if (st == STATUS_PENDING) KeWaitForSingleObject(&done, Executive, KernelMode, FALSE, NULL);
        CHECK("internal device control", iosb.Status == STATUS_SUCCESS && iosb.Information == 4 && out[0] == 4 &&
                                             out[1] == 3 && out[2] == 2 && out[3] == 1);
    } else {
        DbgPrint("FAIL no irp");
    }
    ObDereferenceObject(file);
}

/* Synchronous checks of the queue functions' documented answers. */
static void Checks(void)
{
    WDFREQUEST r = (WDFREQUEST)(ULONG_PTR)1;
    CHECK("manual empty", WdfIoQueueRetrieveNextRequest(Manual, &r) == STATUS_NO_MORE_ENTRIES && r == NULL);
    CHECK("parallel retrieve", WdfIoQueueRetrieveNextRequest(Free, &r) == STATUS_INVALID_DEVICE_STATE);
    WdfIoQueueStop(Manual, NULL, NULL);
    CHECK("stopped retrieve", WdfIoQueueRetrieveNextRequest(Manual, &r) == STATUS_WDF_PAUSED);
    WdfIoQueueStart(Manual);
    CHECK("started retrieve", WdfIoQueueRetrieveNextRequest(Manual, &r) == STATUS_NO_MORE_ENTRIES);
    CHECK("dispatch twice", WdfDeviceConfigureRequestDispatching(Device, Free, WdfRequestTypeRead) == STATUS_WDF_BUSY);
    CHECK("dispatch cleanup", WdfDeviceConfigureRequestDispatching(Device, Free, WdfRequestTypeCleanup) ==
                                  STATUS_INVALID_PARAMETER);
    CHECK("queue device", WdfIoQueueGetDevice(Internal) == Device);
    WdfObjectAcquireLock(Spin);
    CHECK("spin lock irql", KeGetCurrentIrql() == DISPATCH_LEVEL);
    WdfObjectReleaseLock(Spin);
    CHECK("spin lock released", KeGetCurrentIrql() == PASSIVE_LEVEL);
    WdfObjectAcquireLock(Serial);
    CHECK("passive lock irql", KeGetCurrentIrql() == PASSIVE_LEVEL);
    WdfObjectReleaseLock(Serial);
}

NTSTATUS DriverEntry(PDRIVER_OBJECT DriverObject, PUNICODE_STRING RegistryPath)
{
    WDF_DRIVER_CONFIG config;
    WDF_IO_QUEUE_CONFIG qconfig;
    WDF_OBJECT_ATTRIBUTES attrs;
    WDFDRIVER driver;
    PWDFDEVICE_INIT init;
    DECLARE_CONST_UNICODE_STRING(name, L"\\Device\\RtWdfQ");
    WDF_SYNCHRONIZATION_SCOPE serial = WdfSynchronizationScopeQueue, none = WdfSynchronizationScopeNone;
    WDF_EXECUTION_LEVEL passive = WdfExecutionLevelPassive, inherit = WdfExecutionLevelInheritFromParent;
    NTSTATUS st;
    WDF_DRIVER_CONFIG_INIT(&config, WDF_NO_EVENT_CALLBACK);
    config.DriverInitFlags |= WdfDriverInitNonPnpDriver;
    st = WdfDriverCreate(DriverObject, RegistryPath, WDF_NO_OBJECT_ATTRIBUTES, &config, &driver);
    if (!NT_SUCCESS(st)) return st;
    init = WdfControlDeviceInitAllocate(driver, &SDDL_DEVOBJ_KERNEL_ONLY);
    if (!init) return STATUS_INSUFFICIENT_RESOURCES;
    WDF_OBJECT_ATTRIBUTES_INIT(&attrs);
#ifdef RT_DEVICE_SCOPE
    attrs.SynchronizationScope = WdfSynchronizationScopeDevice;
    attrs.ExecutionLevel = WdfExecutionLevelPassive;
    serial = none = WdfSynchronizationScopeInheritFromParent;
    passive = WdfExecutionLevelInheritFromParent;
#endif
    st = WdfDeviceInitAssignName(init, &name);
    if (NT_SUCCESS(st)) st = WdfDeviceCreate(&init, &attrs, &Device);
    if (!NT_SUCCESS(st)) { WdfDeviceInitFree(init); return st; }
    st = MakeQueue(WdfIoQueueDispatchParallel, TRUE, DefaultIoctl, none, inherit, NULL);
    if (NT_SUCCESS(st)) st = MakeQueue(WdfIoQueueDispatchManual, FALSE, NULL, none, inherit, &Manual);
    if (NT_SUCCESS(st)) st = MakeQueue(WdfIoQueueDispatchParallel, FALSE, SlowIoctl, serial, passive, &Serial);
    if (NT_SUCCESS(st)) st = MakeQueue(WdfIoQueueDispatchParallel, FALSE, SlowIoctl, none, inherit, &Free);
    if (NT_SUCCESS(st)) st = MakeQueue(WdfIoQueueDispatchParallel, FALSE, SpinIoctl, WdfSynchronizationScopeQueue,
                                       WdfExecutionLevelDispatch, &Spin);
    if (!NT_SUCCESS(st)) return st;
    WDF_IO_QUEUE_CONFIG_INIT(&qconfig, WdfIoQueueDispatchSequential);
    qconfig.EvtIoInternalDeviceControl = InternalIoctl;
    st = WdfIoQueueCreate(Device, &qconfig, WDF_NO_OBJECT_ATTRIBUTES, &Internal);
    if (NT_SUCCESS(st)) st = WdfDeviceConfigureRequestDispatching(Device, Internal, WdfRequestTypeDeviceControlInternal);
    if (!NT_SUCCESS(st)) return st;
    WDF_IO_QUEUE_CONFIG_INIT(&qconfig, WdfIoQueueDispatchSequential);
    qconfig.EvtIoRead = ReadIo;
    WDF_OBJECT_ATTRIBUTES_INIT(&attrs);
    attrs.SynchronizationScope = none;
    attrs.ExecutionLevel = passive;
    st = WdfIoQueueCreate(Device, &qconfig, &attrs, &Reads);
    if (NT_SUCCESS(st)) st = WdfDeviceConfigureRequestDispatching(Device, Reads, WdfRequestTypeRead);
    if (!NT_SUCCESS(st)) return st;
    WdfControlFinishInitializing(Device);
    Checks();
    SelfInternal();
    DbgPrint("done");
    return STATUS_SUCCESS;
}
