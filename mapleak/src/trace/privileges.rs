//! The privileges a trace needs: checked before anything is loaded, and cut down to what the rest
//! of the trace still uses once the probes are attached.
//!
//! Measured on Linux 6.18 (README, "Privileges"):
//! - Loading the programs and maps takes CAP_BPF and CAP_PERFMON; the syscall tracepoints' perf
//!   events CAP_PERFMON. CAP_SYS_ADMIN passes each of those checks on its own.
//! - A `uprobe.multi` link (Linux 6.6+, what mapleak uses where the kernel has it) is created with
//!   no capability check at all. A perf-event uprobe (older kernels) takes CAP_SYS_ADMIN: the fix
//!   for CVE-2025-38466 (Linux 6.16, also in the 5.10–6.15 stable kernels) made CAP_PERFMON
//!   insufficient.
//! - The target's executable, mappings, RSS and memory are behind ptrace access, which takes
//!   CAP_SYS_PTRACE when the target belongs to another user or holds capabilities mapleak lacks.
//! - tracefs is root's alone (mode 0700): any other uid reads the tracepoint ids only with
//!   CAP_DAC_READ_SEARCH.

use std::{fmt, fs, io};

use caps::{CapSet, Capability, CapsHashSet};

use super::{TraceError, loader::UprobeMode};

/// One tracepoint id that `Loaded::attach_syscalls` reads: if it can be opened, all of them can.
const TRACEFS_EVENT_ID: &str = "/sys/kernel/tracing/events/syscalls/sys_enter_mmap/id";

/// A capability set as `/proc/PID/status` prints it (`CapEff:` and the like): bit n is capability
/// n, unknown ones included.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CapMask(pub u64);

impl CapMask {
    pub fn of(caps: &[Capability]) -> Self {
        Self(caps.iter().fold(0, |mask, cap| mask | cap.bitmask()))
    }

    /// The `field` line (`CapEff`, `CapPrm`, …) of a `/proc/PID/status` text.
    pub fn from_status(status: &str, field: &str) -> Option<Self> {
        let value = status
            .lines()
            .find_map(|line| line.strip_prefix(field)?.strip_prefix(':'))?;
        u64::from_str_radix(value.trim(), 16).ok().map(Self)
    }

    pub fn has(self, cap: Capability) -> bool {
        self.0 & cap.bitmask() != 0
    }

    fn intersect(self, other: Self) -> Self {
        Self(self.0 & other.0)
    }

    /// The capabilities the `caps` crate can name (it knows every one up to Linux 5.9's).
    fn to_set(self) -> CapsHashSet {
        caps::all().into_iter().filter(|c| self.has(*c)).collect()
    }
}

/// Something a trace does that needs a capability the process lacks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Need {
    /// Loading the eBPF programs and creating their maps (without CAP_SYS_ADMIN).
    LoadPrograms,
    /// Tracing programs and the tracepoints' perf events (without CAP_SYS_ADMIN).
    TracePerf,
    /// perf_event_open of a uprobe, on kernels without `uprobe.multi` links: at attach, and
    /// whenever the governor attaches a group again.
    AttachUprobes,
    /// ptrace access to this pid: its executable, mappings, RSS and memory.
    ReadTarget(u32),
    /// The syscall tracepoints' ids in tracefs.
    ReadTracefs,
}

impl Need {
    pub fn capability(self) -> Capability {
        match self {
            Need::LoadPrograms => Capability::CAP_BPF,
            Need::TracePerf => Capability::CAP_PERFMON,
            Need::AttachUprobes => Capability::CAP_SYS_ADMIN,
            Need::ReadTarget(_) => Capability::CAP_SYS_PTRACE,
            Need::ReadTracefs => Capability::CAP_DAC_READ_SEARCH,
        }
    }

    fn purpose(self) -> String {
        match self {
            Need::LoadPrograms => "to load eBPF programs".into(),
            Need::TracePerf => "to trace with them".into(),
            Need::AttachUprobes => {
                "to attach uprobes, which this kernel does only through perf events".into()
            }
            Need::ReadTarget(pid) => {
                format!("to read pid {pid}, another user's or a more privileged process")
            }
            Need::ReadTracefs => "to read tracefs, which only root may read here".into(),
        }
    }
}

/// What a trace lacks, never empty; displayed as the one sentence of
/// [`TraceError::Privileges`].
#[derive(Debug, PartialEq, Eq)]
pub struct Missing(pub Vec<Need>);

