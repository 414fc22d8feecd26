#!/usr/bin/env python3
"""Generate crates/wfp-core/src/catalogue/tables.rs from the WFP reference digest.

Usage: python3 tools/gen_catalogue.py ../shared/spec/wfp-reference.md > crates/wfp-core/src/catalogue/tables.rs
       rustfmt crates/wfp-core/src/catalogue/tables.rs   (tools/check-generated.sh checks the result)

Sources inside the digest: section 8.1 (run-time layer ids), 8.3 (FWPS_FIELD_* order), 8.5 (value
types), Appendix A.1 (layer GUIDs), A.3 (condition GUIDs). The output is committed; rerun after the
digest changes and review the diff.
"""
import re
import sys

text = open(sys.argv[1], encoding="utf-8").read()

# --- 8.1 run-time layer ids -------------------------------------------------------------------
ids = {}
for m in re.finditer(r"^\| (\d+) \| ([A-Z0-9_]+)[^|]*\| (\d+) \| ([A-Z0-9_]+)[^|]*\|", text, re.M):
    ids[int(m.group(1))] = m.group(2)
    ids[int(m.group(3))] = m.group(4)
ids[21] = "STREAM_V4_DISCARD"
ids[23] = "STREAM_V6_DISCARD"
assert len(ids) == 72, len(ids)

# --- A.1 / A.3 GUIDs -----------------------------------------------------------------------------
layer_guid = dict(re.findall(r"^FWPM_LAYER_([A-Z0-9_]+) \{([0-9A-F-]+)\}", text, re.M))
cond_guid = dict(re.findall(r"^FWPM_CONDITION_([A-Z0-9_]+) \{([0-9A-F-]+)\}", text, re.M))
sub_guid = dict(re.findall(r"^FWPM_SUBLAYER_([A-Z0-9_]+) \{([0-9A-F-]+)\}", text, re.M))

# Condition names that fwpmu.h defines as aliases of listed GUIDs (#defines stripped from the digest's
# header copy). [UNVERIFIED] beyond the digest's note; ICMP_TYPE/ICMP_CODE reuse the port GUIDs.
ALIASES = {
    "ICMP_TYPE": "IP_LOCAL_PORT",
    "ICMP_CODE": "IP_REMOTE_PORT",
    "INTERFACE": "IP_LOCAL_INTERFACE",
    "LOCAL_INTERFACE_TYPE": "INTERFACE_TYPE",
    "LOCAL_TUNNEL_TYPE": "TUNNEL_TYPE",
    "LOCAL_INTERFACE_INDEX": "INTERFACE_INDEX",
    "ARRIVAL_SUB_INTERFACE_INDEX": "SUB_INTERFACE_INDEX",
    # FWPS field names that differ from their condition's name.
    "SIO_FIREWALL_SYSTEM_PORT": "ALE_SIO_FIREWALL_SYSTEM_PORT",
    "NAP_CONTEXT": "ALE_NAP_CONTEXT",
    "PROFILE_ID": "CURRENT_PROFILE_ID",
}
# Conditions that the digest's GUID list lacks entirely; given project-local GUIDs in the
# {5746xxxx-...} range so they can still be named. Documented in docs/semantics.md.
LOCAL = {
    "SIO_FIREWALL_SOCKET_PROPERTY": "57465000-0000-4000-8000-000000000001",
}

# --- 8.3 field lists -----------------------------------------------------------------------------
fields = {}
for m in re.finditer(r"^\* \*\*([A-Z0-9_/]+)\*\*: (.*)$", text, re.M):
    name, body = m.group(1), m.group(2)
    items = re.findall(r"(\d+) ([A-Z0-9_]+)", body)
    flist = [n for (_, n) in items if n != "MAX"]
    if name.startswith("INBOUND/OUTBOUND_"):
        base = name[len("INBOUND/OUTBOUND_"):]
        fields["INBOUND_" + base] = flist
        fields["OUTBOUND_" + base] = flist
    else:
        fields[name] = flist
# NAME_RESOLUTION_CACHE is not spelled out in the digest; FWPS_FIELDS_NAME_RESOLUTION_CACHE_V4 order
# from the Windows 10 header as recalled [UNVERIFIED].
fields["NAME_RESOLUTION_CACHE_V4"] = ["ALE_USER_ID", "ALE_APP_ID", "IP_REMOTE_ADDRESS", "PEER_NAME", "COMPARTMENT_ID"]


def fields_for(layer):
    base = layer.replace("_DISCARD", "")
    if base in fields:
        return fields[base]
    if base.endswith("_V6") and base[:-3] + "_V4" in fields:
        return fields[base[:-3] + "_V4"]
    raise KeyError(layer)


ADDR = {"IP_LOCAL_ADDRESS", "IP_REMOTE_ADDRESS", "IP_SOURCE_ADDRESS", "IP_DESTINATION_ADDRESS",
        "EMBEDDED_REMOTE_ADDRESS", "IP_NEXTHOP_ADDRESS"}
