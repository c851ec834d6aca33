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
        "map growth is {} of all heap allocation ({} of {}) and so accounts for about {:.1} of the {} GC cycles read ({:.1} a minute) and {} of their {} of GC CPU. Fixing {}{more} saves together about {:.1} GC cycles a minute and {} of GC CPU",
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
