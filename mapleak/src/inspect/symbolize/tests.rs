//! Stripped binaries from every installed Go toolchain, symbolized and compared with three
//! oracles: the fixture's own `runtime.CallersFrames` (full inline chains at call sites, and
//! the innermost frame at every instruction of chosen functions) and `go tool addr2line` on
//! the unstripped twin (debug/gosym: physical function and innermost file:line).

use std::fmt::Write as _;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Mutex;

use iced_x86::{Decoder, DecoderOptions};
use object::{Object, ObjectSection};

use super::{Frame, Symbolizer};
use crate::inspect::testgo::{go_build, go_cmd, toolchains, unavailable};
use crate::inspect::{GoElf, GoVersion, buildinfo};

const FIXTURE: &str = r#"package main

import (
	"bufio"
	"fmt"
	"os"
	"reflect"
	"runtime"
	"strconv"
)

type Store struct {
	m     map[int]int
	total int
}

// leaf is small enough to be inlined everywhere.
func leaf(x int) int { return x*3 + 1 }

// inner is inlined into middle, which is inlined into (*Store).Put.
func inner(k int) int {
	if k == 3 {
		snap("inlined")
	}
	return leaf(k)
}

func middle(k int) int { return inner(k) + 1 }

//go:noinline
func (s *Store) Put(k int) {
	s.m[k] = middle(k)
	s.total += leaf(k)
}

func Sum[T int | float64](xs []T) T {
	var t T
	for _, x := range xs {
		t += x + T(leaf(1))
	}
	snap("generic")
	return t
}

//go:noinline
func apply(f func(int) int, x int) int { return f(x) }

type Namer interface{ Name() string }

type V struct{ n int }

// Name is reached through the compiler-generated wrapper main.(*V).Name, which tracebacks hide.
//
//go:noinline
func (v V) Name() string {
	snap("wrapper")
	return "v"
}

// A package variable: no devirtualization, the call goes through the itab.
var namer Namer = &V{1}

// snap prints its caller's stack, one line per logical frame, as the runtime sees it.
//
//go:noinline
func snap(tag string) {
	pcs := make([]uintptr, 64)
	pcs = pcs[:runtime.Callers(2, pcs)]
	fmt.Printf("block %s\n", tag)
	frames := runtime.CallersFrames(pcs)
	for i := 0; i < len(pcs); i++ {
		f, more := frames.Next()
		fmt.Printf("frame %#x %#x %v %s\t%s\t%d\n", pcs[i], f.Entry, f.Func == nil, f.Function, f.File, f.Line)
		if !more {
			break
		}
	}
}

// lookup prints the runtime's innermost frame at each instruction address read from stdin.
func lookup() {
	in := bufio.NewScanner(os.Stdin)
	for in.Scan() {
		pc, err := strconv.ParseUint(in.Text(), 0, 64)
		if err != nil {
			continue
		}
		// A return address, as Callers would store it: CallersFrames looks up pc-1.
		f, _ := runtime.CallersFrames([]uintptr{uintptr(pc) + 1}).Next()
		fmt.Printf("%#x %v %s\t%s\t%d\n", pc, f.Func == nil, f.Function, f.File, f.Line)
	}
}

func main() {
	if len(os.Args) > 1 {
		lookup()
		return
	}
	fmt.Printf("main %#x\n", reflect.ValueOf(main).Pointer())
	s := &Store{m: make(map[int]int)}
	for i := 0; i < 6; i++ {
		s.Put(i)
	}
	direct := func(x int) int {
		snap("closure-inlined")
		return x + 1
	}
	fmt.Println(direct(1), apply(func(x int) int {
		snap("closure")
		return x + s.total
	}, len(os.Args)), Sum([]int{1, 2}), Sum([]float64{1.5}), namer.Name())
}
"#;

const GO_MOD: &str = "module fixture\n\ngo 1.19\n";

/// Tests share fixture directories; one builds at a time.
static BUILDING: Mutex<()> = Mutex::new(());

/// The fixture's directory, emptied when it holds binaries of an older fixture source.
fn fixture_dir(label: &str) -> Result<PathBuf, String> {
    let _guard = BUILDING.lock().unwrap_or_else(|e| e.into_inner());
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../target/symbolize-fixtures")
        .join(label);
    if std::fs::read_to_string(dir.join("main.go")).ok().as_deref() != Some(FIXTURE) {
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
        std::fs::write(dir.join("go.mod"), GO_MOD).map_err(|e| e.to_string())?;
        std::fs::write(dir.join("main.go"), FIXTURE).map_err(|e| e.to_string())?;
    }
    Ok(dir)
}

