//! A GC cycle's cost as the runtime accounts for it, out of the words the start-the-world probe
//! read while the world was stopped (`mapleak_common::GcCost`), and checked before anything
//! believes them: a layout that is wrong for this binary, or a read that raced the next cycle,
//! shows as values no cycle can have.

use mapleak_common::{GC_COST_CONTROLLER, GC_COST_LIMITER, GC_COST_WORK, GcCost};

/// `gcControllerState.memoryLimit` when GOMEMLIMIT is unset.
const NO_LIMIT: i64 = i64::MAX;
/// More Ps than any machine runs (the runtime caps GOMAXPROCS far lower).
const MAX_PROCS: i32 = 1 << 16;
/// A GC cycle longer than this is garbage, not a slow cycle.
const MAX_CYCLE_NS: i64 = 24 * 3600 * 1_000_000_000;
/// Marks and assists run on Ps, at most `maxprocs` at once, within the cycle's clocks; their
/// sum may exceed `maxprocs ×` the cycle's wall time only by the runtime's clock reads around
/// them.
const CLOCK_SLACK_NS: i64 = 1_000_000;
/// The x86-64 user address space: no heap figure can be larger.
const USER_SPACE: u64 = 1 << 47;

/// One cycle's cost, believed.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CycleCost {
    /// `memstats.numgc` once the cycle ended: gctrace's `gc N`.
    pub cycle: u32,
    /// When it was read (the kernel's monotonic clock, which is the runtime's `nanotime`).
    pub ts_ns: u64,
    /// Mark assist, background (dedicated + fractional) and idle mark CPU: gctrace's `e/f/g`.
    pub assist_ns: u64,
    pub background_ns: u64,
    pub idle_ns: u64,
    /// gctrace's pause CPU `d + h`: `stwprocs × (tMark − tSweepTerm + tEnd − tMarkTerm)`.
    pub pause_ns: u64,
    /// From sweep termination's start to the end of mark termination.
    pub wall_ns: u64,
    /// GOMAXPROCS when the cycle started.
    pub maxprocs: u32,
    /// The cycle's heap goal (`lastHeapGoal`, gctrace's "MB goal").
    pub heap_goal: u64,
    /// What it marked live (`heapMarked`).
    pub heap_marked: u64,
    /// Heap bytes allocated since the process started (`totalAlloc`), at its end.
    pub total_alloc: u64,
    /// GOGC (-1: off) and GOMEMLIMIT (`None`: unset).
    pub gc_percent: i32,
    pub memory_limit: Option<u64>,
    /// Whether the GC CPU limiter was on at the cycle's end or turned on during it (`None`:
    /// its state could not be read).
    pub limiter: Option<bool>,
}

impl CycleCost {
    /// What the GC used of the CPU the program could use: all but idle marking, which only
    /// runs on Ps with nothing else to do (gctrace's and `GCCPUFraction`'s definition).
    pub fn busy_ns(&self) -> u64 {
        self.assist_ns + self.background_ns + self.pause_ns
    }
}

/// Why a reading was not believed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Refused {
    /// The cycle's accounting was due but could not be read.
    Unread,
    /// P counts no machine has, or `stwprocs` above `maxprocs`.
    Procs,
    /// Phase clocks out of order, in the future, or a cycle of more than a day.
    Clocks,
    /// Negative mark times, or more than the Ps could have run in the cycle.
    Times,
    /// GOGC below -1, a negative GOMEMLIMIT, or heap figures beyond the address space.
    Heap,
    /// `totalAlloc` below an earlier cycle's.
    WentBack,
}

impl Refused {
    pub fn why(self) -> &'static str {
        match self {
            Refused::Unread => "its words could not be read",
            Refused::Procs => "impossible P counts",
            Refused::Clocks => "phase clocks out of order",
            Refused::Times => "mark times beyond what its Ps could run",
            Refused::Heap => "impossible GOGC, GOMEMLIMIT or heap figures",
            Refused::WentBack => "an allocation counter that went back",
        }
    }
}

