//! Locating the GC's runtime globals without data symbols, so that stripped binaries get GC
//! cycle numbers, GC stops told apart and pauses on the runtime's own clock too.
//!
//! * `memstats.numgc`: `gcMarkTermination` ends a cycle with `memstats.numgc++` and, for forced
//!   cycles, `memstats.numforcedgc++`: two RIP-relative `INCL`s of adjacent `uint32` fields,
//!   numgc first.
//! * `gcphase`: `setGCPhase`, inlined into `gcStart` and `gcMarkTermination`, stores the phase
//!   atomically (`LEAQ gcphase, R; XCHGL V, 0(R)`) and reads it straight back to set the write
//!   barrier (`MOVL gcphase, V'`).
//! * `work.pauseStart` (Go < 1.22): `gcStart` and `gcMarkDone` both store `nanotime()` into
//!   `work.tSweepTerm`/`work.tMarkTerm` and then `work.pauseStart`; `gcStart` also zeroes
//!   `work.pauseNS`, the word before it (which the stop probes read with it).
//!
//! * `work.tSweepTerm`: `gcStart` zeroes `work.pauseNS` and stores `nanotime()` into
//!   `work.tSweepTerm`, 32 bytes below it; `gcMarkDone` stores the time into `work.tMarkTerm`
//!   (16 bytes above `tSweepTerm`) and `gcMarkTermination` into `work.tEnd` (24 above), in every
//!   release: the four phase clocks and `pauseNS` keep their order and spacing.
//!
//! Each is in every Go release mapleak supports; the tests check them against `.symtab`.

use iced_x86::{Code, Decoder, DecoderOptions, Instruction, Mnemonic, OpKind, Register};

/// Every instruction of `code`, or `None` if any does not decode: then it is not what it seems.
fn decode(code: &[u8], address: u64) -> Option<Vec<Instruction>> {
    let mut decoder = Decoder::with_ip(64, code, address, DecoderOptions::NONE);
    let mut out = Vec::new();
    let mut insn = Instruction::default();
    while decoder.can_decode() {
        decoder.decode_out(&mut insn);
        if insn.code() == Code::INVALID {
            return None;
        }
        out.push(insn);
    }
    Some(out)
}

/// Instructions between an atomic store and its re-read, or a `LEA` and its use: the compiler
/// puts them next to each other; a little slack keeps a stray `NOP` from hiding them.
const NEAR: usize = 3;

/// Targets of `setGCPhase`'s inlined body in one function: `LEAQ X(RIP), R` then
/// `XCHGL V, 0(R)` then `MOVL X(RIP), V'`, each within [`NEAR`] instructions of the last.
pub fn phase_stores(code: &[u8], address: u64) -> Vec<u64> {
    let Some(insns) = decode(code, address) else {
        return Vec::new();
    };
    let mut found = Vec::new();
    for (i, lea) in insns.iter().enumerate() {
        if lea.code() != Code::Lea_r64_m || !lea.is_ip_rel_memory_operand() {
            continue;
        }
        let (reg, target) = (lea.op0_register(), lea.ip_rel_memory_address());
        let after = &insns[i + 1..insns.len().min(i + 1 + NEAR)];
        let Some(x) = after.iter().position(|x| {
            x.mnemonic() == Mnemonic::Xchg
                && x.op0_kind() == OpKind::Memory
                && x.memory_base() == reg
                && x.memory_index() == Register::None
                && x.memory_displacement64() == 0
                && x.memory_size().size() == 4
        }) else {
            continue;
        };
        let reread = insns[i + 2 + x..insns.len().min(i + 2 + x + NEAR)]
            .iter()
            .any(|m| {
                m.mnemonic() == Mnemonic::Mov
                    && m.op0_kind() == OpKind::Register
                    && m.op1_kind() == OpKind::Memory
                    && m.is_ip_rel_memory_operand()
                    && m.ip_rel_memory_address() == target
                    && m.memory_size().size() == 4
            });
        if reread {
            found.push(target);
        }
    }
    found
}

