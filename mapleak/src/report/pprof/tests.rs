use std::io::Read;

use prost::Message;

use super::{Binary, proto, write};
use crate::report::{
    profile::{GrowthProfile, ProfileSample},
    sites::StackFrame,
};

fn frame(pc: &str, function: &str, line: u32, inlined: bool) -> StackFrame {
    StackFrame {
        pc: pc.into(),
        function: function.into(),
        file: "main.go".into(),
        line,
        inlined,
    }
}

#[test]
fn inlined_frames_are_the_lines_of_one_location_and_values_sum() {
    let growth = vec![
        frame("0x401000", "runtime.hashGrow", 1, false),
        // main.fill inlined into main.main at one pc.
        frame("0x402000", "main.fill", 10, true),
        frame("0x402000", "main.main", 20, false),
    ];
    let p = GrowthProfile {
        samples: vec![
            ProfileSample {
                frames: growth.clone(),
                grow_events: 15,
                grow_bytes: 1000,
                assist_ns: 0,
            },
            ProfileSample {
                frames: growth[..1].to_vec(),
                grow_events: 1,
                grow_bytes: 8,
                assist_ns: 0,
            },
            ProfileSample {
                frames: growth[..1].to_vec(),
                grow_events: 0,
                grow_bytes: 0,
                assist_ns: 340_000_000,
            },
        ],
        sampled: Some("sampled".into()),
        ..Default::default()
    };
    let mut gz = Vec::new();
    write(&mut gz, &p, &Binary::default()).unwrap();
    let mut raw = Vec::new();
    flate2::read::GzDecoder::new(&gz[..])
        .read_to_end(&mut raw)
        .unwrap();
    let decoded = proto::Profile::decode(&raw[..]).unwrap();
    let s = |i: i64| decoded.string_table[i as usize].as_str();
    assert_eq!(s(0), "");
    assert_eq!(s(decoded.default_sample_type), "grow_space");
    assert_eq!(decoded.sample.len(), 3);
    assert_eq!(decoded.sample[0].value, [15, 1000, 0]);
    let types: Vec<(&str, &str)> = decoded
        .sample_type
        .iter()
        .map(|t| (s(t.r#type), s(t.unit)))
        .collect();
    assert_eq!(
        types,
        [
            ("grow_events", "count"),
            ("grow_space", "bytes"),
            ("assist_time", "nanoseconds")
        ]
    );
    assert_eq!(decoded.sample[2].value, [0, 0, 340_000_000]);
    // Two locations: the runtime's, and one pc holding the inlined call and its caller.
    assert_eq!(decoded.location.len(), 2);
    assert_eq!(decoded.sample[0].location_id, [1, 2]);
    assert_eq!(decoded.sample[1].location_id, [1]);
    assert_eq!(decoded.sample[2].location_id, [1]);
    let names: Vec<&str> = decoded.location[1]
        .line
        .iter()
        .map(|l| s(decoded.function[l.function_id as usize - 1].name))
        .collect();
    assert_eq!(names, ["main.fill", "main.main"]);
    assert_eq!(decoded.location[1].address, 0x402000);
    assert_eq!(decoded.comment.len(), 1);
}
