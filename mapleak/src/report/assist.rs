//! Who pays for the GC: mark assists by call site (the first frame outside the runtime), the
//! `assists` list of the JSON summary, and the figures the LATENCY section and the `gc_assist`
//! finding read.

use std::collections::BTreeMap;

use mapleak_common::StackRef;
use serde::Serialize;

use super::sites::{Resolutions, SourceSite, StackFrame};
use crate::aggregate::{Aggregator, assist::AssistStats};

/// What a set of assists cost the goroutines that made them.
#[derive(Clone, Debug, Default, Serialize)]
pub struct AssistTimes {
    /// Assists that ran (stole credit, marked, or were parked).
    pub count: u64,
    /// Wall time from `gcAssistAlloc`'s entry to its return, summed, and per call (P50 and P99
    /// from a log histogram, within about 2 %; max exact).
    pub total_ns: u64,
    pub p50_ns: u64,
    pub p99_ns: u64,
    pub max_ns: u64,
    /// Of `total_ns`: marking in `gcAssistAlloc1`, the window the runtime itself times as
    /// assist (`/cpu/classes/gc/mark/assist`); inside `gcMarkDone`, where the assist that
    /// finished the mark ran mark termination (which the runtime counts as pause, not assist);
    /// and parked in `gcParkAssist` waiting for credit. The rest went to stealing credit and to
    /// waiting to run again after yielding to a preemption request.
    pub work_ns: u64,
    pub in_mark_termination_ns: u64,
    pub parked_ns: u64,
    /// Calls that returned at once because the GC CPU limiter was on (not in the times).
    pub limiter_calls: u64,
}

impl From<&AssistStats> for AssistTimes {
    fn from(s: &AssistStats) -> Self {
        Self {
            count: s.calls,
            total_ns: s.total_ns,
            p50_ns: s.durations.quantile(0.5),
            p99_ns: s.durations.quantile(0.99),
            max_ns: s.durations.max(),
            work_ns: s.work_ns,
            in_mark_termination_ns: s.mark_done_ns,
            parked_ns: s.parked_ns,
            limiter_calls: s.limiter_calls,
        }
    }
}

/// Mark assists made by goroutines allocating at one line.
#[derive(Clone, Debug, Serialize)]
pub struct AssistRow {
    pub function: String,
    pub file: String,
    pub line: u32,
    #[serde(flatten)]
    pub times: AssistTimes,
    /// The share of the time these assists marked that paid for allocations made by the map
    /// implementation: assist work is proportional to
    /// the bytes allocated, so this is map growth's share of the line's allocation while the GC
    /// marked. Null when no assist here did any work.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub map_growth_share: Option<f64>,
}

/// A line's assists, summed over the stacks that end there.
#[derive(Clone, Debug, Default)]
pub struct SiteAssists {
    /// The stack that spent the most time here (whose callers a finding names).
    pub key: StackRef,
    pub stats: AssistStats,
    /// Marking time of the stacks through map code.
    pub map_work_ns: u64,
}

impl SiteAssists {
    pub fn map_growth_share(&self) -> Option<f64> {
        let work = self.stats.work_ns;
        (work > 0).then(|| (self.map_work_ns as f64 / work as f64).min(1.0))
    }
}

/// Whether a frame is the map implementation's: the allocations below it are a map's.
fn is_map_code(function: &str) -> bool {
    function.starts_with("internal/runtime/maps.")
        || [
            "runtime.map",
            "runtime.hashGrow",
            "runtime.makeBucketArray",
            "runtime.growWork",
            "runtime.evacuate",
            "runtime.(*hmap).",
        ]
        .iter()
        .any(|p| function.starts_with(p))
}

fn through_map_code(frames: &[StackFrame]) -> bool {
    frames.iter().any(|f| is_map_code(&f.function))
}