/// Link-time address of `runtime.gcphase`, from the code of `gcStart` and
/// `gcMarkTermination`: both must name one and the same address.
pub fn gcphase_address(start: &[u8], start_at: u64, term: &[u8], term_at: u64) -> Option<u64> {
    let mut a = phase_stores(start, start_at);
    let mut b = phase_stores(term, term_at);
    for v in [&mut a, &mut b] {
        v.sort_unstable();
        v.dedup();
    }
    (a.len() == 1 && a == b).then(|| a[0])
}

/// A RIP-relative 8-byte store: its target, and the register stored (`None`: an immediate 0).
fn qword_store(m: &Instruction) -> Option<(u64, Option<Register>)> {
    if m.mnemonic() != Mnemonic::Mov
        || m.op0_kind() != OpKind::Memory
        || !m.is_ip_rel_memory_operand()
        || m.memory_size().size() != 8
    {
        return None;
    }
    match m.op1_kind() {
        OpKind::Register => Some((m.ip_rel_memory_address(), Some(m.op1_register()))),
        OpKind::Immediate32to64 if m.immediate32to64() == 0 => {
            Some((m.ip_rel_memory_address(), None))
        }
        _ => None,
    }
}

/// Targets of the second of two adjacent stores of one register to two globals
/// (`work.tSweepTerm = now; work.pauseStart = now`).
fn second_of_paired_stores(insns: &[Instruction]) -> Vec<u64> {
    insns
        .windows(2)
        .filter_map(|w| {
            let (a, Some(ra)) = qword_store(&w[0])? else {
                return None;
            };
            let (b, Some(rb)) = qword_store(&w[1])? else {
                return None;
            };
            (ra == rb && a != b).then_some(b)
        })
        .collect()
}

/// Link-time address of `runtime.work.pauseStart` (Go < 1.22), from the code of `gcStart` and
/// `gcMarkDone`: the second of two adjacent stores of one register in both (the phase's start
/// time, then the pause's), whose preceding word `gcStart` zeroes (`work.pauseNS = 0`).
/// Exactly one candidate, or nothing.
pub fn pause_start_address(start: &[u8], start_at: u64, done: &[u8], done_at: u64) -> Option<u64> {
    let start = decode(start, start_at)?;
    let in_done = second_of_paired_stores(&decode(done, done_at)?);
    let zeroed: Vec<u64> = start
        .iter()
        .filter_map(qword_store)
        .filter(|(_, reg)| reg.is_none())
        .map(|(at, _)| at)
        .collect();
    let mut found: Vec<u64> = second_of_paired_stores(&start)
        .into_iter()
        .filter(|a| in_done.contains(a) && zeroed.contains(&a.wrapping_sub(8)))
        .collect();
    found.sort_unstable();
    found.dedup();
    (found.len() == 1).then(|| found[0])
}

/// Targets of the RIP-relative 8-byte stores in `insns`: of a register (`true`) or of an
/// immediate 0 (`false`).
fn qword_stores(insns: &[Instruction]) -> Vec<(u64, bool)> {
    insns
        .iter()
        .filter_map(qword_store)
        .map(|(at, reg)| (at, reg.is_some()))
        .collect()
}

/// Link-time address of `runtime.work.tSweepTerm`, from the code of `gcStart`, `gcMarkDone` and
/// `gcMarkTermination`: the one register store in `gcStart` whose neighbours fit the clocks'
/// layout — `pauseNS` 32 bytes above zeroed there, `tMarkTerm` 16 above stored in `gcMarkDone`,
/// `tEnd` 24 above stored in `gcMarkTermination`. Exactly one candidate, or nothing.
pub fn sweep_term_address(
    (start, start_at): (&[u8], u64),
    (done, done_at): (&[u8], u64),
    (term, term_at): (&[u8], u64),
) -> Option<u64> {
    let start = qword_stores(&decode(start, start_at)?);
    let done = qword_stores(&decode(done, done_at)?);
    let term = qword_stores(&decode(term, term_at)?);
    let stored = |list: &[(u64, bool)], at: u64| list.contains(&(at, true));
    let mut found: Vec<u64> = start
        .iter()
        .filter(|&&(t, reg)| {
            reg && start.contains(&(t.wrapping_add(32), false))
                && stored(&done, t.wrapping_add(16))
                && stored(&term, t.wrapping_add(24))
        })
        .map(|&(t, _)| t)
        .collect();
    found.sort_unstable();
    found.dedup();
    (found.len() == 1).then(|| found[0])
}

