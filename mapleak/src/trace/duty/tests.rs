//! The duty cycle on a paused clock, switching a stand-in for the loaded probes, with a target
//! that does one unit of work per millisecond: every switch time and every sum is known.

use std::collections::BTreeMap;

use tokio::time::{Duration, Instant, advance};

use super::*;
use crate::{
    aggregate::{GoRules, tests::grow},
    decode::encode,
    report::sampling::{GroupSampling, ScaledBy},
};

const MS: Duration = Duration::from_millis(1);
/// Heap bytes the target allocates per millisecond, attached or not: the probes slow it down,
/// they do not change what it does.
const ALLOC_PER_MS: u64 = 1000;
/// Bytes of the array each growth allocates: 2 buckets of 144 B.
const GROWTH_BYTES: u64 = 288;

/// The probes as the duty cycle sees them: which group is attached, and every switch made.
#[derive(Default)]
struct Probes {
    attached: BTreeMap<ProbeGroup, bool>,
    hits: BTreeMap<ProbeGroup, u64>,
    /// `(ms since the start, group, on)`.
    switches: Vec<(u64, ProbeGroup, bool)>,
    /// Switches of these groups fail, and leave them as they were.
    failing: Vec<ProbeGroup>,
    start: Option<Instant>,
}

impl ProbeSwitch for Probes {
    fn set_group(&mut self, group: ProbeGroup, on: bool) -> Result<(), TraceError> {
        if self.failing.contains(&group) {
            return Err(TraceError::Missing(format!("{group:?} refused")));
        }
        let at = (Instant::now() - self.start.expect("started")).as_millis() as u64;
        self.switches.push((at, group, on));
        self.attached.insert(group, on);
        Ok(())
    }

    fn group_hits(&self, group: ProbeGroup) -> u64 {
        self.hits.get(&group).copied().unwrap_or(0)
    }
}

/// A traced target and the duty cycle over it, driven as the session drives it.
struct Trace {
    probes: Probes,
    agg: Aggregator,
    duty: DutyCycle,
    start: Instant,
    /// Milliseconds of the target's life so far, and the growths it made in them.
    ms: u64,
    growths: u64,
}

impl Trace {
    /// `groups` attached at the start; a `governor` switches them, `None` is `--exact`.
    fn new(governor: Option<Governor>, groups: &[ProbeGroup]) -> Self {
        let start = Instant::now();
        let probes = Probes {
            attached: groups.iter().map(|&g| (g, true)).collect(),
            start: Some(start),
            ..Probes::default()
        };
        let agg = Aggregator::new(GoRules {
            load_factor_num: 13,
            malloc_headers: true,
        });
        let gauge = WorkGauge::stub();
        gauge.set(Work {
            cpu_ns: 0,
            alloc: Some(0),
        });
        let duty = DutyCycle::new(
            governor,
            start,
            &probes,
            &agg,
            Duration::from_secs(1),
            groups,
            gauge,
        );
        Self {
            probes,
            agg,
            duty,
            start,
            ms: 0,
            growths: 0,
        }
    }

    /// The target runs to `until` ms: one growth (of a new map) a millisecond, which the growth
    /// probes see while attached, and a hit for each one they see.
    async fn run_to(&mut self, until: u64) {
        while self.ms < until {
            if self.probes.attached.get(&ProbeGroup::Growth) == Some(&true) {
                let map = 0xc000_0000 + self.growths * 64;
                let ts = self.ms * 1_000_000;
                self.agg.record_bytes(&encode(&grow(map, 8, 0, ts)));
                *self.probes.hits.entry(ProbeGroup::Growth).or_default() += 1;
            }
            self.growths += 1;
            self.ms += 1;
            advance(MS).await;
            self.duty.gauge.set(Work {
                cpu_ns: self.ms * 1_000_000,
                alloc: Some(self.ms * ALLOC_PER_MS),
            });
        }
    }

    /// Runs the target to `until` ms, switching and judging whenever the duty cycle is due.
    async fn run(&mut self, until: u64) -> Vec<(ProbeGroup, TraceError)> {
        let mut failed = Vec::new();
        loop {
            let due = [self.duty.next_toggle(), self.duty.next_judgement()]
                .into_iter()
                .flatten()
                .min()
                .map(|at| self.ms_of(at));
            match due {
                Some(at) if at <= until => {
                    self.run_to(at).await;
                    let now = Instant::now();
                    failed.extend(self.duty.toggle_due(now, &mut self.probes).failed);
                    if self.duty.next_judgement().is_some_and(|j| j <= now) {
                        let r = self.duty.end_interval(now, &mut self.probes, &self.agg);
                        failed.extend(r.failed);
                    }
                }
                _ => {
                    self.run_to(until).await;
                    return failed;
                }
            }
        }
    }

