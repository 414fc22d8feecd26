/* rt_csq test driver (ours): a WDM driver that parks device-control requests in cancel-safe
 * queues (IoCsqInitialize / IoCsqInitializeEx), takes them out by tag (IoCsqRemoveNextIrp with a
 * peek context) or by context (IoCsqRemoveIrp), refuses a second request in its Ex queue
 * (CsqInsertIrpEx failing), and completes the requests the host cancels when the handle closes
 * (CsqCompleteCanceledIrp). */
#include <ntddk.h>

#define IOCTL_QUEUE CTL_CODE(FILE_DEVICE_UNKNOWN, 0x900, METHOD_BUFFERED, FILE_ANY_ACCESS)
#define IOCTL_QUEUE_CTX CTL_CODE(FILE_DEVICE_UNKNOWN, 0x901, METHOD_BUFFERED, FILE_ANY_ACCESS)
#define IOCTL_NEXT CTL_CODE(FILE_DEVICE_UNKNOWN, 0x902, METHOD_BUFFERED, FILE_ANY_ACCESS)
#define IOCTL_REMOVE_CTX CTL_CODE(FILE_DEVICE_UNKNOWN, 0x903, METHOD_BUFFERED, FILE_ANY_ACCESS)
#define IOCTL_QUEUE_EX CTL_CODE(FILE_DEVICE_UNKNOWN, 0x904, METHOD_BUFFERED, FILE_ANY_ACCESS)
#define IOCTL_STATS CTL_CODE(FILE_DEVICE_UNKNOWN, 0x905, METHOD_BUFFERED, FILE_ANY_ACCESS)

typedef struct _QUEUE {
    IO_CSQ Csq;
    LIST_ENTRY Head;
    KSPIN_LOCK Lock;
    LONG Count;
} QUEUE;

DRIVER_INITIALIZE DriverEntry;

static QUEUE Q, QX;
static IO_CSQ_IRP_CONTEXT Ctx;
static volatile LONG Cancelled;
static PDEVICE_OBJECT Device;

#define TAG_OF(irp) (*(ULONG *)&(irp)->Tail.Overlay.DriverContext[0])

static QUEUE *QueueOf(PIO_CSQ csq) { return CONTAINING_RECORD(csq, QUEUE, Csq); }

static void Insert(PIO_CSQ csq, PIRP irp)
{
    QUEUE *q = QueueOf(csq);
    InsertTailList(&q->Head, &irp->Tail.Overlay.ListEntry);
    q->Count++;
}

/* The Ex queue holds one request at a time. */
static NTSTATUS InsertEx(PIO_CSQ csq, PIRP irp, PVOID insertContext)
{
    QUEUE *q = QueueOf(csq);
    if (q->Count >= (LONG)(ULONG_PTR)insertContext) return STATUS_INSUFFICIENT_RESOURCES;
    Insert(csq, irp);
    return STATUS_SUCCESS;
}

static void Remove(PIO_CSQ csq, PIRP irp)
{
    RemoveEntryList(&irp->Tail.Overlay.ListEntry);
    QueueOf(csq)->Count--;
}

/* The next IRP after `irp` (or the first) whose tag matches *peekContext (any when NULL). */
static PIRP Peek(PIO_CSQ csq, PIRP irp, PVOID peekContext)
{
    QUEUE *q = QueueOf(csq);
    PLIST_ENTRY e = irp ? irp->Tail.Overlay.ListEntry.Flink : q->Head.Flink;
    for (; e != &q->Head; e = e->Flink) {
        PIRP next = CONTAINING_RECORD(e, IRP, Tail.Overlay.ListEntry);
        if (!peekContext || TAG_OF(next) == *(ULONG *)peekContext) return next;
    }
    return NULL;
}

static void Acquire(PIO_CSQ csq, PKIRQL irql) { KeAcquireSpinLock(&QueueOf(csq)->Lock, irql); }
static void Release(PIO_CSQ csq, KIRQL irql) { KeReleaseSpinLock(&QueueOf(csq)->Lock, irql); }

static void CompleteCanceled(PIO_CSQ csq, PIRP irp)
{
    UNREFERENCED_PARAMETER(csq);
    InterlockedIncrement(&Cancelled);
    irp->IoStatus.Status = STATUS_CANCELLED;
    irp->IoStatus.Information = 0;
    IoCompleteRequest(irp, IO_NO_INCREMENT);
}

static NTSTATUS Complete(PIRP irp, NTSTATUS status, ULONG_PTR information)
{
    irp->IoStatus.Status = status;
    irp->IoStatus.Information = information;
    IoCompleteRequest(irp, IO_NO_INCREMENT);
    return status;
}

static NTSTATUS Succeed(PDEVICE_OBJECT dev, PIRP irp)
{
    UNREFERENCED_PARAMETER(dev);
    return Complete(irp, STATUS_SUCCESS, 0);
}

