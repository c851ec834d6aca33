//! Growth by call site: the first frame of the stack that is not the runtime's own, with the
//! maps it grew and the sizes they reached.

use std::collections::BTreeMap;

use mapleak_common::Site;
use rustc_hash::FxHashMap;
use serde::Serialize;

use crate::aggregate::Aggregator;

/// A line of Go source.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SourceSite {
    pub function: String,
    pub file: String,
    pub line: u32,
}

/// What a stack resolved to: its site (if any frame is not the runtime's) and every frame.
#[derive(Clone, Debug, Default)]
pub struct ResolvedStack {
    pub site: Option<SourceSite>,
    pub frames: Vec<String>,
}

#[derive(Clone, Debug, Serialize)]
pub struct SiteRow {
    pub function: String,
    pub file: String,
    pub line: u32,
    pub grow_events: u64,
    pub bytes: u64,
    /// Maps whose last growth came from here.
    pub maps: u64,
    /// Entries those maps had when they last grew (nearest-rank percentiles).
    pub final_entries_p50: u64,
    pub final_entries_p99: u64,
    /// One full stack from this site, innermost first.
    pub stack: Vec<String>,
}

#[derive(Default)]
struct Acc {
    grow_events: u64,
    bytes: u64,
    entries: Vec<u64>,
    stack: Vec<String>,
}

/// The `top` sites by bytes; `resolve` is called once per distinct stack.
pub fn sites(
    agg: &Aggregator,
    mut resolve: impl FnMut(&Site) -> ResolvedStack,
    top: usize,
) -> Vec<SiteRow> {
    let mut resolved: FxHashMap<Site, Option<SourceSite>> = FxHashMap::default();
    let mut by_site: BTreeMap<SourceSite, Acc> = BTreeMap::new();
    let mut site_of = |key: &Site, by_site: &mut BTreeMap<SourceSite, Acc>| {
        resolved
            .entry(*key)
            .or_insert_with(|| {
                let r = resolve(key);
                if let Some(site) = &r.site {
                    let acc = by_site.entry(site.clone()).or_default();
                    if acc.stack.is_empty() {
                        acc.stack = r.frames;
                    }
                }
                r.site
            })
            .clone()
    };
    for (key, stats) in agg.sites() {
        if let Some(site) = site_of(key, &mut by_site) {
            let acc = by_site.entry(site).or_default();
            acc.grow_events += stats.grow_events;
            acc.bytes += stats.bytes;
        }
    }
    for map in agg.top_maps(usize::MAX) {
        if let Some(site) = site_of(&map.site, &mut by_site) {
            by_site.entry(site).or_default().entries.push(map.entries);
        }
    }
    let mut rows: Vec<SiteRow> = by_site
        .into_iter()
        .map(|(site, mut acc)| {
            acc.entries.sort_unstable();
            SiteRow {
                function: site.function,
                file: site.file,
                line: site.line,
                grow_events: acc.grow_events,
                bytes: acc.bytes,
                maps: acc.entries.len() as u64,
                final_entries_p50: nearest_rank(&acc.entries, 0.5),
                final_entries_p99: nearest_rank(&acc.entries, 0.99),
                stack: acc.stack,
            }
        })
        .collect();
    rows.sort_by(|a, b| {
        b.bytes
            .cmp(&a.bytes)
            .then(b.grow_events.cmp(&a.grow_events))
    });
    rows.truncate(top);
    rows
}

fn nearest_rank(sorted: &[u64], q: f64) -> u64 {
    if sorted.is_empty() {
        return 0;
    }
    let i = ((q * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
    sorted[i - 1]
}
