//! Every function the runtime exports to drivers, by C name (the symbol table the host binary
//! must keep and export; docs/c-abi.md lists the same names).

use std::ffi::c_void;

/// One exported function: C name and address.
pub(crate) struct Export(pub(crate) &'static str, pub(crate) *const c_void);

// SAFETY: the addresses are of functions (immutable code), shared read-only.
unsafe impl Sync for Export {}

/// Every export.
pub(crate) static EXPORTS: &[Export] = &[
    Export(
        "NdisCopySendNetBufferListInfo",
        super::ndisnb::NdisCopySendNetBufferListInfo as *const c_void,
    ),
    Export(
        "NdisCopyReceiveNetBufferListInfo",
        super::ndisnb::NdisCopyReceiveNetBufferListInfo as *const c_void,
    ),
    Export(
        "KeSetTargetProcessorDpc",
        super::dpc::KeSetTargetProcessorDpc as *const c_void,
    ),
    Export(
        "NdisAllocateFragmentNetBufferList",
        super::ndisnb::frag::NdisAllocateFragmentNetBufferList as *const c_void,
    ),
    Export(
        "NdisFreeFragmentNetBufferList",
        super::ndisnb::frag::NdisFreeFragmentNetBufferList as *const c_void,
    ),
    Export(
        "NdisAllocateReassembledNetBufferList",
        super::ndisnb::frag::NdisAllocateReassembledNetBufferList as *const c_void,
    ),
    Export(
        "NdisFreeReassembledNetBufferList",
        super::ndisnb::frag::NdisFreeReassembledNetBufferList as *const c_void,
    ),
    Export(
        "WdfRequestGetParameters",
        super::wdf::queue::WdfRequestGetParameters as *const c_void,
    ),
    Export(
        "WdfDeviceConfigureRequestDispatching",
        super::wdf::queue::WdfDeviceConfigureRequestDispatching as *const c_void,
    ),
    Export(
        "WdfRequestForwardToIoQueue",
        super::wdf::queue::WdfRequestForwardToIoQueue as *const c_void,
    ),
    Export(
        "WdfIoQueueRetrieveNextRequest",
        super::wdf::queue::WdfIoQueueRetrieveNextRequest as *const c_void,
    ),
    Export(
        "WdfIoQueueStart",
        super::wdf::queue::WdfIoQueueStart as *const c_void,
    ),
    Export(
        "WdfIoQueueStop",
        super::wdf::queue::WdfIoQueueStop as *const c_void,
    ),
    Export(
        "WdfIoQueueStopSynchronously",
        super::wdf::queue::WdfIoQueueStopSynchronously as *const c_void,
    ),
    Export(
        "WdfIoQueuePurge",
        super::wdf::queue::WdfIoQueuePurge as *const c_void,
    ),
    Export(
        "WdfIoQueuePurgeSynchronously",
        super::wdf::queue::WdfIoQueuePurgeSynchronously as *const c_void,
    ),
    Export(
        "WdfIoQueueGetDevice",
        super::wdf::queue::WdfIoQueueGetDevice as *const c_void,
    ),
    Export(
        "WdfObjectAcquireLock",
        super::wdf::queue::WdfObjectAcquireLock as *const c_void,
    ),
    Export(
        "WdfObjectReleaseLock",
        super::wdf::queue::WdfObjectReleaseLock as *const c_void,
    ),
    Export("IoReuseIrp", super::irp::IoReuseIrp as *const c_void),
    Export("ProbeForRead", super::kernel::ProbeForRead as *const c_void),
    Export(
        "MmProbeAndLockPages",
        super::ndis::MmProbeAndLockPages as *const c_void,
    ),
    Export("MmUnlockPages", super::ndis::MmUnlockPages as *const c_void),
    Export(
        "ProbeForWrite",
        super::kernel::ProbeForWrite as *const c_void,
    ),
    Export(
        "WdfDeviceInitSetIoInCallerContextCallback",
        super::wdf::neither::WdfDeviceInitSetIoInCallerContextCallback as *const c_void,
    ),
    Export(
        "WdfDeviceEnqueueRequest",
        super::wdf::neither::WdfDeviceEnqueueRequest as *const c_void,
    ),
    Export(
        "WdfRequestRetrieveUnsafeUserInputBuffer",
        super::wdf::neither::WdfRequestRetrieveUnsafeUserInputBuffer as *const c_void,
    ),
    Export(
        "WdfRequestRetrieveUnsafeUserOutputBuffer",
        super::wdf::neither::WdfRequestRetrieveUnsafeUserOutputBuffer as *const c_void,
    ),
    Export(
        "WdfRequestProbeAndLockUserBufferForRead",
        super::wdf::neither::WdfRequestProbeAndLockUserBufferForRead as *const c_void,
    ),
    Export(
        "WdfRequestProbeAndLockUserBufferForWrite",
        super::wdf::neither::WdfRequestProbeAndLockUserBufferForWrite as *const c_void,
    ),
    Export(
        "IoInitializeIrp",
        super::irp::IoInitializeIrp as *const c_void,
    ),
    Export(
        "IoBuildAsynchronousFsdRequest",
        super::irp::IoBuildAsynchronousFsdRequest as *const c_void,
    ),
    Export(
        "IoBuildSynchronousFsdRequest",
        super::irp::IoBuildSynchronousFsdRequest as *const c_void,
    ),
    Export(
        "IoCsqInitialize",
        super::csq::IoCsqInitialize as *const c_void,
    ),
    Export(
        "IoCsqInitializeEx",
        super::csq::IoCsqInitializeEx as *const c_void,
    ),
    Export(
        "IoCsqInsertIrp",
        super::csq::IoCsqInsertIrp as *const c_void,
    ),
    Export(
        "IoCsqInsertIrpEx",
        super::csq::IoCsqInsertIrpEx as *const c_void,
    ),
    Export(
        "IoCsqRemoveIrp",
        super::csq::IoCsqRemoveIrp as *const c_void,
    ),
    Export(
        "IoCsqRemoveNextIrp",
        super::csq::IoCsqRemoveNextIrp as *const c_void,
    ),
    Export(
        "WdfWorkItemCreate",
        super::wdf::workitem::WdfWorkItemCreate as *const c_void,
    ),
    Export(
        "WdfWorkItemEnqueue",
        super::wdf::workitem::WdfWorkItemEnqueue as *const c_void,
    ),
    Export(
        "WdfWorkItemFlush",
        super::wdf::workitem::WdfWorkItemFlush as *const c_void,
    ),
    Export(
        "WdfWorkItemGetParentObject",
        super::wdf::workitem::WdfWorkItemGetParentObject as *const c_void,
    ),
    Export(
        "KeWaitForMultipleObjects",
        super::dispatcher::KeWaitForMultipleObjects as *const c_void,
    ),
    Export(
        "KeInitializeMutex",
        super::dispatcher::KeInitializeMutex as *const c_void,
    ),
    Export(
        "KeReleaseMutex",
        super::dispatcher::KeReleaseMutex as *const c_void,
    ),
    Export(
        "KeReadStateMutex",
        super::dispatcher::KeReadStateMutex as *const c_void,
    ),
    Export(
        "KeInitializeSemaphore",
        super::dispatcher::KeInitializeSemaphore as *const c_void,
    ),
    Export(
        "KeReleaseSemaphore",
        super::dispatcher::KeReleaseSemaphore as *const c_void,
    ),
    Export(
        "KeReadStateSemaphore",
        super::dispatcher::KeReadStateSemaphore as *const c_void,
    ),
    Export(
        "KeEnterCriticalRegion",
        super::resource::KeEnterCriticalRegion as *const c_void,
    ),
    Export(
        "KeLeaveCriticalRegion",
        super::resource::KeLeaveCriticalRegion as *const c_void,
    ),
    Export(
        "ExAcquireFastMutex",
        super::resource::ExAcquireFastMutex as *const c_void,
    ),
    Export(
        "ExTryToAcquireFastMutex",
        super::resource::ExTryToAcquireFastMutex as *const c_void,
    ),
    Export(
        "ExReleaseFastMutex",
        super::resource::ExReleaseFastMutex as *const c_void,
    ),
    Export(
        "ExAcquireFastMutexUnsafe",
        super::resource::ExAcquireFastMutexUnsafe as *const c_void,
    ),
    Export(
        "ExReleaseFastMutexUnsafe",
        super::resource::ExReleaseFastMutexUnsafe as *const c_void,
    ),
    Export(
        "ExInitializeResourceLite",
        super::resource::ExInitializeResourceLite as *const c_void,
    ),
    Export(
        "ExDeleteResourceLite",
        super::resource::ExDeleteResourceLite as *const c_void,
    ),
    Export(
        "ExAcquireResourceSharedLite",
        super::resource::ExAcquireResourceSharedLite as *const c_void,
    ),
    Export(
        "ExAcquireResourceExclusiveLite",
        super::resource::ExAcquireResourceExclusiveLite as *const c_void,
    ),
    Export(
        "ExReleaseResourceLite",
        super::resource::ExReleaseResourceLite as *const c_void,
    ),
    Export(
        "ExIsResourceAcquiredExclusiveLite",
        super::resource::ExIsResourceAcquiredExclusiveLite as *const c_void,
    ),
    Export(
        "ExIsResourceAcquiredSharedLite",
        super::resource::ExIsResourceAcquiredSharedLite as *const c_void,
    ),
    Export(
        "KeInitializeDpc",
        super::dpc::KeInitializeDpc as *const c_void,
    ),
    Export(
        "KeInitializeThreadedDpc",
        super::dpc::KeInitializeThreadedDpc as *const c_void,
    ),
    Export(
        "KeInsertQueueDpc",
        super::dpc::KeInsertQueueDpc as *const c_void,
    ),
    Export(
        "KeRemoveQueueDpc",
        super::dpc::KeRemoveQueueDpc as *const c_void,
    ),
    Export(
        "KeInitializeTimer",
        super::timer::KeInitializeTimer as *const c_void,
    ),
    Export(
        "KeInitializeTimerEx",
        super::timer::KeInitializeTimerEx as *const c_void,
    ),
    Export("KeSetTimer", super::timer::KeSetTimer as *const c_void),
    Export("KeSetTimerEx", super::timer::KeSetTimerEx as *const c_void),
    Export(
        "KeCancelTimer",
        super::timer::KeCancelTimer as *const c_void,
    ),
    Export(
        "KeReadStateTimer",
        super::timer::KeReadStateTimer as *const c_void,
    ),
    Export(
        "KeFlushQueuedDpcs",
        super::dpc::KeFlushQueuedDpcs as *const c_void,
    ),
    Export(
        "KeQueryMaximumProcessorCount",
        super::dpc::KeQueryMaximumProcessorCount as *const c_void,
    ),
    Export(
        "KeQueryMaximumProcessorCountEx",
        super::dpc::KeQueryMaximumProcessorCountEx as *const c_void,
    ),
    Export(
        "KeQueryActiveProcessorCountEx",
        super::dpc::KeQueryActiveProcessorCountEx as *const c_void,
    ),
    Export(
        "ExAllocatePool2",
        super::kernel::ExAllocatePool2 as *const c_void,
    ),
    Export(
        "ExAllocatePoolWithTag",
        super::kernel::ExAllocatePoolWithTag as *const c_void,
    ),
    Export(
        "ExInitializeDriverRuntime",
        super::kernel::ExInitializeDriverRuntime as *const c_void,
    ),
    Export("ExFreePool", super::kernel::ExFreePool as *const c_void),
    Export(
        "ExFreePoolWithTag",
        super::kernel::ExFreePoolWithTag as *const c_void,
    ),
    Export(
        "FwpmCalloutAdd0",
        super::fwpm::FwpmCalloutAdd0 as *const c_void,
    ),
    Export(
        "FwpmCalloutDeleteById0",
        super::fwpm::FwpmCalloutDeleteById0 as *const c_void,
    ),
    Export(
        "FwpmCalloutDeleteByKey0",
        super::fwpm::FwpmCalloutDeleteByKey0 as *const c_void,
    ),
    Export(
        "FwpmEngineClose0",
        super::fwpm::FwpmEngineClose0 as *const c_void,
    ),
    Export(
        "FwpmEngineOpen0",
        super::fwpm::FwpmEngineOpen0 as *const c_void,
    ),
    Export(
        "FwpmFilterAdd0",
        super::fwpm::FwpmFilterAdd0 as *const c_void,
    ),
    Export(
        "FwpmFilterDeleteById0",
        super::fwpm::FwpmFilterDeleteById0 as *const c_void,
    ),
    Export(
        "FwpmFilterDeleteByKey0",
        super::fwpm::FwpmFilterDeleteByKey0 as *const c_void,
    ),
    Export(
        "FwpmFreeMemory0",
        super::fwpm::FwpmFreeMemory0 as *const c_void,
    ),
    Export(
        "ExCreateCallback",
        super::callbackobj::ExCreateCallback as *const c_void,
    ),
    Export(
        "ExRegisterCallback",
        super::callbackobj::ExRegisterCallback as *const c_void,
    ),
    Export(
        "ExUnregisterCallback",
        super::callbackobj::ExUnregisterCallback as *const c_void,
    ),
    Export(
        "ExNotifyCallback",
        super::callbackobj::ExNotifyCallback as *const c_void,
    ),
    Export(
        "WdfWaitLockCreate",
        super::wdf::WdfWaitLockCreate as *const c_void,
    ),
    Export(
        "WdfWaitLockAcquire",
        super::wdf::WdfWaitLockAcquire as *const c_void,
    ),
    Export(
        "WdfWaitLockRelease",
        super::wdf::WdfWaitLockRelease as *const c_void,
    ),
    Export(
        "FwpmBfeStateGet0",
        super::bfe::FwpmBfeStateGet0 as *const c_void,
    ),
    Export(
        "FwpmBfeStateSubscribeChanges0",
        super::bfe::FwpmBfeStateSubscribeChanges0 as *const c_void,
    ),
    Export(
        "FwpmBfeStateUnsubscribeChanges0",
        super::bfe::FwpmBfeStateUnsubscribeChanges0 as *const c_void,
    ),
    Export(
        "FwpmProviderAdd0",
        super::fwpm::FwpmProviderAdd0 as *const c_void,
    ),
    Export(
        "FwpmProviderContextAdd0",
        super::fwpm::FwpmProviderContextAdd0 as *const c_void,
    ),
    Export(
        "FwpmProviderContextAdd1",
        super::fwpm::FwpmProviderContextAdd1 as *const c_void,
    ),
    Export(
        "FwpmProviderContextAdd2",
        super::fwpm::FwpmProviderContextAdd2 as *const c_void,
    ),
    Export(
        "FwpmProviderContextAdd3",
        super::fwpm::FwpmProviderContextAdd3 as *const c_void,
    ),
    Export(
        "FwpmProviderContextDeleteById0",
        super::fwpm::FwpmProviderContextDeleteById0 as *const c_void,
    ),
    Export(
        "FwpmProviderContextDeleteByKey0",
        super::fwpm::FwpmProviderContextDeleteByKey0 as *const c_void,
    ),
    Export(
        "FwpmProviderContextGetByKey0",
        super::fwpm::FwpmProviderContextGetByKey0 as *const c_void,
    ),
    Export(
        "FwpmSubLayerAdd0",
        super::fwpm::FwpmSubLayerAdd0 as *const c_void,
    ),
    Export(
        "FwpmSubLayerDeleteByKey0",
        super::fwpm::FwpmSubLayerDeleteByKey0 as *const c_void,
    ),
    Export(
        "FwpmTransactionAbort0",
        super::fwpm::FwpmTransactionAbort0 as *const c_void,
    ),
    Export(
        "FwpmTransactionBegin0",
        super::fwpm::FwpmTransactionBegin0 as *const c_void,
    ),
    Export(
        "FwpmTransactionCommit0",
        super::fwpm::FwpmTransactionCommit0 as *const c_void,
    ),
    Export(
        "FwpsCalloutRegister0",
        super::fwps::FwpsCalloutRegister0 as *const c_void,
    ),
    Export(
        "FwpsCalloutRegister1",
        super::fwps::FwpsCalloutRegister1 as *const c_void,
    ),
    Export(
        "FwpsCalloutRegister2",
        super::fwps::FwpsCalloutRegister2 as *const c_void,
    ),
    Export(
        "FwpsCalloutRegister3",
        super::fwps::FwpsCalloutRegister3 as *const c_void,
    ),
    Export(
        "FwpsCalloutUnregisterById0",
        super::fwps::FwpsCalloutUnregisterById0 as *const c_void,
    ),
    Export(
        "FwpsCalloutUnregisterByKey0",
        super::fwps::FwpsCalloutUnregisterByKey0 as *const c_void,
    ),
    Export(
        "FwpsCopyStreamDataToBuffer0",
        super::fwps::FwpsCopyStreamDataToBuffer0 as *const c_void,
    ),
    Export(
        "FwpsFlowAbort0",
        super::fwps::FwpsFlowAbort0 as *const c_void,
    ),
    Export(
        "FwpsFlowAssociateContext0",
        super::fwps::FwpsFlowAssociateContext0 as *const c_void,
    ),
    Export(
        "FwpsFlowRemoveContext0",
        super::fwps::FwpsFlowRemoveContext0 as *const c_void,
    ),
    Export("IoAllocateMdl", super::ndis::IoAllocateMdl as *const c_void),
    Export(
        "IoCreateDevice",
        super::kernel::IoCreateDevice as *const c_void,
    ),
    Export(
        "IoDeleteDevice",
        super::kernel::IoDeleteDevice as *const c_void,
    ),
    Export(
        "IoCreateSymbolicLink",
        super::wdm::IoCreateSymbolicLink as *const c_void,
    ),
    Export(
        "IoDeleteSymbolicLink",
        super::wdm::IoDeleteSymbolicLink as *const c_void,
    ),
    Export(
        "IofCompleteRequest",
        super::wdm::IofCompleteRequest as *const c_void,
    ),
    Export("IoFreeMdl", super::ndis::IoFreeMdl as *const c_void),
    Export("IofCallDriver", super::irp::IofCallDriver as *const c_void),
    Export(
        "IoSetCompletionRoutineEx",
        super::irp::IoSetCompletionRoutineEx as *const c_void,
    ),
    Export("IoAllocateIrp", super::irp::IoAllocateIrp as *const c_void),
    Export("IoFreeIrp", super::irp::IoFreeIrp as *const c_void),
    Export(
        "IoBuildDeviceIoControlRequest",
        super::irp::IoBuildDeviceIoControlRequest as *const c_void,
    ),
    Export(
        "IoAcquireCancelSpinLock",
        super::irp::IoAcquireCancelSpinLock as *const c_void,
    ),
    Export(
        "IoReleaseCancelSpinLock",
        super::irp::IoReleaseCancelSpinLock as *const c_void,
    ),
    Export("IoCancelIrp", super::irp::IoCancelIrp as *const c_void),
    Export(
        "IoGetDeviceObjectPointer",
        super::wdm_io::IoGetDeviceObjectPointer as *const c_void,
    ),
    Export(
        "IoAttachDeviceToDeviceStack",
        super::wdm::IoAttachDeviceToDeviceStack as *const c_void,
    ),
    Export(
        "IoDetachDevice",
        super::wdm::IoDetachDevice as *const c_void,
    ),
    Export(
        "IoGetAttachedDevice",
        super::wdm::IoGetAttachedDevice as *const c_void,
    ),
    Export(
        "KeAcquireInStackQueuedSpinLock",
        super::kernel::KeAcquireInStackQueuedSpinLock as *const c_void,
    ),
    Export(
        "KeAcquireInStackQueuedSpinLockAtDpcLevel",
        super::kernel::KeAcquireInStackQueuedSpinLockAtDpcLevel as *const c_void,
    ),
    Export(
        "KeAcquireSpinLockAtDpcLevel",
        super::kernel::KeAcquireSpinLockAtDpcLevel as *const c_void,
    ),
    Export(
        "KeAcquireSpinLockRaiseToDpc",
        super::kernel::KeAcquireSpinLockRaiseToDpc as *const c_void,
    ),
    Export(
        "KeGetCurrentIrql",
        super::kernel::KeGetCurrentIrql as *const c_void,
    ),
    Export(
        "KeGetCurrentProcessorIndex",
        super::kernel::KeGetCurrentProcessorIndex as *const c_void,
    ),
    Export("KeLowerIrql", super::kernel::KeLowerIrql as *const c_void),
    Export(
        "KeQueryActiveProcessorCount",
        super::kernel::KeQueryActiveProcessorCount as *const c_void,
    ),
    Export(
        "KeQueryInterruptTime",
        super::kernel::KeQueryInterruptTime as *const c_void,
    ),
    Export(
        "KeQueryPerformanceCounter",
        super::kernel::KeQueryPerformanceCounter as *const c_void,
    ),
    Export("ExUuidCreate", super::kernel::ExUuidCreate as *const c_void),
    Export(
        "KeQuerySystemTimePrecise",
        super::kernel::KeQuerySystemTimePrecise as *const c_void,
    ),
    Export(
        "KeReleaseInStackQueuedSpinLock",
        super::kernel::KeReleaseInStackQueuedSpinLock as *const c_void,
    ),
    Export(
        "KeReleaseInStackQueuedSpinLockFromDpcLevel",
        super::kernel::KeReleaseInStackQueuedSpinLockFromDpcLevel as *const c_void,
    ),
    Export(
        "KeReleaseSpinLock",
        super::kernel::KeReleaseSpinLock as *const c_void,
    ),
    Export(
        "KeReleaseSpinLockFromDpcLevel",
        super::kernel::KeReleaseSpinLockFromDpcLevel as *const c_void,
    ),
    Export("KfRaiseIrql", super::kernel::KfRaiseIrql as *const c_void),
    Export(
        "MmBuildMdlForNonPagedPool",
        super::ndis::MmBuildMdlForNonPagedPool as *const c_void,
    ),
    Export(
        "NdisAdvanceNetBufferDataStart",
        super::ndis::NdisAdvanceNetBufferDataStart as *const c_void,
    ),
    Export(
        "NdisGetDataBuffer",
        super::ndis::NdisGetDataBuffer as *const c_void,
    ),
    Export(
        "NdisRetreatNetBufferDataStart",
        super::ndis::NdisRetreatNetBufferDataStart as *const c_void,
    ),
    Export(
        "WfpRtAllocatePool2At",
        super::kernel::WfpRtAllocatePool2At as *const c_void,
    ),
    Export(
        "WfpRtAllocatePoolWithTagAt",
        super::kernel::WfpRtAllocatePoolWithTagAt as *const c_void,
    ),
    Export(
        "WfpRtAssertFailed",
        super::kernel::WfpRtAssertFailed as *const c_void,
    ),
    Export(
        "WfpRtDebugPrint",
        super::kernel::WfpRtDebugPrint as *const c_void,
    ),
    Export(
        "WfpRtFatalListEntryError",
        super::kernel::WfpRtFatalListEntryError as *const c_void,
    ),
    Export(
        "FwpsPendOperation0",
        super::pend::FwpsPendOperation0 as *const c_void,
    ),
    Export(
        "FwpsCompleteOperation0",
        super::pend::FwpsCompleteOperation0 as *const c_void,
    ),
    Export(
        "FwpsAcquireClassifyHandle0",
        super::pend::FwpsAcquireClassifyHandle0 as *const c_void,
    ),
    Export(
        "FwpsReleaseClassifyHandle0",
        super::pend::FwpsReleaseClassifyHandle0 as *const c_void,
    ),
    Export(
        "FwpsPendClassify0",
        super::pend::FwpsPendClassify0 as *const c_void,
    ),
    Export(
        "FwpsCompleteClassify0",
        super::pend::FwpsCompleteClassify0 as *const c_void,
    ),
    Export(
        "FwpsAcquireWritableLayerDataPointer0",
        super::pend::FwpsAcquireWritableLayerDataPointer0 as *const c_void,
    ),
    Export(
        "FwpsApplyModifiedLayerData0",
        super::pend::FwpsApplyModifiedLayerData0 as *const c_void,
    ),
    Export(
        "WfpRtWppControl",
        super::registry::WfpRtWppControl as *const c_void,
    ),
    Export(
        "FwpsRedirectHandleCreate0",
        super::redirect::FwpsRedirectHandleCreate0 as *const c_void,
    ),
    Export(
        "FwpsRedirectHandleDestroy0",
        super::redirect::FwpsRedirectHandleDestroy0 as *const c_void,
    ),
    Export(
        "FwpsQueryConnectionRedirectState0",
        super::redirect::FwpsQueryConnectionRedirectState0 as *const c_void,
    ),
    Export(
        "FwpsInjectionHandleCreate0",
        super::inject::FwpsInjectionHandleCreate0 as *const c_void,
    ),
    Export(
        "FwpsInjectionHandleDestroy0",
        super::inject::FwpsInjectionHandleDestroy0 as *const c_void,
    ),
    Export(
        "FwpsQueryPacketInjectionState0",
        super::inject::FwpsQueryPacketInjectionState0 as *const c_void,
    ),
    Export(
        "FwpsInjectTransportSendAsync0",
        super::inject::FwpsInjectTransportSendAsync0 as *const c_void,
    ),
    Export(
        "FwpsInjectTransportSendAsync1",
        super::inject::FwpsInjectTransportSendAsync1 as *const c_void,
    ),
    Export(
        "FwpsInjectTransportReceiveAsync0",
        super::inject::FwpsInjectTransportReceiveAsync0 as *const c_void,
    ),
    Export(
        "FwpsInjectNetworkSendAsync0",
        super::inject::FwpsInjectNetworkSendAsync0 as *const c_void,
    ),
    Export(
        "FwpsInjectNetworkReceiveAsync0",
        super::inject::FwpsInjectNetworkReceiveAsync0 as *const c_void,
    ),
    Export(
        "FwpsInjectForwardAsync0",
        super::inject::FwpsInjectForwardAsync0 as *const c_void,
    ),
    Export(
        "FwpsGetPacketListSecurityInformation0",
        super::inject::FwpsGetPacketListSecurityInformation0 as *const c_void,
    ),
    Export(
        "FwpsStreamInjectAsync0",
        super::inject::FwpsStreamInjectAsync0 as *const c_void,
    ),
    Export(
        "FwpsStreamContinue0",
        super::inject::FwpsStreamContinue0 as *const c_void,
    ),
    Export(
        "FwpsAllocateNetBufferAndNetBufferList0",
        super::nblapi::FwpsAllocateNetBufferAndNetBufferList0 as *const c_void,
    ),
    Export(
        "FwpsFreeNetBufferList0",
        super::nblapi::FwpsFreeNetBufferList0 as *const c_void,
    ),
    Export(
        "FwpsAllocateCloneNetBufferList0",
        super::nblapi::FwpsAllocateCloneNetBufferList0 as *const c_void,
    ),
    Export(
        "FwpsFreeCloneNetBufferList0",
        super::nblapi::FwpsFreeCloneNetBufferList0 as *const c_void,
    ),
    Export(
        "FwpsReferenceNetBufferList0",
        super::nblapi::FwpsReferenceNetBufferList0 as *const c_void,
    ),
    Export(
        "FwpsDereferenceNetBufferList0",
        super::nblapi::FwpsDereferenceNetBufferList0 as *const c_void,
    ),
    Export(
        "FwpsConstructIpHeaderForTransportPacket0",
        super::nblapi::FwpsConstructIpHeaderForTransportPacket0 as *const c_void,
    ),
    Export(
        "FwpsCloneStreamData0",
        super::nblapi::FwpsCloneStreamData0 as *const c_void,
    ),
    Export(
        "FwpsDiscardClonedStreamData0",
        super::nblapi::FwpsDiscardClonedStreamData0 as *const c_void,
    ),
    // ---- cabirt: kernel runtime (events, threads, work items, lookaside lists, strings, WDF,
    // NDIS pools). Kept as one block at the end of the list for merging; `names()` sorts. ----
    Export(
        "KeInitializeEvent",
        super::sync::KeInitializeEvent as *const c_void,
    ),
    Export("KeSetEvent", super::sync::KeSetEvent as *const c_void),
    Export("KeResetEvent", super::sync::KeResetEvent as *const c_void),
    Export("KeClearEvent", super::sync::KeClearEvent as *const c_void),
    Export(
        "KeReadStateEvent",
        super::sync::KeReadStateEvent as *const c_void,
    ),
    Export(
        "KeWaitForSingleObject",
        super::sync::KeWaitForSingleObject as *const c_void,
    ),
    Export(
        "KeDelayExecutionThread",
        super::sync::KeDelayExecutionThread as *const c_void,
    ),
    Export(
        "WfpRtCreateSystemThread",
        super::thread::WfpRtCreateSystemThread as *const c_void,
    ),
    Export(
        "WfpRtThreadSetExit",
        super::thread::WfpRtThreadSetExit as *const c_void,
    ),
    Export(
        "WfpRtThreadExit",
        super::thread::WfpRtThreadExit as *const c_void,
    ),
    Export(
        "ObReferenceObjectByHandle",
        super::thread::ObReferenceObjectByHandle as *const c_void,
    ),
    Export(
        "ObfReferenceObject",
        super::thread::ObfReferenceObject as *const c_void,
    ),
    Export(
        "ObfDereferenceObject",
        super::thread::ObfDereferenceObject as *const c_void,
    ),
    Export("ZwClose", super::thread::ZwClose as *const c_void),
    Export(
        "PsGetCurrentProcessId",
        super::thread::PsGetCurrentProcessId as *const c_void,
    ),
    Export(
        "PsGetCurrentThreadId",
        super::thread::PsGetCurrentThreadId as *const c_void,
    ),
    Export(
        "IoSizeofWorkItem",
        super::thread::IoSizeofWorkItem as *const c_void,
    ),
    Export(
        "IoAllocateWorkItem",
        super::thread::IoAllocateWorkItem as *const c_void,
    ),
    Export(
        "IoInitializeWorkItem",
        super::thread::IoInitializeWorkItem as *const c_void,
    ),
    Export(
        "IoFreeWorkItem",
        super::thread::IoFreeWorkItem as *const c_void,
    ),
    Export(
        "IoUninitializeWorkItem",
        super::thread::IoUninitializeWorkItem as *const c_void,
    ),
    Export(
        "IoQueueWorkItem",
        super::thread::IoQueueWorkItem as *const c_void,
    ),
    Export(
        "IoQueueWorkItemEx",
        super::thread::IoQueueWorkItemEx as *const c_void,
    ),
    Export(
        "ExInitializeLookasideListEx",
        super::lookaside::ExInitializeLookasideListEx as *const c_void,
    ),
    Export(
        "ExAllocateFromLookasideListEx",
        super::lookaside::ExAllocateFromLookasideListEx as *const c_void,
    ),
    Export(
        "ExFreeToLookasideListEx",
        super::lookaside::ExFreeToLookasideListEx as *const c_void,
    ),
    Export(
        "ExFlushLookasideListEx",
        super::lookaside::ExFlushLookasideListEx as *const c_void,
    ),
    Export(
        "ExDeleteLookasideListEx",
        super::lookaside::ExDeleteLookasideListEx as *const c_void,
    ),
    Export(
        "ExInitializeNPagedLookasideList",
        super::lookaside::ExInitializeNPagedLookasideList as *const c_void,
    ),
    Export(
        "ExAllocateFromNPagedLookasideList",
        super::lookaside::ExAllocateFromNPagedLookasideList as *const c_void,
    ),
    Export(
        "ExFreeToNPagedLookasideList",
        super::lookaside::ExFreeToNPagedLookasideList as *const c_void,
    ),
    Export(
        "ExDeleteNPagedLookasideList",
        super::lookaside::ExDeleteNPagedLookasideList as *const c_void,
    ),
    Export(
        "PsThreadType",
        std::ptr::addr_of!(super::thread::PsThreadType).cast(),
    ),
    Export(
        "RtlIpv4StringToAddressA",
        super::ip2string::RtlIpv4StringToAddressA as *const c_void,
    ),
    Export(
        "RtlIpv6StringToAddressA",
        super::ip2string::RtlIpv6StringToAddressA as *const c_void,
    ),
    Export(
        "RtlIpv4AddressToStringA",
        super::ip2string::RtlIpv4AddressToStringA as *const c_void,
    ),
    Export(
        "RtlIpv6AddressToStringA",
        super::ip2string::RtlIpv6AddressToStringA as *const c_void,
    ),
    Export(
        "RtlIpv4StringToAddressExA",
        super::ip2string::RtlIpv4StringToAddressExA as *const c_void,
    ),
    Export(
        "RtlIpv6StringToAddressExA",
        super::ip2string::RtlIpv6StringToAddressExA as *const c_void,
    ),
    Export(
        "RtlIpv4AddressToStringExA",
        super::ip2string::RtlIpv4AddressToStringExA as *const c_void,
    ),
    Export(
        "RtlIpv6AddressToStringExA",
        super::ip2string::RtlIpv6AddressToStringExA as *const c_void,
    ),
    Export(
        "RtlIpv4StringToAddressW",
        super::ip2string::RtlIpv4StringToAddressW as *const c_void,
    ),
    Export(
        "RtlIpv6StringToAddressW",
        super::ip2string::RtlIpv6StringToAddressW as *const c_void,
    ),
    Export(
        "RtlIpv4AddressToStringW",
        super::ip2string::RtlIpv4AddressToStringW as *const c_void,
    ),
    Export(
        "RtlIpv6AddressToStringW",
        super::ip2string::RtlIpv6AddressToStringW as *const c_void,
    ),
    Export(
        "RtlIpv4StringToAddressExW",
        super::ip2string::RtlIpv4StringToAddressExW as *const c_void,
    ),
    Export(
        "RtlIpv6StringToAddressExW",
        super::ip2string::RtlIpv6StringToAddressExW as *const c_void,
    ),
    Export(
        "RtlIpv4AddressToStringExW",
        super::ip2string::RtlIpv4AddressToStringExW as *const c_void,
    ),
    Export(
        "RtlIpv6AddressToStringExW",
        super::ip2string::RtlIpv6AddressToStringExW as *const c_void,
    ),
    Export(
        "WdfDriverCreate",
        super::wdf::WdfDriverCreate as *const c_void,
    ),
    Export(
        "WdfDriverWdmGetDriverObject",
        super::wdf::WdfDriverWdmGetDriverObject as *const c_void,
    ),
    Export(
        "WdfWdmDriverGetWdfDriverHandle",
        super::wdf::WdfWdmDriverGetWdfDriverHandle as *const c_void,
    ),
    Export("WdfGetDriver", super::wdf::WdfGetDriver as *const c_void),
    Export(
        "WdfControlDeviceInitAllocate",
        super::wdf::WdfControlDeviceInitAllocate as *const c_void,
    ),
    Export(
        "WdfDeviceInitSetDeviceType",
        super::wdf::WdfDeviceInitSetDeviceType as *const c_void,
    ),
    Export(
        "WdfDeviceInitSetCharacteristics",
        super::wdf::WdfDeviceInitSetCharacteristics as *const c_void,
    ),
    Export(
        "WdfDeviceInitSetDeviceClass",
        super::wdf::WdfDeviceInitSetDeviceClass as *const c_void,
    ),
    Export(
        "WdfDeviceInitSetIoType",
        super::wdf::WdfDeviceInitSetIoType as *const c_void,
    ),
    Export(
        "WdfDeviceInitSetExclusive",
        super::wdf::WdfDeviceInitSetExclusive as *const c_void,
    ),
    Export(
        "WdfDeviceInitAssignName",
        super::wdf::WdfDeviceInitAssignName as *const c_void,
    ),
    Export(
        "WdfDeviceInitFree",
        super::wdf::WdfDeviceInitFree as *const c_void,
    ),
    Export(
        "WdfDeviceCreate",
        super::wdf::WdfDeviceCreate as *const c_void,
    ),
    Export(
        "WdfDeviceCreateSymbolicLink",
        super::wdf::WdfDeviceCreateSymbolicLink as *const c_void,
    ),
    Export(
        "WdfControlFinishInitializing",
        super::wdf::WdfControlFinishInitializing as *const c_void,
    ),
    Export(
        "WdfDeviceWdmGetDeviceObject",
        super::wdf::WdfDeviceWdmGetDeviceObject as *const c_void,
    ),
    Export(
        "WdfDeviceGetDriver",
        super::wdf::WdfDeviceGetDriver as *const c_void,
    ),
    Export(
        "WdfObjectDelete",
        super::wdf::WdfObjectDelete as *const c_void,
    ),
    Export(
        "WdfObjectGetTypedContextWorker",
        super::wdf::WdfObjectGetTypedContextWorker as *const c_void,
    ),
    Export(
        "WdfObjectAllocateContext",
        super::wdf::WdfObjectAllocateContext as *const c_void,
    ),
    Export(
        "WdfDriverOpenParametersRegistryKey",
        super::wdf::WdfDriverOpenParametersRegistryKey as *const c_void,
    ),
    Export(
        "WdfRegistryQueryULong",
        super::wdf::WdfRegistryQueryULong as *const c_void,
    ),
    Export(
        "WdfRegistryQueryUnicodeString",
        super::wdf::WdfRegistryQueryUnicodeString as *const c_void,
    ),
    Export(
        "WdfRegistryQueryValue",
        super::wdf::WdfRegistryQueryValue as *const c_void,
    ),
    Export(
        "WdfRegistryClose",
        super::wdf::WdfRegistryClose as *const c_void,
    ),
    Export(
        "WdfIoQueueCreate",
        super::wdf::WdfIoQueueCreate as *const c_void,
    ),
    Export(
        "WdfRequestRetrieveInputBuffer",
        super::wdf::WdfRequestRetrieveInputBuffer as *const c_void,
    ),
    Export(
        "WdfRequestRetrieveOutputBuffer",
        super::wdf::WdfRequestRetrieveOutputBuffer as *const c_void,
    ),
    Export(
        "WdfRequestRetrieveInputMemory",
        super::wdf::WdfRequestRetrieveInputMemory as *const c_void,
    ),
    Export(
        "WdfRequestRetrieveOutputMemory",
        super::wdf::WdfRequestRetrieveOutputMemory as *const c_void,
    ),
    Export(
        "WdfMemoryGetBuffer",
        super::wdf::WdfMemoryGetBuffer as *const c_void,
    ),
    Export(
        "WdfRequestGetIoQueue",
        super::wdf::WdfRequestGetIoQueue as *const c_void,
    ),
    Export(
        "WdfRequestSetInformation",
        super::wdf::WdfRequestSetInformation as *const c_void,
    ),
    Export(
        "WdfRequestComplete",
        super::wdf::WdfRequestComplete as *const c_void,
    ),
    Export(
        "WdfRequestCompleteWithInformation",
        super::wdf::WdfRequestCompleteWithInformation as *const c_void,
    ),
    Export(
        "NdisAllocateNetBufferListPool",
        super::ndispool::NdisAllocateNetBufferListPool as *const c_void,
    ),
    Export(
        "NdisFreeNetBufferListPool",
        super::ndispool::NdisFreeNetBufferListPool as *const c_void,
    ),
    Export(
        "NdisAllocateNetBufferList",
        super::ndispool::NdisAllocateNetBufferList as *const c_void,
    ),
    Export(
        "NdisAllocateNetBufferAndNetBufferList",
        super::ndispool::NdisAllocateNetBufferAndNetBufferList as *const c_void,
    ),
    Export(
        "NdisFreeNetBufferList",
        super::ndispool::NdisFreeNetBufferList as *const c_void,
    ),
    Export(
        "NdisAllocateNetBufferListContext",
        super::ndispool::NdisAllocateNetBufferListContext as *const c_void,
    ),
    Export(
        "NdisFreeNetBufferListContext",
        super::ndispool::NdisFreeNetBufferListContext as *const c_void,
    ),
    Export(
        "NdisAllocateCloneNetBufferList",
        super::ndisnb::NdisAllocateCloneNetBufferList as *const c_void,
    ),
    Export(
        "NdisFreeCloneNetBufferList",
        super::ndisnb::NdisFreeCloneNetBufferList as *const c_void,
    ),
    Export(
        "NdisGetPoolFromNetBufferList",
        super::ndisnb::NdisGetPoolFromNetBufferList as *const c_void,
    ),
    Export(
        "NdisAllocateNetBufferPool",
        super::ndisnb::NdisAllocateNetBufferPool as *const c_void,
    ),
    Export(
        "NdisFreeNetBufferPool",
        super::ndisnb::NdisFreeNetBufferPool as *const c_void,
    ),
    Export(
        "NdisAllocateNetBuffer",
        super::ndisnb::NdisAllocateNetBuffer as *const c_void,
    ),
    Export(
        "NdisAllocateNetBufferMdlAndData",
        super::ndisnb::NdisAllocateNetBufferMdlAndData as *const c_void,
    ),
    Export(
        "NdisFreeNetBuffer",
        super::ndisnb::NdisFreeNetBuffer as *const c_void,
    ),
    Export(
        "NdisCopyFromNetBufferToNetBuffer",
        super::ndisnb::NdisCopyFromNetBufferToNetBuffer as *const c_void,
    ),
    Export(
        "FwpsOpenToken0",
        super::fwpstoken::FwpsOpenToken0 as *const c_void,
    ),
    Export("NtClose", super::fwpstoken::NtClose as *const c_void),
    Export(
        "FwpsQueryConnectionSioFormatRedirectRecords0",
        super::redirect::FwpsQueryConnectionSioFormatRedirectRecords0 as *const c_void,
    ),
    Export(
        "FwpsNetBufferListGetTagForContext0",
        super::nbltag::FwpsNetBufferListGetTagForContext0 as *const c_void,
    ),
    Export(
        "FwpsNetBufferListAssociateContext0",
        super::nbltag::FwpsNetBufferListAssociateContext0 as *const c_void,
    ),
    Export(
        "FwpsNetBufferListAssociateContext1",
        super::nbltag::FwpsNetBufferListAssociateContext1 as *const c_void,
    ),
    Export(
        "FwpsNetBufferListRetrieveContext0",
        super::nbltag::FwpsNetBufferListRetrieveContext0 as *const c_void,
    ),
    Export(
        "FwpsNetBufferListRemoveContext0",
        super::nbltag::FwpsNetBufferListRemoveContext0 as *const c_void,
    ),
    Export(
        "NdisAllocateGenericObject",
        super::ndispool::NdisAllocateGenericObject as *const c_void,
    ),
    Export(
        "NdisFreeGenericObject",
        super::ndispool::NdisFreeGenericObject as *const c_void,
    ),
    Export("ZwOpenKey", super::registry::ZwOpenKey as *const c_void),
    Export(
        "ZwQueryValueKey",
        super::registry::ZwQueryValueKey as *const c_void,
    ),
    // ---- end cabirt ----
    // ---- WFPSampler (wfps13): layer-2 injection ----
    Export(
        "FwpsInjectMacReceiveAsync0",
        super::l2inject::FwpsInjectMacReceiveAsync0 as *const c_void,
    ),
    Export(
        "FwpsInjectMacSendAsync0",
        super::l2inject::FwpsInjectMacSendAsync0 as *const c_void,
    ),
    Export(
        "FwpsInjectvSwitchEthernetIngressAsync0",
        super::l2inject::FwpsInjectvSwitchEthernetIngressAsync0 as *const c_void,
    ),
    // ---- end WFPSampler (wfps13) ----
];

/// The exported names, sorted.
pub(crate) fn names() -> Vec<&'static str> {
    let mut v: Vec<&str> = EXPORTS.iter().map(|e| e.0).collect();
    v.sort_unstable();
    v
}