/// What the probe read at a start of the world with `numgc` cycles ended, at `ts_ns`: `None`
/// when it was not the end of a cycle (the kernel reads only when `work.cycles` equals `numgc`,
/// and there is no cycle 0), else the cycle's cost or why it is refused.
pub fn check(c: &GcCost, numgc: u32, ts_ns: u64) -> Option<Result<CycleCost, Refused>> {
    if numgc == u32::MAX || numgc == 0 || c.cycles != numgc {
        return None;
    }
    Some(believe(c, numgc, ts_ns))
}

fn believe(c: &GcCost, numgc: u32, ts_ns: u64) -> Result<CycleCost, Refused> {
    let both = GC_COST_WORK | GC_COST_CONTROLLER;
    if c.read & both != both {
        return Err(Refused::Unread);
    }
    if !(1..=MAX_PROCS).contains(&c.maxprocs) || !(1..=c.maxprocs).contains(&c.stwprocs) {
        return Err(Refused::Procs);
    }
    let now = i64::try_from(ts_ns).map_err(|_| Refused::Clocks)?;
    let clocks = [c.t_sweep_term, c.t_mark, c.t_mark_term, c.t_end, now];
    if c.t_sweep_term <= 0
        || clocks.windows(2).any(|w| w[0] > w[1])
        || c.t_end - c.t_sweep_term > MAX_CYCLE_NS
    {
        return Err(Refused::Clocks);
    }
    let wall = c.t_end - c.t_sweep_term;
    let times = [c.assist_ns, c.dedicated_ns, c.fractional_ns, c.idle_ns];
    let could_run = i64::from(c.maxprocs)
        .saturating_mul(wall)
        .saturating_add(CLOCK_SLACK_NS);
    if times.iter().any(|&t| t < 0)
        || times.iter().fold(0i64, |a, &t| a.saturating_add(t)) > could_run
    {
        return Err(Refused::Times);
    }
    if c.gc_percent < -1
        || c.memory_limit < 0
        || c.heap_marked > USER_SPACE
        || c.heap_goal > NO_LIMIT as u64
    {
        return Err(Refused::Heap);
    }
    let stw = i64::from(c.stwprocs);
    let pause = stw * (c.t_mark - c.t_sweep_term) + stw * (c.t_end - c.t_mark_term);
    let limiter = (c.read & GC_COST_LIMITER != 0 && c.limiter_enabled <= 1)
        // lastEnabledCycle is numgc + 1 when the limiter turned on: this cycle's number.
        .then_some(c.limiter_enabled == 1 || c.limiter_last_enabled_cycle == numgc);
    Ok(CycleCost {
        cycle: numgc,
        ts_ns,
        assist_ns: c.assist_ns as u64,
        background_ns: (c.dedicated_ns + c.fractional_ns) as u64,
        idle_ns: c.idle_ns as u64,
        pause_ns: pause as u64,
        wall_ns: wall as u64,
        maxprocs: c.maxprocs as u32,
        heap_goal: c.heap_goal,
        heap_marked: c.heap_marked,
        total_alloc: c.total_alloc,
        gc_percent: c.gc_percent,
        memory_limit: (c.memory_limit != NO_LIMIT).then_some(c.memory_limit as u64),
        limiter,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A cycle of 2 Ps: 100 µs sweep termination, 5 ms mark, 200 µs mark termination.
    fn read() -> GcCost {
        GcCost {
            read: GC_COST_WORK | GC_COST_CONTROLLER | GC_COST_LIMITER,
            cycles: 7,
            stwprocs: 2,
            maxprocs: 2,
            t_sweep_term: 1_000_000,
            t_mark: 1_100_000,
            t_mark_term: 6_100_000,
            t_end: 6_300_000,
            assist_ns: 1_500_000,
            dedicated_ns: 4_000_000,
            fractional_ns: 500_000,
            idle_ns: 300_000,
            heap_goal: 8 << 20,
            heap_marked: 4 << 20,
            total_alloc: 100 << 20,
            memory_limit: NO_LIMIT,
            gc_percent: 100,
            limiter_last_enabled_cycle: 0,
            limiter_enabled: 0,
            _pad: [0; 7],
        }
    }

    #[test]
    fn the_cycles_figures_are_gctraces() {
        let c = check(&read(), 7, 6_400_000).unwrap().unwrap();
        assert_eq!(c.cycle, 7);
        assert_eq!(c.assist_ns, 1_500_000);
        assert_eq!(c.background_ns, 4_500_000);
        assert_eq!(c.idle_ns, 300_000);
        // d + h = 2 × 100 µs + 2 × 200 µs.
        assert_eq!(c.pause_ns, 600_000);
        assert_eq!(c.wall_ns, 5_300_000);
        assert_eq!(c.busy_ns(), 6_600_000);
        assert_eq!(c.memory_limit, None);
        assert_eq!(c.limiter, Some(false));
    }

    #[test]
    fn only_the_end_of_a_cycle_is_read() {
        // A restart after sweep termination: work.cycles is numgc + 1, and nothing was read.
        let during = GcCost {
            cycles: 0,
            read: 0,
            ..read()
        };
        assert_eq!(check(&during, 7, 6_400_000), None);
        // Unknown numgc, and no cycle yet.
        assert_eq!(check(&read(), u32::MAX, 6_400_000), None);
        let none = GcCost {
            cycles: 0,
            ..read()
        };
        assert_eq!(check(&none, 0, 6_400_000), None);
        // Due but unread.
        let unread = GcCost {
            read: GC_COST_WORK,
            ..read()
        };
        assert_eq!(check(&unread, 7, 6_400_000), Some(Err(Refused::Unread)));
    }

    #[test]
    fn impossible_figures_are_refused() {
        let refused = |c: GcCost, ts: u64| check(&c, 7, ts).unwrap().err();
        assert_eq!(refused(read(), 6_000_000), Some(Refused::Clocks));
        assert_eq!(
            refused(
                GcCost {
                    t_mark: 900_000,
                    ..read()
                },
                6_400_000
            ),
            Some(Refused::Clocks)
        );
        assert_eq!(
            refused(
                GcCost {
                    stwprocs: 3,
                    ..read()
                },
                6_400_000
            ),
            Some(Refused::Procs)
        );
        // Two Ps for 5.3 ms cannot mark for 20 ms.
        assert_eq!(
            refused(
                GcCost {
                    dedicated_ns: 20_000_000,
                    ..read()
                },
                6_400_000
            ),
            Some(Refused::Times)
        );
        assert_eq!(
            refused(
                GcCost {
                    idle_ns: -1,
                    ..read()
                },
                6_400_000
            ),
            Some(Refused::Times)
        );
        assert_eq!(
            refused(
                GcCost {
                    gc_percent: -2,
                    ..read()
                },
                6_400_000
            ),
            Some(Refused::Heap)
        );
    }

    #[test]
    fn the_limiter_counts_when_on_at_the_end_or_turned_on_during_the_cycle() {
        let limiter = |enabled, last| {
            check(
                &GcCost {
                    limiter_enabled: enabled,
                    limiter_last_enabled_cycle: last,
                    ..read()
                },
                7,
                6_400_000,
            )
            .unwrap()
            .unwrap()
            .limiter
        };
        assert_eq!(limiter(1, 3), Some(true));
        assert_eq!(limiter(0, 7), Some(true));
        assert_eq!(limiter(0, 6), Some(false));
        assert_eq!(limiter(2, 0), None);
        let unread = GcCost {
            read: GC_COST_WORK | GC_COST_CONTROLLER,
            ..read()
        };
        assert_eq!(check(&unread, 7, 6_400_000).unwrap().unwrap().limiter, None);
        let limited = GcCost {
            memory_limit: 1 << 30,
            ..read()
        };
        assert_eq!(
            check(&limited, 7, 6_400_000).unwrap().unwrap().memory_limit,
            Some(1 << 30)
        );
    }
}
