use mapleak_common::{EventHeader, EventKind};

use super::*;

pub(crate) const GO127: StwRules = StwRules {
    reason_in_stop: true,
    worldstop_in_start: true,
};
const GO119: StwRules = StwRules {
    reason_in_stop: false,
    worldstop_in_start: false,
};

pub(crate) fn stw(op: u8, ts: u64, args: [u64; 3], numgc: u32, gcphase: u32) -> StwEvent {
    StwEvent {
        header: EventHeader {
            kind: EventKind::Stw as u32,
            ts_ns: ts,
            ..Default::default()
        },
        args,
        numgc,
        gcphase,
        op,
        ..Default::default()
    }
}

/// A start of the world and its return, which carries the runtime's `now` in RAX.
fn restart(t: &mut GcTracker, ts: u64, args: [u64; 3], now: u64, numgc: u32) {
    t.on_stw(&stw(STW_START, ts, args, numgc, 0));
    t.on_stw(&stw(STW_RETURN, ts + 20_000, [now, 0, 0], numgc, 0));
}

/// One GC cycle on 1.22+: stop(2) … start(0, 2, began) … mark … stop(1) … start(now, 1, began).
fn cycle(t: &mut GcTracker, at: u64, numgc: u32) {
    t.on_stw(&stw(STW_STOP, at, [2, 0, 0], numgc, 0));
    restart(t, at + 30_000, [0, 2, at + 10_000], at + 50_000, numgc);
    t.on_stw(&stw(STW_STOP, at + 1_000_000, [1, 0, 0], numgc, 0));
    restart(
        t,
        at + 1_010_000,
        [at + 1_030_000, 1, at + 1_000_000],
        at + 1_030_000,
        numgc + 1,
    );
}

#[test]
fn cycles_are_numbered_from_numgc_and_pauses_use_the_runtime_timestamp() {
    let mut t = GcTracker::new(GO127);
    cycle(&mut t, 10_000_000, 41);
    cycle(&mut t, 20_000_000, 42);
    let c = t.cycles();
    assert_eq!(c.len(), 2);
    assert_eq!((c[0].cycle, c[1].cycle), (42, 43));
    // Sweep: the runtime's `now` at +50 µs minus its stop timestamp at +10 µs.
    assert_eq!(c[0].sweep_term_pause_ns, 40_000);
    assert_eq!(c[0].mark_term_pause_ns, 30_000);
    assert_eq!(c[0].mark_ns, 1_000_000 - 50_000);
    assert_eq!(t.pause_total_ns(), 2 * 70_000);
    assert_eq!(t.pauses().len(), 4);
    assert!(t.pauses().equivalent(t.pauses().max(), 40_000));
    assert_eq!(t.unpaired(), 0);
}

#[test]
fn growth_is_attributed_to_the_window_and_the_mark_phase() {
    let mut t = GcTracker::new(GO127);
    t.on_growth(0xa, 100, 100);
    t.on_growth(0xb, 300, 300);
    t.on_stw(&stw(STW_STOP, 1_000, [2, 0, 0], 0, 0));
    restart(&mut t, 2_000, [0, 2, 1_000], 2_500, 0);
    t.on_growth(0xa, 50, 50); // during mark
    t.on_stw(&stw(STW_STOP, 9_000, [1, 0, 0], 0, 0));
    t.on_growth(0xc, 7, 7); // during mark termination: not marking any more
    restart(&mut t, 9_500, [9_600, 1, 9_000], 9_600, 1);
    let c = &t.cycles()[0];
    assert_eq!((c.map_grow_events, c.map_grow_bytes), (2, 400));
    assert_eq!(c.top_maps, vec![(0xb, 300), (0xa, 100)]);
    assert_eq!((c.mark_grow_events, c.mark_grow_bytes), (1, 50));
    // The next cycle's window holds what grew since this one started.
    t.on_stw(&stw(STW_STOP, 20_000, [2, 0, 0], 1, 0));
    restart(&mut t, 20_100, [0, 2, 20_000], 20_200, 1);
    assert_eq!(t.cycles()[1].map_grow_events, 2);
}

