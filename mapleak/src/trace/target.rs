//! The traced process as the OS sees it: existence, privileges, executable, exit notification.

use std::{
    fs,
    os::{
        fd::{AsRawFd, FromRawFd, OwnedFd},
        unix::fs::MetadataExt,
    },
    path::Path,
};

use super::TraceError;
use crate::{aggregate::memory::Resident, inspect::file::MappedFile};

pub fn check_exists(pid: u32) -> Result<(), TraceError> {
    if pid == 0 || !Path::new(&format!("/proc/{pid}")).exists() {
        return Err(TraceError::NoSuchProcess(pid));
    }
    Ok(())
}

/// [`check_exists`], and that `pid` is a process that runs a program of its own: not one thread
/// of another process (whose id /proc answers to as well), not a kernel thread, not a zombie.
pub fn check_traceable(pid: u32) -> Result<(), TraceError> {
    check_exists(pid)?;
    let status = fs::read_to_string(format!("/proc/{pid}/status"))
        .map_err(|_| TraceError::NoSuchProcess(pid))?;
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .map(str::trim)
    };
    if let Some(tgid) = field("Tgid:").and_then(|t| t.parse::<u32>().ok())
        && tgid != pid
    {
        return Err(TraceError::Thread { tid: pid, tgid });
    }
    if field("State:").is_some_and(|s| s.starts_with('Z') || s.starts_with('X')) {
        return Err(TraceError::Zombie(pid));
    }
    if is_kernel_thread(pid) {
        return Err(TraceError::KernelThread(pid));
    }
    Ok(())
}

/// `PF_KTHREAD` in the flags of `/proc/PID/stat` (include/linux/sched.h).
fn is_kernel_thread(pid: u32) -> bool {
    const PF_KTHREAD: u64 = 0x0020_0000;
    let Ok(stat) = fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return false;
    };
    // `flags` is the 9th field; the 3rd follows the parenthesised command name.
    stat.rfind(')')
        .and_then(|i| stat[i + 1..].split_whitespace().nth(6))
        .and_then(|f| f.parse::<u64>().ok())
        .is_some_and(|flags| flags & PF_KTHREAD != 0)
}

/// The target's executable, held open from inspection to the end of the trace. Probes are
/// attached through this open file, so they go to the very image they were planned for: after
/// an exec, `/proc/PID/exe` names another program, at whose offsets an old plan's breakpoint
/// would land inside an instruction.
pub struct Image {
    file: MappedFile,
    /// Where the file was when pinned, for people (may end in " (deleted)").
    pub shown: String,
}

impl Image {
    pub fn pin(pid: u32) -> Result<Self, TraceError> {
        let path = exe_path(pid);
        let file = MappedFile::open(&path).map_err(|source| {
            if !is_alive(pid) {
                TraceError::NoSuchProcess(pid)
            } else {
                TraceError::Inspect { pid, source }
            }
        })?;
        let shown = fs::read_link(&path)
            .map(|p| p.display().to_string())
            .unwrap_or(path);
        Ok(Self { file, shown })
    }

    pub fn bytes(&self) -> &[u8] {
        self.file.bytes()
    }

    pub fn id(&self) -> ImageId {
        ImageId {
            dev: self.file.dev,
            ino: self.file.ino,
        }
    }

    /// A path that names this open file, for the kernel's uprobe lookup.
    pub fn attach_path(&self) -> String {
        format!("/proc/self/fd/{}", self.file.file().as_raw_fd())
    }
}

/// Which file an image is. Its memory is read at addresses planned from that file, so a read is
/// only made while the process still runs it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ImageId {
    pub dev: u64,
    pub ino: u64,
}

impl ImageId {
    pub fn of_file(meta: &fs::Metadata) -> Self {
        Self {
            dev: meta.dev(),
            ino: meta.ino(),
        }
    }

    /// Whether `pid` runs this image now: false once it is gone or executed another file.
    pub fn runs_in(self, pid: u32) -> bool {
        fs::metadata(exe_path(pid)).is_ok_and(|m| Self::of_file(&m) == self)
    }

