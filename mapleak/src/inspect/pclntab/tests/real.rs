//! Checks against binaries built by real Go toolchains, when they are installed.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use object::{Object, ObjectSection, ObjectSymbol, SymbolKind};

use super::super::Pclntab;
use crate::inspect::elf::{FuncSym, GoElf};
use crate::inspect::{
    buildinfo,
    testgo::{go_build, toolchains, unavailable},
    version::GoVersion,
};

const FIXTURE: &str = r#"package main

import (
	"fmt"
	"os"
	"runtime"
)

func main() {
	m := make(map[int]int)
	for i := 0; i < len(os.Args)*1000; i++ {
		m[i] = i
	}
	runtime.GC()
	fmt.Println(len(m))
}
"#;

const GO_MOD: &str = "module fixture\n\ngo 1.19\n";

fn fixture_dir(label: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../target/pclntab-fixtures")
        .join(label)
}

/// Builds `out` once (cached across test runs), or says why it could not.
fn build(go: &Path, dir: &Path, out: &str, args: &[&str], cgo: bool) -> Result<PathBuf, String> {
    let bin = dir.join(out);
    if bin.exists() {
        return Ok(bin);
    }
    std::fs::create_dir_all(dir).map_err(|e| e.to_string())?;
    std::fs::write(dir.join("main.go"), FIXTURE).map_err(|e| e.to_string())?;
    std::fs::write(dir.join("go.mod"), GO_MOD).map_err(|e| e.to_string())?;
    let tmp = format!("{out}.tmp");
    go_build(go, dir, &tmp, args, cgo)?;
    std::fs::rename(dir.join(&tmp), &bin).map_err(|e| e.to_string())?;
    Ok(bin)
}

struct Bin {
    data: Vec<u8>,
}

impl Bin {
    fn load(path: &Path) -> Self {
        Self {
            data: std::fs::read(path).unwrap(),
        }
    }

    fn obj(&self) -> object::File<'_> {
        object::File::parse(&*self.data).unwrap()
    }

    fn section(&self, name: &str) -> Option<(u64, &[u8])> {
        let obj = self.obj();
        let s = obj.section_by_name(name)?;
        Some((s.address(), s.data().ok()?))
    }

    fn text_addr(&self) -> u64 {
        self.section(".text").unwrap().0
    }

    fn pclntab(&self) -> Pclntab<'_> {
        let (_, data) = self.section(".gopclntab").expect(".gopclntab");
        Pclntab::parse(data, self.text_addr()).unwrap()
    }

    fn minor(&self) -> u32 {
        let (_, data) = self.section(".go.buildinfo").unwrap();
        let info = buildinfo::parse(data).unwrap();
        GoVersion::parse(&info.go_version).unwrap().minor
    }

    /// Every sized function symbol in `.symtab`, by name, in address order.
    fn symtab(&self) -> HashMap<String, Vec<FuncSym>> {
        let mut map: HashMap<String, Vec<FuncSym>> = HashMap::new();
        for s in self.obj().symbols() {
            if s.kind() != SymbolKind::Text || s.size() == 0 {
                continue;
            }
            let Ok(name) = s.name() else { continue };
            map.entry(name.to_owned()).or_default().push(FuncSym {
                address: s.address(),
                size: s.size(),
            });
        }
        for syms in map.values_mut() {
            syms.sort_by_key(|s| s.address);
        }
        map
    }

    /// The only function symbol called `name`.
    fn sym(&self, name: &str) -> FuncSym {
        match self.symtab().get(name).map(Vec::as_slice) {
            Some(&[one]) => one,
            other => panic!("{name}: {other:?}"),
        }
    }
}

fn targets(minor: u32) -> Vec<&'static str> {
    let grow = if minor >= 24 {
        "internal/runtime/maps.(*table).rehash"
    } else {
        "runtime.hashGrow"
    };
    vec![
        grow,
        "runtime.stopTheWorldWithSema",
        "runtime.startTheWorldWithSema",
        "runtime.mapassign_fast64",
        "runtime.gcMarkTermination",
        "main.main",
    ]
}

/// How Go 1.18–1.20 linkers store names with brackets: the outermost `[…]` becomes `[...]`.
fn abbreviated(name: &str) -> String {
    match (name.find('['), name.rfind(']')) {
        (Some(i), Some(j)) if j > i => format!("{}[...]{}", &name[..i], &name[j + 1..]),
        _ => name.to_owned(),
    }
}

fn expected_wrapper_id(minor: u32) -> u8 {
    match minor {
        ..=21 => 21,
        22..=24 => 22,
        _ => 23,
    }
}