/// Assists per line, by `place`: the call site (first frame outside the runtime) for the
/// `assists` list, the program's own line for findings.
pub fn by_line(
    agg: &Aggregator,
    res: &Resolutions,
    place: impl Fn(&StackRef) -> Option<SourceSite>,
) -> BTreeMap<SourceSite, SiteAssists> {
    let mut out: BTreeMap<SourceSite, SiteAssists> = BTreeMap::new();
    let mut heaviest: BTreeMap<SourceSite, u64> = BTreeMap::new();
    for (key, stats) in agg.assists().stacks() {
        let Some(line) = place(key) else {
            continue;
        };
        let entry = out.entry(line.clone()).or_default();
        let most = heaviest.entry(line).or_default();
        if stats.total_ns >= *most {
            *most = stats.total_ns;
            entry.key = *key;
        }
        entry.stats.add(stats);
        if through_map_code(res.frames(key)) {
            entry.map_work_ns += stats.work_ns;
        }
    }
    out
}

/// Where assists whose stack has no frame outside the runtime are listed (a walk cut short,
/// a stack not kept): one row, so that the list adds up to every assist seen.
fn unattributed() -> SourceSite {
    SourceSite {
        function: "(unknown)".to_owned(),
        file: String::new(),
        line: 0,
    }
}

/// The `assists` list: every call site, most time first (ties: most calls, then the line).
pub fn rows(agg: &Aggregator, res: &Resolutions) -> Vec<AssistRow> {
    let mut rows: Vec<AssistRow> = by_line(agg, res, |k| {
        Some(res.site(k).cloned().unwrap_or_else(unattributed))
    })
    .into_iter()
    .map(|(site, a)| AssistRow {
        map_growth_share: a.map_growth_share(),
        function: site.function,
        file: site.file,
        line: site.line,
        times: AssistTimes::from(&a.stats),
    })
    .collect();
    rows.sort_by(|a, b| {
        b.times
            .total_ns
            .cmp(&a.times.total_ns)
            .then(b.times.count.cmp(&a.times.count))
            .then((&a.file, a.line).cmp(&(&b.file, b.line)))
    });
    rows
}

/// Where a stack's assists are counted for the program's user: the program's own line where
/// the stack has one, so that one place holds all the stacks that reach it; else its call site.
pub fn own_line(res: &Resolutions, key: &StackRef) -> Option<SourceSite> {
    res.own(key)
        .map(|(own, _)| own.clone())
        .or_else(|| res.site(key).cloned())
}

/// Every assist of the trace, wherever it came from: what the LATENCY section sums up.
#[derive(Clone, Debug, Default)]
pub struct AssistOverall {
    pub times: AssistTimes,
    /// The assist group was attached only part of the time: the figures are what it saw.
    pub sampled: bool,
    /// The line (the program's own where the stacks have one) whose goroutines waited longest
    /// in assists that paid, and how many other lines had such assists.
    pub top: Option<SourceSite>,
    pub other_lines: usize,
}

pub fn overall(agg: &Aggregator, res: &Resolutions, sampled: bool) -> AssistOverall {
    let mut all = AssistStats::default();
    for (_, s) in agg.assists().stacks() {
        all.add(s);
    }
    let paying: Vec<(SourceSite, SiteAssists)> = by_line(agg, res, |k| own_line(res, k))
        .into_iter()
        .filter(|(_, a)| a.stats.calls > 0)
        .collect();
    let top = paying
        .iter()
        .max_by(|a, b| {
            (a.1.stats.total_ns, a.1.stats.calls)
                .cmp(&(b.1.stats.total_ns, b.1.stats.calls))
                .then((&b.0.file, b.0.line).cmp(&(&a.0.file, a.0.line)))
        })
        .map(|(site, _)| site.clone());
    AssistOverall {
        times: AssistTimes::from(&all),
        sampled,
        top,
        other_lines: paying.len().saturating_sub(1),
    }
}

#[cfg(test)]
mod tests {
    use mapleak_common::AssistEvent;

    use super::*;
    use crate::{
        aggregate::{Aggregator, GoRules},
        decode::Event,
        report::sites::ResolvedStack,
    };

    fn line(function: &str, line: u32) -> SourceSite {
        SourceSite {
            function: function.into(),
            file: "/src/main.go".into(),
            line,
        }
    }

    fn frame(function: &str) -> StackFrame {
        StackFrame {
            pc: "0x401000".into(),
            function: function.into(),
            file: "/src/x.go".into(),
            line: 1,
            inlined: false,
        }
    }

