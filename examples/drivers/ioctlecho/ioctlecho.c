/*
 * ioctlecho: a KMDF control-device driver whose default queue answers device-control requests
 * (written for this project against the WDK-named headers; builds with `wfpctl driver build`).
 * It is what `wfpctl driver ioctl` talks to in the daemon's tests:
 *
 *  DriverEntry ──► WdfDriverCreate (non-PnP) ──► control device \Device\IoctlEcho
 *        │            + \DosDevices\IoctlEcho, parameter "Tag" (REG_DWORD, default 0)
 *        ▼
 *  default queue (sequential) ── EvtIoDeviceControl:
 *     IOCTL_IOCTLECHO_ECHO   input copied back           (Information = input length)
 *     IOCTL_IOCTLECHO_UPPER  ASCII letters upper-cased   (Information = input length)
 *     IOCTL_IOCTLECHO_STATS  { ULONG Requests; ULONG Tag } (Information = 8)
 *     anything else          STATUS_INVALID_DEVICE_REQUEST
 *  EvtDriverUnload ──► one log line with the request count
 */
#include <ntddk.h>
#include <wdf.h>

#define IOCTL_IOCTLECHO_ECHO CTL_CODE(FILE_DEVICE_NETWORK, 0x900, METHOD_BUFFERED, FILE_ANY_ACCESS)
#define IOCTL_IOCTLECHO_UPPER CTL_CODE(FILE_DEVICE_NETWORK, 0x901, METHOD_BUFFERED, FILE_ANY_ACCESS)
#define IOCTL_IOCTLECHO_STATS CTL_CODE(FILE_DEVICE_NETWORK, 0x902, METHOD_BUFFERED, FILE_ANY_ACCESS)

typedef struct _ECHO_CONTEXT {
    ULONG Requests;
    ULONG Tag;
} ECHO_CONTEXT;
WDF_DECLARE_CONTEXT_TYPE_WITH_NAME(ECHO_CONTEXT, GetEchoContext)

static WDFDEVICE gDevice;

/* Input and output of a METHOD_BUFFERED request share one system buffer: copying is a no-op,
 * but a driver written for any method copies, so this one does too (memmove: they overlap). */
static NTSTATUS Transform(WDFREQUEST Request, BOOLEAN upper, size_t *done)
{
    PVOID in = NULL, out = NULL;
    size_t inLen = 0, outLen = 0;
    NTSTATUS st = WdfRequestRetrieveInputBuffer(Request, 0, &in, &inLen);
    if (!NT_SUCCESS(st)) return st;
    if (inLen == 0) { *done = 0; return STATUS_SUCCESS; }
    st = WdfRequestRetrieveOutputBuffer(Request, inLen, &out, &outLen);
    if (!NT_SUCCESS(st)) return st;
    memmove(out, in, inLen);
    if (upper) {
        PUCHAR b = (PUCHAR)out;
        for (size_t i = 0; i < inLen; i++) {
            if (b[i] >= 'a' && b[i] <= 'z') b[i] = (UCHAR)(b[i] - 'a' + 'A');
        }
    }
    *done = inLen;
    return STATUS_SUCCESS;
}

static void EvtIoDeviceControl(WDFQUEUE Queue, WDFREQUEST Request, size_t OutLen, size_t InLen, ULONG Code)
{
    ECHO_CONTEXT *ctx = GetEchoContext(gDevice);
    size_t done = 0;
    NTSTATUS st;
    UNREFERENCED_PARAMETER(Queue);
    UNREFERENCED_PARAMETER(OutLen);
    UNREFERENCED_PARAMETER(InLen);
    ctx->Requests++;
    switch (Code) {
    case IOCTL_IOCTLECHO_ECHO:
    case IOCTL_IOCTLECHO_UPPER:
        st = Transform(Request, Code == IOCTL_IOCTLECHO_UPPER, &done);
        break;
    case IOCTL_IOCTLECHO_STATS: {
        PVOID out = NULL;
        size_t outLen = 0;
        st = WdfRequestRetrieveOutputBuffer(Request, 2 * sizeof(ULONG), &out, &outLen);
        if (NT_SUCCESS(st)) {
            ULONG v[2] = { ctx->Requests, ctx->Tag };
            memcpy(out, v, sizeof(v));
            done = sizeof(v);
        }
        break;
    }
    default:
        st = STATUS_INVALID_DEVICE_REQUEST;
    }
    DbgPrint("ioctlecho: ioctl %#x status %#x, %u bytes\n", Code, st, (ULONG)done);
    WdfRequestCompleteWithInformation(Request, st, NT_SUCCESS(st) ? done : 0);
}

