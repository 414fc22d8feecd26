/* rt_wdfneither test driver (ours): a KMDF control device with WdfDeviceIoNeither buffers and an
 * EvtIoInCallerContext that locks the requester's raw buffers into WDFMEMORY objects and queues
 * the request. The default queue then echoes a METHOD_NEITHER IOCTL reversed (0x800), stores a
 * write and returns it on a read, through those WDFMEMORY objects only; IOCTL 0x801 tries the
 * caller-context-only functions from the queue (each must fail). */
#include <ntddk.h>
#include <wdf.h>

DRIVER_INITIALIZE DriverEntry;

#define IOCTL_REVERSE CTL_CODE(FILE_DEVICE_UNKNOWN, 0x800, METHOD_NEITHER, FILE_ANY_ACCESS)
#define IOCTL_OUTSIDE CTL_CODE(FILE_DEVICE_UNKNOWN, 0x801, METHOD_NEITHER, FILE_ANY_ACCESS)

/* The sequential queue presents one request at a time: its locked buffers. */
static WDFMEMORY InMemory, OutMemory;
static UCHAR Stored[64];
static size_t StoredLen;

static void EvtIoInCallerContext(WDFDEVICE device, WDFREQUEST request)
{
    PVOID in = NULL, out = NULL;
    size_t inLen = 0, outLen = 0;
    NTSTATUS st = STATUS_SUCCESS;
    InMemory = OutMemory = NULL;
    if (NT_SUCCESS(WdfRequestRetrieveUnsafeUserInputBuffer(request, 1, &in, &inLen)))
        st = WdfRequestProbeAndLockUserBufferForRead(request, in, inLen, &InMemory);
    if (NT_SUCCESS(st) && NT_SUCCESS(WdfRequestRetrieveUnsafeUserOutputBuffer(request, 1, &out, &outLen)))
        st = WdfRequestProbeAndLockUserBufferForWrite(request, out, outLen, &OutMemory);
    if (NT_SUCCESS(st)) st = WdfDeviceEnqueueRequest(device, request);
    if (!NT_SUCCESS(st)) WdfRequestComplete(request, st);
}

static void EvtIoDeviceControl(WDFQUEUE queue, WDFREQUEST request, size_t outLen, size_t inLen, ULONG code)
{
    PUCHAR in, out;
    PVOID p = NULL;
    size_t n, i, cap = 0;
    WDFMEMORY m = NULL;
    UNREFERENCED_PARAMETER(queue);
    if (WdfRequestRetrieveInputBuffer(request, 1, &p, NULL) != STATUS_INVALID_DEVICE_REQUEST ||
        WdfRequestRetrieveOutputBuffer(request, 1, &p, NULL) != STATUS_INVALID_DEVICE_REQUEST) {
        WdfRequestComplete(request, STATUS_INTERNAL_ERROR);
        return;
    }
    if (code == IOCTL_OUTSIDE) {
        BOOLEAN refused = WdfRequestRetrieveUnsafeUserInputBuffer(request, 1, &p, NULL) == STATUS_INVALID_DEVICE_REQUEST &&
                          WdfRequestProbeAndLockUserBufferForWrite(request, Stored, 1, &m) == STATUS_INVALID_DEVICE_REQUEST &&
                          m == NULL;
        WdfRequestComplete(request, refused ? STATUS_SUCCESS : STATUS_INTERNAL_ERROR);
        return;
    }
    if (code != IOCTL_REVERSE || !InMemory || !OutMemory) {
        WdfRequestComplete(request, STATUS_INVALID_DEVICE_REQUEST);
        return;
    }
    in = WdfMemoryGetBuffer(InMemory, &n);
    out = WdfMemoryGetBuffer(OutMemory, &cap);
    if (n != inLen || cap != outLen) {
        WdfRequestComplete(request, STATUS_INTERNAL_ERROR);
        return;
    }
    if (n > cap) n = cap;
    for (i = 0; i < n; i++) out[i] = in[n - 1 - i];
    WdfRequestCompleteWithInformation(request, STATUS_SUCCESS, n);
}

static void EvtIoWrite(WDFQUEUE queue, WDFREQUEST request, size_t length)
{
    size_t n = 0;
    PVOID in;
    UNREFERENCED_PARAMETER(queue);
    if (!InMemory || OutMemory) {
        WdfRequestComplete(request, STATUS_INTERNAL_ERROR);
        return;
    }
    in = WdfMemoryGetBuffer(InMemory, &n);
    if (n != length || n > sizeof(Stored)) {
        WdfRequestComplete(request, STATUS_BUFFER_OVERFLOW);
        return;
    }
    memcpy(Stored, in, n);
    StoredLen = n;
    WdfRequestCompleteWithInformation(request, STATUS_SUCCESS, n);
}

static void EvtIoRead(WDFQUEUE queue, WDFREQUEST request, size_t length)
{
    size_t cap = 0, n;
    PVOID out;
    UNREFERENCED_PARAMETER(queue);
    if (InMemory || !OutMemory) {
        WdfRequestComplete(request, STATUS_INTERNAL_ERROR);
        return;
    }
    out = WdfMemoryGetBuffer(OutMemory, &cap);
    if (cap != length) {
        WdfRequestComplete(request, STATUS_INTERNAL_ERROR);
        return;
    }
    n = StoredLen < cap ? StoredLen : cap;
    memcpy(out, Stored, n);
    WdfRequestCompleteWithInformation(request, STATUS_SUCCESS, n);
}

NTSTATUS DriverEntry(PDRIVER_OBJECT DriverObject, PUNICODE_STRING RegistryPath)
{
    WDF_DRIVER_CONFIG config;
    WDF_IO_QUEUE_CONFIG qconfig;
    WDFDRIVER driver;
    WDFDEVICE device;
    PWDFDEVICE_INIT init;
    DECLARE_CONST_UNICODE_STRING(name, L"\\Device\\RtWdfNeither");
    NTSTATUS st;
    WDF_DRIVER_CONFIG_INIT(&config, WDF_NO_EVENT_CALLBACK);
    config.DriverInitFlags |= WdfDriverInitNonPnpDriver;
    st = WdfDriverCreate(DriverObject, RegistryPath, WDF_NO_OBJECT_ATTRIBUTES, &config, &driver);
    if (!NT_SUCCESS(st)) return st;
    init = WdfControlDeviceInitAllocate(driver, &SDDL_DEVOBJ_KERNEL_ONLY);
    if (!init) return STATUS_INSUFFICIENT_RESOURCES;
    WdfDeviceInitSetIoType(init, WdfDeviceIoNeither);
    WdfDeviceInitSetIoInCallerContextCallback(init, EvtIoInCallerContext);
    st = WdfDeviceInitAssignName(init, &name);
    if (NT_SUCCESS(st)) st = WdfDeviceCreate(&init, WDF_NO_OBJECT_ATTRIBUTES, &device);
    if (!NT_SUCCESS(st)) { WdfDeviceInitFree(init); return st; }
    WDF_IO_QUEUE_CONFIG_INIT_DEFAULT_QUEUE(&qconfig, WdfIoQueueDispatchSequential);
    qconfig.EvtIoDeviceControl = EvtIoDeviceControl;
    qconfig.EvtIoRead = EvtIoRead;
    qconfig.EvtIoWrite = EvtIoWrite;
    st = WdfIoQueueCreate(device, &qconfig, WDF_NO_OBJECT_ATTRIBUTES, NULL);
    if (!NT_SUCCESS(st)) return st;
    WdfControlFinishInitializing(device);
    return STATUS_SUCCESS;
}
