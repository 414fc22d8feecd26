/* A KMDF non-PnP control-device driver, written as WFP callout samples write their entry point:
 * WdfDriverCreate, a named control device with a symbolic link, parameters from the registry, a
 * default queue whose EvtIoDeviceControl echoes, reverses and reports parameters. */
#include <ntddk.h>
#include <wdf.h>
#include <initguid.h>

DEFINE_GUID(TEST_DEVICE_CLASS, 0x11223344, 0x5566, 0x7788, 0x99, 0xaa, 0xbb, 0xcc, 0xdd, 0xee, 0xff, 0x00);

#define IOCTL_ECHO CTL_CODE(FILE_DEVICE_NETWORK, 0x800, METHOD_BUFFERED, FILE_ANY_ACCESS)
#define IOCTL_REVERSE_MEMORY CTL_CODE(FILE_DEVICE_NETWORK, 0x801, METHOD_BUFFERED, FILE_ANY_ACCESS)
#define IOCTL_PARAMS CTL_CODE(FILE_DEVICE_NETWORK, 0x802, METHOD_BUFFERED, FILE_ANY_ACCESS)
#define IOCTL_DEFERRED CTL_CODE(FILE_DEVICE_NETWORK, 0x803, METHOD_BUFFERED, FILE_ANY_ACCESS)
#define IOCTL_OUT_DIRECT CTL_CODE(FILE_DEVICE_NETWORK, 0x804, METHOD_OUT_DIRECT, FILE_ANY_ACCESS)
#define IOCTL_HOLD CTL_CODE(FILE_DEVICE_NETWORK, 0x805, METHOD_BUFFERED, FILE_ANY_ACCESS)
#define IOCTL_CHECK CTL_CODE(FILE_DEVICE_NETWORK, 0x806, METHOD_BUFFERED, FILE_ANY_ACCESS)

typedef struct _DEVICE_CONTEXT {
    ULONG Mode;
    WCHAR Rule[32];
    ULONG Requests;
    PIO_WORKITEM Item;
    PIO_WORKITEM HoldItem;
    LONG HeldCompleted;
} DEVICE_CONTEXT;
WDF_DECLARE_CONTEXT_TYPE_WITH_NAME(DEVICE_CONTEXT, GetDeviceContext)

static WDFDEVICE Device;

static void Deferred(PDEVICE_OBJECT dev, PVOID request)
{
    UNREFERENCED_PARAMETER(dev);
    /* Completed later, from a worker thread at PASSIVE_LEVEL. */
    WdfRequestCompleteWithInformation((WDFREQUEST)request, STATUS_SUCCESS, 0);
}

static void CompleteHeld(PDEVICE_OBJECT dev, PVOID request)
{
    LARGE_INTEGER delay;
    UNREFERENCED_PARAMETER(dev);
    delay.QuadPart = -10000LL * 50; /* the sequential queue holds the next request meanwhile */
    KeDelayExecutionThread(KernelMode, FALSE, &delay);
    InterlockedExchange(&GetDeviceContext(Device)->HeldCompleted, 1);
    WdfRequestComplete((WDFREQUEST)request, STATUS_SUCCESS);
}