static void EvtDriverUnload(WDFDRIVER Driver)
{
    UNREFERENCED_PARAMETER(Driver);
    DbgPrint("ioctlecho: unloaded after %u requests\n", GetEchoContext(gDevice)->Requests);
}

static ULONG ReadTag(WDFDRIVER driver)
{
    WDFKEY key;
    ULONG tag = 0;
    DECLARE_CONST_UNICODE_STRING(tagName, L"Tag");
    if (!NT_SUCCESS(WdfDriverOpenParametersRegistryKey(driver, KEY_READ, WDF_NO_OBJECT_ATTRIBUTES, &key))) return 0;
    if (!NT_SUCCESS(WdfRegistryQueryULong(key, &tagName, &tag))) tag = 0;
    WdfRegistryClose(key);
    return tag;
}

NTSTATUS DriverEntry(PDRIVER_OBJECT DriverObject, PUNICODE_STRING RegistryPath)
{
    WDF_DRIVER_CONFIG config;
    WDFDRIVER driver;
    PWDFDEVICE_INIT init;
    WDF_OBJECT_ATTRIBUTES attrs;
    WDF_IO_QUEUE_CONFIG qconfig;
    DECLARE_CONST_UNICODE_STRING(deviceName, L"\\Device\\IoctlEcho");
    DECLARE_CONST_UNICODE_STRING(linkName, L"\\DosDevices\\IoctlEcho");
    NTSTATUS st;

    WDF_DRIVER_CONFIG_INIT(&config, WDF_NO_EVENT_CALLBACK);
    config.DriverInitFlags |= WdfDriverInitNonPnpDriver;
    config.EvtDriverUnload = EvtDriverUnload;
    st = WdfDriverCreate(DriverObject, RegistryPath, WDF_NO_OBJECT_ATTRIBUTES, &config, &driver);
    if (!NT_SUCCESS(st)) return st;

    init = WdfControlDeviceInitAllocate(driver, &SDDL_DEVOBJ_KERNEL_ONLY);
    if (init == NULL) return STATUS_INSUFFICIENT_RESOURCES;
    WdfDeviceInitSetDeviceType(init, FILE_DEVICE_NETWORK);
    WdfDeviceInitSetCharacteristics(init, FILE_DEVICE_SECURE_OPEN, FALSE);
    st = WdfDeviceInitAssignName(init, &deviceName);
    if (!NT_SUCCESS(st)) { WdfDeviceInitFree(init); return st; }
    WDF_OBJECT_ATTRIBUTES_INIT_CONTEXT_TYPE(&attrs, ECHO_CONTEXT);
    st = WdfDeviceCreate(&init, &attrs, &gDevice);
    if (!NT_SUCCESS(st)) { WdfDeviceInitFree(init); return st; }
    st = WdfDeviceCreateSymbolicLink(gDevice, &linkName);
    if (!NT_SUCCESS(st)) return st;
    GetEchoContext(gDevice)->Tag = ReadTag(driver);

    WDF_IO_QUEUE_CONFIG_INIT_DEFAULT_QUEUE(&qconfig, WdfIoQueueDispatchSequential);
    qconfig.EvtIoDeviceControl = EvtIoDeviceControl;
    st = WdfIoQueueCreate(gDevice, &qconfig, WDF_NO_OBJECT_ATTRIBUTES, NULL);
    if (!NT_SUCCESS(st)) return st;
    WdfControlFinishInitializing(gDevice);
    DbgPrint("ioctlecho: DriverEntry, Tag %u\n", GetEchoContext(gDevice)->Tag);
    return STATUS_SUCCESS;
}
