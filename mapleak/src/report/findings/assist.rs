//! Goroutines that lose time to GC mark assists (`gc_assist`): while the GC marks, an
//! allocating goroutine owes scan work in proportion to what it allocates and must pay it
//! (mark, or wait parked) before its allocation returns. That is latency on the request the
//! goroutine serves, and it lands at the lines that allocate.

use super::{
    Evidence, FindingKind, GcAssist, Saving, SavingOf,
    rules::{Inputs, Proposal},
};
use crate::report::{
    assist::{AssistTimes, by_line, own_line},
    units::{duration, percent},
};

/// A line's goroutines must have waited this long in assists over the trace …
const MIN_ASSIST_NS: u64 = 10_000_000;
/// … a twentieth of the trace's duration (summed over its goroutines): less is the ordinary
/// cost of allocating while the GC marks (the growth-in-GC fixture's correct twin, which
/// allocates during every mark phase, lost 1.2 % and a P99 of 256 µs) …
const MIN_SHARE_OF_TRACE: f64 = 0.05;
/// … in this many assists: a single one is a cycle's bad luck, not the line's habit.
const MIN_CALLS: u64 = 8;

/// Worth a change: enough time lost, over enough of the trace.
pub(super) fn worth_a_change(s: &Saving) -> bool {
    s.ns.is_some_and(|ns| ns >= MIN_ASSIST_NS)
        && s.share.is_none_or(|share| share >= MIN_SHARE_OF_TRACE)
}

pub(super) fn gc_assist(i: &Inputs) -> Vec<Proposal> {
    let Some(attached) = i.assist_share else {
        return Vec::new();
    };
    // A stack without an own line stays at its call site and is counted as outside the
    // program by the rules.
    let lines = by_line(i.agg, i.res, |k| own_line(i.res, k));
    // One room for every line: the settings are the process's.
    let room = i.room.advice();
    let mut out = Vec::new();
    for (_, a) in lines {
        let s = &a.stats;
        if s.calls < MIN_CALLS || s.total_ns < MIN_ASSIST_NS {
            continue;
        }
        let share_of_trace = s.total_ns as f64 / i.duration_ns.max(1) as f64;
        let evidence = GcAssist {
            times: AssistTimes::from(s),
            share_of_trace,
            map_growth_share: a.map_growth_share(),
        };
        let e = evidence.clone();
        let room = room.clone();
        let suggest = move |via: &[String]| suggestion(&e, via, &room);
        out.push(Proposal {
            kind: FindingKind::GcAssist,
            key: Some(a.key),
            evidence: Evidence::GcAssist(evidence),
            saving: Saving {
                bytes: 0,
                of: SavingOf::Latency,
                ns: Some(s.total_ns),
                share: Some(share_of_trace),
            },
            suggest: Box::new(suggest),
            estimated: attached < 1.0,
        });
    }
    out
}

fn suggestion(evidence: &GcAssist, via: &[String], room: &str) -> String {
    let e = &evidence.times;
    let through = match via {
        [] => String::new(),
        [first, ..] => format!(" (they allocate inside {first}, called from here)"),
    };
    let mut split = vec![format!("{} marking", duration(e.work_ns))];
    if e.in_mark_termination_ns > 0 {
        split.push(format!(
            "{} running mark termination (which the runtime counts as pause)",
            duration(e.in_mark_termination_ns)
        ));
    }
    if e.parked_ns > 0 {
        split.push(format!("{} parked", duration(e.parked_ns)));
    }
    let split = format!("; of it {}", split.join(", "));
    let what = match evidence.map_growth_share {
        Some(share) if share >= 0.5 => format!(
            "{} of what these assists paid for was map growth: pre-size the maps made here (the map findings at this line say how), so they are allocated once",
            percent(share)
        ),
        Some(share) => format!(
            "{} of what these assists paid for was map growth; the rest is other allocation here: allocate less while the GC marks (reuse buffers, pre-size slices and maps)",
            percent(share)
        ),
        None => {
            "allocate less while the GC marks (reuse buffers, pre-size slices and maps)".to_owned()
        }
    };
    format!(
        "goroutines allocating here{through} waited {} in {} GC mark assists (P50 {}, P99 {}, max {}{split}): while the GC marks, every allocation is charged scan work and the goroutine pays it before the allocation returns. {what}; or {room}",
        duration(e.total_ns),
        e.count,
        duration(e.p50_ns),
        duration(e.p99_ns),
        duration(e.max_ns),
    )
}
