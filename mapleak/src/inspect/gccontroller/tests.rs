use object::{Object, ObjectSection};

use super::*;
use crate::inspect::{GoVersion, inspect_bytes, offsets, testgo};

const BASE: u64 = 0x1000;
const METHOD: u64 = 0x3000;

/// Machine code with RIP-relative operands aimed at absolute targets.
#[derive(Default)]
struct Code(Vec<u8>);

impl Code {
    /// `opcode` then the rel32 that makes the instruction reach `target`.
    fn rel(mut self, opcode: &[u8], target: u64) -> Self {
        let next = BASE + (self.0.len() + opcode.len() + 4) as u64;
        self.0.extend(opcode);
        self.0
            .extend((target.wrapping_sub(next) as i32).to_le_bytes());
        self
    }
    fn lea_rax(self, target: u64) -> Self {
        self.rel(&[0x48, 0x8d, 0x05], target)
    }
    fn lea_rcx(self, target: u64) -> Self {
        self.rel(&[0x48, 0x8d, 0x0d], target)
    }
    fn call(self, target: u64) -> Self {
        self.rel(&[0xe8], target)
    }
    fn byte(mut self, b: u8) -> Self {
        self.0.push(b);
        self
    }
}

#[test]
fn receivers_are_rax_loads_right_before_a_method_call() {
    let code = Code::default()
        .lea_rax(0x2000)
        .call(METHOD)
        // A NOP in between: not a receiver.
        .lea_rax(0x2100)
        .byte(0x90)
        .call(METHOD)
        // Another register: not the receiver.
        .lea_rcx(0x2200)
        .call(METHOD)
        // Another callee.
        .lea_rax(0x2300)
        .call(0x4000)
        .lea_rax(0x2000)
        .call(METHOD)
        .byte(0xc3);
    assert_eq!(
        receivers(&code.0, BASE, |t| t == METHOD),
        vec![0x2000, 0x2000]
    );
    // Undecodable code counts for nothing.
    let broken = Code::default().lea_rax(0x2000).call(METHOD).byte(0x0f);
    assert!(receivers(&broken.0, BASE, |t| t == METHOD).is_empty());
}

#[test]
fn the_most_frequent_receiver_wins_and_ties_give_none() {
    assert_eq!(most_frequent(&mut [3, 1, 3, 2, 3, 1]), Some(3));
    assert_eq!(most_frequent(&mut [5]), Some(5));
    assert_eq!(most_frequent(&mut [1, 2, 2, 1]), None);
    assert_eq!(most_frequent(&mut []), None);
}

/// Where `address` is as (section, offset in it). A `-s -w` build records its flags in
/// `.go.buildinfo`, which grows and moves every later section (by 32 bytes in most releases), so
/// a stripped build is compared with the full one section by section.
fn placed(elf: &GoElf, address: u64) -> Option<(String, u64)> {
    elf.object()
        .sections()
        .find(|s| (s.address()..s.address() + s.size()).contains(&address))
        .map(|s| (s.name().unwrap_or("?").to_owned(), address - s.address()))
}

/// On every installed Go: the decoded address is `.symtab`'s, and a stripped build of the same
/// program (no symbols, no DWARF) is inspected to the same place and `heapMarked` and
/// `totalAlloc` offsets.
#[test]
fn gc_controller_decoded_on_every_installed_go_matches_symtab() {
    let mut checked = 0;
    for version in testgo::versions() {
        let Some((full, stripped)) = testgo::full_and_stripped(version) else {
            continue;
        };
        let full_data = std::fs::read(&full).expect("read fixture");
        let full = GoElf::parse("full", &full_data).expect("parse fixture");
        let symtab = full
            .data_symbol(SYMBOL)
            .expect("runtime.gcController in .symtab");
        let table = symbols::pclntab(&full).expect("pclntab");
        assert_eq!(decoded_address(&full, &table), Some(symtab), "Go {version}");

        let stripped_data = std::fs::read(&stripped).expect("read stripped fixture");
        let stripped = GoElf::parse("stripped", &stripped_data).expect("parse stripped fixture");
        let plan = inspect_bytes("stripped", &stripped_data).expect("inspect stripped build");
        assert!(!plan.symtab, "Go {version}: stripped build has a .symtab");
        let decoded = plan.gc_controller_address.expect("decoded gcController");
        let place = placed(&full, symtab);
        assert!(
            place.is_some(),
            "Go {version}: {symtab:#x} is in no section"
        );
        assert_eq!(placed(&stripped, decoded), place, "Go {version}");

        let go = GoVersion::parse(&plan.go_version).unwrap();
        let fields = offsets::GcControllerFields::table(&go);
        let want = fields.heap_marked;
        assert!(want.is_some(), "Go {version}: no heapMarked offset");
        let want_total = fields.total_alloc;
        assert!(want_total.is_some(), "Go {version}: no totalAlloc offset");
        let full_plan = inspect_bytes("full", &full_data).expect("inspect full build");
        assert_eq!(
            full_plan.gc_controller_address,
            Some(symtab),
            "Go {version}"
        );
        assert_eq!(full_plan.heap_marked_offset, want, "Go {version}");
        assert_eq!(plan.heap_marked_offset, want, "Go {version}");
        assert_eq!(full_plan.total_alloc_offset, want_total, "Go {version}");
        assert_eq!(plan.total_alloc_offset, want_total, "Go {version}");
        // The stripped build has no DWARF: the table's offsets are all it gets.
        assert_eq!(plan.gc_controller_fields, fields, "Go {version}");
        assert_eq!(full_plan.gc_controller_fields, fields, "Go {version}");
        for notes in [&plan.notes, &full_plan.notes] {
            assert!(
                !notes.iter().any(|n| n.contains("live heap")
                    || n.contains("heap allocated")
                    || n.contains("heap accounting")),
                "Go {version}: {notes:?}"
            );
        }
        eprintln!(
            "Go {version}: runtime.gcController {symtab:#x} (stripped: {decoded:#x}, both {place:?}), \
             heapMarked +{want:?}, totalAlloc +{want_total:?}"
        );
        checked += 1;
    }
    if checked == 0 {
        eprintln!("note: no Go toolchain installed; gcController decoding not checked");
    }
}
