use mapleak_common::{
    CREATE_MAKEMAP_SMALL, ClassicGrowEvent, CreateEvent, EventHeader, EventKind, StackRef,
};

use super::*;
use crate::{
    aggregate::{Aggregator, GoRules, LiveMap},
    decode::encode,
    report::sites::{Resolutions, ResolvedStack, SourceSite},
};

const RULES: GoRules = GoRules {
    load_factor_num: 13,
    malloc_headers: true,
};
const SECOND: u64 = 1_000_000_000;

fn header(kind: EventKind, ts: u64) -> EventHeader {
    EventHeader {
        kind: kind as u32,
        ts_ns: ts,
        ..Default::default()
    }
}

fn grow(map: u64, count: u64, b: u8, ts: u64) -> Vec<u8> {
    encode(&ClassicGrowEvent {
        site: StackRef { stack_id: 1 },
        ..crate::aggregate::tests::grow(map, count, b, ts)
    })
}

/// A `map[int]int` grown from empty to B = `to_b`, the runtime's trigger counts (Go 1.22).
fn fill(agg: &mut Aggregator, map: u64, to_b: u8, ts: u64) {
    agg.record_bytes(&grow(map, 8, 0, ts));
    let mut count = 13;
    for b in 1..to_b {
        agg.record_bytes(&grow(map, count, b, ts + u64::from(b)));
        count *= 2;
    }
}

fn main_line(line: u32) -> SourceSite {
    SourceSite {
        function: "main.f".into(),
        file: "/src/main.go".into(),
        line,
    }
}

/// Every stack grows its maps in the program's own code, at line 10 + its number.
fn resolutions(agg: &Aggregator) -> Resolutions {
    Resolutions::build(agg, |s| ResolvedStack {
        site: Some(main_line(10 + s.stack_id as u32)),
        own: Some(main_line(10 + s.stack_id as u32)),
        via: Vec::new(),
        frames: Vec::new(),
    })
}

fn inputs<'a>(
    agg: &'a Aggregator,
    res: &'a Resolutions,
    duration_ns: u64,
    create_share: Option<f64>,
) -> Inputs<'a> {
    Inputs {
        agg,
        res,
        map_impl: crate::inspect::MapImpl::Classic,
        go_minor: 22,
        duration_ns,
        growth_share: 1.0,
        create_share,
        growth_scale: 1.0,
        create_scale: create_share.map_or(1.0, |s| 1.0 / s),
        gc_share: 1.0,
        assist_share: None,
        allocated_bytes: None,
        gc: None,
        room: crate::report::room::Room::default(),
    }
}

fn run(agg: &Aggregator, duration_ns: u64, create_share: Option<f64>) -> Vec<Finding> {
    let res = resolutions(agg);
    findings(&inputs(agg, &res, duration_ns, create_share)).findings
}

fn sorted_kinds(found: &[Finding]) -> Vec<FindingKind> {
    let mut k = kinds(found);
    k.sort();
    k
}

fn kinds(found: &[Finding]) -> Vec<FindingKind> {
    found.iter().map(|f| f.kind).collect()
}

#[test]
fn maps_grown_many_times_get_a_hint_with_the_saving() {
    let mut agg = Aggregator::new(RULES);
    // Ten maps grown to B = 10 (3328 entries at the last growth).
    for k in 0..10 {
        fill(&mut agg, 0xc000_0000 + k * 0x100, 10, k * 100);
    }
    let found = run(&agg, SECOND, None);
    assert_eq!(kinds(&found), [FindingKind::UnsizedMap]);
    let Evidence::UnsizedMap(e) = &found[0].evidence else {
        panic!()
    };
    // One more than 6.5 × 2^9 = 3328: the insert that made each map grow to B = 10.
    assert_eq!(
        (e.maps, e.grow_events, e.hint, e.maps_covered),
        (10, 100, 3329, 10)
    );
    // Each map's ten growths allocated arrays of 2, 4, 8, 18, 37, 71, 142, 284, 568 and 1137
    // buckets (2^B, plus 2^(B-4) overflow buckets from B = 4, rounded up to the malloc size
    // class) of 144 B: 2271 × 144 = 327 024 B. make(map, 3329) allocates the final B = 10
    // array once instead: 1024 + 64 buckets × 144 B = 156 672 B, rounded up to whole pages
    // (163 840 B), which makeBucketArray fills with buckets: 1137 × 144 = 163 728 B.
    assert_eq!(e.bytes_saved, 10 * (327_024 - 163_728));
    assert_eq!((found[0].line, found[0].function.as_str()), (11, "main.f"));
}

