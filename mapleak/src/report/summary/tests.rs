use mapleak_common::{ClassicGrowEvent, EventHeader, EventKind};

use super::*;
use crate::{aggregate::GoRules, decode::Event};

fn summary() -> Summary {
    let mut agg = Aggregator::new(GoRules {
        load_factor_num: 13,
        malloc_headers: true,
    });
    agg.record(&Event::ClassicGrow(ClassicGrowEvent {
        header: EventHeader {
            kind: EventKind::ClassicGrow as u32,
            ts_ns: 5,
            ..Default::default()
        },
        map: 0xc000012345,
        count: 8,
        bucket_size: 144,
        key_size: 8,
        value_size: 8,
        ..Default::default()
    }));
    let meta = TraceMeta {
        pid: 42,
        go_version: "go1.22.10".into(),
        map_impl: crate::inspect::MapImpl::Classic,
        duration_ns: 1_000,
        stop: StopReason::TargetExited,
        notes: vec![],
    };
    let kernel = KernelCounters {
        lost: 3,
        read_errors: 0,
        hits: vec![ProbeHits {
            symbol: "runtime.hashGrow".into(),
            program: "classic_hash_grow",
            hits: 1,
        }],
    };
    Summary::new(&meta, &agg, &kernel, 10, Default::default())
}

#[test]
fn json_summary_has_the_contracted_shape() {
    let v = serde_json::to_value(summary()).unwrap();
    assert_eq!(v["type"], "summary");
    assert_eq!(v["pid"], 42);
    assert_eq!(v["go_version"], "go1.22.10");
    assert_eq!(v["map_impl"], "classic");
    assert_eq!(v["duration_ns"], 1_000);
    assert_eq!(v["maps"]["grow_events"], 1);
    assert_eq!(v["maps"]["grow_bytes"], 288);
    assert_eq!(v["maps"]["maps_seen"], 1);
    let top = &v["maps"]["top"][0];
    assert_eq!(top["map"], "0xc000012345");
    assert_eq!(top["grow_events"], 1);
    assert_eq!(top["entries"], 8);
    assert_eq!(top["capacity"], 16);
    assert_eq!(top["bytes"], 288);
    assert_eq!(top["growths"][0]["kind"], "double");
    assert_eq!(v["events"]["received"], 1);
    assert_eq!(v["events"]["lost"], 3);
    for key in [
        "cycles",
        "pause_count",
        "pause_total_ns",
        "pause_p50_ns",
        "pause_p99_ns",
        "pause_max_ns",
        "per_cycle",
    ] {
        assert!(!v["gc"][key].is_null(), "gc.{key} missing");
    }
    assert!(v["stw_other"].is_array());
}

#[test]
fn text_summary_names_the_map_and_warns_about_loss() {
    let text = crate::report::text::summary(&summary());
    assert!(text.contains("0xc000012345"), "{text}");
    assert!(text.contains("3 lost"), "{text}");
    assert!(text.contains("raise --ring-size"), "{text}");
}

#[test]
fn text_summary_says_when_counts_are_sampled() {
    let mut s = summary();
    s.sampling = crate::report::sampling::SamplingSummary {
        governor: true,
        max_overhead: 0.01,
        hit_cost_ns: 10_000,
        groups: vec![crate::report::sampling::GroupSampling {
            group: crate::catalogue::ProbeGroup::Growth,
            attached_fraction: 0.12,
            sampled: true,
            hits: 40,
            observed_events: 40,
            estimated_events: 300,
            observed_bytes: 0,
            estimated_bytes: 0,
            estimated_events_interval: None,
            estimated_bytes_interval: None,
            scaled_by: crate::report::sampling::ScaledBy::Allocation,
        }],
    };
    let text = crate::report::text::summary(&s);
    assert!(
        text.contains("growth probes were attached 12.0% of the time"),
        "{text}"
    );
    assert!(text.contains("--exact"), "{text}");
}
