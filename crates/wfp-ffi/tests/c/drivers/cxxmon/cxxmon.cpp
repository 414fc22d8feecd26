/* cxxmon test driver (ours), C++ translation unit: a callout driver written the way WDK C++
 * drivers are — classes with RAII spin-lock guards, pool-backed operator new/delete, a template
 * and a lambda, flag enums with DEFINE_ENUM_FLAG_OPERATORS, GUIDs defined under INITGUID and
 * compared with IsEqualGUID / ==, RTL_CONSTANT_STRING over L"" literals, WPP tracing, a global
 * object with a constructor, and calls into and from a C unit. It counts packets and bytes per
 * remote port at the IPv4 transport layers, blocks outbound UDP to port 9000, and prints its
 * table when it unloads. Prints "ok NAME" / "FAIL NAME" lines. */
#include "cxxmon.h"
#include <initguid.h>

// 6a4b2c10-3c5d-4e6f-8091-a2b3c4d5e6f7
DEFINE_GUID(CXXMON_CALLOUT_OUTBOUND_V4, 0x6a4b2c10, 0x3c5d, 0x4e6f, 0x80, 0x91, 0xa2, 0xb3, 0xc4, 0xd5, 0xe6, 0xf7);
// 6a4b2c11-3c5d-4e6f-8091-a2b3c4d5e6f7
DEFINE_GUID(CXXMON_CALLOUT_INBOUND_V4, 0x6a4b2c11, 0x3c5d, 0x4e6f, 0x80, 0x91, 0xa2, 0xb3, 0xc4, 0xd5, 0xe6, 0xf7);

#define WPP_CONTROL_GUIDS \
    WPP_DEFINE_CONTROL_GUID(CxxmonTrace, (6a4b2c1f, 3c5d, 4e6f, 8091, a2b3c4d5e6f7), \
        WPP_DEFINE_BIT(CXXMON_GENERAL))
#include "cxxmon.tmh"

EXTERN_C DRIVER_INITIALIZE DriverEntry;
DRIVER_UNLOAD CxxmonUnload;

enum CXXMON_SEEN : ULONG {
   SeenNone = 0,
   SeenOutbound = 1,
   SeenInbound = 2,
   SeenBlocked = 4,
};
DEFINE_ENUM_FLAG_OPERATORS(CXXMON_SEEN)

/* Pool-backed allocation, as kernel C++ drivers define it (no C++ runtime library). */
void* __cdecl operator new(size_t size, POOL_FLAGS flags, ULONG tag) noexcept
{
   return ExAllocatePool2(flags, size, tag);
}
void __cdecl operator delete(void* p) noexcept
{
   if (p != nullptr) ExFreePoolWithTag(p, CXXMON_TAG);
}
void __cdecl operator delete(void* p, size_t) noexcept
{
   if (p != nullptr) ExFreePoolWithTag(p, CXXMON_TAG);
}

namespace cxxmon {

/* KeAcquireInStackQueuedSpinLock for the guard's lifetime. */
class QueuedLock {
public:
   explicit QueuedLock(KSPIN_LOCK& lock) { KeAcquireInStackQueuedSpinLock(&lock, &handle_); }
   ~QueuedLock() { KeReleaseInStackQueuedSpinLock(&handle_); }
   QueuedLock(const QueuedLock&) = delete;
   QueuedLock& operator=(const QueuedLock&) = delete;

private:
   KLOCK_QUEUE_HANDLE handle_;
};

struct PortStats {
   explicit PortStats(USHORT p) : port(p) { InitializeListHead(&link); }
   LIST_ENTRY link;
   USHORT port;
   ULONG packets = 0;
   ULONG64 bytes = 0;
   CXXMON_SEEN seen = SeenNone;
};

template <typename T>
constexpr T Larger(T a, T b) { return a < b ? b : a; }

class PortTable {
public:
   void Init()
   {
      InitializeListHead(&head_);
      KeInitializeSpinLock(&lock_);
   }