#[test]
fn a_map_that_grew_a_little_is_left_alone() {
    let mut agg = Aggregator::new(RULES);
    fill(&mut agg, 0xc000_0000, 5, 0);
    assert!(run(&agg, SECOND, None).is_empty());
}

#[test]
fn maps_made_at_a_high_rate_are_churn_when_the_creation_probe_counts_them() {
    let mut agg = Aggregator::new(RULES);
    let site = StackRef { stack_id: 2 };
    // Maps that never grow: each still costs its header (48 B), 1.4 MiB in all.
    for k in 0..30_000u64 {
        agg.record_bytes(&encode(&CreateEvent {
            header: header(EventKind::Create, k * 1000),
            map: 0xc000_0000 + (k % 7) * 0x30,
            op: CREATE_MAKEMAP_SMALL,
            _pad: [0; 7],
            site,
        }));
    }
    // 30 000 maps over 2 s, seen half the time: ~30 000 maps/s, an estimate.
    let found = run(&agg, 2 * SECOND, Some(0.5));
    assert_eq!(kinds(&found), [FindingKind::MapChurn]);
    let Evidence::MapChurn(e) = &found[0].evidence else {
        panic!()
    };
    assert_eq!(e.maps, 30_000);
    assert!((e.maps_per_sec - 30_000.0).abs() < 1e-9);
    assert!(found[0].estimated);
    assert_eq!(found[0].line, 12);
    // The headers of the 60 000 maps the whole trace made (twice what was seen).
    assert_eq!(found[0].saving.bytes, 60_000 * 48);
    // The same maps over ten minutes are not churn.
    assert!(run(&agg, 600 * SECOND, Some(1.0)).is_empty());
}

#[test]
fn a_map_emptied_by_deletes_keeps_its_capacity() {
    let mut agg = Aggregator::new(RULES);
    fill(&mut agg, 0xc000_0000, 14, 0);
    assert_eq!(agg.map(0xc000_0000).unwrap().b, Some(14));
    // As the target holds it: 2^14 + 2^10 buckets of 144 B, a whole number of pages.
    let bytes = 17_408 * 144;
    agg.set_live(
        0xc000_0000,
        Some(LiveMap {
            entries: 1000,
            capacity: 8 << 14,
            bytes,
        }),
    );
    let found = run(&agg, SECOND, None);
    assert_eq!(
        sorted_kinds(&found),
        [FindingKind::UnsizedMap, FindingKind::RetainedCapacity]
    );
    let retained = found
        .iter()
        .find(|f| f.kind == FindingKind::RetainedCapacity)
        .unwrap();
    let Evidence::RetainedCapacity(e) = &retained.evidence else {
        panic!()
    };
    // A rebuilt 1000-entry map needs B = 8: 256 + 16 buckets × 144 B = 39 168 B, five
    // pages, filled with 284 buckets = 40 896 B.
    assert_eq!(e.bytes_reclaimable, bytes - 40_896);
    assert_eq!((e.entries, e.peak_entries), (1000, 13 << 12));
    // Live entries near the peak: nothing to give back.
    agg.set_live(
        0xc000_0000,
        Some(LiveMap {
            entries: 60_000,
            capacity: 8 << 14,
            bytes,
        }),
    );
    assert_eq!(kinds(&run(&agg, SECOND, None)), [FindingKind::UnsizedMap]);
}

