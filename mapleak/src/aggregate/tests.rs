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
    agg.set_address_space(64 << 30, 10);
    agg.record_bytes(&encode(&grow(0xc000_1000, 13 << 39, 40, 1)));
    assert_eq!((agg.totals().grow_events, agg.totals().invalid), (0, 1));
    agg.record_bytes(&encode(&grow(0xc000_2000, 8, 0, 2)));
    assert_eq!((agg.totals().grow_events, agg.totals().invalid), (1, 1));
}

#[test]
fn a_growth_newer_than_the_bound_asks_for_a_fresh_reading() {
    // The process had 1 MiB when last read (at 10 ns), and 1 GiB when asked again (at 50 ns).
    let mut agg = Aggregator::new(RULES_FOR_BOUND);
    agg.set_address_space(1 << 20, 10);
    let readings = std::sync::Arc::new(std::sync::atomic::AtomicU32::new(0));
    let counted = readings.clone();
    agg.set_address_space_source(Box::new(move || {
        counted.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        Some((1 << 30, 50))
    }));
    // B = 13 is 8192 buckets of 144 bytes (over 1 MiB), grown at 20 ns: after the last reading.
    agg.record_bytes(&encode(&grow(0xc000_1000, 8192 * 13 / 2, 13, 20)));
    assert_eq!((agg.totals().grow_events, agg.totals().invalid), (1, 0));
    // Over 1 GiB, grown at 40 ns: the reading at 50 ns already says no, without another.
    agg.record_bytes(&encode(&grow(0xc000_2000, 13 << 27, 28, 40)));
    assert_eq!((agg.totals().grow_events, agg.totals().invalid), (1, 1));
    assert_eq!(readings.load(std::sync::atomic::Ordering::Relaxed), 1);
}

const RULES_FOR_BOUND: GoRules = GoRules {
    load_factor_num: 13,
    malloc_headers: true,
};

/// `grow` with the map's hash seed, and the count that makes B a doubling.
fn seeded(map: u64, b: u8, seed: u64, ts: u64) -> Event {
    let count = if b == 0 { 8 } else { 13 << (b - 1) };
    Event::ClassicGrow(ClassicGrowEvent {
        seed,
        ..grow(map, count, b, ts)
    })
}

/// `swiss` with a seed and the directory the map has when it grows.
fn swiss_seeded(map: u64, op: SwissOp, cap: u16, dir_len: u64, seed: u64) -> Event {
    let Event::SwissGrow(e) = swiss(map, op, cap, u64::from(cap) * 7 / 8) else {
        unreachable!()
    };
    Event::SwissGrow(SwissGrowEvent { dir_len, seed, ..e })
}

/// Instances seen, and how many the site keeps as finished (their address reused).
fn lives(agg: &Aggregator) -> (u64, u64, usize) {
    let site = agg.sites().next().unwrap().1;
    (agg.totals().maps_seen, site.recycled, site.finished.len())
}

#[test]
fn a_new_seed_is_a_new_map_where_no_transition_could_tell() {
    // A sized make at a freed map's address: B 3 → 4, then a map made with B = 5 (a hint
    // above the freed one's size) grows 5 → 6. B went up, as the freed map's might have in
    // growths not seen; only the seed says it is another map.
    let mut agg = Aggregator::new(RULES);
    agg.record(&seeded(0xc0, 3, 0x1111, 1));
    agg.record(&seeded(0xc0, 5, 0x2222, 10));
    assert_eq!(lives(&agg), (2, 1, 1));
    let m = agg.map(0xc0).unwrap();
    assert_eq!((m.instance, m.grow_events, m.b), (1, 1, Some(6)));
    let site = agg.sites().next().unwrap().1;
    assert_eq!(site.finished[0].grow_events, 1);
    assert_eq!(site.finished[0].entries, 13 << 2);
}

#[test]
fn the_same_seed_is_the_same_map_even_across_unseen_growths() {
    // Growth probes detached for a while (the governor): B jumps from 2 to 5, same seed.
    let mut agg = Aggregator::new(RULES);
    agg.record(&seeded(0xc0, 1, 7, 1));
    agg.record(&seeded(0xc0, 5, 7, 2));
    assert_eq!(lives(&agg), (1, 0, 0));
    assert_eq!(agg.map(0xc0).unwrap().grow_events, 2);
}

#[test]
fn an_impossible_transition_is_a_new_map_whatever_the_seed() {
    let mut agg = Aggregator::new(RULES);
    agg.record(&seeded(0xc0, 4, 7, 1));
    agg.record(&seeded(0xc0, 2, 7, 2));
    assert_eq!(lives(&agg), (2, 1, 1));
}