static void EvtIoDeviceControl(WDFQUEUE Queue, WDFREQUEST Request, size_t OutLen, size_t InLen, ULONG Code)
{
    DEVICE_CONTEXT *ctx = GetDeviceContext(Device);
    PVOID in = NULL, out = NULL;
    size_t inLen = 0, outLen = 0;
    NTSTATUS st;
    ctx->Requests++;
    if (WdfRequestGetIoQueue(Request) != Queue) { WdfRequestComplete(Request, STATUS_INTERNAL_ERROR); return; }
    switch (Code) {
    case IOCTL_ECHO:
        st = WdfRequestRetrieveInputBuffer(Request, 1, &in, &inLen);
        if (!NT_SUCCESS(st)) { WdfRequestComplete(Request, st); return; }
        st = WdfRequestRetrieveOutputBuffer(Request, inLen, &out, &outLen);
        if (!NT_SUCCESS(st)) { WdfRequestComplete(Request, st); return; }
        /* METHOD_BUFFERED: the same system buffer. */
        WdfRequestCompleteWithInformation(Request, in == out ? STATUS_SUCCESS : STATUS_UNSUCCESSFUL, inLen);
        return;
    case IOCTL_REVERSE_MEMORY: {
        WDFMEMORY mem;
        st = WdfRequestRetrieveInputMemory(Request, &mem);
        if (!NT_SUCCESS(st)) { WdfRequestComplete(Request, st); return; }
        size_t n;
        UCHAR *b = WdfMemoryGetBuffer(mem, &n), tmp[256];
        for (size_t i = 0; i < n && i < sizeof(tmp); i++) tmp[i] = b[n - 1 - i];
        memcpy(b, tmp, n);
        WdfRequestSetInformation(Request, n);
        WdfRequestComplete(Request, STATUS_SUCCESS);
        return;
    }
    case IOCTL_PARAMS:
        st = WdfRequestRetrieveOutputBuffer(Request, 64, &out, &outLen);
        if (!NT_SUCCESS(st)) { WdfRequestComplete(Request, st); return; }
        RtlZeroMemory(out, outLen);
        memcpy(out, &ctx->Mode, sizeof(ULONG));
        memcpy((PUCHAR)out + 4, ctx->Rule, sizeof(ctx->Rule));
        WdfRequestCompleteWithInformation(Request, STATUS_SUCCESS, 4 + sizeof(ctx->Rule));
        return;
    case IOCTL_DEFERRED:
        IoQueueWorkItem(ctx->Item, Deferred, DelayedWorkQueue, Request);
        return;
    case IOCTL_HOLD:
        DbgPrint("held\n");
        IoQueueWorkItem(ctx->HoldItem, CompleteHeld, DelayedWorkQueue, Request);
        return;
    case IOCTL_CHECK:
        st = WdfRequestRetrieveOutputBuffer(Request, 4, &out, &outLen);
        if (!NT_SUCCESS(st)) { WdfRequestComplete(Request, st); return; }
        *(LONG *)out = ctx->HeldCompleted;
        WdfRequestCompleteWithInformation(Request, STATUS_SUCCESS, 4);
        return;
    case IOCTL_OUT_DIRECT:
        st = WdfRequestRetrieveOutputBuffer(Request, 4, &out, &outLen);
        if (!NT_SUCCESS(st)) { WdfRequestComplete(Request, st); return; }
        memcpy(out, "DRCT", 4);
        WdfRequestCompleteWithInformation(Request, STATUS_SUCCESS, 4);
        return;
    default:
        UNREFERENCED_PARAMETER(OutLen);
        UNREFERENCED_PARAMETER(InLen);
        WdfRequestComplete(Request, STATUS_INVALID_DEVICE_REQUEST);
    }
}

static void EvtDriverUnload(WDFDRIVER Driver)
{
    DEVICE_CONTEXT *ctx = GetDeviceContext(Device);
    DbgPrint("EvtDriverUnload %d requests\n", ctx->Requests);
    IoFreeWorkItem(ctx->Item);
    IoFreeWorkItem(ctx->HoldItem);
    UNREFERENCED_PARAMETER(Driver);
}

static void ReadParameters(WDFDRIVER driver, DEVICE_CONTEXT *ctx)
{
    WDFKEY key;
    DECLARE_CONST_UNICODE_STRING(modeName, L"Mode");
    DECLARE_CONST_UNICODE_STRING(ruleName, L"rule"); /* case-insensitive, as the registry */
    DECLARE_CONST_UNICODE_STRING(missingName, L"Missing");
    ULONG v = 0;
    USHORT need = 0;
    ctx->Mode = 7; /* default */
    NTSTATUS st = WdfDriverOpenParametersRegistryKey(driver, KEY_READ, WDF_NO_OBJECT_ATTRIBUTES, &key);
    if (!NT_SUCCESS(st)) { DbgPrint("open key %x\n", st); return; }
    st = WdfRegistryQueryULong(key, &modeName, &v);
    if (NT_SUCCESS(st)) ctx->Mode = v;
    DbgPrint("Mode %x %u\n", st, ctx->Mode);
    DbgPrint("Missing %x\n", WdfRegistryQueryULong(key, &missingName, &v));
    DbgPrint("Rule as ULONG %x\n", WdfRegistryQueryULong(key, &ruleName, &v));
    st = WdfRegistryQueryUnicodeString(key, &ruleName, &need, NULL);
    DbgPrint("Rule size %x %u\n", st, need);
    UNICODE_STRING small = { 0, 4, ctx->Rule };
    DbgPrint("Rule small %x\n", WdfRegistryQueryUnicodeString(key, &ruleName, NULL, &small));
    UNICODE_STRING rule = { 0, sizeof(ctx->Rule), ctx->Rule };
    st = WdfRegistryQueryUnicodeString(key, &ruleName, NULL, &rule);
    DbgPrint("Rule %x %wZ\n", st, &rule);
    ULONG type = 0, got = 0;
    UCHAR raw[8];
    st = WdfRegistryQueryValue(key, &modeName, sizeof(raw), raw, &got, &type);
    DbgPrint("QueryValue %x type %u len %u\n", st, type, got);
    WdfRegistryClose(key);
}

