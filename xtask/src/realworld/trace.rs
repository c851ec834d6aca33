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

/// Samples the process's `VmPeak` every 50 ms until stopped or the process is gone.
pub struct VmPeak {
    stop: Arc<AtomicBool>,
    thread: JoinHandle<Option<u64>>,
}

impl VmPeak {
    pub fn watch(pid: u32) -> VmPeak {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let thread = thread::spawn(move || {
            let mut peak = None;
            while !flag.load(Ordering::Relaxed) {
                let Ok(status) = fs::read_to_string(format!("/proc/{pid}/status")) else {
                    break;
                };
                if let Some(kib) = vm_peak_kib(&status) {
                    peak = peak.max(Some(kib * 1024));
                }
                thread::sleep(Duration::from_millis(50));
            }
            peak
        });
        VmPeak { stop, thread }
    }

    /// The largest `VmPeak` seen, in bytes.
    pub fn stop(self) -> Option<u64> {
        self.stop.store(true, Ordering::Relaxed);
        self.thread.join().ok().flatten()
    }
}

/// `VmPeak:   123456 kB` of `/proc/PID/status`.
fn vm_peak_kib(status: &str) -> Option<u64> {
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmPeak:"))?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_vm_peak() {
        assert_eq!(
            vm_peak_kib("Name:\tx\nVmPeak:\t  123456 kB\nVmSize:\t1 kB\n"),
            Some(123_456)
        );
        assert_eq!(vm_peak_kib("Name:\tkthreadd\n"), None);
        let mine = fs::read_to_string("/proc/self/status").unwrap();
        assert!(vm_peak_kib(&mine).unwrap() > 0);
    }
}
