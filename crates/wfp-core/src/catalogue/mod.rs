//! The layer catalogue: run-time layer ids, management GUIDs, names and the incoming-value schema of
//! every layer in `FWPS_FIELD_*` order (wfp-reference §8.1, §8.3, Appendix A). The generated
//! `tables` module is the single source of truth; everything else (policy files, the CLI, the C
//! header) resolves names through the functions here.

mod tables;

use std::fmt;

use crate::guid::Guid;
use crate::value::DataType;

/// A run-time layer id (`FWPS_BUILTIN_LAYERS`, `inFixedValues->layerId`).
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Debug)]
pub struct LayerId(pub u16);

/// One filtering condition (`FWPM_CONDITION_*`), identified by its index in the catalogue.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Debug)]
pub struct ConditionId(pub u16);

/// A condition's catalogue entry.
#[derive(Debug)]
pub struct ConditionDef {
    /// Name without the `FWPM_CONDITION_` prefix.
    pub name: &'static str,
    /// Management GUID.
    pub key: Guid,
}

/// One entry of a layer's incoming-value array.
#[derive(Debug)]
pub struct FieldDef {
    /// `FWPS_FIELD_<layer>_<name>` without the prefix.
    pub name: &'static str,
    /// Index into the condition table.
    pub condition: u16,
    /// The incoming value's type.
    pub data_type: DataType,
}

/// A layer's catalogue entry.
#[derive(Debug)]
pub struct LayerDef {
    /// Run-time id.
    pub id: u16,
    /// Name without the `FWPS_LAYER_`/`FWPM_LAYER_` prefix.
    pub name: &'static str,
    /// Management GUID.
    pub key: Guid,
    /// Incoming values in `FWPS_FIELD_*` order (`valueCount` = `fields.len()`).
    pub fields: &'static [FieldDef],
}

impl LayerDef {
    /// The run-time id.
    pub fn layer_id(&self) -> LayerId {
        LayerId(self.id)
    }

    /// The field index of a condition at this layer, if the layer has it.
    pub fn field_index(&self, condition: ConditionId) -> Option<usize> {
        self.fields.iter().position(|f| f.condition == condition.0)
    }

    /// The field index of a field name (FWPS name, condition name or alias) at this layer.
    pub fn field_index_by_name(&self, name: &str) -> Option<usize> {
        let bare = strip_prefix(name, "FWPM_CONDITION_");
        let bare = strip_prefix(&bare, "FWPS_FIELD_");
        let bare = strip_prefix(&bare, &format!("{}_", self.name));
        if let Some(i) = self.fields.iter().position(|f| f.name == bare) {
            return Some(i);
        }
        condition_by_name(&bare).and_then(|c| self.field_index(c))
    }

    /// True for the `_DISCARD` twins.
    pub fn is_discard(&self) -> bool {
        self.name.ends_with("_DISCARD")
    }

    /// True for IPv6 layers.
    pub fn is_v6(&self) -> bool {
        self.name.contains("_V6")
    }

    /// Layers whose classify carries a flow handle (§6.2 "Flow-capable layers"). Computed once per
    /// layer; classify asks on every call.
    pub fn is_flow_capable(&self) -> bool {
        static FLOW_CAPABLE: std::sync::OnceLock<Vec<bool>> = std::sync::OnceLock::new();
        FLOW_CAPABLE
            .get_or_init(|| {
                tables::LAYERS
                    .iter()
                    .map(Self::compute_flow_capable)
                    .collect()
            })
            .get(usize::from(self.id))
            .copied()
            .unwrap_or(false)
    }

    fn compute_flow_capable(&self) -> bool {
        let base = self.name.trim_end_matches("_DISCARD");
        [
            "INBOUND_TRANSPORT",
            "OUTBOUND_TRANSPORT",
            "STREAM_V",
            "DATAGRAM_DATA",
            "STREAM_PACKET",
            "ALE_AUTH_RECV_ACCEPT",
            "ALE_AUTH_CONNECT",
            "ALE_FLOW_ESTABLISHED",
        ]
        .iter()
        .any(|p| base.starts_with(p))
    }

