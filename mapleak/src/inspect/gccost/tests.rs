use super::*;
use crate::inspect::{inspect_bytes, symbols, testgo, testgo::placed};

fn code<'a>(elf: &GoElf<'a>, table: &Pclntab, name: &str) -> (&'a [u8], u64) {
    let (_, f) = table.functions(&[name]).into_iter().next().expect(name);
    (
        elf.code(f.address, f.size).expect("code in file"),
        f.address,
    )
}

/// On every installed Go: `runtime.work` and `runtime.gcCPULimiter` decoded from the GC's code
/// are `.symtab`'s; a stripped build (no symbols, no DWARF) is inspected to the same places, and
/// the full build's DWARF gives the table's offsets (checked in `dwarf`), so the probe reads
/// the same words in both.
#[test]
fn work_and_limiter_decoded_on_every_installed_go_match_symtab() {
    let mut checked = 0;
    for version in testgo::versions() {
        let Some((full, stripped)) = testgo::full_and_stripped(version) else {
            continue;
        };
        let data = std::fs::read(&full).expect("read fixture");
        let elf = GoElf::parse("full", &data).expect("parse fixture");
        let table = symbols::pclntab(&elf).expect("pclntab");
        let go = GoVersion::parse(&format!("go{version}")).unwrap();
        let fields = GcCostFields::table(&go);
        let work = elf.data_symbol(WORK).expect("runtime.work in .symtab");
        let limiter = elf.data_symbol(LIMITER).expect("gcCPULimiter in .symtab");
        let gc = [
            code(&elf, &table, "runtime.gcStart"),
            code(&elf, &table, "runtime.gcMarkDone"),
            code(&elf, &table, "runtime.gcMarkTermination"),
        ];
        assert_eq!(
            gcdata::sweep_term_address(gc[0], gc[1], gc[2]),
            Some(work + fields.work_t_sweep_term.unwrap()),
            "Go {version}"
        );
        assert_eq!(decoded_limiter(&elf, &table), Some(limiter), "Go {version}");

        let full_plan = inspect_bytes("full", &data).expect("inspect full build");
        let stripped_data = std::fs::read(&stripped).expect("read stripped fixture");
        let stripped_elf = GoElf::parse("stripped", &stripped_data).expect("parse");
        let plan = inspect_bytes("stripped", &stripped_data).expect("inspect stripped build");
        assert!(!plan.symtab, "Go {version}: stripped build has a .symtab");
        for p in [&plan, &full_plan] {
            assert!(p.gc_cost_layout.is_some(), "Go {version}: {:?}", p.notes);
            assert_eq!(p.gc_cost_fields, fields, "Go {version}");
            assert!(
                !p.notes
                    .iter()
                    .any(|n| n.contains("cost") || n.contains("limiter")),
                "Go {version}: {:?}",
                p.notes
            );
        }
        assert_eq!(
            full_plan.gc_cost_layout, plan.gc_cost_layout,
            "Go {version}"
        );
        assert_eq!(
            plan.work_address.and_then(|a| placed(&stripped_elf, a)),
            placed(&elf, work),
            "Go {version}"
        );
        assert_eq!(
            plan.gc_cpu_limiter_address
                .and_then(|a| placed(&stripped_elf, a)),
            placed(&elf, limiter),
            "Go {version}"
        );
        eprintln!(
            "Go {version}: runtime.work {work:#x}, runtime.gcCPULimiter {limiter:#x}; stripped: \
             {:#x?} {:#x?}",
            plan.work_address, plan.gc_cpu_limiter_address
        );
        checked += 1;
    }
    if checked == 0 {
        eprintln!("note: no Go toolchain installed; GC cost globals not checked");
    }
}

/// Synthetic code: the receiver load, the other arguments, then the call; anything that
/// writes RAX in between, or too many instructions, is not a receiver.
#[test]
fn a_receiver_may_be_loaded_a_few_instructions_before_the_call() {
    // 0x1000: lea rax,[rip+0xff9] (→ 0x2000); mov ebx,1; call 0x3000
    let mut code = vec![0x48, 0x8d, 0x05, 0xf9, 0x0f, 0x00, 0x00];
    code.extend([0xbb, 0x01, 0x00, 0x00, 0x00]);
    let call = |code: &mut Vec<u8>| {
        let next = 0x1000 + code.len() as u64 + 5;
        code.push(0xe8);
        code.extend((0x3000u64.wrapping_sub(next) as i32).to_le_bytes());
    };
    call(&mut code);
    let method = |t: u64| t == 0x3000;
    assert_eq!(
        gccontroller::receivers_within(&code, 0x1000, method, 3),
        vec![0x2000]
    );
    assert!(gccontroller::receivers(&code, 0x1000, method).is_empty());
    // mov eax,1 overwrites the receiver.
    let mut clobbered = code[..7].to_vec();
    clobbered.extend([0xb8, 0x01, 0x00, 0x00, 0x00]);
    call(&mut clobbered);
    assert!(gccontroller::receivers_within(&clobbered, 0x1000, method, 3).is_empty());
    // Four instructions between are too many.
    let mut far = code[..12].to_vec();
    far.extend([0x90, 0x90, 0x90]);
    call(&mut far);
    assert!(gccontroller::receivers_within(&far, 0x1000, method, 3).is_empty());
}

/// Synthetic code: gcStart zeroes pauseNS and stores tSweepTerm 32 bytes below it;
/// gcMarkDone and gcMarkTermination store 16 and 24 bytes above it.
#[test]
fn the_sweep_termination_clock_is_found_by_its_neighbours() {
    // A RIP-relative `mov [target], rax` (or `mov qword [target], 0`) at `at`.
    let store = |at: u64, target: u64, zero: bool| -> Vec<u8> {
        let (mut op, tail): (Vec<u8>, usize) = if zero {
            (vec![0x48, 0xc7, 0x05], 4)
        } else {
            (vec![0x48, 0x89, 0x05], 0)
        };
        let next = at + op.len() as u64 + 4 + tail as u64;
        op.extend((target.wrapping_sub(next) as i32).to_le_bytes());
        op.extend(std::iter::repeat_n(0, tail));
        op
    };
    const T: u64 = 0x9000;
    let mut start = store(0x1000, T + 32, true);
    start.extend(store(0x1000 + start.len() as u64, 0x8000, false));
    start.extend(store(0x1000 + start.len() as u64, T, false));
    let done = store(0x2000, T + 16, false);
    let term = store(0x3000, T + 24, false);
    assert_eq!(
        gcdata::sweep_term_address((&start, 0x1000), (&done, 0x2000), (&term, 0x3000)),
        Some(T)
    );
    // gcMarkTermination storing elsewhere: nothing.
    let elsewhere = store(0x3000, T + 8, false);
    assert_eq!(
        gcdata::sweep_term_address((&start, 0x1000), (&done, 0x2000), (&elsewhere, 0x3000)),
        None
    );
}
