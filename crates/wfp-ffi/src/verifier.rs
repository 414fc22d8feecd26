//! The user-space Driver Verifier (beyond WFP): what the runtime saw a driver do wrong.
//!
//! The runtime records every pool allocation (tag, size, call site), MDL and NET_BUFFER_LIST it
//! hands out, the IRQL and spin locks of each callback, and the flow contexts and callouts a driver
//! leaves behind. [`Finding`]s are reported at unload (and on demand by
//! [`crate::Driver::findings`]); `wfpctl replay --verify` turns any finding into an error.

use std::collections::HashMap;
use std::fmt;

/// One thing the Verifier caught.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Finding {
    /// Pool memory still allocated at unload.
    LeakedPool {
        /// The pool tag as its four characters in memory order (WinDbg's `!poolused` form).
        tag: String,
        /// Bytes.
        size: usize,
        /// `file:line` of the allocation when the driver was built with the headers' call-site
        /// macros, else `"?"`.
        site: String,
    },
    /// An MDL from IoAllocateMdl still allocated at unload.
    LeakedMdl {
        /// Bytes it describes.
        byte_count: u32,
    },
    /// A pointer freed that the pool never handed out or already took back.
    DoubleFree {
        /// What was freed.
        what: &'static str,
        /// The pointer, as a number.
        address: usize,
    },
    /// ExFreePoolWithTag with a tag other than the allocation's.
    TagMismatch {
        /// Tag at allocation.
        allocated: String,
        /// Tag given to the free.
        freed: String,
    },
    /// A callback returned at another IRQL than it was entered at, or holding spin locks.
    UnbalancedIrql {
        /// Which callback (`classifyFn`, `DriverEntry`, ...).
        callback: &'static str,
        /// IRQL on entry.
        entry: u8,
        /// IRQL on return.
        exit: u8,
        /// Spin locks still held on return (released by the runtime).
        locks_held: usize,
    },
    /// A spin lock released by a thread that does not hold it, or acquired twice by one thread.
    SpinLockMisuse {
        /// What happened.
        what: &'static str,
    },
    /// A function called above the IRQL it allows.
    IrqlTooHigh {
        /// The function.
        function: &'static str,
        /// The IRQL it was called at.
        irql: u8,
    },
    /// Flow contexts the driver left associated at unload (the host removed them).
    FlowContextsLeft {
        /// How many.
        count: usize,
    },
    /// Callouts still registered after the driver's unload routine (the host unregistered them).
    CalloutsLeftRegistered {
        /// How many.
        count: usize,
    },
    /// Engine handles still open after the unload routine (the host closed them).
    EngineHandlesLeftOpen {
        /// How many.
        count: usize,
    },
    /// A call the runtime refused because an argument was a handle it never gave out.
    BadHandle {
        /// The function.
        function: &'static str,
    },
    /// A wait (KeWaitForSingleObject with a nonzero timeout, KeDelayExecutionThread) at an IRQL
    /// above APC_LEVEL (a bugcheck on Windows; the wait is still performed).
    WaitAtRaisedIrql {
        /// The function.
        function: &'static str,
        /// The IRQL it was called at.
        irql: u8,
    },
    /// Kernel objects the driver still held after its unload routine: open handles, referenced
    /// thread objects, work items never freed, lookaside lists never deleted, NBL pools, NBLs,
    /// generic objects, WDF objects, timers still set (cancelled by the host).
    ObjectsLeft {
        /// What kind of object.
        what: &'static str,
        /// How many.
        count: usize,
    },
    /// System threads or work items of the driver still running after its unload routine: the
    /// host waited for them (bounded by the unload timeout).
    StillRunning {
        /// How many remained when the host stopped waiting (0 = they finished while it waited).
        count: usize,
    },
    /// The unload could not finish by its deadline (the image stays mapped; the driver is
    /// reported hung).
    UnloadIncomplete {
        /// What was left.
        what: &'static str,
        /// How many.
        count: usize,
    },
    /// An out-of-band FwpsStreamInjectAsync0 waited as long as it may for a stream classifyFn of
    /// its flow to return (wfp-reference §9.2: the injection goes into the stream after the
    /// indication in progress) and went ahead while it still ran — typically a classifyFn that
    /// waits for the injecting thread. The injection may land inside that indication.
    StreamInjectWaitExpired {
        /// The flow handle (`flowId`) of the injection.
        flow: u64,
        /// How long the injection waited, in milliseconds.
        waited_ms: u64,
    },
    /// NT_ASSERT / ASSERT failed, or a list entry was corrupt.
    Assertion {
        /// The text.
        message: String,
    },
}