#[test]
fn a_cleared_classic_map_that_grows_again_stays_one_map() {
    // Filled to B = 4, cleared (new seed, B kept), refilled past it: 4 → 5 with a new seed; then
    // cleared again and refilled, growing 5 → 6. One map, four growths.
    let mut agg = Aggregator::new(RULES);
    for b in 0..3 {
        agg.record(&seeded(0xc0, b, 0xa, u64::from(b)));
    }
    agg.record(&seeded(0xc0, 3, 0xa, 3));
    agg.record(&seeded(0xc0, 4, 0xb, 10));
    agg.record(&seeded(0xc0, 5, 0xc, 20));
    assert_eq!(lives(&agg), (1, 0, 0));
    let m = agg.map(0xc0).unwrap();
    assert_eq!(
        (m.instance, m.grow_events, m.b, m.seed),
        (0, 6, Some(6), 0xc)
    );
    // Same-size growth of a map drained by deletes (re-seeded, B kept) is the same map too.
    agg.record(&Event::ClassicGrow(ClassicGrowEvent {
        seed: 0xd,
        ..grow(0xc0, 40, 6, 30)
    }));
    assert_eq!(lives(&agg), (1, 0, 0));
    assert_eq!(agg.map(0xc0).unwrap().same_size_grows, 1);
}

#[test]
fn a_newer_birth_is_a_new_map_even_where_the_growth_resumes() {
    // What the seed cannot tell: a map made (creation probe) with exactly the freed map's last
    // B. The birth after its last growth decides.
    let mut agg = Aggregator::new(RULES);
    agg.record(&seeded(0xc0, 3, 0xa, 10));
    agg.record(&Event::Create(mapleak_common::CreateEvent {
        header: EventHeader {
            kind: EventKind::Create as u32,
            ts_ns: 20,
            ..Default::default()
        },
        map: 0xc0,
        ..Default::default()
    }));
    agg.record(&seeded(0xc0, 4, 0xb, 30));
    assert_eq!(agg.totals().maps_seen, 2);
}

#[test]
fn swiss_maps_made_with_a_hint_at_one_address_are_told_apart() {
    // make(map[int]int, 100) in a loop: one 128-slot table, grown once to 256, each time.
    let mut agg = Aggregator::new(RULES);
    for life in 0..5 {
        agg.record(&swiss_seeded(0xd0, SwissOp::Rehash, 128, 1, 100 + life));
    }
    assert_eq!(lives(&agg), (5, 4, 4));
    // The table's capacity going down says so even when the seed does not (a seed read as 0).
    let mut agg = Aggregator::new(RULES);
    for _ in 0..5 {
        agg.record(&swiss_seeded(0xd0, SwissOp::Rehash, 128, 1, 0));
    }
    assert_eq!(lives(&agg), (5, 4, 4));
    // Rising hints: each table starts bigger than the last ended; only the seed tells.
    let mut agg = Aggregator::new(RULES);
    for (life, cap) in [32u16, 128, 512].into_iter().enumerate() {
        agg.record(&swiss_seeded(
            0xd0,
            SwissOp::Rehash,
            cap,
            1,
            life as u64 + 1,
        ));
    }
    assert_eq!(lives(&agg), (3, 2, 2));
    // … and a bigger table with the same seed is one map whose doublings were not seen.
    let mut agg = Aggregator::new(RULES);
    for cap in [32u16, 128, 512] {
        agg.record(&swiss_seeded(0xd0, SwissOp::Rehash, cap, 1, 9));
    }
    assert_eq!(lives(&agg), (1, 0, 0));
}

#[test]
fn a_cleared_swiss_map_that_grows_again_stays_one_map() {
    let mut agg = Aggregator::new(RULES);
    // Small, cleared (the group is kept), refilled past 8: growToTable with a new seed.
    agg.record(&swiss_seeded(0xd0, SwissOp::GrowToSmall, 0, 0, 1));
    agg.record(&swiss_seeded(0xd0, SwissOp::GrowToTable, 0, 0, 2));
    // One table of 16 slots: cleared and refilled, it doubles from 16, then from 32.
    agg.record(&swiss_seeded(0xd0, SwissOp::Rehash, 16, 1, 3));
    agg.record(&swiss_seeded(0xd0, SwissOp::Rehash, 32, 1, 4));
    // Grown to 1024 and split (directory 1 → 2), cleared, and split again from directory 2.
    for cap in [64u16, 128, 256, 512] {
        agg.record(&swiss_seeded(0xd0, SwissOp::Rehash, cap, 1, 4));
    }
    agg.record(&swiss_seeded(0xd0, SwissOp::Rehash, 1024, 1, 4));
    agg.record(&swiss_seeded(0xd0, SwissOp::Rehash, 1024, 2, 5));
    assert_eq!(lives(&agg), (1, 0, 0));
    let m = agg.map(0xd0).unwrap();
    assert_eq!((m.grow_events, m.tables, m.dir_len), (10, 3, 4));
    // A new seed with a directory of another size is another map.
    agg.record(&swiss_seeded(0xd0, SwissOp::Rehash, 1024, 16, 6));
    assert_eq!(lives(&agg), (2, 1, 1));
}

#[test]
fn a_swiss_map_with_a_directory_never_grows_its_first_table() {
    // A sized map first seen by a rehash (no tables counted), then a stack map at the same
    // address growing out of its group: the directory says the first map had one already.
    let mut agg = Aggregator::new(RULES);
    agg.record(&swiss_seeded(0xd0, SwissOp::Rehash, 128, 1, 0));
    agg.record(&swiss_seeded(0xd0, SwissOp::GrowToTable, 0, 0, 0));
    assert_eq!(lives(&agg), (2, 1, 1));
}
