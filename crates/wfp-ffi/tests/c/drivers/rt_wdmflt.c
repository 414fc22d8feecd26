/* A WDM filter driver on top of rt_wdm's device (tests/wdm.rs): IoGetDeviceObjectPointer by the
 * symbolic link, an unnamed device attached with IoAttachDeviceToDeviceStack, dispatch routines
 * that pass requests down (IoSkipCurrentIrpStackLocation), forward them with a completion
 * routine (IoCopyCurrentIrpStackLocationToNext + IoSetCompletionRoutineEx, pending propagated),
 * or forward and wait (STATUS_MORE_PROCESSING_REQUIRED, then IoCompleteRequest again). Its own
 * IOCTL_FLT_SELFTEST sends requests of its own to the lower device: IoBuildDeviceIoControlRequest
 * (completed at once and pended), and IoAllocateIrp + IoCancelIrp + IoFreeIrp. Each check prints
 * "ok NAME" or "FAIL NAME". */
#include <ntddk.h>

#define IOCTL_RT_ECHO CTL_CODE(FILE_DEVICE_NETWORK, 0x800, METHOD_BUFFERED, FILE_ANY_ACCESS)
#define IOCTL_RT_REVERSE_DIRECT CTL_CODE(FILE_DEVICE_NETWORK, 0x802, METHOD_OUT_DIRECT, FILE_ANY_ACCESS)
#define IOCTL_RT_PEND CTL_CODE(FILE_DEVICE_NETWORK, 0x804, METHOD_BUFFERED, FILE_ANY_ACCESS)
#define IOCTL_RT_PEND_CANCELABLE CTL_CODE(FILE_DEVICE_NETWORK, 0x809, METHOD_BUFFERED, FILE_ANY_ACCESS)
#define IOCTL_FLT_SELFTEST CTL_CODE(FILE_DEVICE_NETWORK, 0x900, METHOD_BUFFERED, FILE_ANY_ACCESS)
#define IOCTL_FLT_STATS CTL_CODE(FILE_DEVICE_NETWORK, 0x901, METHOD_BUFFERED, FILE_ANY_ACCESS)
#define IOCTL_FLT_MISUSE CTL_CODE(FILE_DEVICE_NETWORK, 0x902, METHOD_BUFFERED, FILE_ANY_ACCESS)
#define FLT_TAG 'tlFR'

#define CHECK(name, cond) DbgPrint("%s %s\n", (cond) ? "ok" : "FAIL", name)

typedef struct _FLT_EXTENSION {
    PDEVICE_OBJECT Lower;
    LONG PassedDown;
    LONG Completions;
    LONG Waited;
} FLT_EXTENSION, *PFLT_EXTENSION;

DRIVER_UNLOAD FltUnload;
DRIVER_DISPATCH FltPassDown, FltDeviceControl;
IO_COMPLETION_ROUTINE FltMark, FltSignal, FltOwnIrpDone;

static PDEVICE_OBJECT gFilter;
static PFILE_OBJECT gLowerFile;

NTSTATUS FltPassDown(PDEVICE_OBJECT DeviceObject, PIRP Irp)
{
    PFLT_EXTENSION ext = (PFLT_EXTENSION)DeviceObject->DeviceExtension;
    InterlockedIncrement(&ext->PassedDown);
    IoSkipCurrentIrpStackLocation(Irp);
    return IoCallDriver(ext->Lower, Irp);
}

/* Forwarded with a completion routine: marks the first output byte, propagates pending. */
NTSTATUS FltMark(PDEVICE_OBJECT DeviceObject, PIRP Irp, PVOID Context)
{
    PFLT_EXTENSION ext = (PFLT_EXTENSION)Context;
    if (Irp->PendingReturned) IoMarkIrpPending(Irp);
    CHECK("completion routine gets the filter's device", DeviceObject == gFilter);
    InterlockedIncrement(&ext->Completions);
    if (NT_SUCCESS(Irp->IoStatus.Status) && Irp->IoStatus.Information > 0)
        ((PUCHAR)Irp->AssociatedIrp.SystemBuffer)[0] = '#';
    return STATUS_CONTINUE_COMPLETION;
}

