/* wfpsgaps test driver (ours): helpers defined `inline` in this unit only and called from another
 * one (MSVC emits them: /Zc:inline is off by default), with MSVC's integer-literal suffixes
 * (i64, ui64, i32, i16, i8) as WDK-era sources write them. */
#include "wfpsgaps.h"

inline UINT32 WfpsGapsRoundUp(UINT32 value, UINT32 multiple)
{
   return ((value + multiple - 1) / multiple) * multiple;
}

/* A relative KeDelayExecutionThread interval: negative 100-ns units. */
inline LONGLONG WfpsGapsRelativeTimeout(UINT32 milliseconds)
{
   return milliseconds * -10000i64;
}

inline ULONGLONG WfpsGapsMask(UINT32 bits)
{
   return bits >= 64 ? 0xFFFFFFFFFFFFFFFFui64 : ((1ui64 << bits) - 1);
}

LONGLONG WfpsGapsSuffixSum(void)
{
   /* "5i64" in a string and 'i' in a character literal stay as they are. */
   static const char text[] = "5i64";
   return 1i8 + 2i16 + 3i32 + 4I64 + (LONGLONG)sizeof(text) + ('i' == text[1] ? 100 : 0);
}
