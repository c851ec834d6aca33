//! The rules behind each finding kind.

use std::collections::BTreeMap;

use super::{Evidence, Finding, FindingKind, GrowthInGc, MapChurn, RetainedCapacity, UnsizedMap};
use crate::{
    aggregate::{Aggregator, MapRecord, MapState, SiteStats, sizing},
    report::{
        sites::{Resolutions, SiteTotals, SourceSite, maps_by_site, nearest_rank, stats_by_site},
        units::bytes,
    },
};

const MIB: u64 = 1 << 20;
/// An unsized map is worth a hint when the hint saves this many growths or bytes.
const UNSIZED_MIN_EVENTS_SAVED: u64 = 16;
const UNSIZED_MIN_BYTES_SAVED: u64 = MIB;
/// …and when its maps grew at least this many times each on average (a map that grew once
/// or twice is near enough its size).
const UNSIZED_MIN_GROWS_PER_MAP: u64 = 2;
/// Churn: at least this many maps, at this rate over the whole trace.
const CHURN_MIN_MAPS: u64 = 1000;
const CHURN_MIN_PER_SEC: f64 = 100.0;
/// Retained capacity: live entries under a quarter of the size before the deletes, and this
/// much to give back at the site.
const RETAINED_MAX_LIVE_SHARE: u64 = 4;
const RETAINED_MIN_BYTES: u64 = 64 << 10;
/// Growth in GC: this share of a site's growth bytes during mark, and this much of it.
const GC_MIN_MARK_SHARE: f64 = 0.25;
const GC_MIN_MARK_BYTES: u64 = MIB;
const GC_MIN_MARK_EVENTS: u64 = 8;

/// What the rules look at.
pub struct Inputs<'a> {
    pub agg: &'a Aggregator,
    pub res: &'a Resolutions,
    pub swiss: bool,
    pub go_minor: u32,
    pub duration_ns: u64,
    /// Share of the trace the growth group was attached.
    pub growth_share: f64,
    /// Same for the creation group; `None` when the creation probe was off.
    pub create_share: Option<f64>,
}

impl Inputs<'_> {
    fn seconds(&self) -> f64 {
        (self.duration_ns as f64 / 1e9).max(1e-3)
    }

    fn growth_sampled(&self) -> bool {
        self.growth_share < 1.0
    }
}

/// Growth per source line, and the maps last grown at each, as the rules read them.
struct Sites<'a> {
    stats: SiteTotals,
    maps: BTreeMap<SourceSite, Vec<&'a MapState>>,
}

pub fn findings(i: &Inputs) -> Vec<Finding> {
    let sites = Sites {
        stats: stats_by_site(i.agg, i.res),
        maps: maps_by_site(i.agg, i.res),
    };
    let mut out: Vec<Finding> = sites
        .maps
        .iter()
        .filter_map(|(site, maps)| unsized_map(i, site, maps, &sites.stats.get(site)?.1))
        .collect();
    out.extend(map_churn(i, &sites));
    out.extend(
        sites
            .maps
            .iter()
            .filter_map(|(site, maps)| retained_capacity(i, site, maps)),
    );
    out.extend(growth_in_gc(i, &sites.stats));
    out.extend(super::memory::unreleased_memory(i.agg.memory(), i.go_minor));
    out
}

fn finding(kind: FindingKind, site: Option<&SourceSite>, evidence: Evidence) -> Finding {
    let (function, file, line) = site.map_or((String::new(), String::new(), 0), |s| {
        (s.function.clone(), s.file.clone(), s.line)
    });
    Finding {
        kind,
        function,
        file,
        line,
        evidence,
        suggestion: String::new(),
        estimated: false,
    }
}

