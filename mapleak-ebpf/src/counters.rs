//! Per-CPU counters: no locks, no atomics; user space sums the CPUs each interval.

use crate::maps::{COUNTERS, HITS, PROBES_OFF};
use mapleak_common::ProbeId;

#[inline(always)]
fn bump(array: &aya_ebpf::maps::PerCpuArray<u64>, index: u32) {
    if let Some(slot) = array.get_ptr_mut(index) {
        // SAFETY: the pointer comes from a successful per-CPU lookup and only this CPU writes it.
        unsafe { *slot += 1 };
    }
}

/// Counts a hit of `probe`; `false` when user space has switched it off (its link is being
/// dropped), and the program must return at once.
#[inline(always)]
pub fn hit(probe: ProbeId) -> bool {
    if PROBES_OFF.get(probe as u32).is_some_and(|off| *off != 0) {
        return false;
    }
    bump(&HITS, probe as u32);
    true
}

#[inline(always)]
pub fn count(counter: u32) {
    bump(&COUNTERS, counter);
}

/// Ends a probe: a failure counts in the counter it names; uprobes always return 0.
#[inline(always)]
pub fn finish(result: Result<(), u32>) -> u32 {
    if let Err(counter) = result {
        count(counter);
    }
    0
}