#[test]
fn other_stops_are_kept_apart_by_reason() {
    let mut t = GcTracker::new(GO127);
    t.on_stw(&stw(STW_STOP, 1_000, [7, 0, 0], 0, 0));
    restart(&mut t, 5_000, [0, 7, 2_000], 6_000, 0);
    assert!(t.cycles().is_empty());
    assert_eq!(t.pauses().len(), 0);
    let o = t.other()[&7];
    assert_eq!((o.count, o.total_ns, o.max_ns), (1, 4_000, 4_000));
    assert_eq!(reason_name(7), "read mem stats");
}

#[test]
fn without_a_reason_the_gc_phase_decides_and_pause_start_times_it() {
    let mut t = GcTracker::new(GO119);
    let with_pause_start = |mut e: StwEvent, at: u64| {
        e.pause_start = at;
        e
    };
    // Sweep termination: _GCoff → _GCmark; the runtime's pauseStart is 900, before the probe.
    t.on_stw(&stw(STW_STOP, 1_000, [0xdead, 0, 0], 4, 0));
    t.on_stw(&with_pause_start(
        stw(STW_START, 2_000, [0, 0, 0], 4, 0),
        900,
    ));
    t.on_stw(&stw(STW_RETURN, 2_500, [3_000, 0, 0], 4, 1));
    // Mark termination: _GCmark → _GCoff.
    t.on_stw(&stw(STW_STOP, 8_000, [0, 0, 0], 4, 1));
    t.on_stw(&with_pause_start(
        stw(STW_START, 8_100, [0, 0, 0], 4, 1),
        7_900,
    ));
    // The runtime charged 2 100 + 450 ns before restarting; the restart itself is not a pause.
    let mut ret = stw(STW_RETURN, 8_200, [8_500, 0, 0], 5, 0);
    ret.pause_ns = 2_550;
    t.on_stw(&ret);
    // Anything else leaves the phase alone; without pauseStart the stop probe's clock is used.
    t.on_stw(&stw(STW_STOP, 9_000, [0, 0, 0], 5, 0));
    t.on_stw(&stw(STW_START, 9_050, [0, 0, 0], 5, 0));
    t.on_stw(&stw(STW_RETURN, 9_060, [9_100, 0, 0], 5, 0));
    let c = &t.cycles()[0];
    assert_eq!(
        (c.cycle, c.sweep_term_pause_ns, c.mark_term_pause_ns),
        (5, 2_100, 450)
    );
    // The mark clock ends at the runtime's pauseStart of mark termination.
    assert_eq!(c.mark_ns, 7_900 - 3_000);
    assert_eq!(t.other()[&0].count, 1);
    assert_eq!(t.other()[&0].total_ns, 100);
}

#[test]
fn a_start_without_a_stop_is_counted_not_timed() {
    let mut t = GcTracker::new(GO127);
    t.on_stw(&stw(STW_START, 5_000, [0, 2, 1_000], 0, 0));
    t.on_stw(&stw(STW_RETURN, 6_000, [6_000, 0, 0], 0, 0));
    assert_eq!((t.unpaired(), t.pauses().len()), (2, 0));
}

#[test]
fn a_stop_during_mark_does_not_end_the_mark_phase() {
    let mut t = GcTracker::new(GO127);
    t.on_stw(&stw(STW_STOP, 1_000, [2, 0, 0], 6, 0));
    restart(&mut t, 2_000, [0, 2, 1_000], 3_000, 6);
    assert!(t.marking());
    // ReadMemStats stops the world in the middle of mark: not marking while stopped, marking
    // again after, and the cycle goes on.
    t.on_stw(&stw(STW_STOP, 50_000, [7, 0, 0], 6, 0));
    assert!(!t.marking());
    t.on_growth(0xa, 10, 10);
    restart(&mut t, 51_000, [0, 7, 50_500], 52_000, 6);
    assert!(t.marking());
    t.on_growth(0xa, 20, 20);
    t.on_stw(&stw(STW_STOP, 100_000, [1, 0, 0], 6, 0));
    restart(&mut t, 101_000, [104_000, 1, 100_200], 104_000, 7);
    let c = &t.cycles()[0];
    assert_eq!(c.cycle, 7);
    // From the sweep's restart (3 000) to the mark termination's own stop clock (100 200).
    assert_eq!(c.mark_ns, 100_200 - 3_000);
    assert_eq!(
        (c.sweep_term_pause_ns, c.mark_term_pause_ns),
        (2_000, 3_800)
    );
    assert_eq!((c.mark_grow_events, c.mark_grow_bytes), (1, 20));
    assert_eq!(t.other()[&7].total_ns, 1_500);
    assert_eq!(t.pauses().len(), 2);
}

