//! WFP's numeric constants, with WFP's names and values (wfp-reference §1.1, §2.3–2.5, §3.1, §8.4–8.5,
//! §9.1, §11.4). Newtypes keep flags of different families apart; the raw `u32` is always `.0`.

macro_rules! flag_set {
    ($(#[$m:meta])* $name:ident($ty:ty) { $($(#[$cm:meta])* $c:ident = $v:expr;)* }) => {
        $(#[$m])*
        #[derive(Clone, Copy, PartialEq, Eq, Hash, Default, Debug, PartialOrd, Ord)]
        pub struct $name(pub $ty);
        impl $name {
            $($(#[$cm])* pub const $c: Self = Self($v);)*
            /// Every named flag, with its WFP name (without the family prefix).
            pub const NAMED: &'static [(&'static str, Self)] = &[$((stringify!($c), Self::$c)),*];
            /// True when every bit of `other` is set in `self`.
            pub const fn contains(self, other: Self) -> bool {
                self.0 & other.0 == other.0
            }
            /// True when any bit of `other` is set in `self`.
            pub const fn intersects(self, other: Self) -> bool {
                self.0 & other.0 != 0
            }
            /// Looks a flag up by its WFP name, with or without the family prefix.
            pub fn from_name(name: &str) -> Option<Self> {
                let upper = name.trim().to_ascii_uppercase();
                Self::NAMED
                    .iter()
                    .find(|(n, _)| upper == *n || upper.ends_with(&format!("_{n}")))
                    .map(|(_, v)| *v)
            }
            /// Names of the set flags (unknown bits are shown in hex).
            pub fn names(self) -> Vec<String> {
                let mut rest = self.0;
                let mut out = Vec::new();
                for (n, v) in Self::NAMED {
                    if v.0 != 0 && self.0 & v.0 == v.0 {
                        out.push((*n).to_string());
                        rest &= !v.0;
                    }
                }
                if rest != 0 {
                    out.push(format!("{rest:#x}"));
                }
                out
            }
        }
        impl std::ops::BitOr for $name {
            type Output = Self;
            fn bitor(self, rhs: Self) -> Self {
                Self(self.0 | rhs.0)
            }
        }
        impl std::ops::BitOrAssign for $name {
            fn bitor_assign(&mut self, rhs: Self) {
                self.0 |= rhs.0;
            }
        }
    };
}

/// `FWP_ACTION_TYPE` (§2.5): a UINT32 built from flag bits.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug, PartialOrd, Ord)]
pub struct ActionType(pub u32);

impl ActionType {
    /// FWP_ACTION_FLAG_TERMINATING.
    pub const FLAG_TERMINATING: u32 = 0x0000_1000;
    /// FWP_ACTION_FLAG_NON_TERMINATING.
    pub const FLAG_NON_TERMINATING: u32 = 0x0000_2000;
    /// FWP_ACTION_FLAG_CALLOUT.
    pub const FLAG_CALLOUT: u32 = 0x0000_4000;
    /// FWP_ACTION_BLOCK.
    pub const BLOCK: Self = Self(0x0000_1001);
    /// FWP_ACTION_PERMIT.
    pub const PERMIT: Self = Self(0x0000_1002);
    /// FWP_ACTION_CALLOUT_TERMINATING.
    pub const CALLOUT_TERMINATING: Self = Self(0x0000_5003);
    /// FWP_ACTION_CALLOUT_INSPECTION.
    pub const CALLOUT_INSPECTION: Self = Self(0x0000_6004);
    /// FWP_ACTION_CALLOUT_UNKNOWN.
    pub const CALLOUT_UNKNOWN: Self = Self(0x0000_4005);
    /// FWP_ACTION_CONTINUE.
    pub const CONTINUE: Self = Self(0x0000_2006);
    /// FWP_ACTION_NONE.
    pub const NONE: Self = Self(0x0000_0007);
    /// FWP_ACTION_NONE_NO_MATCH.
    pub const NONE_NO_MATCH: Self = Self(0x0000_0008);

    /// All named action types.
    pub const NAMED: &'static [(&'static str, Self)] = &[
        ("BLOCK", Self::BLOCK),
        ("PERMIT", Self::PERMIT),
        ("CALLOUT_TERMINATING", Self::CALLOUT_TERMINATING),
        ("CALLOUT_INSPECTION", Self::CALLOUT_INSPECTION),
        ("CALLOUT_UNKNOWN", Self::CALLOUT_UNKNOWN),
        ("CONTINUE", Self::CONTINUE),
        ("NONE", Self::NONE),
        ("NONE_NO_MATCH", Self::NONE_NO_MATCH),
    ];

    /// True when the action invokes a callout.
    pub const fn is_callout(self) -> bool {
        self.0 & Self::FLAG_CALLOUT != 0
    }

    /// WFP name without the `FWP_ACTION_` prefix (hex for unknown values).
    pub fn name(self) -> String {
        Self::NAMED
            .iter()
            .find(|(_, v)| *v == self)
            .map_or_else(|| format!("{:#x}", self.0), |(n, _)| (*n).to_string())
    }

    /// Parses `PERMIT` or `FWP_ACTION_PERMIT` (case-insensitive).
    pub fn from_name(name: &str) -> Option<Self> {
        let upper = name.trim().to_ascii_uppercase();
        let bare = upper.strip_prefix("FWP_ACTION_").unwrap_or(&upper);
        Self::NAMED
            .iter()
            .find(|(n, _)| *n == bare)
            .map(|(_, v)| *v)
    }
}

