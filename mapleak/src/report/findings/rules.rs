//! Which findings a trace yields: each rule proposes findings at a call site; they are then
//! placed at the line of the program's own code, kept only when they save enough to be worth a
//! change, and ranked by what they save.

use std::collections::BTreeMap;

use mapleak_common::StackRef;

use super::{Evidence, Finding, FindingKind, Saving, SavingOf};
use crate::{
    aggregate::{Aggregator, MapState},
    inspect::MapImpl,
    report::sites::{Resolutions, SiteTotals, SourceSite, maps_by_site, stats_by_site},
};

pub(super) const MIB: u64 = 1 << 20;
/// A finding must save at least this much …
const MIN_SAVING_BYTES: u64 = MIB;
/// … and this share of what the process allocated (or holds), when that is known: a saving
/// the process would not notice is not worth its reader's time.
const MIN_SAVING_SHARE: f64 = 0.005;

/// What the rules look at.
pub struct Inputs<'a> {
    pub agg: &'a Aggregator,
    pub res: &'a Resolutions,
    pub map_impl: MapImpl,
    pub go_minor: u32,
    pub duration_ns: u64,
    /// Share of the trace the growth group was attached.
    pub growth_share: f64,
    /// Same for the creation group; `None` when the creation probe was off.
    pub create_share: Option<f64>,
    /// Same for the GC group: the share of the trace whose mark phases were seen.
    pub gc_share: f64,
    /// Same for the assist group; `None` when its probes were not attached.
    pub assist_share: Option<f64>,
    /// How many times what the growth and creation groups saw the whole trace held (their
    /// estimates over their observed counts; 1 when attached throughout).
    pub growth_scale: f64,
    pub create_scale: f64,
    /// Heap bytes the target allocated during the trace, when its runtime's counter was read.
    pub allocated_bytes: Option<u64>,
    /// What the GC cost over the trace, when its cycles' cost was read.
    pub gc: Option<&'a crate::report::gccost::GcCost>,
    /// What set the heap goal, for the advice on giving the GC more room.
    pub room: crate::report::room::Room,
}

impl Inputs<'_> {
    pub(super) fn seconds(&self) -> f64 {
        (self.duration_ns as f64 / 1e9).max(1e-3)
    }

    pub(super) fn growth_sampled(&self) -> bool {
        self.growth_share < 1.0
    }

    /// What `bytes` of allocation saved over the trace is worth.
    pub(super) fn allocation_saving(&self, bytes: u64) -> Saving {
        Saving {
            bytes,
            of: SavingOf::Allocation,
            ns: None,
            share: self
                .allocated_bytes
                .filter(|&total| total > 0)
                .map(|total| bytes as f64 / total as f64),
        }
    }

    /// What `bytes` of memory given back is worth.
    pub(super) fn memory_saving(&self, bytes: u64) -> Saving {
        Saving {
            bytes,
            of: SavingOf::Memory,
            ns: None,
            share: self
                .agg
                .memory()
                .rss_bytes()
                .filter(|&rss| rss > 0)
                .map(|rss| bytes as f64 / rss as f64),
        }
    }
}

/// Growth per source line, and the maps last grown at each, as the rules read them.
pub(super) struct Sites<'a> {
    pub stats: SiteTotals,
    pub maps: BTreeMap<SourceSite, Vec<&'a MapState>>,
}

/// Writes a suggestion, told the library code the maps grew in (`via`, innermost first; empty
/// when they grew in the program's own code).
pub(super) type Suggest = Box<dyn Fn(&[String]) -> String>;

/// A finding as a rule proposes it: at the call site where the maps grew, through the stack
/// `key`, before it is placed at the program's own line.
pub(super) struct Proposal {
    pub kind: FindingKind,
    pub key: Option<StackRef>,
    pub evidence: Evidence,
    pub saving: Saving,
    pub suggest: Suggest,
    pub estimated: bool,
}

/// The findings, and how many were left out.
pub struct Found {
    pub findings: Vec<Finding>,
    /// Proposed at code outside the program (the standard library, another module, the
    /// runtime) with no line of its own below: nothing the program's authors can edit.
    pub outside: u64,
    /// Saving less than is worth a change.
    pub minor: u64,
}

