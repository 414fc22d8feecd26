/* wfp-ddk: WDM I/O requests (wdk-runtime.md §8, "WDM alternative"; WDK km/wdm.h): IRP,
 * IO_STACK_LOCATION, IO_STATUS_BLOCK, FILE_OBJECT (the members before FileName), symbolic links,
 * IoCompleteRequest, forwarding (IoCallDriver, stack locations, completion routines, IoAllocateIrp,
 * IoBuildDeviceIoControlRequest), device stacks, cancel, and the IOCTL code macros. Included by
 * wfp/km.h (wdm.h / ntddk.h). The host builds each IRP (the top device's StackSize locations,
 * RequestorMode UserMode) and sends it to the top of the device's stack: docs/c-abi.md "WDM
 * drivers". x64 layouts (IRP 0xD0, IO_STACK_LOCATION 0x48 bytes). */
#ifndef WFP_DDK_IRP_H
#define WFP_DDK_IRP_H

/* ---- IOCTL codes ---- */
#define CTL_CODE(DeviceType, Function, Method, Access) (((DeviceType) << 16) | ((Access) << 14) | ((Function) << 2) | (Method))
#define DEVICE_TYPE_FROM_CTL_CODE(ctrlCode) (((ULONG)(ctrlCode & 0xffff0000)) >> 16)
#define METHOD_FROM_CTL_CODE(ctrlCode) ((ULONG)(ctrlCode & 3))
#define METHOD_BUFFERED 0
#define METHOD_IN_DIRECT 1
#define METHOD_OUT_DIRECT 2
#define METHOD_NEITHER 3
#define METHOD_DIRECT_TO_HARDWARE METHOD_IN_DIRECT
#define METHOD_DIRECT_FROM_HARDWARE METHOD_OUT_DIRECT
#define FILE_ANY_ACCESS 0
#define FILE_SPECIAL_ACCESS (FILE_ANY_ACCESS)
#define FILE_READ_ACCESS 0x0001
#define FILE_WRITE_ACCESS 0x0002
#define FILE_READ_DATA 0x0001
#define FILE_WRITE_DATA 0x0002

/* ---- major function codes (all 28) ---- */
#define IRP_MJ_CREATE 0x00
#define IRP_MJ_CREATE_NAMED_PIPE 0x01
#define IRP_MJ_CLOSE 0x02
#define IRP_MJ_READ 0x03
#define IRP_MJ_WRITE 0x04
#define IRP_MJ_QUERY_INFORMATION 0x05
#define IRP_MJ_SET_INFORMATION 0x06
#define IRP_MJ_QUERY_EA 0x07
#define IRP_MJ_SET_EA 0x08
#define IRP_MJ_FLUSH_BUFFERS 0x09
#define IRP_MJ_QUERY_VOLUME_INFORMATION 0x0a
#define IRP_MJ_SET_VOLUME_INFORMATION 0x0b
#define IRP_MJ_DIRECTORY_CONTROL 0x0c
#define IRP_MJ_FILE_SYSTEM_CONTROL 0x0d
#define IRP_MJ_DEVICE_CONTROL 0x0e
#define IRP_MJ_INTERNAL_DEVICE_CONTROL 0x0f
#define IRP_MJ_SHUTDOWN 0x10
#define IRP_MJ_LOCK_CONTROL 0x11
#define IRP_MJ_CLEANUP 0x12
#define IRP_MJ_CREATE_MAILSLOT 0x13
#define IRP_MJ_QUERY_SECURITY 0x14
#define IRP_MJ_SET_SECURITY 0x15
#define IRP_MJ_POWER 0x16
#define IRP_MJ_SYSTEM_CONTROL 0x17
#define IRP_MJ_DEVICE_CHANGE 0x18
#define IRP_MJ_QUERY_QUOTA 0x19
#define IRP_MJ_SET_QUOTA 0x1a
#define IRP_MJ_PNP 0x1b
#define IRP_MJ_PNP_POWER IRP_MJ_PNP
/* IRP_MJ_MAXIMUM_FUNCTION (0x1b) is in wfp/km.h, before DRIVER_OBJECT. */

/* IO_STACK_LOCATION.Control */
#define SL_PENDING_RETURNED 0x01
#define SL_ERROR_RETURNED 0x02
#define SL_INVOKE_ON_CANCEL 0x20
#define SL_INVOKE_ON_SUCCESS 0x40
#define SL_INVOKE_ON_ERROR 0x80
/* CREATE dispositions (Parameters.Create.Options >> 24) */
#define FILE_SUPERSEDE 0x00000000
#define FILE_OPEN 0x00000001
#define FILE_CREATE 0x00000002
#define FILE_OPEN_IF 0x00000003

