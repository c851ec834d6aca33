//! `unreleased_memory`: idle heap the Go runtime holds above what its goal needs, and has not
//! returned over the trace.
//!
//! RSS against the live heap said nothing a user could act on: RSS counts file-backed pages (a
//! database's mmap, the executable's text), and a heap between its live size and its goal is the
//! headroom GOGC asks for. So the rule reads the runtime's own accounting (`gcController`: heap
//! in use, free, released; the goal as `heapGoal()` computes it) beside anonymous RSS, and
//! fires only on free heap above the goal plus the share the scavenger keeps on purpose, held
//! at every reading for a while, and not shrinking: memory a user can have back. The goal is the
//! highest read over those readings: a busy program's goal moves from cycle to cycle, and the
//! heap keeps room for the higher ones.

use serde::Serialize;

use super::{Evidence, Finding, FindingKind};
use crate::{
    aggregate::memory::{AddressSpace, HeapSample},
    report::units::bytes,
};

const MIB: u64 = 1 << 20;
/// Held memory worth a finding: this much, and this share of anonymous RSS.
const MIN_HELD: u64 = 64 * MIB;
const MIN_SHARE_OF_ANONYMOUS: u64 = 5;
/// …at every reading for this long: after a GC, free memory is normal for a moment.
const MIN_HELD_NS: u64 = 1_000_000_000;
/// …and not being returned: the last reading holds at least this share of the first.
const RETURNING_SHARE: u64 = 4;
/// The scavenger keeps the retained heap up to the goal plus this much (`retainExtraPercent`).
const RETAIN_EXTRA_PERCENT: u64 = 10;
/// Under a memory limit the scavenger returns what is above this share of it
/// (`reduceExtraPercent` = 5).
const LIMIT_KEEPS_PERCENT: u64 = 95;

#[derive(Clone, Debug, Serialize)]
pub struct UnreleasedMemory {
    /// Resident set size at the last reading, and its parts (smaps_rollup): anonymous, and
    /// file-backed or shared (the rest).
    pub rss_bytes: u64,
    pub anonymous_bytes: u64,
    pub file_bytes: u64,
    pub swap_bytes: u64,
    /// The runtime's accounting at the last reading (`gcController`): heap spans in use, free
    /// and not returned, returned to the OS; and the rest of what it has mapped and not returned
    /// (stacks, metadata: `mappedReady` less the heap).
    pub heap_in_use_bytes: u64,
    pub heap_free_bytes: u64,
    pub heap_released_bytes: u64,
    pub runtime_other_bytes: u64,
    /// Released by the runtime with MADV_FREE, still resident (LazyFree, at most the released
    /// heap).
    pub lazy_free_bytes: u64,
    /// Anonymous RSS less all of the above: C allocations, non-Go threads' stacks. Negative when
    /// the runtime has mapped more than is resident (pages never touched, or swapped out).
    pub other_anonymous_bytes: i64,
    /// `gcController.heapMarked`: what the last GC found live.
    pub heap_live_bytes: u64,
    /// `heapGoal()` at the last reading, the highest goal read over the readings that held, the
    /// highest read during the trace, and what the heap needs: the goal over the readings that
    /// held plus the 10 % the scavenger keeps.
    pub heap_goal_bytes: u64,
    pub held_goal_bytes: u64,
    pub peak_heap_goal_bytes: u64,
    pub heap_need_bytes: u64,
    pub gogc: i32,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub gomemlimit_bytes: Option<u64>,
    /// Free heap above the need, not returned.
    pub idle_above_need_bytes: u64,
    /// What the finding is about: idle heap above the need plus released pages still resident.
    pub excess_bytes: u64,
    /// How long every reading held at least the finding's threshold, the least any of them
    /// held, and how much the runtime released meanwhile.
    pub held_ns: u64,
    pub held_min_bytes: u64,
    pub returned_bytes: u64,
    /// Returned during the trace with MADV_DONTNEED and with MADV_FREE.
    pub released_dontneed_bytes: u64,
    pub released_free_bytes: u64,
    /// A GOMEMLIMIT under which the runtime returns what it holds above the need; `None` when
    /// the limit already set is lower.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub suggested_gomemlimit_bytes: Option<u64>,
}

