use aya_obj::{Object, ProgramSection};
use mapleak_common::{ProbeId, ProgramKind};

use super::{EBPF_OBJECT, UprobeMode};
use crate::catalogue::SYSCALLS;

/// The programs of the embedded object by name, read the way aya reads them at load time.
fn programs() -> Object {
    assert!(
        !EBPF_OBJECT.is_empty(),
        "this build has no eBPF object (AYA_BUILD_SKIP is set)"
    );
    Object::parse(EBPF_OBJECT).expect("the embedded eBPF object parses")
}

fn section<'o>(object: &'o Object, name: &str) -> Option<&'o ProgramSection> {
    object.programs.get(name).map(|p| &p.section)
}

#[test]
fn every_probe_has_its_programs_in_the_object() {
    let object = programs();
    let mut missing = Vec::new();
    for &id in ProbeId::ALL {
        match id.kind() {
            ProgramKind::Uprobe => {
                let perf = UprobeMode::Perf.program(id);
                let multi = UprobeMode::Multi.program(id);
                if !matches!(
                    section(&object, &perf),
                    Some(ProgramSection::UProbe { multi: false, .. })
                ) {
                    missing.push(format!("{id:?}: uprobe {perf}"));
                }
                if !matches!(
                    section(&object, &multi),
                    Some(ProgramSection::UProbe { multi: true, .. })
                ) {
                    missing.push(format!("{id:?}: uprobe.multi {multi}"));
                }
            }
            ProgramKind::TracePoint => {
                if !matches!(
                    section(&object, id.program()),
                    Some(ProgramSection::TracePoint)
                ) {
                    missing.push(format!("{id:?}: tracepoint {}", id.program()));
                }
            }
        }
    }
    for call in SYSCALLS {
        if !matches!(
            section(&object, call.enter_program),
            Some(ProgramSection::TracePoint)
        ) {
            missing.push(format!("{}: tracepoint {}", call.call, call.enter_program));
        }
    }
    assert!(missing.is_empty(), "not in the object: {missing:#?}");
}

#[test]
fn every_named_map_is_in_the_object() {
    use mapleak_common::maps;
    let object = programs();
    let names = [
        maps::EVENTS,
        maps::HITS,
        maps::COUNTERS,
        maps::ASSIGNS,
        maps::EVACUATING,
        maps::ASSISTING,
        maps::MARKING_FOR,
        maps::PROBES_OFF,
    ];
    let missing: Vec<&str> = names
        .into_iter()
        .filter(|name| !object.maps.contains_key(*name))
        .collect();
    assert!(missing.is_empty(), "not in the object: {missing:?}");
    // The evacuation records user space reads are the kernel's values, byte for byte.
    let evacuating = &object.maps[maps::EVACUATING];
    assert_eq!(
        evacuating.value_size() as usize,
        std::mem::size_of::<maps::Evacuation>()
    );
}
