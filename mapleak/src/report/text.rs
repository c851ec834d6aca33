//! Text rendering for people: most important rows first, aligned columns, human units.

use std::fmt::Write as _;

use super::{
    summary::{Interval, Summary},
    units::{bytes, count, duration},
};

/// One line per interval for the live view.
pub fn interval(i: &Interval) -> String {
    format!(
        "[{:>8}] map grows +{:<6} +{:<10} maps grown {:<5} | total {} grows, {} | lost {}",
        duration(i.elapsed_ns),
        count(i.grow_events),
        bytes(i.grow_bytes),
        count(i.maps_grown),
        count(i.total_grow_events),
        bytes(i.total_grow_bytes),
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
        s.map_impl,
        duration(s.duration_ns),
        match s.stop_reason {
            super::StopReason::Interrupted => "interrupted",
            super::StopReason::Duration => "duration reached",
            super::StopReason::TargetExited => "target exited",
        }
    );
    let _ = writeln!(
        out,
        "map growth: {} grows ({} same-size) in {} maps, {} allocated",
        count(m.grow_events),
        count(m.same_size_grows),
        count(m.maps_seen),
        bytes(m.grow_bytes)
    );
    if !m.top.is_empty() {
        let _ = writeln!(
            out,
            "\n{:<16} {:>6} {:>12} {:>12} {:>11} {:>9}",
            "MAP", "GROWS", "ENTRIES", "CAPACITY", "ALLOCATED", "KEY/VAL"
        );
        for row in &m.top {
            let _ = writeln!(
                out,
                "{:<16} {:>6} {:>12} {:>12} {:>11} {:>9}",
                row.map,
                count(row.grow_events),
                count(row.entries),
                count(row.capacity),
                bytes(row.bytes),
                format!("{}/{} B", row.key_size, row.value_size),
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