#define POINTER_ALIGNMENT DECLSPEC_ALIGN(8)

typedef struct _IO_STATUS_BLOCK {
    union {
        NTSTATUS Status;
        PVOID Pointer;
    };
    ULONG_PTR Information;
} IO_STATUS_BLOCK, *PIO_STATUS_BLOCK;

/* The members of FILE_OBJECT before FileName at their x64 offsets (the host's object is larger
 * than this prefix only on Windows). FsContext / FsContext2 are the driver's per-open storage. */
typedef struct _FILE_OBJECT {
    CSHORT Type;
    CSHORT Size;
    PDEVICE_OBJECT DeviceObject;
    PVOID Vpb;
    PVOID FsContext;
    PVOID FsContext2;
    PVOID SectionObjectPointer;
    PVOID PrivateCacheMap;
    NTSTATUS FinalStatus;
    struct _FILE_OBJECT *RelatedFileObject;
    BOOLEAN LockOperation;
    BOOLEAN DeletePending;
    BOOLEAN ReadAccess;
    BOOLEAN WriteAccess;
    BOOLEAN DeleteAccess;
    BOOLEAN SharedRead;
    BOOLEAN SharedWrite;
    BOOLEAN SharedDelete;
    ULONG Flags;
    UNICODE_STRING FileName;
} FILE_OBJECT, *PFILE_OBJECT;

typedef struct _IO_SECURITY_CONTEXT {
    PVOID SecurityQos;
    PVOID AccessState;
    ACCESS_MASK DesiredAccess;
    ULONG FullCreateOptions;
} IO_SECURITY_CONTEXT, *PIO_SECURITY_CONTEXT;

typedef struct _IO_STACK_LOCATION {
    UCHAR MajorFunction;
    UCHAR MinorFunction;
    UCHAR Flags;
    UCHAR Control;
    union {
        struct {
            PIO_SECURITY_CONTEXT SecurityContext;
            ULONG Options;
            USHORT POINTER_ALIGNMENT FileAttributes;
            USHORT ShareAccess;
            ULONG POINTER_ALIGNMENT EaLength;
        } Create;
        struct {
            ULONG Length;
            ULONG POINTER_ALIGNMENT Key;
            ULONG Flags;
            LARGE_INTEGER ByteOffset;
        } Read;
        struct {
            ULONG Length;
            ULONG POINTER_ALIGNMENT Key;
            ULONG Flags;
            LARGE_INTEGER ByteOffset;
        } Write;
        struct {
            ULONG OutputBufferLength;
            ULONG POINTER_ALIGNMENT InputBufferLength;
            ULONG POINTER_ALIGNMENT IoControlCode;
            PVOID Type3InputBuffer;
        } DeviceIoControl;
        struct {
            PVOID Argument1;
            PVOID Argument2;
            PVOID Argument3;
            PVOID Argument4;
        } Others;
    } Parameters;
    PDEVICE_OBJECT DeviceObject;
    PFILE_OBJECT FileObject;
    PVOID CompletionRoutine;
    PVOID Context;
} IO_STACK_LOCATION, *PIO_STACK_LOCATION;

typedef void DRIVER_CANCEL(struct _DEVICE_OBJECT *DeviceObject, struct _IRP *Irp);
typedef DRIVER_CANCEL *PDRIVER_CANCEL;

typedef struct _IRP {
    CSHORT Type;
    USHORT Size;
    USHORT AllocationProcessorNumber;
    USHORT Reserved;
    PMDL MdlAddress;
    ULONG Flags;
    union {
        struct _IRP *MasterIrp;
        LONG IrpCount;
        PVOID SystemBuffer;
    } AssociatedIrp;
    LIST_ENTRY ThreadListEntry;
    IO_STATUS_BLOCK IoStatus;
    KPROCESSOR_MODE RequestorMode;
    BOOLEAN PendingReturned;
    CHAR StackCount;
    CHAR CurrentLocation;
    BOOLEAN Cancel;
    KIRQL CancelIrql;
    CCHAR ApcEnvironment;
    UCHAR AllocationFlags;
    PIO_STATUS_BLOCK UserIosb;
    struct _KEVENT *UserEvent;
    union {
        struct {
            PVOID UserApcRoutine;
            PVOID UserApcContext;
        } AsynchronousParameters;
        LARGE_INTEGER AllocationSize;
    } Overlay;
    PDRIVER_CANCEL CancelRoutine;
    PVOID UserBuffer;
    union {
        struct {
            union {
                UCHAR DeviceQueueEntry[24];
                PVOID DriverContext[4];
            };
            PVOID Thread;
            PCHAR AuxiliaryBuffer;
            struct {
                LIST_ENTRY ListEntry;
                union {
                    struct _IO_STACK_LOCATION *CurrentStackLocation;
                    ULONG PacketType;
                };
            };
            PFILE_OBJECT OriginalFileObject;
            PVOID IrpExtension;
        } Overlay;
        PVOID CompletionKey;
    } Tail;
} IRP, *PIRP;