#[test]
fn unreleased_memory_comes_from_the_runtimes_accounting_not_rss() {
    use crate::aggregate::{
        heap::{NO_LIMIT, RuntimeHeap},
        memory::{HeapSample, Resident},
    };
    const MIB: u64 = 1 << 20;
    let mut agg = Aggregator::new(RULES);
    // RSS 30 times the live heap, as the old rule saw it: no finding without the runtime's view.
    agg.memory_mut().sample_heap_marked(10 * MIB);
    agg.memory_mut().sample_rss(300 * MIB, 0);
    assert!(run(&agg, SECOND, None).is_empty());
    // The runtime holds 256 MiB of free heap against a 4 MiB goal, for two seconds.
    let heap = RuntimeHeap {
        gc_percent: 100,
        memory_limit: NO_LIMIT,
        gc_percent_heap_goal: 4 * MIB,
        triggered: u64::MAX,
        heap_marked: MIB,
        heap_in_use: 2 * MIB,
        heap_free: 256 * MIB,
        mapped_ready: 262 * MIB,
        ..RuntimeHeap::default()
    };
    let resident = Resident {
        rss: 300 * MIB,
        anonymous: 264 * MIB,
        ..Resident::default()
    };
    for ts_ns in [0, 2 * SECOND] {
        agg.memory_mut().sample_heap(HeapSample {
            ts_ns,
            heap,
            goal: heap.goal(22),
            resident: Some(resident),
        });
    }
    let found = run(&agg, SECOND, None);
    assert_eq!(kinds(&found), [FindingKind::UnreleasedMemory]);
    assert_eq!(found[0].line, 0);
    assert!(found[0].suggestion.contains("GOMEMLIMIT="));
}

#[test]
fn same_size_growth_never_makes_a_hint_and_is_reported_for_what_it_is() {
    let mut agg = Aggregator::new(RULES);
    // One map grown to B = 10 (10 growths), then rebuilt in place 20 times by delete/insert
    // churn: its count stays far below the load factor, so each growth is a same-size one.
    fill(&mut agg, 0xc000_0000, 10, 0);
    for k in 0..20 {
        agg.record_bytes(&grow(0xc000_0000, 1000, 10, 1000 + k));
    }
    let found = run(&agg, SECOND, None);
    // A hint would have saved at most the 10 doublings of one map: not a finding; the 20
    // rebuilds are one, with their bytes: 20 arrays of 1137 buckets × 144 B.
    assert_eq!(kinds(&found), [FindingKind::SameSizeGrowth]);
    let Evidence::SameSizeGrowth(e) = &found[0].evidence else {
        panic!()
    };
    assert_eq!((e.grow_events, e.bytes, e.maps), (20, 20 * 163_728, 1));
    assert_eq!(found[0].saving.bytes, 20 * 163_728);
    assert!(
        found[0].suggestion.contains("Go 1.24"),
        "{}",
        found[0].suggestion
    );
}

#[test]
fn a_finding_names_the_programs_own_line_with_the_library_below_it() {
    let mut agg = Aggregator::new(RULES);
    for k in 0..10 {
        fill(&mut agg, 0xc000_0000 + k * 0x100, 10, k * 100);
    }
    // The maps grow inside the standard library, called from the program's line 42.
    let through_library = Resolutions::build(&agg, |_| ResolvedStack {
        site: Some(SourceSite {
            function: "encoding/json.(*decodeState).object".into(),
            file: "/go/src/encoding/json/decode.go".into(),
            line: 700,
        }),
        own: Some(main_line(42)),
        via: vec![
            "encoding/json.(*decodeState).object".into(),
            "encoding/json.Unmarshal".into(),
        ],
        frames: Vec::new(),
    });
    let found = findings(&inputs(&agg, &through_library, SECOND, None));
    assert_eq!(kinds(&found.findings), [FindingKind::UnsizedMap]);
    let f = &found.findings[0];
    assert_eq!((f.function.as_str(), f.line), ("main.f", 42));
    assert_eq!(f.via.len(), 2);
    assert!(
        f.suggestion.contains(
            "it grows inside encoding/json.(*decodeState).object, through encoding/json.Unmarshal"
        ),
        "{}",
        f.suggestion
    );
    // With no line of the program's own anywhere below, there is nothing to change.
    let only_library = Resolutions::build(&agg, |_| ResolvedStack {
        site: Some(SourceSite {
            function: "net/http.(*Transport).roundTrip".into(),
            file: "/go/src/net/http/transport.go".into(),
            line: 600,
        }),
        own: None,
        via: Vec::new(),
        frames: Vec::new(),
    });
    let found = findings(&inputs(&agg, &only_library, SECOND, None));
    assert!(found.findings.is_empty());
    assert_eq!(found.outside, 1);
}