flag_set! {
    /// `FWP_CALLOUT_FLAG_*` (§1.1), the `flags` of an FWPS_CALLOUTn registration.
    CalloutFlags(u32) {
        /// Invoke only when a flow context exists for (flow, layer, callout).
        CONDITIONAL_ON_FLOW = 0x0000_0001;
        /// Unaffected by NIC offload.
        ALLOW_OFFLOAD = 0x0000_0002;
        /// Wants ADD_FILTER_POST_COMMIT notifications.
        ENABLE_COMMIT_ADD_NOTIFY = 0x0000_0004;
        /// May attach to existing streams.
        ALLOW_MID_STREAM_INSPECTION = 0x0000_0008;
        /// Wants reclassification calls.
        ALLOW_RECLASSIFY = 0x0000_0010;
        /// Reserved.
        RESERVED1 = 0x0000_0020;
        /// Tolerates receive segment coalescing.
        ALLOW_RSC = 0x0000_0040;
        /// Accepts L2 batches.
        ALLOW_L2_BATCH_CLASSIFY = 0x0000_0080;
        /// Tolerates UDP segmentation offload.
        ALLOW_USO = 0x0000_0100;
        /// Tolerates UDP receive offload.
        ALLOW_URO = 0x0000_0200;
        /// Reserved.
        RESERVED2 = 0x0000_0400;
    }
}

flag_set! {
    /// `FWPM_FILTER_FLAG_*` (§11.4), the management filter flags.
    FilterFlags(u32) {
        /// FWPM_FILTER_FLAG_NONE.
        NONE = 0;
        /// Survives restarts (kept by the store).
        PERSISTENT = 0x0000_0001;
        /// Enforced before the management engine starts.
        BOOTTIME = 0x0000_0002;
        /// Context holds a provider-context key.
        HAS_PROVIDER_CONTEXT = 0x0000_0004;
        /// Makes the filter's decision hard.
        CLEAR_ACTION_RIGHT = 0x0000_0008;
        /// Unregistered callout acts as PERMIT.
        PERMIT_IF_CALLOUT_UNREGISTERED = 0x0000_0010;
        /// Output only.
        DISABLED = 0x0000_0020;
        /// Index hint.
        INDEXED = 0x0000_0040;
        /// Security realm provider context.
        HAS_SECURITY_REALM_PROVIDER_CONTEXT = 0x0000_0080;
        /// System OS only.
        SYSTEMOS_ONLY = 0x0000_0100;
        /// Game OS only.
        GAMEOS_ONLY = 0x0000_0200;
        /// Silent mode.
        SILENT_MODE = 0x0000_0400;
        /// No IPsec acquire.
        IPSEC_NO_ACQUIRE_INITIATE = 0x0000_0800;
        /// Reserved.
        RESERVED0 = 0x0000_1000;
        /// Reserved.
        RESERVED1 = 0x0000_2000;
        /// Reserved.
        RESERVED2 = 0x0000_4000;
    }
}

