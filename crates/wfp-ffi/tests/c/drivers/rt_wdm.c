/* A WDM-only driver (no KMDF): a named device with a symbolic link and MajorFunction[] dispatch
 * routines for IRP_MJ_CREATE / CLEANUP / CLOSE / DEVICE_CONTROL, driven by the host through
 * Driver::ioctl (tests/wdm.rs). Per-open state lives in FileObject->FsContext (pool), per-device
 * counters in the device extension. Each check prints "ok NAME" or "FAIL NAME". */
#include <ntddk.h>

#define RT_WDM_TAG 'mdWR'
#define IOCTL_RT_ECHO CTL_CODE(FILE_DEVICE_NETWORK, 0x800, METHOD_BUFFERED, FILE_ANY_ACCESS)
#define IOCTL_RT_STATS CTL_CODE(FILE_DEVICE_NETWORK, 0x801, METHOD_BUFFERED, FILE_READ_ACCESS)
#define IOCTL_RT_REVERSE_DIRECT CTL_CODE(FILE_DEVICE_NETWORK, 0x802, METHOD_OUT_DIRECT, FILE_ANY_ACCESS)
#define IOCTL_RT_UPPER_NEITHER CTL_CODE(FILE_DEVICE_NETWORK, 0x803, METHOD_NEITHER, FILE_ANY_ACCESS)
#define IOCTL_RT_PEND CTL_CODE(FILE_DEVICE_NETWORK, 0x804, METHOD_BUFFERED, FILE_ANY_ACCESS)
#define IOCTL_RT_COMPLETE_TWICE CTL_CODE(FILE_DEVICE_NETWORK, 0x805, METHOD_BUFFERED, FILE_ANY_ACCESS)
#define IOCTL_RT_FORGET CTL_CODE(FILE_DEVICE_NETWORK, 0x806, METHOD_BUFFERED, FILE_ANY_ACCESS)
#define IOCTL_RT_OVERRUN CTL_CODE(FILE_DEVICE_NETWORK, 0x807, METHOD_BUFFERED, FILE_ANY_ACCESS)
#define IOCTL_RT_SET_IO_FLAGS CTL_CODE(FILE_DEVICE_NETWORK, 0x808, METHOD_BUFFERED, FILE_ANY_ACCESS)
#define IOCTL_RT_PEND_CANCELABLE CTL_CODE(FILE_DEVICE_NETWORK, 0x809, METHOD_BUFFERED, FILE_ANY_ACCESS)
#define RT_STORE 64

typedef struct _RT_DEVICE_EXTENSION {
    LONG Opens;
    LONG Cleanups;
    LONG Closes;
    LONG Requests;
    PIO_WORKITEM WorkItem;
    PIRP Pended;
    PIRP Queued; /* the cancelable request, guarded by the cancel spin lock */
    LONG QueuedAtCleanup;
    LONG Cancelled;
    ULONG StoreLength;
    UCHAR Store[RT_STORE];
} RT_DEVICE_EXTENSION, *PRT_DEVICE_EXTENSION;

/* Per open: the open's sequence number and the requests sent on it. */
typedef struct _RT_OPEN {
    LONG Sequence;
    LONG Requests;
} RT_OPEN, *PRT_OPEN;

typedef struct _RT_STATS {
    LONG Opens;
    LONG Cleanups;
    LONG Closes;
    LONG Requests;
    LONG OpenRequests;
    LONG RequestorMode;
    LONG QueuedAtCleanup;
    LONG Cancelled;
} RT_STATS;

DRIVER_UNLOAD RtWdmUnload;
_Dispatch_type_(IRP_MJ_CREATE) DRIVER_DISPATCH RtWdmCreate;
_Dispatch_type_(IRP_MJ_CLEANUP) DRIVER_DISPATCH RtWdmCleanup;
_Dispatch_type_(IRP_MJ_CLOSE) DRIVER_DISPATCH RtWdmClose;
_Dispatch_type_(IRP_MJ_DEVICE_CONTROL) DRIVER_DISPATCH RtWdmDeviceControl;
_Dispatch_type_(IRP_MJ_READ) _Dispatch_type_(IRP_MJ_WRITE) DRIVER_DISPATCH RtWdmReadWrite;
DRIVER_CANCEL RtWdmCancel;
IO_WORKITEM_ROUTINE RtWdmCompletePended;

