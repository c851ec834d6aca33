#![no_main]

use libfuzzer_sys::fuzz_target;
use mapleak::inspect::pclntab::Pclntab;

const NAMES: &[&str] = &[
    "runtime.hashGrow",
    "internal/runtime/maps.(*table).rehash",
    "runtime.mapassign_fast64",
    "runtime.gcMarkTermination",
    "runtime.newstack",
    "main.main",
    "",
];

fuzz_target!(|data: &[u8]| {
    let Ok(tab) = Pclntab::parse(data, 0x40_1000) else {
        return;
    };
    for (name, f) in tab.functions(NAMES) {
        assert!(NAMES.contains(&name));
        assert!(f.address.checked_add(f.size).is_some());
    }
    // Probe PCs: text start, then offsets taken from the input so some land inside functions.
    let offsets = data
        .chunks_exact(4)
        .take(64)
        .map(|c| u64::from(u32::from_le_bytes([c[0], c[1], c[2], c[3]]) % 0x10_0000));
    for pc in std::iter::once(0)
        .chain(offsets)
        .map(|o| tab.text_start().wrapping_add(o))
    {
        if let Some((_, entry, end)) = tab.func_at(pc) {
            assert!(
                entry <= pc && pc < end,
                "{pc:#x} not in [{entry:#x}, {end:#x})"
            );
        }
    }
    let _ = tab.moduledata_text(0x4a_0000, data);
});
