/* rt_wdfwork test driver (ours): KMDF work items on a control device and its default queue —
 * creation rules, re-enqueue while queued or running, flush, delete (from outside and from the
 * item's own callback), deletion with the device at unload, a request completed from a work item,
 * and a slow item the host's settle waits for. Prints "ok NAME" / "FAIL NAME". */
#include <ntddk.h>
#include <wdf.h>

#define CHECK(name, cond) \
    do { if (cond) DbgPrint("ok %s\n", name); else DbgPrint("FAIL %s (line %d)\n", name, __LINE__); } while (0)

#define IOCTL_WORK CTL_CODE(FILE_DEVICE_NETWORK, 0x900, METHOD_BUFFERED, FILE_ANY_ACCESS)
#define IOCTL_SLOW CTL_CODE(FILE_DEVICE_NETWORK, 0x901, METHOD_BUFFERED, FILE_ANY_ACCESS)
#define IOCTL_COUNT CTL_CODE(FILE_DEVICE_NETWORK, 0x902, METHOD_BUFFERED, FILE_ANY_ACCESS)

typedef struct _WORK_CONTEXT {
    WDFREQUEST Request;
    ULONG Tag;
} WORK_CONTEXT;
WDF_DECLARE_CONTEXT_TYPE_WITH_NAME(WORK_CONTEXT, GetWorkContext)

DRIVER_INITIALIZE DriverEntry;

static WDFDEVICE Device;
static WDFQUEUE Queue;
static WDFWORKITEM Blocking, Left, Slow;
static KEVENT Started, Gate, SelfDeleted;
static KSEMAPHORE BlockersUp;
static volatile LONG Runs, Cleanups, DeletedRan, SlowDone;

static void BlockingWork(WDFWORKITEM item)
{
    LARGE_INTEGER fiveSeconds;
    fiveSeconds.QuadPart = -10LL * 1000 * 1000 * 5;
    InterlockedIncrement(&Runs);
    if (KeGetCurrentIrql() != PASSIVE_LEVEL) DbgPrint("FAIL EvtWorkItem IRQL\n");
    if (GetWorkContext(item)->Tag != 7) DbgPrint("FAIL work item context\n");
    KeSetEvent(&Started, IO_NO_INCREMENT, FALSE);
    KeWaitForSingleObject(&Gate, Executive, KernelMode, FALSE, &fiveSeconds);
}

static void BlockerWork(WDFWORKITEM item)
{
    LARGE_INTEGER fiveSeconds;
    UNREFERENCED_PARAMETER(item);
    fiveSeconds.QuadPart = -10LL * 1000 * 1000 * 5;
    KeReleaseSemaphore(&BlockersUp, IO_NO_INCREMENT, 1, FALSE);
    KeWaitForSingleObject(&Gate, Executive, KernelMode, FALSE, &fiveSeconds);
}

static void CountCleanup(WDFOBJECT object)
{
    UNREFERENCED_PARAMETER(object);
    InterlockedIncrement(&Cleanups);
}

static void SelfDeletingCleanup(WDFOBJECT object)
{
    UNREFERENCED_PARAMETER(object);
    InterlockedIncrement(&Cleanups);
    KeSetEvent(&SelfDeleted, IO_NO_INCREMENT, FALSE);
}

static void SelfDeletingWork(WDFWORKITEM item)
{
    CHECK("parent of a queue's item", WdfWorkItemGetParentObject(item) == (WDFOBJECT)Queue);
    WdfObjectDelete(item);
    CHECK("still usable after deleting itself", WdfWorkItemGetParentObject(item) == (WDFOBJECT)Queue);
}

static void MarkWork(WDFWORKITEM item)
{
    LARGE_INTEGER delay;
    UNREFERENCED_PARAMETER(item);
    delay.QuadPart = -10000LL * 20;
    KeDelayExecutionThread(KernelMode, FALSE, &delay);
    InterlockedExchange(&DeletedRan, 1);
}

static void LeftWork(WDFWORKITEM item)
{
    UNREFERENCED_PARAMETER(item);
    DbgPrint("left item ran\n");
}

static void LeftCleanup(WDFOBJECT object)
{
    UNREFERENCED_PARAMETER(object);
    DbgPrint("left item cleanup\n");
}

static void SlowWork(WDFWORKITEM item)
{
    LARGE_INTEGER delay;
    UNREFERENCED_PARAMETER(item);
    delay.QuadPart = -10000LL * 50;
    KeDelayExecutionThread(KernelMode, FALSE, &delay);
    InterlockedExchange(&SlowDone, 1);
}