   /* Adds one packet of `bytes` to `port`'s entry (created on first use). */
   bool Record(USHORT port, ULONG bytes, CXXMON_SEEN how)
   {
      QueuedLock guard(lock_);
      PortStats* s = Find(port);
      if (s == nullptr) {
         s = new (POOL_FLAG_NON_PAGED, CXXMON_TAG) PortStats(port);
         if (s == nullptr) return false;
         InsertTailList(&head_, &s->link);
         ++count_;
      }
      s->packets += 1;
      s->bytes += bytes;
      s->seen |= how;
      largest_ = Larger(largest_, bytes);
      return true;
   }

   template <typename F>
   void ForEach(F f)
   {
      QueuedLock guard(lock_);
      for (LIST_ENTRY* e = head_.Flink; e != &head_; e = e->Flink) {
         f(*CONTAINING_RECORD(e, PortStats, link));
      }
   }

   void Clear()
   {
      QueuedLock guard(lock_);
      while (!IsListEmpty(&head_)) {
         delete CONTAINING_RECORD(RemoveHeadList(&head_), PortStats, link);
      }
      count_ = 0;
   }

   ULONG Count() const { return count_; }
   ULONG Largest() const { return largest_; }

private:
   PortStats* Find(USHORT port)
   {
      for (LIST_ENTRY* e = head_.Flink; e != &head_; e = e->Flink) {
         PortStats* s = CONTAINING_RECORD(e, PortStats, link);
         if (s->port == port) return s;
      }
      return nullptr;
   }

   LIST_ENTRY head_;
   KSPIN_LOCK lock_;
   ULONG count_ = 0;
   ULONG largest_ = 0;
};

/* A global object with a constructor: it runs when the image is loaded, before DriverEntry. */
class LoadMarker {
public:
   LoadMarker() : magic_(0xC0FFEE) {}
   ULONG Magic() const { return magic_; }

private:
   ULONG magic_;
};

} // namespace cxxmon

static cxxmon::PortTable gTable;
static cxxmon::LoadMarker gMarker;
static HANDLE gEngine;
static UINT32 gCalloutIds[2];

EXTERN_C ULONG CxxmonCountFromCxx(void)
{
   return gMarker.Magic();
}

static void NTAPI CxxmonClassify(
   const FWPS_INCOMING_VALUES* in,
   const FWPS_INCOMING_METADATA_VALUES* meta,
   void* layerData,
   const void* classifyContext,
   const FWPS_FILTER* filter,
   UINT64 flowContext,
   FWPS_CLASSIFY_OUT* out)
{
   UNREFERENCED_PARAMETER(meta);
   UNREFERENCED_PARAMETER(classifyContext);
   UNREFERENCED_PARAMETER(filter);
   UNREFERENCED_PARAMETER(flowContext);
   const bool outbound = in->layerId == FWPS_LAYER_OUTBOUND_TRANSPORT_V4;
   const UINT32 portField = outbound ? FWPS_FIELD_OUTBOUND_TRANSPORT_V4_IP_REMOTE_PORT
                                     : FWPS_FIELD_INBOUND_TRANSPORT_V4_IP_REMOTE_PORT;
   const UINT32 protoField = outbound ? FWPS_FIELD_OUTBOUND_TRANSPORT_V4_IP_PROTOCOL
                                      : FWPS_FIELD_INBOUND_TRANSPORT_V4_IP_PROTOCOL;
   const USHORT port = in->incomingValue[portField].value.uint16;
   const UCHAR protocol = in->incomingValue[protoField].value.uint8;
   auto* nbl = static_cast<NET_BUFFER_LIST*>(layerData);
   const ULONG bytes = nbl != nullptr ? NET_BUFFER_DATA_LENGTH(NET_BUFFER_LIST_FIRST_NB(nbl)) : 0;
   CXXMON_SEEN how = outbound ? SeenOutbound : SeenInbound;
   const bool block = outbound && protocol == IPPROTO_UDP && port == CXXMON_BLOCKED_PORT;
   if (block) how |= SeenBlocked;
   gTable.Record(port, bytes, how);
   out->actionType = block ? FWP_ACTION_BLOCK : FWP_ACTION_PERMIT;
   if (block) out->rights &= ~FWPS_RIGHT_ACTION_WRITE;
}

