use mapleak_common::{
    CREATE_MAKEMAP_SMALL, ClassicGrowEvent, CreateEvent, EventHeader, EventKind, Site,
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
        site: Site { stack_id: 1 },
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

fn resolutions(agg: &Aggregator) -> Resolutions {
    Resolutions::build(agg, |s| ResolvedStack {
        site: Some(SourceSite {
            function: "main.f".into(),
            file: "/src/main.go".into(),
            line: 10 + s.stack_id as u32,
        }),
        frames: Vec::new(),
    })
}

fn run(agg: &Aggregator, duration_ns: u64, create_share: Option<f64>) -> Vec<Finding> {
    let res = resolutions(agg);
    findings(&Inputs {
        agg,
        res: &res,
        swiss: false,
        go_minor: 22,
        duration_ns,
        growth_share: 1.0,
        create_share,
    })
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
    // make(map, 3329) allocates the final B = 10 array once instead of the 10 growths:
    // 1024 + 64 buckets × 144 B = 156 672 B, rounded up to whole pages (163 840 B), which
    // makeBucketArray fills with buckets: 1137 × 144 = 163 728 B.
    let per_map = agg.map(0xc000_0000).unwrap().bytes;
    assert_eq!(e.bytes_saved, 10 * (per_map - 163_728));
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
    let site = Site { stack_id: 2 };
    for k in 0..2000u64 {
        agg.record_bytes(&encode(&CreateEvent {
            header: header(EventKind::Create, k * 1000),
            map: 0xc000_0000 + (k % 7) * 0x30,
            op: CREATE_MAKEMAP_SMALL,
            _pad: [0; 7],
            site,
        }));
    }
    // 2000 maps over 2 s, seen half the time: ~2000 maps/s, an estimate.
    let found = run(&agg, 2 * SECOND, Some(0.5));
    assert_eq!(kinds(&found), [FindingKind::MapChurn]);
    let Evidence::MapChurn(e) = &found[0].evidence else {
        panic!()
    };
    assert_eq!(e.maps, 2000);
    assert!((e.maps_per_sec - 2000.0).abs() < 1e-9);
    assert!(found[0].estimated);
    assert_eq!(found[0].line, 12);
    // The same maps over a minute are not churn.
    assert!(run(&agg, 60 * SECOND, Some(1.0)).is_empty());
}

#[test]
fn a_map_emptied_by_deletes_keeps_its_capacity() {
    let mut agg = Aggregator::new(RULES);
    fill(&mut agg, 0xc000_0000, 14, 0);
    let m = agg.map(0xc000_0000).unwrap();
    let (b, bytes) = (
        m.b.unwrap(),
        crate::aggregate::sizing::classic_array_bytes(&RULES, &m.id, 14).unwrap(),
    );
    assert_eq!(b, 14);
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
        kinds(&found),
        [FindingKind::UnsizedMap, FindingKind::RetainedCapacity]
    );
    let Evidence::RetainedCapacity(e) = &found[1].evidence else {
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
            goal: heap.heap_goal(22),
            resident: Some(resident),
        });
    }
    let found = run(&agg, SECOND, None);
    assert_eq!(kinds(&found), [FindingKind::UnreleasedMemory]);
    assert_eq!(found[0].line, 0);
    assert!(found[0].suggestion.contains("GOMEMLIMIT="));
}
