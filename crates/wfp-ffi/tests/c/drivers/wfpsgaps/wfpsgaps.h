/* wfpsgaps test driver (ours): the constructs WFPSampler's syslib and sys/ use that wfp-ddk lacked
 * (docs/c-abi.md "WFPSampler"), written fresh — not the sample's code. WDK headers inside
 * extern "C" as WFPSampler's HelperFunctions_Macros.h has them. */
#ifndef WFPSGAPS_H
#define WFPSGAPS_H
extern "C" {
#include <ntifs.h>
#include <ntddk.h>
#include <wdf.h>
#include <ndis.h>
#include <fwpmk.h>
#include <fwpsk.h>
#include <netioddk.h>
#include <ntintsafe.h>
#include <ntstrsafe.h>
}

#define CHECK(name, cond) \
    do { if (cond) DbgPrint("ok %s\n", name); else DbgPrint("FAIL %s (line %d)\n", name, __LINE__); } while (0)

/* A SID's length from its sub-authority count (as sample code computes it). */
#define WFPSGAPS_SID_LENGTH(s) (sizeof(SID) - sizeof(ULONG) + ((s)->SubAuthorityCount * sizeof(ULONG)))

/* Checks of wfpsgaps_headers.cpp. */
void WfpsGapsHeaderChecks(void);

/* SAL annotations from the WDK's full set on a declaration. */
_Must_inspect_result_
_Success_(return == STATUS_SUCCESS)
NTSTATUS WfpsGapsFindByte(_In_reads_bytes_(size) const BYTE* pData,
                          _In_ UINT32 size,
                          _In_ BYTE value,
                          _Outptr_opt_result_buffer_maybenull_(1) const BYTE** ppFound,
                          _Out_opt_ _Deref_out_range_(0, size) UINT32* pOffset);

/* A type-of-service byte as MSVC-era headers describe it: the nested anonymous struct repeats the
 * union's `precedence` name (MSVC accepts it; the build's rewrite takes the name off the bit-field). */
typedef struct _WFPSGAPS_TOS {
   union {
      UINT8 precedence;
      UINT8 tosByte;
      struct {
         UINT8 ecn : 2;
         UINT8 precedence : 6;
      };
   };
   UINT8 next;
} WFPSGAPS_TOS;

/* Helpers defined `inline` in wfpsgaps_util.cpp and called from wfpsgaps_main.cpp, declared both
 * ways WFPSampler's syslib headers do: plainly, and with `inline` on the prototype. */
UINT32 WfpsGapsRoundUp(UINT32 value, UINT32 multiple);
inline LONGLONG WfpsGapsRelativeTimeout(UINT32 milliseconds);
inline ULONGLONG WfpsGapsMask(UINT32 bits);
/* A function-local constant written with MSVC literal suffixes, read from the main unit. */
LONGLONG WfpsGapsSuffixSum(void);

#endif
