//! GC cycles and stop-the-world pauses, from the stop/start probe events, with the map growth that
//! happened in each cycle's window.

use std::collections::BTreeMap;

use rustc_hash::FxHashMap as HashMap;

use hdrhistogram::Histogram;

use crate::gofacts;
use mapleak_common::{STW_RETURN, STW_START, STW_STOP, StwEvent};

pub mod cost;

use cost::{CycleCost, Refused};

/// How a release passes the stop reason and the stop timestamp.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StwRules {
    /// `stopTheWorldWithSema(reason)` (1.21+): the reason is in AL. Before that, GC stops are
    /// told apart by the `gcphase` change across them.
    pub reason_in_stop: bool,
    /// `startTheWorldWithSema(now, w worldStop)` (1.22+): RCX holds the runtime's own timestamp
    /// of the moment stopping began. Before that, `work.pauseStart` does, if mapleak found it.
    pub worldstop_in_start: bool,
}

/// `runtime.gcphase` values.
const GC_OFF: u32 = 0;
const GC_MARK: u32 = 1;

/// Which stop-the-world this is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum StwKind {
    SweepTerm,
    MarkTerm,
    /// Any other stop, by `stwReason` (0 when the release does not say).
    Other(u8),
}

/// `runtime.stwReason`'s name (the same in every release that passes one).
pub fn reason_name(reason: u8) -> &'static str {
    gofacts::STW_REASONS
        .at(gofacts::NEWEST)
        .and_then(|names| names.get(usize::from(reason)).copied())
        .unwrap_or("unknown")
}

impl StwRules {
    pub fn new(version: &crate::inspect::GoVersion) -> Self {
        Self {
            reason_in_stop: gofacts::REASON_IN_STOP.holds(version.minor),
            worldstop_in_start: gofacts::WORLDSTOP_IN_START.holds(version.minor),
        }
    }
}

impl StwKind {
    pub fn from_reason(reason: u8) -> Self {
        match reason {
            1 => StwKind::MarkTerm,
            2 => StwKind::SweepTerm,
            r => StwKind::Other(r),
        }
    }
}

/// One GC cycle as mapleak saw it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Cycle {
    /// The runtime's cycle number (`gc N` in gctrace); 0 when unknown.
    pub cycle: u32,
    pub start_ns: u64,
    pub sweep_term_pause_ns: u64,
    pub mark_term_pause_ns: u64,
    /// Concurrent mark: from the end of sweep termination to the moment the runtime starts
    /// stopping the world for this cycle's mark termination (gctrace's mark clock), however
    /// many other stops land in between.
    pub mark_ns: u64,
    /// Map growth since the previous cycle started.
    pub map_grow_events: u64,
    pub map_grow_bytes: u64,
    /// Map growth while this cycle was marking.
    pub mark_grow_events: u64,
    pub mark_grow_bytes: u64,
    /// Maps that grew most in the window, `(address, bytes)`, most first.
    pub top_maps: Vec<(u64, u64)>,
    /// What the runtime accounted to the cycle, read as it ended.
    pub cost: Option<CycleCost>,
    /// From the previous cycle's end to this one's (both read): the heap the process
    /// allocated, and the map growth seen meanwhile.
    pub alloc_bytes: Option<u64>,
    pub map_alloc_bytes: Option<u64>,
    /// The room the cycle gave allocation: its goal less what the previous cycle left live.
    /// A cycle starts when the heap has grown towards its goal, so allocating this much takes
    /// about one cycle.
    pub runway_bytes: Option<u64>,
}

/// Non-GC stops by reason.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct OtherStw {
    pub count: u64,
    pub total_ns: u64,
    pub max_ns: u64,
}

/// Cycles kept in detail; older ones stay in the histogram and counters only.
const MAX_CYCLES: usize = 100_000;
/// Maps whose growth in the current window is kept, for the cycle's top maps.
const MAX_WINDOW_MAPS: usize = 1 << 16;
const TOP_MAPS_PER_CYCLE: usize = 3;
const MAX_PLAUSIBLE_PAUSE_NS: u64 = 60_000_000_000;

/// Keeps the `n` entries of `map` with the most bytes.
fn keep_top(map: &mut HashMap<u64, u64>, n: usize) {
    let mut bytes: Vec<u64> = map.values().copied().collect();
    let (_, cutoff, _) = bytes.select_nth_unstable_by(n, |a, b| b.cmp(a));
    let cutoff = *cutoff;
    map.retain(|_, b| *b > cutoff);
}

