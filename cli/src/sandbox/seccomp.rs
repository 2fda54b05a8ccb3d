//! The sandbox's seccomp filters, built with [`seccompiler`] (rust-vmm's, as Firecracker uses) and handed to
//! bubblewrap (`--add-seccomp-fd`), which installs them just before it starts the program.
//!
//! Everything not listed is allowed (Python needs most of the kernel); what is listed is what a program under test
//! never needs and an escape or a denial of service would: watching or changing other processes (ptrace,
//! process_vm_*), kernel interfaces with a history of holes (io_uring, bpf, perf_event_open, userfaultfd, keyrings),
//! mounting and namespaces (unshare, setns, the mount API, namespace flags on clone). They fail with EPERM.
//! `clone3` fails with ENOSYS instead, as container runtimes do: its flags sit in memory a filter cannot read, and
//! glibc falls back to `clone` (whose flags the filter checks) only on ENOSYS.

use std::collections::BTreeMap;

use seccompiler::{BpfProgram, SeccompAction, SeccompCmpArgLen, SeccompCmpOp, SeccompCondition, SeccompFilter, SeccompRule, TargetArch};

/// Syscalls refused outright.
const DENIED: &[i64] = &[
    libc::SYS_ptrace,
    libc::SYS_process_vm_readv,
    libc::SYS_process_vm_writev,
    libc::SYS_io_uring_setup,
    libc::SYS_io_uring_enter,
    libc::SYS_io_uring_register,
    libc::SYS_keyctl,
    libc::SYS_add_key,
    libc::SYS_request_key,
    libc::SYS_mount,
    libc::SYS_umount2,
    libc::SYS_pivot_root,
    libc::SYS_chroot,
    libc::SYS_unshare,
    libc::SYS_setns,
    libc::SYS_bpf,
    libc::SYS_perf_event_open,
    libc::SYS_userfaultfd,
    libc::SYS_kexec_load,
    libc::SYS_kexec_file_load,
    libc::SYS_init_module,
    libc::SYS_finit_module,
    libc::SYS_delete_module,
    libc::SYS_open_by_handle_at,
    libc::SYS_fsopen,
    libc::SYS_fsmount,
    libc::SYS_fsconfig,
    libc::SYS_move_mount,
    libc::SYS_open_tree,
    libc::SYS_mount_setattr,
    libc::SYS_pidfd_getfd,
    libc::SYS_process_madvise,
    libc::SYS_name_to_handle_at,
    libc::SYS_acct,
    libc::SYS_swapon,
    libc::SYS_swapoff,
    libc::SYS_reboot,
    libc::SYS_syslog,
];

/// Namespace flags `clone` may not carry.
const NAMESPACE_FLAGS: [u64; 7] = [
    libc::CLONE_NEWUSER as u64,
    libc::CLONE_NEWNS as u64,
    libc::CLONE_NEWPID as u64,
    libc::CLONE_NEWNET as u64,
    libc::CLONE_NEWIPC as u64,
    libc::CLONE_NEWUTS as u64,
    libc::CLONE_NEWCGROUP as u64,
];

/// Why a filter could not be built (an architecture seccompiler does not know).
#[derive(Debug, thiserror::Error)]
#[error("no seccomp filter for this machine ({0})")]
pub struct FilterError(String);

fn arch() -> Result<TargetArch, FilterError> {
    std::env::consts::ARCH.try_into().map_err(|e| FilterError(format!("{}: {e:?}", std::env::consts::ARCH)))
}

fn program(rules: BTreeMap<i64, Vec<SeccompRule>>, errno: i32) -> Result<BpfProgram, FilterError> {
    let filter = SeccompFilter::new(rules, SeccompAction::Allow, SeccompAction::Errno(errno as u32), arch()?)
        .map_err(|e| FilterError(e.to_string()))?;
    filter.try_into().map_err(|e: seccompiler::BackendError| FilterError(e.to_string()))
}

/// The filters as the bytes bubblewrap reads (`struct sock_filter` in native layout): EPERM for the denied calls
/// and namespace flags on `clone`, ENOSYS for `clone3`.
pub fn filters() -> Result<Vec<Vec<u8>>, FilterError> {
    let mut denied: BTreeMap<i64, Vec<SeccompRule>> = DENIED.iter().map(|&nr| (nr, vec![])).collect();
    let flag_rules = NAMESPACE_FLAGS
        .iter()
        .map(|&flag| {
            let cond = SeccompCondition::new(0, SeccompCmpArgLen::Qword, SeccompCmpOp::MaskedEq(flag), flag)
                .map_err(|e| FilterError(e.to_string()))?;
            SeccompRule::new(vec![cond]).map_err(|e| FilterError(e.to_string()))
        })
        .collect::<Result<Vec<_>, _>>()?;
    denied.insert(libc::SYS_clone, flag_rules);
    let clone3 = BTreeMap::from([(libc::SYS_clone3, vec![])]);
    Ok([program(denied, libc::EPERM)?, program(clone3, libc::ENOSYS)?].iter().map(to_bytes).collect())
}

fn to_bytes(program: &BpfProgram) -> Vec<u8> {
    let mut out = Vec::with_capacity(program.len() * 8);
    for ins in program {
        out.extend_from_slice(&ins.code.to_ne_bytes());
        out.push(ins.jt);
        out.push(ins.jf);
        out.extend_from_slice(&ins.k.to_ne_bytes());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_filters_build_for_this_machine() {
        let f = filters().unwrap();
        assert_eq!(f.len(), 2);
        // Whole `struct sock_filter`s, and more than the architecture check alone.
        assert!(f.iter().all(|p| p.len() % 8 == 0 && p.len() > 8 * 4), "{:?}", f.iter().map(Vec::len).collect::<Vec<_>>());
    }
}