    /// Whether `pid` is alive and runs another image: it executed a new program.
    pub fn replaced_in(self, pid: u32) -> bool {
        fs::metadata(exe_path(pid)).is_ok_and(|m| Self::of_file(&m) != self)
    }
}

/// Whether the process still runs: an exited one stays in /proc as a zombie until its parent
/// reaps it, and uprobes can no longer be attached to it then.
pub fn is_alive(pid: u32) -> bool {
    let Ok(stat) = fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return false;
    };
    // The state follows the parenthesised command name, which may itself contain ") ".
    let state = stat
        .rfind(')')
        .and_then(|i| stat[i + 1..].split_whitespace().next());
    !matches!(state, Some("Z" | "X") | None)
}

/// The target's executable as the kernel sees it: works for deleted or replaced files and for
/// processes in other mount namespaces.
pub fn exe_path(pid: u32) -> String {
    format!("/proc/{pid}/exe")
}

/// The most any growth of `pid` can have allocated up to now, with when it was read (kernel
/// monotonic clock, read first): its address space, or once the process is gone (a zombie has
/// none) the machine's memory and swap, which its last allocations had to fit in.
pub fn address_bound(pid: u32) -> Option<(u64, u64)> {
    let now = monotonic_ns();
    // An exiting or exited process has no address space left to read: the machine's memory
    // still bounds what it held.
    let bytes = address_space(pid).or_else(machine_memory)?;
    Some((bytes, now))
}

/// `CLOCK_MONOTONIC`, the clock of the kernel's event timestamps (bpf_ktime_get_ns).
pub fn monotonic_ns() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes one timespec through the pointer we own.
    if unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) } != 0 {
        return 0;
    }
    u64::try_from(ts.tv_sec).unwrap_or(0) * 1_000_000_000 + u64::try_from(ts.tv_nsec).unwrap_or(0)
}

/// `MemTotal` + `SwapTotal` in bytes.
fn machine_memory() -> Option<u64> {
    let meminfo = fs::read_to_string("/proc/meminfo").ok()?;
    let kib = |name: &str| -> Option<u64> {
        meminfo
            .lines()
            .find_map(|l| l.strip_prefix(name))?
            .trim()
            .strip_suffix("kB")?
            .trim()
            .parse()
            .ok()
    };
    (kib("MemTotal:")? + kib("SwapTotal:").unwrap_or(0)).checked_mul(1024)
}

/// What `/proc/PID/smaps_rollup` says about the whole process; `None` once it is gone.
pub fn rollup(pid: u32) -> Option<Resident> {
    parse_rollup(&fs::read_to_string(format!("/proc/{pid}/smaps_rollup")).ok()?)
}

fn parse_rollup(rollup: &str) -> Option<Resident> {
    let field = |name: &str| -> Option<u64> {
        let line = rollup.lines().find(|l| l.starts_with(name))?;
        let kib: u64 = line[name.len()..]
            .trim()
            .strip_suffix("kB")?
            .trim()
            .parse()
            .ok()?;
        kib.checked_mul(1024)
    };
    let resident = Resident {
        rss: field("Rss:")?,
        anonymous: field("Anonymous:")?,
        // Absent on kernels before 4.12.
        lazy_free: field("LazyFree:").unwrap_or(0),
        swap: field("Swap:").unwrap_or(0),
    };
    // The kernel counts each from the same page walk: a part larger than the whole is not
    // what it wrote.
    (resident.anonymous <= resident.rss && resident.lazy_free <= resident.anonymous)
        .then_some(resident)
}

/// The size of the process's address space (`VmSize`, from `/proc/PID/statm`): nothing the
/// process maps can be larger.
pub fn address_space(pid: u32) -> Option<u64> {
    let statm = fs::read_to_string(format!("/proc/{pid}/statm")).ok()?;
    let pages: u64 = statm.split_whitespace().next()?.parse().ok()?;
    // A process past exit_mm (exiting, or a zombie) reads as no pages at all.
    if pages == 0 {
        return None;
    }
    // SAFETY: sysconf has no preconditions.
    let page = u64::try_from(unsafe { libc::sysconf(libc::_SC_PAGESIZE) }).ok()?;
    pages.checked_mul(page)
}