/// `began` if `end` follows it by less than a minute (else one of them is garbage).
fn plausible(began: u64, end: u64) -> Option<u64> {
    (began != 0 && began <= end && end - began < MAX_PLAUSIBLE_PAUSE_NS).then_some(began)
}

/// Before 1.21 a stop carries no reason: sweep termination turns marking on, mark termination
/// turns it off, and any other stop leaves the phase alone.
fn phase_change(at_stop: u32, at_return: u32) -> StwKind {
    match (at_stop, at_return) {
        (GC_OFF, GC_MARK) => StwKind::SweepTerm,
        (GC_MARK, GC_OFF) => StwKind::MarkTerm,
        _ => StwKind::Other(0),
    }
}

pub struct GcTracker {
    rules: StwRules,
    /// The stop in progress.
    stop: Option<Stop>,
    /// The runtime's own clock of when the stop in progress began, once its start's entry has
    /// been seen (`None` inside means the runtime's reading was missing or implausible).
    began: Option<Option<u64>>,
    cycles: Vec<Cycle>,
    open: Option<usize>,
    sweep_end_ns: Option<u64>,
    pauses: Histogram<u64>,
    pause_total_ns: u64,
    cycles_seen: u64,
    other: BTreeMap<u8, OtherStw>,
    window_events: u64,
    window_bytes: u64,
    window_maps: HashMap<u64, u64>,
    unpaired: u64,
    /// Longest GC pause since [`GcTracker::take_interval_max`] was last called.
    interval_max_ns: u64,
    /// What the allocator handed out for the map growth seen since the trace began, for the
    /// growth between two cycles' ends against `totalAlloc`'s.
    grow_bytes_total: u64,
    /// The last cycle whose cost was read, and the growth seen by then.
    last_cost: Option<(CycleCost, u64)>,
    /// The cycle whose cost was last read, believed or not.
    last_read_cycle: Option<u32>,
    /// Cycle costs read and believed, and refused (with the first reason).
    costs_read: u64,
    costs_refused: u64,
    first_refusal: Option<Refused>,
}

/// What the stop probe saw.
#[derive(Clone, Copy, Debug)]
struct Stop {
    ts: u64,
    /// From the reason register (1.21+), else decided at the restart.
    kind: Option<StwKind>,
    numgc: u32,
    gcphase: u32,
}

impl GcTracker {
    pub fn new(rules: StwRules) -> Self {
        Self {
            rules,
            stop: None,
            began: None,
            cycles: Vec::new(),
            open: None,
            sweep_end_ns: None,
            // 1 ns to one hour at 3 significant figures; longer pauses saturate.
            pauses: Histogram::new_with_bounds(1, 3_600_000_000_000, 3)
                .expect("constant bounds are valid"),
            pause_total_ns: 0,
            cycles_seen: 0,
            other: BTreeMap::new(),
            window_events: 0,
            window_bytes: 0,
            window_maps: HashMap::default(),
            unpaired: 0,
            interval_max_ns: 0,
            grow_bytes_total: 0,
            last_cost: None,
            last_read_cycle: None,
            costs_read: 0,
            costs_refused: 0,
            first_refusal: None,
        }
    }

    /// A map grew at `ts`.
    /// A map grew by `bytes` of arrays, for which the allocator handed out `heap_bytes`.
    pub fn on_growth(&mut self, map: u64, bytes: u64, heap_bytes: u64) {
        self.grow_bytes_total += heap_bytes;
        self.window_events += 1;
        self.window_bytes += bytes;
        *self.window_maps.entry(map).or_default() += bytes;
        if self.window_maps.len() > MAX_WINDOW_MAPS {
            // With the GC off no cycle drains the window: keep the maps that grew most.
            keep_top(&mut self.window_maps, MAX_WINDOW_MAPS / 2);
        }
        if let Some(i) = self.open
            && self.marking()
        {
            self.cycles[i].mark_grow_events += 1;
            self.cycles[i].mark_grow_bytes += bytes;
        }
    }

    /// Whether a cycle is in its concurrent mark phase and the world is running.
    pub fn marking(&self) -> bool {
        self.open.is_some() && self.sweep_end_ns.is_some() && self.stop.is_none()
    }

