/* wfp-ddk netiodef.h: the WDK's network header types (IPV4_HEADER, IPV6_HEADER, ICMP_HEADER /
 * ICMPV6_HEADER, IPV6_FRAGMENT_HEADER; RFC 791 / 8200 / 792 / 4443 wire layouts, fields in network
 * byte order as the WDK leaves them) and the routing compartment ids (wdk-runtime.md §1:
 * UNSPECIFIED_COMPARTMENT_ID 0, DEFAULT_COMPARTMENT_ID 1). fwpsk.h includes it, as WFPSampler's
 * syslib expects (it uses IPV4_HEADER without including netiodef.h). */
#ifndef WFP_DDK_NETIODEF_H
#define WFP_DDK_NETIODEF_H
#include "ws2ipdef.h"
WFP_BEGIN_DECLS

enum { UNSPECIFIED_COMPARTMENT_ID = 0, DEFAULT_COMPARTMENT_ID = 1 };

typedef struct _IPV4_HEADER {
    union {
        UINT8 VersionAndHeaderLength;
        struct { UINT8 HeaderLength : 4; UINT8 Version : 4; };
    };
    union {
        UINT8 TypeOfServiceAndEcnField;
        struct { UINT8 EcnField : 2; UINT8 TypeOfService : 6; };
    };
    UINT16 TotalLength;
    UINT16 Identification;
    union {
        UINT16 FlagsAndOffset;
        struct {
            UINT16 DontUse1 : 5;
            UINT16 MoreFragments : 1;
            UINT16 DontFragment : 1;
            UINT16 Reserved : 1;
            UINT16 DontUse2 : 8;
        };
    };
    UINT8 TimeToLive;
    UINT8 Protocol;
    UINT16 HeaderChecksum;
    IN_ADDR SourceAddress;
    IN_ADDR DestinationAddress;
} IPV4_HEADER, *PIPV4_HEADER;

typedef struct _IPV6_HEADER {
    union {
        UINT32 VersionClassFlow;
        struct { UINT32 : 4; UINT32 Version : 4; UINT32 : 24; };
    };
    UINT16 PayloadLength;
    UINT8 NextHeader;
    UINT8 HopLimit;
    IN6_ADDR SourceAddress;
    IN6_ADDR DestinationAddress;
} IPV6_HEADER, *PIPV6_HEADER;

typedef struct _IPV6_FRAGMENT_HEADER {
    UINT8 NextHeader;
    UINT8 Reserved;
    union {
        struct { UINT8 OffsetHigh; UINT8 OffsetLow; };
        UINT16 OffsetAndFlags;
    };
    UINT32 Id;
} IPV6_FRAGMENT_HEADER, *PIPV6_FRAGMENT_HEADER;

typedef struct _ICMP_HEADER {
    UINT8 Type;
    UINT8 Code;
    UINT16 Checksum;
} ICMP_HEADER, *PICMP_HEADER;
typedef ICMP_HEADER ICMPV4_HEADER, *PICMPV4_HEADER;
typedef ICMP_HEADER ICMPV6_HEADER, *PICMPV6_HEADER;

WFP_END_DECLS
#endif