/// Builds `name` (cached across runs) and its `strip`ped twin `name.stripped`: the same
/// bytes at the same addresses, minus `.symtab` and DWARF.
fn build(go: &Path, dir: &Path, name: &str, args: &[&str]) -> Result<(PathBuf, PathBuf), String> {
    let _guard = BUILDING.lock().unwrap_or_else(|e| e.into_inner());
    let full = dir.join(name);
    let stripped = dir.join(format!("{name}.stripped"));
    if full.exists() && stripped.exists() {
        return Ok((full, stripped));
    }
    let cgo = args.iter().any(|a| a.contains("external"));
    let tmp = format!("{name}.tmp");
    go_build(go, dir, &tmp, args, cgo)?;
    // The stripped twin first: `full` existing means both are complete.
    let out = Command::new("strip")
        .arg("-o")
        .arg(&stripped)
        .arg(dir.join(&tmp))
        .output()
        .map_err(|e| format!("strip: {e}"))?;
    if !out.status.success() {
        return Err(String::from_utf8_lossy(&out.stderr).into_owned());
    }
    std::fs::rename(dir.join(&tmp), &full).map_err(|e| e.to_string())?;
    Ok((full, stripped))
}

fn run(bin: &Path, args: &[&str], stdin: &str) -> String {
    let mut child = Command::new(bin)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut input = child.stdin.take().unwrap();
    let stdin = stdin.to_owned();
    let writer = std::thread::spawn(move || input.write_all(stdin.as_bytes()));
    let out = child.wait_with_output().unwrap();
    writer.join().unwrap().unwrap();
    assert!(out.status.success(), "{} failed", bin.display());
    String::from_utf8(out.stdout).unwrap()
}

fn minor(elf: &GoElf) -> u32 {
    let info = buildinfo::parse(elf.section(".go.buildinfo").unwrap()).unwrap();
    GoVersion::parse(&info.go_version).unwrap().minor
}

/// `inlined function\tfile\tline` as the fixture prints a runtime frame.
fn parse_frame(words: &mut std::str::SplitWhitespace, rest: &str) -> Frame {
    let inlined = words.next().unwrap() == "true";
    let function = words.next().unwrap().to_owned();
    let mut tail = rest.split('\t').skip(1);
    Frame {
        function,
        file: tail.next().unwrap().to_owned(),
        line: tail.next().unwrap().parse().unwrap(),
        inlined,
    }
}

fn hex(s: &str) -> u64 {
    u64::from_str_radix(s.trim_start_matches("0x"), 16).unwrap()
}

/// One frame of a `runtime.Callers` stack: its PC (return address, or inline position + 1)
/// and what `CallersFrames` made of it.
struct Logical {
    pc: u64,
    entry: u64,
    frame: Frame,
}

/// The fixture's stacks, by block, and the run-time address of `main.main`.
fn parse_blocks(out: &str) -> (u64, Vec<(String, Vec<Logical>)>) {
    let mut main = 0;
    let mut blocks: Vec<(String, Vec<Logical>)> = Vec::new();
    for line in out.lines() {
        let mut words = line.split_whitespace();
        match words.next() {
            Some("main") => main = hex(words.next().unwrap()),
            Some("block") => blocks.push((words.next().unwrap().to_owned(), Vec::new())),
            Some("frame") => {
                let pc = hex(words.next().unwrap());
                let entry = hex(words.next().unwrap());
                let frame = parse_frame(&mut words, line);
                blocks
                    .last_mut()
                    .unwrap()
                    .1
                    .push(Logical { pc, entry, frame });
            }
            _ => {}
        }
    }
    (main, blocks)
}

#[test]
fn stripped_binaries_symbolize_like_the_runtime() {
    for (label, go) in &toolchains() {
        let dir = fixture_dir(label).unwrap();
        let (full, stripped) = build(go, &dir, "exe", &[]).unwrap();
        let summary = check_call_sites(label, &stripped);
        let every = check_every_instruction(label, go, &full, &stripped);
        eprintln!("Go {label} exe: {summary}; {every}");
        for (name, args) in [
            ("pie", &["-buildmode=pie"][..]),
            ("external", &["-ldflags=-linkmode=external"][..]),
            (
                "pie-external",
                &["-buildmode=pie", "-ldflags=-linkmode=external"][..],
            ),
        ] {
            match build(go, &dir, name, args) {
                Ok((_, stripped)) => {
                    let summary = check_call_sites(label, &stripped);
                    eprintln!("Go {label} {name}: {summary}");
                }
                Err(why) => unavailable(&format!("Go {label}: no {name} build ({why})")),
            }
        }
    }
}