flag_set! {
    /// `FWPS_FILTER_FLAG_*` (§2.4), the run-time filter flags a callout sees (UINT16).
    RtFilterFlags(u16) {
        /// The callout must clear the write right on PERMIT too.
        CLEAR_ACTION_RIGHT = 0x0001;
        /// Treat as PERMIT when the callout is not registered.
        PERMIT_IF_CALLOUT_UNREGISTERED = 0x0002;
        /// Several conditions on one field, OR-ed.
        OR_CONDITIONS = 0x0004;
        /// Security realm in provider context.
        HAS_SECURITY_REALM_PROVIDER_CONTEXT = 0x0008;
        /// Silent mode.
        SILENT_MODE = 0x0010;
        /// No IPsec acquire.
        IPSEC_NO_ACQUIRE_INITIATE = 0x0020;
    }
}

flag_set! {
    /// `FWPS_RIGHT_*` (§2.5), `FWPS_CLASSIFY_OUT0.rights`.
    Rights(u32) {
        /// FWPS_RIGHT_ACTION_WRITE.
        ACTION_WRITE = 0x0000_0001;
    }
}

flag_set! {
    /// `FWPS_CLASSIFY_OUT_FLAG_*` (§2.5).
    ClassifyOutFlags(u32) {
        /// Drop silently: no discard layer, no net event.
        ABSORB = 0x0000_0001;
        /// Stream accumulation limit reached (engine-set).
        BUFFER_LIMIT_REACHED = 0x0000_0002;
        /// Stream disconnected; no more data will come (engine-set).
        NO_MORE_DATA = 0x0000_0004;
        /// Undocumented.
        ALE_FAST_CACHE_CHECK = 0x0000_0008;
        /// Undocumented.
        ALE_FAST_CACHE_POSSIBLE = 0x0000_0010;
    }
}

flag_set! {
    /// `FWP_CONDITION_FLAG_*` (§8.5), the value of the FLAGS field.
    ConditionFlags(u32) {
        /// Loopback traffic.
        IS_LOOPBACK = 0x0000_0001;
        /// IPsec secured.
        IS_IPSEC_SECURED = 0x0000_0002;
        /// A reauthorization classify.
        IS_REAUTHORIZE = 0x0000_0004;
        /// Wildcard bind.
        IS_WILDCARD_BIND = 0x0000_0008;
        /// Raw endpoint.
        IS_RAW_ENDPOINT = 0x0000_0010;
        /// An IP fragment.
        IS_FRAGMENT = 0x0000_0020;
        /// A fragment group.
        IS_FRAGMENT_GROUP = 0x0000_0040;
        /// IPsec NAT-T reclassify.
        IS_IPSEC_NATT_RECLASSIFY = 0x0000_0080;
        /// ALE classify required.
        REQUIRES_ALE_CLASSIFY = 0x0000_0100;
        /// Implicit bind.
        IS_IMPLICIT_BIND = 0x0000_0200;
        /// A reassembled datagram.
        IS_REASSEMBLED = 0x0000_0400;
        /// Name app specified.
        IS_NAME_APP_SPECIFIED = 0x0000_4000;
        /// Promiscuous.
        IS_PROMISCUOUS = 0x0000_8000;
        /// Auth firewall.
        IS_AUTH_FW = 0x0001_0000;
        /// Reclassify.
        IS_RECLASSIFY = 0x0002_0000;
        /// Outbound pass-through.
        IS_OUTBOUND_PASS_THRU = 0x0004_0000;
        /// Inbound pass-through.
        IS_INBOUND_PASS_THRU = 0x0008_0000;
        /// Connection redirected.
        IS_CONNECTION_REDIRECTED = 0x0010_0000;
        /// Proxy connection.
        IS_PROXY_CONNECTION = 0x0020_0000;
        /// AppContainer loopback.
        IS_APPCONTAINER_LOOPBACK = 0x0040_0000;
        /// Non-AppContainer loopback.
        IS_NON_APPCONTAINER_LOOPBACK = 0x0080_0000;
        /// Reserved.
        IS_RESERVED = 0x0100_0000;
        /// Honoring policy authorize.
        IS_HONORING_POLICY_AUTHORIZE = 0x0200_0000;
    }
}