/// `len` bytes of the target's memory at `addr`, by process_vm_readv: unmapped memory fails the
/// read (short or -1) instead of faulting.
pub fn read_memory(pid: u32, addr: u64, len: usize) -> Option<Vec<u8>> {
    if addr == 0 {
        return None;
    }
    let mut buf = vec![0u8; len];
    let local = libc::iovec {
        iov_base: buf.as_mut_ptr().cast(),
        iov_len: len,
    };
    let remote = libc::iovec {
        iov_base: addr as *mut libc::c_void,
        iov_len: len,
    };
    // SAFETY: `local` describes `buf`, which outlives the call; the remote range is only read by
    // the kernel.
    let n = unsafe { libc::process_vm_readv(pid as libc::pid_t, &local, 1, &remote, 1, 0) };
    (usize::try_from(n).ok() == Some(len)).then_some(buf)
}

/// [`read_memory`] of a fixed size.
pub fn read_array<const N: usize>(pid: u32, addr: u64) -> Option<[u8; N]> {
    read_memory(pid, addr, N)?.try_into().ok()
}

pub fn read_u64(pid: u32, addr: u64) -> Option<u64> {
    read_array::<8>(pid, addr).map(u64::from_le_bytes)
}

/// Time the process's threads have spent on a CPU, to the nanosecond, from the process's CPU-time
/// clock: unlike `/proc/PID/task/TID/schedstat`, which a running thread updates only at scheduler
/// ticks, the clock includes the slice a thread is running right now, so short windows measure
/// true. Falls back to the schedstat sum.
pub fn cpu_ns(pid: u32) -> Option<u64> {
    let mut clock: libc::clockid_t = 0;
    // SAFETY: clock_getcpuclockid writes one clockid_t through the pointer we own.
    if unsafe { libc::clock_getcpuclockid(pid as libc::pid_t, &mut clock) } == 0 {
        let mut ts = libc::timespec {
            tv_sec: 0,
            tv_nsec: 0,
        };
        // SAFETY: clock_gettime writes one timespec through the pointer we own.
        if unsafe { libc::clock_gettime(clock, &mut ts) } == 0 {
            let ns =
                u64::try_from(ts.tv_sec).ok()? * 1_000_000_000 + u64::try_from(ts.tv_nsec).ok()?;
            return (ns > 0).then_some(ns);
        }
    }
    schedstat_cpu_ns(pid)
}

/// The sum of the first field of each `/proc/PID/task/TID/schedstat`. (Threads that exited are
/// not counted: Go seldom ends one.)
fn schedstat_cpu_ns(pid: u32) -> Option<u64> {
    let tasks = fs::read_dir(format!("/proc/{pid}/task")).ok()?;
    let mut total = 0u64;
    for task in tasks.flatten() {
        let Ok(stat) = fs::read_to_string(task.path().join("schedstat")) else {
            continue;
        };
        total += stat.split_whitespace().next()?.parse::<u64>().ok()?;
    }
    (total > 0).then_some(total)
}

/// User + system CPU time from `/proc/PID/stat` (clock ticks: a 10 ms resolution).
pub fn cpu_ticks_ns(pid: u32) -> Option<u64> {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the parenthesised command name (which may contain spaces): utime is the
    // 12th and stime the 13th of them.
    let rest = &stat[stat.rfind(')')? + 2..];
    let mut f = rest.split_whitespace().skip(11);
    let ticks = f.next()?.parse::<u64>().ok()? + f.next()?.parse::<u64>().ok()?;
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    let hz = u64::try_from(hz).ok().filter(|h| *h > 0)?;
    Some(ticks * 1_000_000_000 / hz)
}

