/* wfp-ddk TraceLoggingProvider.h: the SDK spelling of traceloggingprovider.h. */
#include "traceloggingprovider.h"
