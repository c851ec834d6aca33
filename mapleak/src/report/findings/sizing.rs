//! Maps whose size a hint would have fixed (`unsized_map`), and maps the runtime rebuilt at the
//! same size, which no hint prevents (`same_size_growth`).

use super::{
    Evidence, FindingKind, SameSizeGrowth, UnsizedMap,
    rules::{Inputs, MIB, Proposal, Sites, through},
};
use crate::{
    aggregate::{MapRecord, MapState, sizing},
    report::{
        sites::{SourceSite, nearest_rank},
        units::bytes,
    },
};

/// An unsized map is worth a hint when the hint saves this many growths or bytes …
const UNSIZED_MIN_EVENTS_SAVED: u64 = 16;
const UNSIZED_MIN_BYTES_SAVED: u64 = MIB;
/// … and when its maps grew (in size, not in place) at least this many times each on average:
/// a map that grew once or twice is near enough its size.
const UNSIZED_MIN_GROWS_PER_MAP: u64 = 2;
/// Sizes split in two groups when the largest tenth reach this many times the median.
const BIMODAL_RATIO: u64 = 8;
/// Same-size growth worth a word: this many bytes rebuilt.
const SAME_SIZE_MIN_BYTES: u64 = MIB;

pub(super) fn unsized_maps(i: &Inputs, sites: &Sites) -> Vec<Proposal> {
    sites
        .maps
        .iter()
        .filter_map(|(site, maps)| unsized_map(i, sites, site, maps))
        .collect()
}

fn unsized_map(
    i: &Inputs,
    sites: &Sites,
    site: &SourceSite,
    maps: &[&MapState],
) -> Option<Proposal> {
    let (key, stats) = sites.stats.get(site)?;
    // The maps still tracked, and those whose address was reused by a newer map (kept in
    // detail up to a bound per site; the site's totals count them all).
    let mut records: Vec<MapRecord> = maps.iter().map(|m| MapRecord::of(m)).collect();
    records.extend_from_slice(&stats.finished);
    let total_maps = stats.new_maps.max(records.len() as u64);
    // Same-size growths are rehashes in place after deletes: no hint prevents them.
    let total_events = stats.grow_events - stats.same_size_grows;
    let total_bytes = stats.bytes - stats.same_size_bytes;
    if records.is_empty() || total_events < UNSIZED_MIN_GROWS_PER_MAP * total_maps {
        return None;
    }
    let seen_events: u64 = records.iter().map(|r| r.sizing_growth().0).sum();
    let mut sizes: Vec<u64> = records.iter().map(|r| r.reached).collect();
    sizes.sort_unstable();
    let hint = nearest_rank(&sizes, 0.9);
    let median = nearest_rank(&sizes, 0.5);
    let covered: Vec<&MapRecord> = records.iter().filter(|r| r.reached <= hint).collect();
    let (_, per_map) = sizing::presized(i.agg.rules(), &maps[0].id, i.map_impl, hint)?;
    // Savings measured on the maps in detail, scaled to all of the site's growth.
    let scale = total_events as f64 / seen_events.max(1) as f64;
    let scaled = |n: u64| (n as f64 * scale).round() as u64;
    // Scaled by events, which can round past the site's own count of maps.
    let maps_covered = scaled(covered.len() as u64).min(total_maps);
    let events_saved = scaled(covered.iter().map(|r| r.sizing_growth().0).sum());
    let grown: u64 = covered.iter().map(|r| r.sizing_growth().1).sum();
    let bytes_saved = scaled(grown.saturating_sub(per_map * covered.len() as u64));
    if events_saved < UNSIZED_MIN_EVENTS_SAVED && bytes_saved < UNSIZED_MIN_BYTES_SAVED {
        return None;
    }
    // Two groups of sizes: a hint for the large ones makes every small one that large.
    let small: Vec<&MapRecord> = records
        .iter()
        .filter(|r| r.reached.saturating_mul(BIMODAL_RATIO) <= hint)
        .collect();
    let small_maps_extra_bytes =
        (median.saturating_mul(BIMODAL_RATIO) <= hint && !small.is_empty()).then(|| {
            let as_grown: u64 = small.iter().map(|r| r.sizing_growth().1).sum();
            scaled((per_map * small.len() as u64).saturating_sub(as_grown))
        });
    let created_at =
        most_common_birth(i, maps).map(|s| format!("{} {}:{}", s.function, s.file, s.line));
    let (map_type, key_value) = super::rules::map_type(i, maps[0]);
    let bounded = covered.iter().filter(|r| r.lower_bound).count();
    let bounds_note = match bounded {
        0 => String::new(),
        n => format!(
            " ({n} of those sizes are lower bounds, the size at the map's last growth, as it was not read larger live: the hint may need to be larger)"
        ),
    };
    let sizes_note = match small_maps_extra_bytes {
        Some(extra) => format!(
            " The sizes split in two: half the maps reach {median} entries or fewer, a tenth {hint} or more; sized at {hint}, the small ones would allocate {} more than they do now, so size the large ones where the code can tell them apart",
            bytes(extra)
        ),
        None => String::new(),
    };
    let made_at = created_at
        .as_ref()
        .map_or(String::new(), |at| format!(" ({at})"));
    let bytes_note = if bytes_saved == 0 {
        String::new()
    } else {
        format!(
            " and {} of allocation ({} per map)",
            bytes(bytes_saved),
            bytes(bytes_saved / maps_covered.max(1))
        )
    };
    let suggest = move |via: &[String]| {
        format!(
            "pre-size it: make({map_type}, {hint}) where the map is made{made_at}{}{key_value}. {hint} is the p90 of the sizes its {total_maps} map(s) reached{bounds_note}; it covers {maps_covered} of them, saving {events_saved} growth(s){bytes_note}.{sizes_note}",
            through(via)
        )
    };
    Some(Proposal {
        kind: FindingKind::UnsizedMap,
        key: Some(*key),
        evidence: Evidence::UnsizedMap(UnsizedMap {
            maps: total_maps,
            grow_events: total_events,
            bytes: total_bytes,
            entries_p50: median,
            entries_p90: hint,
            entries_max: *sizes.last()?,
            hint,
            hint_percentile: 90,
            maps_covered,
            grow_events_saved: events_saved,
            bytes_saved,
            created_at,
            small_maps_extra_bytes,
        }),
        saving: i.allocation_saving(bytes_saved),
        suggest: Box::new(suggest),
        estimated: i.growth_sampled(),
    })
}