flag_set! {
    /// `FWP_CONDITION_REAUTHORIZE_REASON_*` (§8.5).
    ReauthorizeReason(u32) {
        /// A filter was added or deleted at the layer.
        POLICY_CHANGE = 0x0000_0001;
        /// New arrival interface.
        NEW_ARRIVAL_INTERFACE = 0x0000_0002;
        /// New next-hop interface.
        NEW_NEXTHOP_INTERFACE = 0x0000_0004;
        /// Profile crossing.
        PROFILE_CROSSING = 0x0000_0008;
        /// A pended classify completed.
        CLASSIFY_COMPLETION = 0x0000_0010;
        /// IPsec properties changed.
        IPSEC_PROPERTIES_CHANGED = 0x0000_0020;
        /// Mid-stream inspection.
        MID_STREAM_INSPECTION = 0x0000_0040;
        /// Socket property changed.
        SOCKET_PROPERTY_CHANGED = 0x0000_0080;
        /// New inbound multicast/broadcast packet.
        NEW_INBOUND_MCAST_BCAST_PACKET = 0x0000_0100;
        /// EDP policy changed.
        EDP_POLICY_CHANGED = 0x0000_0200;
        /// Proxy handle changed.
        PROXY_HANDLE_CHANGED = 0x0000_4000;
        /// Check offload.
        CHECK_OFFLOAD = 0x0001_0000;
    }
}

flag_set! {
    /// `FWPS_METADATA_FIELD_*` (§2.3), bits of `currentMetadataValues`.
    MetadataFields(u32) {
        /// discardMetadata valid.
        DISCARD_REASON = 0x0000_0001;
        /// flowHandle valid.
        FLOW_HANDLE = 0x0000_0002;
        /// ipHeaderSize valid.
        IP_HEADER_SIZE = 0x0000_0004;
        /// processPath valid.
        PROCESS_PATH = 0x0000_0008;
        /// token valid.
        TOKEN = 0x0000_0010;
        /// processId valid.
        PROCESS_ID = 0x0000_0020;
        /// System flags.
        SYSTEM_FLAGS = 0x0000_0040;
        /// Reserved.
        RESERVED = 0x0000_0080;
        /// sourceInterfaceIndex valid.
        SOURCE_INTERFACE_INDEX = 0x0000_0100;
        /// destinationInterfaceIndex valid.
        DESTINATION_INTERFACE_INDEX = 0x0000_0200;
        /// transportHeaderSize valid.
        TRANSPORT_HEADER_SIZE = 0x0000_0400;
        /// compartmentId valid.
        COMPARTMENT_ID = 0x0000_0800;
        /// fragmentMetadata valid.
        FRAGMENT_DATA = 0x0000_1000;
        /// pathMtu valid.
        PATH_MTU = 0x0000_2000;
        /// completionHandle valid.
        COMPLETION_HANDLE = 0x0000_4000;
        /// transportEndpointHandle valid.
        TRANSPORT_ENDPOINT_HANDLE = 0x0000_8000;
        /// Control data valid.
        TRANSPORT_CONTROL_DATA = 0x0001_0000;
        /// remoteScopeId valid.
        REMOTE_SCOPE_ID = 0x0002_0000;
        /// packetDirection valid.
        PACKET_DIRECTION = 0x0004_0000;
        /// System-critical packet.
        PACKET_SYSTEM_CRITICAL = 0x0008_0000;
        /// Forward outbound pass-through.
        FORWARD_LAYER_OUTBOUND_PASS_THRU = 0x0010_0000;
        /// Forward inbound pass-through.
        FORWARD_LAYER_INBOUND_PASS_THRU = 0x0020_0000;
        /// The packet still needs ALE classification.
        ALE_CLASSIFY_REQUIRED = 0x0040_0000;
        /// Header-include header valid.
        TRANSPORT_HEADER_INCLUDE_HEADER = 0x0080_0000;
        /// destinationPrefix valid.
        DESTINATION_PREFIX = 0x0100_0000;
        /// frameLength valid.
        ETHER_FRAME_LENGTH = 0x0200_0000;
        /// parentEndpointHandle valid.
        PARENT_ENDPOINT_HANDLE = 0x0400_0000;
        /// icmpIdAndSequence valid.
        ICMP_ID_AND_SEQUENCE = 0x0800_0000;
        /// localRedirectTargetPID valid.
        LOCAL_REDIRECT_TARGET_PID = 0x1000_0000;
        /// originalDestination valid.
        ORIGINAL_DESTINATION = 0x2000_0000;
        /// redirectRecords valid.
        REDIRECT_RECORD_HANDLE = 0x4000_0000;
        /// subProcessTag valid.
        SUB_PROCESS_TAG = 0x8000_0000;
    }
}

