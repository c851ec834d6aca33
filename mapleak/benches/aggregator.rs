//! Aggregator throughput on synthetic classic-map growth events, on one thread:
//! `cargo bench -p mapleak --bench aggregator`. The goal is ≥ 2 million events/s, so that a
//! burst of growth drains from the ring buffer much faster than the kernel can fill it.
//!
//! Two traffic shapes over the same 100 000 map addresses:
//! - bursty (the realistic one): a map grows through all its sizes while it is being filled, so
//!   at any moment only a few dozen maps are growing; then its address is reused by a new map;
//! - scattered (the worst case): every event hits a random one of the 100 000 maps, so nearly
//!   every lookup misses the CPU caches.
//!
//! Plain `Instant` timing: one long pass over pre-encoded records measures the steady state
//! without a benchmark framework. `cargo xtask bench` parses the `million events/s` lines.

use std::{hint::black_box, time::Instant};

use mapleak::{
    aggregate::{Aggregator, GoRules},
    decode,
};
use mapleak_common::{
    ClassicGrowEvent, EventHeader, EventKind, Frames, MAX_FRAMES, StackRef, WithFrames,
};

const EVENTS: usize = 10_000_000;
/// Distinct map addresses: the default tracking limit, so the per-map table fills but never evicts.
const MAPS: u64 = 100_000;
/// Maps growing at the same time in the bursty shape (goroutines filling maps concurrently).
const ACTIVE: usize = 64;
/// Bytes of one ring-buffer record.
const RECORD: usize = size_of::<WithFrames<ClassicGrowEvent>>();
/// Bytes of one `map[int]int` bucket (8 tophash + 8 keys + 8 values + overflow pointer).
const BUCKET_SIZE: u64 = 144;

/// xorshift64*: deterministic and dependency-free; quality hardly matters here.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// One map being filled: it doubles from B = 0 up to a final B of 3..=14.
struct MapLife {
    /// Index into the address pool.
    slot: u64,
    b: u8,
    final_b: u8,
    /// `hash0`, drawn by each `make`.
    seed: u32,
}

impl MapLife {
    fn new(slot: u64, rng: &mut Rng) -> Self {
        Self {
            slot,
            b: 0,
            final_b: 3 + rng.below(12) as u8,
            seed: rng.next() as u32,
        }
    }

    /// The next `hashGrow` of this map, with the count that triggers a doubling, and whether
    /// the map is now full (its address is then free for the next map).
    fn next_event(&mut self, rng: &mut Rng, ts_ns: u64) -> (WithFrames<ClassicGrowEvent>, bool) {
        let b = self.b;
        let event = ClassicGrowEvent {
            header: EventHeader {
                kind: EventKind::ClassicGrow as u32,
                tid: 1000 + rng.below(8) as u32,
                ts_ns,
            },
            // Go's heap starts at 0xc000000000; an hmap is 48 bytes.
            map: 0xc0_0000_0000 + self.slot * 0x30,
            // A handful of map types, fixed per address (a type change would mean a new map).
            map_type: 0x4a_0000 + 0x40 * (self.slot % 4),
            count: if b == 0 { 8 } else { 13 << (b - 1) },
            bucket_size: BUCKET_SIZE,
            bucket_ptr_bytes: 0,
            seed: self.seed.into(),
            b,
            flags: 0,
            noverflow: 0,
            key_size: 8,
            value_size: 8,
            _pad: [0; 2],
            site: StackRef::default(),
        };
        // A few dozen call sites, as a service has, each a 12-frame stack.
        let mut frames = Frames {
            depth: 12,
            pcs: [0; MAX_FRAMES],
        };
        for (i, pc) in frames.pcs[..12].iter_mut().enumerate() {
            *pc = 0x45_0000 + 0x1000 * i as u64 + 0x10 * (self.slot % 40);
        }
        self.b += 1;
        (WithFrames { event, frames }, self.b >= self.final_b)
    }
}

#[derive(Clone, Copy)]
enum Shape {
    Bursty,
    Scattered,
}

/// All records, back to back in one buffer (the ring buffer's shape).
fn synthetic_stream(shape: Shape, rng: &mut Rng) -> Vec<u8> {
    let in_flight = match shape {
        Shape::Bursty => ACTIVE as u64,
        Shape::Scattered => MAPS,
    };
    let mut lives: Vec<MapLife> = (0..in_flight).map(|slot| MapLife::new(slot, rng)).collect();
    let mut next_slot = in_flight % MAPS;
    let mut stream = Vec::with_capacity(EVENTS * RECORD);
    for i in 0..EVENTS {
        let life = &mut lives[rng.below(in_flight) as usize];
        let (event, full) = life.next_event(rng, 1_000_000 + i as u64 * 250);
        stream.extend_from_slice(&decode::encode(&event));
        if full {
            // The map is dropped; the next one takes the next address of the pool (bursty) or
            // this one's (scattered). Either way the aggregator sees an address being reused.
            let slot = match shape {
                Shape::Bursty => {
                    let slot = next_slot;
                    next_slot = (next_slot + 1) % MAPS;
                    slot
                }
                Shape::Scattered => life.slot,
            };
            *life = MapLife::new(slot, rng);
        }
    }
    stream
}

fn measure(name: &str, shape: Shape) {
    let stream = synthetic_stream(shape, &mut Rng(0x9e37_79b9_7f4a_7c15));
    let mut agg = Aggregator::new(GoRules {
        load_factor_num: 13,
        malloc_headers: false,
    });

    let started = Instant::now();
    let (records, _) = stream.as_chunks::<RECORD>();
    for record in records {
        agg.record_bytes(black_box(record.as_slice()));
    }
    let secs = started.elapsed().as_secs_f64();

    let totals = agg.totals();
    // A fast wrong answer is no result: every synthetic event is a valid growth.
    assert_eq!(totals.received, EVENTS as u64);
    assert_eq!(totals.invalid, 0, "synthetic events were rejected");
    assert_eq!(totals.grow_events, EVENTS as u64);
    println!(
        "aggregator ({name}): {} maps seen at {MAPS} addresses, {} evicted",
        totals.maps_seen, totals.maps_evicted
    );
    println!(
        "aggregator ({name}): {EVENTS} events in {secs:.3} s = {:.2} million events/s",
        EVENTS as f64 / secs / 1e6
    );
}

fn main() {
    measure("bursty", Shape::Bursty);
    measure("scattered", Shape::Scattered);
}
