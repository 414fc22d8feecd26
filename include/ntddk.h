/* wfp-ddk ntddk.h: includes wdm.h (the kernel runtime). */
#ifndef WFP_DDK_NTDDK_H
#define WFP_DDK_NTDDK_H
#include "wdm.h"
#endif
