/* Second translation unit of the wdkc test driver: uses the header's __inline function (and
 * takes its address, so this object carries an out-of-line copy too). */
#include "wdkc.h"

WDKC_FAMILY_FN WdkcFamilyFromOtherUnit(void)
{
   return WdkcLayerFamily;
}

_Use_decl_annotations_
BOOLEAN WdkcOtherUnitChecks(ULONG* Count)
{
   *Count = WdkcLayerFamily(FWPS_LAYER_ALE_AUTH_CONNECT_V6) + (ULONG)WdkcTwice(1) + (ULONG)WdkcThrice(1) + (WdkcMagic == 0x5eed);
   return *Count == 6 + 2 + 3 + 1;
}

_Use_decl_annotations_
void NTAPI WdkcClassify(
   const FWPS_INCOMING_VALUES* inFixedValues,
   const FWPS_INCOMING_METADATA_VALUES* inMetaValues,
   void* layerData,
   const void* classifyContext,
   const FWPS_FILTER* filter,
   UINT64 flowContext,
   FWPS_CLASSIFY_OUT* classifyOut)
{
   UNREFERENCED_PARAMETER(inMetaValues);
   UNREFERENCED_PARAMETER(layerData);
   UNREFERENCED_PARAMETER(classifyContext);
   UNREFERENCED_PARAMETER(flowContext);
   if (classifyOut->rights & FWPS_RIGHT_ACTION_WRITE)
   {
      classifyOut->actionType = WdkcLayerFamily(inFixedValues->layerId) == 4 && filter->context == 7
         ? FWP_ACTION_BLOCK : FWP_ACTION_PERMIT;
   }
}