FORCEINLINE PIO_STACK_LOCATION IoGetCurrentIrpStackLocation(PIRP Irp)
{
    return Irp->Tail.Overlay.CurrentStackLocation;
}
/* A dispatch routine that returns STATUS_PENDING marks the IRP first (checked by the host). */
FORCEINLINE void IoMarkIrpPending(PIRP Irp)
{
    IoGetCurrentIrpStackLocation(Irp)->Control |= SL_PENDING_RETURNED;
}
/* Completes an IRP (the host's, IoAllocateIrp's or IoBuildDeviceIoControlRequest's):
 * Irp->IoStatus is the result (Status must not be STATUS_PENDING). Walks the stack locations
 * upwards calling each completion routine (as SL_INVOKE_ON_* select) with the upper location's
 * DeviceObject (NULL for the originator's); a routine returning STATUS_MORE_PROCESSING_REQUIRED
 * stops the walk. Completing twice, with a cancel routine still set, or an IRP the runtime
 * does not know is a Verifier finding. ≤D. */
void IofCompleteRequest(PIRP Irp, CCHAR PriorityBoost);
#define IoCompleteRequest(a, b) IofCompleteRequest(a, b)

/* ---- forwarding IRPs to lower drivers (WDK km/wdm.h) ---- */
#define STATUS_CONTINUE_COMPLETION STATUS_SUCCESS
typedef NTSTATUS IO_COMPLETION_ROUTINE(PDEVICE_OBJECT DeviceObject, struct _IRP *Irp, PVOID Context);
typedef IO_COMPLETION_ROUTINE *PIO_COMPLETION_ROUTINE;

FORCEINLINE PIO_STACK_LOCATION IoGetNextIrpStackLocation(PIRP Irp)
{
    return Irp->Tail.Overlay.CurrentStackLocation - 1;
}
FORCEINLINE void IoSkipCurrentIrpStackLocation(PIRP Irp)
{
    Irp->CurrentLocation++;
    Irp->Tail.Overlay.CurrentStackLocation++;
}
FORCEINLINE void IoSetNextIrpStackLocation(PIRP Irp)
{
    Irp->CurrentLocation--;
    Irp->Tail.Overlay.CurrentStackLocation--;
}
/* Copies the current location to the next one up to (not including) CompletionRoutine; the
 * next location's Control is cleared. */
FORCEINLINE void IoCopyCurrentIrpStackLocationToNext(PIRP Irp)
{
    PIO_STACK_LOCATION sp = IoGetCurrentIrpStackLocation(Irp), next = IoGetNextIrpStackLocation(Irp);
    RtlCopyMemory(next, sp, FIELD_OFFSET(IO_STACK_LOCATION, CompletionRoutine));
    next->Control = 0;
}
FORCEINLINE void IoSetCompletionRoutine(PIRP Irp, PIO_COMPLETION_ROUTINE CompletionRoutine, PVOID Context,
                                        BOOLEAN InvokeOnSuccess, BOOLEAN InvokeOnError, BOOLEAN InvokeOnCancel)
{
    PIO_STACK_LOCATION next = IoGetNextIrpStackLocation(Irp);
    next->CompletionRoutine = (PVOID)CompletionRoutine;
    next->Context = Context;
    next->Control = 0;
    if (InvokeOnSuccess) next->Control = SL_INVOKE_ON_SUCCESS;
    if (InvokeOnError) next->Control |= SL_INVOKE_ON_ERROR;
    if (InvokeOnCancel) next->Control |= SL_INVOKE_ON_CANCEL;
}
/* IoSetCompletionRoutine that also keeps DeviceObject's driver loaded until the routine has
 * run (its unload waits, like for a queued work item). STATUS_INSUFFICIENT_RESOURCES → nothing
 * set. ≤D. */
