/* cxxmon test driver, C translation unit: calls into the C++ unit and is called from it. */
#include "cxxmon.h"

USHORT CxxmonBucketFromC(USHORT port)
{
   /* The header's __inline function, emitted by this unit too. */
   return CxxmonPortBucket(port);
}

ULONG CxxmonCUnitChecks(ULONG* fromCxx)
{
   void* p = ExAllocatePool2(POOL_FLAG_NON_PAGED, 32, CXXMON_TAG);
   ULONG ok = 0;
   /* C: void * converts implicitly; the C++ unit needs a cast for the same call. */
   UCHAR* bytes = p;
   if (bytes != NULL) {
      bytes[31] = 1;
      ok = bytes[0] == 0 && bytes[31] == 1;
      ExFreePoolWithTag(p, CXXMON_TAG);
   }
   *fromCxx = CxxmonCountFromCxx();
   return ok;
}
