//! What one uprobe hit costs on this host, measured on a no-op function of mapleak's own: the
//! governor's unit of account. Nested virtualisation makes it ~12 µs, bare metal 0.3–3 µs.

use std::time::{Duration, Instant};

use aya::programs::{
    UProbe,
    uprobe::{UProbeAttachLocation, UProbeScope},
};
use mapleak_common::ProbeId;

use super::{error_chain, loader::Loaded};

/// The probed function. `no_mangle` keeps its name in mapleak's symbol table for aya to find.
///
/// It begins with `push rbp`, the instruction every Go probe of mapleak sits on (the first one
/// after the stack-check prologue): the kernel emulates it, where most other instructions are
/// single-stepped out of line at the price of a second trap, so the cost measured here is the
/// cost the target pays.
#[unsafe(no_mangle)]
#[unsafe(naked)]
pub extern "C" fn mapleak_calibration_target(x: u64) -> u64 {
    core::arch::naked_asm!(
        "push rbp",
        "mov rbp, rsp",
        "lea rax, [rdi + 1]",
        "pop rbp",
        "ret"
    )
}

/// Calls `mapleak_calibration_target` under `depth` frame-pointer frames: the probe's user-stack
/// walk then has a Go-like chain to follow, as it does in a Go program.
#[unsafe(no_mangle)]
#[unsafe(naked)]
pub extern "C" fn mapleak_calibration_chain(depth: u64, x: u64) -> u64 {
    core::arch::naked_asm!(
        "push rbp",
        "mov rbp, rsp",
        "test rdi, rdi",
        "jz 2f",
        "dec rdi",
        "call {chain}",
        "pop rbp",
        "ret",
        "2:",
        "mov rdi, rsi",
        "call {target}",
        "pop rbp",
        "ret",
        chain = sym mapleak_calibration_chain,
        target = sym mapleak_calibration_target,
    )
}

/// Frames above the probed call: a typical depth for a map growth in a Go service.
const STACK_DEPTH: u64 = 12;

const CALLS: u64 = 300;
/// Batches timed; their median is taken, after one untimed batch of warm-up (the first hits
/// of a new uprobe pay one-time setup that a long-running target does not).
const BATCHES: usize = 5;

fn run_calls() -> Duration {
    let start = Instant::now();
    let mut x = 0;
    for _ in 0..CALLS {
        x = mapleak_calibration_chain(STACK_DEPTH, x);
    }
    std::hint::black_box(x);
    start.elapsed()
}

fn median_of_batches() -> Duration {
    run_calls();
    let mut times: Vec<Duration> = (0..BATCHES).map(|_| run_calls()).collect();
    times.sort_unstable();
    times[BATCHES / 2]
}

/// What one probe hit costs the target, as calibrated.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct HitCost {
    pub hit_ns: f64,
}

impl HitCost {
    pub fn new(hit_ns: f64) -> Self {
        Self { hit_ns }
    }

    /// The CPU `hits` cost the target.
    pub fn of(&self, hits: u64) -> f64 {
        hits as f64 * self.hit_ns
    }
}

impl Loaded {
    fn calibration_program(&mut self) -> Result<&mut UProbe, String> {
        let name = self.mode().program(ProbeId::Calibrate);
        self.ebpf_mut()
            .program_mut(&name)
            .ok_or("the eBPF object has no calibration program")?
            .try_into()
            .map_err(|e| error_chain(&e))
    }

    /// Times [`CALLS`] calls with and without a probe; the difference per call is the cost.
    pub fn calibrate(&mut self) -> Result<HitCost, String> {
        let exe = std::env::current_exe().map_err(|e| e.to_string())?;
        let program = self.calibration_program()?;
        program.load().map_err(|e| error_chain(&e))?;
        let link = program
            .attach(
                [UProbeAttachLocation::Symbol("mapleak_calibration_target")],
                &exe,
                UProbeScope::CallingProcess,
            )
            .map_err(|e| error_chain(&e))?;
        let before = self.hits(ProbeId::Calibrate);
        let probed = median_of_batches();
        let hits = self.hits(ProbeId::Calibrate) - before;
        let program = self.calibration_program()?;
        program.detach(link).map_err(|e| error_chain(&e))?;
        let bare = median_of_batches();
        let calls = CALLS * (BATCHES as u64 + 1);
        if hits != calls {
            return Err(format!(
                "the calibration probe fired {hits} times for {calls} calls"
            ));
        }
        Ok(HitCost::new(
            probed.saturating_sub(bare).as_nanos() as f64 / CALLS as f64,
        ))
    }
}