#[test]
fn findings_too_small_for_the_process_are_left_out_and_the_rest_ranked() {
    let mut agg = Aggregator::new(RULES);
    for k in 0..10 {
        fill(&mut agg, 0xc000_0000 + k * 0x100, 10, k * 100);
    }
    for k in 0..20 {
        agg.record_bytes(&grow(0xd000_0000, 1000, 10, 5000 + k));
    }
    let res = resolutions(&agg);
    let mut i = inputs(&agg, &res, SECOND, None);
    let found = findings(&i);
    assert_eq!(found.findings.len(), 2);
    assert_eq!(
        found.findings.iter().map(|f| f.rank).collect::<Vec<_>>(),
        [1, 2]
    );
    assert!(found.findings[0].saving.bytes >= found.findings[1].saving.bytes);
    // Against a process that allocated 10 GiB, under half a percent each: not worth a change.
    i.allocated_bytes = Some(10 << 30);
    let found = findings(&i);
    assert!(found.findings.is_empty());
    assert_eq!(found.minor, 2);
}

/// A stop-the-world event of Go 1.22+: the stop carries the reason (2 sweep termination, 1
/// mark termination), the start the reason and the stop time, its return the runtime's `now`.
fn stw(op: u8, ts: u64, args: [u64; 3]) -> Vec<u8> {
    encode(&mapleak_common::StwEvent {
        header: header(EventKind::Stw, ts),
        args,
        // Unknown: a mark termination after which numgc has not moved was restarted.
        numgc: u32::MAX,
        gcphase: u32::MAX,
        op,
        ..Default::default()
    })
}

/// The world stopped at `at` for `pause` ns for `reason`: stop, start, and the start's return.
fn stop_the_world(agg: &mut Aggregator, reason: u64, at: u64, pause: u64) {
    use mapleak_common::{STW_RETURN, STW_START, STW_STOP};
    agg.record_bytes(&stw(STW_STOP, at, [reason, 0, 0]));
    agg.record_bytes(&stw(STW_START, at + pause / 2, [0, reason, at]));
    agg.record_bytes(&stw(STW_RETURN, at + pause, [at + pause, 0, 0]));
}

/// A cycle starts: sweep termination at `at`, marking from `at + pause`.
fn sweep_termination(agg: &mut Aggregator, at: u64, pause: u64) {
    stop_the_world(agg, 2, at, pause);
}

/// Marking ends at `at`, where mark termination stops the world for `pause`.
fn mark_termination(agg: &mut Aggregator, at: u64, pause: u64) {
    stop_the_world(agg, 1, at, pause);
}

/// Bytes of a `map[int]int` filled by [`fill`] to B = 12 on Go 1.22: arrays of 2, 4, 8, 18, 37,
/// 71, 142, 284, 568, 1137, 2218 and 4380 buckets (2^B, plus 2^(B-4) overflow buckets from
/// B = 4, rounded up to the malloc size class) of 144 B.
const FILL_12_BYTES: u64 = 144 * 8869;

/// The growth-in-GC finding of `found`, if any.
fn growth_in_gc(found: &[Finding]) -> Option<(&Finding, &GrowthInGc)> {
    found.iter().find_map(|f| match &f.evidence {
        Evidence::GrowthInGc(e) => Some((f, e)),
        _ => None,
    })
}

