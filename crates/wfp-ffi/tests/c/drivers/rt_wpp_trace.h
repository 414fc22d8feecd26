/* rt_wpp.c's trace header, as WDK samples keep it (trace.h): the control GUID, its flags and the
 * config block; `wfpctl driver build` scans it with the source that includes it. */
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
