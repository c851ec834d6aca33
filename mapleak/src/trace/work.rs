//! How much work the target has done, by two counters read at every switch of a probe group:
//! its CPU time, and the heap bytes its runtime has allocated (`gcController.totalAlloc`).
//!
//! Probes slow the target down but do not change what it does, so events per allocated byte
//! are the same inside a sampling window as outside it, with no need to know what a probe hit
//! cost; CPU time must first be cleared of the probes' own share, which is only as good as the
//! calibrated cost of a hit. The sampler scales by allocation where it can.

use std::cell::Cell;

use super::target::{self, ImageId};

/// Counter readings, or differences of them.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Work {
    pub cpu_ns: u64,
    /// `None` once a reading failed.
    pub alloc: Option<u64>,
}

impl Work {
    /// Nothing yet, with both counters known.
    pub const ZERO: Work = Work {
        cpu_ns: 0,
        alloc: Some(0),
    };

    pub fn since(self, earlier: Work) -> Work {
        Work {
            cpu_ns: self.cpu_ns.saturating_sub(earlier.cpu_ns),
            alloc: self
                .alloc
                .zip(earlier.alloc)
                .map(|(now, then)| now.saturating_sub(then)),
        }
    }

    pub fn add(&mut self, more: Work) {
        self.cpu_ns += more.cpu_ns;
        self.alloc = self.alloc.zip(more.alloc).map(|(a, b)| a + b);
    }
}

/// Reads the target's [`Work`] counters.
pub struct WorkGauge {
    pid: u32,
    /// The image whose `totalAlloc` address is known: after an exec the address means nothing.
    image: ImageId,
    /// Run-time address of `gcController.totalAlloc`, when inspection found it.
    total_alloc: Option<u64>,
    /// The last reading of a live target: once it has exited its counters are gone, and the work
    /// it did since its last reading would otherwise count as none.
    last: Cell<Option<Work>>,
}

impl WorkGauge {
    pub fn new(pid: u32, image: ImageId, total_alloc: Option<u64>) -> Self {
        Self {
            pid,
            image,
            total_alloc,
            last: Cell::new(None),
        }
    }

    /// The counters now, or as last read once the target has exited or executed another program
    /// (`None` if never read).
    /// Reading often (the session does at every ring-buffer drain) keeps the work a target does
    /// between its last reading and its exit small.
    pub fn read(&self) -> Option<Work> {
        if target::is_alive(self.pid)
            && self.image.runs_in(self.pid)
            && let Some(cpu_ns) = target::cpu_ns(self.pid)
        {
            let work = Work {
                cpu_ns,
                alloc: self
                    .total_alloc
                    .and_then(|addr| target::read_u64(self.pid, addr)),
            };
            self.last.set(Some(work));
            return Some(work);
        }
        self.last.get()
    }
}

#[cfg(test)]
impl WorkGauge {
    /// A gauge of a process that is gone: it reads what the test last set.
    pub fn stub() -> Self {
        Self::new(u32::MAX, ImageId { dev: 0, ino: 0 }, None)
    }

    pub fn set(&self, work: Work) {
        self.last.set(Some(work));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_unknown_reading_poisons_the_sums() {
        let a = Work {
            cpu_ns: 10,
            alloc: Some(100),
        };
        let b = Work {
            cpu_ns: 25,
            alloc: Some(160),
        };
        assert_eq!(
            b.since(a),
            Work {
                cpu_ns: 15,
                alloc: Some(60)
            }
        );
        let mut sum = Work::ZERO;
        sum.add(b.since(a));
        sum.add(Work {
            cpu_ns: 5,
            alloc: None,
        });
        assert_eq!(
            sum,
            Work {
                cpu_ns: 20,
                alloc: None
            }
        );
        // A failed reading makes its difference unknown, not zero.
        let gone = Work {
            cpu_ns: 30,
            alloc: None,
        };
        assert_eq!(gone.since(b).alloc, None);
    }

    fn image_of(pid: u32) -> ImageId {
        ImageId::of_file(&std::fs::metadata(target::exe_path(pid)).unwrap())
    }

    #[test]
    fn reads_this_process_own_counter() {
        let counter: u64 = 0x1234_5678;
        let pid = std::process::id();
        let gauge = WorkGauge::new(pid, image_of(pid), Some(&counter as *const u64 as u64));
        let w = gauge.read().expect("our own CPU time");
        assert_eq!(w.alloc, Some(0x1234_5678));
    }

    #[test]
    fn a_target_that_is_gone_keeps_its_last_reading() {
        let mut child = std::process::Command::new("sleep")
            .arg("30")
            .spawn()
            .expect("run sleep");
        // Until it has executed `sleep`, the child is a copy of this test binary.
        let ours = image_of(std::process::id());
        while image_of(child.id()) == ours {
            std::thread::yield_now();
        }
        // The new image shows in /proc before the kernel has charged the child any CPU time: its
        // CPU clock reads 0 (no reading) for a moment after.
        let start = std::time::Instant::now();
        while target::cpu_ns(child.id()).is_none() {
            assert!(
                start.elapsed() < std::time::Duration::from_secs(10),
                "the child never ran"
            );
            std::thread::sleep(std::time::Duration::from_millis(1));
        }
        let gauge = WorkGauge::new(child.id(), image_of(child.id()), None);
        let first = gauge.read();
        assert!(first.is_some());
        child.kill().expect("kill");
        child.wait().expect("reap");
        assert_eq!(gauge.read(), first);
    }
}
