//! The JSON summary of a fixed stream of events, byte for byte: a refactoring of the trace,
//! the aggregator or the report must not change what users' scripts read. A change that is
//! meant rewrites the file (`MAPLEAK_BLESS=1 cargo test -p mapleak golden`), and the diff says
//! what changed.

use mapleak_common::{Frames, MAX_FRAMES, STW_RETURN, STW_START, STW_STOP, WithFrames};

use super::{
    KernelCounters, StopReason, TraceMeta,
    build::{Gathered, build},
    sampling::SamplingSummary,
};
use crate::{
    aggregate::{Aggregator, GcTracker, GoRules, StwRules},
    decode::encode,
    inspect::{self, GoElf, GoVersion, testgo},
};

const GOLDEN: &str = "src/report/golden/summary-go1.21.json";

/// A `map[int]int` growth at `pcs` (innermost first).
fn grow(map: u64, count: u64, b: u8, ts: u64, pcs: &[u64]) -> Vec<u8> {
    let mut frames = Frames {
        depth: pcs.len() as u64,
        pcs: [0; MAX_FRAMES],
    };
    frames.pcs[..pcs.len()].copy_from_slice(pcs);
    encode(&WithFrames {
        event: crate::aggregate::tests::grow(map, count, b, ts),
        frames,
    })
}

fn stw(op: u8, ts: u64, args: [u64; 3], numgc: u32) -> Vec<u8> {
    encode(&crate::aggregate::gc::tests::stw(op, ts, args, numgc, 0))
}

/// One GC cycle as Go 1.21 stops for it: sweep termination (reason 2), mark, mark termination
/// (reason 1); the start's return carries the runtime's clock.
fn cycle(at: u64, numgc: u32) -> Vec<Vec<u8>> {
    vec![
        stw(STW_STOP, at, [2, 0, 0], numgc),
        stw(STW_START, at + 30_000, [0, 0, 0], numgc),
        stw(STW_RETURN, at + 50_000, [at + 50_000, 0, 0], numgc),
        stw(STW_STOP, at + 2_000_000, [1, 0, 0], numgc),
        stw(STW_START, at + 2_020_000, [0, 0, 0], numgc + 1),
        stw(
            STW_RETURN,
            at + 2_040_000,
            [at + 2_040_000, 0, 0],
            numgc + 1,
        ),
    ]
}

#[test]
fn the_summary_of_a_fixed_stream_is_what_it_was() {
    // A fixed binary: trimmed paths, so that its lines do not depend on where it was built.
    let Some(exe) = testgo::fixture("1.21.13", "-trimpath", &["-trimpath"], &[]) else {
        return;
    };
    let path = exe.display().to_string();
    let data = std::fs::read(&exe).expect("read fixture");
    let inspection = inspect::inspect_file(&path).expect("inspect fixture");
    let elf = GoElf::parse(&path, &data).expect("parse fixture");
    let at = |name: &str| elf.functions(&[name]).first().map(|(_, f)| f.address);
    let (main, grow_fn) = (at("main.main").unwrap(), at("runtime.hashGrow").unwrap());
    let version = GoVersion::parse("go1.21.13").unwrap();
    let rules = GoRules {
        load_factor_num: 12,
        malloc_headers: false,
    };
    let mut agg = Aggregator::new(rules).with_gc(GcTracker::new(StwRules::new(&version)));
    let mut records = Vec::new();
    let mut ts = 1_000_000_000;
    // One map filled to B = 10 in main.main, 40 filled to B = 8 at another of its lines.
    let (one, many) = ([grow_fn + 4, main + 0x40], [grow_fn + 4, main + 0x90]);
    records.push(grow(0xc000_100000, 8, 0, ts, &one));
    for b in 1..10u8 {
        ts += 1_000_000;
        records.push(grow(0xc000_100000, 6 << b, b, ts, &one));
    }
    records.extend(cycle(ts + 500_000, 7));
    for i in 0..40u64 {
        let map = 0xc000_200000 + i * 0x1000;
        ts += 1_000_000;
        records.push(grow(map, 8, 0, ts, &many));
        for b in 1..8u8 {
            records.push(grow(map, 6 << b, b, ts + u64::from(b), &many));
        }
    }
    records.extend(cycle(ts + 500_000, 8));
    for r in &records {
        agg.record_bytes(r);
    }
    let report = build(Gathered {
        meta: TraceMeta {
            pid: 4242,
            go_version: inspection.go_version.clone(),
            map_impl: inspection.map_impl,
            duration_ns: 2_000_000_000,
            stop: StopReason::Duration,
            notes: Vec::new(),
        },
        agg: &agg,
        counters: KernelCounters::default(),
        sampling: SamplingSummary {
            governor: false,
            max_overhead: 0.01,
            hit_cost_ns: 1_000,
            groups: Vec::new(),
        },
        top: 20,
        inspection: &inspection,
        image: &data,
        image_shown: "fixture",
        bias: None,
        allocated_bytes: Some(16 << 20),
        started_unix_ns: 1_800_000_000_000_000_000,
        profile: false,
    });
    let mut json = serde_json::to_string_pretty(&report.summary).expect("serialize");
    json.push('\n');
    let golden = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(GOLDEN);
    if std::env::var_os("MAPLEAK_BLESS").is_some_and(|v| v == "1") {
        std::fs::write(&golden, &json).expect("write the golden summary");
    }
    let want = std::fs::read_to_string(&golden).unwrap_or_default();
    assert!(
        json == want,
        "the summary changed (MAPLEAK_BLESS=1 rewrites {GOLDEN} if that is meant):\n{json}"
    );
}
