//! Provider contexts (`FWPM_PROVIDER_CONTEXT0..3`, wfp-reference §11.3, §11.4): named, typed data
//! a provider stores in the engine and lets its filters carry to callouts.
//!
//! A filter added with `FWPM_FILTER_FLAG_HAS_PROVIDER_CONTEXT` names a provider context by key
//! instead of giving a `rawContext`; the run-time filter's `context` is then the provider context's
//! LUID (`providerContextId`), and when the filter's callout was added with
//! `FWPM_CALLOUT_FLAG_USES_PROVIDER_CONTEXT` the whole provider context travels with the run-time
//! filter ([`crate::RtFilter::provider_context`], `FWPS_FILTER3.providerContext` on the C side).
//!
//! Data: this engine interprets `FWPM_GENERAL_CONTEXT` (its `dataBuffer` byte blob) fully. The
//! other types (IPsec and IKE policies, classify options, network connection policy) are accepted
//! and carried as opaque bytes tagged with their type; nothing in the engine reads them, and the C
//! side hands them to drivers with a NULL union pointer (docs/c-abi.md).

use std::fmt;

use crate::guid::Guid;

/// `FWPM_PROVIDER_CONTEXT_FLAG_PERSISTENT`: survives engine restarts (§11.3).
pub const PROVIDER_CONTEXT_FLAG_PERSISTENT: u32 = 0x0000_0001;
/// `FWPM_PROVIDER_CONTEXT_FLAG_DOWNLEVEL`: reserved for internal use (refused on add).
pub const PROVIDER_CONTEXT_FLAG_DOWNLEVEL: u32 = 0x0000_0002;

/// A provider context's run-time LUID (`providerContextId`), assigned in add order from 1.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Debug)]
pub struct ProviderContextId(pub u64);

/// `FWPM_PROVIDER_CONTEXT_TYPE` (the values of fwpmtypes.h).
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Debug)]
pub struct ProviderContextType(pub u32);

impl ProviderContextType {
    /// `FWPM_IPSEC_KEYING_CONTEXT`.
    pub const IPSEC_KEYING: Self = Self(0);
    /// `FWPM_IPSEC_IKE_QM_TRANSPORT_CONTEXT`.
    pub const IPSEC_IKE_QM_TRANSPORT: Self = Self(1);
    /// `FWPM_IPSEC_IKE_QM_TUNNEL_CONTEXT`.
    pub const IPSEC_IKE_QM_TUNNEL: Self = Self(2);
    /// `FWPM_IPSEC_AUTHIP_QM_TRANSPORT_CONTEXT`.
    pub const IPSEC_AUTHIP_QM_TRANSPORT: Self = Self(3);
    /// `FWPM_IPSEC_AUTHIP_QM_TUNNEL_CONTEXT`.
    pub const IPSEC_AUTHIP_QM_TUNNEL: Self = Self(4);
    /// `FWPM_IPSEC_IKE_MM_CONTEXT`.
    pub const IPSEC_IKE_MM: Self = Self(5);
    /// `FWPM_IPSEC_AUTHIP_MM_CONTEXT`.
    pub const IPSEC_AUTHIP_MM: Self = Self(6);
    /// `FWPM_CLASSIFY_OPTIONS_CONTEXT`.
    pub const CLASSIFY_OPTIONS: Self = Self(7);
    /// `FWPM_GENERAL_CONTEXT`: `dataBuffer` is an opaque byte blob for the callout.
    pub const GENERAL: Self = Self(8);
    /// `FWPM_IPSEC_IKEV2_QM_TUNNEL_CONTEXT`.
    pub const IPSEC_IKEV2_QM_TUNNEL: Self = Self(9);
    /// `FWPM_IPSEC_IKEV2_MM_CONTEXT`.
    pub const IPSEC_IKEV2_MM: Self = Self(10);
    /// `FWPM_IPSEC_DOSP_CONTEXT`.
    pub const IPSEC_DOSP: Self = Self(11);
    /// `FWPM_IPSEC_IKEV2_QM_TRANSPORT_CONTEXT`.
    pub const IPSEC_IKEV2_QM_TRANSPORT: Self = Self(12);
    /// `FWPM_NETWORK_CONNECTION_POLICY_CONTEXT`.
    pub const NETWORK_CONNECTION_POLICY: Self = Self(13);
    /// `FWPM_PROVIDER_CONTEXT_TYPE_MAX` (not a valid type).
    pub const MAX: Self = Self(14);

