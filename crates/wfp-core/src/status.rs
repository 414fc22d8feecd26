//! Status codes: run-time `NTSTATUS` values (kernel API results) and management errors (`FWP_E_*`).
//!
//! Run-time calls (register, flow contexts) return [`Status`], mirroring NTSTATUS so that the
//! success-class informational codes (STATUS_OBJECT_NAME_EXISTS) and warnings (STATUS_DEVICE_BUSY)
//! keep their meaning (§6.2). Management calls return `Result<_, FwpError>`; every variant maps to its
//! user-mode `FWP_E_*` HRESULT via [`FwpError::code`] (the kernel twin is `0xC022_xxxx`).

use crate::guid::Guid;

/// An NTSTATUS value as the run-time (fwpsk) API returns it.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub struct Status(pub u32);

impl Status {
    /// STATUS_SUCCESS.
    pub const SUCCESS: Self = Self(0x0000_0000);
    /// STATUS_PENDING.
    pub const PENDING: Self = Self(0x0000_0103);
    /// STATUS_OBJECT_NAME_EXISTS (informational: `NT_SUCCESS` is true).
    pub const OBJECT_NAME_EXISTS: Self = Self(0x4000_0000);
    /// STATUS_DEVICE_BUSY (warning: `NT_SUCCESS` is false).
    pub const DEVICE_BUSY: Self = Self(0x8000_0011);
    /// STATUS_UNSUCCESSFUL.
    pub const UNSUCCESSFUL: Self = Self(0xC000_0001);
    /// STATUS_INVALID_PARAMETER.
    pub const INVALID_PARAMETER: Self = Self(0xC000_000D);
    /// STATUS_INSUFFICIENT_RESOURCES.
    pub const INSUFFICIENT_RESOURCES: Self = Self(0xC000_009A);
    /// STATUS_FWP_CALLOUT_NOT_FOUND.
    pub const FWP_CALLOUT_NOT_FOUND: Self = Self(0xC022_0001);
    /// STATUS_FWP_ALREADY_EXISTS.
    pub const FWP_ALREADY_EXISTS: Self = Self(0xC022_0009);
    /// STATUS_FWP_IN_USE.
    pub const FWP_IN_USE: Self = Self(0xC022_000A);
    /// STATUS_FWP_TOO_MANY_CALLOUTS.
    pub const FWP_TOO_MANY_CALLOUTS: Self = Self(0xC022_0018);
    /// STATUS_FWP_CALLOUT_NOTIFICATION_FAILED.
    pub const FWP_CALLOUT_NOTIFICATION_FAILED: Self = Self(0xC022_0037);
    /// STATUS_FWP_CANNOT_PEND.
    pub const FWP_CANNOT_PEND: Self = Self(0xC022_0103);
    /// STATUS_INVALID_DEVICE_STATE (a call made in a state that forbids it).
    pub const INVALID_DEVICE_STATE: Self = Self(0xC000_0184);
    /// STATUS_FWP_NOT_FOUND (an unknown or already finished handle).
    pub const FWP_NOT_FOUND: Self = Self(0xC022_0008);
    /// STATUS_FWP_NULL_POINTER.
    pub const FWP_NULL_POINTER: Self = Self(0xC022_001C);
    /// STATUS_FWP_INVALID_PARAMETER.
    pub const FWP_INVALID_PARAMETER: Self = Self(0xC022_0035);
    /// STATUS_FWP_TCPIP_NOT_READY.
    pub const FWP_TCPIP_NOT_READY: Self = Self(0xC022_0100);
    /// STATUS_FWP_INJECT_HANDLE_CLOSING.
    pub const FWP_INJECT_HANDLE_CLOSING: Self = Self(0xC022_0101);
    /// STATUS_FWP_INJECT_HANDLE_STALE.
    pub const FWP_INJECT_HANDLE_STALE: Self = Self(0xC022_0102);
    /// STATUS_FWP_DROP_NOICMP.
    pub const FWP_DROP_NOICMP: Self = Self(0xC022_0104);