/// `go tool nm -size`: name → (address, size).
fn go_nm(go: &Path, bin: &Path) -> HashMap<String, (u64, u64)> {
    let out = Command::new(go)
        .env("GOTOOLCHAIN", "local")
        .args(["tool", "nm", "-size"])
        .arg(bin)
        .output()
        .unwrap();
    assert!(out.status.success(), "go tool nm failed");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|line| {
            let mut f = line.split_whitespace();
            let addr = u64::from_str_radix(f.next()?, 16).ok()?;
            let size = f.next()?.parse().ok()?;
            let _kind = f.next()?;
            Some((f.collect::<Vec<_>>().join(" "), (addr, size)))
        })
        .collect()
}

#[test]
fn stripped_builds_resolve_like_the_symbol_table() {
    for (label, go) in &toolchains() {
        let dir = fixture_dir(label);
        let full = build(go, &dir, "full", &[], false).unwrap();
        let stripped = build(go, &dir, "stripped", &["-ldflags=-s -w"], false).unwrap();
        check_version(label, go, &full, &stripped);
        match build(go, &dir, "external", &["-ldflags=-linkmode=external"], true) {
            Ok(ext) => check_external(label, &ext),
            Err(why) => unavailable(&format!("Go {label}: no external-link build ({why})")),
        }
        check_compiler(label, go);
    }
}

/// The toolchain's own compiler: a large real program (tens of thousands of functions).
fn check_compiler(label: &str, go: &Path) {
    let out = Command::new(go)
        .env("GOTOOLCHAIN", "local")
        .args(["env", "GOTOOLDIR"])
        .output()
        .unwrap();
    let dir = String::from_utf8_lossy(&out.stdout).trim().to_owned();
    let bin = Bin::load(&Path::new(&dir).join("compile"));
    let symtab = bin.symtab();
    if symtab.is_empty() {
        eprintln!("note: Go {label}: compile has no .symtab, not checked");
        return;
    }
    let minor = bin.minor();
    let names = [
        "runtime.stopTheWorldWithSema",
        "runtime.gcMarkTermination",
        "runtime.mapassign_faststr",
        "cmd/compile/internal/ssa.Compile",
        "main.main",
    ];
    let start = std::time::Instant::now();
    let tab = bin.pclntab();
    let got = tab.functions(&names);
    let elapsed = start.elapsed();
    assert_eq!(got.len(), names.len(), "{label}: compile");
    for (name, sym) in got {
        assert_eq!(bin.sym(name), sym, "{label}: compile {name}");
    }
    let summary = check_all_symbols(label, minor, &tab, &symtab);
    eprintln!(
        "Go {label} compile ({} MB): parse + {} lookups {elapsed:?}; {summary}",
        bin.data.len() >> 20,
        names.len()
    );
}

fn check_version(label: &str, go: &Path, full_path: &Path, stripped_path: &Path) {
    let full = Bin::load(full_path);
    let stripped = Bin::load(stripped_path);
    assert!(
        stripped.obj().symbols().next().is_none(),
        "{label}: not stripped"
    );
    let minor = full.minor();
    let tab = stripped.pclntab();
    if minor >= 26 {
        assert_eq!(tab.header_text_start(), None, "{label}");
    } else {
        assert_eq!(
            tab.header_text_start(),
            Some(stripped.text_addr()),
            "{label}"
        );
    }
    assert_eq!(
        tab.wrapper_func_id(),
        Some(expected_wrapper_id(minor)),
        "{label}: wrapper funcID"
    );

    // The probe targets: identical to `.symtab` of the unstripped build and to `go tool nm`.
    let names = targets(minor);
    let elf = GoElf::parse("full", &full.data).unwrap();
    let mut want = elf.functions(&names);
    want.sort_by_key(|(n, _)| names.iter().position(|m| m == n));
    assert_eq!(want.len(), names.len(), "{label}: symtab lacks a target");
    assert_eq!(tab.functions(&names), want, "{label}");
    let nm = go_nm(go, full_path);
    for (name, s) in &want {
        assert_eq!(
            nm.get(*name),
            Some(&(s.address, s.size)),
            "{label}: nm {name}"
        );
    }

    let summary = check_all_symbols(label, minor, &tab, &full.symtab());
    eprintln!("Go {label} fixture: {summary}");
}