/// Full inline chains at the fixture's call sites, from the stripped binary, equal what the
/// runtime printed; so do whole stacks through [`Symbolizer::stack`].
fn check_call_sites(label: &str, stripped: &Path) -> String {
    let data = std::fs::read(stripped).unwrap();
    let elf = GoElf::parse("stripped", &data).unwrap();
    assert!(!elf.has_symtab(), "{label}: not stripped");
    let mut sym = Symbolizer::for_elf(&elf, minor(&elf)).unwrap();
    assert!(sym.has_inline_info(), "{label}: gofunc not found");
    let (main_rt, blocks) = parse_blocks(&run(stripped, &[], ""));
    let main_link = sym.table().functions(&["main.main"])[0].1.address;
    // PIEs run at a load bias.
    let bias = main_rt.wrapping_sub(main_link);
    let (mut groups, mut deepest) = (0, 0);
    let mut seen = Vec::new();
    for (tag, logical) in &blocks {
        // Consecutive frames up to a non-inlined one are one physical frame; the first PC of
        // each is the return address.
        let mut physical: Vec<&[Logical]> = Vec::new();
        let mut start = 0;
        for (k, l) in logical.iter().enumerate() {
            if !l.frame.inlined {
                physical.push(&logical[start..=k]);
                start = k + 1;
            }
        }
        assert_eq!(start, logical.len(), "{label} {tag}: ends inlined");
        let mut returns = Vec::new();
        let mut all = Vec::new();
        for group in &physical {
            let ret = group[0].pc.wrapping_sub(bias);
            let want: Vec<Frame> = group.iter().map(|l| l.frame.clone()).collect();
            assert_eq!(sym.frames(ret - 1), &want[..], "{label} {tag} at {ret:#x}");
            let (_, entry, _) = sym.table().func_at(ret - 1).unwrap();
            assert_eq!(entry, group[0].entry.wrapping_sub(bias), "{label} {tag}");
            seen.extend(want.iter().map(|f| f.function.clone()));
            deepest = deepest.max(want.len());
            returns.push(ret);
            all.extend(want);
            groups += 1;
        }
        // The kernel's view: where the thread is (exact), then return addresses.
        returns[0] -= 1;
        if tag == "wrapper" {
            // The runtime hid the wrapper's frame; the kernel sees it, and so does `frames`.
            let ret = wrapper_return(&sym, &elf, "main.(*V).Name", "main.V.Name");
            let want = Frame {
                function: "main.(*V).Name".into(),
                file: "<autogenerated>".into(),
                line: 1,
                inlined: false,
            };
            assert_eq!(sym.frames(ret - 1), [want], "{label}");
            returns.insert(1, ret);
        }
        assert_eq!(sym.stack(&returns), all, "{label} {tag}: stack");
    }
    for name in [
        "main.inner",
        "main.middle",
        "main.(*Store).Put",
        "main.main.func1",
        "main.main.func2",
        "main.Sum[...]",
        "main.V.Name",
        "runtime.main",
    ] {
        assert!(seen.iter().any(|s| s == name), "{label}: {name} not seen");
    }
    assert!(deepest >= 3, "{label}: no two-level inlining");
    format!(
        "{} stacks, {groups} physical frames like CallersFrames (deepest {deepest})",
        blocks.len()
    )
}

/// The return address of `wrapper`'s call to `callee`.
fn wrapper_return(sym: &Symbolizer, elf: &GoElf, wrapper: &str, callee: &str) -> u64 {
    let found = sym.table().functions(&[wrapper, callee]);
    let (w, c) = (found[0].1, found[1].1);
    let text = elf.object().section_by_name(".text").unwrap();
    let code = &text.data().unwrap()[(w.address - text.address()) as usize..][..w.size as usize];
    let mut decoder = Decoder::with_ip(64, code, w.address, DecoderOptions::NONE);
    decoder
        .iter()
        .find(|i| i.is_call_near() && i.near_branch_target() == c.address)
        .map(|i| i.next_ip())
        .unwrap()
}

/// Instruction addresses of the function starting at `entry`.
fn instructions(text_addr: u64, text: &[u8], entry: u64, end: u64) -> Vec<u64> {
    let code = &text[(entry - text_addr) as usize..(end - text_addr) as usize];
    let mut decoder = Decoder::with_ip(64, code, entry, DecoderOptions::NONE);
    let mut pcs = Vec::new();
    while decoder.can_decode() {
        pcs.push(decoder.decode().ip());
    }
    pcs
}

