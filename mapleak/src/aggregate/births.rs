//! Map creation, from the opt-in creation probe: where each map was made, and how many maps
//! each stack makes.

use mapleak_common::{CreateEvent, StackRef};

use super::MapState;
use rustc_hash::FxHashMap as HashMap;

/// Where and when the map now at an address was made.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Birth {
    pub site: StackRef,
    pub ts: u64,
}

/// Maps made from one stack.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CreateStats {
    pub maps: u64,
    /// Growth of the maps made here, and how many of them were seen freed (their address
    /// reused by a new map).
    pub grow_events: u64,
    pub grow_bytes: u64,
    pub freed: u64,
}

pub struct Births {
    by_addr: HashMap<u64, Birth>,
    by_site: HashMap<StackRef, CreateStats>,
    max_tracked: usize,
}

impl Births {
    pub fn new(max_tracked: usize) -> Self {
        Self {
            by_addr: HashMap::default(),
            by_site: HashMap::default(),
            max_tracked,
        }
    }

    pub fn on_create(&mut self, e: &CreateEvent) {
        let birth = Birth {
            site: e.site,
            ts: e.header.ts_ns,
        };
        self.by_addr.insert(e.map, birth);
        self.by_site.entry(e.site).or_default().maps += 1;
        if self.by_addr.len() > self.max_tracked {
            evict_older_half(&mut self.by_addr, |b| b.ts);
        }
    }

    /// A map with a known birth grew.
    pub fn on_growth(&mut self, m: &MapState, bytes: u64) {
        if let Some(site) = m.created.and_then(|b| self.by_site.get_mut(&b.site)) {
            site.grow_events += 1;
            site.grow_bytes += bytes;
        }
    }

    /// A map with a known birth is gone: a new one lives at its address.
    pub fn on_freed(&mut self, m: &MapState) {
        if let Some(site) = m.created.and_then(|b| self.by_site.get_mut(&b.site)) {
            site.freed += 1;
        }
    }

    pub fn get(&self, addr: u64) -> Option<Birth> {
        self.by_addr.get(&addr).copied()
    }

    pub fn sites(&self) -> impl Iterator<Item = (&StackRef, &CreateStats)> {
        self.by_site.iter()
    }
}

/// Drops the entries older than the median of `ts`: amortised O(1) per insert when called each
/// time the map outgrows its bound.
pub fn evict_older_half<V>(map: &mut HashMap<u64, V>, ts: impl Fn(&V) -> u64) {
    let mut all: Vec<u64> = map.values().map(&ts).collect();
    let mid = all.len() / 2;
    let (_, cutoff, _) = all.select_nth_unstable(mid);
    let cutoff = *cutoff;
    map.retain(|_, v| ts(v) > cutoff);
}