static NTSTATUS NTAPI CxxmonNotify(FWPS_CALLOUT_NOTIFY_TYPE type, const GUID* key, FWPS_FILTER* filter)
{
   UNREFERENCED_PARAMETER(type);
   UNREFERENCED_PARAMETER(key);
   UNREFERENCED_PARAMETER(filter);
   return STATUS_SUCCESS;
}

static void LanguageChecks()
{
   CHECK("global constructor ran before DriverEntry", gMarker.Magic() == 0xC0FFEE);
   const GUID copy = CXXMON_CALLOUT_OUTBOUND_V4;
   CHECK("DEFINE_GUID under INITGUID; IsEqualGUID with pointers and references; == and !=",
         IsEqualGUID(&copy, &CXXMON_CALLOUT_OUTBOUND_V4) && IsEqualGUID(copy, CXXMON_CALLOUT_OUTBOUND_V4) &&
         copy == CXXMON_CALLOUT_OUTBOUND_V4 && copy != CXXMON_CALLOUT_INBOUND_V4 &&
         copy != FWPM_LAYER_OUTBOUND_TRANSPORT_V4 && !IsEqualGUID(&copy, &GUID_NULL));
   CXXMON_SEEN flags = SeenOutbound;
   flags |= SeenBlocked;
   CHECK("DEFINE_ENUM_FLAG_OPERATORS",
         (flags & SeenBlocked) == SeenBlocked && (flags & SeenInbound) == SeenNone &&
         (flags ^ SeenOutbound) == SeenBlocked && ((~flags) & SeenInbound) == SeenInbound);
   UNICODE_STRING name = RTL_CONSTANT_STRING(L"cxxmon");
   DECLARE_CONST_UNICODE_STRING(param, L"Parameters");
   UNICODE_STRING init;
   RtlInitUnicodeString(&init, L"cxxmon");
   CHECK("RTL_CONSTANT_STRING, DECLARE_CONST_UNICODE_STRING, RtlInitUnicodeString with L\"\"",
         name.Length == 12 && name.MaximumLength == 14 && param.Length == 20 && init.Length == 12 &&
         RtlCompareMemory(name.Buffer, init.Buffer, init.Length) == init.Length && sizeof(WCHAR) == 2);
   auto* s = new (POOL_FLAG_NON_PAGED, CXXMON_TAG) cxxmon::PortStats(7);
   CHECK("pool operator new runs the constructor", s != nullptr && s->port == 7 && s->packets == 0 &&
         IsListEmpty(&s->link));
   delete s;
   ULONG fromCxx = 0;
   CHECK("a C unit called from C++ calls back into C++", CxxmonCUnitChecks(&fromCxx) == 1 && fromCxx == 0xC0FFEE);
   CHECK("__inline header function in both units", CxxmonBucketFromC(8123) == CxxmonPortBucket(8123) &&
         CxxmonPortBucket(8123) == 8000);
   CHECK("template and constexpr", cxxmon::Larger<ULONG>(3, 9) == 9 && cxxmon::Larger(-1, -2) == -1);
   DoTraceMessage(CXXMON_GENERAL, "cxxmon: %s checks done", "language");
}

