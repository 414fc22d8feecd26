/* wfp-ddk wdmsec.h: the SDDL strings drivers pass to WdfControlDeviceInitAllocate /
 * IoCreateDeviceSecure. This host does not enforce device ACLs (docs/c-abi.md). */
#ifndef WFP_DDK_WDMSEC_H
#define WFP_DDK_WDMSEC_H
#include "wdm.h"
static const UNICODE_STRING SDDL_DEVOBJ_KERNEL_ONLY __attribute__((unused)) = RTL_CONSTANT_STRING(L"D:P");
static const UNICODE_STRING SDDL_DEVOBJ_SYS_ALL __attribute__((unused)) = RTL_CONSTANT_STRING(L"D:P(A;;GA;;;SY)");
static const UNICODE_STRING SDDL_DEVOBJ_SYS_ALL_ADM_ALL __attribute__((unused)) = RTL_CONSTANT_STRING(L"D:P(A;;GA;;;SY)(A;;GA;;;BA)");
static const UNICODE_STRING SDDL_DEVOBJ_SYS_ALL_ADM_RWX_WORLD_RW_RES_R __attribute__((unused)) =
    RTL_CONSTANT_STRING(L"D:P(A;;GA;;;SY)(A;;GRGWGX;;;BA)(A;;GRGW;;;WD)(A;;GR;;;RC)");
#endif
