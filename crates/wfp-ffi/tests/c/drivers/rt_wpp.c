/* WPP software tracing as WDK sources write it: control GUID and flags, a config block declaring
 * TraceEvents, the generated rt_wpp.tmh, extended %!NAME! conversions (tests/runtime.rs). */
#include <ntddk.h>

#define WPP_CONTROL_GUIDS \
    WPP_DEFINE_CONTROL_GUID(RtWppGuid, (0f3a1f32, 9b3e, 4d2a, 8d1c, 2e4f6a8b0c1d), \
        WPP_DEFINE_BIT(TRACE_INIT) \
        WPP_DEFINE_BIT(TRACE_CLASSIFY))
#define WPP_LEVEL_FLAGS_LOGGER(lvl, flags) WPP_LEVEL_LOGGER(flags)
#define WPP_LEVEL_FLAGS_ENABLED(lvl, flags) (WPP_LEVEL_ENABLED(flags) && WPP_CONTROL(WPP_BIT_##flags).Level >= lvl)

// begin_wpp config
// FUNC TraceEvents(LEVEL, FLAGS, MSG, ...);
// FUNC TraceInit{LEVEL=TRACE_LEVEL_VERBOSE, FLAGS=TRACE_INIT}(MSG, ...);
// end_wpp

#include "rt_wpp.tmh"

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
    WPP_CLEANUP(DriverObject);
    return STATUS_SUCCESS;
}