NTSTATUS IoSetCompletionRoutineEx(PDEVICE_OBJECT DeviceObject, PIRP Irp, PIO_COMPLETION_ROUTINE CompletionRoutine,
                                  PVOID Context, BOOLEAN InvokeOnSuccess, BOOLEAN InvokeOnError, BOOLEAN InvokeOnCancel);
/* Moves to the next stack location, sets its DeviceObject and calls the MajorFunction[] routine
 * of DeviceObject's driver (a missing one completes with STATUS_INVALID_DEVICE_REQUEST); returns
 * what the routine returned. No location left (NO_MORE_IRP_STACK_LOCATIONS, bugcheck 0x35 on
 * Windows) is a Verifier finding and STATUS_INVALID_PARAMETER. ≤D. */
NTSTATUS IofCallDriver(PDEVICE_OBJECT DeviceObject, PIRP Irp);
#define IoCallDriver(a, b) IofCallDriver(a, b)

/* An IRP with StackSize locations and no buffers, owned by the caller: it completes it to a
 * completion routine that returns STATUS_MORE_PROCESSING_REQUIRED and frees it with IoFreeIrp
 * (never freed at unload: finding). IoFreeIrp of an IRP still with a driver, or of the
 * host's / a built one: finding. ≤D. */
PIRP IoAllocateIrp(CCHAR StackSize, BOOLEAN ChargeQuota);
void IoFreeIrp(PIRP Irp);
/* A device-control IRP for DeviceObject (IRP_MJ_DEVICE_CONTROL, or INTERNAL_DEVICE_CONTROL when
 * InternalDeviceIoControl), its next location set up, buffers by the code's method as the I/O
 * manager lays them out. Once completed, the runtime copies the output back (METHOD_BUFFERED),
 * stores IoStatus in *IoStatusBlock, signals Event and frees the IRP. P. */
PIRP IoBuildDeviceIoControlRequest(ULONG IoControlCode, PDEVICE_OBJECT DeviceObject, PVOID InputBuffer,
                                   ULONG InputBufferLength, PVOID OutputBuffer, ULONG OutputBufferLength,
                                   BOOLEAN InternalDeviceIoControl, struct _KEVENT *Event, PIO_STATUS_BLOCK IoStatusBlock);
/* A read / write (Length bytes at Buffer, ByteOffset *StartingOffset), flush, shutdown or PnP IRP
 * for DeviceObject, finished by the runtime like IoBuildDeviceIoControlRequest's: buffered
 * devices (DO_BUFFERED_IO) get a system buffer (a read's bytes copied back to Buffer), direct ones
 * (DO_DIRECT_IO) an MDL on Buffer, others UserBuffer; *IoStatusBlock set, Event signalled, the IRP
 * freed. Other major functions: NULL. P. */
PIRP IoBuildSynchronousFsdRequest(ULONG MajorFunction, PDEVICE_OBJECT DeviceObject, PVOID Buffer, ULONG Length,
                                  PLARGE_INTEGER StartingOffset, struct _KEVENT *Event, PIO_STATUS_BLOCK IoStatusBlock);
/* IoBuildSynchronousFsdRequest's IRP without an event: the caller sends it with a completion
 * routine that frees it (IoFreeIrp) and returns STATUS_MORE_PROCESSING_REQUIRED. When that routine
 * runs, a buffered read's bytes are in Buffer and *IoStatusBlock is set; the system buffer and a
 * direct device's MDL are the runtime's, freed with the IRP (the driver does not free that MDL). If no
 * routine stops the completion, the runtime frees the IRP. ≤D. */
PIRP IoBuildAsynchronousFsdRequest(ULONG MajorFunction, PDEVICE_OBJECT DeviceObject, PVOID Buffer, ULONG Length,
                                   PLARGE_INTEGER StartingOffset, PIO_STATUS_BLOCK IoStatusBlock);
/* An IoAllocateIrp or IoInitializeIrp IRP back with its owner starts over (as IoInitializeIrp
 * leaves it; StackCount, Size and AllocationFlags kept) with IoStatus.Status = Status. Another IRP,
 * one a driver still holds, or one with a cancel routine set: Verifier finding, unchanged. ≤D. */