/* Forward and wait: the dispatch routine takes the IRP back. */
NTSTATUS FltSignal(PDEVICE_OBJECT DeviceObject, PIRP Irp, PVOID Context)
{
    UNREFERENCED_PARAMETER(DeviceObject);
    UNREFERENCED_PARAMETER(Irp);
    KeSetEvent((PKEVENT)Context, IO_NO_INCREMENT, FALSE);
    return STATUS_MORE_PROCESSING_REQUIRED;
}

static NTSTATUS Complete(PIRP Irp, NTSTATUS Status, ULONG_PTR Information)
{
    Irp->IoStatus.Status = Status;
    Irp->IoStatus.Information = Information;
    IoCompleteRequest(Irp, IO_NO_INCREMENT);
    return Status;
}

static NTSTATUS ForwardAndWait(PFLT_EXTENSION ext, PIRP Irp)
{
    KEVENT done;
    NTSTATUS st;
    KeInitializeEvent(&done, NotificationEvent, FALSE);
    IoCopyCurrentIrpStackLocationToNext(Irp);
    IoSetCompletionRoutine(Irp, FltSignal, &done, TRUE, TRUE, TRUE);
    st = IoCallDriver(ext->Lower, Irp);
    if (st == STATUS_PENDING) KeWaitForSingleObject(&done, Executive, KernelMode, FALSE, NULL);
    InterlockedIncrement(&ext->Waited);
    st = Irp->IoStatus.Status;
    IoCompleteRequest(Irp, IO_NO_INCREMENT);
    return st;
}

/* IoBuildDeviceIoControlRequest to the lower device, waited for. */
static NTSTATUS BuiltRequest(PFLT_EXTENSION ext, ULONG Code, PVOID In, ULONG InLen, PVOID Out, ULONG OutLen,
                             PIO_STATUS_BLOCK Iosb)
{
    KEVENT done;
    NTSTATUS st;
    PIRP irp;
    KeInitializeEvent(&done, NotificationEvent, FALSE);
    irp = IoBuildDeviceIoControlRequest(Code, ext->Lower, In, InLen, Out, OutLen, FALSE, &done, Iosb);
    if (irp == NULL) return STATUS_INSUFFICIENT_RESOURCES;
    IoGetNextIrpStackLocation(irp)->FileObject = gLowerFile;
    st = IoCallDriver(ext->Lower, irp);
    if (st == STATUS_PENDING) {
        KeWaitForSingleObject(&done, Executive, KernelMode, FALSE, NULL);
        st = Iosb->Status;
    }
    return st;
}

NTSTATUS FltOwnIrpDone(PDEVICE_OBJECT DeviceObject, PIRP Irp, PVOID Context)
{
    UNREFERENCED_PARAMETER(Irp);
    CHECK("own IRP: completion routine without a device", DeviceObject == NULL);
    KeSetEvent((PKEVENT)Context, IO_NO_INCREMENT, FALSE);
    return STATUS_MORE_PROCESSING_REQUIRED;
}

/* IoAllocateIrp for a request the lower driver queues, cancelled with IoCancelIrp. */
static void CancelOwnIrp(PFLT_EXTENSION ext)
{
    KEVENT done;
    UCHAR out = 0;
    PIRP irp = IoAllocateIrp(ext->Lower->StackSize, FALSE);
    PIO_STACK_LOCATION next;
    NTSTATUS st;
    CHECK("IoAllocateIrp", irp != NULL && irp->StackCount == ext->Lower->StackSize &&
                               irp->CurrentLocation == irp->StackCount + 1);
    if (irp == NULL) return;
    KeInitializeEvent(&done, NotificationEvent, FALSE);
    next = IoGetNextIrpStackLocation(irp);
    next->MajorFunction = IRP_MJ_DEVICE_CONTROL;
    next->Parameters.DeviceIoControl.IoControlCode = IOCTL_RT_PEND_CANCELABLE;
    next->Parameters.DeviceIoControl.OutputBufferLength = 1;
    next->FileObject = gLowerFile;
    irp->AssociatedIrp.SystemBuffer = &out;
    IoSetCompletionRoutine(irp, FltOwnIrpDone, &done, TRUE, TRUE, TRUE);
    st = IoCallDriver(ext->Lower, irp);
    CHECK("queued by the lower driver", st == STATUS_PENDING);
    CHECK("IoCancelIrp calls the cancel routine", IoCancelIrp(irp) == TRUE);
    KeWaitForSingleObject(&done, Executive, KernelMode, FALSE, NULL);
    CHECK("cancelled", irp->IoStatus.Status == STATUS_CANCELLED && irp->Cancel);
    CHECK("IoCancelIrp again finds no routine", IoCancelIrp(irp) == FALSE);
    IoFreeIrp(irp);
}

