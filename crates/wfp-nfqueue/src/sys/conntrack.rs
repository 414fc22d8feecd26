//! The conntrack netlink socket's extra syscall: joining a multicast group (conntrack events).
//! Opening, binding, sending and receiving go through the shared [`super::Op`]s.

use std::os::fd::RawFd;

use super::{SysResult, SOL_NETLINK};

/// `NETLINK_ADD_MEMBERSHIP` (`linux/netlink.h`).
const NETLINK_ADD_MEMBERSHIP: libc::c_int = 1;

/// Joins netlink multicast group `group` (e.g. `NFNLGRP_CONNTRACK_DESTROY`, 3) on socket `fd`.
pub(crate) fn add_membership(fd: RawFd, group: u32) -> SysResult {
    let group = libc::c_int::try_from(group).map_err(|_| super::SysError {
        call: "setsockopt(NETLINK_ADD_MEMBERSHIP)",
        errno: libc::EINVAL,
    })?;
    super::setsockopt_int(fd, SOL_NETLINK, NETLINK_ADD_MEMBERSHIP, group)
}
