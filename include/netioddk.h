/* wfp-ddk netioddk.h: WDK sources include it next to fwpsk.h (WFPSampler does). Its content, the
 * Network Module Registrar (NmrRegisterProvider, NmrRegisterClient, ...), is not provided and not
 * declared: a driver that calls it fails to build, naming the function. */
#ifndef WFP_DDK_NETIODDK_H
#define WFP_DDK_NETIODDK_H
#include "ntddk.h"
#endif