/// What one reading says is held beyond the heap's need.
#[derive(Clone, Copy, Debug)]
struct Held {
    need: u64,
    idle_above_need: u64,
    lazy_free: u64,
}

impl Held {
    /// What `s` holds beyond `goal` and the scavenger's share.
    fn of(s: &HeapSample, goal: u64) -> Option<Self> {
        let resident = s.resident?;
        let h = &s.heap;
        let need = goal.saturating_add(goal / 100 * RETAIN_EXTRA_PERCENT);
        let retained = h.heap_in_use + h.heap_free;
        Some(Self {
            need,
            // Spans in use above the need hold objects: only free ones can go back.
            idle_above_need: h.heap_free.min(retained.saturating_sub(need)),
            lazy_free: resident.lazy_free.min(h.heap_released),
        })
    }

    fn total(&self) -> u64 {
        self.idle_above_need + self.lazy_free
    }

    fn worth(&self, s: &HeapSample) -> bool {
        let anonymous = s.resident.map_or(0, |r| r.anonymous);
        self.total() >= MIN_HELD && self.total() >= anonymous / MIN_SHARE_OF_ANONYMOUS
    }
}

/// The latest readings that each hold enough beyond the highest goal read among them, oldest
/// first, with that goal.
fn held_stretch(samples: &[&HeapSample]) -> Option<(usize, u64)> {
    let mut start = samples.len();
    let mut goal = 0;
    // Back from the last reading while each holds enough beyond the highest goal so far.
    while start > 0 {
        let s = samples[start - 1];
        let peak = goal.max(s.goal_bytes()?);
        if !Held::of(s, peak).is_some_and(|h| h.worth(s)) {
            break;
        }
        goal = peak;
        start -= 1;
    }
    (start < samples.len()).then_some((start, goal))
}

pub fn unreleased_memory(
    mem: &AddressSpace,
    go_minor: u32,
    saving: impl Fn(u64) -> super::Saving,
) -> Option<Finding> {
    let samples: Vec<&HeapSample> = mem.heap_samples().iter().collect();
    // A reading without a goal (GOGC off, no limit) ends the stretch too.
    let tail = samples
        .iter()
        .rev()
        .take_while(|s| s.goal.is_some())
        .count();
    let samples = &samples[samples.len() - tail..];
    let (start, held_goal) = held_stretch(samples)?;
    let stretch: Vec<(&HeapSample, Held)> = samples[start..]
        .iter()
        .map(|s| Some((*s, Held::of(s, held_goal)?)))
        .collect::<Option<_>>()?;
    let (&(first, first_held), &(last, held)) = (stretch.first()?, stretch.last()?);
    let held_ns = last.ts_ns.saturating_sub(first.ts_ns);
    if held_ns < MIN_HELD_NS
        || first_held.total().saturating_sub(held.total()) > first_held.total() / RETURNING_SHARE
    {
        return None;
    }
    let h = &last.heap;
    let r = last.resident?;
    let goal = last.goal_bytes()?;
    let other = h.other_runtime();
    let accounted = h.heap_in_use + h.heap_free + other + held.lazy_free;
    let other_anonymous = r.anonymous as i64 - accounted as i64;
    let suggested = suggested_limit(held.need + other, h.limit());
    let stats = mem.stats();
    let evidence = UnreleasedMemory {
        rss_bytes: r.rss,
        anonymous_bytes: r.anonymous,
        file_bytes: r.rss.saturating_sub(r.anonymous),
        swap_bytes: r.swap,
        heap_in_use_bytes: h.heap_in_use,
        heap_free_bytes: h.heap_free,
        heap_released_bytes: h.heap_released,
        runtime_other_bytes: other,
        lazy_free_bytes: held.lazy_free,
        other_anonymous_bytes: other_anonymous,
        heap_live_bytes: h.heap_marked,
        heap_goal_bytes: goal,
        held_goal_bytes: held_goal,
        peak_heap_goal_bytes: mem.peak_goal().unwrap_or(goal).max(held_goal),
        heap_need_bytes: held.need,
        gogc: h.gc_percent,
        gomemlimit_bytes: h.limit(),
        idle_above_need_bytes: held.idle_above_need,
        excess_bytes: held.total(),
        held_ns,
        held_min_bytes: stretch.iter().map(|(_, h)| h.total()).min()?,
        returned_bytes: h.heap_released.saturating_sub(first.heap.heap_released),
        released_dontneed_bytes: stats.released_dontneed_bytes,
        released_free_bytes: stats.released_free_bytes,
        suggested_gomemlimit_bytes: suggested,
    };
    let suggestion = suggestion(&evidence, go_minor);
    Some(Finding {
        rank: 0,
        kind: FindingKind::UnreleasedMemory,
        function: String::new(),
        file: String::new(),
        line: 0,
        via: Vec::new(),
        saving: saving(evidence.excess_bytes),
        evidence: Evidence::UnreleasedMemory(evidence),
        suggestion,
        estimated: false,
        also: Vec::new(),
        gc: None,
    })
}