fn unsized_map(
    i: &Inputs,
    site: &SourceSite,
    maps: &[&MapState],
    stats: &SiteStats,
) -> Option<Finding> {
    // The maps still tracked, and those whose address was reused by a newer map (kept in
    // detail up to a bound per site; the site's totals count them all).
    let mut records: Vec<MapRecord> = maps.iter().map(|m| MapRecord::of(m)).collect();
    records.extend_from_slice(&stats.finished);
    let (total_maps, total_events, total_bytes) = (stats.new_maps, stats.grow_events, stats.bytes);
    let seen_events: u64 = records.iter().map(|r| r.grow_events).sum();
    if total_events < UNSIZED_MIN_GROWS_PER_MAP * total_maps.max(records.len() as u64) {
        return None;
    }
    let mut sizes: Vec<u64> = records.iter().map(|r| r.reached).collect();
    sizes.sort_unstable();
    let hint = nearest_rank(&sizes, 0.9);
    let covered: Vec<&MapRecord> = records.iter().filter(|r| r.reached <= hint).collect();
    let (_, per_map) = sizing::presized(i.agg.rules(), &maps[0].id, i.swiss, hint)?;
    // Savings measured on the maps in detail, scaled to all of the site's growth.
    let scale = total_events as f64 / seen_events.max(1) as f64;
    let scaled = |n: u64| (n as f64 * scale).round() as u64;
    // Scaled by events, which can round past the site's own count of maps.
    let maps_covered = scaled(covered.len() as u64).min(total_maps);
    let events_saved = scaled(covered.iter().map(|r| r.grow_events).sum());
    let grown: u64 = covered.iter().map(|r| r.bytes).sum();
    let bytes_saved = scaled(grown.saturating_sub(per_map * covered.len() as u64));
    if events_saved < UNSIZED_MIN_EVENTS_SAVED && bytes_saved < UNSIZED_MIN_BYTES_SAVED {
        return None;
    }
    let created_at =
        most_common_birth(i, maps).map(|s| format!("{} {}:{}", s.function, s.file, s.line));
    let mut f = finding(
        FindingKind::UnsizedMap,
        Some(site),
        Evidence::UnsizedMap(UnsizedMap {
            maps: total_maps,
            grow_events: total_events,
            bytes: total_bytes,
            entries_p50: nearest_rank(&sizes, 0.5),
            entries_p90: hint,
            entries_max: *sizes.last()?,
            hint,
            hint_percentile: 90,
            maps_covered,
            grow_events_saved: events_saved,
            bytes_saved,
            created_at: created_at.clone(),
        }),
    );
    let k = &maps[0].id;
    f.suggestion = format!(
        "pre-size it: make(map[K]V, {hint}) where the map is made{} (key {} B, value {} B). {hint} is the p90 of the sizes its {} map(s) reached; it covers {} of them, saving {} growth(s){}",
        created_at.map_or(String::new(), |at| format!(" ({at})")),
        k.key_size,
        k.value_size,
        total_maps,
        maps_covered,
        events_saved,
        if bytes_saved == 0 {
            String::new()
        } else {
            format!(
                " and {} of allocation ({} per map)",
                bytes(bytes_saved),
                bytes(bytes_saved / maps_covered.max(1))
            )
        },
    );
    f.estimated = i.growth_sampled();
    Some(f)
}

/// The creation site most of `maps` came from.
fn most_common_birth<'a>(i: &Inputs<'a>, maps: &[&MapState]) -> Option<&'a SourceSite> {
    let mut counts: BTreeMap<&SourceSite, u64> = BTreeMap::new();
    for m in maps {
        if let Some(site) = m.created.and_then(|b| i.res.site(&b.site)) {
            *counts.entry(site).or_default() += 1;
        }
    }
    counts.into_iter().max_by_key(|(_, n)| *n).map(|(s, _)| s)
}

/// Churn per creation site when the creation probe ran, else per growth site.
fn map_churn(i: &Inputs, sites: &Sites) -> Vec<Finding> {
    #[derive(Default)]
    struct Acc {
        maps: u64,
        freed: u64,
        grow_events: u64,
        bytes: u64,
        entries: Vec<u64>,
    }
    let mut by_site: BTreeMap<SourceSite, Acc> = BTreeMap::new();
    let share = match i.create_share {
        Some(share) => {
            for (key, stats) in i.agg.creations() {
                if let Some(site) = i.res.site(key) {
                    let acc = by_site.entry(site.clone()).or_default();
                    acc.maps += stats.maps;
                    acc.freed += stats.freed;
                    acc.grow_events += stats.grow_events;
                    acc.bytes += stats.grow_bytes;
                }
            }
            for m in i.agg.top_maps(usize::MAX) {
                let site = m.created.and_then(|b| i.res.site(&b.site));
                if let Some(acc) = site.and_then(|s| by_site.get_mut(s)) {
                    acc.entries.push(m.reached());
                }
            }
            share
        }
        None => {
            for (site, (_, stats)) in &sites.stats {
                let maps = sites.maps.get(site).map_or(&[][..], Vec::as_slice);
                let entries = stats.finished.iter().map(|r| r.reached);
                by_site.insert(
                    site.clone(),
                    Acc {
                        maps: stats.new_maps,
                        freed: stats.recycled,
                        grow_events: stats.grow_events,
                        bytes: stats.bytes,
                        entries: entries.chain(maps.iter().map(|m| m.reached())).collect(),
                    },
                );
            }
            i.growth_share
        }
    };
    let per_sec = |n: u64| n as f64 / share.max(f64::MIN_POSITIVE) / i.seconds();
    let mut out = Vec::new();
    for (site, mut acc) in by_site {
        let rate = per_sec(acc.maps);
        if acc.maps < CHURN_MIN_MAPS || rate < CHURN_MIN_PER_SEC {
            continue;
        }
        acc.entries.sort_unstable();
        let mut f = finding(
            FindingKind::MapChurn,
            Some(&site),
            Evidence::MapChurn(MapChurn {
                maps: acc.maps,
                maps_per_sec: rate,
                from_creation_probe: i.create_share.is_some(),
                maps_freed: acc.freed,
                entries_p50: nearest_rank(&acc.entries, 0.5),
                grow_events_per_sec: per_sec(acc.grow_events),
                bytes_per_sec: per_sec(acc.bytes),
            }),
        );
        let reuse = if i.go_minor >= 21 {
            "clear(m) empties it and keeps its buckets"
        } else {
            "`for k := range m { delete(m, k) }` (compiled to one clear) empties it and keeps its buckets"
        };
        f.suggestion = format!(
            "{:.0} maps/s are made here and dropped: reuse one map instead — {reuse}, so refills do not grow it again — or keep maps in a sync.Pool; that removes about {:.0} growths and {}/s of allocation",
            rate,
            per_sec(acc.grow_events),
            bytes(per_sec(acc.bytes) as u64),
        );
        f.estimated = share < 1.0;
        out.push(f);
    }
    out
}

