/* wfp-ddk wdm.h: the kernel runtime (see wfp/km.h and docs/c-abi.md). */
#ifndef WFP_DDK_WDM_H
#define WFP_DDK_WDM_H
#include "wfp/km.h"
#endif