    /// True for STREAM_V4/V6 (layerData is a stream I/O packet).
    pub fn is_stream(&self) -> bool {
        self.id == layers::STREAM_V4.0 || self.id == layers::STREAM_V6.0
    }
}

impl fmt::Display for LayerId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match layer(*self) {
            Some(l) => f.write_str(l.name),
            None => write!(f, "layer#{}", self.0),
        }
    }
}

fn strip_prefix(s: &str, p: &str) -> String {
    let upper = s.trim().to_ascii_uppercase();
    upper
        .strip_prefix(&p.to_ascii_uppercase())
        .map(str::to_string)
        .unwrap_or(upper)
}

/// All layers, indexed by run-time id.
pub fn all_layers() -> &'static [LayerDef] {
    tables::LAYERS
}

/// A layer by run-time id.
pub fn layer(id: LayerId) -> Option<&'static LayerDef> {
    tables::LAYERS.get(usize::from(id.0))
}

/// A layer by name (`ALE_AUTH_CONNECT_V4`, `FWPM_LAYER_ALE_AUTH_CONNECT_V4`, `FWPS_LAYER_...`) or GUID.
pub fn layer_by_name(name: &str) -> Option<&'static LayerDef> {
    if let Ok(g) = name.parse::<Guid>() {
        return tables::LAYERS.iter().find(|l| l.key == g);
    }
    let bare = strip_prefix(name, "FWPM_LAYER_");
    let bare = strip_prefix(&bare, "FWPS_LAYER_");
    tables::LAYERS.iter().find(|l| l.name == bare)
}

/// A layer by management GUID.
pub fn layer_by_key(key: &Guid) -> Option<&'static LayerDef> {
    tables::LAYERS.iter().find(|l| l.key == *key)
}

/// A condition's entry.
pub fn condition(id: ConditionId) -> Option<&'static ConditionDef> {
    tables::CONDITIONS.get(usize::from(id.0))
}

/// All conditions.
pub fn all_conditions() -> &'static [ConditionDef] {
    tables::CONDITIONS
}

/// A condition by name (with or without `FWPM_CONDITION_`, aliases resolved) or GUID.
pub fn condition_by_name(name: &str) -> Option<ConditionId> {
    if let Ok(g) = name.parse::<Guid>() {
        return condition_by_key(&g);
    }
    let bare = strip_prefix(name, "FWPM_CONDITION_");
    let target = tables::CONDITION_ALIASES
        .iter()
        .find(|(a, _)| *a == bare)
        .map_or(bare.as_str(), |(_, t)| *t);
    tables::CONDITIONS
        .iter()
        .position(|c| c.name == target)
        .and_then(|i| u16::try_from(i).ok())
        .map(ConditionId)
}

/// A condition by GUID.
pub fn condition_by_key(key: &Guid) -> Option<ConditionId> {
    tables::CONDITIONS
        .iter()
        .position(|c| c.key == *key)
        .and_then(|i| u16::try_from(i).ok())
        .map(ConditionId)
}

/// Built-in sublayers (`FWPM_SUBLAYER_*` name without prefix, GUID).
pub fn builtin_sublayers() -> &'static [(&'static str, Guid)] {
    tables::BUILTIN_SUBLAYERS
}

/// `FWPM_SUBLAYER_UNIVERSAL`: every layer's default sublayer.
pub const SUBLAYER_UNIVERSAL: Guid = Guid::from_str_const("EEBECC03-CED4-4380-819A-2734397B2B74");
/// `FWPM_SUBLAYER_INSPECTION`: the lowest-weighted built-in sublayer.
pub const SUBLAYER_INSPECTION: Guid = Guid::from_str_const("877519E1-E6A9-41A5-81B4-8C4F118E4A60");