fn retained_capacity(i: &Inputs, site: &SourceSite, maps: &[&MapState]) -> Option<Finding> {
    let mut held = Vec::new();
    for m in maps {
        let Some(live) = m.live else { continue };
        if live.entries.saturating_mul(RETAINED_MAX_LIVE_SHARE) >= m.entries {
            continue;
        }
        let (_, needed) = sizing::presized(i.agg.rules(), &m.id, i.swiss, live.entries)?;
        held.push((m, live, live.bytes.saturating_sub(needed)));
    }
    let reclaimable: u64 = held.iter().map(|(_, _, r)| r).sum();
    if reclaimable < RETAINED_MIN_BYTES {
        return None;
    }
    let (worst, live, _) = held.iter().max_by_key(|(_, _, r)| *r)?;
    let mut f = finding(
        FindingKind::RetainedCapacity,
        Some(site),
        Evidence::RetainedCapacity(RetainedCapacity {
            maps: held.len() as u64,
            map: format!("{:#x}", worst.id.addr),
            entries: live.entries,
            peak_entries: worst.entries,
            capacity: live.capacity,
            bytes: live.bytes,
            total_bytes: held.iter().map(|(_, l, _)| l.bytes).sum(),
            bytes_reclaimable: reclaimable,
        }),
    );
    f.suggestion = format!(
        "deletes never shrink a Go map: {} entries now sit in room for {} ({}). After bulk deletes, copy the survivors into a new map (n := make(map[K]V, len(m)); for k, v := range m {{ n[k] = v }}; m = n) so the old buckets can be collected: about {} back over {} map(s)",
        live.entries,
        live.capacity,
        bytes(live.bytes),
        bytes(reclaimable),
        held.len(),
    );
    Some(f)
}

fn growth_in_gc(i: &Inputs, stats: &SiteTotals) -> Vec<Finding> {
    let gc = i.agg.gc();
    let pauses = gc.pauses();
    let mut out = Vec::new();
    for (site, (_, acc)) in stats {
        let share = acc.mark_bytes as f64 / acc.bytes.max(1) as f64;
        if acc.mark_grow_events < GC_MIN_MARK_EVENTS
            || acc.mark_bytes < GC_MIN_MARK_BYTES
            || share < GC_MIN_MARK_SHARE
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
        let mut f = finding(
            FindingKind::GrowthInGc,
            Some(site),
            Evidence::GrowthInGc(GrowthInGc {
                grow_events: acc.grow_events,
                bytes: acc.bytes,
                mark_grow_events: acc.mark_grow_events,
                mark_bytes: acc.mark_bytes,
                mark_share: share,
                cycles_with_growth: with.0,
                mean_pause_ns_with_growth: mean(with),
                mean_pause_ns_without: mean(without),
                pause_p99_ns: pauses.value_at_quantile(0.99),
                pause_max_ns: pauses.max(),
            }),
        );
        f.suggestion = format!(
            "{:.0}% of this site's map growth ({} in {} growths) happened while the GC was marking: bucket arrays allocated during mark stay live until the cycle ends, add assist work and raise the next heap goal. Pre-size the map (make(map[K]V, n)) so it is allocated once, or build it outside latency-critical phases",
            share * 100.0,
            bytes(acc.mark_bytes),
            acc.mark_grow_events,
        );
        f.estimated = i.growth_sampled();
        out.push(f);
    }
    out
}
