//! Text rendering for people: most important rows first, aligned columns, human units.

use std::fmt::Write as _;

use super::{
    sampling::ScaledBy,
    summary::{Interval, Summary},
    units::{bytes, count, duration},
};

/// A type name cut to its column, marked where cut.
fn clip(name: &str) -> String {
    const WIDTH: usize = 24;
    if name.chars().count() <= WIDTH {
        return name.to_owned();
    }
    let mut cut: String = name.chars().take(WIDTH - 1).collect();
    cut.push('…');
    cut
}

/// One line per interval for the live view: growth, GC and memory side by side.
pub fn interval(i: &Interval) -> String {
    format!(
        "[{:>8}] maps +{:<6} grows +{:<10} ({} grown) | gc {} cycles, pause max {:<9} | rss {} mapped {} released {} | lost {}",
        duration(i.elapsed_ns),
        count(i.grow_events),
        bytes(i.grow_bytes),
        count(i.maps_grown),
        count(i.gc_cycles),
        duration(i.gc_pause_max_ns),
        bytes(i.rss_bytes),
        bytes(i.held_bytes),
        bytes(i.released_bytes),
        count(i.events.lost),
    )
}

pub fn summary(s: &Summary) -> String {
    let mut out = String::new();
    let m = &s.maps;
    let _ = writeln!(
        out,
        "\nmapleak: pid {} ({}, {} maps), traced {} ({})",
        s.pid,
        s.go_version,
        s.map_impl.as_str(),
        duration(s.duration_ns),
        match s.stop_reason {
            super::StopReason::Interrupted => "interrupted",
            super::StopReason::Duration => "duration reached",
            super::StopReason::TargetExited => "target exited",
            super::StopReason::TargetExec => "target executed another program",
            super::StopReason::OutputClosed => "output closed",
            super::StopReason::Error => "stopped by an error",
        }
    );
    if let Some(latency) = super::latency::section(s) {
        out.push_str(&latency);
    }
    let _ = writeln!(
        out,
        "map growth: {} grows ({} same-size) in {} maps, {} allocated",
        count(m.grow_events),
        count(m.same_size_grows),
        count(m.maps_seen),
        bytes(m.grow_bytes)
    );
    for g in s.sampling.groups.iter().filter(|g| g.sampled) {
        let _ = writeln!(
            out,
            "sampled: the {} probes were attached {:.1}% of the time to keep the target's overhead under {}; \
             counts are what was seen ({} events; about {}{} scaled by {}); --exact sees all",
            g.group.name(),
            g.attached_fraction * 100.0,
            super::units::percent(s.sampling.max_overhead),
            count(g.observed_events),
            count(g.estimated_events),
            g.estimated_events_interval
                .map_or(String::new(), |(lo, hi)| format!(
                    ", 95% between {} and {}",
                    count(lo),
                    count(hi)
                )),
            match g.scaled_by {
                ScaledBy::Allocation => "the heap the target allocated",
                ScaledBy::Cpu => "the target's CPU time",
                ScaledBy::Wall | ScaledBy::None => "attached time",
            },
        );
    }
    if !m.top.is_empty() {
        let _ = writeln!(
            out,
            "\n{:<16} {:<24} {:>6} {:>10} {:>10} {:>10}  GROWN AT",
            "MAP", "TYPE", "GROWS", "ENTRIES", "CAPACITY", "ALLOCATED"
        );
        for row in &m.top {
            let ty = row
                .type_name
                .as_deref()
                .map_or_else(|| format!("{}/{} B", row.key_size, row.value_size), clip);
            let at = row.grown_at.as_ref().map_or_else(String::new, |s| {
                format!("{} {}:{}", s.function, s.file, s.line)
            });
            let _ = writeln!(
                out,
                "{:<16} {:<24} {:>6} {:>10} {:>10} {:>10}  {at}",
                row.map,
                ty,
                count(row.grow_events),
                count(row.entries),
                count(row.capacity),
                bytes(row.bytes),
            );
        }
    }
    if m.maps_evicted > 0 {
        let _ = writeln!(
            out,
            "({} older maps folded into the totals to bound memory)",
            count(m.maps_evicted)
        );
    }
    if !s.sites.is_empty() {
        let _ = writeln!(
            out,
            "\n{:>7} {:>11} {:>6} {:>12}  CALL SITE",
            "GROWS", "ALLOCATED", "MAPS", "ENTRIES p50"
        );
        for site in &s.sites {
            let _ = writeln!(
                out,
                "{:>7} {:>11} {:>6} {:>12}  {} {}:{}",
                count(site.grow_events),
                bytes(site.bytes),
                count(site.maps),
                count(site.final_entries_p50),
                site.function,
                site.file,
                site.line
            );
        }
    }
    findings_section(&mut out, s);
    gc_section(&mut out, s);
    let m = &s.memory;
    let _ = writeln!(
        out,
        "\nmemory (the runtime's mmap, munmap, madvise): {} committed, {} released ({} DONTNEED, {} FREE), {} unmapped, {} still mapped; RSS {}",
        bytes(m.committed_bytes),
        bytes(m.released_bytes),
        bytes(m.released_dontneed_bytes),
        bytes(m.released_free_bytes),
        bytes(m.unmapped_bytes),
        bytes(m.held_bytes),
        bytes(m.rss_bytes),
    );
    if let (Some(in_use), Some(free), Some(released)) = (
        m.heap_in_use_bytes,
        m.heap_free_bytes,
        m.heap_released_bytes,
    ) {
        let goal = m.heap_goal_bytes.map_or("none".to_owned(), bytes);
        let gogc = match m.gogc {
            Some(p) if p < 0 => "off".to_owned(),
            Some(p) => p.to_string(),
            None => "?".to_owned(),
        };
        let limit = m.gomemlimit_bytes.map_or("unset".to_owned(), bytes);
        let anonymous = m
            .anonymous_bytes
            .map(|a| format!("; anonymous RSS {}", bytes(a)))
            .unwrap_or_default();
        let _ = writeln!(
            out,
            "heap (the runtime's accounting): {} in use, {} idle, {} released; goal {goal} (GOGC {gogc}, GOMEMLIMIT {limit}){anonymous}",
            bytes(in_use),
            bytes(free),
            bytes(released),
        );
    }
    if !s.notes.is_empty() {
        let _ = writeln!(out);
        for note in &s.notes {
            let _ = writeln!(out, "note: {note}");
        }
    }
    let e = &s.events;
    let _ = writeln!(
        out,
        "\nevents: {} received, {} lost, {} invalid, {} unreadable",
        count(e.received),
        count(e.lost),
        count(e.invalid),
        count(e.read_errors)
    );
    if e.lost > 0 {
        let _ = writeln!(
            out,
            "warning: {} events were dropped because the ring buffer was full; raise --ring-size",
            count(e.lost)
        );
    }
    out
}

