/* wfp-ddk ip2string.h: IPv4/IPv6 text conversions (wdk-runtime.md §5), implemented by the wfp-ffi
 * runtime. Addresses and ports are in network byte order. UNICODE selects the W forms for the
 * unsuffixed names, as in the WDK. */
#ifndef WFP_DDK_IP2STRING_H
#define WFP_DDK_IP2STRING_H
#include "ws2ipdef.h"
#include "in6addr.h"
WFP_BEGIN_DECLS
#define INET_ADDRSTRLEN 22
#define INET6_ADDRSTRLEN 65
NTSTATUS RtlIpv4StringToAddressA(PCSTR S, BOOLEAN Strict, PCSTR *Terminator, struct in_addr *Addr);
NTSTATUS RtlIpv4StringToAddressW(PCWSTR S, BOOLEAN Strict, LPCWSTR *Terminator, struct in_addr *Addr);
NTSTATUS RtlIpv6StringToAddressA(PCSTR S, PCSTR *Terminator, struct in6_addr *Addr);
NTSTATUS RtlIpv6StringToAddressW(PCWSTR S, PCWSTR *Terminator, struct in6_addr *Addr);
NTSTATUS RtlIpv4StringToAddressExA(PCSTR AddressString, BOOLEAN Strict, struct in_addr *Address, PUSHORT Port);
NTSTATUS RtlIpv4StringToAddressExW(PCWSTR AddressString, BOOLEAN Strict, struct in_addr *Address, PUSHORT Port);
NTSTATUS RtlIpv6StringToAddressExA(PCSTR AddressString, struct in6_addr *Address, PULONG ScopeId, PUSHORT Port);
NTSTATUS RtlIpv6StringToAddressExW(PCWSTR AddressString, struct in6_addr *Address, PULONG ScopeId, PUSHORT Port);
/* S must hold 16 (IPv4) / 46 (IPv6) characters; returns a pointer to the written NUL. */
PSTR RtlIpv4AddressToStringA(const struct in_addr *Addr, PSTR S);
PWSTR RtlIpv4AddressToStringW(const struct in_addr *Addr, PWSTR S);
PSTR RtlIpv6AddressToStringA(const struct in6_addr *Addr, PSTR S);
PWSTR RtlIpv6AddressToStringW(const struct in6_addr *Addr, PWSTR S);
/* *AddressStringLength: buffer size in characters in, characters written (incl. NUL) out; a short
 * buffer gives STATUS_INVALID_PARAMETER and the needed length. */
NTSTATUS RtlIpv4AddressToStringExA(const struct in_addr *Address, USHORT Port, PSTR AddressString, PULONG AddressStringLength);
NTSTATUS RtlIpv4AddressToStringExW(const struct in_addr *Address, USHORT Port, PWSTR AddressString, PULONG AddressStringLength);
NTSTATUS RtlIpv6AddressToStringExA(const struct in6_addr *Address, ULONG ScopeId, USHORT Port, PSTR AddressString, PULONG AddressStringLength);
NTSTATUS RtlIpv6AddressToStringExW(const struct in6_addr *Address, ULONG ScopeId, USHORT Port, PWSTR AddressString, PULONG AddressStringLength);
#ifdef UNICODE
#define RtlIpv4StringToAddress RtlIpv4StringToAddressW
#define RtlIpv6StringToAddress RtlIpv6StringToAddressW
#define RtlIpv4StringToAddressEx RtlIpv4StringToAddressExW
#define RtlIpv6StringToAddressEx RtlIpv6StringToAddressExW
#define RtlIpv4AddressToString RtlIpv4AddressToStringW
#define RtlIpv6AddressToString RtlIpv6AddressToStringW
#define RtlIpv4AddressToStringEx RtlIpv4AddressToStringExW
#define RtlIpv6AddressToStringEx RtlIpv6AddressToStringExW
#else
#define RtlIpv4StringToAddress RtlIpv4StringToAddressA
#define RtlIpv6StringToAddress RtlIpv6StringToAddressA
#define RtlIpv4StringToAddressEx RtlIpv4StringToAddressExA
#define RtlIpv6StringToAddressEx RtlIpv6StringToAddressExA
#define RtlIpv4AddressToString RtlIpv4AddressToStringA
#define RtlIpv6AddressToString RtlIpv6AddressToStringA
#define RtlIpv4AddressToStringEx RtlIpv4AddressToStringExA
#define RtlIpv6AddressToStringEx RtlIpv6AddressToStringExA
#endif
WFP_END_DECLS
#endif