static NTSTATUS SelfTest(PFLT_EXTENSION ext)
{
    IO_STATUS_BLOCK iosb;
    UCHAR buf[8] = "ping";
    UCHAR pended = 0;
    NTSTATUS st;
    CHECK("PASSIVE_LEVEL", KeGetCurrentIrql() == PASSIVE_LEVEL);
    RtlFillMemory(&iosb, sizeof(iosb), 0xcc);
    st = BuiltRequest(ext, IOCTL_RT_ECHO, buf, 4, buf, sizeof(buf), &iosb);
    CHECK("IoBuildDeviceIoControlRequest echo", st == STATUS_SUCCESS && iosb.Status == STATUS_SUCCESS &&
                                                    iosb.Information == 4 && RtlEqualMemory(buf, "ping", 4));
    RtlFillMemory(&iosb, sizeof(iosb), 0xcc);
    st = BuiltRequest(ext, IOCTL_RT_PEND, NULL, 0, &pended, 1, &iosb);
    CHECK("IoBuildDeviceIoControlRequest pended", st == STATUS_SUCCESS && iosb.Information == 1 && pended == 0x5a);
    CancelOwnIrp(ext);
    return STATUS_SUCCESS;
}

/* Verifier material: an IRP with no location left, an IoAllocateIrp IRP never freed, a built
 * request never sent (so never completed), IoFreeIrp of an IRP not from IoAllocateIrp. */
static void Misuse(PFLT_EXTENSION ext)
{
    static KEVENT never;
    static IO_STATUS_BLOCK iosb;
    PIRP built, irp = IoAllocateIrp(1, FALSE);
    KeInitializeEvent(&never, NotificationEvent, FALSE);
    built = IoBuildDeviceIoControlRequest(IOCTL_RT_ECHO, ext->Lower, NULL, 0, NULL, 0, FALSE, &never, &iosb);
    if (built != NULL) IoFreeIrp(built);
    if (irp == NULL) return;
    IoGetNextIrpStackLocation(irp)->MajorFunction = IRP_MJ_DEVICE_CONTROL;
    IoSetNextIrpStackLocation(irp);
    CHECK("IoCallDriver without a location fails", IoCallDriver(ext->Lower, irp) == STATUS_INVALID_PARAMETER);
}

