/* cxxmon test driver (ours): a C++ callout driver with one C translation unit. This header is
 * included by both: C linkage for what crosses between them, a non-static __inline function
 * defined here (a COMDAT in both languages), and the per-port counters' layout. */
#pragma once
#include <ntddk.h>
#include <wdf.h>
#pragma warning(push)
#pragma warning(disable:4201)
#include <fwpsk.h>
#pragma warning(pop)
#include <fwpmk.h>

#define CXXMON_TAG 'xxCW'
#define CXXMON_BLOCKED_PORT 9000

#define CHECK(name, cond) \
    do { if (cond) DbgPrint("ok %s\n", name); else DbgPrint("FAIL %s (line %d)\n", name, __LINE__); } while (0)

/* Defined in a header that a C and a C++ unit both include and both call. */
__inline
USHORT
CxxmonPortBucket(
   _In_ USHORT port
   )
{
   return (USHORT)(port - port % 1000);
}

EXTERN_C_START
/* The C unit (cxxmon_c.c). */
ULONG CxxmonCUnitChecks(_Out_ ULONG* fromCxx);
USHORT CxxmonBucketFromC(_In_ USHORT port);
/* The C++ unit, called back from C. */
ULONG CxxmonCountFromCxx(void);
EXTERN_C_END