/// The creation site most of `maps` came from.
fn most_common_birth<'a>(i: &Inputs<'a>, maps: &[&MapState]) -> Option<&'a SourceSite> {
    let mut counts: std::collections::BTreeMap<&SourceSite, u64> = Default::default();
    for m in maps {
        if let Some(site) = m.created.and_then(|b| i.res.site(&b.site)) {
            *counts.entry(site).or_default() += 1;
        }
    }
    counts.into_iter().max_by_key(|(_, n)| *n).map(|(s, _)| s)
}

/// Classic maps rebuilt at the same size: deleting and inserting leaves overflow buckets that
/// only a same-size growth clears, a full rehash each time.
pub(super) fn same_size_growth(i: &Inputs, sites: &Sites) -> Vec<Proposal> {
    let mut out = Vec::new();
    for (site, (key, stats)) in &sites.stats {
        if stats.same_size_bytes < SAME_SIZE_MIN_BYTES {
            continue;
        }
        let maps = sites.maps.get(site).map_or(0, |m| {
            m.iter().filter(|m| m.same_size_grows > 0).count() as u64
        }) + stats
            .finished
            .iter()
            .filter(|r| r.same_size_grows > 0)
            .count() as u64;
        let (events, rebuilt) = (stats.same_size_grows, stats.same_size_bytes);
        let go_minor = i.go_minor;
        let suggest = move |via: &[String]| {
            let newer = if go_minor < 24 {
                ", or build with Go 1.24 or later, whose Swiss maps reuse deleted slots in place and never rebuild a map at its size"
            } else {
                ""
            };
            format!(
                "the runtime rebuilt these maps at the same size {events} time(s){}, {} in all: deleting and inserting keys leaves overflow buckets behind, and only a full rehash clears them. A size hint does not help. If the keys come and go (a cache, a set of in-flight requests), replace the map with a fresh one when it empties{newer}",
                through(via),
                bytes(rebuilt)
            )
        };
        out.push(Proposal {
            kind: FindingKind::SameSizeGrowth,
            key: Some(*key),
            evidence: Evidence::SameSizeGrowth(SameSizeGrowth {
                grow_events: events,
                bytes: rebuilt,
                maps,
                share_of_site_bytes: rebuilt as f64 / stats.bytes.max(1) as f64,
            }),
            saving: i.allocation_saving(rebuilt),
            suggest: Box::new(suggest),
            estimated: i.growth_sampled(),
        });
    }
    out
}
