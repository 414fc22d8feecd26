/* wfpsgaps test driver (ours): header types WFPSampler needs — the SID family, FWP_TOKEN_INFORMATION,
 * classify and DoS-protection options, netiodef.h headers parsed from real packet bytes, vSwitch ids
 * and metadata fields, DEFAULT_COMPARTMENT_ID, the SAL set. Prints "ok NAME" / "FAIL NAME". */
#include "wfpsgaps.h"

/* A well-known SID as WFPSampler's inc/Identifiers.h spells one: NT AUTHORITY\LOCAL SERVICE. */
static const SID localServiceSid = {SID_REVISION, 1, SECURITY_NT_AUTHORITY, {SECURITY_LOCAL_SERVICE_RID}};

static_assert(sizeof(SID) == 12, "SID with one sub-authority");
static_assert(sizeof(SID_IDENTIFIER_AUTHORITY) == 6, "SID_IDENTIFIER_AUTHORITY");
static_assert(sizeof(SID_AND_ATTRIBUTES) == 16, "SID_AND_ATTRIBUTES (x64)");
static_assert(sizeof(FWP_TOKEN_INFORMATION) == 32, "FWP_TOKEN_INFORMATION (x64)");
static_assert(sizeof(IPV4_HEADER) == 20, "IPV4_HEADER");
static_assert(sizeof(IPV6_HEADER) == 40, "IPV6_HEADER");
static_assert(sizeof(ICMP_HEADER) == 4, "ICMP_HEADER");
static_assert(sizeof(IPV6_FRAGMENT_HEADER) == 8, "IPV6_FRAGMENT_HEADER");
static_assert(FIELD_OFFSET(IPV4_HEADER, SourceAddress) == 12, "IPV4_HEADER.SourceAddress");
static_assert(FIELD_OFFSET(IPV6_HEADER, DestinationAddress) == 24, "IPV6_HEADER.DestinationAddress");
static_assert(sizeof(FWPM_CLASSIFY_OPTION0) == 24, "FWPM_CLASSIFY_OPTION0");
static_assert(FIELD_OFFSET(IPSEC_DOSP_OPTIONS0, publicIFLuids) == 64, "IPSEC_DOSP_OPTIONS0.publicIFLuids");
static_assert(sizeof(IPSEC_DOSP_OPTIONS0) == 88, "IPSEC_DOSP_OPTIONS0");
/* The NDIS 6.30 names of FWPS_INCOMING_METADATA_VALUES0's vSwitch fields alias the padding. */
static_assert(FIELD_OFFSET(FWPS_INCOMING_METADATA_VALUES0, vSwitchSourcePortId) ==
              FIELD_OFFSET(FWPS_INCOMING_METADATA_VALUES0, padding0), "vSwitchSourcePortId");
static_assert(FIELD_OFFSET(FWPS_INCOMING_METADATA_VALUES0, vSwitchSourceNicIndex) ==
              FIELD_OFFSET(FWPS_INCOMING_METADATA_VALUES0, padding1), "vSwitchSourceNicIndex");
static_assert(FIELD_OFFSET(FWPS_INCOMING_METADATA_VALUES0, vSwitchDestinationPortId) ==
              FIELD_OFFSET(FWPS_INCOMING_METADATA_VALUES0, padding2), "vSwitchDestinationPortId");

/* An IPv4/UDP header as captured: 192.0.2.1 -> 198.51.100.7, DF set, TTL 64, DSCP 46 (EF), ECN 1. */
static const BYTE ipv4Packet[20] = {0x45, 0xB9, 0x00, 0x24, 0x1C, 0x46, 0x40, 0x00, 0x40, 0x11,
                                    0x00, 0x00, 0xC0, 0x00, 0x02, 0x01, 0xC6, 0x33, 0x64, 0x07};
/* An IPv6 header: version 6, payload 8, next header 58 (ICMPv6), hop limit 255. */
static const BYTE ipv6Packet[40] = {0x60, 0x00, 0x00, 0x00, 0x00, 0x08, 0x3A, 0xFF,
                                    0xFE, 0x80, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x01,
                                    0xFF, 0x02, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x02};

/* RFC 1071 checksum over `size` bytes (even). */
static UINT16 Checksum(const BYTE* p, UINT32 size)
{
   UINT32 sum = 0;
   for (UINT32 i = 0; i + 1 < size; i += 2) sum += (UINT32)((p[i] << 8) | p[i + 1]);
   while (sum >> 16) sum = (sum & 0xFFFF) + (sum >> 16);
   return (UINT16)~sum;
}