/// Run-time ids of the layers the shims use (`FWPS_LAYER_*`).
pub mod layers {
    use super::LayerId;
    /// FWPS_LAYER_INBOUND_IPPACKET_V4.
    pub const INBOUND_IPPACKET_V4: LayerId = LayerId(0);
    /// FWPS_LAYER_INBOUND_IPPACKET_V6.
    pub const INBOUND_IPPACKET_V6: LayerId = LayerId(2);
    /// FWPS_LAYER_OUTBOUND_IPPACKET_V4.
    pub const OUTBOUND_IPPACKET_V4: LayerId = LayerId(4);
    /// FWPS_LAYER_OUTBOUND_IPPACKET_V6.
    pub const OUTBOUND_IPPACKET_V6: LayerId = LayerId(6);
    /// FWPS_LAYER_IPFORWARD_V4.
    pub const IPFORWARD_V4: LayerId = LayerId(8);
    /// FWPS_LAYER_IPFORWARD_V6.
    pub const IPFORWARD_V6: LayerId = LayerId(10);
    /// FWPS_LAYER_INBOUND_TRANSPORT_V4.
    pub const INBOUND_TRANSPORT_V4: LayerId = LayerId(12);
    /// FWPS_LAYER_INBOUND_TRANSPORT_V6.
    pub const INBOUND_TRANSPORT_V6: LayerId = LayerId(14);
    /// FWPS_LAYER_OUTBOUND_TRANSPORT_V4.
    pub const OUTBOUND_TRANSPORT_V4: LayerId = LayerId(16);
    /// FWPS_LAYER_OUTBOUND_TRANSPORT_V6.
    pub const OUTBOUND_TRANSPORT_V6: LayerId = LayerId(18);
    /// FWPS_LAYER_STREAM_V4.
    pub const STREAM_V4: LayerId = LayerId(20);
    /// FWPS_LAYER_STREAM_V6.
    pub const STREAM_V6: LayerId = LayerId(22);
    /// FWPS_LAYER_DATAGRAM_DATA_V4.
    pub const DATAGRAM_DATA_V4: LayerId = LayerId(24);
    /// FWPS_LAYER_DATAGRAM_DATA_V6.
    pub const DATAGRAM_DATA_V6: LayerId = LayerId(26);
    /// FWPS_LAYER_INBOUND_ICMP_ERROR_V4.
    pub const INBOUND_ICMP_ERROR_V4: LayerId = LayerId(28);
    /// FWPS_LAYER_INBOUND_ICMP_ERROR_V6.
    pub const INBOUND_ICMP_ERROR_V6: LayerId = LayerId(30);
    /// FWPS_LAYER_OUTBOUND_ICMP_ERROR_V4.
    pub const OUTBOUND_ICMP_ERROR_V4: LayerId = LayerId(32);
    /// FWPS_LAYER_OUTBOUND_ICMP_ERROR_V6.
    pub const OUTBOUND_ICMP_ERROR_V6: LayerId = LayerId(34);
    /// FWPS_LAYER_ALE_RESOURCE_ASSIGNMENT_V4.
    pub const ALE_RESOURCE_ASSIGNMENT_V4: LayerId = LayerId(36);
    /// FWPS_LAYER_ALE_AUTH_LISTEN_V4.
    pub const ALE_AUTH_LISTEN_V4: LayerId = LayerId(40);
    /// FWPS_LAYER_ALE_AUTH_RECV_ACCEPT_V4.
    pub const ALE_AUTH_RECV_ACCEPT_V4: LayerId = LayerId(44);
    /// FWPS_LAYER_ALE_AUTH_RECV_ACCEPT_V6.
    pub const ALE_AUTH_RECV_ACCEPT_V6: LayerId = LayerId(46);
    /// FWPS_LAYER_ALE_AUTH_CONNECT_V4.
    pub const ALE_AUTH_CONNECT_V4: LayerId = LayerId(48);
    /// FWPS_LAYER_ALE_AUTH_CONNECT_V6.
    pub const ALE_AUTH_CONNECT_V6: LayerId = LayerId(50);
    /// FWPS_LAYER_ALE_FLOW_ESTABLISHED_V4.
    pub const ALE_FLOW_ESTABLISHED_V4: LayerId = LayerId(52);
    /// FWPS_LAYER_ALE_FLOW_ESTABLISHED_V6.
    pub const ALE_FLOW_ESTABLISHED_V6: LayerId = LayerId(54);
    /// FWPS_LAYER_ALE_ENDPOINT_CLOSURE_V4.
    pub const ALE_ENDPOINT_CLOSURE_V4: LayerId = LayerId(64);
    /// FWPS_LAYER_ALE_ENDPOINT_CLOSURE_V6.
    pub const ALE_ENDPOINT_CLOSURE_V6: LayerId = LayerId(65);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_layer_id_is_its_index_and_has_a_guid() {
        assert_eq!(all_layers().len(), 72);
        for (i, l) in all_layers().iter().enumerate() {
            assert_eq!(usize::from(l.id), i);
            assert!(!l.key.is_null(), "{}", l.name);
            assert!(!l.fields.is_empty(), "{}", l.name);
        }
    }