    /// Every valid type with its name (without the `FWPM_` prefix and `_CONTEXT` suffix).
    pub const NAMED: &'static [(&'static str, Self)] = &[
        ("IPSEC_KEYING", Self::IPSEC_KEYING),
        ("IPSEC_IKE_QM_TRANSPORT", Self::IPSEC_IKE_QM_TRANSPORT),
        ("IPSEC_IKE_QM_TUNNEL", Self::IPSEC_IKE_QM_TUNNEL),
        ("IPSEC_AUTHIP_QM_TRANSPORT", Self::IPSEC_AUTHIP_QM_TRANSPORT),
        ("IPSEC_AUTHIP_QM_TUNNEL", Self::IPSEC_AUTHIP_QM_TUNNEL),
        ("IPSEC_IKE_MM", Self::IPSEC_IKE_MM),
        ("IPSEC_AUTHIP_MM", Self::IPSEC_AUTHIP_MM),
        ("CLASSIFY_OPTIONS", Self::CLASSIFY_OPTIONS),
        ("GENERAL", Self::GENERAL),
        ("IPSEC_IKEV2_QM_TUNNEL", Self::IPSEC_IKEV2_QM_TUNNEL),
        ("IPSEC_IKEV2_MM", Self::IPSEC_IKEV2_MM),
        ("IPSEC_DOSP", Self::IPSEC_DOSP),
        ("IPSEC_IKEV2_QM_TRANSPORT", Self::IPSEC_IKEV2_QM_TRANSPORT),
        ("NETWORK_CONNECTION_POLICY", Self::NETWORK_CONNECTION_POLICY),
    ];

    /// True for the values below `FWPM_PROVIDER_CONTEXT_TYPE_MAX`.
    pub const fn is_valid(self) -> bool {
        self.0 < Self::MAX.0
    }

    /// The short name (`GENERAL`), or the number for an invalid value.
    pub fn name(self) -> String {
        Self::NAMED
            .iter()
            .find(|(_, v)| *v == self)
            .map_or_else(|| self.0.to_string(), |(n, _)| (*n).to_string())
    }

    /// Parses `GENERAL`, `FWPM_GENERAL_CONTEXT` or `general` (case-insensitive).
    pub fn from_name(name: &str) -> Option<Self> {
        let upper = name.trim().to_ascii_uppercase();
        let bare = upper.strip_prefix("FWPM_").unwrap_or(&upper);
        let bare = bare.strip_suffix("_CONTEXT").unwrap_or(bare);
        Self::NAMED
            .iter()
            .find(|(n, _)| *n == bare)
            .map(|(_, v)| *v)
    }
}

impl fmt::Display for ProviderContextType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.name())
    }
}

/// `FWPM_PROVIDER_CONTEXT3` as given to the engine.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProviderContextSpec {
    /// `providerContextKey` (NULL → generated).
    pub key: Guid,
    /// `displayData.name` (required).
    pub name: String,
    /// `displayData.description`.
    pub description: String,
    /// `FWPM_PROVIDER_CONTEXT_FLAG_*`.
    pub flags: u32,
    /// `providerKey`.
    pub provider: Option<Guid>,
    /// `providerData`.
    pub provider_data: Vec<u8>,
    /// `type`.
    pub context_type: ProviderContextType,
    /// The union's data: `*dataBuffer` for [`ProviderContextType::GENERAL`], opaque bytes for the
    /// other types.
    pub data: Vec<u8>,
}

impl ProviderContextSpec {
    /// A general (byte blob) provider context with a generated key.
    pub fn general(name: impl Into<String>, data: Vec<u8>) -> Self {
        Self {
            key: Guid::NULL,
            name: name.into(),
            description: String::new(),
            flags: 0,
            provider: None,
            provider_data: Vec::new(),
            context_type: ProviderContextType::GENERAL,
            data,
        }
    }

    /// True with `FWPM_PROVIDER_CONTEXT_FLAG_PERSISTENT`.
    pub fn is_persistent(&self) -> bool {
        self.flags & PROVIDER_CONTEXT_FLAG_PERSISTENT != 0
    }
}

/// A provider context as stored: the spec (key filled in) and its run-time LUID. Immutable; filters
/// share it (`Arc`) and it cannot be deleted while one references it (FWP_E_IN_USE).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProviderContext {
    /// The spec as added (key filled in).
    pub spec: ProviderContextSpec,
    /// `providerContextId`.
    pub id: ProviderContextId,
}

impl ProviderContext {
    /// The `FWPM_GENERAL_CONTEXT` blob, `None` for the other types.
    pub fn general_data(&self) -> Option<&[u8]> {
        (self.spec.context_type == ProviderContextType::GENERAL).then_some(&self.spec.data[..])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn type_names_round_trip_with_and_without_prefix() {
        assert_eq!(
            ProviderContextType::from_name("FWPM_GENERAL_CONTEXT"),
            Some(ProviderContextType::GENERAL)
        );
        assert_eq!(
            ProviderContextType::from_name("classify_options"),
            Some(ProviderContextType(7))
        );
        assert_eq!(ProviderContextType::from_name("MAX"), None);
        for (n, t) in ProviderContextType::NAMED {
            assert_eq!(ProviderContextType::from_name(n), Some(*t));
            assert!(t.is_valid());
        }
        assert!(!ProviderContextType::MAX.is_valid());
        assert_eq!(ProviderContextType(99).name(), "99");
    }
}