static UNICODE_STRING gDeviceName = RTL_CONSTANT_STRING(L"\\Device\\RtWdm");
static UNICODE_STRING gLinkName = RTL_CONSTANT_STRING(L"\\DosDevices\\RtWdm");

#define CHECK(name, cond) DbgPrint("%s %s\n", (cond) ? "ok" : "FAIL", name)

static NTSTATUS Complete(PIRP Irp, NTSTATUS Status, ULONG_PTR Information)
{
    Irp->IoStatus.Status = Status;
    Irp->IoStatus.Information = Information;
    IoCompleteRequest(Irp, IO_NO_INCREMENT);
    return Status;
}

NTSTATUS RtWdmCreate(PDEVICE_OBJECT DeviceObject, PIRP Irp)
{
    PRT_DEVICE_EXTENSION ext = (PRT_DEVICE_EXTENSION)DeviceObject->DeviceExtension;
    PIO_STACK_LOCATION sp = IoGetCurrentIrpStackLocation(Irp);
    PRT_OPEN open;
    if (KeGetCurrentIrql() != PASSIVE_LEVEL || sp->MajorFunction != IRP_MJ_CREATE || sp->FileObject == NULL ||
        sp->Parameters.Create.SecurityContext == NULL || (sp->Parameters.Create.Options >> 24) != FILE_OPEN)
        return Complete(Irp, STATUS_INVALID_PARAMETER, 0);
    open = (PRT_OPEN)ExAllocatePool2(POOL_FLAG_NON_PAGED, sizeof(*open), RT_WDM_TAG);
    if (open == NULL) return Complete(Irp, STATUS_INSUFFICIENT_RESOURCES, 0);
    open->Sequence = InterlockedIncrement(&ext->Opens);
    sp->FileObject->FsContext = open;
    return Complete(Irp, STATUS_SUCCESS, FILE_OPEN);
}

NTSTATUS RtWdmCleanup(PDEVICE_OBJECT DeviceObject, PIRP Irp)
{
    PRT_DEVICE_EXTENSION ext = (PRT_DEVICE_EXTENSION)DeviceObject->DeviceExtension;
    KIRQL irql;
    InterlockedIncrement(&ext->Cleanups);
    /* The host cancels a handle's pending requests before IRP_MJ_CLEANUP. */
    IoAcquireCancelSpinLock(&irql);
    if (ext->Queued != NULL) ext->QueuedAtCleanup++;
    IoReleaseCancelSpinLock(irql);
    return Complete(Irp, STATUS_SUCCESS, 0);
}

NTSTATUS RtWdmClose(PDEVICE_OBJECT DeviceObject, PIRP Irp)
{
    PRT_DEVICE_EXTENSION ext = (PRT_DEVICE_EXTENSION)DeviceObject->DeviceExtension;
    PIO_STACK_LOCATION sp = IoGetCurrentIrpStackLocation(Irp);
    if (sp->FileObject->FsContext) ExFreePoolWithTag(sp->FileObject->FsContext, RT_WDM_TAG);
    sp->FileObject->FsContext = NULL;
    InterlockedIncrement(&ext->Closes);
    return Complete(Irp, STATUS_SUCCESS, 0);
}

/* Runs on a system worker thread: completes the request RtWdmDeviceControl pended. */
void RtWdmCompletePended(PDEVICE_OBJECT DeviceObject, PVOID Context)
{
    PRT_DEVICE_EXTENSION ext = (PRT_DEVICE_EXTENSION)DeviceObject->DeviceExtension;
    PIRP irp = (PIRP)Context;
    PUCHAR buf = (PUCHAR)irp->AssociatedIrp.SystemBuffer;
    ext->Pended = NULL;
    buf[0] = 0x5a;
    Complete(irp, STATUS_SUCCESS, 1);
}

/* Called by IoCancelIrp with the cancel spin lock held. */
void RtWdmCancel(PDEVICE_OBJECT DeviceObject, PIRP Irp)
{
    PRT_DEVICE_EXTENSION ext = (PRT_DEVICE_EXTENSION)DeviceObject->DeviceExtension;
    CHECK("cancel routine: Irp->Cancel, DISPATCH_LEVEL", Irp->Cancel && KeGetCurrentIrql() == DISPATCH_LEVEL &&
                                                          Irp->CancelRoutine == NULL);
    if (ext->Queued == Irp) ext->Queued = NULL;
    IoReleaseCancelSpinLock(Irp->CancelIrql);
    InterlockedIncrement(&ext->Cancelled);
    Complete(Irp, STATUS_CANCELLED, 0);
}