static NTSTATUS ParseIpv4(const BYTE* packet, UINT32* headerSize, UINT8* protocol)
{
   const IPV4_HEADER* h = (const IPV4_HEADER*)packet;
   if (h->Version != 4 || h->HeaderLength < 5) return STATUS_INVALID_PARAMETER;
   *headerSize = h->HeaderLength * 4u;
   *protocol = h->Protocol;
   return STATUS_SUCCESS;
}

NTSTATUS WfpsGapsFindByte(const BYTE* pData, UINT32 size, BYTE value, const BYTE** ppFound, UINT32* pOffset)
{
   for (UINT32 i = 0; i < size; i++) {
      if (pData[i] == value) {
         if (ppFound) *ppFound = pData + i;
         if (pOffset) *pOffset = i;
         return STATUS_SUCCESS;
      }
   }
   if (ppFound) *ppFound = NULL;
   return STATUS_NOT_FOUND;
}

static void SidChecks(void)
{
   static const SID_IDENTIFIER_AUTHORITY nt = SECURITY_NT_AUTHORITY;
   CHECK("sid_initialiser", localServiceSid.Revision == 1 && localServiceSid.SubAuthorityCount == 1 &&
                            localServiceSid.IdentifierAuthority.Value[5] == 5 &&
                            localServiceSid.SubAuthority[0] == 19);
   CHECK("sid_authority", RtlEqualMemory(&nt, &localServiceSid.IdentifierAuthority, sizeof(nt)));
   CHECK("sid_length", WFPSGAPS_SID_LENGTH(&localServiceSid) == 12);
   CHECK("sid_rids", SECURITY_LOCAL_SYSTEM_RID == 18 && SECURITY_NETWORK_SERVICE_RID == 20 &&
                     SECURITY_BUILTIN_DOMAIN_RID == 32 && DOMAIN_ALIAS_RID_ADMINS == 0x220);

   SID_AND_ATTRIBUTES groups[2] = {{(PSID)&localServiceSid, SE_GROUP_ENABLED | SE_GROUP_MANDATORY},
                                   {(PSID)&localServiceSid, SE_GROUP_USE_FOR_DENY_ONLY}};
   FWP_TOKEN_INFORMATION token = {2, groups, 0, NULL};
   FWP_VALUE0 v;
   v.type = FWP_TOKEN_INFORMATION_TYPE;
   v.tokenInformation = &token;
   CHECK("token_information", v.tokenInformation->sidCount == 2 &&
                              v.tokenInformation->sids[0].Sid->SubAuthority[0] == SECURITY_LOCAL_SERVICE_RID &&
                              v.tokenInformation->sids[1].Attributes == 0x10);
}

static void OptionChecks(void)
{
   FWPM_CLASSIFY_OPTION option[2] = {};
   option[0].type = FWP_CLASSIFY_OPTION_LOOSE_SOURCE_MAPPING;
   option[0].value.type = FWP_UINT32;
   option[0].value.uint32 = FWP_OPTION_VALUE_ENABLE_LOOSE_SOURCE;
   option[1].type = FWP_CLASSIFY_OPTION_LOCAL_ONLY_MAPPING;
   option[1].value.type = FWP_UINT32;
   option[1].value.uint32 = FWP_OPTION_VALUE_ENABLE_LOCAL_ONLY_MAPPING;
   FWPM_CLASSIFY_OPTIONS options = {2, option};
   FWPM_PROVIDER_CONTEXT2 context = {};
   context.type = FWPM_CLASSIFY_OPTIONS_CONTEXT;
   context.classifyOptions = &options;
   CHECK("classify_options", context.classifyOptions->options[1].type == 7 &&
                             context.classifyOptions->options[0].value.uint32 == 1 &&
                             FWP_CLASSIFY_OPTION_MAX == 8);

   UINT64 luids[1] = {0x0006000000000000ULL};
   IPSEC_DOSP_OPTIONS dosp = {};
   dosp.stateIdleTimeoutSeconds = 300;
   dosp.numPublicIFLuids = 1;
   dosp.publicIFLuids = luids;
   context.type = FWPM_IPSEC_DOSP_CONTEXT;
   context.idpOptions = &dosp;
   CHECK("dosp_options", context.idpOptions->publicIFLuids[0] == luids[0] &&
                         context.idpOptions->stateIdleTimeoutSeconds == 300);
}

