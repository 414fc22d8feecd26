/* rt_wdfrw test driver (ours): a KMDF control device whose default queue handles EvtIoWrite
 * (stores the bytes) and EvtIoRead (returns them), buffered by default or direct when built
 * with -DRT_DIRECT; each callback also checks that the other direction's buffer is refused. */
#include <ntddk.h>
#include <wdf.h>

DRIVER_INITIALIZE DriverEntry;

static UCHAR Stored[64];
static size_t StoredLen;

static void EvtIoWrite(WDFQUEUE queue, WDFREQUEST request, size_t length)
{
    PVOID in = NULL, out = NULL;
    size_t len = 0;
    NTSTATUS st;
    UNREFERENCED_PARAMETER(queue);
    if (WdfRequestRetrieveOutputBuffer(request, 1, &out, NULL) != STATUS_INVALID_DEVICE_REQUEST) {
        WdfRequestComplete(request, STATUS_INTERNAL_ERROR);
        return;
    }
    st = WdfRequestRetrieveInputBuffer(request, 1, &in, &len);
    if (!NT_SUCCESS(st) || len != length || len > sizeof(Stored)) {
        WdfRequestComplete(request, NT_SUCCESS(st) ? STATUS_BUFFER_OVERFLOW : st);
        return;
    }
    memcpy(Stored, in, len);
    StoredLen = len;
    WdfRequestCompleteWithInformation(request, STATUS_SUCCESS, len);
}

static void EvtIoRead(WDFQUEUE queue, WDFREQUEST request, size_t length)
{
    WDFMEMORY memory;
    PVOID in = NULL, out;
    size_t cap = 0, n;
    UNREFERENCED_PARAMETER(queue);
    if (WdfRequestRetrieveInputBuffer(request, 1, &in, NULL) != STATUS_INVALID_DEVICE_REQUEST ||
        !NT_SUCCESS(WdfRequestRetrieveOutputMemory(request, &memory))) {
        WdfRequestComplete(request, STATUS_INTERNAL_ERROR);
        return;
    }
    out = WdfMemoryGetBuffer(memory, &cap);
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
    DECLARE_CONST_UNICODE_STRING(name, L"\\Device\\RtWdfRw");
    NTSTATUS st;
    WDF_DRIVER_CONFIG_INIT(&config, WDF_NO_EVENT_CALLBACK);
    config.DriverInitFlags |= WdfDriverInitNonPnpDriver;
    st = WdfDriverCreate(DriverObject, RegistryPath, WDF_NO_OBJECT_ATTRIBUTES, &config, &driver);
    if (!NT_SUCCESS(st)) return st;
    init = WdfControlDeviceInitAllocate(driver, &SDDL_DEVOBJ_KERNEL_ONLY);
    if (!init) return STATUS_INSUFFICIENT_RESOURCES;
#ifdef RT_DIRECT
    WdfDeviceInitSetIoType(init, WdfDeviceIoDirect);
#endif
    st = WdfDeviceInitAssignName(init, &name);
    if (NT_SUCCESS(st)) st = WdfDeviceCreate(&init, WDF_NO_OBJECT_ATTRIBUTES, &device);
    if (!NT_SUCCESS(st)) { WdfDeviceInitFree(init); return st; }
    WDF_IO_QUEUE_CONFIG_INIT_DEFAULT_QUEUE(&qconfig, WdfIoQueueDispatchSequential);
    qconfig.EvtIoRead = EvtIoRead;
    qconfig.EvtIoWrite = EvtIoWrite;
    st = WdfIoQueueCreate(device, &qconfig, WDF_NO_OBJECT_ATTRIBUTES, NULL);
    if (!NT_SUCCESS(st)) return st;
    WdfControlFinishInitializing(device);
    return STATUS_SUCCESS;
}