/* Queues the request until it is cancelled. */
static NTSTATUS QueueCancelable(PRT_DEVICE_EXTENSION ext, PIRP Irp)
{
    KIRQL irql;
    IoAcquireCancelSpinLock(&irql);
    if (Irp->Cancel) {
        IoReleaseCancelSpinLock(irql);
        return Complete(Irp, STATUS_CANCELLED, 0);
    }
    IoSetCancelRoutine(Irp, RtWdmCancel);
    ext->Queued = Irp;
    IoMarkIrpPending(Irp);
    IoReleaseCancelSpinLock(irql);
    return STATUS_PENDING;
}

/* The caller's buffer of a read or write as the device's Flags select it. */
static PUCHAR RwBuffer(PDEVICE_OBJECT DeviceObject, PIRP Irp)
{
    if (DeviceObject->Flags & DO_BUFFERED_IO) return (PUCHAR)Irp->AssociatedIrp.SystemBuffer;
    if (DeviceObject->Flags & DO_DIRECT_IO)
        return Irp->MdlAddress ? (PUCHAR)MmGetSystemAddressForMdlSafe(Irp->MdlAddress, NormalPagePriority) : NULL;
    return (PUCHAR)Irp->UserBuffer;
}

/* IRP_MJ_WRITE keeps up to RT_STORE bytes; IRP_MJ_READ returns them. */
NTSTATUS RtWdmReadWrite(PDEVICE_OBJECT DeviceObject, PIRP Irp)
{
    PRT_DEVICE_EXTENSION ext = (PRT_DEVICE_EXTENSION)DeviceObject->DeviceExtension;
    PIO_STACK_LOCATION sp = IoGetCurrentIrpStackLocation(Irp);
    PUCHAR buf = RwBuffer(DeviceObject, Irp);
    ULONG n;
    if (KeGetCurrentIrql() != PASSIVE_LEVEL || sp->FileObject == NULL || sp->FileObject->FsContext == NULL)
        return Complete(Irp, STATUS_INVALID_PARAMETER, 0);
    if (sp->MajorFunction == IRP_MJ_WRITE) {
        n = sp->Parameters.Write.Length < RT_STORE ? sp->Parameters.Write.Length : RT_STORE;
        if (n && buf == NULL) return Complete(Irp, STATUS_INVALID_USER_BUFFER, 0);
        RtlCopyMemory(ext->Store, buf, n);
        ext->StoreLength = n;
        return Complete(Irp, STATUS_SUCCESS, n);
    }
    n = sp->Parameters.Read.Length < ext->StoreLength ? sp->Parameters.Read.Length : ext->StoreLength;
    if (n && buf == NULL) return Complete(Irp, STATUS_INVALID_USER_BUFFER, 0);
    RtlCopyMemory(buf, ext->Store, n);
    return Complete(Irp, STATUS_SUCCESS, n);
}

static NTSTATUS Reverse(PIRP Irp, PIO_STACK_LOCATION sp)
{
    ULONG in = sp->Parameters.DeviceIoControl.InputBufferLength, i;
    PUCHAR src = (PUCHAR)Irp->AssociatedIrp.SystemBuffer, dst;
    if (Irp->MdlAddress == NULL || MmGetMdlByteCount(Irp->MdlAddress) < in) return Complete(Irp, STATUS_BUFFER_TOO_SMALL, 0);
    dst = (PUCHAR)MmGetSystemAddressForMdlSafe(Irp->MdlAddress, NormalPagePriority | MdlMappingNoExecute);
    if (dst == NULL) return Complete(Irp, STATUS_INSUFFICIENT_RESOURCES, 0);
    for (i = 0; i < in; i++) dst[i] = src[in - 1 - i];
    return Complete(Irp, STATUS_SUCCESS, in);
}

static NTSTATUS Upper(PIRP Irp, PIO_STACK_LOCATION sp)
{
    ULONG in = sp->Parameters.DeviceIoControl.InputBufferLength, i;
    const char *src = (const char *)sp->Parameters.DeviceIoControl.Type3InputBuffer;
    char *dst = (char *)Irp->UserBuffer;
    if (Irp->AssociatedIrp.SystemBuffer != NULL || Irp->MdlAddress != NULL) return Complete(Irp, STATUS_INVALID_PARAMETER, 0);
    if (src == NULL || dst == NULL || sp->Parameters.DeviceIoControl.OutputBufferLength < in)
        return Complete(Irp, STATUS_BUFFER_TOO_SMALL, 0);
    for (i = 0; i < in; i++) dst[i] = (src[i] >= 'a' && src[i] <= 'z') ? (char)(src[i] - 32) : src[i];
    return Complete(Irp, STATUS_SUCCESS, in);
}

