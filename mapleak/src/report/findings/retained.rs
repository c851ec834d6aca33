//! Maps emptied by deletes that keep their capacity (`retained_capacity`): Go maps never shrink,
//! so only a rebuilt map gives the memory back.

use super::{
    Evidence, FindingKind, RetainedCapacity,
    rules::{Inputs, Proposal, Sites, through},
};
use crate::{aggregate::sizing, report::units::bytes};

/// Retained capacity: live entries under a quarter of the size before the deletes, and this
/// much to give back at the site.
const RETAINED_MAX_LIVE_SHARE: u64 = 4;
const RETAINED_MIN_BYTES: u64 = 64 << 10;

pub(super) fn retained_capacity(i: &Inputs, sites: &Sites) -> Vec<Proposal> {
    // No map holds more than the process has resident: a read that says so is not believed.
    let resident = i.agg.memory().rss_bytes().unwrap_or(u64::MAX);
    let mut out = Vec::new();
    for maps in sites.maps.values() {
        let mut held = Vec::new();
        for m in maps {
            let Some(live) = m.live.filter(|l| l.bytes <= resident) else {
                continue;
            };
            if live.entries.saturating_mul(RETAINED_MAX_LIVE_SHARE) >= m.entries {
                continue;
            }
            let Some((_, needed)) =
                sizing::presized(i.agg.rules(), &m.id, i.map_impl, live.entries)
            else {
                continue;
            };
            held.push((m, live, live.bytes.saturating_sub(needed)));
        }
        let reclaimable: u64 = held.iter().map(|(_, _, r)| r).sum();
        if reclaimable < RETAINED_MIN_BYTES {
            continue;
        }
        let Some((worst, live, _)) = held.iter().max_by_key(|(_, _, r)| *r).copied() else {
            continue;
        };
        let maps_held = held.len();
        let (map_type, _) = super::rules::map_type(i, worst);
        let suggest = move |via: &[String]| {
            format!(
                "deletes never shrink a Go map{}: {} entries now sit in room for {} ({}). After bulk deletes, copy the survivors into a new map (n := make({map_type}, len(m)); for k, v := range m {{ n[k] = v }}; m = n) so the old buckets can be collected: about {} back over {maps_held} map(s)",
                through(via),
                live.entries,
                live.capacity,
                bytes(live.bytes),
                bytes(reclaimable),
            )
        };
        out.push(Proposal {
            kind: FindingKind::RetainedCapacity,
            key: Some(worst.site),
            evidence: Evidence::RetainedCapacity(RetainedCapacity {
                maps: maps_held as u64,
                map: format!("{:#x}", worst.id.addr),
                entries: live.entries,
                peak_entries: worst.entries,
                capacity: live.capacity,
                bytes: live.bytes,
                total_bytes: held.iter().map(|(_, l, _)| l.bytes).sum(),
                bytes_reclaimable: reclaimable,
            }),
            saving: i.memory_saving(reclaimable),
            suggest: Box::new(suggest),
            estimated: false,
        });
    }
    out
}
