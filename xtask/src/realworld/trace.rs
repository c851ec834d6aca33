//! `mapleak trace --pid P --format json` on a running program, and an independent look at the
//! process's memory while it is traced.

use std::{
    fs,
    io::{BufRead as _, BufReader, Read as _},
    path::Path,
    process::{Command, Stdio},
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    thread::{self, JoinHandle},
    time::{Duration, Instant},
};

use anyhow::{Context as _, Result};

/// What mapleak prints to stderr once its probes are attached.
const ATTACHED: &str = "mapleak: tracing pid";

/// A finished trace.
pub struct Traced {
    pub exit: Option<i32>,
    /// mapleak's stderr (its attach line, notes, or the sentence refusing the target).
    pub stderr: String,
    /// The report's last line, when mapleak wrote one.
    pub summary: Option<serde_json::Value>,
    /// Whether the probes were attached at all.
    pub attached: bool,
}

/// Traces `pid` for `duration` (or until it exits), its report written to `report`. Returns
/// once mapleak has exited, or after `duration` and a grace of a minute (then it is killed).
pub fn trace(mapleak: &Path, pid: u32, duration: Duration, report: &Path) -> Result<Traced> {
    let _ = fs::remove_file(report);
    let mut child = Command::new(mapleak)
        .args(["trace", "--pid", &pid.to_string(), "--format", "json"])
        .args(["--duration", &format!("{}s", duration.as_secs())])
        .arg("--output")
        .arg(report)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .with_context(|| format!("could not start {}", mapleak.display()))?;
    // Read stderr on a thread so that mapleak never blocks on a full pipe; the attach line is
    // reported as soon as it comes.
    let mut stderr = BufReader::new(child.stderr.take().context("no stderr")?);
    let (attached_tx, attached_rx) = std::sync::mpsc::channel();
    let reader = thread::spawn(move || {
        let mut text = String::new();
        let mut line = String::new();
        while stderr.read_line(&mut line).unwrap_or(0) > 0 {
            if line.contains(ATTACHED) {
                let _ = attached_tx.send(());
            }
            text.push_str(&line);
            line.clear();
        }
        let _ = stderr.read_to_string(&mut text);
        text
    });
    let deadline = Instant::now() + duration + Duration::from_secs(60);
    let status = loop {
        if let Some(status) = child.try_wait()? {
            break Some(status);
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        thread::sleep(Duration::from_millis(50));
    };
    let stderr = reader.join().unwrap_or_default();
    let attached = attached_rx.try_recv().is_ok();
    let summary = fs::read_to_string(report).ok().and_then(|text| {
        let last = text.lines().last()?;
        let value: serde_json::Value = serde_json::from_str(last).ok()?;
        (value["type"] == "summary").then_some(value)
    });
    Ok(Traced {
        exit: status.and_then(|s| s.code()),
        stderr,
        summary,
        attached,
    })
}

/// The process's memory as the kernel counts it, xtask's own reading beside mapleak's.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ProcMemory {
    /// The largest `VmPeak` (virtual) and `VmHWM` (resident) seen.
    pub vm_peak: u64,
    pub vm_hwm: u64,
    /// The last `RssAnon` and `RssFile` seen: what of the resident set is the heap and stacks,
    /// and what is the executable and mapped files.
    pub rss_anon: u64,
    pub rss_file: u64,
    /// The largest total of private writable mappings seen: memory the process has committed
    /// (a Go heap arena is mapped read-write when the heap grows into it, and never unmapped),
    /// so nothing on its heap can be larger. Address space merely reserved (`---p`) is not in it.
    pub committed: u64,
}

/// Samples `/proc/PID/status` every 50 ms until stopped or the process is gone.
pub struct Sampler {
    stop: Arc<AtomicBool>,
    thread: JoinHandle<Option<ProcMemory>>,
}