static NTSTATUS Stats(PDEVICE_OBJECT DeviceObject, PIRP Irp, PIO_STACK_LOCATION sp)
{
    PRT_DEVICE_EXTENSION ext = (PRT_DEVICE_EXTENSION)DeviceObject->DeviceExtension;
    PRT_OPEN open = (PRT_OPEN)sp->FileObject->FsContext;
    RT_STATS *out = (RT_STATS *)Irp->AssociatedIrp.SystemBuffer;
    ULONG len = sp->Parameters.DeviceIoControl.OutputBufferLength;
    /* The first six counters, or all of them. */
    if (len < FIELD_OFFSET(RT_STATS, QueuedAtCleanup)) return Complete(Irp, STATUS_BUFFER_TOO_SMALL, 0);
    out->Opens = ext->Opens;
    out->Cleanups = ext->Cleanups;
    out->Closes = ext->Closes;
    out->Requests = ext->Requests;
    out->OpenRequests = open->Requests;
    out->RequestorMode = Irp->RequestorMode;
    if (len < sizeof(RT_STATS)) return Complete(Irp, STATUS_SUCCESS, FIELD_OFFSET(RT_STATS, QueuedAtCleanup));
    out->QueuedAtCleanup = ext->QueuedAtCleanup;
    out->Cancelled = ext->Cancelled;
    return Complete(Irp, STATUS_SUCCESS, sizeof(RT_STATS));
}

NTSTATUS RtWdmDeviceControl(PDEVICE_OBJECT DeviceObject, PIRP Irp)
{
    PRT_DEVICE_EXTENSION ext = (PRT_DEVICE_EXTENSION)DeviceObject->DeviceExtension;
    PIO_STACK_LOCATION sp = IoGetCurrentIrpStackLocation(Irp);
    ULONG in = sp->Parameters.DeviceIoControl.InputBufferLength;
    ULONG out = sp->Parameters.DeviceIoControl.OutputBufferLength;
    PRT_OPEN open = (PRT_OPEN)sp->FileObject->FsContext;
    InterlockedIncrement(&ext->Requests);
    open->Requests++;
    switch (sp->Parameters.DeviceIoControl.IoControlCode) {
    case IOCTL_RT_ECHO:
        /* METHOD_BUFFERED: the input is already in the buffer the output comes back from. */
        if (out < in) return Complete(Irp, STATUS_BUFFER_TOO_SMALL, 0);
        return Complete(Irp, STATUS_SUCCESS, in);
    case IOCTL_RT_STATS:
        return Stats(DeviceObject, Irp, sp);
    case IOCTL_RT_REVERSE_DIRECT:
        return Reverse(Irp, sp);
    case IOCTL_RT_UPPER_NEITHER:
        return Upper(Irp, sp);
    case IOCTL_RT_PEND:
        if (out < 1) return Complete(Irp, STATUS_BUFFER_TOO_SMALL, 0);
        ext->Pended = Irp;
        IoMarkIrpPending(Irp);
        IoQueueWorkItem(ext->WorkItem, RtWdmCompletePended, DelayedWorkQueue, Irp);
        return STATUS_PENDING;
    case IOCTL_RT_COMPLETE_TWICE:
        Complete(Irp, STATUS_SUCCESS, 0);
        IoCompleteRequest(Irp, IO_NO_INCREMENT);
        return STATUS_SUCCESS;
    case IOCTL_RT_FORGET:
        return STATUS_SUCCESS;
    case IOCTL_RT_OVERRUN:
        return Complete(Irp, STATUS_SUCCESS, out + 8);
    case IOCTL_RT_SET_IO_FLAGS:
        if (in < sizeof(ULONG)) return Complete(Irp, STATUS_BUFFER_TOO_SMALL, 0);
        DeviceObject->Flags &= ~(DO_BUFFERED_IO | DO_DIRECT_IO);
        DeviceObject->Flags |= *(PULONG)Irp->AssociatedIrp.SystemBuffer & (DO_BUFFERED_IO | DO_DIRECT_IO);
        return Complete(Irp, STATUS_SUCCESS, 0);
    case IOCTL_RT_PEND_CANCELABLE:
        return QueueCancelable(ext, Irp);
    default:
        return Complete(Irp, STATUS_INVALID_DEVICE_REQUEST, 0);
    }
}