pub fn findings(i: &Inputs) -> Found {
    let sites = Sites {
        stats: stats_by_site(i.agg, i.res),
        maps: maps_by_site(i.agg, i.res),
    };
    let mut proposals = Vec::new();
    proposals.extend(super::sizing::unsized_maps(i, &sites));
    proposals.extend(super::sizing::same_size_growth(i, &sites));
    proposals.extend(super::churn::map_churn(i, &sites));
    proposals.extend(super::retained::retained_capacity(i, &sites));
    proposals.extend(super::gc::growth_in_gc(i, &sites));
    proposals.extend(super::assist::gc_assist(i));
    let mut found = Found {
        findings: Vec::new(),
        outside: 0,
        minor: 0,
    };
    let mut found_at = Vec::new();
    for p in proposals {
        let Some((own, via)) = p.key.and_then(|k| i.res.own(&k)) else {
            found.outside += 1;
            continue;
        };
        let grew_at = p
            .key
            .and_then(|k| i.res.site(&k))
            .map_or_else(String::new, |s| {
                format!("{} {}:{}", s.function, s.file, s.line)
            });
        let finding = Finding {
            rank: 0,
            kind: p.kind,
            function: own.function.clone(),
            file: own.file.clone(),
            line: own.line,
            via: via.to_vec(),
            evidence: p.evidence,
            saving: p.saving,
            suggestion: (p.suggest)(via),
            estimated: p.estimated,
            also: Vec::new(),
            gc: None,
        };
        found_at.push((finding, grew_at));
    }
    found.findings = fold_same_line(found_at);
    found.findings.extend(super::memory::unreleased_memory(
        i.agg.memory(),
        i.go_minor,
        |b| i.memory_saving(b),
    ));
    let (kept, minor): (Vec<Finding>, Vec<Finding>) =
        found.findings.into_iter().partition(worth_a_change);
    found.minor = minor.len() as u64;
    found.findings = kept;
    if let Some(gc) = i.gc {
        super::pressure::gc_savings(&mut found.findings, gc);
        let pressure =
            super::pressure::gc_pressure(&found.findings, gc, |b| i.allocation_saving(b));
        found
            .findings
            .extend(pressure.into_iter().filter(worth_a_change));
    }
    // Time and bytes do not compare: what makes goroutines wait comes first, as the report's
    // LATENCY section does, most time first; then what saves most bytes.
    found.findings.sort_by(|a, b| {
        b.saving
            .ns
            .cmp(&a.saving.ns)
            .then(b.saving.bytes.cmp(&a.saving.bytes))
            .then(a.kind.cmp(&b.kind))
            .then(a.file.cmp(&b.file))
            .then(a.line.cmp(&b.line))
    });
    for (n, f) in found.findings.iter_mut().enumerate() {
        f.rank = n as u32 + 1;
    }
    found
}

/// One finding per kind and line: the one that saves most, with the others at that line (each
/// through other code, or from another caller) folded in and their savings added.
fn fold_same_line(mut placed: Vec<(Finding, String)>) -> Vec<Finding> {
    placed.sort_by(|(a, _), (b, _)| {
        (a.kind, &a.file, a.line, &a.function)
            .cmp(&(b.kind, &b.file, b.line, &b.function))
            .then(b.saving.bytes.cmp(&a.saving.bytes))
            .then(b.saving.ns.cmp(&a.saving.ns))
    });
    let mut out: Vec<Finding> = Vec::new();
    for (f, grew_at) in placed {
        match out.last_mut() {
            Some(first)
                if (first.kind, &first.file, first.line, &first.function)
                    == (f.kind, &f.file, f.line, &f.function) =>
            {
                first.saving.bytes += f.saving.bytes;
                first.saving.ns = first.saving.ns.map(|a| a + f.saving.ns.unwrap_or(0));
                first.saving.share = first.saving.share.zip(f.saving.share).map(|(a, b)| a + b);
                first.estimated |= f.estimated;
                first.also.push(super::Folded {
                    at: grew_at,
                    saving_bytes: f.saving.bytes,
                });
            }
            _ => out.push(f),
        }
    }
    for f in &mut out {
        if !f.also.is_empty() {
            let places: Vec<&str> = f.also.iter().map(|a| a.at.as_str()).collect();
            f.suggestion.push_str(&format!(
                " The same line does this {} more time(s), through {}: the saving above includes them",
                f.also.len(),
                places.join("; ")
            ));
        }
    }
    out
}

fn worth_a_change(f: &Finding) -> bool {
    if f.saving.of == SavingOf::Latency {
        return super::assist::worth_a_change(&f.saving);
    }
    f.saving.bytes >= MIN_SAVING_BYTES
        && f.saving.share.is_none_or(|share| share >= MIN_SAVING_SHARE)
}

/// How a suggestion writes the map's type: its Go name when the binary has it (`map[string]int`),
/// else `map[K]V` with the key and value sizes after the call.
pub(super) fn map_type(i: &Inputs, m: &MapState) -> (String, String) {
    match i.res.type_name(m.id.map_type) {
        Some(name) => (name.to_owned(), String::new()),
        None => (
            "map[K]V".to_owned(),
            format!(" (key {} B, value {} B)", m.id.key_size, m.id.value_size),
        ),
    }
}

/// `via` for a suggestion: where the maps grew, when not in the program's own code.
pub(super) fn through(via: &[String]) -> String {
    match via {
        [] => String::new(),
        [one] => format!(" (it grows inside {one}, called from here)"),
        [first, .., last] => {
            format!(" (it grows inside {first}, through {last}, called from here)")
        }
    }
}