    /// `NT_SUCCESS(status)`: true for success and informational codes.
    pub const fn is_success(self) -> bool {
        (self.0 as i32) >= 0
    }

    /// A readable name for the codes this engine produces.
    pub fn name(self) -> &'static str {
        match self {
            Self::SUCCESS => "STATUS_SUCCESS",
            Self::PENDING => "STATUS_PENDING",
            Self::OBJECT_NAME_EXISTS => "STATUS_OBJECT_NAME_EXISTS",
            Self::DEVICE_BUSY => "STATUS_DEVICE_BUSY",
            Self::UNSUCCESSFUL => "STATUS_UNSUCCESSFUL",
            Self::INVALID_PARAMETER => "STATUS_INVALID_PARAMETER",
            Self::INSUFFICIENT_RESOURCES => "STATUS_INSUFFICIENT_RESOURCES",
            Self::FWP_CALLOUT_NOT_FOUND => "STATUS_FWP_CALLOUT_NOT_FOUND",
            Self::FWP_ALREADY_EXISTS => "STATUS_FWP_ALREADY_EXISTS",
            Self::FWP_IN_USE => "STATUS_FWP_IN_USE",
            Self::FWP_TOO_MANY_CALLOUTS => "STATUS_FWP_TOO_MANY_CALLOUTS",
            Self::FWP_CALLOUT_NOTIFICATION_FAILED => "STATUS_FWP_CALLOUT_NOTIFICATION_FAILED",
            Self::FWP_CANNOT_PEND => "STATUS_FWP_CANNOT_PEND",
            Self::INVALID_DEVICE_STATE => "STATUS_INVALID_DEVICE_STATE",
            Self::FWP_NOT_FOUND => "STATUS_FWP_NOT_FOUND",
            Self::FWP_NULL_POINTER => "STATUS_FWP_NULL_POINTER",
            Self::FWP_INVALID_PARAMETER => "STATUS_FWP_INVALID_PARAMETER",
            Self::FWP_TCPIP_NOT_READY => "STATUS_FWP_TCPIP_NOT_READY",
            Self::FWP_INJECT_HANDLE_CLOSING => "STATUS_FWP_INJECT_HANDLE_CLOSING",
            Self::FWP_INJECT_HANDLE_STALE => "STATUS_FWP_INJECT_HANDLE_STALE",
            Self::FWP_DROP_NOICMP => "STATUS_FWP_DROP_NOICMP",
            _ => "NTSTATUS",
        }
    }
}

impl std::fmt::Display for Status {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} ({:#010x})", self.name(), self.0)
    }
}