void RtWdmUnload(PDRIVER_OBJECT DriverObject)
{
    PDEVICE_OBJECT dev = DriverObject->DeviceObject;
    PRT_DEVICE_EXTENSION ext = (PRT_DEVICE_EXTENSION)dev->DeviceExtension;
    CHECK("IoDeleteSymbolicLink", NT_SUCCESS(IoDeleteSymbolicLink(&gLinkName)));
    CHECK("IoDeleteSymbolicLink again", IoDeleteSymbolicLink(&gLinkName) == STATUS_OBJECT_NAME_NOT_FOUND);
    DbgPrint("unloaded opens=%ld cleanups=%ld closes=%ld\n", ext->Opens, ext->Cleanups, ext->Closes);
    IoFreeWorkItem(ext->WorkItem);
    IoDeleteDevice(dev);
}

NTSTATUS DriverEntry(PDRIVER_OBJECT DriverObject, PUNICODE_STRING RegistryPath)
{
    PDEVICE_OBJECT dev = NULL, other = NULL;
    UNICODE_STRING upper = RTL_CONSTANT_STRING(L"\\DOSDEVICES\\rtwdm");
    UNICODE_STRING question = RTL_CONSTANT_STRING(L"\\??\\RtWdm");
    NTSTATUS st;
    UNREFERENCED_PARAMETER(RegistryPath);
    st = IoCreateDevice(DriverObject, sizeof(RT_DEVICE_EXTENSION), &gDeviceName, FILE_DEVICE_NETWORK,
                        FILE_DEVICE_SECURE_OPEN, FALSE, &dev);
    CHECK("IoCreateDevice", NT_SUCCESS(st) && dev != NULL);
    if (!NT_SUCCESS(st)) return st;
    CHECK("device fields", dev->DriverObject == DriverObject && DriverObject->DeviceObject == dev &&
                               dev->DeviceType == FILE_DEVICE_NETWORK && (dev->Flags & DO_DEVICE_INITIALIZING) &&
                               ((PRT_DEVICE_EXTENSION)dev->DeviceExtension)->Opens == 0);
    CHECK("IoCreateDevice same name",
          IoCreateDevice(DriverObject, 0, &gDeviceName, FILE_DEVICE_NETWORK, 0, FALSE, &other) == STATUS_OBJECT_NAME_COLLISION);
    dev->Flags |= DO_BUFFERED_IO;
    ((PRT_DEVICE_EXTENSION)dev->DeviceExtension)->WorkItem = IoAllocateWorkItem(dev);
    st = IoCreateSymbolicLink(&gLinkName, &gDeviceName);
    CHECK("IoCreateSymbolicLink", NT_SUCCESS(st));
    CHECK("IoCreateSymbolicLink same name, other case", IoCreateSymbolicLink(&upper, &gDeviceName) == STATUS_OBJECT_NAME_COLLISION);
    CHECK("IoCreateSymbolicLink \\??\\ form", IoCreateSymbolicLink(&question, &gDeviceName) == STATUS_OBJECT_NAME_COLLISION);
    DriverObject->MajorFunction[IRP_MJ_CREATE] = RtWdmCreate;
    DriverObject->MajorFunction[IRP_MJ_CLEANUP] = RtWdmCleanup;
    DriverObject->MajorFunction[IRP_MJ_CLOSE] = RtWdmClose;
    DriverObject->MajorFunction[IRP_MJ_DEVICE_CONTROL] = RtWdmDeviceControl;
    DriverObject->MajorFunction[IRP_MJ_READ] = RtWdmReadWrite;
    DriverObject->MajorFunction[IRP_MJ_WRITE] = RtWdmReadWrite;
    DriverObject->DriverUnload = RtWdmUnload;
    CHECK("CTL_CODE", IOCTL_RT_STATS == 0x126004 && METHOD_FROM_CTL_CODE(IOCTL_RT_UPPER_NEITHER) == METHOD_NEITHER &&
                          DEVICE_TYPE_FROM_CTL_CODE(IOCTL_RT_ECHO) == FILE_DEVICE_NETWORK);
    DbgPrint("done\n");
    return STATUS_SUCCESS;
}
