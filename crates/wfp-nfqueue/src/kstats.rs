//! The kernel's own per-queue counters, from `/proc/net/netfilter/nfnetlink_queue`.
//!
//! These complement [`crate::QueueStats`]: queue-full drops happen before a packet gets an id,
//! so only the kernel sees them.

use crate::error::NfqError;

/// One line of `/proc/net/netfilter/nfnetlink_queue`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub struct KernelQueueStats {
    /// The queue number.
    pub queue_num: u16,
    /// Netlink port id of the socket that owns the queue.
    pub portid: u32,
    /// Packets currently waiting for a verdict.
    pub waiting: u32,
    /// Copy mode (0 none, 1 meta, 2 packet).
    pub copy_mode: u8,
    /// Copy range.
    pub copy_range: u32,
    /// Packets dropped because the queue was full (without `fail_open`; with it they are
    /// accepted and not counted anywhere).
    pub queue_dropped: u32,
    /// Packets dropped because the socket could not take them (without `fail_open`).
    pub user_dropped: u32,
    /// The last packet id assigned.
    pub id_sequence: u32,
}

/// Parses the file's text; malformed lines are skipped.
pub fn parse_kernel_queue_stats(text: &str) -> Vec<KernelQueueStats> {
    text.lines()
        .filter_map(|line| {
            let mut fields = line.split_whitespace();
            let mut next = || fields.next()?.parse::<u32>().ok();
            Some(KernelQueueStats {
                queue_num: u16::try_from(next()?).ok()?,
                portid: next()?,
                waiting: next()?,
                copy_mode: u8::try_from(next()?).ok()?,
                copy_range: next()?,
                queue_dropped: next()?,
                user_dropped: next()?,
                id_sequence: next()?,
            })
        })
        .collect()
}

/// Reads the counters of every bound queue in the calling thread's network namespace.
pub fn kernel_queue_stats() -> Result<Vec<KernelQueueStats>, NfqError> {
    const PATH: &str = "/proc/thread-self/net/netfilter/nfnetlink_queue";
    let text = std::fs::read_to_string(PATH).map_err(|source| NfqError::Syscall {
        call: "read /proc/thread-self/net/netfilter/nfnetlink_queue",
        source,
    })?;
    Ok(parse_kernel_queue_stats(&text))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_proc_lines_and_skips_garbage() {
        let text = "    0  12345     3 2 65535     7     1      120  1\n\
                    garbage line\n\
                    70000 1 1 1 1 1 1 1 1\n\
                    65535     1     0 1     0     0     0        0  1\n";
        let stats = parse_kernel_queue_stats(text);
        assert_eq!(
            stats,
            vec![
                KernelQueueStats {
                    queue_num: 0,
                    portid: 12345,
                    waiting: 3,
                    copy_mode: 2,
                    copy_range: 65535,
                    queue_dropped: 7,
                    user_dropped: 1,
                    id_sequence: 120,
                },
                KernelQueueStats {
                    queue_num: 65535,
                    portid: 1,
                    copy_mode: 1,
                    ..KernelQueueStats::default()
                },
            ]
        );
    }
}