/// A pidfd that becomes readable when the process exits (Linux 5.3+).
pub fn pidfd(pid: u32) -> std::io::Result<OwnedFd> {
    // SAFETY: pidfd_open takes a pid and flags and returns a new fd or -1.
    let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid as libc::pid_t, 0) };
    if fd < 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: the kernel just returned this fd to us; nothing else owns it.
    Ok(unsafe { OwnedFd::from_raw_fd(fd as i32) })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_what_is_resident_from_smaps_rollup() {
        let text = "55d4c000-7ffd1000 ---p 00000000 00:00 0 [rollup]\nRss:                3400 kB\nPss:   1 kB\nAnonymous:   1000 kB\nLazyFree:   12 kB\nSwap:   8 kB\n";
        let want = Resident {
            rss: 3400 * 1024,
            anonymous: 1000 * 1024,
            lazy_free: 12 * 1024,
            swap: 8 * 1024,
        };
        assert_eq!(parse_rollup(text), Some(want));
        assert_eq!(parse_rollup("Pss: 1 kB\n"), None);
        assert_eq!(parse_rollup("Rss: 1 kB\nAnonymous: 2 kB\n"), None);
        let me = rollup(std::process::id()).unwrap();
        assert!(me.rss > 0 && me.anonymous > 0 && me.anonymous <= me.rss);
        let space = address_space(std::process::id()).unwrap();
        assert!(space > me.rss, "{space} {me:?}");
    }

    #[test]
    fn reads_our_own_cpu_time() {
        let pid = std::process::id();
        let before = cpu_ns(pid).unwrap();
        let start = std::time::Instant::now();
        // Spinning must make the process's CPU time grow (by wall time it need not: on a busy
        // machine this thread waits for a CPU too).
        while cpu_ns(pid).unwrap() < before + 30_000_000 {
            assert!(
                start.elapsed() < std::time::Duration::from_secs(10),
                "CPU time stuck at {before}"
            );
        }
        assert!(cpu_ticks_ns(pid).is_some());
        assert!(schedstat_cpu_ns(pid).is_some_and(|ns| ns > 0));
    }

    #[test]
    fn a_zombie_is_not_alive() {
        assert!(is_alive(std::process::id()));
        let mut child = std::process::Command::new("true").spawn().unwrap();
        let pid = child.id();
        // Exited but not yet reaped: a zombie.
        while std::fs::read_to_string(format!("/proc/{pid}/stat"))
            .is_ok_and(|s| !s.contains(") Z "))
        {
            std::thread::sleep(std::time::Duration::from_millis(1));
        }
        assert!(!is_alive(pid));
        // A zombie maps nothing: its growths are bounded by the machine, not refused by 0.
        assert_eq!(address_space(pid), None);
        assert_eq!(address_bound(pid).map(|(b, _)| b), machine_memory());
        assert!(machine_memory().is_some_and(|b| b > 0));
        child.wait().unwrap();
        assert!(!is_alive(pid));
    }

    #[test]
    fn our_address_space_holds_our_resident_memory() {
        let pid = std::process::id();
        let space = address_space(pid).unwrap();
        assert!(space >= rollup(pid).unwrap().rss, "{space}");
    }

    #[test]
    fn a_thread_is_named_with_its_process() {
        let pid = std::process::id();
        let (tx, rx) = std::sync::mpsc::channel();
        let (done_tx, done_rx) = std::sync::mpsc::channel::<()>();
        let t = std::thread::spawn(move || {
            // SAFETY: gettid has no preconditions.
            tx.send(unsafe { libc::gettid() } as u32).unwrap();
            let _ = done_rx.recv();
        });
        let tid = rx.recv().unwrap();
        let got = check_traceable(tid);
        done_tx.send(()).unwrap();
        t.join().unwrap();
        assert!(
            matches!(got, Err(TraceError::Thread { tid: t, tgid }) if t == tid && tgid == pid),
            "{got:?}"
        );
        assert!(check_traceable(pid).is_ok());
    }

    #[test]
    fn kernel_threads_are_refused() {
        // kthreadd is pid 2 on every Linux.
        assert!(matches!(
            check_traceable(2),
            Err(TraceError::KernelThread(2))
        ));
    }

    #[test]
    fn pid_zero_and_absent_pids_are_rejected() {
        assert!(matches!(check_exists(0), Err(TraceError::NoSuchProcess(0))));
        assert!(check_exists(std::process::id()).is_ok());
    }
}