/// Every instruction of `main.*` and `runtime.mapassign_fast64` against the runtime's own
/// innermost frame; every 7th instruction of the whole program against `go tool addr2line`.
fn check_every_instruction(label: &str, go: &Path, full: &Path, stripped: &Path) -> String {
    let data = std::fs::read(stripped).unwrap();
    let elf = GoElf::parse("stripped", &data).unwrap();
    let mut sym = Symbolizer::for_elf(&elf, minor(&elf)).unwrap();
    let text = elf.object().section_by_name(".text").unwrap();
    let (text_addr, text_bytes) = (text.address(), text.data().unwrap());
    let (mut chosen, mut sampled) = (Vec::new(), Vec::new());
    let mut pc = text_addr;
    let mut count = 0usize;
    while pc < text_addr + text_bytes.len() as u64 {
        let Some((name, entry, end)) = sym.table().func_at(pc) else {
            pc += 1;
            continue;
        };
        let all = instructions(text_addr, text_bytes, entry, end);
        if name.starts_with("main.") || name == "runtime.mapassign_fast64" {
            // CallersFrames looks up pc+1-1 in the function containing pc+1: not this one
            // when pc+1 is the next function's entry.
            chosen.extend(all.iter().copied().filter(|&p| p + 1 < end));
        }
        for &p in &all {
            if count.is_multiple_of(7) {
                sampled.push(p);
            }
            count += 1;
        }
        pc = end;
    }

    // The runtime's innermost frame at each chosen instruction.
    let mut input = String::new();
    for pc in &chosen {
        writeln!(input, "{pc:#x}").unwrap();
    }
    let out = run(stripped, &["lookup"], &input);
    let mut inlined = 0;
    for (line, &pc) in out.lines().zip(&chosen) {
        let mut words = line.split_whitespace();
        assert_eq!(hex(words.next().unwrap()), pc, "{label}");
        let want = parse_frame(&mut words, line);
        let got = sym.frames(pc);
        assert_eq!(got[0], want, "{label}: innermost frame at {pc:#x}");
        assert!(!got.last().unwrap().inlined, "{label}");
        inlined += usize::from(want.inlined);
    }
    assert_eq!(out.lines().count(), chosen.len(), "{label}");

    // debug/gosym: the physical function, and the innermost file and line.
    let mut input = String::new();
    for pc in &sampled {
        writeln!(input, "{pc:#x}").unwrap();
    }
    let mut child = go_cmd(go)
        .args(["tool", "addr2line"])
        .arg(full)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let writer = std::thread::spawn(move || stdin.write_all(input.as_bytes()));
    let out = child.wait_with_output().unwrap();
    writer.join().unwrap().unwrap();
    let out = String::from_utf8(out.stdout).unwrap();
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 2 * sampled.len(), "{label}: addr2line output");
    for (pair, &pc) in lines.chunks(2).zip(&sampled) {
        let got = sym.frames(pc);
        let (physical, innermost) = (got.last().unwrap(), &got[0]);
        // gosym prints stored names; the runtime elides type arguments as `[...]`.
        let stored = pair[0];
        // Linker markers (go:textfipsstart) have no pc-value tables: the runtime says "?:0",
        // while debug/gosym decodes from pctab offset 0 anyway and prints ":<garbage>".
        if innermost.file == "?" && pair[1].starts_with(':') {
            continue;
        }
        let base = |s: &str| s.split('[').next().unwrap_or_default().to_owned();
        assert_eq!(base(&physical.function), base(stored), "{label}: {pc:#x}");
        assert_eq!(
            format!("{}:{}", innermost.file, innermost.line),
            pair[1],
            "{label}: {stored} at {pc:#x}"
        );
    }
    format!(
        "{} instructions like the runtime's innermost frame ({inlined} in inlined code), {} \
         like addr2line",
        chosen.len(),
        sampled.len()
    )
}

/// The stripped `exe` fixture of the newest installed toolchain, for tests elsewhere; `None`
/// only when no toolchain is installed and none is required. A toolchain that fails to build
/// it fails the test.
pub(crate) fn newest_stripped_fixture() -> Option<(String, PathBuf)> {
    let (label, go) = toolchains().pop()?;
    let dir = fixture_dir(&label).unwrap_or_else(|why| panic!("Go {label}: {why}"));
    let (_, stripped) =
        build(&go, &dir, "exe", &[]).unwrap_or_else(|why| panic!("Go {label}: {why}"));
    Some((label, stripped))
}

pub(crate) fn go_minor(elf: &GoElf) -> u32 {
    minor(elf)
}
