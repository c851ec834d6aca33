//! `GODEBUG=gctrace=1`: the runtime's own account of each GC cycle, the oracle mapleak's GC
//! figures are held to.

use std::collections::BTreeMap;

/// A gctrace clock figure as printed (ns) and as far as the printing truncated it: the runtime
/// prints two significant digits and drops the rest (fmtNSAsMS), so each true value is in
/// `[printed, printed + one unit of its last digit)`.
#[derive(Clone, Copy, Debug)]
pub struct Clock {
    pub printed_ns: f64,
    pub truncation_ns: f64,
}

impl Clock {
    fn parse(s: &str) -> Option<Self> {
        let decimals = s.split('.').nth(1).map_or(0, str::len);
        Some(Self {
            printed_ns: s.parse::<f64>().ok()? * 1e6,
            truncation_ns: 1e6 / 10f64.powi(decimals as i32),
        })
    }

    pub fn plus(self, other: Clock) -> Clock {
        Clock {
            printed_ns: self.printed_ns + other.printed_ns,
            truncation_ns: self.truncation_ns + other.truncation_ns,
        }
    }

    /// Whether `ns` may be what was printed.
    pub fn holds(self, ns: u64) -> bool {
        let ns = ns as f64;
        ns >= self.printed_ns && ns < self.printed_ns + self.truncation_ns
    }
}

/// `gc N @… P%: A+B+C ms clock, …` → N ↦ [A, B, C]: sweep termination, concurrent mark
/// (`tMark` to `tMarkTerm`) and mark termination (from `tMarkTerm`).
pub fn parse(stderr: &str) -> BTreeMap<u32, [Clock; 3]> {
    stderr
        .lines()
        .filter_map(|l| {
            let rest = l.strip_prefix("gc ")?;
            let n: u32 = rest.split_whitespace().next()?.parse().ok()?;
            let clock = l.split(": ").nth(1)?.split(" ms clock").next()?;
            let parts: Vec<&str> = clock.split('+').collect();
            Some((
                n,
                [
                    Clock::parse(parts.first()?)?,
                    Clock::parse(parts.get(1)?)?,
                    Clock::parse(parts.get(2)?)?,
                ],
            ))
        })
        .collect()
}

/// What a gctrace line says a cycle cost: the cpu figures `d+e/f/g+h` (sweep-termination
/// pause, assist, background, idle, mark-termination pause) and the "MB goal".
#[derive(Clone, Copy, Debug)]
pub struct Cost {
    pub sweep_term: Clock,
    pub assist: Clock,
    pub background: Clock,
    pub idle: Clock,
    pub mark_term: Clock,
    pub goal_mb: u64,
}

/// `gc N @…: … ms clock, d+e/f/g+h ms cpu, …, G MB goal, …` → N ↦ its [`Cost`].
pub fn parse_cost(stderr: &str) -> BTreeMap<u32, Cost> {
    stderr
        .lines()
        .filter_map(|l| {
            let rest = l.strip_prefix("gc ")?;
            let n: u32 = rest.split_whitespace().next()?.parse().ok()?;
            let fields: Vec<&str> = l.split(": ").nth(1)?.split(", ").collect();
            let cpu = fields.iter().find_map(|f| f.strip_suffix(" ms cpu"))?;
            let goal = fields.iter().find_map(|f| f.strip_suffix(" MB goal"))?;
            let [d, efg, h]: [&str; 3] = cpu.split('+').collect::<Vec<_>>().try_into().ok()?;
            let [e, f, g]: [&str; 3] = efg.split('/').collect::<Vec<_>>().try_into().ok()?;
            Some((
                n,
                Cost {
                    sweep_term: Clock::parse(d)?,
                    assist: Clock::parse(e)?,
                    background: Clock::parse(f)?,
                    idle: Clock::parse(g)?,
                    mark_term: Clock::parse(h)?,
                    goal_mb: goal.parse().ok()?,
                },
            ))
        })
        .collect()
}

