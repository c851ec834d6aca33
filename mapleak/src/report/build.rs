//! The final report, built in one place once the probes are gone: the summary from the
//! aggregator, every stack symbolized from the pinned image, map types named, call sites,
//! findings, and the growth profile the profile sinks need. Data flows one way: the trace hands
//! over what it gathered, and gets back a report that is complete when built.

use super::{
    KernelCounters, Summary, TraceMeta, assist, findings,
    gccost::{CostInputs, GcCost},
    owner::Ownership,
    pprof::Binary,
    profile::GrowthProfile,
    sampling::SamplingSummary,
    sites::{self, Resolutions},
};
use crate::{
    aggregate::Aggregator,
    catalogue::ProbeGroup,
    inspect::{self, Inspection},
    trace::stacks::StackResolver,
};

/// What the trace gathered, handed over once nothing is attached.
pub struct Gathered<'a> {
    pub meta: TraceMeta,
    pub agg: &'a Aggregator,
    pub counters: KernelCounters,
    pub sampling: SamplingSummary,
    /// Maps and sites listed.
    pub top: usize,
    pub inspection: &'a Inspection,
    /// The executable the probes were planned for, as it was pinned at the start.
    pub image: &'a [u8],
    pub image_shown: &'a str,
    /// The image's load bias (PIE), when its mapping was found.
    pub bias: Option<u64>,
    /// Heap bytes the target allocated during the trace, when its runtime's counter was read.
    pub allocated_bytes: Option<u64>,
    /// Unix time when the probes were attached.
    pub started_unix_ns: u64,
    /// Whether a profile sink wants every stack's growth.
    pub profile: bool,
}

/// A complete report: what every sink writes from.
pub struct Report {
    pub summary: Summary,
    /// Every stack's growth, when a profile sink asked for it.
    pub profile: Option<GrowthProfile>,
    pub binary: Binary,
    /// For a flame graph's title.
    pub title: String,
}

pub fn build(g: Gathered) -> Report {
    let Gathered {
        meta,
        agg,
        inspection,
        ..
    } = &g;
    let mut summary = Summary::new(meta, agg, &g.counters, g.top, g.sampling.clone());
    // Symbolized from the pinned image: the file the probes were planned for, even if the
    // target exited or replaced it since.
    let elf = inspect::GoElf::parse(&inspection.path, g.image).ok();
    let minor = inspection.version.minor;
    let bias = g.bias.unwrap_or(0);
    let mut resolver = StackResolver {
        stacks: agg.stacks(),
        symbolizer: elf
            .as_ref()
            .and_then(|e| inspect::symbolize::Symbolizer::for_elf(e, minor).ok()),
        bias,
        ownership: Ownership::for_build(&inspection.build),
    };
    let types = elf
        .as_ref()
        .and_then(|e| inspect::types::TypeNames::for_elf(e, minor));
    let res = Resolutions::build(agg, |s| resolver.resolve(s)).name_types(agg, |addr| {
        types.as_ref()?.map_name(addr.checked_sub(bias)?)
    });
    summary.name_maps(&res);
    summary.sites = sites::sites(agg, &res, g.top);
    summary.assists = assist::rows(agg, &res);
    if let Some(s) = summary.sampling.group(ProbeGroup::Assist) {
        summary.assist_overall = Some(assist::overall(agg, &res, s.sampled));
    }
    let profile = g.profile.then(|| {
        let mut profile = GrowthProfile::build(agg, &res);
        profile.add_assists(agg, &res);
        profile.duration_ns = summary.duration_ns;
        profile.time_unix_ns = g.started_unix_ns;
        profile.sampled = summary
            .sampling
            .group(ProbeGroup::Growth)
            .filter(|s| s.sampled)
            .map(|s| {
                format!(
                    "the growth probes were attached {:.1}% of the time: values are what they saw, not scaled",
                    s.attached_fraction * 100.0
                )
            });
        profile
    });
    let cost = gc_cost(&summary, &g);
    summary.gc.set_cost(&cost, super::room::Room::new(agg));
    if let (_, refused @ 1.., Some(why)) = agg.gc().cost_reads() {
        summary.notes.push(format!(
            "{refused} GC cycle cost reading(s) not believed, the first for {}",
            why.why()
        ));
    }
    add_findings(&mut summary, &g, &res, &cost);
    let (text_start, text_end, text_offset) = elf
        .as_ref()
        .and_then(|e| e.text_segment())
        .unwrap_or_default();
    Report {
        binary: Binary {
            path: g.image_shown.to_owned(),
            build_id: elf.as_ref().and_then(|e| e.go_build_id()),
            text_start,
            text_end,
            text_offset,
        },
        title: format!("map growth in pid {} ({})", summary.pid, g.image_shown),
        summary,
        profile,
    }
}

/// What the GC cost over the trace, beside the map growth: what the allocator handed out for
/// the growths the probes saw, scaled by their own estimate when they were sampled.
fn gc_cost(summary: &Summary, g: &Gathered) -> GcCost {
    let growth = summary
        .sampling
        .group(ProbeGroup::Growth)
        .filter(|s| s.sampled && s.observed_events > 0);
    // As the allocator counts it, to be set against totalAlloc.
    let seen = g.agg.totals().grow_heap_bytes;
    let map_bytes = growth.map_or(seen, |s| {
        (seen as f64 * s.estimated_events as f64 / s.observed_events as f64).round() as u64
    });
    let i = g.inspection;
    GcCost::new(
        g.agg.gc(),
        CostInputs {
            duration_ns: summary.duration_ns,
            allocated_bytes: g.allocated_bytes,
            map_bytes,
            map_estimated: growth.is_some(),
            readable: i.gc_cost_layout.is_some()
                && i.work_address.is_some()
                && i.gc_controller_address.is_some(),
        },
    )
}

fn add_findings(summary: &mut Summary, g: &Gathered, res: &Resolutions, cost: &GcCost) {
    let sampling = &summary.sampling;
    let share = |name| sampling.group(name).map(|s| s.attached_fraction);
    // What the whole trace held against what was seen, by the group's own estimate.
    let scale = |name| {
        sampling
            .group(name)
            .filter(|s| s.sampled && s.observed_events > 0)
            .map_or(1.0, |s| {
                s.estimated_events as f64 / s.observed_events as f64
            })
    };
    let found = findings::findings(&findings::Inputs {
        agg: g.agg,
        res,
        map_impl: g.inspection.map_impl,
        go_minor: g.inspection.version.minor,
        duration_ns: summary.duration_ns,
        growth_share: share(ProbeGroup::Growth).unwrap_or(1.0),
        create_share: share(ProbeGroup::Create),
        gc_share: share(ProbeGroup::Gc).unwrap_or(1.0),
        assist_share: share(ProbeGroup::Assist),
        growth_scale: scale(ProbeGroup::Growth),
        create_scale: scale(ProbeGroup::Create),
        allocated_bytes: g.allocated_bytes,
        gc: (cost.cycles > 0).then_some(cost),
        room: summary.gc.room,
    });
    summary.findings = found.findings;
    if found.outside > 0 {
        summary.notes.push(format!(
            "{} finding(s) left out: they rest on code outside the program (the standard library, another module or the runtime) with no line of the program's own below",
            found.outside
        ));
    }
    if found.minor > 0 {
        summary.notes.push(format!(
            "{} finding(s) left out: each would save less than 1 MiB or 0.5% of what the process allocated or holds",
            found.minor
        ));
    }
}