void IoReuseIrp(PIRP Irp, NTSTATUS Status);
/* The bytes of an IRP with StackSize locations (for IoInitializeIrp's caller-allocated memory). */
#define IoSizeOfIrp(StackSize) ((USHORT)(sizeof(IRP) + ((StackSize) * sizeof(IO_STACK_LOCATION))))
/* Makes the caller's PacketSize bytes an IRP with StackSize locations (zeroed, CurrentLocation at
 * the originator's), used like an IoAllocateIrp IRP but freed by the caller as it allocated the
 * memory (IoFreeIrp of it: finding). PacketSize below IoSizeOfIrp(StackSize): finding, nothing
 * written. ≤D. */
void IoInitializeIrp(PIRP Irp, USHORT PacketSize, CCHAR StackSize);

/* ---- device stacks and names ---- */
/* Opens the named device (device name or symbolic link; IRP_MJ_CREATE sent to the top of its
 * stack): *FileObject (referenced: ObDereferenceObject closes it — IRP_MJ_CLEANUP and CLOSE)
 * and the top device of the stack. STATUS_OBJECT_NAME_NOT_FOUND for an unknown name; a failed
 * create returns its status. P. */
NTSTATUS IoGetDeviceObjectPointer(PUNICODE_STRING ObjectName, ACCESS_MASK DesiredAccess, PFILE_OBJECT *FileObject,
                                  PDEVICE_OBJECT *DeviceObject);
/* Attaches SourceDevice on top of TargetDevice's stack: returns the device it sits on (the
 * former top; NULL when TargetDevice is being deleted), SourceDevice->StackSize = its + 1. ≤D. */
PDEVICE_OBJECT IoAttachDeviceToDeviceStack(PDEVICE_OBJECT SourceDevice, PDEVICE_OBJECT TargetDevice);
/* Detaches whatever device is attached to TargetDevice. ≤D. */
void IoDetachDevice(PDEVICE_OBJECT TargetDevice);
/* The top device of DeviceObject's stack. ≤D. */
PDEVICE_OBJECT IoGetAttachedDevice(PDEVICE_OBJECT DeviceObject);

/* ---- cancel (WDK km/wdm.h, "Cancel Routines") ---- */
FORCEINLINE PDRIVER_CANCEL IoSetCancelRoutine(PIRP Irp, PDRIVER_CANCEL CancelRoutine)
{
    return (PDRIVER_CANCEL)InterlockedExchangePointer((PVOID volatile *)&Irp->CancelRoutine, (PVOID)CancelRoutine);
}
/* The host's one cancel spin lock (raises to DISPATCH_LEVEL). ≤D. */
void IoAcquireCancelSpinLock(PKIRQL Irql);
void IoReleaseCancelSpinLock(KIRQL Irql);
/* Sets Irp->Cancel; takes the cancel routine (IoSetCancelRoutine NULL) and, if there was one,
 * calls it with the cancel spin lock held (Irp->CancelIrql the IRQL to release it to) and
 * returns TRUE; else FALSE. ≤D. */
BOOLEAN IoCancelIrp(PIRP Irp);

/* Cancel-safe IRP queues (IO_CSQ, x64 layouts). The queue is the driver's; the runtime calls its
 * callbacks as the csq library does and owns the IRP's cancel routine while it is queued
 * (Tail.Overlay.DriverContext[3] holds the IO_CSQ_IRP_CONTEXT, or the IO_CSQ). Insert marks the
 * IRP pending; an IRP cancelled while queued (IoCancelIrp: handle close, CancelIoEx) is removed
 * with CsqRemoveIrp under the driver's lock and given to CsqCompleteCanceledIrp; IoCsqRemoveIrp
 * returns NULL for an IRP already being cancelled. ≤D. */
