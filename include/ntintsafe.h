/* wfp-ddk ntintsafe.h: the kernel (Rtl*, NTSTATUS) names of intsafe.h. */
#ifndef WFP_DDK_NTINTSAFE_H
#define WFP_DDK_NTINTSAFE_H
#include "intsafe.h"
#endif