    #[test]
    fn field_order_matches_fwps_field_enums() {
        let l = layer_by_name("FWPM_LAYER_OUTBOUND_TRANSPORT_V4").unwrap();
        assert_eq!(l.id, 16);
        assert_eq!(l.fields.len(), 16);
        assert_eq!(l.fields[3].name, "IP_REMOTE_ADDRESS");
        assert_eq!(l.fields[5].name, "IP_REMOTE_PORT");
        assert_eq!(l.fields[5].data_type, DataType::Uint16);
        let v6 = layer_by_name("ALE_AUTH_CONNECT_V6").unwrap();
        assert_eq!(v6.fields.len(), 41);
        assert_eq!(v6.fields[6].data_type, DataType::ByteArray16);
        assert_eq!(
            layer_by_name("ALE_AUTH_RECV_ACCEPT_V4")
                .unwrap()
                .fields
                .len(),
            39
        );
        assert_eq!(
            layer_by_name("ALE_FLOW_ESTABLISHED_V4")
                .unwrap()
                .fields
                .len(),
            24
        );
        assert_eq!(
            layer_by_name("INBOUND_ICMP_ERROR_V4").unwrap().fields.len(),
            22
        );
        assert_eq!(layer_by_name("STREAM_V4").unwrap().fields.len(), 8);
    }

    #[test]
    fn names_guids_and_aliases_resolve() {
        let l = layer_by_name("{C86FD1BF-21CD-497E-A0BB-17425C885C58}").unwrap();
        assert_eq!(l.name, "INBOUND_IPPACKET_V4");
        let port = condition_by_name("FWPM_CONDITION_IP_REMOTE_PORT").unwrap();
        assert_eq!(
            condition(port).unwrap().key.to_string(),
            "{C35A604D-D22B-4E1A-91B4-68F674EE674B}"
        );
        assert_eq!(condition_by_name("ICMP_CODE"), Some(port));
        let t = layer_by_name("INBOUND_TRANSPORT_V4").unwrap();
        assert_eq!(t.field_index_by_name("ICMP_TYPE"), Some(4));
        assert_eq!(t.field_index_by_name("ip_remote_port"), Some(5));
        assert_eq!(t.field_index_by_name("ALE_APP_ID"), None);
        let icmp = layer_by_name("INBOUND_ICMP_ERROR_V4").unwrap();
        assert_eq!(icmp.field_index_by_name("ICMP_TYPE"), Some(8));
    }

    #[test]
    fn flow_capable_layers_follow_the_metadata_table() {
        for name in [
            "INBOUND_TRANSPORT_V4",
            "STREAM_V6",
            "ALE_FLOW_ESTABLISHED_V4",
            "DATAGRAM_DATA_V6",
        ] {
            assert!(layer_by_name(name).unwrap().is_flow_capable(), "{name}");
        }
        for name in [
            "INBOUND_IPPACKET_V4",
            "IPFORWARD_V4",
            "INBOUND_ICMP_ERROR_V4",
            "ALE_ENDPOINT_CLOSURE_V4",
        ] {
            assert!(!layer_by_name(name).unwrap().is_flow_capable(), "{name}");
        }
    }
}