/// Every sized function in `.symtab` is found by address with its name and size, and every
/// name the pclntab holds more than once resolves like `.symtab` minus the ABI wrappers.
fn check_all_symbols(
    label: &str,
    minor: u32,
    tab: &Pclntab<'_>,
    symtab: &HashMap<String, Vec<FuncSym>>,
) -> String {
    let mut checked = 0;
    let mut no_pcsp = Vec::new();
    for (name, s) in symtab
        .iter()
        .flat_map(|(n, v)| v.iter().map(move |s| (n, s)))
    {
        let Some((pname, entry, end)) = tab.func_at(s.address) else {
            panic!("{label}: {name} at {:#x} is not in the pclntab", s.address);
        };
        assert_eq!(entry, s.address, "{label}: {name}");
        assert!(
            pname == name
                || name.strip_suffix(".abi0") == Some(pname)
                || (minor <= 20 && abbreviated(name) == pname)
                // The ELF symbol writer spells the middle dot as '.'.
                || *name == pname.replace('\u{b7}', "."),
            "{label}: {name} is {pname} in the pclntab"
        );
        if end - entry != s.size {
            // Linker-made markers (go:textfipsstart …) have no pcsp table; the gap is all there is.
            let i = (0..tab.func_count())
                .find(|&i| tab.bounds(i).map(|b| b.0) == Some(entry))
                .unwrap();
            let pcsp = tab.record(i).and_then(|r| tab.pcsp_extent(r, u64::MAX));
            assert!(
                pcsp.is_none() && s.size < end - entry,
                "{label}: size of {name}: {} in the pclntab, {} in .symtab",
                end - entry,
                s.size
            );
            no_pcsp.push(name.as_str());
        }
        checked += 1;
    }

    // A shared name resolves to what `.symtab` calls NAME (Go functions: the wrapper is
    // NAME.abi0) or NAME.abi0 (assembly bodies: the wrapper is NAME).
    let mut counts: HashMap<&str, usize> = HashMap::new();
    for i in 0..tab.func_count() {
        if let Some((n, _, _)) =
            tab.func_at(tab.text_start() + u64::from(tab.entry_off(i).unwrap()))
        {
            *counts.entry(n).or_default() += 1;
        }
    }
    let dups: Vec<&str> = counts
        .iter()
        .filter(|(_, c)| **c > 1)
        .map(|(n, _)| *n)
        .collect();
    let (mut go_body, mut asm_body, mut distinct) = (0, 0, 0);
    for name in &dups {
        let got: Vec<FuncSym> = tab.functions(&[name]).into_iter().map(|(_, s)| s).collect();
        let named = symtab.get(*name).cloned().unwrap_or_default();
        let abi0 = symtab
            .get(&format!("{name}.abi0"))
            .cloned()
            .unwrap_or_default();
        if !abi0.is_empty() && got == named {
            go_body += 1;
        } else if !named.is_empty() && got == abi0 {
            asm_body += 1;
        } else {
            assert!(got.len() > 1 && got == named, "{label}: {name}: {got:?}");
            distinct += 1;
        }
    }
    format!(
        "{} functions, {checked} symtab functions matched, {} shared names -> {go_body} Go \
         bodies + {asm_body} assembly bodies + {distinct} distinct same-name functions, \
         wrapper funcID {:?}, gap-sized markers {no_pcsp:?}",
        tab.func_count(),
        dups.len(),
        tab.wrapper_func_id()
    )
}

fn check_external(label: &str, ext: &Path) {
    let bin = Bin::load(ext);
    let minor = bin.minor();
    let obj = bin.obj();
    let runtime_text = obj
        .symbols()
        .find(|s| s.name() == Ok("runtime.text"))
        .unwrap()
        .address();
    let (pcln_addr, _) = bin.section(".gopclntab").unwrap();
    let tab = bin.pclntab();
    let module_section = if minor >= 26 {
        ".go.module"
    } else {
        ".noptrdata"
    };
    let (_, module) = bin.section(module_section).unwrap();
    assert_eq!(
        tab.moduledata_text(pcln_addr, module),
        Some(runtime_text),
        "{label}: moduledata text"
    );
    if minor >= 26 {
        // The `.text` section starts with C code: the caller's address is not runtime.text.
        assert_ne!(bin.text_addr(), runtime_text, "{label}");
    } else {
        assert_eq!(tab.header_text_start(), Some(runtime_text), "{label}");
    }
    let tab = tab.with_text_start(runtime_text);
    for (name, got) in tab.functions(&targets(minor)) {
        assert_eq!(bin.sym(name), got, "{label}: external {name}");
    }
    eprintln!(
        "Go {label} external link: .text {:#x}, runtime.text {runtime_text:#x} (from {module_section})",
        bin.text_addr()
    );
}
