//! `gc_pressure`: map growth is a large share of what the process allocates, so of the GC
//! cycles it runs and their CPU; and what each finding that cuts that growth would save the GC
//! (see `report::gccost` for the heap-goal arithmetic).

use std::collections::BTreeMap;

use super::{Evidence, Finding, FindingKind, GcFix, GcPressure, Saving, SavingOf};
use crate::report::{
    gccost::GcCost,
    units::{bytes, duration, percent},
};

/// Below this share of all allocation, map growth is not what drives the GC.
const MIN_MAP_SHARE: f64 = 0.25;
/// Fewer cycles than this read give no mean cost or runway worth extrapolating from.
const MIN_CYCLES: u64 = 2;

/// The findings whose saving is allocation the GC would no longer have to pay for.
fn cuts_allocation(f: &Finding) -> bool {
    matches!(f.kind, FindingKind::UnsizedMap | FindingKind::MapChurn)
        && f.saving.of == SavingOf::Allocation
}

/// Gives each finding that cuts allocation what it would save the GC.
pub(super) fn gc_savings(findings: &mut [Finding], gc: &GcCost) {
    if gc.cycles < MIN_CYCLES {
        return;
    }
    for f in findings.iter_mut().filter(|f| cuts_allocation(f)) {
        f.gc = gc.saving(f.saving.bytes);
    }
}