/* Completes a queued IRP with its tag as output. */
static void Finish(PIRP irp)
{
    *(ULONG *)irp->AssociatedIrp.SystemBuffer = TAG_OF(irp);
    Complete(irp, STATUS_SUCCESS, sizeof(ULONG));
}

static NTSTATUS Reply(PIRP irp, ULONG value)
{
    *(ULONG *)irp->AssociatedIrp.SystemBuffer = value;
    return Complete(irp, STATUS_SUCCESS, sizeof(ULONG));
}

static NTSTATUS DeviceControl(PDEVICE_OBJECT dev, PIRP irp)
{
    PIO_STACK_LOCATION sl = IoGetCurrentIrpStackLocation(irp);
    ULONG in = sl->Parameters.DeviceIoControl.InputBufferLength;
    ULONG out = sl->Parameters.DeviceIoControl.OutputBufferLength;
    ULONG tag = in >= sizeof(ULONG) ? *(ULONG *)irp->AssociatedIrp.SystemBuffer : 0;
    PIRP found;
    NTSTATUS st;
    UNREFERENCED_PARAMETER(dev);
    if (out < sizeof(ULONG)) return Complete(irp, STATUS_BUFFER_TOO_SMALL, 0);
    TAG_OF(irp) = tag;
    switch (sl->Parameters.DeviceIoControl.IoControlCode) {
    case IOCTL_QUEUE:
        IoCsqInsertIrp(&Q.Csq, irp, NULL);
        return STATUS_PENDING;
    case IOCTL_QUEUE_CTX:
        IoCsqInsertIrp(&Q.Csq, irp, &Ctx);
        return STATUS_PENDING;
    case IOCTL_NEXT:
        found = IoCsqRemoveNextIrp(&Q.Csq, in >= sizeof(ULONG) ? &tag : NULL);
        if (found) Finish(found);
        return Reply(irp, found != NULL);
    case IOCTL_REMOVE_CTX:
        found = IoCsqRemoveIrp(&Q.Csq, &Ctx);
        if (found) Finish(found);
        return Reply(irp, found != NULL);
    case IOCTL_QUEUE_EX:
        st = IoCsqInsertIrpEx(&QX.Csq, irp, NULL, (PVOID)1);
        if (!NT_SUCCESS(st)) return Complete(irp, st, 0);
        return STATUS_PENDING;
    case IOCTL_STATS:
        return Reply(irp, (ULONG)Cancelled << 16 | (ULONG)(Q.Count + QX.Count));
    }
    return Complete(irp, STATUS_INVALID_DEVICE_REQUEST, 0);
}

static void Unload(PDRIVER_OBJECT driver)
{
    UNREFERENCED_PARAMETER(driver);
    IoDeleteDevice(Device);
}

static NTSTATUS InitQueue(QUEUE *q, BOOLEAN ex)
{
    InitializeListHead(&q->Head);
    KeInitializeSpinLock(&q->Lock);
    q->Count = 0;
    if (ex) return IoCsqInitializeEx(&q->Csq, InsertEx, Remove, Peek, Acquire, Release, CompleteCanceled);
    return IoCsqInitialize(&q->Csq, Insert, Remove, Peek, Acquire, Release, CompleteCanceled);
}

NTSTATUS DriverEntry(PDRIVER_OBJECT DriverObject, PUNICODE_STRING RegistryPath)
{
    UNICODE_STRING name = RTL_CONSTANT_STRING(L"\\Device\\RtCsq");
    NTSTATUS st;
    UNREFERENCED_PARAMETER(RegistryPath);
    st = InitQueue(&Q, FALSE);
    if (NT_SUCCESS(st)) st = InitQueue(&QX, TRUE);
    if (!NT_SUCCESS(st)) return st;
    if (IoCsqInitialize(&Q.Csq, NULL, Remove, Peek, Acquire, Release, CompleteCanceled) != STATUS_INVALID_PARAMETER)
        return STATUS_UNSUCCESSFUL;
    st = InitQueue(&Q, FALSE);
    if (!NT_SUCCESS(st)) return st;
    st = IoCreateDevice(DriverObject, 0, &name, FILE_DEVICE_UNKNOWN, 0, FALSE, &Device);
    if (!NT_SUCCESS(st)) return st;
    DriverObject->MajorFunction[IRP_MJ_CREATE] = Succeed;
    DriverObject->MajorFunction[IRP_MJ_CLEANUP] = Succeed;
    DriverObject->MajorFunction[IRP_MJ_CLOSE] = Succeed;
    DriverObject->MajorFunction[IRP_MJ_DEVICE_CONTROL] = DeviceControl;
    DriverObject->DriverUnload = Unload;
    return STATUS_SUCCESS;
}