/// What the GC cost, as the runtime accounts for it, and how much of it map growth drives.
fn gc_cost_line(out: &mut String, g: &super::gc::GcSummary) {
    let Some(fraction) = g.cpu_fraction else {
        return;
    };
    let gogc = match g.gogc {
        Some(-1) => "off".to_owned(),
        Some(p) => p.to_string(),
        None => "?".to_owned(),
    };
    let limit = g.gomemlimit_bytes.map_or("unset".to_owned(), bytes);
    let room = g
        .room
        .summary()
        .map(|r| format!(" ({r})"))
        .unwrap_or_default();
    let maps = match (g.map_alloc_share, g.map_gc_cycles) {
        (Some(share), Some(cycles)) => format!(
            "; map growth is {}{} of allocation, about {cycles:.1} of the cycles",
            if g.map_alloc_estimated { "about " } else { "" },
            super::units::percent(share)
        ),
        (Some(share), None) => format!(
            "; map growth is {}{} of allocation",
            if g.map_alloc_estimated { "about " } else { "" },
            super::units::percent(share)
        ),
        _ => String::new(),
    };
    let _ = writeln!(
        out,
        "gc cost: {} of CPU over {} cycles (assist {}, background {}, pause {}; idle {}); GOGC {gogc}, GOMEMLIMIT {limit}{room}{maps}",
        super::units::percent(fraction),
        count(g.cost_cycles),
        duration(g.assist_cpu_ns),
        duration(g.background_cpu_ns),
        duration(g.pause_cpu_ns),
        duration(g.idle_cpu_ns),
    );
}