impl Sampler {
    pub fn watch(pid: u32) -> Sampler {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let thread = thread::spawn(move || {
            let mut seen: Option<ProcMemory> = None;
            while !flag.load(Ordering::Relaxed) {
                let Ok(status) = fs::read_to_string(format!("/proc/{pid}/status")) else {
                    break;
                };
                if let Some(now) = proc_memory(&status) {
                    let before = seen.unwrap_or_default();
                    let committed = fs::read_to_string(format!("/proc/{pid}/maps"))
                        .map_or(0, |maps| writable_private(&maps));
                    seen = Some(ProcMemory {
                        vm_peak: before.vm_peak.max(now.vm_peak),
                        vm_hwm: before.vm_hwm.max(now.vm_hwm),
                        committed: before.committed.max(committed),
                        ..now
                    });
                }
                thread::sleep(Duration::from_millis(50));
            }
            seen
        });
        Sampler { stop, thread }
    }

    pub fn stop(self) -> Option<ProcMemory> {
        self.stop.store(true, Ordering::Relaxed);
        self.thread.join().ok().flatten()
    }
}

/// Bytes of the private writable mappings (`rw-p`, `rwxp`) of a `/proc/PID/maps` text.
fn writable_private(maps: &str) -> u64 {
    maps.lines()
        .filter_map(|line| {
            let mut fields = line.split_whitespace();
            let (range, perms) = (fields.next()?, fields.next()?);
            if !(perms.starts_with("rw") && perms.ends_with('p')) {
                return None;
            }
            let (start, end) = range.split_once('-')?;
            let start = u64::from_str_radix(start, 16).ok()?;
            let end = u64::from_str_radix(end, 16).ok()?;
            end.checked_sub(start)
        })
        .sum()
}

/// The figures of `/proc/PID/status` (`VmPeak:   123456 kB`), in bytes; `None` for a
/// process without memory (a kernel thread, a zombie).
fn proc_memory(status: &str) -> Option<ProcMemory> {
    let field = |name: &str| -> Option<u64> {
        let kib: u64 = status
            .lines()
            .find_map(|l| l.strip_prefix(name)?.strip_prefix(':'))?
            .split_whitespace()
            .next()?
            .parse()
            .ok()?;
        Some(kib * 1024)
    };
    Some(ProcMemory {
        vm_peak: field("VmPeak")?,
        vm_hwm: field("VmHWM").unwrap_or(0),
        rss_anon: field("RssAnon").unwrap_or(0),
        rss_file: field("RssFile").unwrap_or(0),
        committed: 0,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_memory_of_a_process() {
        assert_eq!(
            proc_memory(
                "Name:\tx\nVmPeak:\t  123456 kB\nVmHWM:\t 10 kB\nRssAnon:\t 4 kB\nRssFile:\t 6 kB\n"
            ),
            Some(ProcMemory {
                vm_peak: 123_456 * 1024,
                vm_hwm: 10 * 1024,
                rss_anon: 4 * 1024,
                rss_file: 6 * 1024,
                committed: 0,
            })
        );
        assert_eq!(proc_memory("Name:\tkthreadd\n"), None);
        let mine = fs::read_to_string("/proc/self/status").unwrap();
        assert!(proc_memory(&mine).unwrap().vm_peak > 0);
    }

    #[test]
    fn counts_private_writable_mappings_only() {
        let maps = "00400000-00401000 r-xp 00000000 fe:01 1 /bin/x\n\
                    00600000-00602000 rw-p 00000000 fe:01 1 /bin/x\n\
                    c000000000-c004000000 rw-p 00000000 00:00 0\n\
                    c004000000-c008000000 ---p 00000000 00:00 0\n\
                    7f0000000000-7f0000001000 rw-s 00000000 00:05 7 /dev/shm/x\n";
        assert_eq!(writable_private(maps), 0x2000 + 0x4000000);
        let mine = fs::read_to_string("/proc/self/maps").unwrap();
        assert!(writable_private(&mine) > 0);
    }
}