#[test]
fn without_a_reason_a_stop_during_mark_is_told_apart_by_the_phase() {
    let mut t = GcTracker::new(GO119);
    let with = |mut e: StwEvent, pause_start: u64, pause_ns: u64| {
        e.pause_start = pause_start;
        e.pause_ns = pause_ns;
        e
    };
    t.on_stw(&stw(STW_STOP, 1_000, [0, 0, 0], 2, 0));
    t.on_stw(&with(stw(STW_START, 2_000, [0, 0, 0], 2, 0), 900, 0));
    t.on_stw(&stw(STW_RETURN, 2_500, [3_000, 0, 0], 2, 1));
    // ReadMemStats: the phase stays _GCmark, and pauseStart still holds the sweep's 900,
    // which is not when this stop began.
    t.on_stw(&stw(STW_STOP, 40_000, [0, 0, 0], 2, 1));
    t.on_stw(&with(stw(STW_START, 40_300, [0, 0, 0], 2, 1), 900, 2_100));
    t.on_stw(&stw(STW_RETURN, 40_400, [40_500, 0, 0], 2, 1));
    t.on_stw(&stw(STW_STOP, 90_000, [0, 0, 0], 2, 1));
    t.on_stw(&with(
        stw(STW_START, 90_100, [0, 0, 0], 2, 1),
        89_800,
        2_100,
    ));
    t.on_stw(&with(
        stw(STW_RETURN, 90_200, [90_500, 0, 0], 3, 0),
        89_800,
        2_800,
    ));
    let c = &t.cycles()[0];
    assert_eq!(c.cycle, 3);
    assert_eq!(c.mark_ns, 89_800 - 3_000);
    assert_eq!((c.sweep_term_pause_ns, c.mark_term_pause_ns), (2_100, 700));
    assert_eq!(t.other()[&0].total_ns, 500);
}

#[test]
fn a_restarted_mark_termination_keeps_the_cycle_marking() {
    let mut t = GcTracker::new(GO127);
    t.on_stw(&stw(STW_STOP, 1_000, [2, 0, 0], 9, 0));
    restart(&mut t, 2_000, [0, 2, 1_000], 3_000, 9);
    // Work was left over: the world restarts still marking, numgc unchanged.
    t.on_stw(&stw(STW_STOP, 20_000, [1, 0, 0], 9, 0));
    restart(&mut t, 21_000, [22_000, 1, 20_000], 22_000, 9);
    assert!(t.marking());
    t.on_stw(&stw(STW_STOP, 60_000, [1, 0, 0], 9, 0));
    restart(&mut t, 61_000, [65_000, 1, 60_000], 65_000, 10);
    let c = &t.cycles()[0];
    assert_eq!(c.cycle, 10);
    assert_eq!(c.mark_ns, 60_000 - 3_000);
    assert_eq!(c.mark_term_pause_ns, 2_000 + 5_000);
    assert_eq!(t.pause_total_ns(), 2_000 + 2_000 + 5_000);
    assert!(!t.marking());
}

#[test]
fn a_mark_termination_of_another_cycle_is_not_this_ones_mark_end() {
    let mut t = GcTracker::new(GO127);
    t.on_stw(&stw(STW_STOP, 1_000, [2, 0, 0], 4, 0));
    restart(&mut t, 2_000, [0, 2, 1_000], 3_000, 4);
    // Mark termination of cycle 8 (numgc 7 when it stopped): cycle 5's end was never seen.
    t.on_stw(&stw(STW_STOP, 9_000, [1, 0, 0], 7, 0));
    restart(&mut t, 9_500, [9_900, 1, 9_000], 9_900, 8);
    let c = &t.cycles()[0];
    assert_eq!((c.cycle, c.mark_ns, c.mark_term_pause_ns), (5, 0, 0));
    assert!(!t.marking());
}