/* Completes the request stored in the item's context, then deletes the item. */
static void CompleteWork(WDFWORKITEM item)
{
    WORK_CONTEXT *ctx = GetWorkContext(item);
    PVOID out = NULL;
    size_t len = 0;
    NTSTATUS st = WdfRequestRetrieveOutputBuffer(ctx->Request, 4, &out, &len);
    if (NT_SUCCESS(st)) memcpy(out, "WORK", 4);
    WdfRequestCompleteWithInformation(ctx->Request, st, NT_SUCCESS(st) ? 4 : 0);
    WdfObjectDelete(item);
}

static NTSTATUS CreateItem(PFN_WDF_WORKITEM func, WDFOBJECT parent, PFN_WDF_OBJECT_CONTEXT_CLEANUP cleanup,
                           WDFWORKITEM *item)
{
    WDF_WORKITEM_CONFIG config;
    WDF_OBJECT_ATTRIBUTES attrs;
    WDF_WORKITEM_CONFIG_INIT(&config, func);
    WDF_OBJECT_ATTRIBUTES_INIT_CONTEXT_TYPE(&attrs, WORK_CONTEXT);
    attrs.ParentObject = parent;
    attrs.EvtCleanupCallback = cleanup;
    return WdfWorkItemCreate(&config, &attrs, item);
}

static void EvtIoDeviceControl(WDFQUEUE q, WDFREQUEST request, size_t outLen, size_t inLen, ULONG code)
{
    WDFWORKITEM item;
    PVOID out = NULL;
    UNREFERENCED_PARAMETER(outLen);
    UNREFERENCED_PARAMETER(inLen);
    switch (code) {
    case IOCTL_WORK:
        if (!NT_SUCCESS(CreateItem(CompleteWork, q, NULL, &item))) break;
        GetWorkContext(item)->Request = request;
        WdfWorkItemEnqueue(item);
        return;
    case IOCTL_SLOW:
        WdfWorkItemEnqueue(Slow);
        WdfRequestComplete(request, STATUS_SUCCESS);
        return;
    case IOCTL_COUNT:
        if (!NT_SUCCESS(WdfRequestRetrieveOutputBuffer(request, sizeof(LONG), &out, NULL))) break;
        *(LONG *)out = SlowDone;
        WdfRequestCompleteWithInformation(request, STATUS_SUCCESS, sizeof(LONG));
        return;
    }
    WdfRequestComplete(request, STATUS_INVALID_DEVICE_REQUEST);
}

static void EvtDriverUnload(WDFDRIVER driver)
{
    UNREFERENCED_PARAMETER(driver);
    /* Deleted with the device after this returns: the framework flushes it first. */
    WdfWorkItemEnqueue(Left);
}

static void CreationRules(WDFDRIVER driver)
{
    WDF_WORKITEM_CONFIG config;
    WDF_OBJECT_ATTRIBUTES attrs;
    WDFWORKITEM item = NULL;
    WDF_WORKITEM_CONFIG_INIT(&config, LeftWork);
    CHECK("config init", config.Size == sizeof(config) && config.AutomaticSerialization);
    CHECK("no attributes", WdfWorkItemCreate(&config, WDF_NO_OBJECT_ATTRIBUTES, &item) == STATUS_WDF_PARENT_NOT_SPECIFIED);
    WDF_OBJECT_ATTRIBUTES_INIT(&attrs);
    CHECK("no parent", WdfWorkItemCreate(&config, &attrs, &item) == STATUS_WDF_PARENT_NOT_SPECIFIED);
    attrs.ParentObject = driver;
    CHECK("driver parent", WdfWorkItemCreate(&config, &attrs, &item) == STATUS_INVALID_DEVICE_REQUEST);
    CHECK("no item created", item == NULL);
}

/* The host has four worker threads (docs/c-abi.md): with the item running on one and three
 * blockers on the others, the second enqueue stays queued and the third finds it queued. */