/// Link-time address of `memstats.numgc`, from the code of `runtime.gcMarkTermination`.
pub fn numgc_address(code: &[u8], address: u64) -> Option<u64> {
    let mut decoder = Decoder::with_ip(64, code, address, DecoderOptions::NONE);
    let mut insn = Instruction::default();
    let mut targets = Vec::new();
    while decoder.can_decode() {
        decoder.decode_out(&mut insn);
        if insn.code() == Code::INVALID {
            return None;
        }
        if insn.mnemonic() == Mnemonic::Inc
            && insn.op0_kind() == OpKind::Memory
            && insn.is_ip_rel_memory_operand()
            && insn.memory_size().size() == 4
        {
            targets.push(insn.ip_rel_memory_address());
        }
    }
    targets.sort_unstable();
    targets.dedup();
    targets.windows(2).find(|w| w[1] - w[0] == 4).map(|w| w[0])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_the_lower_of_two_adjacent_counters() {
        // incl 0x100(%rax); incl 0x14(%rip) → 0x101d; incl 0x6(%rip) → 0x1019 (= 0x1013 + 6)
        let code = [
            0xff, 0x80, 0x00, 0x01, 0x00, 0x00, // incl 0x100(%rax)
            0xff, 0x05, 0x11, 0x00, 0x00, 0x00, // incl 0x11(%rip): next ip 0x100c → 0x101d
            0xff, 0x05, 0x07, 0x00, 0x00, 0x00, // incl 0x7(%rip): next ip 0x1012 → 0x1019
            0xc3,
        ];
        assert_eq!(numgc_address(&code, 0x1000), Some(0x1019));
    }

    #[test]
    fn no_pair_no_answer() {
        let code = [0xff, 0x05, 0x11, 0x00, 0x00, 0x00, 0xc3];
        assert_eq!(numgc_address(&code, 0x1000), None);
        assert_eq!(numgc_address(&[0xff], 0x1000), None);
    }

    /// On every installed Go: the decoded `gcphase` is `.symtab`'s, and `work.pauseStart`
    /// (before 1.22, where it exists) is `.symtab`'s `runtime.work` plus the field's offset in
    /// the release's DWARF; a stripped build of the same program (no symbols, no DWARF) is
    /// inspected to the same places.
    #[test]
    fn gc_globals_decoded_on_every_installed_go_match_symtab() {
        use crate::inspect::{GoElf, GoVersion, inspect_bytes, offsets, symbols, testgo};

        let placed = testgo::placed;
        let mut checked = 0;
        for version in testgo::versions() {
            let Some((full, stripped)) = testgo::full_and_stripped(version) else {
                continue;
            };
            let data = std::fs::read(&full).expect("read fixture");
            let elf = GoElf::parse("full", &data).expect("parse fixture");
            let table = symbols::pclntab(&elf).expect("pclntab");
            let code = |name: &str| {
                let (_, f) = table.functions(&[name]).into_iter().next().expect(name);
                (
                    elf.code(f.address, f.size).expect("code in file"),
                    f.address,
                )
            };
            let (start, start_at) = code("runtime.gcStart");
            let (term, term_at) = code("runtime.gcMarkTermination");
            let (done, done_at) = code("runtime.gcMarkDone");
            let go = GoVersion::parse(&format!("go{version}")).unwrap();

            let gcphase = elf
                .data_symbol("runtime.gcphase")
                .expect("gcphase in .symtab");
            assert_eq!(
                gcphase_address(start, start_at, term, term_at),
                Some(gcphase),
                "Go {version}"
            );
            let pause_start = offsets::work_pause_start(&go).map(|off| {
                let work = elf.data_symbol("runtime.work").expect("work in .symtab");
                let decoded = pause_start_address(start, start_at, done, done_at);
                assert_eq!(decoded, Some(work + off), "Go {version}");
                work + off
            });
            assert_eq!(pause_start.is_some(), !go.at_least(22), "Go {version}");

            let stripped_data = std::fs::read(&stripped).expect("read stripped fixture");
            let stripped_elf = GoElf::parse("stripped", &stripped_data).expect("parse");
            let plan = inspect_bytes("stripped", &stripped_data).expect("inspect stripped");
            assert!(!plan.symtab, "Go {version}: stripped build has a .symtab");
            let want_phase = (!go.at_least(21)).then(|| placed(&elf, gcphase));
            assert_eq!(
                plan.gcphase_address.map(|a| placed(&stripped_elf, a)),
                want_phase,
                "Go {version}"
            );
            assert_eq!(
                plan.pause_start_address.map(|a| placed(&stripped_elf, a)),
                pause_start.map(|a| placed(&elf, a)),
                "Go {version}"
            );
            assert!(
                !plan.notes.iter().any(|n| n.contains("GC ")),
                "Go {version}: {:?}",
                plan.notes
            );
            eprintln!(
                "Go {version}: runtime.gcphase {gcphase:#x}, work.pauseStart {pause_start:?}; \
                 stripped: {:?} {:?}",
                plan.gcphase_address, plan.pause_start_address
            );
            checked += 1;
        }
        if checked == 0 {
            eprintln!("note: no Go toolchain installed; GC globals decoding not checked");
        }
    }

    /// Synthetic code: the inlined setGCPhase, and the pair of time stores with pauseNS zeroed.
    #[test]
    fn decodes_set_gc_phase_and_the_pause_start_store() {
        // 0x1000: lea rdx,[rip+0x100] (→ 0x1107); mov ecx,1; xchg [rdx],ecx;
        //         mov ecx,[rip+0xf3] (→ 0x1107 = 0x1014 + 0xf3)
        let phase = [
            0x48, 0x8d, 0x15, 0x00, 0x01, 0x00, 0x00, // lea rdx, [rip+0x100]
            0xb9, 0x01, 0x00, 0x00, 0x00, // mov ecx, 1
            0x87, 0x0a, // xchg [rdx], ecx
            0x8b, 0x0d, 0xf3, 0x00, 0x00, 0x00, // mov ecx, [rip+0xf3]
            0xc3,
        ];
        assert_eq!(phase_stores(&phase, 0x1000), vec![0x1107]);
        assert_eq!(
            gcphase_address(&phase, 0x1000, &phase, 0x1000),
            Some(0x1107)
        );
        // Without the re-read it is any atomic store (gcBlackenEnabled, say).
        assert!(phase_stores(&phase[..14], 0x1000).is_empty());

        // 0x2000: mov qword [rip+0x1f1], 0 (→ 0x21fc); mov [rip+0x1e2], rax (→ 0x21ec);
        //         mov [rip+0x1eb], rax (→ 0x2204 = 0x21fc + 8)
        let start = [
            0x48, 0xc7, 0x05, 0xf1, 0x01, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, // pauseNS = 0
            0x48, 0x89, 0x05, 0xe2, 0x01, 0x00, 0x00, // tSweepTerm = rax
            0x48, 0x89, 0x05, 0xeb, 0x01, 0x00, 0x00, // pauseStart = rax
            0xc3,
        ];
        // 0x3000: mov [rip+..], rax (tMarkTerm); mov [rip+..], rax (→ 0x2204)
        let done = [
            0x48, 0x89, 0x05, 0x00, 0xf0, 0xff, 0xff, // → 0x2007
            0x48, 0x89, 0x05, 0xf6, 0xf1, 0xff, 0xff, // → 0x3014 - 0xe0a = 0x2204
            0xc3,
        ];
        assert_eq!(
            pause_start_address(&start, 0x2000, &done, 0x3000),
            Some(0x2204)
        );
        // gcMarkDone storing elsewhere: nothing.
        assert_eq!(pause_start_address(&start, 0x2000, &start, 0x4000), None);
    }
}