/// A management-API failure (`FWP_E_*`, §11). Each variant names the object or field at fault.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum FwpError {
    /// FWP_E_CALLOUT_NOT_FOUND: no management callout with that key or id.
    #[error("FWP_E_CALLOUT_NOT_FOUND: callout {0} does not exist")]
    CalloutNotFound(String),
    /// FWP_E_CONDITION_NOT_FOUND: the field does not exist at the filter's layer.
    #[error("FWP_E_CONDITION_NOT_FOUND: condition {field} is not a field of layer {layer}")]
    ConditionNotFound {
        /// The condition as written.
        field: String,
        /// The layer's name.
        layer: String,
    },
    /// FWP_E_FILTER_NOT_FOUND.
    #[error("FWP_E_FILTER_NOT_FOUND: filter {0} does not exist")]
    FilterNotFound(String),
    /// FWP_E_LAYER_NOT_FOUND.
    #[error("FWP_E_LAYER_NOT_FOUND: layer {0} does not exist")]
    LayerNotFound(String),
    /// FWP_E_PROVIDER_NOT_FOUND.
    #[error("FWP_E_PROVIDER_NOT_FOUND: provider {0} does not exist")]
    ProviderNotFound(String),
    /// FWP_E_PROVIDER_CONTEXT_NOT_FOUND: no provider context with that key or id.
    #[error("FWP_E_PROVIDER_CONTEXT_NOT_FOUND: provider context {0} does not exist")]
    ProviderContextNotFound(String),
    /// FWP_E_SUBLAYER_NOT_FOUND.
    #[error("FWP_E_SUBLAYER_NOT_FOUND: sublayer {0} does not exist")]
    SublayerNotFound(String),
    /// FWP_E_NOT_FOUND: generic lookup failure.
    #[error("FWP_E_NOT_FOUND: {0}")]
    NotFound(String),
    /// FWP_E_ALREADY_EXISTS: an object with that key exists.
    #[error("FWP_E_ALREADY_EXISTS: {kind} {key} already exists")]
    AlreadyExists {
        /// Object kind.
        kind: &'static str,
        /// Its key.
        key: Guid,
    },
    /// FWP_E_IN_USE: the object is still referenced.
    #[error("FWP_E_IN_USE: {kind} {key} is still referenced by {by}")]
    InUse {
        /// Object kind.
        kind: &'static str,
        /// Its key.
        key: Guid,
        /// What references it.
        by: String,
    },
    /// FWP_E_TXN_IN_PROGRESS: this session already has a transaction.
    #[error("FWP_E_TXN_IN_PROGRESS: a transaction is already in progress")]
    TxnInProgress,
    /// FWP_E_NO_TXN_IN_PROGRESS.
    #[error("FWP_E_NO_TXN_IN_PROGRESS: no transaction is in progress")]
    NoTxnInProgress,
    /// FWP_E_INCOMPATIBLE_TXN: a write inside a read-only transaction.
    #[error("FWP_E_INCOMPATIBLE_TXN: write operation in a read-only transaction")]
    IncompatibleTxn,
    /// FWP_E_TIMEOUT: the writer lock was not free within the session's wait limit (§11.2).
    #[error("FWP_E_TIMEOUT: the transaction lock was not free within {wait_ms} ms")]
    Timeout {
        /// The session's `txnWaitTimeoutInMSec` in force.
        wait_ms: u64,
    },
    /// E_FAIL: the host could not make a committing transaction's persistent objects durable
    /// (the store refused the write); the transaction was aborted.
    #[error("E_FAIL: persisting the transaction failed: {0}")]
    PersistFailed(String),
    /// FWP_E_DYNAMIC_SESSION_IN_PROGRESS: a persistent object added through a dynamic session.
    #[error("FWP_E_DYNAMIC_SESSION_IN_PROGRESS: a dynamic session cannot add the persistent {0}")]
    DynamicSessionInProgress(&'static str),
    /// FWP_E_LIFETIME_MISMATCH: a persistent object references a non-persistent one.
    #[error(
        "FWP_E_LIFETIME_MISMATCH: persistent {kind} may not reference non-persistent {target}"
    )]
    LifetimeMismatch {
        /// The referencing object's kind.
        kind: &'static str,
        /// The referenced object.
        target: String,
    },
    /// FWP_E_BUILTIN_OBJECT: built-in objects cannot be added or deleted.
    #[error("FWP_E_BUILTIN_OBJECT: {0} is built in")]
    BuiltinObject(String),
    /// FWP_E_INVALID_FLAGS.
    #[error("FWP_E_INVALID_FLAGS: {0}")]
    InvalidFlags(String),
    /// FWP_E_NULL_DISPLAY_NAME: `displayData.name` is required.
    #[error("FWP_E_NULL_DISPLAY_NAME: the {0} has no display name")]
    NullDisplayName(&'static str),
    /// FWP_E_INVALID_ACTION_TYPE.
    #[error("FWP_E_INVALID_ACTION_TYPE: {0:#x} is not a filter action type")]
    InvalidActionType(u32),
    /// FWP_E_INVALID_WEIGHT.
    #[error("FWP_E_INVALID_WEIGHT: {0}")]
    InvalidWeight(String),
    /// FWP_E_MATCH_TYPE_MISMATCH: the match type is not defined for the value's type.
    #[error("FWP_E_MATCH_TYPE_MISMATCH: {match_type} is not defined for {data_type} (condition {field})")]
    MatchTypeMismatch {
        /// The condition's field.
        field: String,
        /// Match type name.
        match_type: &'static str,
        /// Data type name.
        data_type: &'static str,
    },
    /// FWP_E_TYPE_MISMATCH: the condition value's type does not fit the field.
    #[error("FWP_E_TYPE_MISMATCH: condition {field} takes {expected}, got {got}")]
    TypeMismatch {
        /// The condition's field.
        field: String,
        /// The field's type.
        expected: &'static str,
        /// The value's type.
        got: &'static str,
    },
    /// FWP_E_INVALID_RANGE: low above high.
    #[error(
        "FWP_E_INVALID_RANGE: condition {0} has a range whose low bound exceeds its high bound"
    )]
    InvalidRange(String),
    /// FWP_E_INVALID_PARAMETER.
    #[error("FWP_E_INVALID_PARAMETER: {0}")]
    InvalidParameter(String),
    /// FWP_E_INCOMPATIBLE_LAYER: the callout is not applicable at the filter's layer.
    #[error("FWP_E_INCOMPATIBLE_LAYER: callout {callout} applies to {callout_layer}, not {layer}")]
    IncompatibleLayer {
        /// The callout.
        callout: String,
        /// Its applicable layer.
        callout_layer: String,
        /// The filter's layer.
        layer: String,
    },
    /// FWP_E_CALLOUT_NOTIFICATION_FAILED: the callout's notifyFn refused the filter.
    #[error(
        "FWP_E_CALLOUT_NOTIFICATION_FAILED: callout {callout} refused filter {filter} ({status})"
    )]
    CalloutNotificationFailed {
        /// The callout.
        callout: Guid,
        /// The filter.
        filter: Guid,
        /// What notifyFn returned.
        status: Status,
    },
    /// FWP_E_DUPLICATE_CONDITION (only in Vista emulation).
    #[error("FWP_E_DUPLICATE_CONDITION: condition {0} repeated")]
    DuplicateCondition(String),
}