    /// Stacks 1 and 2 end at main.add line 10, 2 through a map's growth; 3 at
    /// bytes.growSlice, called from main.log line 20; 4 has no frame outside the runtime.
    fn resolutions(agg: &Aggregator) -> Resolutions {
        Resolutions::build(agg, |s| {
            let (site, runtime) = match s.stack_id {
                1 => (Some(line("main.add", 10)), "runtime.makeslice"),
                2 => (Some(line("main.add", 10)), "runtime.hashGrow"),
                3 => (Some(line("bytes.growSlice", 267)), "runtime.newobject"),
                _ => (None, "runtime.malg"),
            };
            let own = match s.stack_id {
                3 => Some(line("main.log", 20)),
                _ => site.clone(),
            };
            ResolvedStack {
                own,
                site,
                via: Vec::new(),
                frames: vec![frame("runtime.gcAssistAlloc"), frame(runtime)],
            }
        })
    }

    fn assist(stack: i64, ns: u64, work: u64) -> Event {
        Event::Assist(AssistEvent {
            duration_ns: ns,
            work_ns: work,
            site: StackRef { stack_id: stack },
            ..Default::default()
        })
    }

    #[test]
    fn rows_sum_the_stacks_of_a_line_most_time_first_and_add_up() {
        let mut agg = Aggregator::new(GoRules {
            load_factor_num: 13,
            malloc_headers: true,
        });
        for e in [
            assist(1, 1_000_000, 600_000),
            assist(2, 3_000_000, 1_800_000),
            assist(2, 2_000_000, 1_200_000),
            assist(3, 9_000_000, 8_000_000),
            assist(4, 5_000, 0),
        ] {
            agg.record(&e);
        }
        let res = resolutions(&agg);
        let rows = rows(&agg, &res);
        let places: Vec<(&str, u32, u64, u64)> = rows
            .iter()
            .map(|r| (r.function.as_str(), r.line, r.times.count, r.times.total_ns))
            .collect();
        assert_eq!(
            places,
            [
                ("bytes.growSlice", 267, 1, 9_000_000),
                ("main.add", 10, 3, 6_000_000),
                ("(unknown)", 0, 1, 5_000)
            ]
        );
        let add = &rows[1];
        assert_eq!(add.times.work_ns, 3_600_000);
        assert_eq!(add.times.max_ns, 3_000_000);
        // 3.0 of its 3.6 ms of marking paid for a map's growth.
        let share = add.map_growth_share.unwrap();
        assert!((share - 3.0 / 3.6).abs() < 1e-9, "{share}");
        assert_eq!(rows[0].map_growth_share, Some(0.0));
        assert_eq!(rows[2].map_growth_share, None);
        // The list adds up to the aggregate's totals.
        let total: u64 = rows.iter().map(|r| r.times.total_ns).sum();
        assert_eq!(total, agg.assists().totals().total_ns);
        let all = overall(&agg, &res, false);
        assert_eq!((all.times.count, all.times.max_ns), (5, 9_000_000));
        // The LATENCY line names the program's own line, not the library's, and the other
        // own line; the stack with no frame outside the runtime has no line to name.
        assert_eq!(all.top, Some(line("main.log", 20)));
        assert_eq!(all.other_lines, 1);
    }

    #[test]
    fn map_code_is_told_from_other_runtime_code() {
        for f in [
            "runtime.hashGrow",
            "runtime.makeBucketArray",
            "runtime.mapassign_fast64",
            "runtime.growWork_faststr",
            "runtime.(*hmap).newoverflow",
            "internal/runtime/maps.(*table).rehash",
            "internal/runtime/maps.newarray",
        ] {
            assert!(is_map_code(f), "{f}");
        }
        for f in [
            "runtime.mallocgc",
            "runtime.makeslice",
            "runtime.newobject",
            "main.fill",
        ] {
            assert!(!is_map_code(f), "{f}");
        }
    }

    #[test]
    fn the_map_share_is_of_working_time() {
        let mut a = SiteAssists::default();
        a.stats.total_ns = 1_000;
        a.stats.work_ns = 500;
        a.map_work_ns = 250;
        assert_eq!(a.map_growth_share(), Some(0.5));
        a.stats.work_ns = 0;
        assert_eq!(a.map_growth_share(), None);
    }
}