static NTSTATUS AddCallout(PDEVICE_OBJECT device, const GUID& key, const GUID& layer, UINT32* id)
{
   FWPS_CALLOUT sCallout = {};
   sCallout.calloutKey = key;
   sCallout.classifyFn = CxxmonClassify;
   sCallout.notifyFn = CxxmonNotify;
   NTSTATUS status = FwpsCalloutRegister(device, &sCallout, id);
   if (!NT_SUCCESS(status)) return status;
   FWPM_CALLOUT mCallout = {};
   mCallout.calloutKey = key;
   mCallout.displayData.name = const_cast<wchar_t*>(L"cxxmon callout");
   mCallout.applicableLayer = layer;
   status = FwpmCalloutAdd(gEngine, &mCallout, nullptr, nullptr);
   if (!NT_SUCCESS(status)) return status;
   FWPM_FILTER filter = {};
   filter.layerKey = layer;
   filter.displayData.name = const_cast<wchar_t*>(L"cxxmon filter");
   filter.action.type = FWP_ACTION_CALLOUT_TERMINATING;
   filter.action.calloutKey = key;
   filter.subLayerKey = FWPM_SUBLAYER_UNIVERSAL;
   filter.weight.type = FWP_EMPTY;
   return FwpmFilterAdd(gEngine, &filter, nullptr, nullptr);
}

static NTSTATUS Register(PDEVICE_OBJECT device)
{
   FWPM_SESSION session = {};
   session.flags = FWPM_SESSION_FLAG_DYNAMIC;
   NTSTATUS status = FwpmEngineOpen(nullptr, RPC_C_AUTHN_WINNT, nullptr, &session, &gEngine);
   if (!NT_SUCCESS(status)) return status;
   status = FwpmTransactionBegin(gEngine, 0);
   if (!NT_SUCCESS(status)) return status;
   status = AddCallout(device, CXXMON_CALLOUT_OUTBOUND_V4, FWPM_LAYER_OUTBOUND_TRANSPORT_V4, &gCalloutIds[0]);
   if (NT_SUCCESS(status)) {
      status = AddCallout(device, CXXMON_CALLOUT_INBOUND_V4, FWPM_LAYER_INBOUND_TRANSPORT_V4, &gCalloutIds[1]);
   }
   if (NT_SUCCESS(status)) return FwpmTransactionCommit(gEngine);
   FwpmTransactionAbort(gEngine);
   return status;
}

_Use_decl_annotations_
void CxxmonUnload(PDRIVER_OBJECT DriverObject)
{
   FwpmEngineClose(gEngine);
   for (UINT32 id : gCalloutIds) {
      if (id != 0) FwpsCalloutUnregisterById(id);
   }
   gTable.ForEach([](const cxxmon::PortStats& s) {
      DbgPrint("port %u: %lu packets %I64u bytes%s%s%s\n", s.port, s.packets, s.bytes,
               (s.seen & SeenOutbound) != SeenNone ? " out" : "",
               (s.seen & SeenInbound) != SeenNone ? " in" : "",
               (s.seen & SeenBlocked) != SeenNone ? " blocked" : "");
   });
   DbgPrint("ports %lu largest %lu\n", gTable.Count(), gTable.Largest());
   gTable.Clear();
   IoDeleteDevice(DriverObject->DeviceObject);
}

_Use_decl_annotations_
NTSTATUS DriverEntry(PDRIVER_OBJECT DriverObject, PUNICODE_STRING RegistryPath)
{
   UNREFERENCED_PARAMETER(RegistryPath);
   WPP_INIT_TRACING(DriverObject, RegistryPath);
   gTable.Init();
   LanguageChecks();
   PDEVICE_OBJECT device = nullptr;
   NTSTATUS status = IoCreateDevice(DriverObject, 0, nullptr, FILE_DEVICE_NETWORK, 0, FALSE, &device);
   if (!NT_SUCCESS(status)) return status;
   DriverObject->DriverUnload = CxxmonUnload;
   status = Register(device);
   CHECK("FwpsCalloutRegister/FwpmCalloutAdd/FwpmFilterAdd from C++", NT_SUCCESS(status));
   DbgPrint("done\n");
   return status;
}
