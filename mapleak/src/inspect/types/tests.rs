use std::{collections::BTreeMap, path::Path, process::Command};

use super::TypeNames;
use crate::inspect::{GoElf, testgo};

/// Prints the address of each value's type descriptor (the type word of an interface holding
/// it) and the runtime's own name for the type, then the address of `main.main`.
const PROGRAM: &str = r#"package main

import (
	"fmt"
	"reflect"
	"unsafe"
)

type key struct{ a, b int64 }

type eface struct{ typ, data unsafe.Pointer }

func show(v any) {
	e := (*eface)(unsafe.Pointer(&v))
	fmt.Printf("%x %s\n", uintptr(e.typ), reflect.TypeOf(v))
}

func main() {
	show(map[int]int{})
	show(map[string][]byte{})
	show(map[key][3]int64{})
	show(map[*key]map[string]struct{}{})
	show(key{})
	show(0)
	fmt.Printf("%x main\n", reflect.ValueOf(main).Pointer())
}
"#;

/// What the program printed: descriptor address → name, and where `main.main` ran.
fn run(exe: &Path) -> (BTreeMap<u64, String>, u64) {
    let out = Command::new(exe).output().expect("run the types program");
    let mut types = BTreeMap::new();
    let mut main = 0;
    for line in String::from_utf8(out.stdout).unwrap().lines() {
        let (addr, name) = line.split_once(' ').unwrap();
        let addr = u64::from_str_radix(addr, 16).unwrap();
        if name == "main" {
            main = addr;
        } else {
            types.insert(addr, name.to_owned());
        }
    }
    (types, main)
}

fn strip(exe: &Path) -> std::path::PathBuf {
    let stripped = exe.with_extension("strip");
    let ok = Command::new("strip")
        .arg("-o")
        .arg(&stripped)
        .arg(exe)
        .status()
        .is_ok_and(|s| s.success());
    assert!(ok, "strip {}", exe.display());
    stripped
}

#[test]
fn map_types_are_named_as_the_runtime_names_them_with_and_without_symbols() {
    for version in testgo::versions() {
        for (tag, flags) in [("-types", &[][..]), ("-types-pie", &["-buildmode=pie"][..])] {
            let Some(exe) = testgo::program(PROGRAM, version, tag, flags, &[]) else {
                continue;
            };
            let (printed, main) = run(&exe);
            let data = std::fs::read(&exe).unwrap();
            let bare = std::fs::read(strip(&exe)).unwrap();
            let elf = GoElf::parse("fixture", &data).unwrap();
            let bare_elf = GoElf::parse("stripped", &bare).unwrap();
            assert!(bare_elf.data_symbol("runtime.types").is_none());
            // The load bias, from where main.main ran against where the file puts it.
            let linked = elf.functions(&["main.main"])[0].1.address;
            let bias = main - linked;
            let minor: u32 = version.split('.').nth(1).unwrap().parse().unwrap();
            let named = TypeNames::for_elf(&elf, minor).expect("types from .symtab");
            let found = TypeNames::for_elf(&bare_elf, minor).expect("types from moduledata");
            assert_eq!(named.types, found.types, "Go {version}{tag}");
            assert_eq!(printed.len(), 6, "{printed:?}");
            for (addr, name) in &printed {
                let want = name.starts_with("map[").then_some(name.as_str());
                let at = addr - bias;
                assert_eq!(named.map_name(at).as_deref(), want, "Go {version}{tag}");
                assert_eq!(found.map_name(at).as_deref(), want, "Go {version}{tag}");
            }
            assert_eq!(named.map_name(named.types.1), None);
        }
    }
}