    /// Milliseconds since the start at `at`, rounded up: the target's work is counted by the
    /// millisecond.
    fn ms_of(&self, at: Instant) -> u64 {
        (at.saturating_duration_since(self.start).as_nanos() as u64).div_ceil(1_000_000)
    }

    /// Closes the trace as the session does: the governor gone, the last interval accounted.
    fn finish(&mut self) -> BTreeMap<ProbeGroup, GroupSampling> {
        self.duty.take_governor();
        let switched = self
            .duty
            .end_interval(Instant::now(), &mut self.probes, &self.agg);
        assert!(switched.groups.is_empty() && switched.failed.is_empty());
        self.duty
            .sampler
            .summary()
            .into_iter()
            .map(|g| (g.group, g))
            .collect()
    }

    fn switches(&self, group: ProbeGroup) -> Vec<(u64, bool)> {
        self.probes
            .switches
            .iter()
            .filter(|s| s.1 == group)
            .map(|s| (s.0, s.2))
            .collect()
    }
}

/// `--exact --duty growth=SHARE`: the growth group on a fixed schedule, the others attached.
fn forced(share: f64) -> Governor {
    Governor::new(f64::INFINITY, HitCost::new(12_000.0)).force(ProbeGroup::Growth, share)
}

/// Detached at `first`, then attached for `window` ms out of every `period`, until `until`.
fn schedule(first: u64, window: u64, period: u64, until: u64) -> Vec<(u64, bool)> {
    let mut want = vec![(first, false)];
    let mut on = first + period - window;
    while on < until {
        want.push((on, true));
        if on + window <= until {
            want.push((on + window, false));
        }
        on += period;
    }
    want
}

#[tokio::test(start_paused = true)]
async fn without_a_governor_nothing_is_switched_and_nothing_is_sampled() {
    let mut t = Trace::new(None, &[ProbeGroup::Growth, ProbeGroup::Gc]);
    assert_eq!(t.duty.next_toggle(), None);
    assert_eq!(t.duty.next_judgement(), None);
    assert!(!t.duty.governed());
    t.run(1000).await;
    // The session ends each interval of an ungoverned trace at its tick.
    let now = Instant::now();
    let switched = t.duty.end_interval(now, &mut t.probes, &t.agg);
    assert!(switched.groups.is_empty());
    t.run(1500).await;
    let groups = t.finish();
    assert!(t.probes.switches.is_empty());
    let growth = &groups[&ProbeGroup::Growth];
    assert_eq!(growth.attached_fraction, 1.0);
    assert!(!growth.sampled);
    assert_eq!(growth.scaled_by, ScaledBy::None);
    assert_eq!(
        (growth.observed_events, growth.estimated_events),
        (1500, 1500)
    );
    assert_eq!(growth.hits, 1500);
    assert_eq!(groups[&ProbeGroup::Gc].attached_fraction, 1.0);
    assert_eq!(t.duty.allocated_bytes(), Some(1500 * ALLOC_PER_MS));
}

#[tokio::test(start_paused = true)]
async fn a_share_is_a_window_of_each_tenth_of_the_interval() {
    let mut t = Trace::new(Some(forced(0.3)), &[ProbeGroup::Growth, ProbeGroup::Gc]);
    // The first judgement after 10 ms, then one every slice (a tenth of the 1 s interval).
    assert_eq!(t.duty.next_judgement(), Some(t.start + 10 * MS));
    let failed = t.run(1010).await;
    assert!(failed.is_empty());
    assert_eq!(t.duty.next_judgement(), Some(t.start + 1110 * MS));
    // Leaving full attachment at the first judgement: detached at once (that stretch was a
    // window), then 30 ms attached in every 100, each window where the last one would have
    // ended.
    assert_eq!(
        t.switches(ProbeGroup::Growth),
        schedule(10, 30, 100, 1010),
        "{:?}",
        t.probes.switches
    );
    // The GC group under an endless budget is never switched.
    assert!(t.switches(ProbeGroup::Gc).is_empty());
    let groups = t.finish();
    let growth = &groups[&ProbeGroup::Growth];
    // Attached the first 10 ms and ten windows of 30 ms, of 1010 ms.
    assert!(
        (growth.attached_fraction - 310.0 / 1010.0).abs() < 1e-12,
        "{}",
        growth.attached_fraction
    );
    assert!(growth.sampled);
    assert_eq!((growth.observed_events, growth.hits), (310, 310));
    // Scaled by what the target allocated inside the windows against all it allocated, the
    // growths seen give exactly the growths made.
    assert_eq!(growth.scaled_by, ScaledBy::Allocation);
    assert_eq!(t.growths, 1010);
    assert_eq!(growth.estimated_events, 1010);
    assert_eq!(growth.observed_bytes, 310 * GROWTH_BYTES);
    assert_eq!(growth.estimated_bytes, 1010 * GROWTH_BYTES);
    let gc = &groups[&ProbeGroup::Gc];
    assert_eq!(gc.attached_fraction, 1.0);
    assert!(!gc.sampled);
}