impl fmt::Display for Missing {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let parts: Vec<String> = self
            .0
            .iter()
            .map(|need| format!("{} ({})", need.capability(), need.purpose()))
            .collect();
        let (list, grant) = match parts.split_last() {
            Some((last, init)) if !init.is_empty() => (
                format!("{} and {last}", init.join(", ")),
                "these capabilities",
            ),
            _ => (parts.concat(), "that capability"),
        };
        write!(
            f,
            "tracing needs {list}: run mapleak as root or grant it {grant}"
        )
    }
}

/// What the kernel refuses with the privileges held now, found by asking it: whether ptrace
/// access or a file's mode lets a capability-less process through depends on uids and on what
/// the target holds, which only the kernel judges exactly.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Access {
    /// process_vm_readv of the target fails with EPERM.
    pub target_denied: bool,
    /// Opening a tracepoint id in tracefs fails with EACCES.
    pub tracefs_denied: bool,
}

/// The capabilities a trace lacks, given the effective set, how uprobes attach here and what
/// the kernel refuses now. Access refused although its capability is held is not for a
/// capability to fix (an LSM, say): the step that fails later says what it is.
pub fn missing(effective: CapMask, mode: UprobeMode, access: Access, pid: u32) -> Vec<Need> {
    let mut needs = Vec::new();
    if !effective.has(Capability::CAP_SYS_ADMIN) {
        match mode {
            UprobeMode::Perf => needs.push(Need::AttachUprobes),
            UprobeMode::Multi => {
                if !effective.has(Capability::CAP_BPF) {
                    needs.push(Need::LoadPrograms);
                }
                if !effective.has(Capability::CAP_PERFMON) {
                    needs.push(Need::TracePerf);
                }
            }
        }
    }
    if access.target_denied && !effective.has(Capability::CAP_SYS_PTRACE) {
        needs.push(Need::ReadTarget(pid));
    }
    if access.tracefs_denied && !effective.has(Capability::CAP_DAC_READ_SEARCH) {
        needs.push(Need::ReadTracefs);
    }
    needs
}

/// Fails with one sentence naming every capability a trace of `pid` lacks.
pub fn check(pid: u32) -> Result<(), TraceError> {
    let access = Access {
        target_denied: target_denied(pid),
        tracefs_denied: tracefs_denied(),
    };
    let needs = missing(effective(), UprobeMode::detect(), access, pid);
    if needs.is_empty() {
        Ok(())
    } else {
        Err(TraceError::Privileges(Missing(needs)))
    }
}

/// This thread's effective set: capabilities belong to threads, and this is the one that loads
/// and attaches.
fn effective() -> CapMask {
    let status = fs::read_to_string("/proc/thread-self/status").unwrap_or_default();
    CapMask::from_status(&status, "CapEff").unwrap_or_default()
}

/// Reads one byte at address 0 of the target: the kernel checks ptrace access first (EPERM) and
/// only then finds nothing mapped there (EFAULT), so nothing of the target is read either way.
fn target_denied(pid: u32) -> bool {
    let mut byte = 0u8;
    let local = libc::iovec {
        iov_base: (&mut byte as *mut u8).cast(),
        iov_len: 1,
    };
    let remote = libc::iovec {
        iov_base: std::ptr::null_mut(),
        iov_len: 1,
    };
    // SAFETY: `local` describes `byte`, which outlives the call; the remote range is only read.
    let n = unsafe { libc::process_vm_readv(pid as libc::pid_t, &local, 1, &remote, 1, 0) };
    n < 0 && io::Error::last_os_error().raw_os_error() == Some(libc::EPERM)
}

/// An absent tracefs is not a matter of privileges: `Loaded::attach_syscalls` notes it.
fn tracefs_denied() -> bool {
    matches!(fs::File::open(TRACEFS_EVENT_ID), Err(e) if e.kind() == io::ErrorKind::PermissionDenied)
}

/// What the trace still uses of `held` once every probe is attached: CAP_SYS_PTRACE for the
/// reads of the target at every interval (process_vm_readv, smaps_rollup), CAP_SYS_ADMIN while
/// the governor may attach a probe group again through perf events (`reattach` in
/// [`UprobeMode::Perf`]; a `uprobe.multi` link needs none), and, for a report written to a file
/// (`report_file`), CAP_DAC_OVERRIDE and CAP_FOWNER: the report replaces its file by a rename in
/// that file's directory at the very end, which may be another user's. Maps, the ring buffer
/// and detaching need none: they work on file descriptors already open.
pub fn kept_after_attach(
    held: CapMask,
    reattach: bool,
    mode: UprobeMode,
    report_file: bool,
) -> CapMask {
    let mut kept = vec![Capability::CAP_SYS_PTRACE];
    if reattach && mode == UprobeMode::Perf {
        kept.push(Capability::CAP_SYS_ADMIN);
    }
    if report_file {
        kept.extend([Capability::CAP_DAC_OVERRIDE, Capability::CAP_FOWNER]);
    }
    held.intersect(CapMask::of(&kept))
}