impl FwpError {
    /// The user-mode `FWP_E_*` HRESULT.
    pub fn code(&self) -> u32 {
        match self {
            Self::CalloutNotFound(_) => 0x8032_0001,
            Self::ConditionNotFound { .. } => 0x8032_0002,
            Self::FilterNotFound(_) => 0x8032_0003,
            Self::LayerNotFound(_) => 0x8032_0004,
            Self::ProviderNotFound(_) => 0x8032_0005,
            Self::ProviderContextNotFound(_) => 0x8032_0006,
            Self::SublayerNotFound(_) => 0x8032_0007,
            Self::NotFound(_) => 0x8032_0008,
            Self::AlreadyExists { .. } => 0x8032_0009,
            Self::InUse { .. } => 0x8032_000A,
            Self::NoTxnInProgress => 0x8032_000D,
            Self::TxnInProgress => 0x8032_000E,
            Self::IncompatibleTxn => 0x8032_0011,
            Self::Timeout { .. } => 0x8032_0012,
            Self::PersistFailed(_) => 0x8000_4005,
            Self::DynamicSessionInProgress(_) => 0x8032_000B,
            Self::LifetimeMismatch { .. } => 0x8032_0016,
            Self::BuiltinObject(_) => 0x8032_0017,
            Self::InvalidFlags(_) => 0x8032_001E,
            Self::NullDisplayName(_) => 0x8032_0023,
            Self::InvalidActionType(_) => 0x8032_0024,
            Self::InvalidWeight(_) => 0x8032_0025,
            Self::MatchTypeMismatch { .. } => 0x8032_0026,
            Self::TypeMismatch { .. } => 0x8032_0027,
            Self::DuplicateCondition(_) => 0x8032_002A,
            Self::InvalidRange(_) => 0x8032_0020,
            Self::InvalidParameter(_) => 0x8032_0035,
            Self::IncompatibleLayer { .. } => 0x8032_0014,
            Self::CalloutNotificationFailed { .. } => 0x8032_0037,
        }
    }