    pub fn on_stw(&mut self, e: &StwEvent) {
        let ts = e.header.ts_ns;
        if e.op == STW_START {
            self.on_cost(e);
        }
        match e.op {
            STW_STOP => {
                if self.stop.is_some() {
                    self.unpaired += 1;
                }
                self.stop = Some(Stop {
                    ts,
                    kind: self
                        .rules
                        .reason_in_stop
                        .then(|| StwKind::from_reason(e.args[0] as u8)),
                    numgc: e.numgc,
                    gcphase: e.gcphase,
                });
            }
            STW_START => {
                if self.stop.is_none() {
                    self.unpaired += 1;
                    return;
                }
                let runtime_began = if self.rules.worldstop_in_start {
                    e.args[2]
                } else {
                    e.pause_start
                };
                self.began = Some(plausible(runtime_began, ts));
            }
            STW_RETURN => {
                let (Some(stop), Some(runtime_began)) = (self.stop.take(), self.began.take())
                else {
                    self.unpaired += 1;
                    return;
                };
                let kind = stop
                    .kind
                    .unwrap_or_else(|| phase_change(stop.gcphase, e.gcphase));
                // Before 1.22 the runtime's stop clock is `work.pauseStart`, which only the GC
                // sets: for any other stop it still holds the last GC stop's time.
                let began = match kind {
                    StwKind::Other(_) if !self.rules.worldstop_in_start => stop.ts,
                    _ => runtime_began.unwrap_or(stop.ts),
                };
                // RAX is the `now` the runtime charges the pause to (pauseNS += now − began).
                let end = plausible(began, e.args[0]).map_or(ts, |_| e.args[0]);
                let pause = end.saturating_sub(began);
                match kind {
                    StwKind::SweepTerm => {
                        self.open_cycle(stop.ts, stop.numgc);
                        self.on_pause(kind, end, pause);
                    }
                    StwKind::MarkTerm => self.on_mark_termination(&stop, e, began, pause),
                    StwKind::Other(_) => self.on_pause(kind, end, pause),
                }
            }
            _ => self.unpaired += 1,
        }
    }

    /// A mark-termination stop ends the mark phase of the cycle it belongs to — not whatever
    /// stop came next (a ReadMemStats during mark is not the end of marking) — and only when
    /// the cycle did end there: the runtime may find work left and restart the world
    /// still marking (golang/go#27993), which numgc shows by not advancing.
    fn on_mark_termination(&mut self, stop: &Stop, e: &StwEvent, began: u64, mut pause: u64) {
        let known = |n: u32| n != u32::MAX;
        let restarted = known(stop.numgc) && known(e.numgc) && e.numgc == stop.numgc;
        // The cycle this stop ends, when it is the one open: numgc counts completed cycles.
        let ours = self.open.filter(|&i| {
            let number = self.cycles[i].cycle;
            !known(stop.numgc) || number == 0 || stop.numgc.wrapping_add(1) == number
        });
        if let Some(i) = ours {
            let earlier = self.cycles[i].mark_term_pause_ns;
            if !self.rules.worldstop_in_start && !restarted {
                // Before 1.22 mark termination charges its pause before restarting the world:
                // the cycle's pauseNS, less what its earlier stops charged, is the runtime's
                // figure.
                let charged = self.cycles[i].sweep_term_pause_ns + earlier;
                if e.pause_ns > charged && e.pause_ns - charged <= pause {
                    pause = e.pause_ns - charged;
                }
            }
            if restarted {
                // Still marking: the mark phase goes on and the pause is this cycle's.
                self.cycles[i].mark_term_pause_ns = earlier + pause;
                self.record_gc_pause(pause);
                return;
            }
            if let Some(end) = self.sweep_end_ns.take() {
                // The runtime's mark clock ends where it starts stopping the world
                // (`work.tMarkTerm`, which is `pauseStart` before 1.22).
                self.cycles[i].mark_ns = began.saturating_sub(end);
            }
            if known(e.numgc) {
                // numgc counts this cycle once mark termination is done; the stop's reading
                // may have been unavailable (a page not yet touched).
                self.cycles[i].cycle = e.numgc;
            }
            self.cycles[i].mark_term_pause_ns = earlier + pause;
        }
        self.record_gc_pause(pause);
        if !restarted {
            self.open = None;
            self.sweep_end_ns = None;
        }
    }