/// Gives up every capability the rest of the trace does not use, for good (see
/// [`kept_after_attach`]). Called on the thread that attaches and reads; threads started later
/// inherit its sets.
pub fn drop_after_attach(reattach: bool, mode: UprobeMode, report_file: bool) {
    if let Err(e) = drop_to(kept_after_attach(effective(), reattach, mode, report_file)) {
        log::warn!("the capabilities not needed after attaching could not be dropped: {e}");
    }
}

fn drop_to(kept: CapMask) -> Result<(), caps::errors::CapsError> {
    let kept = kept.to_set();
    // The bounding set first, while CAP_SETPCAP (needed to shrink it) is still held: it caps
    // what uid 0 would get back from an execve.
    if caps::has_cap(None, CapSet::Effective, Capability::CAP_SETPCAP)? {
        for cap in caps::read(None, CapSet::Bounding)?.difference(&kept) {
            caps::drop(None, CapSet::Bounding, *cap)?;
        }
    }
    caps::clear(None, CapSet::Ambient)?;
    caps::clear(None, CapSet::Inheritable)?;
    caps::set(None, CapSet::Effective, &kept)?;
    caps::set(None, CapSet::Permitted, &kept)
}

#[cfg(test)]
mod tests {
    use super::*;
    use Capability::*;

    const ROOT_STATUS: &str = "Name:\tmapleak\nCapInh:\t0000000000000000\nCapPrm:\t000001ffffffffff\nCapEff:\t000001ffffffffff\nCapBnd:\t000001ffffffffff\nCapAmb:\t0000000000000000\n";

    #[test]
    fn reads_capability_masks_from_proc_status() {
        assert_eq!(
            CapMask::from_status(ROOT_STATUS, "CapEff"),
            Some(CapMask(0x1ff_ffff_ffff))
        );
        assert_eq!(
            CapMask::from_status(ROOT_STATUS, "CapInh"),
            Some(CapMask(0))
        );
        // setpriv --ambient-caps +sys_admin,+sys_ptrace,+dac_read_search as measured.
        let user = CapMask::from_status("CapEff:\t0000000000280004\n", "CapEff").unwrap();
        assert!(user.has(CAP_SYS_ADMIN) && user.has(CAP_SYS_PTRACE));
        assert!(user.has(CAP_DAC_READ_SEARCH) && !user.has(CAP_BPF));
        assert_eq!(
            user,
            CapMask::of(&[CAP_SYS_ADMIN, CAP_SYS_PTRACE, CAP_DAC_READ_SEARCH])
        );
        // CAP_BPF and CAP_PERFMON sit in the upper word.
        assert_eq!(
            CapMask::of(&[CAP_BPF, CAP_PERFMON]),
            CapMask(0xc0_0000_0000)
        );
        assert_eq!(CapMask::from_status("CapEff:\tzz\n", "CapEff"), None);
        assert_eq!(CapMask::from_status("CapEffX:\t1\n", "CapEff"), None);
        assert_eq!(CapMask::from_status("", "CapEff"), None);
    }

    #[test]
    fn our_own_status_parses() {
        let status = fs::read_to_string("/proc/thread-self/status").unwrap();
        for field in ["CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb"] {
            assert!(CapMask::from_status(&status, field).is_some(), "{field}");
        }
    }

    fn mask(caps: &[Capability]) -> CapMask {
        CapMask::of(caps)
    }

    #[test]
    fn uprobes_need_bpf_and_perfmon_or_sys_admin_by_mode() {
        let open = Access::default();
        use UprobeMode::*;
        for mode in [Multi, Perf] {
            assert_eq!(missing(mask(&[CAP_SYS_ADMIN]), mode, open, 7), vec![]);
        }
        // uprobe.multi links: loading and tracing is all they need.
        assert_eq!(
            missing(mask(&[CAP_BPF, CAP_PERFMON]), Multi, open, 7),
            vec![]
        );
        assert_eq!(
            missing(CapMask(0), Multi, open, 7),
            vec![Need::LoadPrograms, Need::TracePerf]
        );
        assert_eq!(
            missing(mask(&[CAP_BPF]), Multi, open, 7),
            vec![Need::TracePerf]
        );
        // Perf-event uprobes: the kernel refuses them to CAP_BPF + CAP_PERFMON (EACCES).
        assert_eq!(
            missing(mask(&[CAP_BPF, CAP_PERFMON, CAP_SYS_PTRACE]), Perf, open, 7),
            vec![Need::AttachUprobes]
        );
    }