impl fmt::Display for Finding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::LeakedPool { tag, size, site } => {
                write!(f, "leaked pool allocation: tag '{tag}', {size} bytes, allocated at {site}")
            }
            Self::LeakedMdl { byte_count } => write!(f, "leaked MDL describing {byte_count} bytes"),
            Self::DoubleFree { what, address } => {
                write!(f, "{what} of {address:#x}, which is not allocated (double free?)")
            }
            Self::TagMismatch { allocated, freed } => {
                write!(f, "ExFreePoolWithTag tag '{freed}' on memory allocated with tag '{allocated}'")
            }
            Self::UnbalancedIrql {
                callback,
                entry,
                exit,
                locks_held,
            } => write!(
                f,
                "{callback} returned at IRQL {exit} (entered at {entry}) holding {locks_held} spin lock(s)"
            ),
            Self::SpinLockMisuse { what } => write!(f, "spin lock misuse: {what}"),
            Self::IrqlTooHigh { function, irql } => {
                write!(f, "{function} called at IRQL {irql}, above what it allows")
            }
            Self::FlowContextsLeft { count } => write!(
                f,
                "{count} flow context(s) still associated after the unload routine (removed by the host)"
            ),
            Self::CalloutsLeftRegistered { count } => write!(
                f,
                "{count} callout(s) still registered after the unload routine (unregistered by the host)"
            ),
            Self::EngineHandlesLeftOpen { count } => write!(
                f,
                "{count} engine handle(s) still open after the unload routine (closed by the host)"
            ),
            Self::BadHandle { function } => write!(f, "{function}: a handle the runtime never gave out"),
            Self::WaitAtRaisedIrql { function, irql } => {
                write!(f, "{function} waited at IRQL {irql} (only a zero-timeout poll is allowed above APC_LEVEL)")
            }
            Self::ObjectsLeft { what, count } => {
                write!(f, "{count} {what} still held after the unload routine")
            }
            Self::StillRunning { count: 0 } => write!(
                f,
                "system threads or work items were still running after the unload routine (the host waited for them)"
            ),
            Self::StillRunning { count } => write!(
                f,
                "{count} system thread(s) or work item(s) still running when the unload wait ended"
            ),
            Self::UnloadIncomplete { what, count } => {
                write!(f, "unload incomplete: {count} {what}")
            }
            Self::StreamInjectWaitExpired { flow, waited_ms } => write!(
                f,
                "FwpsStreamInjectAsync0 on flow {flow}: a stream classifyFn of the flow still ran after {waited_ms} ms (does it wait for the injecting thread?); the injection went ahead"
            ),
            Self::Assertion { message } => write!(f, "assertion: {message}"),
        }
    }
}

/// A live pool block.
#[derive(Clone, Copy, Debug)]
pub(crate) struct PoolBlock {
    pub(crate) tag: u32,
    pub(crate) size: usize,
    /// `__FILE__` pointer (valid while the driver is loaded) and line, or 0.
    pub(crate) file: usize,
    pub(crate) line: i32,
    /// The driver that allocated it (its index in the host).
    pub(crate) driver: usize,
}

/// What the runtime tracks per driver host.
#[derive(Debug, Default)]
pub(crate) struct Tracker {
    pub(crate) pool: HashMap<usize, PoolBlock>,
    /// MDL address → (byte count, driver index).
    pub(crate) mdls: HashMap<usize, (u32, usize)>,
    /// MDLs NdisRetreatNetBufferDataStart allocated: MDL address → its buffer.
    pub(crate) retreat_mdls: HashMap<usize, usize>,
    /// (driver index, finding).
    pub(crate) findings: Vec<(usize, Finding)>,
}

/// A pool tag as its characters in memory order (`'gaT1'` → `1Tag`).
pub(crate) fn tag_string(tag: u32) -> String {
    tag.to_le_bytes()
        .iter()
        .map(|&b| {
            if b.is_ascii_graphic() || b == b' ' {
                char::from(b)
            } else {
                '.'
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tags_print_in_memory_order() {
        // GCC gives 'gaT1' the value 0x67615431, as MSVC does.
        assert_eq!(tag_string(0x6761_5431), "1Tag");
        assert_eq!(tag_string(0), "....");
    }
}