NTSTATUS DriverEntry(PDRIVER_OBJECT DriverObject, PUNICODE_STRING RegistryPath)
{
    WDF_DRIVER_CONFIG config;
    WDFDRIVER driver;
    PWDFDEVICE_INIT init;
    WDF_OBJECT_ATTRIBUTES attrs;
    WDF_IO_QUEUE_CONFIG qconfig;
    DECLARE_CONST_UNICODE_STRING(deviceName, L"\\Device\\RtWdf");
    DECLARE_CONST_UNICODE_STRING(linkName, L"\\DosDevices\\RtWdf");
    NTSTATUS st;

    WDF_DRIVER_CONFIG_INIT(&config, WDF_NO_EVENT_CALLBACK);
    config.DriverInitFlags |= WdfDriverInitNonPnpDriver;
    config.EvtDriverUnload = EvtDriverUnload;
    st = WdfDriverCreate(DriverObject, RegistryPath, WDF_NO_OBJECT_ATTRIBUTES, &config, &driver);
    if (!NT_SUCCESS(st)) return st;
    if (WdfDriverWdmGetDriverObject(driver) != DriverObject || WdfGetDriver() != driver
        || WdfWdmDriverGetWdfDriverHandle(DriverObject) != driver) return STATUS_UNSUCCESSFUL;

    init = WdfControlDeviceInitAllocate(driver, &SDDL_DEVOBJ_KERNEL_ONLY);
    if (!init) return STATUS_INSUFFICIENT_RESOURCES;
    WdfDeviceInitSetDeviceType(init, FILE_DEVICE_NETWORK);
    WdfDeviceInitSetCharacteristics(init, FILE_DEVICE_SECURE_OPEN, FALSE);
    WdfDeviceInitSetCharacteristics(init, FILE_AUTOGENERATED_DEVICE_NAME, TRUE);
    WdfDeviceInitSetDeviceClass(init, &TEST_DEVICE_CLASS);
    st = WdfDeviceInitAssignName(init, &deviceName);
    if (!NT_SUCCESS(st)) { WdfDeviceInitFree(init); return st; }
    WDF_OBJECT_ATTRIBUTES_INIT_CONTEXT_TYPE(&attrs, DEVICE_CONTEXT);
    st = WdfDeviceCreate(&init, &attrs, &Device);
    if (!NT_SUCCESS(st)) { WdfDeviceInitFree(init); return st; }
    if (init != NULL) return STATUS_UNSUCCESSFUL;
    st = WdfDeviceCreateSymbolicLink(Device, &linkName);
    if (!NT_SUCCESS(st)) return st;

    DEVICE_CONTEXT *ctx = GetDeviceContext(Device);
    if (ctx == NULL || ctx->Requests != 0) return STATUS_UNSUCCESSFUL;
    PDEVICE_OBJECT wdm = WdfDeviceWdmGetDeviceObject(Device);
    if (wdm == NULL || wdm->DriverObject != DriverObject || WdfDeviceGetDriver(Device) != driver) return STATUS_UNSUCCESSFUL;
    ctx->Item = IoAllocateWorkItem(wdm);
    ctx->HoldItem = IoAllocateWorkItem(wdm);
    ReadParameters(driver, ctx);

    WDF_IO_QUEUE_CONFIG_INIT_DEFAULT_QUEUE(&qconfig, WdfIoQueueDispatchSequential);
    qconfig.EvtIoDeviceControl = EvtIoDeviceControl;
    st = WdfIoQueueCreate(Device, &qconfig, WDF_NO_OBJECT_ATTRIBUTES, NULL);
    if (!NT_SUCCESS(st)) return st;
    DbgPrint("initializing %d\n", (wdm->Flags & DO_DEVICE_INITIALIZING) != 0);
    WdfControlFinishInitializing(Device);
    return STATUS_SUCCESS;
}