    #[test]
    fn ptrace_and_tracefs_are_needed_only_where_the_kernel_refuses() {
        let admin = mask(&[CAP_SYS_ADMIN]);
        let refused = Access {
            target_denied: true,
            tracefs_denied: true,
        };
        let multi = UprobeMode::Multi;
        assert_eq!(
            missing(admin, multi, refused, 42),
            vec![Need::ReadTarget(42), Need::ReadTracefs]
        );
        let all = mask(&[CAP_BPF, CAP_PERFMON, CAP_SYS_PTRACE, CAP_DAC_READ_SEARCH]);
        assert_eq!(missing(all, multi, refused, 42), vec![]);
        let tracefs_only = Access {
            tracefs_denied: true,
            ..Access::default()
        };
        assert_eq!(
            missing(
                mask(&[CAP_SYS_ADMIN, CAP_SYS_PTRACE]),
                multi,
                tracefs_only,
                42
            ),
            vec![Need::ReadTracefs]
        );
        assert_eq!(
            missing(CapMask(0), UprobeMode::Perf, tracefs_only, 42),
            vec![Need::AttachUprobes, Need::ReadTracefs]
        );
    }

    #[test]
    fn the_error_is_one_sentence_naming_each_missing_capability() {
        let one = Missing(vec![Need::AttachUprobes]).to_string();
        assert_eq!(
            one,
            "tracing needs CAP_SYS_ADMIN (to attach uprobes, which this kernel does only through perf events): run mapleak as root or grant it that capability"
        );
        let two = Missing(vec![Need::LoadPrograms, Need::TracePerf]).to_string();
        assert_eq!(
            two,
            "tracing needs CAP_BPF (to load eBPF programs) and CAP_PERFMON (to trace with them): run mapleak as root or grant it these capabilities"
        );
        let three = Missing(vec![
            Need::LoadPrograms,
            Need::ReadTarget(9),
            Need::ReadTracefs,
        ])
        .to_string();
        assert!(three.starts_with(
            "tracing needs CAP_BPF (to load eBPF programs), CAP_SYS_PTRACE (to read pid 9, another user's or a more privileged process) and CAP_DAC_READ_SEARCH"
        ));
        for sentence in [one, two, three] {
            assert!(!sentence.starts_with("mapleak"), "main adds the prefix");
            assert!(!sentence.contains('\n'));
        }
    }

    #[test]
    fn after_attach_only_ptrace_and_what_reattaching_needs_are_kept() {
        use UprobeMode::*;
        let root = CapMask(0x1ff_ffff_ffff);
        // Perf-event uprobes: the governor's re-attaching needs CAP_SYS_ADMIN.
        assert_eq!(
            kept_after_attach(root, true, Perf, false),
            mask(&[CAP_SYS_ADMIN, CAP_SYS_PTRACE])
        );
        // uprobe.multi links need nothing; nor does --exact, which attaches nothing again.
        assert_eq!(
            kept_after_attach(root, true, Multi, false),
            mask(&[CAP_SYS_PTRACE])
        );
        assert_eq!(
            kept_after_attach(root, false, Perf, false),
            mask(&[CAP_SYS_PTRACE])
        );
        // --output: the report is put in place at the end, in a directory that may not be ours.
        assert_eq!(
            kept_after_attach(root, false, Multi, true),
            mask(&[CAP_SYS_PTRACE, CAP_DAC_OVERRIDE, CAP_FOWNER])
        );
        // Nothing is kept that was not held: a target of the same user needs no CAP_SYS_PTRACE.
        assert_eq!(
            kept_after_attach(
                mask(&[CAP_SYS_ADMIN, CAP_DAC_READ_SEARCH]),
                true,
                Perf,
                true
            ),
            mask(&[CAP_SYS_ADMIN])
        );
        assert_eq!(kept_after_attach(CapMask(0), true, Perf, false), CapMask(0));
    }

    #[test]
    fn our_own_memory_is_readable() {
        assert!(!target_denied(std::process::id()));
    }
}
