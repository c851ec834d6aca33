//! Maps made and dropped at a high rate (`map_churn`): one reused map (emptied with `clear`)
//! or a pool grows once instead of every time.

use std::collections::BTreeMap;

use mapleak_common::StackRef;

use super::{
    Evidence, FindingKind, MapChurn,
    rules::{Inputs, Proposal, Sites, through},
};
use crate::report::{sites::nearest_rank, units::bytes};

/// Churn: at least this many maps, at this rate over the whole trace.
const CHURN_MIN_MAPS: u64 = 1000;
const CHURN_MIN_PER_SEC: f64 = 100.0;
/// Each map made costs its header at least (`hmap` and Swiss `Map` are both 48 bytes), whether
/// or not it then grows.
const MAP_HEADER_BYTES: u64 = 48;

#[derive(Default)]
struct Acc {
    /// The stack with the most maps, for the line to name.
    key: Option<(StackRef, u64)>,
    maps: u64,
    freed: u64,
    grow_events: u64,
    bytes: u64,
    entries: Vec<u64>,
}

impl Acc {
    fn stack(&mut self, key: StackRef, weight: u64) {
        if self.key.is_none_or(|(_, w)| weight > w) {
            self.key = Some((key, weight));
        }
    }
}

/// Churn per creation site when the creation probe ran, else per growth site.
pub(super) fn map_churn(i: &Inputs, sites: &Sites) -> Vec<Proposal> {
    let mut by_site = BTreeMap::new();
    let (scale, sampled) = match i.create_share {
        Some(share) => {
            for (key, stats) in i.agg.creations() {
                if let Some(site) = i.res.site(key) {
                    let acc: &mut Acc = by_site.entry(site.clone()).or_default();
                    acc.stack(*key, stats.maps);
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
            (i.create_scale, share < 1.0)
        }
        None => {
            for (site, (key, stats)) in &sites.stats {
                let maps = sites.maps.get(site).map_or(&[][..], Vec::as_slice);
                let entries = stats.finished.iter().map(|r| r.reached);
                by_site.insert(
                    site.clone(),
                    Acc {
                        key: Some((*key, stats.new_maps)),
                        maps: stats.new_maps,
                        freed: stats.recycled,
                        grow_events: stats.grow_events,
                        bytes: stats.bytes,
                        entries: entries.chain(maps.iter().map(|m| m.reached())).collect(),
                    },
                );
            }
            (i.growth_scale, i.growth_sampled())
        }
    };
    // Counts seen through windows are scaled by the group's own estimate of the whole trace.
    let per_sec = |n: u64| n as f64 * scale / i.seconds();
    let mut out = Vec::new();
    for (_, mut acc) in by_site {
        let rate = per_sec(acc.maps);
        if acc.maps < CHURN_MIN_MAPS || rate < CHURN_MIN_PER_SEC {
            continue;
        }
        acc.entries.sort_unstable();
        let (grows_per_sec, bytes_per_sec) = (per_sec(acc.grow_events), per_sec(acc.bytes));
        let reuse = if crate::gofacts::CLEAR_BUILTIN.holds(i.go_minor) {
            "clear(m) empties it and keeps its buckets"
        } else {
            "`for k := range m { delete(m, k) }` (compiled to one clear) empties it and keeps its buckets"
        };
        let suggest = move |via: &[String]| {
            format!(
                "{rate:.0} maps/s are made here and dropped{}: reuse one map instead — {reuse}, so refills do not grow it again — or keep maps in a sync.Pool; that removes about {grows_per_sec:.0} growths and {}/s of allocation",
                through(via),
                bytes(bytes_per_sec as u64),
            )
        };
        out.push(Proposal {
            kind: FindingKind::MapChurn,
            key: acc.key.map(|(k, _)| k),
            evidence: Evidence::MapChurn(MapChurn {
                maps: acc.maps,
                maps_per_sec: rate,
                from_creation_probe: i.create_share.is_some(),
                maps_freed: acc.freed,
                entries_p50: nearest_rank(&acc.entries, 0.5),
                grow_events_per_sec: grows_per_sec,
                bytes_per_sec,
            }),
            saving: i.allocation_saving(
                (per_sec(acc.bytes + acc.maps * MAP_HEADER_BYTES) * i.seconds()).round() as u64,
            ),
            suggest: Box::new(suggest),
            estimated: sampled,
        });
    }
    out
}