#[tokio::test(start_paused = true)]
async fn a_small_share_keeps_its_window_and_stretches_its_period() {
    // 5 % of a 100 ms slice is 5 ms, under the shortest window: 20 ms every 400 ms instead.
    let mut t = Trace::new(Some(forced(0.05)), &[ProbeGroup::Growth]);
    t.run(1210).await;
    assert_eq!(
        t.switches(ProbeGroup::Growth),
        schedule(10, 20, 400, 1210),
        "{:?}",
        t.probes.switches
    );
    let growth = &t.finish()[&ProbeGroup::Growth];
    // 10 ms, then windows at 390, 790 and 1190 ms.
    assert_eq!(growth.observed_events, 70);
    assert!((growth.attached_fraction - 70.0 / 1210.0).abs() < 1e-12);
    assert_eq!(growth.estimated_events, 1210);
}

#[tokio::test(start_paused = true)]
async fn a_failed_switch_leaves_the_group_as_it_was_and_is_tried_again() {
    let mut t = Trace::new(Some(forced(0.3)), &[ProbeGroup::Growth]);
    // Detaching fails at the first judgement: still attached, counted so, tried again after a
    // window.
    t.probes.failing = vec![ProbeGroup::Growth];
    let failed = t.run(10).await;
    assert_eq!(failed.len(), 1, "{failed:?}");
    assert_eq!(failed[0].0, ProbeGroup::Growth);
    assert_eq!(t.duty.next_toggle(), Some(t.start + 40 * MS));
    t.probes.failing.clear();
    assert!(t.run(40).await.is_empty());
    assert_eq!(t.switches(ProbeGroup::Growth), [(40, false)]);
    // Attaching fails at 110 ms: detached until the next period, 100 ms later.
    t.run(109).await;
    t.probes.failing = vec![ProbeGroup::Growth];
    assert_eq!(t.duty.next_toggle(), Some(t.start + 110 * MS));
    let failed = t.run(110).await;
    assert_eq!(failed.len(), 1, "{failed:?}");
    assert_eq!(t.duty.next_toggle(), Some(t.start + 210 * MS));
    t.probes.failing.clear();
    t.run(300).await;
    assert_eq!(
        t.switches(ProbeGroup::Growth),
        [(40, false), (210, true), (240, false)]
    );
    let growth = &t.finish()[&ProbeGroup::Growth];
    // Attached 0–40 and 210–240 ms.
    assert_eq!(growth.observed_events, 70);
    assert!((growth.attached_fraction - 70.0 / 300.0).abs() < 1e-12);
}

#[tokio::test(start_paused = true)]
async fn a_new_share_takes_effect_where_the_current_gap_ends() {
    let mut t = Trace::new(Some(forced(0.3)), &[ProbeGroup::Growth]);
    t.run(250).await;
    // The share doubles from the judgement at 310 ms, which finds the group just detached (a
    // window and a judgement due at once are switched first, then judged): its gap still ends
    // at 380 ms, and windows are 60 ms from then on.
    let governor = t.duty.governor.take().expect("a governor");
    t.duty.governor = Some(governor.force(ProbeGroup::Growth, 0.6));
    t.run(1010).await;
    let mut want = schedule(10, 30, 100, 310);
    for on in (380..1010).step_by(100) {
        want.push((on, true));
        if on + 60 <= 1010 {
            want.push((on + 60, false));
        }
    }
    assert_eq!(t.switches(ProbeGroup::Growth), want);
    let growth = &t.finish()[&ProbeGroup::Growth];
    // 10 ms, three windows of 30, six of 60 and the last 30 ms of one more.
    assert_eq!(growth.observed_events, 10 + 3 * 30 + 6 * 60 + 30);
    assert_eq!(growth.estimated_events, 1010);
}
