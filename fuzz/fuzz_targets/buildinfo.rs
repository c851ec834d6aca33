#![no_main]

use libfuzzer_sys::fuzz_target;
use mapleak::inspect::buildinfo;

fuzz_target!(|data: &[u8]| {
    if let Ok(info) = buildinfo::parse(data) {
        assert!(!info.go_version.is_empty());
        let _ = info.setting("GOEXPERIMENT");
        let _ = info.has_experiment("noswissmap");
    }
});