flag_set! {
    /// `FWPS_STREAM_FLAG_*` (§9.1; values beyond RECEIVE are marked \[UNVERIFIED\] in the digest).
    StreamFlags(u32) {
        /// Inbound data.
        RECEIVE = 0x0000_0001;
        /// Inbound urgent data.
        RECEIVE_EXPEDITED = 0x0000_0002;
        /// Inbound FIN.
        RECEIVE_DISCONNECT = 0x0000_0004;
        /// Inbound RST.
        RECEIVE_ABORT = 0x0000_0008;
        /// PUSH (injection).
        RECEIVE_PUSH = 0x0000_0010;
        /// Outbound data.
        SEND = 0x0001_0000;
        /// Outbound urgent data.
        SEND_EXPEDITED = 0x0002_0000;
        /// No delay.
        SEND_NODELAY = 0x0004_0000;
        /// Outbound FIN.
        SEND_DISCONNECT = 0x0008_0000;
        /// Outbound RST.
        SEND_ABORT = 0x0010_0000;
    }
}

/// `FWPS_STREAM_ACTION_TYPE` (§9.1).
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug, Default)]
#[repr(u32)]
pub enum StreamAction {
    /// FWPS_STREAM_ACTION_NONE: `actionType` decides.
    #[default]
    None = 0,
    /// FWPS_STREAM_ACTION_NEED_MORE_DATA.
    NeedMoreData = 1,
    /// FWPS_STREAM_ACTION_DROP_CONNECTION.
    DropConnection = 2,
    /// FWPS_STREAM_ACTION_DEFER.
    Defer = 3,
    /// FWPS_STREAM_ACTION_ALLOW_CONNECTION.
    AllowConnection = 4,
}

/// `FWPS_CALLOUT_NOTIFY_TYPE` (§3.1).
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
#[repr(u32)]
pub enum NotifyType {
    /// FWPS_CALLOUT_NOTIFY_ADD_FILTER: before the filter becomes active.
    AddFilter = 0,
    /// FWPS_CALLOUT_NOTIFY_DELETE_FILTER.
    DeleteFilter = 1,
    /// FWPS_CALLOUT_NOTIFY_ADD_FILTER_POST_COMMIT.
    AddFilterPostCommit = 2,
}

/// `FWP_DIRECTION` (§8.4).
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
#[repr(u32)]
pub enum Direction {
    /// FWP_DIRECTION_OUTBOUND.
    Outbound = 0,
    /// FWP_DIRECTION_INBOUND.
    Inbound = 1,
}

/// `FWPM_NET_EVENT_TYPE` values (§11.5); the engine produces CLASSIFY_DROP and CLASSIFY_ALLOW.
pub mod net_event_type {
    /// FWPM_NET_EVENT_TYPE_IKEEXT_MM_FAILURE.
    pub const IKEEXT_MM_FAILURE: u32 = 0;
    /// FWPM_NET_EVENT_TYPE_IKEEXT_QM_FAILURE.
    pub const IKEEXT_QM_FAILURE: u32 = 1;
    /// FWPM_NET_EVENT_TYPE_IKEEXT_EM_FAILURE.
    pub const IKEEXT_EM_FAILURE: u32 = 2;
    /// FWPM_NET_EVENT_TYPE_CLASSIFY_DROP.
    pub const CLASSIFY_DROP: u32 = 3;
    /// FWPM_NET_EVENT_TYPE_IPSEC_KERNEL_DROP.
    pub const IPSEC_KERNEL_DROP: u32 = 4;
    /// FWPM_NET_EVENT_TYPE_IPSEC_DOSP_DROP.
    pub const IPSEC_DOSP_DROP: u32 = 5;
    /// FWPM_NET_EVENT_TYPE_CLASSIFY_ALLOW.
    pub const CLASSIFY_ALLOW: u32 = 6;
    /// FWPM_NET_EVENT_TYPE_CAPABILITY_DROP.
    pub const CAPABILITY_DROP: u32 = 7;
    /// FWPM_NET_EVENT_TYPE_CAPABILITY_ALLOW.
    pub const CAPABILITY_ALLOW: u32 = 8;
    /// FWPM_NET_EVENT_TYPE_CLASSIFY_DROP_MAC.
    pub const CLASSIFY_DROP_MAC: u32 = 9;
    /// FWPM_NET_EVENT_TYPE_LPM_PACKET_ARRIVAL.
    pub const LPM_PACKET_ARRIVAL: u32 = 10;
    /// FWPM_NET_EVENT_TYPE_MAX.
    pub const MAX: u32 = 11;
}