    /// The WFP name of the code (`FWP_E_...`).
    pub fn code_name(&self) -> &'static str {
        match self {
            Self::CalloutNotFound(_) => "CALLOUT_NOT_FOUND",
            Self::ConditionNotFound { .. } => "CONDITION_NOT_FOUND",
            Self::FilterNotFound(_) => "FILTER_NOT_FOUND",
            Self::LayerNotFound(_) => "LAYER_NOT_FOUND",
            Self::ProviderNotFound(_) => "PROVIDER_NOT_FOUND",
            Self::ProviderContextNotFound(_) => "PROVIDER_CONTEXT_NOT_FOUND",
            Self::SublayerNotFound(_) => "SUBLAYER_NOT_FOUND",
            Self::NotFound(_) => "NOT_FOUND",
            Self::AlreadyExists { .. } => "ALREADY_EXISTS",
            Self::InUse { .. } => "IN_USE",
            Self::NoTxnInProgress => "NO_TXN_IN_PROGRESS",
            Self::TxnInProgress => "TXN_IN_PROGRESS",
            Self::IncompatibleTxn => "INCOMPATIBLE_TXN",
            Self::Timeout { .. } => "TIMEOUT",
            Self::PersistFailed(_) => "E_FAIL",
            Self::DynamicSessionInProgress(_) => "DYNAMIC_SESSION_IN_PROGRESS",
            Self::LifetimeMismatch { .. } => "LIFETIME_MISMATCH",
            Self::BuiltinObject(_) => "BUILTIN_OBJECT",
            Self::InvalidFlags(_) => "INVALID_FLAGS",
            Self::NullDisplayName(_) => "NULL_DISPLAY_NAME",
            Self::InvalidActionType(_) => "INVALID_ACTION_TYPE",
            Self::InvalidWeight(_) => "INVALID_WEIGHT",
            Self::MatchTypeMismatch { .. } => "MATCH_TYPE_MISMATCH",
            Self::TypeMismatch { .. } => "TYPE_MISMATCH",
            Self::DuplicateCondition(_) => "DUPLICATE_CONDITION",
            Self::InvalidRange(_) => "INVALID_RANGE",
            Self::InvalidParameter(_) => "INVALID_PARAMETER",
            Self::IncompatibleLayer { .. } => "INCOMPATIBLE_LAYER",
            Self::CalloutNotificationFailed { .. } => "CALLOUT_NOTIFICATION_FAILED",
        }
    }

    /// The kernel-mode twin (`STATUS_FWP_*` = 0xC022 and the same low 16 bits).
    pub fn kernel_status(&self) -> Status {
        Status(0xC022_0000 | (self.code() & 0xFFFF))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn informational_and_warning_statuses_classify_like_nt_success() {
        assert!(Status::OBJECT_NAME_EXISTS.is_success());
        assert!(Status::PENDING.is_success());
        assert!(!Status::DEVICE_BUSY.is_success());
        assert!(!Status::FWP_ALREADY_EXISTS.is_success());
    }

    #[test]
    fn kernel_twin_keeps_low_bits() {
        let e = FwpError::CalloutNotificationFailed {
            callout: Guid::NULL,
            filter: Guid::NULL,
            status: Status::UNSUCCESSFUL,
        };
        assert_eq!(e.code(), 0x8032_0037);
        assert_eq!(e.kernel_status(), Status::FWP_CALLOUT_NOTIFICATION_FAILED);
        assert_eq!(FwpError::InvalidWeight(String::new()).code(), 0x8032_0025);
    }
}
