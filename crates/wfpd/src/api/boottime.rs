//! The API's part in boot-time filters (§11.3): refusing at add what the kernel table cannot
//! express, and rewriting the ruleset file after a commit that changed boot-time filters.

use super::conn::Failure;
use super::Shared;
use crate::boottime::{BootError, BootRulesError};

impl From<BootError> for Failure {
    fn from(e: BootError) -> Self {
        Self::new(400, e.code(), e.name(), e.to_string())
    }
}

/// Rewrites the boot-time ruleset file if the committed boot-time filters changed. The commit
/// already stands (the store has it), so a failed write is answered as E_FAIL and logged; the
/// next successful refresh, or wfpd's next start, writes the file again.
pub(super) fn refresh(shared: &Shared) -> Result<(), Failure> {
    let Some(rules) = shared.boottime.get() else {
        return Ok(());
    };
    rules.refresh(&shared.engine).map(drop).map_err(|e: BootRulesError| {
        tracing::error!(file = %rules.path().display(), error = %e, "boot-time ruleset not written");
        Failure::new(500, 0x8000_4005, "E_FAIL", format!("committed, but {e}"))
    })
}
