//! mapleak's own memory stays bounded whatever the target does: the aggregator is fed the
//! worst streams a target can cause — every map at a new address, every growth from a new stack,
//! a GC cycle after every few maps or none at all, growth storms in a few huge maps, a
//! fragmenting pattern of madvise calls — and the heap it holds is measured by counting every
//! allocation (this test binary's global allocator), not estimated.

use std::{
    alloc::{GlobalAlloc, Layout, System},
    sync::atomic::{AtomicUsize, Ordering},
};

use mapleak::{
    aggregate::{Aggregator, GoRules},
    decode,
};
use mapleak_common::{
    ClassicGrowEvent, EventHeader, EventKind, Frames, MAX_FRAMES, MEM_MADVISE, MEM_MMAP, MemEvent,
    STW_RETURN, STW_START, STW_STOP, StackRef, StwEvent, WithFrames,
};

struct Counting;

static LIVE: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);

// SAFETY: forwards to the system allocator; only counts.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: the caller's contract is passed on unchanged.
        let p = unsafe { System.alloc(layout) };
        if !p.is_null() {
            let now = LIVE.fetch_add(layout.size(), Ordering::Relaxed) + layout.size();
            PEAK.fetch_max(now, Ordering::Relaxed);
        }
        p
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        LIVE.fetch_sub(layout.size(), Ordering::Relaxed);
        // SAFETY: as above.
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static ALLOC: Counting = Counting;

/// What the README promises for the aggregator's state, with room for the ring buffer (twice
/// the default 4 MiB, mapped), the mapped executable and the runtime under 256 MiB in all.
const BOUND: usize = 192 << 20;

fn grow(map: u64, b: u8, same_size: bool, ts: u64, stack: u64) -> Vec<u8> {
    let event = ClassicGrowEvent {
        header: EventHeader {
            kind: EventKind::ClassicGrow as u32,
            tid: 1,
            ts_ns: ts,
        },
        map,
        map_type: 0x4a_0000,
        count: if same_size {
            1
        } else if b == 0 {
            8
        } else {
            13 << (b - 1)
        },
        bucket_size: 144,
        b,
        flags: 0,
        noverflow: if same_size { u16::MAX } else { 0 },
        key_size: 8,
        value_size: 8,
        site: StackRef::default(),
        ..Default::default()
    };
    // Every stack distinct: 16 frames that never repeat.
    let mut frames = Frames {
        depth: MAX_FRAMES as u64,
        pcs: [0; MAX_FRAMES],
    };
    for (i, pc) in frames.pcs.iter_mut().enumerate() {
        *pc = 0x40_0000 + stack * 0x100 + i as u64;
    }
    decode::encode(&WithFrames { event, frames })
}

fn stw(op: u8, reason: u64, ts: u64, numgc: u32) -> Vec<u8> {
    decode::encode(&StwEvent {
        header: EventHeader {
            kind: EventKind::Stw as u32,
            tid: 1,
            ts_ns: ts,
        },
        args: [reason, 0, ts.saturating_sub(1000)],
        numgc,
        gcphase: u32::MAX,
        op,
        ..Default::default()
    })
}

/// A whole GC cycle: sweep termination (reason 1 on 1.22+), then mark termination.
fn gc_cycle(agg: &mut Aggregator, ts: &mut u64, numgc: &mut u32) {
    for reason in [1, 1] {
        for op in [STW_STOP, STW_START, STW_RETURN] {
            *ts += 10;
            agg.record_bytes(&stw(op, reason, *ts, *numgc));
        }
    }
    *numgc += 1;
}

#[test]
fn the_aggregator_stays_bounded_under_the_worst_streams() {
    let mut agg = Aggregator::new(GoRules {
        load_factor_num: 13,
        malloc_headers: true,
    });
    let mut ts = 1_000_000u64;
    let mut numgc = 0u32;
    let mut stack = 0u64;
    // 400 000 maps at distinct addresses, each grown 12 times from a stack never seen before,
    // with a GC cycle every 64 maps: far past every table's bound.
    for m in 0..400_000u64 {
        for b in 0..12u8 {
            ts += 100;
            stack += 1;
            agg.record_bytes(&grow(0xc0_0000_0000 + m * 0x30, b, false, ts, stack));
        }
        if m % 64 == 0 {
            gc_cycle(&mut agg, &mut ts, &mut numgc);
        }
    }
    // The same maps' addresses reused by new maps: a finished record per map.
    for m in 0..400_000u64 {
        ts += 100;
        agg.record_bytes(&grow(0xc0_0000_0000 + m * 0x30, 0, false, ts, m % 1000));
    }
    // No GC at all, 300 000 more maps: the window between cycles must not hold them all.
    for m in 0..300_000u64 {
        ts += 100;
        agg.record_bytes(&grow(0xd0_0000_0000 + m * 0x30, 0, false, ts, 7));
    }
    // A few maps in a same-size growth storm: histories must not grow without end.
    for i in 0..600_000u64 {
        ts += 100;
        agg.record_bytes(&grow(0xe0_0000_0000 + (i % 64) * 0x30, 10, true, ts, 9));
    }
    // A fragmenting pattern: one big mapping, then every other page returned.
    let mem = |op: u8, addr: u64, len: u64, prot: u32, ts: u64| {
        decode::encode(&MemEvent {
            header: EventHeader {
                kind: EventKind::Mem as u32,
                tid: 1,
                ts_ns: ts,
            },
            addr,
            len,
            ret: 0,
            prot,
            op,
            ..Default::default()
        })
    };
    agg.record_bytes(&mem(MEM_MMAP, 0xc0_0000_0000, 1 << 36, 3, ts));
    for page in 0..1_000_000u64 {
        ts += 10;
        agg.record_bytes(&mem(
            MEM_MADVISE,
            0xc0_0000_0000 + page * 0x2000,
            0x1000,
            4,
            ts,
        ));
    }
    let totals = agg.totals();
    assert_eq!(totals.invalid, 0);
    assert_eq!(
        totals.grow_events,
        400_000 * 12 + 400_000 + 300_000 + 600_000
    );
    let peak = PEAK.load(Ordering::Relaxed);
    let live = LIVE.load(Ordering::Relaxed);
    eprintln!(
        "aggregator heap: peak {} MiB, now {} MiB",
        peak >> 20,
        live >> 20
    );
    assert!(peak < BOUND, "peak heap {peak} bytes exceeds {BOUND}");
}