/// A limit at which the runtime keeps `keep` (the heap's need and the rest of its memory) and
/// returns what is above, rounded up to a MiB; `None` when `current` is already no higher.
fn suggested_limit(keep: u64, current: Option<u64>) -> Option<u64> {
    let limit = keep.div_ceil(LIMIT_KEEPS_PERCENT).saturating_mul(100);
    let limit = limit.div_ceil(MIB).saturating_mul(MIB);
    current.is_none_or(|c| c > limit).then_some(limit)
}

fn suggestion(e: &UnreleasedMemory, go_minor: u32) -> String {
    let mut parts = vec![
        format!("heap in use {}", bytes(e.heap_in_use_bytes)),
        format!("idle heap {}", bytes(e.heap_free_bytes)),
        format!(
            "other runtime memory {} (stacks, metadata)",
            bytes(e.runtime_other_bytes)
        ),
    ];
    if e.lazy_free_bytes > 0 {
        parts.push(format!(
            "heap released with MADV_FREE but still resident {}",
            bytes(e.lazy_free_bytes)
        ));
    }
    let rest = if e.other_anonymous_bytes >= 0 {
        format!(
            " + {} outside the runtime's accounts",
            bytes(e.other_anonymous_bytes as u64)
        )
    } else {
        format!(
            " − {} the runtime has mapped but is not resident",
            bytes(e.other_anonymous_bytes.unsigned_abs())
        )
    };
    let limit = e.gomemlimit_bytes.map_or("unset".to_owned(), bytes);
    let gogc = if e.gogc < 0 {
        "off".to_owned()
    } else {
        e.gogc.to_string()
    };
    let now = if e.held_goal_bytes == e.heap_goal_bytes {
        String::new()
    } else {
        format!("now {}; ", bytes(e.heap_goal_bytes))
    };
    let mut out = format!(
        "anonymous RSS {} = {}{rest}; the other {} of RSS {} is file-backed or shared. Over the last {:.1} s of readings the heap goal was at most {} ({now}GOGC={gogc}, GOMEMLIMIT {limit}); with the {RETAIN_EXTRA_PERCENT} % the scavenger keeps, the heap needs {}, and {} is held above that at every reading (the runtime returned {} meanwhile).",
        bytes(e.anonymous_bytes),
        parts.join(" + "),
        bytes(e.file_bytes),
        bytes(e.rss_bytes),
        e.held_ns as f64 / 1e9,
        bytes(e.held_goal_bytes),
        bytes(e.heap_need_bytes),
        bytes(e.excess_bytes),
        bytes(e.returned_bytes),
    );
    if e.idle_above_need_bytes > 0 {
        out.push_str(if crate::gofacts::SCAVENGER_WAITS_A_CYCLE.holds(go_minor) {
            " The runtime returns idle heap gradually, and since Go 1.21 only in chunks that stayed sparse through a whole GC cycle: after a burst it keeps the memory until the next cycle, up to two minutes away in a program that allocates little."
        } else {
            " The runtime returns idle heap gradually, with a background scavenger that spends about 1 % of the program's CPU time on it."
        });
        out.push_str(" Call debug.FreeOSMemory() after a burst: it runs a GC and returns all idle heap at once.");
        if let Some(limit) = e.suggested_gomemlimit_bytes {
            let (verb, doing) = if e.gomemlimit_bytes.is_some() {
                ("lower GOMEMLIMIT to", "Lowering GOMEMLIMIT to")
            } else {
                ("set", "Setting")
            };
            let setting = format!(
                "GOMEMLIMIT={}MiB (what the heap needs, {}, and the other runtime memory, over the {LIMIT_KEEPS_PERCENT} % of a limit the runtime keeps)",
                limit / MIB,
                bytes(e.heap_need_bytes),
            );
            let peak_need =
                e.peak_heap_goal_bytes + e.peak_heap_goal_bytes / 100 * RETAIN_EXTRA_PERCENT;
            if (peak_need + e.runtime_other_bytes) * 100 / LIMIT_KEEPS_PERCENT <= limit {
                out.push_str(&format!(
                    " Or {verb} {setting}: the runtime then returns what it holds above it by itself. A limit makes the GC run more often as the heap nears it: raise it if the program needs more at times."
                ));
            } else {
                out.push_str(&format!(
                    " {doing} {setting} would return it too, but the heap goal reached {} in this trace: under a limit below what the program needs at its peak the GC runs far more often then.",
                    bytes(e.peak_heap_goal_bytes),
                ));
            }
        }
    }
    if e.lazy_free_bytes > 0 {
        out.push_str(&format!(
            " {} was returned with MADV_FREE, which the kernel takes back only under memory pressure, so RSS still counts it: GODEBUG=madvdontneed=1 (the default since Go 1.16) returns with MADV_DONTNEED, which drops RSS at once.",
            bytes(e.lazy_free_bytes)
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn test_saving(bytes: u64) -> crate::report::findings::Saving {
        crate::report::findings::Saving {
            bytes,
            of: crate::report::findings::SavingOf::Memory,
            ns: None,
            share: None,
        }
    }
    use crate::aggregate::{
        heap::{NO_LIMIT, RuntimeHeap},
        memory::Resident,
    };

    const SECOND: u64 = 1_000_000_000;

    /// After a GC that freed 256 MiB of a burst: 4 MiB goal, 1 MiB in use.
    fn burst() -> (RuntimeHeap, Resident) {
        let heap = RuntimeHeap {
            gc_percent: 100,
            memory_limit: NO_LIMIT,
            gc_percent_heap_goal: 4 * MIB,
            triggered: u64::MAX,
            heap_marked: 200 << 10,
            heap_in_use: MIB,
            heap_free: 256 * MIB,
            heap_released: 3 * MIB,
            total_alloc: 300 * MIB,
            total_free: 299 * MIB,
            mapped_ready: 262 * MIB,
            ..RuntimeHeap::default()
        };
        let resident = Resident {
            rss: 270 * MIB,
            anonymous: 263 * MIB,
            lazy_free: 0,
            swap: 0,
        };
        (heap, resident)
    }

    fn sample(mem: &mut AddressSpace, ts_ns: u64, heap: RuntimeHeap, resident: Resident) {
        mem.sample_resident(resident);
        mem.sample_heap(HeapSample {
            ts_ns,
            heap,
            goal: heap.goal(21),
            resident: Some(resident),
        });
    }

    fn evidence(f: &Finding) -> &UnreleasedMemory {
        let Evidence::UnreleasedMemory(e) = &f.evidence else {
            panic!("{f:?}")
        };
        e
    }

    #[test]
    fn idle_heap_held_above_the_goal_is_found_with_numbers_that_add_up() {
        let (heap, resident) = burst();
        let mut mem = AddressSpace::default();
        sample(&mut mem, SECOND, heap, resident);
        // One reading is a moment, not a habit.
        assert!(unreleased_memory(&mem, 21, test_saving).is_none());
        sample(&mut mem, 3 * SECOND, heap, resident);
        let found = unreleased_memory(&mem, 21, test_saving).expect("a finding");
        let e = evidence(&found);
        let need = 4 * MIB + (4 * MIB) / 100 * 10;
        assert_eq!(e.heap_need_bytes, need);
        assert_eq!(e.idle_above_need_bytes, 257 * MIB - need);
        assert_eq!(e.excess_bytes, e.idle_above_need_bytes);
        assert_eq!(e.held_ns, 2 * SECOND);
        assert_eq!(e.runtime_other_bytes, 5 * MIB);
        // 263 = 1 in use + 256 idle + 5 other + 1 outside.
        assert_eq!(e.other_anonymous_bytes, MIB as i64);
        assert_eq!(e.file_bytes, 7 * MIB);
        assert_eq!(
            e.anonymous_bytes as i64,
            (e.heap_in_use_bytes + e.heap_free_bytes + e.runtime_other_bytes) as i64
                + e.other_anonymous_bytes
        );
        // (need + other) / 95 %, rounded up to a MiB.
        let keep = need + 5 * MIB;
        assert_eq!(
            e.suggested_gomemlimit_bytes,
            Some((keep * 100).div_ceil(95).div_ceil(MIB) * MIB)
        );
        assert!(
            found.suggestion.contains("GOMEMLIMIT=10MiB"),
            "{}",
            found.suggestion
        );
        assert!(found.suggestion.contains("debug.FreeOSMemory()"));
        assert!(!found.suggestion.contains("MADV_FREE"));
        assert!(found.suggestion.contains("Go 1.21"));
        assert!(
            !unreleased_memory(&mem, 19, test_saving)
                .unwrap()
                .suggestion
                .contains("Go 1.21")
        );
    }

    #[test]
    fn a_limit_below_the_peak_is_advised_against() {
        let (heap, resident) = burst();
        let mut mem = AddressSpace::default();
        // During the burst the goal reached 512 MiB.
        let peak = RuntimeHeap {
            gc_percent_heap_goal: 512 * MIB,
            heap_marked: 256 * MIB,
            heap_in_use: 257 * MIB,
            heap_free: 0,
            ..heap
        };
        sample(&mut mem, 0, peak, resident);
        sample(&mut mem, SECOND, heap, resident);
        sample(&mut mem, 3 * SECOND, heap, resident);
        let found = unreleased_memory(&mem, 21, test_saving).expect("a finding");
        assert_eq!(evidence(&found).peak_heap_goal_bytes, 512 * MIB);
        assert_eq!(evidence(&found).held_ns, 2 * SECOND);
        let s = &found.suggestion;
        assert!(
            s.contains("Setting GOMEMLIMIT=10MiB") && s.contains("reached 512.0 MiB"),
            "{s}"
        );
    }

    #[test]
    fn a_busy_heap_keeps_room_for_the_higher_goals_of_its_cycles() {
        // GOGC=400, the goal moving between 200 and 330 MiB as cycles mark more or less; the
        // heap retains what the higher goals needed.
        let (heap, resident) = burst();
        let at = |goal: u64| RuntimeHeap {
            gc_percent: 400,
            gc_percent_heap_goal: goal,
            heap_marked: 40 * MIB,
            heap_in_use: 90 * MIB,
            heap_free: 234 * MIB,
            mapped_ready: 330 * MIB,
            ..heap
        };
        let resident = Resident {
            anonymous: 330 * MIB,
            ..resident
        };
        let mut mem = AddressSpace::default();
        for (t, goal) in [330, 211, 300, 211, 211].into_iter().enumerate() {
            sample(&mut mem, t as u64 * SECOND / 2, at(goal * MIB), resident);
        }
        assert!(unreleased_memory(&mem, 21, test_saving).is_none());
        // The low goal for long enough, and the room is held above what the heap needs.
        for t in 5..8 {
            sample(&mut mem, t * SECOND / 2, at(211 * MIB), resident);
        }
        let found = unreleased_memory(&mem, 21, test_saving).expect("a finding");
        let e = evidence(&found);
        assert_eq!(
            (e.held_goal_bytes, e.heap_goal_bytes),
            (211 * MIB, 211 * MIB)
        );
        assert_eq!(e.held_ns, 2 * SECOND);
        assert_eq!(e.peak_heap_goal_bytes, 330 * MIB);
    }

    #[test]
    fn headroom_up_to_the_goal_is_not_a_finding() {
        // GOGC=400: 40 MiB live, a 200 MiB goal, the heap anywhere up to it.
        let heap = RuntimeHeap {
            gc_percent: 400,
            gc_percent_heap_goal: 200 * MIB,
            heap_marked: 40 * MIB,
            heap_in_use: 60 * MIB,
            heap_free: 150 * MIB,
            mapped_ready: 215 * MIB,
            ..burst().0
        };
        let resident = Resident {
            rss: 300 * MIB,
            anonymous: 216 * MIB,
            ..burst().1
        };
        let mut mem = AddressSpace::default();
        for t in 0..5 {
            sample(&mut mem, t * SECOND, heap, resident);
        }
        assert!(unreleased_memory(&mem, 21, test_saving).is_none());
    }

    #[test]
    fn a_file_mapping_in_rss_is_not_a_finding() {
        let (heap, _) = burst();
        let heap = RuntimeHeap {
            heap_free: 2 * MIB,
            mapped_ready: 8 * MIB,
            ..heap
        };
        let resident = Resident {
            rss: 520 * MIB,
            anonymous: 9 * MIB,
            ..Resident::default()
        };
        let mut mem = AddressSpace::default();
        for t in 0..5 {
            sample(&mut mem, t * SECOND, heap, resident);
        }
        assert!(unreleased_memory(&mem, 21, test_saving).is_none());
    }

    #[test]
    fn memory_on_its_way_back_is_not_a_finding() {
        let (heap, resident) = burst();
        let mut mem = AddressSpace::default();
        sample(&mut mem, 0, heap, resident);
        let returning = RuntimeHeap {
            heap_free: 128 * MIB,
            heap_released: 131 * MIB,
            mapped_ready: 134 * MIB,
            ..heap
        };
        let smaller = Resident {
            anonymous: 135 * MIB,
            ..resident
        };
        sample(&mut mem, 2 * SECOND, returning, smaller);
        assert!(unreleased_memory(&mem, 19, test_saving).is_none());
        // A reading below the threshold ends the stretch: what came before does not count.
        let mut mem = AddressSpace::default();
        sample(&mut mem, 0, heap, resident);
        let quiet = RuntimeHeap {
            heap_free: 0,
            heap_released: 259 * MIB,
            mapped_ready: 6 * MIB,
            ..heap
        };
        sample(&mut mem, SECOND, quiet, resident);
        sample(&mut mem, 2 * SECOND, heap, resident);
        assert!(unreleased_memory(&mem, 21, test_saving).is_none());
    }

    #[test]
    fn released_pages_still_resident_are_held_too() {
        // GODEBUG=madvdontneed=0 and debug.FreeOSMemory(): all returned, all still resident.
        let (heap, resident) = burst();
        let heap = RuntimeHeap {
            heap_free: 0,
            heap_released: 259 * MIB,
            mapped_ready: 6 * MIB,
            ..heap
        };
        let resident = Resident {
            lazy_free: 256 * MIB,
            ..resident
        };
        let mut mem = AddressSpace::default();
        sample(&mut mem, 0, heap, resident);
        sample(&mut mem, 2 * SECOND, heap, resident);
        let found = unreleased_memory(&mem, 19, test_saving).expect("a finding");
        let e = evidence(&found);
        assert_eq!((e.idle_above_need_bytes, e.lazy_free_bytes), (0, 256 * MIB));
        assert_eq!(e.excess_bytes, 256 * MIB);
        // 263 = 1 in use + 0 idle + 5 other + 256 lazily freed + 1 outside.
        assert_eq!(e.other_anonymous_bytes, MIB as i64);
        assert!(found.suggestion.contains("madvdontneed=1"));
        assert!(!found.suggestion.contains("FreeOSMemory"));
    }

    #[test]
    fn no_goal_no_finding_and_a_lower_limit_is_not_raised() {
        let (heap, resident) = burst();
        let off = RuntimeHeap {
            gc_percent: -1,
            gc_percent_heap_goal: u64::MAX,
            ..heap
        };
        let mut mem = AddressSpace::default();
        sample(&mut mem, 0, off, resident);
        sample(&mut mem, 2 * SECOND, off, resident);
        assert!(unreleased_memory(&mem, 21, test_saving).is_none());
        assert_eq!(suggested_limit(95 * MIB, None), Some(100 * MIB));
        assert_eq!(suggested_limit(95 * MIB, Some(200 * MIB)), Some(100 * MIB));
        assert_eq!(suggested_limit(95 * MIB, Some(100 * MIB)), None);
    }
}
