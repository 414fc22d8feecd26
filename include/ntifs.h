/* wfp-ddk ntifs.h: includes ntddk.h (RtlUnicodeToMultiByteN is in wfp/km.h). */
#ifndef WFP_DDK_NTIFS_H
#define WFP_DDK_NTIFS_H
#include "ntddk.h"
#endif