/// A 1 s trace whose one GC cycle marks from 1 ms to `mark_end`, while `grow` grows maps.
fn one_cycle(mark_end: u64, grow: impl FnOnce(&mut Aggregator)) -> Aggregator {
    let mut agg = Aggregator::new(RULES);
    sweep_termination(&mut agg, 900_000, 100_000);
    grow(&mut agg);
    mark_termination(&mut agg, mark_end, 30_000);
    agg
}

/// [`one_cycle`] marking 60 % of the time: `during` maps filled to B = 12 while it marks,
/// `after` maps the same once it is done.
fn marked(during: u64, after: u64) -> Aggregator {
    let mut agg = one_cycle(601_000_000, |agg| {
        for k in 0..during {
            fill(agg, 0xc000_0000 + k * 0x100, 12, 2_000_000 + k);
        }
    });
    for k in 0..after {
        fill(&mut agg, 0xd000_0000 + k * 0x100, 12, 700_000_000 + k);
    }
    agg
}

#[test]
fn growth_during_mark_is_a_finding_only_beyond_the_share_of_time_the_gc_marks() {
    // Maps grown while marking, in proportion to the time marking (60 % of them): chance.
    let mut agg = Aggregator::new(RULES);
    for k in 0..4 {
        fill(&mut agg, 0xe000_0000 + k * 0x100, 12, 0);
    }
    sweep_termination(&mut agg, 900_000, 100_000);
    for k in 0..6 {
        fill(&mut agg, 0xc000_0000 + k * 0x100, 12, 2_000_000 + k);
    }
    mark_termination(&mut agg, 601_000_000, 30_000);
    let found = run(&agg, SECOND, None);
    assert!(
        !found.is_empty(),
        "the maps are an unsized-map finding still"
    );
    assert!(growth_in_gc(&found).is_none(), "{:?}", kinds(&found));
    // All of them while marking: well beyond chance.
    let found = run(&marked(10, 0), SECOND, None);
    let (f, e) = growth_in_gc(&found).expect("growth in GC");
    assert!(
        (e.mark_time_share - 0.6).abs() < 1e-12,
        "{}",
        e.mark_time_share
    );
    assert_eq!(e.mark_share, 1.0);
    assert_eq!((f.function.as_str(), f.line), ("main.f", 11));
    assert!(!f.estimated);
}

#[test]
fn growth_in_gc_evidence_is_the_traces_own_figures() {
    // Ten maps grown while the first cycle marks; a second cycle, from 1.5 s to 1.6 s of a 2 s
    // trace, marks with nothing growing.
    let mut agg = marked(10, 0);
    sweep_termination(&mut agg, 1_500_000_000, 200_000);
    mark_termination(&mut agg, 1_600_200_000, 50_000);
    let res = resolutions(&agg);
    let mut i = inputs(&agg, &res, 2 * SECOND, None);
    i.allocated_bytes = Some(100 * FILL_12_BYTES);
    let found = findings(&i).findings;
    let (f, e) = growth_in_gc(&found).expect("growth in GC");
    assert_eq!((e.grow_events, e.bytes), (120, 10 * FILL_12_BYTES));
    assert_eq!(
        (e.mark_grow_events, e.mark_bytes),
        (120, 10 * FILL_12_BYTES)
    );
    assert_eq!(e.mark_share, 1.0);
    // 600 ms and 100 ms of marking in 2 s.
    assert!(
        (e.mark_time_share - 0.35).abs() < 1e-12,
        "{}",
        e.mark_time_share
    );
    // The maps grew before the second cycle began, so it is the one with them among its top
    // growers: its pauses 200 + 50 µs; the first cycle's were 100 + 30 µs.
    assert_eq!(e.cycles_with_growth, 1);
    assert_eq!(
        (e.mean_pause_ns_with_growth, e.mean_pause_ns_without),
        (250_000, 130_000)
    );
    // The longest pause, 200 µs, to the histogram's three significant figures.
    assert!(
        (200_000..=200_200).contains(&e.pause_max_ns),
        "{}",
        e.pause_max_ns
    );
    assert!(e.pause_p99_ns <= e.pause_max_ns && e.pause_p99_ns >= 200_000);
    // Pre-sizing would not allocate what grew during mark: that is the saving, a tenth of
    // what the process allocated.
    assert_eq!(f.saving.bytes, 10 * FILL_12_BYTES);
    assert_eq!(f.saving.of, SavingOf::Allocation);
    assert_eq!(f.saving.share, Some(0.1));
}