/// The words the start-the-world probe reads at the end of cycle `n`, which ran from `at` to
/// `at + 1 ms` on 2 Ps, having allocated up to `total_alloc`, with `goal` and `marked`.
pub(crate) fn cost_read(
    n: u32,
    at: i64,
    total_alloc: u64,
    goal: u64,
    marked: u64,
) -> mapleak_common::GcCost {
    use mapleak_common::{GC_COST_CONTROLLER, GC_COST_WORK};
    mapleak_common::GcCost {
        read: GC_COST_WORK | GC_COST_CONTROLLER,
        cycles: n,
        stwprocs: 2,
        maxprocs: 2,
        t_sweep_term: at,
        t_mark: at + 20_000,
        t_mark_term: at + 900_000,
        t_end: at + 1_000_000,
        assist_ns: 100_000,
        dedicated_ns: 400_000,
        fractional_ns: 50_000,
        idle_ns: 10_000,
        heap_goal: goal,
        heap_marked: marked,
        total_alloc,
        memory_limit: i64::MAX,
        gc_percent: 100,
        ..Default::default()
    }
}

/// A cycle ending at `at + 1 ms` whose restart carries its cost.
pub(crate) fn costed_cycle(t: &mut GcTracker, at: u64, numgc: u32, cost: mapleak_common::GcCost) {
    t.on_stw(&stw(STW_STOP, at, [2, 0, 0], numgc, 0));
    restart(t, at + 30_000, [0, 2, at + 10_000], at + 50_000, numgc);
    t.on_stw(&stw(STW_STOP, at + 900_000, [1, 0, 0], numgc, 0));
    let mut start = stw(
        STW_START,
        at + 1_010_000,
        [at + 1_000_000, 1, at + 900_000],
        numgc + 1,
        0,
    );
    start.cost = cost;
    t.on_stw(&start);
    t.on_stw(&stw(
        STW_RETURN,
        at + 1_020_000,
        [at + 1_000_000, 0, 0],
        numgc + 1,
        0,
    ));
    // A later stop before the next cycle restarts the world with the same figures: read once.
    t.on_stw(&stw(STW_STOP, at + 2_000_000, [7, 0, 0], numgc + 1, 0));
    let mut again = stw(
        STW_START,
        at + 2_010_000,
        [0, 7, at + 2_000_000],
        numgc + 1,
        0,
    );
    again.cost = cost;
    t.on_stw(&again);
    t.on_stw(&stw(
        STW_RETURN,
        at + 2_020_000,
        [at + 2_010_000, 0, 0],
        numgc + 1,
        0,
    ));
}

#[test]
fn each_cycle_gets_its_cost_and_the_allocation_since_the_last() {
    const MIB: u64 = 1 << 20;
    let mut t = GcTracker::new(GO127);
    costed_cycle(
        &mut t,
        10_000_000,
        4,
        cost_read(5, 10_000_000, 100 * MIB, 8 * MIB, 4 * MIB),
    );
    t.on_growth(0xa, 3 * MIB, 3 * MIB);
    costed_cycle(
        &mut t,
        20_000_000,
        5,
        cost_read(6, 20_000_000, 112 * MIB, 10 * MIB, 4 * MIB),
    );
    let c = t.cycles();
    assert_eq!((c[0].cycle, c[1].cycle), (5, 6));
    let first = c[0].cost.unwrap();
    assert_eq!(first.busy_ns(), 100_000 + 450_000 + 2 * (20_000 + 100_000));
    // The first has no cycle before it to count from.
    assert_eq!((c[0].alloc_bytes, c[0].runway_bytes), (None, None));
    assert_eq!(c[1].alloc_bytes, Some(12 * MIB));
    assert_eq!(c[1].map_alloc_bytes, Some(3 * MIB));
    assert_eq!(c[1].runway_bytes, Some(6 * MIB));
    assert_eq!(t.cost_reads(), (2, 0, None));
    assert_eq!(t.last_cost().map(|c| c.cycle), Some(6));
    // An allocation counter that goes back is not believed.
    costed_cycle(
        &mut t,
        30_000_000,
        6,
        cost_read(7, 30_000_000, 50 * MIB, 10 * MIB, 4 * MIB),
    );
    assert_eq!(t.cycles()[2].cost, None);
    assert_eq!(t.cost_reads(), (2, 1, Some(Refused::WentBack)));
}