/// The process-wide finding, when map growth drives a large share of the GC's work and the
/// findings (already given their GC saving) would cut some of it.
pub(super) fn gc_pressure(
    findings: &[Finding],
    gc: &GcCost,
    saving: impl Fn(u64) -> Saving,
) -> Option<Finding> {
    let share = gc.map_alloc_share?;
    let allocated = gc.allocated_bytes?;
    let runway = gc.runway_bytes?;
    let map_cycles = gc.map_gc_cycles?;
    if share < MIN_MAP_SHARE || gc.cycles < MIN_CYCLES || map_cycles < 1.0 {
        return None;
    }
    let mut fixes: Vec<(&Finding, GcFix)> = findings
        .iter()
        .filter(|f| cuts_allocation(f))
        .filter_map(|f| {
            let s = f.gc?;
            Some((
                f,
                GcFix {
                    kind: f.kind,
                    at: format!("{} {}:{}", f.function, f.file, f.line),
                    saving_bytes: f.saving.bytes,
                    gc_cycles_per_min: s.cycles_per_min,
                    gc_cpu_ns: s.cpu_ns,
                },
            ))
        })
        .collect();
    if fixes.is_empty() {
        return None;
    }
    fixes.sort_by(|a, b| {
        b.1.saving_bytes
            .cmp(&a.1.saving_bytes)
            .then(a.1.at.cmp(&b.1.at))
    });
    // A churning line's saving includes its maps' growth, which its unsized_map saves too: at
    // one line the fixes overlap, so only the larger counts towards their sum.
    let mut by_line: BTreeMap<(&str, u32), u64> = BTreeMap::new();
    for (f, fix) in &fixes {
        let at = by_line.entry((f.file.as_str(), f.line)).or_default();
        *at = (*at).max(fix.saving_bytes);
    }
    let together_bytes = by_line.values().sum::<u64>().min(gc.map_bytes.max(1));
    let together = gc.saving(together_bytes)?;
    let estimated = gc.map_estimated || fixes.iter().any(|(f, _)| f.estimated);
    let busy = gc.busy_ns();
    let map_cpu_ns = (map_cycles * busy as f64 / gc.cycles as f64).round() as u64;
    let named: Vec<String> = fixes
        .iter()
        .take(3)
        .map(|(f, fix)| {
            format!(
                "{} at {} (about {:.1} fewer cycles a minute, {} of GC CPU)",
                serde_json::to_value(f.kind)
                    .ok()
                    .and_then(|v| v.as_str().map(str::to_owned))
                    .unwrap_or_default(),
                fix.at,
                fix.gc_cycles_per_min,
                duration(fix.gc_cpu_ns)
            )
        })
        .collect();
    let more = match fixes.len().saturating_sub(named.len()) {
        0 => String::new(),
        n => format!(" and {n} more"),
    };
    let suggestion = format!(
        "map growth is {} of all heap allocation ({} of {}) and so accounts for about {:.1} of the {} GC cycles read ({:.1} a minute) and {} of their {} of GC CPU. The findings that would cut it: {}{more}; together they save about {:.1} GC cycles a minute and {} of GC CPU",
        percent(share),
        bytes(gc.map_bytes),
        bytes(allocated),
        map_cycles,
        gc.cycles,
        gc.per_min(map_cycles),
        duration(map_cpu_ns),
        duration(busy),
        named.join("; "),
        together.cycles_per_min,
        duration(together.cpu_ns),
    );
    let fixes_gc_cycles_per_min = together.cycles_per_min;
    let fixes_gc_cpu_ns = together.cpu_ns;
    Some(Finding {
        rank: 0,
        kind: FindingKind::GcPressure,
        function: String::new(),
        file: String::new(),
        line: 0,
        via: Vec::new(),
        evidence: Evidence::GcPressure(GcPressure {
            map_bytes: gc.map_bytes,
            allocated_bytes: allocated,
            map_alloc_share: share,
            gc_cycles: gc.cycles,
            runway_bytes: runway,
            map_gc_cycles: map_cycles,
            map_gc_cycles_per_min: gc.per_min(map_cycles),
            gc_cpu_ns: busy,
            gc_cpu_fraction: gc.cpu_fraction.unwrap_or(0.0),
            map_gc_cpu_ns: map_cpu_ns,
            fixes: fixes.into_iter().map(|(_, fix)| fix).collect(),
            fixes_gc_cycles_per_min,
            fixes_gc_cpu_ns,
        }),
        saving: saving(together_bytes),
        suggestion,
        estimated,
        also: Vec::new(),
        gc: Some(together),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::gccost::tests::model;

    const MIB: u64 = 1 << 20;

    fn finding(kind: FindingKind, file: &str, line: u32, bytes: u64) -> Finding {
        Finding {
            rank: 0,
            kind,
            function: "main.f".into(),
            file: file.into(),
            line,
            via: Vec::new(),
            evidence: Evidence::GcPressure(GcPressure {
                map_bytes: 0,
                allocated_bytes: 0,
                map_alloc_share: 0.0,
                gc_cycles: 0,
                runway_bytes: 0,
                map_gc_cycles: 0.0,
                map_gc_cycles_per_min: 0.0,
                gc_cpu_ns: 0,
                gc_cpu_fraction: 0.0,
                map_gc_cpu_ns: 0,
                fixes: Vec::new(),
                fixes_gc_cycles_per_min: 0.0,
                fixes_gc_cpu_ns: 0,
            }),
            saving: Saving {
                bytes,
                of: SavingOf::Allocation,
                ns: None,
                share: None,
            },
            suggestion: String::new(),
            estimated: false,
            also: Vec::new(),
            gc: None,
        }
    }

    fn saving(bytes: u64) -> Saving {
        Saving {
            bytes,
            of: SavingOf::Allocation,
            ns: None,
            share: Some(bytes as f64 / (60 * MIB) as f64),
        }
    }

    /// 30 MiB of map growth in 60 MiB allocated; an unsized map and a churning one at one
    /// line, another unsized map elsewhere.
    fn found() -> Vec<Finding> {
        vec![
            finding(FindingKind::UnsizedMap, "a.go", 10, 12 * MIB),
            finding(FindingKind::MapChurn, "a.go", 10, 18 * MIB),
            finding(FindingKind::UnsizedMap, "b.go", 20, 6 * MIB),
        ]
    }

    #[test]
    fn names_the_fixes_with_what_each_saves_the_gc() {
        let mut gc = model(30 * MIB, Some(60 * MIB));
        gc.map_alloc_share = Some(0.5);
        let mut found = found();
        gc_savings(&mut found, &gc);
        // 12 MiB over 6 MiB cycles: 2 cycles fewer in 10 s, 12 a minute, 2 × 2 ms of GC CPU.
        let s = found[0].gc.unwrap();
        assert_eq!(
            (s.cycles, s.cycles_per_min, s.cpu_ns),
            (2.0, 12.0, 4_000_000)
        );
        let p = gc_pressure(&found, &gc, saving).unwrap();
        let Evidence::GcPressure(e) = &p.evidence else {
            panic!("{p:?}")
        };
        // Map growth: 5 of the 10 cycles, 30 a minute, half the 20 ms of GC CPU.
        assert_eq!((e.map_gc_cycles, e.map_gc_cycles_per_min), (5.0, 30.0));
        assert_eq!((e.gc_cpu_ns, e.map_gc_cpu_ns), (20_000_000, 10_000_000));
        let at: Vec<(FindingKind, &str)> =
            e.fixes.iter().map(|f| (f.kind, f.at.as_str())).collect();
        assert_eq!(
            at,
            [
                (FindingKind::MapChurn, "main.f a.go:10"),
                (FindingKind::UnsizedMap, "main.f a.go:10"),
                (FindingKind::UnsizedMap, "main.f b.go:20"),
            ]
        );
        // Together: the larger of the two at a.go:10 and the one at b.go:20, 24 MiB, 4 cycles.
        assert_eq!(p.saving.bytes, 24 * MIB);
        assert_eq!(e.fixes_gc_cycles_per_min, 24.0);
        assert_eq!(e.fixes_gc_cpu_ns, 8_000_000);
        assert!(
            p.suggestion.starts_with("map growth is 50% "),
            "{}",
            p.suggestion
        );
    }

    #[test]
    fn quiet_when_maps_are_a_small_share_or_nothing_would_cut_them() {
        let mut gc = model(30 * MIB, Some(60 * MIB));
        gc.map_alloc_share = Some(0.2);
        let mut found = found();
        gc_savings(&mut found, &gc);
        assert!(gc_pressure(&found, &gc, saving).is_none());
        gc.map_alloc_share = Some(0.5);
        assert!(gc_pressure(&[], &gc, saving).is_none());
        // Retained capacity saves memory, not allocation: it does not cut GC work.
        let mut memory = finding(FindingKind::RetainedCapacity, "c.go", 1, 40 * MIB);
        memory.saving.of = SavingOf::Memory;
        let mut only = vec![memory];
        gc_savings(&mut only, &gc);
        assert!(only[0].gc.is_none());
        assert!(gc_pressure(&only, &gc, saving).is_none());
    }
}
