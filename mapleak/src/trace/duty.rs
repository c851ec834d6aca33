//! Applies the governor: switches probe groups on and off, accounts how long each was attached,
//! and feeds the sampler. Under `--exact` it only accounts.
//!
//! A group at share `s` is attached for windows of `s` × a tenth of the interval, spread over
//! the interval so that a workload with a rhythm of its own is sampled across its phases. A
//! window is never shorter than [`MIN_WINDOW`] (attaching takes effect only after a moment, and
//! a window must see enough of the target's work to scale by); at small shares the period
//! between windows grows instead.

use std::collections::BTreeMap;

use tokio::time::{Duration, Instant};

use super::{
    TraceError,
    calibrate::HitCost,
    governor::{Governor, IntervalUse},
    loader::Loaded,
    sampler::{Sampler, Window},
    work::{Work, WorkGauge},
};
use crate::{aggregate::Aggregator, catalogue::ProbeGroup};

pub const SLICES: u32 = 10;

/// When the governor first judges the probes' cost: long enough to count a busy group's hits,
/// short enough that its full attachment until then costs a small part of the budget of a run
/// of a few seconds (the rest of the trace pays it back). Later judgements come every slice.
pub const FIRST_JUDGEMENT: Duration = Duration::from_millis(10);

/// What `group` has observed so far, `(events, bytes)`: the duty cycle takes differences, so
/// its accounting periods need not be the report's intervals.
fn observed(group: ProbeGroup, agg: &Aggregator, hits: u64) -> (u64, u64) {
    let t = agg.totals();
    match group {
        ProbeGroup::Growth => (t.grow_events, t.grow_bytes),
        ProbeGroup::Gc => (agg.gc().cycles_seen(), agg.gc().pause_total_ns()),
        ProbeGroup::Create => (t.maps_created, 0),
        ProbeGroup::Assist => {
            let a = agg.assists().totals();
            (a.calls + a.limiter_calls, 0)
        }
        // Counted in the kernel: every hit is an assignment or an evacuation.
        ProbeGroup::Assign | ProbeGroup::Evacuate => (hits, 0),
    }
}

pub const MIN_WINDOW: Duration = Duration::from_millis(20);

/// The probe groups the duty cycle switches and counts: the loaded eBPF programs in a trace,
/// a stand-in in the unit tests.
pub trait ProbeSwitch {
    fn set_group(&mut self, group: ProbeGroup, on: bool) -> Result<(), TraceError>;
    fn group_hits(&self, group: ProbeGroup) -> u64;
}

impl ProbeSwitch for Loaded {
    fn set_group(&mut self, group: ProbeGroup, on: bool) -> Result<(), TraceError> {
        Loaded::set_group(self, group, on)
    }

    fn group_hits(&self, group: ProbeGroup) -> u64 {
        Loaded::group_hits(self, group)
    }
}

/// What a round of switching did. A group whose attach failed stays detached and is tried again
/// at its next window: a failed attach never ends a trace by itself.
#[derive(Debug, Default)]
pub struct Switched {
    pub groups: Vec<ProbeGroup>,
    pub failed: Vec<(ProbeGroup, TraceError)>,
}

struct GroupDuty {
    attached_since: Option<Instant>,
    attached_ns: u64,
    /// The target's work counters when last attached, and the work done while attached this
    /// interval.
    work_at_attach: Work,
    work_attached: Work,
    hits_at_start: u64,
    /// What the group had observed so far (events, bytes) when the accounting period began.
    observed_at_start: (u64, u64),
    share: f64,
    /// Attached stretch and full period of the duty cycle at this share.
    window: Duration,
    period: Duration,
    slice_start: Instant,
    /// When to detach (if attached) or attach (if not) next; `None` at share 1.
    next_toggle: Option<Instant>,
}

pub struct DutyCycle {
    governor: Option<Governor>,
    groups: BTreeMap<ProbeGroup, GroupDuty>,
    interval_start: Instant,
    slice: Duration,
    gauge: WorkGauge,
    work_at_start: Option<Work>,
    was_governed: bool,
    /// When the governor judges next (`None` without a governor).
    next_judgement: Option<Instant>,
    /// The target's work counters when the trace began.
    work_at_attach: Option<Work>,
    pub sampler: Sampler,
}

