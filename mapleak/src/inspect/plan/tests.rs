use object::{Object, ObjectSection, ObjectSymbol};

use super::*;
use crate::inspect::testgo;

/// `bytes` with the `.symtab` value of `name` moved by `delta` bytes.
fn move_symbol(bytes: &[u8], name: &str, delta: u64) -> Vec<u8> {
    let file = object::File::parse(bytes).expect("an ELF file");
    let sym = file
        .symbols()
        .find(|s| s.name() == Ok(name))
        .unwrap_or_else(|| panic!("{name} in .symtab"));
    let (table, _) = file
        .section_by_name(".symtab")
        .and_then(|s| s.file_range())
        .expect(".symtab in the file");
    // Elf64_Sym: st_name u32, st_info u8, st_other u8, st_shndx u16, st_value u64, st_size u64.
    let at = (table + sym.index().0 as u64 * 24 + 8) as usize;
    let mut out = bytes.to_vec();
    let value = u64::from_le_bytes(out[at..at + 8].try_into().unwrap());
    out[at..at + 8].copy_from_slice(&(value + delta).to_le_bytes());
    out
}

#[test]
fn a_symtab_that_misplaces_a_function_is_ignored_for_it() {
    let exe = testgo::fixture("1.21.13", "", &[], &[]).expect("Go 1.21.13 is installed");
    let bytes = std::fs::read(&exe).unwrap();
    let good = inspect_bytes("good", &bytes).unwrap();
    let grow = &good.probes[0];
    assert_eq!(grow.symbol(), "runtime.hashGrow");
    assert_eq!(grow.source, SymbolSource::Symtab);
    assert!(grow.post_prologue > 0, "hashGrow has a stack check");
    assert!(good.notes.iter().all(|n| !n.contains(".symtab puts")));

    for delta in [1, 3, 0x40] {
        let patched = move_symbol(&bytes, "runtime.hashGrow", delta);
        let got = inspect_bytes("patched", &patched).unwrap();
        let moved = &got.probes[0];
        assert_eq!(moved.address, grow.address, "the .gopclntab entry is used");
        assert_eq!(moved.attach_offset, grow.attach_offset);
        assert_eq!(moved.ret_offsets, grow.ret_offsets);
        assert_eq!(moved.source, SymbolSource::Pclntab);
        let note = format!(
            ".symtab puts runtime.hashGrow at {:#x} but .gopclntab at {:#x}",
            grow.address + delta,
            grow.address
        );
        assert!(
            got.notes.iter().any(|n| n.starts_with(&note)),
            "{:?}",
            got.notes
        );
    }
}

#[test]
fn every_probe_offset_is_an_instruction_boundary_from_the_entry() {
    use iced_x86::{Decoder, DecoderOptions};
    for version in ["1.21.13", "1.27.3"] {
        let exe = testgo::fixture(version, "", &[], &[]).expect("Go is installed");
        let bytes = std::fs::read(&exe).unwrap();
        let got = inspect_bytes("x", &bytes).unwrap();
        let elf = GoElf::parse("x", &bytes).unwrap();
        for site in &got.probes {
            let code = elf.code(site.address, site.size).unwrap();
            let mut decoder = Decoder::with_ip(64, code, 0, DecoderOptions::NONE);
            let starts: Vec<u64> = decoder.iter().map(|i| i.ip()).collect();
            for off in std::iter::once(site.post_prologue).chain(site.ret_offsets.iter().copied()) {
                assert!(
                    starts.contains(&off),
                    "{version} {}+{off:#x} is inside an instruction",
                    site.symbol()
                );
            }
        }
    }
}

#[test]
fn the_json_lists_each_group_where_it_always_was() {
    let exe = testgo::fixture("1.21.13", "", &[], &[]).expect("Go 1.21.13 is installed");
    let got = inspect_bytes("x", &std::fs::read(&exe).unwrap()).unwrap();
    let json = serde_json::to_string(&got).unwrap();
    let at = |key: &str| {
        json.find(&format!("\"{key}\":"))
            .unwrap_or_else(|| panic!("{key} in {json}"))
    };
    let keys = [
        "build",
        "probes",
        "create_probes",
        "assign_probes",
        "evacuate_probes",
        "numgc_address",
    ];
    assert!(keys.windows(2).all(|k| at(k[0]) < at(k[1])), "{json}");
    let v: serde_json::Value = serde_json::from_str(&json).unwrap();
    let symbols = |key: &str| -> Vec<String> {
        v[key]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| s["symbol"].as_str().unwrap().to_owned())
            .collect()
    };
    assert_eq!(
        symbols("probes"),
        [
            "runtime.hashGrow",
            "runtime.stopTheWorldWithSema",
            "runtime.startTheWorldWithSema",
            "runtime.gcAssistAlloc",
            "runtime.gcAssistAlloc1",
            "runtime.gcMarkDone",
            "runtime.gcParkAssist"
        ]
    );
    assert_eq!(
        symbols("create_probes"),
        ["runtime.makemap", "runtime.makemap_small"]
    );
    assert_eq!(symbols("assign_probes").len(), 5);
    assert_eq!(symbols("evacuate_probes").len(), 4);
}