    /// The cost of the cycle that ended last, once per cycle: any restart of the world until
    /// the next cycle begins reads the same figures.
    fn on_cost(&mut self, e: &StwEvent) {
        let Some(read) = cost::check(&e.cost, e.numgc, e.header.ts_ns) else {
            return;
        };
        if self.last_read_cycle.replace(e.numgc) == Some(e.numgc) {
            return;
        }
        let prev = self
            .last_cost
            .filter(|(p, _)| p.cycle.wrapping_add(1) == e.numgc);
        let read = read.and_then(|c| match prev {
            Some((p, _)) if c.total_alloc < p.total_alloc => Err(Refused::WentBack),
            _ => Ok(c),
        });
        let c = match read {
            Ok(c) => c,
            Err(why) => {
                self.costs_refused += 1;
                self.first_refusal.get_or_insert(why);
                return;
            }
        };
        self.costs_read += 1;
        if let Some(row) = self.cycles.iter_mut().rev().find(|r| r.cycle == c.cycle) {
            row.cost = Some(c);
            if let Some((p, grown)) = prev {
                row.alloc_bytes = Some(c.total_alloc - p.total_alloc);
                row.map_alloc_bytes = Some(self.grow_bytes_total - grown);
                row.runway_bytes = c.heap_goal.checked_sub(p.heap_marked).filter(|&r| r > 0);
            }
        }
        self.last_cost = Some((c, self.grow_bytes_total));
    }

    /// The last cycle whose cost was read.
    pub fn last_cost(&self) -> Option<&CycleCost> {
        self.last_cost.as_ref().map(|(c, _)| c)
    }

    /// Cycle costs believed, refused, and the first reason for a refusal.
    pub fn cost_reads(&self) -> (u64, u64, Option<Refused>) {
        (self.costs_read, self.costs_refused, self.first_refusal)
    }

    fn open_cycle(&mut self, ts: u64, numgc: u32) {
        let mut all: Vec<(u64, u64)> = self.window_maps.drain().collect();
        all.sort_unstable_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
        // A copy, not the truncated vector: that would keep room for every map of the window
        // in every cycle kept.
        let top = all[..all.len().min(TOP_MAPS_PER_CYCLE)].to_vec();
        let cycle = Cycle {
            // numgc counts completed cycles: this one is the next.
            cycle: if numgc == u32::MAX {
                0
            } else {
                numgc.wrapping_add(1)
            },
            start_ns: ts,
            map_grow_events: std::mem::take(&mut self.window_events),
            map_grow_bytes: std::mem::take(&mut self.window_bytes),
            top_maps: top,
            ..Default::default()
        };
        self.cycles_seen += 1;
        if self.cycles.len() == MAX_CYCLES {
            self.cycles.drain(..MAX_CYCLES / 2);
        }
        self.cycles.push(cycle);
        self.open = Some(self.cycles.len() - 1);
        self.sweep_end_ns = None;
    }

    fn record_gc_pause(&mut self, pause: u64) {
        self.pauses.saturating_record(pause);
        self.pause_total_ns += pause;
        self.interval_max_ns = self.interval_max_ns.max(pause);
    }

    fn on_pause(&mut self, kind: StwKind, ts: u64, pause: u64) {
        match kind {
            StwKind::SweepTerm => {
                self.record_gc_pause(pause);
                let Some(i) = self.open else { return };
                self.cycles[i].sweep_term_pause_ns = pause;
                self.sweep_end_ns = Some(ts);
            }
            StwKind::MarkTerm => self.record_gc_pause(pause),
            StwKind::Other(reason) => {
                let o = self.other.entry(reason).or_default();
                o.count += 1;
                o.total_ns += pause;
                o.max_ns = o.max_ns.max(pause);
            }
        }
    }

    /// Cycles whose sweep termination was seen (the first may lack its start if the trace began
    /// mid-cycle).
    pub fn cycles(&self) -> &[Cycle] {
        &self.cycles
    }

    pub fn cycles_seen(&self) -> u64 {
        self.cycles_seen
    }

    pub fn pauses(&self) -> &Histogram<u64> {
        &self.pauses
    }

    pub fn pause_total_ns(&self) -> u64 {
        self.pause_total_ns
    }

    pub fn other(&self) -> &BTreeMap<u8, OtherStw> {
        &self.other
    }

    /// The stop/start probes were detached or re-attached: whatever pause was in flight can no
    /// longer be timed, nor the cycle it belonged to completed.
    pub fn gap(&mut self) {
        self.stop = None;
        self.began = None;
        self.open = None;
        self.sweep_end_ns = None;
    }

    /// The longest GC pause since the previous call.
    pub fn take_interval_max(&mut self) -> u64 {
        std::mem::take(&mut self.interval_max_ns)
    }

    /// Stops without a start or starts without a stop (a probe attached mid-pause).
    pub fn unpaired(&self) -> u64 {
        self.unpaired
    }
}

#[cfg(test)]
pub(crate) mod tests;
