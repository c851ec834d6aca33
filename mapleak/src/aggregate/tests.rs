use mapleak_common::{ClassicGrowEvent, EventHeader, EventKind, SwissGrowEvent, SwissOp};

use super::*;
use crate::decode::encode;

const RULES: GoRules = GoRules {
    load_factor_num: 13,
    malloc_headers: true,
};

/// A `map[int]int` grow event (144-byte buckets) as the kernel sends it.
pub(crate) fn grow(map: u64, count: u64, b: u8, ts: u64) -> ClassicGrowEvent {
    ClassicGrowEvent {
        header: EventHeader {
            kind: EventKind::ClassicGrow as u32,
            ts_ns: ts,
            ..Default::default()
        },
        map,
        map_type: 0x4a0000,
        count,
        bucket_size: 144,
        b,
        key_size: 8,
        value_size: 8,
        ..Default::default()
    }
}

/// The grows of one `map[int]int` filled to 100 000 on Go 1.22 (go-runtime.md §1.5).
fn fill(agg: &mut Aggregator, map: u64, ts: u64) {
    let mut count = 8u64;
    agg.record_bytes(&encode(&grow(map, count, 0, ts)));
    count = 13;
    for b in 1..14u8 {
        agg.record_bytes(&encode(&grow(map, count, b, ts + u64::from(b))));
        count *= 2;
    }
}

#[test]
fn a_filled_map_is_one_instance_with_fourteen_grows() {
    let mut agg = Aggregator::new(RULES);
    fill(&mut agg, 0xc000, 100);
    let t = agg.totals();
    assert_eq!(
        (t.grow_events, t.maps_seen, t.received, t.invalid),
        (14, 1, 14, 0)
    );
    let m = agg.map(0xc000).unwrap();
    assert_eq!(
        (m.b, m.entries, m.capacity, m.grow_events),
        (Some(14), 53_248, 8 << 14, 14)
    );
    assert_eq!(m.bytes, t.grow_bytes);
    // Bucket arrays of B = 1 … 14 (buckets × 144 B, size-class rounded from B = 4):
    // 288 + 576 + 1152 + 2592 + 5328 + 10 224 + 20 448 + 40 896 + 81 792 + 163 728 + 319 392
    // + 630 720 + 1 253 376 + 2 506 752.
    assert_eq!(t.grow_bytes, 5_037_264);
}

#[test]
fn a_recycled_address_starts_a_new_instance() {
    let mut agg = Aggregator::new(RULES);
    fill(&mut agg, 0xc000, 100);
    agg.record(&Event::ClassicGrow(grow(0xc000, 8, 0, 1_000)));
    assert_eq!(agg.totals().maps_seen, 2);
    let m = agg.map(0xc000).unwrap();
    assert_eq!((m.instance, m.grow_events, m.b), (1, 1, Some(1)));
}

#[test]
fn intervals_reset_and_count_distinct_maps() {
    let mut agg = Aggregator::new(RULES);
    fill(&mut agg, 0xa, 1);
    fill(&mut agg, 0xb, 1);
    let i = agg.take_interval();
    assert_eq!((i.grow_events, i.maps_grown, i.received), (28, 2, 28));
    assert_eq!(agg.take_interval(), IntervalStats::default());
}

#[test]
fn top_maps_orders_by_bytes() {
    let mut agg = Aggregator::new(RULES);
    agg.record(&Event::ClassicGrow(grow(0xa, 8, 0, 1)));
    fill(&mut agg, 0xb, 1);
    let top: Vec<u64> = agg.top_maps(10).iter().map(|m| m.id.addr).collect();
    assert_eq!(top, vec![0xb, 0xa]);
    assert_eq!(agg.top_maps(1).len(), 1);
}

#[test]
fn garbage_is_counted_not_aggregated() {
    let mut agg = Aggregator::new(RULES);
    agg.record_bytes(&[1, 2, 3]);
    agg.record(&Event::ClassicGrow(grow(0xa, 8, 99, 1)));
    let t = agg.totals();
    assert_eq!(
        (t.received, t.invalid, t.grow_events, t.maps_seen),
        (2, 2, 0, 0)
    );
}

#[test]
fn tracked_maps_are_bounded_and_evictions_counted() {
    let mut agg = Aggregator::with_capacity_limit(RULES, 100);
    for i in 0..1_000u64 {
        agg.record(&Event::ClassicGrow(grow(0x1000 + i * 64, 8, 0, i)));
    }
    let t = agg.totals();
    assert_eq!((t.maps_seen, t.grow_events), (1_000, 1_000));
    assert!(agg.top_maps(usize::MAX).len() <= 100);
    assert_eq!(
        t.maps_evicted as usize + agg.top_maps(usize::MAX).len(),
        1_000
    );
    // The newest survive.
    assert!(agg.map(0x1000 + 999 * 64).is_some());
}

fn swiss(map: u64, op: SwissOp, cap: u16, used: u64) -> Event {
    Event::SwissGrow(SwissGrowEvent {
        header: EventHeader {
            kind: EventKind::SwissGrow as u32,
            ..Default::default()
        },
        map,
        map_type: 0x4b0000,
        group_size: 136,
        used,
        dir_len: if op == SwissOp::Rehash { 1 } else { 0 },
        table_capacity: cap,
        op: op as u8,
        ..Default::default()
    })
}

#[test]
fn a_swiss_map_tracks_capacity_tables_and_directory() {
    let mut agg = Aggregator::new(RULES);
    agg.record(&swiss(0xd0, SwissOp::GrowToSmall, 0, 0));
    agg.record(&swiss(0xd0, SwissOp::GrowToTable, 0, 8));
    let mut cap = 16;
    while cap < 1024 {
        agg.record(&swiss(0xd0, SwissOp::Rehash, cap, u64::from(cap) * 7 / 8));
        cap *= 2;
    }
    agg.record(&swiss(0xd0, SwissOp::Rehash, 1024, 896));
    let m = agg.map(0xd0).unwrap();
    assert_eq!(
        (m.grow_events, m.capacity, m.tables, m.dir_len),
        (9, 2048, 2, 2)
    );
    assert_eq!(m.bytes, (1 + 2 + 252 + 256) * 136);
    // A new small map at the same address is a new instance.
    agg.record(&swiss(0xd0, SwissOp::GrowToSmall, 0, 0));
    let m = agg.map(0xd0).unwrap();
    assert_eq!((m.instance, m.grow_events, m.capacity), (1, 1, 8));
    assert_eq!(agg.totals().maps_seen, 2);
}

#[test]
fn a_growth_larger_than_the_address_space_is_garbage() {
    let mut agg = Aggregator::new(RULES_FOR_BOUND);
    // B = 40 would be 2^40 buckets: read from a freed header, not a map any process holds.
    agg.set_address_space(64 << 30);
    agg.record_bytes(&encode(&grow(0xc000_1000, 13 << 39, 40, 1)));
    assert_eq!((agg.totals().grow_events, agg.totals().invalid), (0, 1));
    agg.record_bytes(&encode(&grow(0xc000_2000, 8, 0, 2)));
    assert_eq!((agg.totals().grow_events, agg.totals().invalid), (1, 1));
}

const RULES_FOR_BOUND: GoRules = GoRules {
    load_factor_num: 13,
    malloc_headers: true,
};