impl DutyCycle {
    /// Every group in `attached` starts attached (the loader attached them).
    pub fn new(
        governor: Option<Governor>,
        now: Instant,
        loaded: &impl ProbeSwitch,
        agg: &Aggregator,
        interval: Duration,
        attached: &[ProbeGroup],
        gauge: WorkGauge,
    ) -> Self {
        // Only a governor samples, so without one the cost never enters an estimate.
        let sampler = Sampler::new(governor.as_ref().map_or(HitCost::new(0.0), Governor::cost));
        let work = gauge.read();
        let groups = attached
            .iter()
            .map(|g| {
                let duty = GroupDuty {
                    attached_since: Some(now),
                    attached_ns: 0,
                    work_at_attach: work.unwrap_or_default(),
                    work_attached: Work::ZERO,
                    hits_at_start: loaded.group_hits(*g),
                    observed_at_start: observed(*g, agg, loaded.group_hits(*g)),
                    share: 1.0,
                    window: Duration::ZERO,
                    period: Duration::ZERO,
                    slice_start: now,
                    next_toggle: None,
                };
                (*g, duty)
            })
            .collect();
        let slice = interval / SLICES;
        Self {
            next_judgement: governor.is_some().then(|| now + FIRST_JUDGEMENT.min(slice)),
            governor,
            groups,
            interval_start: now,
            slice,
            gauge,
            work_at_attach: work,
            work_at_start: work,
            was_governed: false,
            sampler,
        }
    }

    /// Reads the target's work counters, so that the last reading before it exits is recent.
    pub fn refresh_work(&self) {
        self.gauge.read();
    }

    /// Heap bytes the target allocated since the trace began, as its runtime counts them (as of
    /// its last reading once it has exited).
    pub fn allocated_bytes(&self) -> Option<u64> {
        let now = self.gauge.read()?.alloc?;
        Some(now.saturating_sub(self.work_at_attach?.alloc?))
    }

    /// When the governor is due to judge the probes' cost again.
    pub fn next_judgement(&self) -> Option<Instant> {
        self.next_judgement
    }

    /// When the next group is due to be switched.
    pub fn next_toggle(&self) -> Option<Instant> {
        self.groups.values().filter_map(|d| d.next_toggle).min()
    }

    /// Switches the groups that are due. The caller drains the ring buffer first, so that every
    /// event of an attached stretch is counted in it.
    pub fn toggle_due(&mut self, now: Instant, loaded: &mut impl ProbeSwitch) -> Switched {
        let mut switched = Switched::default();
        let work = self.gauge.read().unwrap_or_default();
        for (group, duty) in &mut self.groups {
            if !duty.next_toggle.is_some_and(|at| at <= now) {
                continue;
            }
            match duty.attached_since {
                Some(since) => {
                    if let Err(e) = loaded.set_group(*group, false) {
                        // Still attached: counted as such, and tried again at the next window.
                        duty.next_toggle = Some(now + duty.window);
                        switched.failed.push((*group, e));
                        continue;
                    }
                    duty.attached_since = None;
                    duty.attached_ns += (now - since).as_nanos() as u64;
                    duty.work_attached.add(work.since(duty.work_at_attach));
                    duty.next_toggle = Some(duty.slice_start + duty.period);
                }
                None => {
                    if let Err(e) = loaded.set_group(*group, true) {
                        duty.slice_start = now;
                        duty.next_toggle = Some(now + duty.period);
                        switched.failed.push((*group, e));
                        continue;
                    }
                    // Live once the attach returns, which can wait on an earlier detach.
                    let live = Instant::now();
                    duty.work_at_attach = self.gauge.read().unwrap_or(work);
                    duty.attached_since = Some(live);
                    duty.slice_start = live;
                    duty.next_toggle = Some(live + duty.window);
                }
            }
            switched.groups.push(*group);
        }
        switched
    }