static void PacketChecks(void)
{
   const IPV4_HEADER* v4 = (const IPV4_HEADER*)ipv4Packet;
   UINT32 size = 0;
   UINT8 protocol = 0;
   CHECK("ipv4_parse", ParseIpv4(ipv4Packet, &size, &protocol) == STATUS_SUCCESS && size == 20 &&
                       protocol == IPPROTO_UDP);
   CHECK("ipv4_fields", v4->TimeToLive == 64 && RtlUshortByteSwap(v4->TotalLength) == 36 &&
                        v4->DontFragment == 1 && v4->MoreFragments == 0 &&
                        v4->TypeOfService == 46 && v4->EcnField == 1);
   CHECK("ipv4_addresses", v4->SourceAddress.S_un.S_un_b.s_b1 == 192 &&
                           v4->DestinationAddress.S_un.S_un_b.s_b4 == 7);
   BYTE copy[20];
   RtlCopyMemory(copy, ipv4Packet, sizeof(copy));
   IPV4_HEADER* w = (IPV4_HEADER*)copy;
   w->HeaderChecksum = 0;
   w->HeaderChecksum = RtlUshortByteSwap(Checksum(copy, sizeof(copy)));
   CHECK("ipv4_checksum", Checksum(copy, sizeof(copy)) == 0 && w->HeaderChecksum != 0);

   const IPV6_HEADER* v6 = (const IPV6_HEADER*)ipv6Packet;
   CHECK("ipv6_fields", v6->Version == 6 && v6->NextHeader == IPPROTO_ICMPV6 && v6->HopLimit == 255 &&
                        RtlUshortByteSwap(v6->PayloadLength) == 8 &&
                        v6->SourceAddress.u.Byte[0] == 0xFE && v6->DestinationAddress.u.Byte[15] == 2);

   const BYTE* found = NULL;
   UINT32 offset = 0;
   CHECK("sal_annotated_call", WfpsGapsFindByte(ipv4Packet, sizeof(ipv4Packet), 0x11, &found, &offset) ==
                               STATUS_SUCCESS && offset == 9 && found == ipv4Packet + 9);
}

/* A classify-style switch over the vSwitch layer ids, as WFPSampler's injection data helper has. */
static UINT32 EtherTypeField(UINT16 layerId)
{
   switch (layerId) {
   case FWPS_LAYER_INBOUND_MAC_FRAME_ETHERNET: return FWPS_FIELD_INBOUND_MAC_FRAME_ETHERNET_ETHER_TYPE;
   case FWPS_LAYER_INGRESS_VSWITCH_ETHERNET: return FWPS_FIELD_INGRESS_VSWITCH_ETHERNET_ETHER_TYPE;
   case FWPS_LAYER_EGRESS_VSWITCH_ETHERNET: return FWPS_FIELD_EGRESS_VSWITCH_ETHERNET_ETHER_TYPE;
   default: return 0xFFFF;
   }
}

static void L2Checks(void)
{
   CHECK("vswitch_layer_ids", FWPS_LAYER_INGRESS_VSWITCH_ETHERNET == 72 && FWPS_LAYER_EGRESS_VSWITCH_ETHERNET == 73 &&
                              FWPS_LAYER_INGRESS_VSWITCH_ETHERNET >= FWPS_BUILTIN_LAYER_MAX);
   CHECK("vswitch_field_ids", EtherTypeField(FWPS_LAYER_INGRESS_VSWITCH_ETHERNET) == 4 &&
                              EtherTypeField(FWPS_LAYER_EGRESS_VSWITCH_ETHERNET) == 4 &&
                              EtherTypeField(FWPS_LAYER_INBOUND_MAC_FRAME_ETHERNET) == 5 &&
                              FWPS_FIELD_EGRESS_VSWITCH_ETHERNET_MAX == 17);
   FWPS_INCOMING_METADATA_VALUES0 meta = {};
   NDIS_SWITCH_PORT_ID port = 0x01020304;
   NDIS_SWITCH_NIC_INDEX nic = 3;
   meta.currentL2MetadataValues = FWPS_L2_METADATA_FIELD_VSWITCH_SOURCE_PORT_ID |
                                  FWPS_L2_METADATA_FIELD_VSWITCH_SOURCE_NIC_INDEX;
   meta.vSwitchSourcePortId = port;
   meta.vSwitchSourceNicIndex = nic;
   CHECK("vswitch_metadata", FWPS_IS_L2_METADATA_FIELD_PRESENT(&meta, FWPS_L2_METADATA_FIELD_VSWITCH_SOURCE_NIC_INDEX) &&
                             meta.padding0 == 0x01020304 && meta.padding1 == 3 && sizeof(nic) == 2);
   COMPARTMENT_ID compartment = DEFAULT_COMPARTMENT_ID;
   CHECK("default_compartment", compartment == 1 && UNSPECIFIED_COMPARTMENT_ID == 0);
}

void WfpsGapsHeaderChecks(void)
{
   SidChecks();
   OptionChecks();
   PacketChecks();
   L2Checks();
}