#[test]
fn growth_in_gc_needs_a_share_a_quarter_above_the_time_share() {
    // 43 of 50 maps grown while the GC marks 60 % of the time: 86 %, over the 85 % needed.
    let found = run(&marked(43, 7), SECOND, None);
    let (f, e) = growth_in_gc(&found).expect("growth in GC");
    assert_eq!((e.grow_events, e.mark_grow_events), (600, 43 * 12));
    assert_eq!(
        (e.bytes, e.mark_bytes),
        (50 * FILL_12_BYTES, 43 * FILL_12_BYTES)
    );
    assert!((e.mark_share - 0.86).abs() < 1e-12, "{}", e.mark_share);
    assert_eq!(f.saving.bytes, 43 * FILL_12_BYTES);
    // 42 of 50: 84 %. Fifty maps are many draws (their standard deviation is 3 %), so only the
    // margin rules it out.
    let found = run(&marked(42, 8), SECOND, None);
    assert!(
        !found.is_empty(),
        "the maps are an unsized-map finding still"
    );
    assert!(growth_in_gc(&found).is_none(), "{:?}", kinds(&found));
}

#[test]
fn growth_in_gc_needs_more_than_a_few_large_draws() {
    // One map grown entirely during mark, 14 times: its share is 100 %, but its bytes are a
    // few large arrays (the last two are three quarters of them), about three draws of
    // chance, and three draws fall all in mark a fifth of the time.
    let agg = one_cycle(601_000_000, |agg| fill(agg, 0xc000_0000, 14, 2_000_000));
    let found = run(&agg, SECOND, None);
    assert!(!found.is_empty(), "the map is an unsized-map finding still");
    assert!(growth_in_gc(&found).is_none(), "{:?}", kinds(&found));
    let found = run(&marked(10, 0), SECOND, None);
    assert!(growth_in_gc(&found).is_some(), "{:?}", kinds(&found));
}

#[test]
fn growth_in_gc_needs_eight_growths_and_a_mebibyte_in_mark() {
    // The GC marks 10 % of the time, so that a few draws all in mark are far beyond chance.
    let mark_end = 101_000_000;
    // `maps` maps each grown once while marking, from B = 10 to B = 11: 2^11 + 2^7 buckets of
    // 144 B, rounded up to whole pages (319 488 B), which hold 2218 buckets: 319 392 B each.
    let once = |maps: u64| {
        one_cycle(mark_end, |agg| {
            for k in 0..maps {
                agg.record_bytes(&grow(0xc000_0000 + k * 0x100, 6656, 10, 2_000_000 + k));
            }
        })
    };
    let found = run(&once(7), SECOND, None);
    assert!(growth_in_gc(&found).is_none(), "{:?}", kinds(&found));
    let found = run(&once(8), SECOND, None);
    let (_, e) = growth_in_gc(&found).expect("growth in GC");
    assert_eq!((e.mark_grow_events, e.mark_bytes), (8, 8 * 319_392));
    assert!(
        (e.mark_time_share - 0.1).abs() < 1e-12,
        "{}",
        e.mark_time_share
    );
    // Ten maps filled to B = 8 while marking: 80 growths of 566 buckets in all per map,
    // 815 040 B; to B = 9, 1134 buckets per map, 1 632 960 B.
    let filled = |to_b: u8| {
        one_cycle(mark_end, |agg| {
            for k in 0..10 {
                fill(agg, 0xc000_0000 + k * 0x100, to_b, 2_000_000 + k);
            }
        })
    };
    let found = run(&filled(8), SECOND, None);
    assert!(growth_in_gc(&found).is_none(), "{:?}", kinds(&found));
    let found = run(&filled(9), SECOND, None);
    let (_, e) = growth_in_gc(&found).expect("growth in GC");
    assert_eq!((e.mark_grow_events, e.mark_bytes), (90, 1_632_960));
}

