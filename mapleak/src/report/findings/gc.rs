//! Map growth that lands in the GC's mark phase more than chance would put there
//! (`growth_in_gc`): bucket arrays allocated during mark stay live until the cycle ends and add
//! assist work.

use super::{
    Evidence, FindingKind, GrowthInGc,
    rules::{Inputs, MIB, Proposal, Sites, through},
};
use crate::report::units::bytes;

/// This much growth during mark, at least.
const GC_MIN_MARK_BYTES: u64 = MIB;
const GC_MIN_MARK_EVENTS: u64 = 8;
/// A site's share of growth bytes during mark must exceed the share of time the GC marked by
/// this much, and by this many standard deviations of a site whose growths fell at random
/// times (weighted by their bytes: a few large arrays are a few draws, not many).
const GC_MIN_EXCESS_SHARE: f64 = 0.25;
const GC_MIN_Z: f64 = 3.0;

pub(super) fn growth_in_gc(i: &Inputs, sites: &Sites) -> Vec<Proposal> {
    let gc = i.agg.gc();
    let pauses = gc.pauses();
    // The share of the (GC-probed) trace spent marking: where a site that grows at any time
    // would put that share of its growth.
    let marking: u64 = gc.cycles().iter().map(|c| c.mark_ns).sum();
    let observed = i.duration_ns as f64 * i.gc_share;
    let time_share = if observed > 0.0 {
        (marking as f64 / observed).min(1.0)
    } else {
        0.0
    };
    let mut out = Vec::new();
    for (site, (key, acc)) in &sites.stats {
        let share = acc.mark_bytes as f64 / acc.bytes.max(1) as f64;
        // Kish's effective number of draws for weights b: (Σb)² / Σb².
        let draws = (acc.bytes as f64).powi(2) / acc.bytes_squared.max(1.0);
        let spread = (time_share * (1.0 - time_share) / draws.max(1.0)).sqrt();
        let z = if spread > 0.0 {
            (share - time_share) / spread
        } else if share > time_share {
            f64::INFINITY
        } else {
            0.0
        };
        if acc.mark_grow_events < GC_MIN_MARK_EVENTS
            || acc.mark_bytes < GC_MIN_MARK_BYTES
            || share < time_share + GC_MIN_EXCESS_SHARE
            || z < GC_MIN_Z
        {
            continue;
        }
        let (mut with, mut without) = ((0u64, 0u64), (0u64, 0u64));
        for c in gc.cycles() {
            let pause = c.sweep_term_pause_ns + c.mark_term_pause_ns;
            let grew_here = c.top_maps.iter().any(|(addr, _)| {
                i.agg
                    .map(*addr)
                    .and_then(|m| i.res.site(&m.site))
                    .is_some_and(|s| s == site)
            });
            let side = if grew_here { &mut with } else { &mut without };
            side.0 += 1;
            side.1 += pause;
        }
        let mean = |(n, total): (u64, u64)| total.checked_div(n).unwrap_or(0);
        let (mark_bytes, mark_events) = (acc.mark_bytes, acc.mark_grow_events);
        let map_type = sites
            .maps
            .get(site)
            .and_then(|maps| maps.first())
            .map_or_else(|| "map[K]V".to_owned(), |m| super::rules::map_type(i, m).0);
        let suggest = move |via: &[String]| {
            format!(
                "{:.0}% of this site's map growth ({} in {mark_events} growths) happened while the GC was marking, which it did {:.0}% of the time{}: bucket arrays allocated during mark stay live until the cycle ends, add assist work and raise the next heap goal. Pre-size the map (make({map_type}, n)) so it is allocated once, or build it outside latency-critical phases",
                share * 100.0,
                bytes(mark_bytes),
                time_share * 100.0,
                through(via),
            )
        };
        out.push(Proposal {
            kind: FindingKind::GrowthInGc,
            key: Some(*key),
            evidence: Evidence::GrowthInGc(GrowthInGc {
                grow_events: acc.grow_events,
                bytes: acc.bytes,
                mark_grow_events: acc.mark_grow_events,
                mark_bytes: acc.mark_bytes,
                mark_share: share,
                mark_time_share: time_share,
                cycles_with_growth: with.0,
                mean_pause_ns_with_growth: mean(with),
                mean_pause_ns_without: mean(without),
                pause_p99_ns: pauses.value_at_quantile(0.99),
                pause_max_ns: pauses.max(),
            }),
            saving: i.allocation_saving(acc.mark_bytes),
            suggest: Box::new(suggest),
            estimated: i.growth_sampled(),
        });
    }
    out
}