U8 = {"IP_PROTOCOL", "EMBEDDED_PROTOCOL", "IP_LOCAL_ADDRESS_TYPE", "IP_DESTINATION_ADDRESS_TYPE",
      "EMBEDDED_LOCAL_ADDRESS_TYPE", "MAC_LOCAL_ADDRESS_TYPE", "MAC_REMOTE_ADDRESS_TYPE",
      "ALE_PROMISCUOUS_MODE"}
U16 = {"IP_LOCAL_PORT", "IP_REMOTE_PORT", "EMBEDDED_LOCAL_PORT", "EMBEDDED_REMOTE_PORT", "ICMP_TYPE",
       "ICMP_CODE", "ORIGINAL_ICMP_TYPE", "ETHER_TYPE", "VLAN_ID"}
U64 = {"IP_LOCAL_INTERFACE", "IP_ARRIVAL_INTERFACE", "IP_NEXTHOP_INTERFACE", "IP_FORWARD_INTERFACE",
       "INTERFACE", "IP_PHYSICAL_ARRIVAL_INTERFACE", "IP_PHYSICAL_NEXTHOP_INTERFACE",
       "INTERFACE_QUARANTINE_EPOCH"}
BLOB = {"ALE_APP_ID", "ALE_ORIGINAL_APP_ID", "ALE_SECURITY_ATTRIBUTE_FQBN_VALUE", "BITMAP_IP_LOCAL_ADDRESS",
        "BITMAP_IP_LOCAL_PORT", "BITMAP_IP_REMOTE_ADDRESS", "BITMAP_IP_REMOTE_PORT"}
TOKEN = {"ALE_USER_ID", "ALE_REMOTE_USER_ID", "ALE_REMOTE_MACHINE_ID"}
SID = {"ALE_PACKAGE_ID"}
USTR = {"PEER_NAME", "ALE_EFFECTIVE_NAME"}
MAC = {"INTERFACE_MAC_ADDRESS", "MAC_LOCAL_ADDRESS", "MAC_REMOTE_ADDRESS"}


def dtype(field, v6):
    if field in ADDR:
        return "ByteArray16" if v6 else "Uint32"
    if field in U8:
        return "Uint8"
    if field in U16:
        return "Uint16"
    if field in U64:
        return "Uint64"
    if field in BLOB:
        return "ByteBlob"
    if field in TOKEN:
        return "TokenInformation"
    if field in SID:
        return "Sid"
    if field in USTR:
        return "UnicodeString"
    if field in MAC:
        return "ByteArray6"
    return "Uint32"  # FLAGS, DIRECTION, *_TYPE, *_INDEX, *_PROFILE_ID, REAUTHORIZE_REASON, ...


# Every condition name used by a field, plus every A.3 GUID.
names = list(cond_guid.keys())
for lname in ids.values():
    for f in fields_for(lname):
        if f not in names and f not in ALIASES:
            names.append(f)

out = []
w = out.append
w("// @generated by tools/gen_catalogue.py from ../shared/spec/wfp-reference.md (§8.1, §8.3, §8.5,")
w("// Appendix A). Do not edit by hand: change the generator and rerun it.")
w("")
w("use super::{ConditionDef, FieldDef, LayerDef};")
w("use crate::guid::Guid;")
w("use crate::value::DataType;")
w("")
w("/// Every filtering condition the catalogue knows: `FWPM_CONDITION_*` name and GUID.")
w("pub(crate) static CONDITIONS: &[ConditionDef] = &[")
cidx = {}
for n in names:
    g = cond_guid.get(n) or LOCAL.get(n)
    if g is None:
        # A field the GUID list lacks: give it a stable project-local GUID derived from its position.
        g = "57465000-0000-4000-8000-%012X" % (0x100 + len(cidx))
    cidx[n] = len(cidx)
    w(f'    ConditionDef {{ name: "{n}", key: Guid::from_str_const("{g}") }},')
w("];")
w("")
w("/// Condition names that `fwpmu.h` defines as aliases of another condition's GUID.")
w("pub(crate) static CONDITION_ALIASES: &[(&str, &str)] = &[")
for a, t in ALIASES.items():
    w(f'    ("{a}", "{t}"),')
w("];")
w("")
for lid in range(72):
    lname = ids[lid]
    v6 = "_V6" in lname
    fl = fields_for(lname)
    cname = "F_" + lname
    w(f"static {cname}: &[FieldDef] = &[")
    for f in fl:
        target = ALIASES.get(f, f)
        w(f'    FieldDef {{ name: "{f}", condition: {cidx[target]}, data_type: DataType::{dtype(f, v6)} }},')
    w("];")
w("")
w("/// The run-time layers `FWPS_BUILTIN_LAYERS` 0..=71, indexed by id.")
w("pub(crate) static LAYERS: &[LayerDef] = &[")
for lid in range(72):
    lname = ids[lid]
    g = layer_guid[lname]
    w(f'    LayerDef {{ id: {lid}, name: "{lname}", key: Guid::from_str_const("{g}"), fields: F_{lname} }},')
w("];")
w("")
w("/// Built-in sublayers (`FWPM_SUBLAYER_*`).")
w("pub(crate) static BUILTIN_SUBLAYERS: &[(&str, Guid)] = &[")
for n, g in sub_guid.items():
    w(f'    ("{n}", Guid::from_str_const("{g}")),')
w("];")
print("\n".join(out))