static void Reenqueue(void)
{
    LARGE_INTEGER fiveSeconds;
    WDFWORKITEM blockers[3];
    int i, up = 0;
    fiveSeconds.QuadPart = -10LL * 1000 * 1000 * 5;
    KeInitializeSemaphore(&BlockersUp, 0, 3);
    CHECK("create", NT_SUCCESS(CreateItem(BlockingWork, Device, CountCleanup, &Blocking)));
    CHECK("parent", WdfWorkItemGetParentObject(Blocking) == (WDFOBJECT)Device);
    GetWorkContext(Blocking)->Tag = 7;
    WdfWorkItemEnqueue(Blocking);
    CHECK("started", KeWaitForSingleObject(&Started, Executive, KernelMode, FALSE, &fiveSeconds) == STATUS_SUCCESS);
    for (i = 0; i < 3; i++) {
        if (NT_SUCCESS(CreateItem(BlockerWork, Device, NULL, &blockers[i]))) WdfWorkItemEnqueue(blockers[i]);
    }
    for (i = 0; i < 3; i++) {
        up += KeWaitForSingleObject(&BlockersUp, Executive, KernelMode, FALSE, &fiveSeconds) == STATUS_SUCCESS;
    }
    CHECK("every worker busy", up == 3);
    WdfWorkItemEnqueue(Blocking); /* running: queued again */
    WdfWorkItemEnqueue(Blocking); /* already queued: nothing */
    KeSetEvent(&Gate, IO_NO_INCREMENT, FALSE);
    WdfWorkItemFlush(Blocking);
    CHECK("ran twice", Runs == 2);
    WdfObjectDelete(Blocking);
    CHECK("cleanup on delete", Cleanups == 1);
    for (i = 0; i < 3; i++) WdfObjectDelete(blockers[i]);
}

static void Deletes(void)
{
    WDFWORKITEM item;
    LARGE_INTEGER fiveSeconds;
    fiveSeconds.QuadPart = -10LL * 1000 * 1000 * 5;
    CHECK("queue parent", NT_SUCCESS(CreateItem(SelfDeletingWork, Queue, SelfDeletingCleanup, &item)));
    WdfWorkItemEnqueue(item);
    CHECK("deleted itself", KeWaitForSingleObject(&SelfDeleted, Executive, KernelMode, FALSE, &fiveSeconds) == STATUS_SUCCESS);
    CHECK("its cleanup ran", Cleanups == 2);
    CHECK("create another", NT_SUCCESS(CreateItem(MarkWork, Device, CountCleanup, &item)));
    WdfWorkItemEnqueue(item);
    WdfObjectDelete(item);
    CHECK("delete waits for the queued callback", DeletedRan == 1 && Cleanups == 3);
}

static NTSTATUS CreateDevice(WDFDRIVER driver)
{
    PWDFDEVICE_INIT init;
    WDF_IO_QUEUE_CONFIG qconfig;
    DECLARE_CONST_UNICODE_STRING(deviceName, L"\\Device\\RtWdfWork");
    NTSTATUS st;
    init = WdfControlDeviceInitAllocate(driver, &SDDL_DEVOBJ_KERNEL_ONLY);
    if (!init) return STATUS_INSUFFICIENT_RESOURCES;
    WdfDeviceInitSetDeviceType(init, FILE_DEVICE_NETWORK);
    st = WdfDeviceInitAssignName(init, &deviceName);
    if (NT_SUCCESS(st)) st = WdfDeviceCreate(&init, WDF_NO_OBJECT_ATTRIBUTES, &Device);
    if (!NT_SUCCESS(st)) { WdfDeviceInitFree(init); return st; }
    WDF_IO_QUEUE_CONFIG_INIT_DEFAULT_QUEUE(&qconfig, WdfIoQueueDispatchParallel);
    qconfig.EvtIoDeviceControl = EvtIoDeviceControl;
    return WdfIoQueueCreate(Device, &qconfig, WDF_NO_OBJECT_ATTRIBUTES, &Queue);
}

NTSTATUS DriverEntry(PDRIVER_OBJECT DriverObject, PUNICODE_STRING RegistryPath)
{
    WDF_DRIVER_CONFIG config;
    WDFDRIVER driver;
    NTSTATUS st;
    KeInitializeEvent(&Started, SynchronizationEvent, FALSE);
    KeInitializeEvent(&Gate, NotificationEvent, FALSE);
    KeInitializeEvent(&SelfDeleted, NotificationEvent, FALSE);
    WDF_DRIVER_CONFIG_INIT(&config, WDF_NO_EVENT_CALLBACK);
    config.DriverInitFlags |= WdfDriverInitNonPnpDriver;
    config.EvtDriverUnload = EvtDriverUnload;
    st = WdfDriverCreate(DriverObject, RegistryPath, WDF_NO_OBJECT_ATTRIBUTES, &config, &driver);
    if (!NT_SUCCESS(st)) return st;
    st = CreateDevice(driver);
    if (!NT_SUCCESS(st)) return st;
    CreationRules(driver);
    Reenqueue();
    Deletes();
    CHECK("left item", NT_SUCCESS(CreateItem(LeftWork, Device, LeftCleanup, &Left)));
    CHECK("slow item", NT_SUCCESS(CreateItem(SlowWork, Device, NULL, &Slow)));
    WdfControlFinishInitializing(Device);
    DbgPrint("done\n");
    return STATUS_SUCCESS;
}