/// `FWPM_NET_EVENT_KEYWORD_*` bits (§11.5), for `EngineOptions::net_event_keywords`.
pub mod net_event_keyword {
    /// FWPM_NET_EVENT_KEYWORD_INBOUND_MCAST.
    pub const INBOUND_MCAST: u32 = 0x1;
    /// FWPM_NET_EVENT_KEYWORD_INBOUND_BCAST.
    pub const INBOUND_BCAST: u32 = 0x2;
    /// FWPM_NET_EVENT_KEYWORD_CAPABILITY_DROP.
    pub const CAPABILITY_DROP: u32 = 0x4;
    /// FWPM_NET_EVENT_KEYWORD_CAPABILITY_ALLOW.
    pub const CAPABILITY_ALLOW: u32 = 0x8;
    /// FWPM_NET_EVENT_KEYWORD_CLASSIFY_ALLOW: record CLASSIFY_ALLOW events.
    pub const CLASSIFY_ALLOW: u32 = 0x10;
    /// FWPM_NET_EVENT_KEYWORD_PORT_SCANNING_DROP.
    pub const PORT_SCANNING_DROP: u32 = 0x20;
}

/// Filter weight constants (§7.2).
pub mod weight {
    /// FWPM_AUTO_WEIGHT_BITS.
    pub const AUTO_WEIGHT_BITS: u32 = 60;
    /// FWPM_AUTO_WEIGHT_MAX.
    pub const AUTO_WEIGHT_MAX: u64 = u64::MAX >> 4;
    /// FWPM_WEIGHT_RANGE_MAX.
    pub const WEIGHT_RANGE_MAX: u64 = u64::MAX >> 60;
    /// FWPM_WEIGHT_RANGE_IPSEC.
    pub const WEIGHT_RANGE_IPSEC: u64 = 0x0;
    /// FWPM_WEIGHT_RANGE_IKE_EXEMPTIONS.
    pub const WEIGHT_RANGE_IKE_EXEMPTIONS: u64 = 0xC;
}

/// IP protocol numbers used by the shims and the policy syntax.
pub mod ip_proto {
    /// ICMP.
    pub const ICMP: u8 = 1;
    /// TCP.
    pub const TCP: u8 = 6;
    /// UDP.
    pub const UDP: u8 = 17;
    /// ICMPv6.
    pub const ICMPV6: u8 = 58;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn action_values_match_fwptypes_h() {
        assert_eq!(ActionType::BLOCK.0, 0x1001);
        assert_eq!(ActionType::PERMIT.0, 0x1002);
        assert_eq!(ActionType::CALLOUT_TERMINATING.0, 0x5003);
        assert_eq!(ActionType::CALLOUT_INSPECTION.0, 0x6004);
        assert_eq!(ActionType::CALLOUT_UNKNOWN.0, 0x4005);
        assert_eq!(ActionType::CONTINUE.0, 0x2006);
        assert_eq!(ActionType::NONE.0, 7);
        assert_eq!(ActionType::NONE_NO_MATCH.0, 8);
        assert_eq!(
            ActionType::from_name("fwp_action_permit"),
            Some(ActionType::PERMIT)
        );
    }

    #[test]
    fn flag_names_resolve_with_or_without_prefix() {
        assert_eq!(
            FilterFlags::from_name("FWPM_FILTER_FLAG_CLEAR_ACTION_RIGHT"),
            Some(FilterFlags::CLEAR_ACTION_RIGHT)
        );
        assert_eq!(
            ConditionFlags::from_name("is_fragment"),
            Some(ConditionFlags::IS_FRAGMENT)
        );
        assert_eq!(
            (ConditionFlags::IS_LOOPBACK | ConditionFlags::IS_REAUTHORIZE).names(),
            ["IS_LOOPBACK", "IS_REAUTHORIZE"]
        );
    }
}