/// `gc N …` → N ↦ e of `d+e/f/g+h ms cpu`: the cycle's mark assist time
/// (`gcController.assistTime`), as printed and as far as the printing truncated it.
pub fn assist_cpu(stderr: &str) -> BTreeMap<u32, Clock> {
    parse_cost(stderr)
        .into_iter()
        .map(|(n, cost)| (n, cost.assist))
        .collect()
}

/// How the trace ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum End {
    /// With the program: every cycle it began was seen to its end.
    ProgramExit,
    /// While the program ran on: the last cycle may still have been marking, and gctrace may
    /// print cycles after it.
    Detached,
}

/// mapleak's cycles (`gc.per_cycle` of a summary) against gctrace's, for a Go `1.minor`
/// program: the same cycle numbers from the first mapleak saw; each cycle's pauses within
/// gctrace's sweep- and mark-termination clocks, and its mark phase within the mark clock.
pub fn check_cycles(
    summary: &serde_json::Value,
    trace: &BTreeMap<u32, [Clock; 3]>,
    minor: u32,
    end: End,
) {
    let mut cycles: Vec<&serde_json::Value> = summary["gc"]["per_cycle"]
        .as_array()
        .expect("per_cycle")
        .iter()
        .collect();
    let ours: Vec<u32> = cycles
        .iter()
        .map(|c| c["cycle"].as_u64().unwrap() as u32)
        .collect();
    let first = *ours.first().expect("mapleak saw GC cycles");
    let last = match end {
        End::ProgramExit => u32::MAX,
        End::Detached => *ours.last().unwrap(),
    };
    let expected: Vec<u32> = trace
        .keys()
        .copied()
        .filter(|n| (first..=last).contains(n))
        .collect();
    assert_eq!(ours, expected, "mapleak's cycles are gctrace's");
    if end == End::Detached && cycles.last().unwrap()["mark_term_pause_ns"] == 0 {
        // Still marking when mapleak detached: its figures were never complete.
        cycles.pop();
    }
    for c in cycles {
        let n = c["cycle"].as_u64().unwrap() as u32;
        let [sweep, mark, mark_term] = trace[&n];
        let ns = |key: &str| c[key].as_u64().unwrap();
        let (sweep_ns, mark_ns, mark_term_ns) = (
            ns("sweep_term_pause_ns"),
            ns("mark_ns"),
            ns("mark_term_pause_ns"),
        );
        let pauses = sweep.plus(mark_term);
        if minor < 22 {
            // Before 1.22 the phase clocks start at work.pauseStart and end at the runtime's
            // `now`, both of which mapleak reads: the figures must be what was printed.
            assert!(
                pauses.holds(sweep_ns + mark_term_ns),
                "cycle {n}: pauses {sweep_ns} + {mark_term_ns} ns, {pauses:?}"
            );
            assert!(
                mark.holds(mark_ns),
                "cycle {n}: mark {mark_ns} ns, {mark:?}"
            );
        } else {
            // 1.22+ start each phase clock just before the runtime's stop timestamp: the pauses
            // are bounded above by theirs, and the mark phase, which runs to that timestamp,
            // makes with mark termination's pause exactly the last two clocks.
            assert!(
                ((sweep_ns + mark_term_ns) as f64) < pauses.printed_ns + pauses.truncation_ns,
                "cycle {n}: pauses {sweep_ns} + {mark_term_ns} ns, {pauses:?}"
            );
            assert!(
                mark_ns as f64 >= mark.printed_ns,
                "cycle {n}: mark {mark_ns} ns, {mark:?}"
            );
            assert!(
                mark.plus(mark_term).holds(mark_ns + mark_term_ns),
                "cycle {n}: mark {mark_ns} + {mark_term_ns} ns, {mark:?} + {mark_term:?}"
            );
        }
    }
}