/// Longest-pause cycles first, each beside the map growth that preceded it.
fn gc_section(out: &mut String, s: &Summary) {
    let g = &s.gc;
    if g.cycles == 0 && s.stw_other.is_empty() {
        return;
    }
    let _ = writeln!(
        out,
        "\ngc: {} cycles, {} pauses totalling {} (p50 {}, p99 {}, max {})",
        count(g.cycles),
        count(g.pause_count),
        duration(g.pause_total_ns),
        duration(g.pause_p50_ns),
        duration(g.pause_p99_ns),
        duration(g.pause_max_ns),
    );
    gc_cost_line(out, g);
    let b = &g.growth_bursts;
    if b.after_burst.cycles > 0 {
        let _ = writeln!(
            out,
            "cycles after more than {} of map growth: pause p50 {} p99 {} ({} cycles); others: p50 {} p99 {} ({} cycles)",
            bytes(b.threshold_bytes),
            duration(b.after_burst.pause_p50_ns),
            duration(b.after_burst.pause_p99_ns),
            count(b.after_burst.cycles),
            duration(b.others.pause_p50_ns),
            duration(b.others.pause_p99_ns),
            count(b.others.cycles),
        );
    }
    let mut worst: Vec<_> = g.per_cycle.iter().collect();
    worst.sort_by_key(|c| std::cmp::Reverse(c.sweep_term_pause_ns + c.mark_term_pause_ns));
    if !worst.is_empty() {
        let _ = writeln!(
            out,
            "\n{:>7} {:>10} {:>10} {:>10} {:>8} {:>11} {:>9}",
            "CYCLE", "SWEEP STW", "MARK", "MARK STW", "GROWS", "GROWN", "IN MARK"
        );
    }
    for c in worst.iter().take(10) {
        let _ = writeln!(
            out,
            "{:>7} {:>10} {:>10} {:>10} {:>8} {:>11} {:>9}",
            c.cycle,
            duration(c.sweep_term_pause_ns),
            duration(c.mark_ns),
            duration(c.mark_term_pause_ns),
            count(c.map_grow_events),
            bytes(c.map_grow_bytes),
            count(c.mark_grow_events),
        );
    }
    for o in &s.stw_other {
        let _ = writeln!(
            out,
            "other stop-the-world: {} ×{}, {} total, max {}",
            o.reason,
            count(o.count),
            duration(o.total_ns),
            duration(o.max_ns)
        );
    }
}

/// Findings shown in full, the most saving first; the JSON keeps them all, ranked.
const FINDINGS_SHOWN: usize = 10;

fn findings_section(out: &mut String, s: &Summary) {
    if s.findings.is_empty() {
        return;
    }
    let _ = writeln!(out, "\nFINDINGS (most saving first)");
    for f in s.findings.iter().take(FINDINGS_SHOWN) {
        let kind = serde_json::to_value(f.kind).unwrap_or_default();
        let place = if f.line == 0 {
            "the whole process".to_owned()
        } else {
            format!("{} {}:{}", f.function, f.file, f.line)
        };
        let of = match f.saving.of {
            super::findings::SavingOf::Allocation => "allocation",
            super::findings::SavingOf::Memory => "memory",
            super::findings::SavingOf::Latency => "waiting",
        };
        let share = f.saving.share.map_or(String::new(), |s| {
            let whole = match f.saving.of {
                super::findings::SavingOf::Allocation => "all the process allocated",
                super::findings::SavingOf::Memory => "what the process holds",
                super::findings::SavingOf::Latency => {
                    "the trace's duration, summed over goroutines"
                }
            };
            format!(", {} of {whole}", super::units::percent(s))
        });
        let saved = f.saving.ns.map_or_else(|| bytes(f.saving.bytes), duration);
        let _ = writeln!(
            out,
            "{}. {}{} at {place}: saves {} of {of}{share}\n   {}",
            f.rank,
            kind.as_str().unwrap_or("?"),
            if f.estimated {
                " (estimated: sampled)"
            } else {
                ""
            },
            saved,
            f.suggestion
        );
        if let Some(gc) =
            f.gc.filter(|_| f.kind != super::findings::FindingKind::GcPressure)
        {
            let _ = writeln!(
                out,
                "   GC: about {:.1} fewer cycles a minute and {} less GC CPU",
                gc.cycles_per_min,
                duration(gc.cpu_ns)
            );
        }
    }
    if s.findings.len() > FINDINGS_SHOWN {
        let _ = writeln!(
            out,
            "… and {} more (every finding is in the JSON report, ranked)",
            s.findings.len() - FINDINGS_SHOWN
        );
    }
}