NTSTATUS FltDeviceControl(PDEVICE_OBJECT DeviceObject, PIRP Irp)
{
    PFLT_EXTENSION ext = (PFLT_EXTENSION)DeviceObject->DeviceExtension;
    PIO_STACK_LOCATION sp = IoGetCurrentIrpStackLocation(Irp);
    ULONG out = sp->Parameters.DeviceIoControl.OutputBufferLength;
    NTSTATUS st;
    switch (sp->Parameters.DeviceIoControl.IoControlCode) {
    case IOCTL_FLT_SELFTEST:
        return Complete(Irp, SelfTest(ext), 0);
    case IOCTL_FLT_MISUSE:
        Misuse(ext);
        return Complete(Irp, STATUS_SUCCESS, 0);
    case IOCTL_FLT_STATS:
        if (out < 3 * sizeof(LONG)) return Complete(Irp, STATUS_BUFFER_TOO_SMALL, 0);
        ((PLONG)Irp->AssociatedIrp.SystemBuffer)[0] = ext->PassedDown;
        ((PLONG)Irp->AssociatedIrp.SystemBuffer)[1] = ext->Completions;
        ((PLONG)Irp->AssociatedIrp.SystemBuffer)[2] = ext->Waited;
        return Complete(Irp, STATUS_SUCCESS, 3 * sizeof(LONG));
    case IOCTL_RT_ECHO:
    case IOCTL_RT_PEND:
        IoCopyCurrentIrpStackLocationToNext(Irp);
        st = IoSetCompletionRoutineEx(DeviceObject, Irp, FltMark, ext, TRUE, TRUE, TRUE);
        if (!NT_SUCCESS(st)) return Complete(Irp, st, 0);
        return IoCallDriver(ext->Lower, Irp);
    case IOCTL_RT_REVERSE_DIRECT:
        return ForwardAndWait(ext, Irp);
    default:
        return FltPassDown(DeviceObject, Irp);
    }
}

void FltUnload(PDRIVER_OBJECT DriverObject)
{
    PFLT_EXTENSION ext = (PFLT_EXTENSION)gFilter->DeviceExtension;
    UNREFERENCED_PARAMETER(DriverObject);
    IoDetachDevice(ext->Lower);
    CHECK("detached", IoGetAttachedDevice(ext->Lower) == ext->Lower);
    IoDeleteDevice(gFilter);
    ObDereferenceObject(gLowerFile);
    DbgPrint("filter unloaded\n");
}

NTSTATUS DriverEntry(PDRIVER_OBJECT DriverObject, PUNICODE_STRING RegistryPath)
{
    UNICODE_STRING link = RTL_CONSTANT_STRING(L"\\DosDevices\\RtWdm");
    UNICODE_STRING missing = RTL_CONSTANT_STRING(L"\\Device\\NoSuchDevice");
    PDEVICE_OBJECT lower = NULL, dummy = NULL;
    PFILE_OBJECT file = NULL;
    PFLT_EXTENSION ext;
    NTSTATUS st;
    ULONG i;
    UNREFERENCED_PARAMETER(RegistryPath);
    CHECK("IoGetDeviceObjectPointer unknown name",
          IoGetDeviceObjectPointer(&missing, FILE_READ_DATA, &file, &dummy) == STATUS_OBJECT_NAME_NOT_FOUND);
    st = IoGetDeviceObjectPointer(&link, FILE_READ_DATA, &gLowerFile, &lower);
    CHECK("IoGetDeviceObjectPointer", NT_SUCCESS(st) && lower != NULL && gLowerFile->DeviceObject == lower &&
                                          gLowerFile->FsContext != NULL);
    if (!NT_SUCCESS(st)) return st;
    st = IoCreateDevice(DriverObject, sizeof(FLT_EXTENSION), NULL, lower->DeviceType, 0, FALSE, &gFilter);
    if (!NT_SUCCESS(st)) {
        ObDereferenceObject(gLowerFile);
        return st;
    }
    ext = (PFLT_EXTENSION)gFilter->DeviceExtension;
    gFilter->Flags |= lower->Flags & (DO_BUFFERED_IO | DO_DIRECT_IO);
    ext->Lower = IoAttachDeviceToDeviceStack(gFilter, lower);
    CHECK("IoAttachDeviceToDeviceStack", ext->Lower == lower && gFilter->StackSize == lower->StackSize + 1 &&
                                             IoGetAttachedDevice(lower) == gFilter && lower->AttachedDevice == gFilter);
    for (i = 0; i <= IRP_MJ_MAXIMUM_FUNCTION; i++) DriverObject->MajorFunction[i] = FltPassDown;
    DriverObject->MajorFunction[IRP_MJ_DEVICE_CONTROL] = FltDeviceControl;
    DriverObject->DriverUnload = FltUnload;
    gFilter->Flags &= ~DO_DEVICE_INITIALIZING;
    DbgPrint("filter attached\n");
    return STATUS_SUCCESS;
}
