//! Growth by call site: the first frame of the stack that is not the runtime's own, with the
//! maps it grew and the sizes they reached.

use std::collections::BTreeMap;

use mapleak_common::StackRef;
use rustc_hash::FxHashMap;
use serde::Serialize;

use crate::aggregate::{Aggregator, MapState, StackStats};

/// A line of Go source.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
pub struct SourceSite {
    pub function: String,
    pub file: String,
    pub line: u32,
}

/// One frame of a symbolized stack.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct StackFrame {
    /// The address looked up, in the binary's own (link-time) terms, hex: the return address
    /// minus one for every frame but the innermost.
    pub pc: String,
    pub function: String,
    pub file: String,
    pub line: u32,
    /// Inlined into the frame that follows.
    pub inlined: bool,
}

/// What a stack resolved to: its site (the first frame that is not the runtime's), the first
/// frame of the program's own code with the frames between the two (the standard library or
/// another module, innermost first), and every frame.
#[derive(Clone, Debug, Default)]
pub struct ResolvedStack {
    pub site: Option<SourceSite>,
    pub own: Option<SourceSite>,
    pub via: Vec<String>,
    pub frames: Vec<StackFrame>,
}

/// Every stack the trace captured, symbolized once, and the names of the map types.
#[derive(Default)]
pub struct Resolutions(FxHashMap<StackRef, ResolvedStack>, FxHashMap<u64, String>);

impl Resolutions {
    /// Resolves the stacks of every growth site, creation site and tracked map.
    pub fn build(agg: &Aggregator, mut resolve: impl FnMut(&StackRef) -> ResolvedStack) -> Self {
        let mut map = FxHashMap::default();
        let keys = agg
            .sites()
            .map(|(k, _)| *k)
            .chain(agg.creations().map(|(k, _)| *k))
            .chain(agg.assists().stacks().map(|(k, _)| *k))
            .chain(agg.top_maps(usize::MAX).into_iter().map(|m| m.site));
        for key in keys {
            map.entry(key).or_insert_with(|| resolve(&key));
        }
        Self(map, FxHashMap::default())
    }

    /// Names the type of every tracked map: `name` takes the type descriptor's address as the
    /// target saw it.
    pub fn name_types(mut self, agg: &Aggregator, name: impl Fn(u64) -> Option<String>) -> Self {
        for m in agg.top_maps(usize::MAX) {
            let t = m.id.map_type;
            if !self.1.contains_key(&t)
                && let Some(n) = name(t)
            {
                self.1.insert(t, n);
            }
        }
        self
    }

    /// The Go name of the map type whose descriptor is at `map_type`, e.g. `map[string]int`.
    pub fn type_name(&self, map_type: u64) -> Option<&str> {
        self.1.get(&map_type).map(String::as_str)
    }

    /// Where a map was grown: the line of the program's own code if there is one, else the
    /// first frame outside the runtime.
    pub fn grown_at(&self, key: &StackRef) -> Option<&SourceSite> {
        let r = self.0.get(key)?;
        r.own.as_ref().or(r.site.as_ref())
    }

    pub fn site(&self, key: &StackRef) -> Option<&SourceSite> {
        self.0.get(key)?.site.as_ref()
    }

    pub fn frames(&self, key: &StackRef) -> &[StackFrame] {
        self.0.get(key).map_or(&[], |r| &r.frames)
    }

    /// The line of the program's own code behind `key`, and what it went through to get there.
    pub fn own(&self, key: &StackRef) -> Option<(&SourceSite, &[String])> {
        let r = self.0.get(key)?;
        Some((r.own.as_ref()?, &r.via))
    }
}

#[derive(Clone, Debug, Serialize)]
pub struct SiteRow {
    pub function: String,
    pub file: String,
    pub line: u32,
    pub grow_events: u64,
    pub bytes: u64,
    /// Map instances whose first growth seen came from here.
    pub maps: u64,
    /// Entries the maps last grown here had when they last grew (nearest-rank percentiles;
    /// over the maps still tracked and up to 4096 freed ones).
    pub final_entries_p50: u64,
    pub final_entries_p99: u64,
    /// One full stack from this site, innermost first, as `function file:line`.
    pub stack: Vec<String>,
    /// The same stack with the address of each frame.
    pub frames: Vec<StackFrame>,
}

/// Tracked maps grouped by the source line of their last growth.
pub fn maps_by_site<'a>(
    agg: &'a Aggregator,
    res: &Resolutions,
) -> BTreeMap<SourceSite, Vec<&'a MapState>> {
    let mut out: BTreeMap<SourceSite, Vec<&MapState>> = BTreeMap::new();
    for map in agg.top_maps(usize::MAX) {
        if let Some(site) = res.site(&map.site) {
            out.entry(site.clone()).or_default().push(map);
        }
    }
    out
}

/// Growth per source line: the figures of every stack that ends there, summed, and the stack
/// that grew the most bytes there (whose callers a finding names).
pub type SiteTotals = BTreeMap<SourceSite, (StackRef, StackStats)>;

pub fn stats_by_site(agg: &Aggregator, res: &Resolutions) -> SiteTotals {
    let mut out = SiteTotals::new();
    let mut heaviest: BTreeMap<SourceSite, u64> = BTreeMap::new();
    for (key, stats) in agg.sites() {
        if let Some(site) = res.site(key) {
            let entry = out
                .entry(site.clone())
                .or_insert_with(|| (*key, StackStats::default()));
            let most = heaviest.entry(site.clone()).or_default();
            if stats.bytes > *most {
                *most = stats.bytes;
                entry.0 = *key;
            }
            entry.1.add(stats);
        }
    }
    out
}

/// The `top` sites by bytes.
pub fn sites(agg: &Aggregator, res: &Resolutions, top: usize) -> Vec<SiteRow> {
    let mut maps = maps_by_site(agg, res);
    let mut rows: Vec<SiteRow> = stats_by_site(agg, res)
        .into_iter()
        .map(|(site, (key, stats))| {
            let mut entries: Vec<u64> = stats.finished.iter().map(|r| r.entries).collect();
            entries.extend(
                maps.remove(&site)
                    .unwrap_or_default()
                    .iter()
                    .map(|m| m.entries),
            );
            entries.sort_unstable();
            let frames = res.frames(&key).to_vec();
            SiteRow {
                function: site.function,
                file: site.file,
                line: site.line,
                grow_events: stats.grow_events,
                bytes: stats.bytes,
                maps: stats.new_maps,
                final_entries_p50: nearest_rank(&entries, 0.5),
                final_entries_p99: nearest_rank(&entries, 0.99),
                stack: frames
                    .iter()
                    .map(|f| format!("{} {}:{}", f.function, f.file, f.line))
                    .collect(),
                frames,
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

/// The value at quantile `q` of `sorted` (nearest rank); 0 when empty.
pub fn nearest_rank(sorted: &[u64], q: f64) -> u64 {
    if sorted.is_empty() {
        return 0;
    }
    let i = ((q * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
    sorted[i - 1]
}