#define IO_TYPE_CSQ_IRP_CONTEXT 1
#define IO_TYPE_CSQ 2
#define IO_TYPE_CSQ_EX 3
struct _IO_CSQ;
typedef struct _IO_CSQ_IRP_CONTEXT {
    ULONG Type;
    PIRP Irp;
    struct _IO_CSQ *Csq;
} IO_CSQ_IRP_CONTEXT, *PIO_CSQ_IRP_CONTEXT;
typedef void IO_CSQ_INSERT_IRP(struct _IO_CSQ *Csq, PIRP Irp);
typedef IO_CSQ_INSERT_IRP *PIO_CSQ_INSERT_IRP;
typedef NTSTATUS IO_CSQ_INSERT_IRP_EX(struct _IO_CSQ *Csq, PIRP Irp, PVOID InsertContext);
typedef IO_CSQ_INSERT_IRP_EX *PIO_CSQ_INSERT_IRP_EX;
typedef void IO_CSQ_REMOVE_IRP(struct _IO_CSQ *Csq, PIRP Irp);
typedef IO_CSQ_REMOVE_IRP *PIO_CSQ_REMOVE_IRP;
typedef PIRP IO_CSQ_PEEK_NEXT_IRP(struct _IO_CSQ *Csq, PIRP Irp, PVOID PeekContext);
typedef IO_CSQ_PEEK_NEXT_IRP *PIO_CSQ_PEEK_NEXT_IRP;
typedef void IO_CSQ_ACQUIRE_LOCK(struct _IO_CSQ *Csq, PKIRQL Irql);
typedef IO_CSQ_ACQUIRE_LOCK *PIO_CSQ_ACQUIRE_LOCK;
typedef void IO_CSQ_RELEASE_LOCK(struct _IO_CSQ *Csq, KIRQL Irql);
typedef IO_CSQ_RELEASE_LOCK *PIO_CSQ_RELEASE_LOCK;
typedef void IO_CSQ_COMPLETE_CANCELED_IRP(struct _IO_CSQ *Csq, PIRP Irp);
typedef IO_CSQ_COMPLETE_CANCELED_IRP *PIO_CSQ_COMPLETE_CANCELED_IRP;
typedef struct _IO_CSQ {
    ULONG Type;
    PIO_CSQ_INSERT_IRP CsqInsertIrp;
    PIO_CSQ_REMOVE_IRP CsqRemoveIrp;
    PIO_CSQ_PEEK_NEXT_IRP CsqPeekNextIrp;
    PIO_CSQ_ACQUIRE_LOCK CsqAcquireLock;
    PIO_CSQ_RELEASE_LOCK CsqReleaseLock;
    PIO_CSQ_COMPLETE_CANCELED_IRP CsqCompleteCanceledIrp;
    PVOID ReservePointer;
} IO_CSQ, *PIO_CSQ;
_Static_assert(sizeof(IO_CSQ) == 64, "IO_CSQ is 64 bytes on x64");
_Static_assert(sizeof(IO_CSQ_IRP_CONTEXT) == 24, "IO_CSQ_IRP_CONTEXT is 24 bytes on x64");
NTSTATUS IoCsqInitialize(PIO_CSQ Csq, PIO_CSQ_INSERT_IRP CsqInsertIrp, PIO_CSQ_REMOVE_IRP CsqRemoveIrp,
                         PIO_CSQ_PEEK_NEXT_IRP CsqPeekNextIrp, PIO_CSQ_ACQUIRE_LOCK CsqAcquireLock,
                         PIO_CSQ_RELEASE_LOCK CsqReleaseLock, PIO_CSQ_COMPLETE_CANCELED_IRP CsqCompleteCanceledIrp);
NTSTATUS IoCsqInitializeEx(PIO_CSQ Csq, PIO_CSQ_INSERT_IRP_EX CsqInsertIrp, PIO_CSQ_REMOVE_IRP CsqRemoveIrp,
                           PIO_CSQ_PEEK_NEXT_IRP CsqPeekNextIrp, PIO_CSQ_ACQUIRE_LOCK CsqAcquireLock,
                           PIO_CSQ_RELEASE_LOCK CsqReleaseLock, PIO_CSQ_COMPLETE_CANCELED_IRP CsqCompleteCanceledIrp);
void IoCsqInsertIrp(PIO_CSQ Csq, PIRP Irp, PIO_CSQ_IRP_CONTEXT Context);
NTSTATUS IoCsqInsertIrpEx(PIO_CSQ Csq, PIRP Irp, PIO_CSQ_IRP_CONTEXT Context, PVOID InsertContext);
PIRP IoCsqRemoveIrp(PIO_CSQ Csq, PIO_CSQ_IRP_CONTEXT Context);
PIRP IoCsqRemoveNextIrp(PIO_CSQ Csq, PVOID PeekContext);

/* Symbolic links in the host's object namespace (per host; names case-insensitive,
 * "\DosDevices\X" = "\??\X"): STATUS_OBJECT_NAME_COLLISION for a name in use,
 * STATUS_OBJECT_NAME_NOT_FOUND for a link that does not exist. P. */
NTSTATUS IoCreateSymbolicLink(PUNICODE_STRING SymbolicLinkName, PUNICODE_STRING DeviceName);
NTSTATUS IoDeleteSymbolicLink(PUNICODE_STRING SymbolicLinkName);

#endif