    /// Closes an interval: records what each group saw and for how long, lets the governor set
    /// the next shares, and (re)attaches every group for the start of the next slice.
    pub fn end_interval(
        &mut self,
        now: Instant,
        loaded: &mut impl ProbeSwitch,
        agg: &Aggregator,
    ) -> Switched {
        let wall_ns = (now - self.interval_start).as_nanos() as u64;
        let work_now = self.gauge.read();
        // Unknown (the target exited) reads as no CPU time: the sampler then falls back to wall
        // time for the interval.
        let done = work_now
            .zip(self.work_at_start)
            .map_or(Work::default(), |(b, a)| b.since(a));
        let work = work_now.unwrap_or_default();
        let mut uses = Vec::with_capacity(self.groups.len());
        for (group, duty) in &mut self.groups {
            if let Some(since) = duty.attached_since {
                duty.attached_ns += (now - since).as_nanos() as u64;
                duty.attached_since = Some(now);
                duty.work_attached.add(work.since(duty.work_at_attach));
                duty.work_at_attach = work;
            }
            let hits_now = loaded.group_hits(*group);
            let used = IntervalUse {
                hits: hits_now - duty.hits_at_start,
                attached_ns: std::mem::take(&mut duty.attached_ns),
                cpu_attached_ns: duty.work_attached.cpu_ns,
                alloc: done.alloc.zip(duty.work_attached.alloc),
            };
            duty.hits_at_start = hits_now;
            let seen = observed(*group, agg, hits_now);
            let observed = (
                seen.0 - duty.observed_at_start.0,
                seen.1 - duty.observed_at_start.1,
            );
            duty.observed_at_start = seen;
            let attached_work = std::mem::replace(&mut duty.work_attached, Work::ZERO);
            let window = Window {
                wall_ns,
                attached_ns: used.attached_ns,
                cpu_ns: done.cpu_ns,
                cpu_attached_ns: attached_work.cpu_ns,
                alloc: done.alloc.zip(attached_work.alloc),
                hits: used.hits,
            };
            self.sampler.record(*group, window, observed);
            uses.push((*group, used));
        }
        let mut reattached = Switched::default();
        let Some(governor) = &mut self.governor else {
            self.interval_start = now;
            self.work_at_start = work_now;
            return reattached;
        };
        self.next_judgement = Some(now + self.slice);
        let next_wall = self.slice.as_nanos() as u64;
        let shares = governor.update_all(&uses, done.cpu_ns, wall_ns, next_wall);
        for (group, duty) in &mut self.groups {
            let was = duty.share;
            duty.share = shares[group];
            duty.window = self.slice.mul_f64(duty.share).max(MIN_WINDOW);
            duty.period = duty.window.div_f64(duty.share);
            if duty.share >= 1.0 {
                duty.next_toggle = None;
                if duty.attached_since.is_none() {
                    // A failure leaves it detached until the next interval tries again.
                    if let Err(e) = loaded.set_group(*group, true) {
                        reattached.failed.push((*group, e));
                        continue;
                    }
                    duty.attached_since = Some(Instant::now());
                    duty.work_at_attach = self.gauge.read().unwrap_or(work);
                    reattached.groups.push(*group);
                }
            } else if was >= 1.0 {
                // Leaving full attachment, which was a long window of its own: the gap first.
                if duty.attached_since.is_some() {
                    if let Err(e) = loaded.set_group(*group, false) {
                        // Still attached, as after a failed detach at a window's end: tried
                        // again a window later (nothing else would ever detach it).
                        duty.slice_start = now;
                        duty.next_toggle = Some(now + duty.window);
                        reattached.failed.push((*group, e));
                        continue;
                    }
                    duty.attached_since = None;
                    reattached.groups.push(*group);
                }
                duty.slice_start = now.checked_sub(duty.window).unwrap_or(now);
                duty.next_toggle = Some(duty.slice_start + duty.period);
            } else if was != duty.share {
                // Same phase, new proportions: the current window or gap ends by the new ones.
                let ends = match duty.attached_since {
                    Some(_) => duty.slice_start + duty.window,
                    None => duty.slice_start + duty.period,
                };
                duty.next_toggle = Some(ends.max(now));
            }
        }
        self.interval_start = now;
        self.work_at_start = work_now;
        reattached
    }

    pub fn governed(&self) -> bool {
        self.governor.is_some() || self.was_governed
    }

    /// The final accounting must not switch anything on again.
    pub fn take_governor(&mut self) -> Option<Governor> {
        self.was_governed |= self.governor.is_some();
        self.next_judgement = None;
        self.governor.take()
    }
}

#[cfg(test)]
mod tests;
