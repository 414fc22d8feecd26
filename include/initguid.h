/* wfp-ddk initguid.h: DEFINE_GUID defines (weak, so several translation units may do it). */
#ifndef INITGUID
#define INITGUID
#endif
#include "guiddef.h"