#[test]
fn growth_in_gc_is_judged_against_the_time_the_gc_probes_saw() {
    // The GC probes attached 90 % of the trace saw 600 ms of marking: two thirds of what they
    // watched, and 86 % of the growth in mark is no longer a quarter above that.
    let agg = marked(43, 7);
    let res = resolutions(&agg);
    let mut i = inputs(&agg, &res, SECOND, None);
    i.gc_share = 0.9;
    assert!(growth_in_gc(&findings(&i).findings).is_none());
    // All of it in mark, with the growth probes sampled: a finding, and an estimate.
    let agg = marked(10, 0);
    let res = resolutions(&agg);
    let mut i = inputs(&agg, &res, SECOND, None);
    i.gc_share = 0.9;
    i.growth_share = 0.5;
    let found = findings(&i).findings;
    let (f, e) = growth_in_gc(&found).expect("growth in GC");
    assert!(
        (e.mark_time_share - 2.0 / 3.0).abs() < 1e-12,
        "{}",
        e.mark_time_share
    );
    assert!(f.estimated);
}

fn assists(agg: &mut Aggregator, stack: i64, calls: u64, each_ns: u64) {
    for _ in 0..calls {
        agg.record(&crate::decode::Event::Assist(mapleak_common::AssistEvent {
            duration_ns: each_ns,
            work_ns: each_ns / 2,
            site: StackRef { stack_id: stack },
            ..Default::default()
        }));
    }
}

fn run_with_assists(agg: &Aggregator, duration_ns: u64) -> Vec<Finding> {
    let res = resolutions(agg);
    let i = Inputs {
        assist_share: Some(1.0),
        ..inputs(agg, &res, duration_ns, None)
    };
    findings(&i).findings
}

#[test]
fn goroutines_losing_time_to_assists_are_a_finding_ranked_before_bytes() {
    let mut agg = Aggregator::new(RULES);
    // 40 assists of 1 ms at stack 2 (line 12) over a 0.5 s trace: 8 % of it.
    assists(&mut agg, 2, 40, 1_000_000);
    // Unsized maps at stack 1 (line 11): a byte finding.
    for m in 0..4 {
        fill(&mut agg, 0xc000_0000 + m * 0x1000, 12, m * 100);
    }
    let found = run_with_assists(&agg, SECOND / 2);
    assert_eq!(found[0].kind, FindingKind::GcAssist, "{found:?}");
    assert_eq!((found[0].line, found[0].rank), (12, 1));
    assert_eq!(found[0].saving.of, SavingOf::Latency);
    assert_eq!(found[0].saving.ns, Some(40_000_000));
    let Evidence::GcAssist(e) = &found[0].evidence else {
        panic!("{:?}", found[0].evidence);
    };
    assert_eq!(
        (
            e.times.count,
            e.times.total_ns,
            e.times.work_ns,
            e.times.max_ns
        ),
        (40, 40_000_000, 20_000_000, 1_000_000)
    );
    assert!((e.share_of_trace - 0.08).abs() < 1e-9);
    assert!(
        found[0].suggestion.contains("mark assists"),
        "{}",
        found[0].suggestion
    );
    assert!(found.iter().any(|f| f.kind == FindingKind::UnsizedMap));
    // Without the assist probes there is no such finding.
    assert!(!kinds(&run(&agg, SECOND / 2, None)).contains(&FindingKind::GcAssist));
}

#[test]
fn assists_too_few_or_too_short_for_the_trace_are_no_finding() {
    // Below 5 % of a 1 s trace (40 ms); too few calls; too little time.
    for (calls, each, duration) in [
        (40, 1_000_000, SECOND),
        (7, 5_000_000, SECOND),
        (100, 90_000, SECOND),
    ] {
        let mut agg = Aggregator::new(RULES);
        assists(&mut agg, 2, calls, each);
        let found = run_with_assists(&agg, duration);
        assert!(
            found.is_empty(),
            "{calls} × {each} ns in {duration} ns: {found:?}"
        );
    }
}
