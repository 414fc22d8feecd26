/* WPP software tracing as WDK sources write it: control GUID and flags, a config block declaring
 * TraceEvents (in rt_wpp_trace.h), the generated rt_wpp.tmh, extended %!NAME! conversions, and
 * level/flag filtering by the driver's WPP_LEVEL / WPP_FLAGS parameters (tests/runtime.rs). */
#include <ntddk.h>

#include "rt_wpp_trace.h"
#include "rt_wpp.tmh"

static int evaluated;
static int Count(void) { return ++evaluated; }

static const GUID Guid = { 0x01020304, 0x0506, 0x0708, { 0x09, 0x0a, 0x0b, 0x0c, 0x0d, 0x0e, 0x0f, 0x10 } };

NTSTATUS DriverEntry(PDRIVER_OBJECT DriverObject, PUNICODE_STRING RegistryPath)
{
    WPP_INIT_TRACING(DriverObject, RegistryPath);
    ULONG addr = 0x0100007f; /* 127.0.0.1 in network order */
    USHORT port = 0x5000;    /* 80 in network order */
    DoTraceMessage(TRACE_INIT, "plain %d %ws", 5, L"wide");
    DoTraceLevelMessage(TRACE_LEVEL_ERROR, TRACE_INIT, "status %!STATUS! in %!FUNC!", STATUS_TIMEOUT);
    TraceEvents(TRACE_LEVEL_INFORMATION, TRACE_CLASSIFY, "guid %!GUID! ip %!IPADDR! port %!PORT! %!bool! n=%u",
                &Guid, addr, port, TRUE, 9u);
    TraceInit("fixed level ok %!STATUS!", STATUS_SUCCESS);
    /* A message that does not fire formats nothing and evaluates no argument. */
    DoTraceLevelMessage(TRACE_LEVEL_VERBOSE, TRACE_CLASSIFY, "verbose classify %d", Count());
    DoTraceLevelMessage(TRACE_LEVEL_WARNING, TRACE_CLASSIFY, "warning classify %d", Count());
    TraceEvents(TRACE_LEVEL_ERROR, TRACE_CLASSIFY, "error classify %d", Count());
    DoTraceMessage(TRACE_CLASSIFY, "classify flag %d", Count());
    DbgPrint("evaluated %d\n", evaluated);
    WPP_CLEANUP(DriverObject);
    return STATUS_SUCCESS;
}
