//! Synthetic tables with file, line and inline information; real binaries are checked in
//! `inspect::symbolize`'s tests.

use super::super::{MAGIC_GO118, MAGIC_GO120, tests::put_uvarint};
use super::*;

/// A pc-value table: each `(value, end)` holds from the previous end (0 first) to `end`.
fn pcvalue_table(runs: &[(i32, u32)]) -> Vec<u8> {
    let (mut out, mut val, mut pc) = (Vec::new(), -1i32, 0u32);
    for &(v, end) in runs {
        let d = v - val;
        put_uvarint(&mut out, u64::from(((d << 1) ^ (d >> 31)) as u32));
        put_uvarint(&mut out, u64::from(end - pc));
        (val, pc) = (v, end);
    }
    out.push(0);
    out
}

struct Func {
    name: &'static str,
    entry: u32,
    size: u32,
    cu: u32,
    pcfile: Vec<(i32, u32)>,
    pcln: Vec<(i32, u32)>,
    /// `PCDATA_InlTreeIndex`; empty for none.
    inl_index: Vec<(i32, u32)>,
    /// `(callee name, parentPc)`; empty for no `FUNCDATA_InlTree`.
    inl_tree: Vec<(&'static str, i32)>,
}

struct Built {
    table: Vec<u8>,
    gofunc: Vec<u8>,
}

/// Header, funcnametab, cutab, filetab, pctab, functab + `_func` records (linker order), and
/// the gofunc area with the inline trees.
fn build(magic: u32, funcs: &[Func], cutab: &[u32], filetab: &[u8]) -> Built {
    let old = magic == MAGIC_GO118;
    let fixed = if old { 40 } else { 44 };
    let mut names = Vec::new();
    let name_off = |n: &str, names: &mut Vec<u8>| {
        let off = names.len() as u32;
        names.extend_from_slice(n.as_bytes());
        names.push(0);
        off
    };
    let mut pctab = vec![0u8];
    let mut gofunc = vec![0xEEu8; 8];
    let mut records = Vec::new();
    for f in funcs {
        let mut rec = vec![0u8; fixed];
        rec[0..4].copy_from_slice(&f.entry.to_le_bytes());
        rec[4..8].copy_from_slice(&name_off(f.name, &mut names).to_le_bytes());
        let mut table = |runs: &[(i32, u32)]| {
            if runs.is_empty() {
                return 0u32;
            }
            let off = pctab.len() as u32;
            pctab.extend(pcvalue_table(runs));
            off
        };
        let pcsp = table(&[(0, f.size)]);
        rec[16..20].copy_from_slice(&pcsp.to_le_bytes());
        rec[20..24].copy_from_slice(&table(&f.pcfile).to_le_bytes());
        rec[24..28].copy_from_slice(&table(&f.pcln).to_le_bytes());
        rec[32..36].copy_from_slice(&f.cu.to_le_bytes());
        // pcdata 0 and 1 absent, 2 = inline index.
        let inl = table(&f.inl_index);
        rec[28..32].copy_from_slice(&3u32.to_le_bytes());
        for off in [0, 0, inl] {
            rec.extend_from_slice(&u32::to_le_bytes(off));
        }
        rec[fixed - 1] = 4;
        let tree_off = if f.inl_tree.is_empty() {
            u32::MAX
        } else {
            gofunc.len() as u32
        };
        for (callee, parent) in &f.inl_tree {
            let name = name_off(callee, &mut names);
            let mut e = if old { vec![0u8; 20] } else { vec![0u8; 16] };
            let (n_at, p_at) = if old { (12, 16) } else { (4, 8) };
            e[n_at..n_at + 4].copy_from_slice(&name.to_le_bytes());
            e[p_at..p_at + 4].copy_from_slice(&parent.to_le_bytes());
            gofunc.extend(e);
        }
        for off in [u32::MAX, u32::MAX, u32::MAX, tree_off] {
            rec.extend_from_slice(&off.to_le_bytes());
        }
        records.push(rec);
    }
    let n = funcs.len();
    let functab_len = n * 8 + 4;
    let mut pcln = vec![0u8; functab_len];
    let mut rec_off = functab_len;
    for (i, (f, rec)) in funcs.iter().zip(&records).enumerate() {
        pcln[i * 8..i * 8 + 4].copy_from_slice(&f.entry.to_le_bytes());
        pcln[i * 8 + 4..i * 8 + 8].copy_from_slice(&(rec_off as u32).to_le_bytes());
        rec_off += rec.len();
    }
    let end = funcs.last().map_or(0, |f| f.entry + f.size);
    pcln[n * 8..n * 8 + 4].copy_from_slice(&end.to_le_bytes());
    pcln.extend(records.concat());

    let cutab: Vec<u8> = cutab.iter().flat_map(|v| v.to_le_bytes()).collect();
    let funcname_off = 72;
    let cu_off = funcname_off + names.len();
    let filetab_off = cu_off + cutab.len();
    let pctab_off = filetab_off + filetab.len();
    let pcln_off = pctab_off + pctab.len();
    let mut out = Vec::new();
    out.extend_from_slice(&magic.to_le_bytes());
    out.extend_from_slice(&[0, 0, 1, 8]);
    let words = [
        n as u64,
        cutab.len() as u64 / 4,
        0x40_1000,
        funcname_off as u64,
        cu_off as u64,
        filetab_off as u64,
        pctab_off as u64,
        pcln_off as u64,
    ];
    for w in words {
        out.extend_from_slice(&w.to_le_bytes());
    }
    for part in [&names[..], &cutab, filetab, &pctab, &pcln] {
        out.extend_from_slice(part);
    }
    Built { table: out, gofunc }
}

const T: u64 = 0x40_1000;

/// `main.outer` [0, 0x40) has `main.mid` inlined at 0x18..0x20 (called from line 12 at 0x22),
/// which has `main.leaf` inlined at 0x10..0x18 (called from line 21 at 0x1a); then a generic
/// function without inline tree, in a second compilation unit.
fn sample(magic: u32) -> Built {
    let outer = Func {
        name: "main.outer",
        entry: 0,
        size: 0x40,
        cu: 0,
        pcfile: vec![(0, 0x10), (1, 0x20), (0, 0x40)],
        pcln: vec![(10, 0x10), (20, 0x18), (21, 0x20), (12, 0x40)],
        inl_index: vec![(-1, 0x10), (1, 0x18), (0, 0x20), (-1, 0x40)],
        inl_tree: vec![("main.mid", 0x22), ("main.leaf", 0x1a)],
    };
    let generic = Func {
        name: "pkg.G[go.shape.int]",
        entry: 0x40,
        size: 0x200,
        cu: 2,
        pcfile: vec![(0, 0x200)],
        // A multi-byte PC delta and a line going backwards.
        pcln: vec![(300, 0x150), (7, 0x200)],
        inl_index: vec![],
        inl_tree: vec![],
    };
    build(
        magic,
        &[outer, generic],
        &[0, 5, 10, u32::MAX],
        b"a.go\0b.go\0c.go\0",
    )
}

fn frame(function: &str, file: &str, line: u32, inlined: bool) -> Frame {
    Frame {
        function: function.into(),
        file: file.into(),
        line,
        inlined,
    }
}

#[test]
fn expands_inlined_calls_innermost_first() {
    for magic in [MAGIC_GO120, MAGIC_GO118] {
        let b = sample(magic);
        let tab = Pclntab::parse(&b.table, 0).unwrap().with_gofunc(&b.gofunc);
        assert!(tab.has_gofunc());
        let chain = vec![
            frame("main.leaf", "b.go", 20, true),
            frame("main.mid", "b.go", 21, true),
            frame("main.outer", "a.go", 12, false),
        ];
        assert_eq!(tab.symbolize(T + 0x10), chain, "{magic:#x}");
        assert_eq!(tab.symbolize(T + 0x17), chain, "{magic:#x}");
        assert_eq!(
            tab.symbolize(T + 0x18),
            vec![
                frame("main.mid", "b.go", 21, true),
                frame("main.outer", "a.go", 12, false),
            ],
            "{magic:#x}"
        );
        assert_eq!(
            tab.symbolize(T + 0xf),
            vec![frame("main.outer", "a.go", 10, false)]
        );
        assert_eq!(
            tab.symbolize(T + 0x3f),
            vec![frame("main.outer", "a.go", 12, false)]
        );
        // Second CU: file index 0 is cutab[2].
        assert_eq!(
            tab.symbolize(T + 0x40 + 0x14f),
            vec![frame("pkg.G[...]", "c.go", 300, false)]
        );
        assert_eq!(
            tab.symbolize(T + 0x40 + 0x150),
            vec![frame("pkg.G[...]", "c.go", 7, false)]
        );
    }
}

#[test]
fn without_gofunc_only_the_physical_frame() {
    let b = sample(MAGIC_GO120);
    let tab = Pclntab::parse(&b.table, 0).unwrap();
    assert!(!tab.has_gofunc());
    // The line tables already describe the innermost call; only the names are lost.
    assert_eq!(
        tab.symbolize(T + 0x10),
        vec![frame("main.outer", "b.go", 20, false)]
    );
}

#[test]
fn outside_every_function_nothing() {
    let b = sample(MAGIC_GO120);
    let tab = Pclntab::parse(&b.table, 0).unwrap().with_gofunc(&b.gofunc);
    for pc in [0, T - 1, T + 0x240, u64::MAX] {
        assert!(tab.symbolize(pc).is_empty(), "{pc:#x}");
    }
}

/// A function `x` of `size` bytes without inlining.
fn plain(size: u32, pcfile: Vec<(i32, u32)>, pcln: Vec<(i32, u32)>) -> Func {
    Func {
        name: "x",
        entry: 0,
        size,
        cu: 0,
        pcfile,
        pcln,
        inl_index: vec![],
        inl_tree: vec![],
    }
}

#[test]
fn missing_tables_give_unknown_file_and_line() {
    let no_pcfile = plain(0x10, vec![], vec![(5, 0x10)]);
    // A table that stops short of the PC.
    let short = plain(0x10, vec![(0, 0x10)], vec![(5, 0x8)]);
    for (f, cutab) in [
        (no_pcfile, 0),
        (short, 0),
        (plain(0x10, vec![(0, 0x10)], vec![(5, 0x10)]), u32::MAX),
    ] {
        // cutab slot ^0 (no file): the runtime's "?" too.
        let b = build(MAGIC_GO120, &[f], &[cutab], b"a.go\0");
        let tab = Pclntab::parse(&b.table, 0).unwrap();
        assert_eq!(tab.symbolize(T + 9), vec![frame("x", "?", 0, false)]);
    }
}

#[test]
fn a_self_referential_inline_tree_ends() {
    let f = Func {
        name: "loop",
        entry: 0,
        size: 0x10,
        cu: 0,
        pcfile: vec![(0, 0x10)],
        pcln: vec![(1, 0x10)],
        inl_index: vec![(0, 0x10)],
        inl_tree: vec![("again", 4)],
    };
    let b = build(MAGIC_GO120, &[f], &[0], b"a.go\0");
    let tab = Pclntab::parse(&b.table, 0).unwrap().with_gofunc(&b.gofunc);
    let frames = tab.symbolize(T);
    assert_eq!(frames.len(), MAX_INLINE_DEPTH + 1);
    assert_eq!(frames.last(), Some(&frame("loop", "a.go", 1, false)));
}

#[test]
fn names_print_like_the_runtime() {
    for (raw, printed) in [
        ("main.(*T).M", "main.(*T).M"),
        ("main.f.func1", "main.f.func1"),
        ("main.F[go.shape.int]", "main.F[...]"),
        ("main.F[...]", "main.F[...]"),
        ("main.F[go.shape.[]int,go.shape.string]", "main.F[...]"),
        (
            "main.(*T[go.shape.int]).M[go.shape.string]",
            "main.(*T[...]).M[...]",
        ),
        ("main.T[go.shape.int].M.func1", "main.T[...].M.func1"),
        ("type:.eq.[2]main.T", "type:.eq.[...]main.T"),
        // Malformed: left alone.
        ("a]b[", "a]b["),
        ("a[b]]c[d]", "a[b]]c[d]"),
        ("a[", "a["),
    ] {
        assert_eq!(name_for_print(raw), printed, "{raw}");
    }
}

#[test]
fn pcvalue_decodes_signed_deltas_and_quantum() {
    let runs = vec![(5, 3), (-2, 200), (70_000, 201), (0, 20_000)];
    let b = build(
        MAGIC_GO120,
        &[plain(20_000, vec![(0, 20_000)], runs)],
        &[0],
        b"a.go\0",
    );
    let tab = Pclntab::parse(&b.table, 0).unwrap();
    let line = |off: u64| tab.symbolize(T + off)[0].line;
    assert_eq!(
        [0, 2, 3, 199, 200, 201, 19_999].map(line),
        [5, 5, 0, 0, 70_000, 0, 0]
    );
    assert!(tab.symbolize(T + 20_000).is_empty());
    // Negative lines are not lines.
    assert_eq!(tab.symbolize(T + 3)[0].file, "?");
    // minLC 4 (arm64): PC deltas are in units of 4 bytes.
    let mut data = b.table.clone();
    data[6] = 4;
    let tab = Pclntab::parse(&data, 0).unwrap();
    let lines: Vec<u32> = [0, 11, 12].map(|o| tab.symbolize(T + o)[0].line).to_vec();
    assert_eq!(lines, [5, 5, 0]);
}

/// Every PC of the sample, plus a few outside it; the point is that nothing panics or loops.
fn exercise(table: &[u8], gofunc: &[u8]) {
    let Ok(tab) = Pclntab::parse(table, 0) else {
        return;
    };
    let tab = tab.with_gofunc(gofunc);
    for pc in (T - 2..T + 0x242).chain([0, u64::MAX]) {
        let frames = tab.symbolize(pc);
        assert!(frames.len() <= MAX_INLINE_DEPTH + 1);
        if let Some(last) = frames.last() {
            assert!(!last.inlined);
        }
    }
}

#[test]
fn corrupted_tables_and_funcdata_never_panic() {
    for magic in [MAGIC_GO120, MAGIC_GO118] {
        let b = sample(magic);
        let mut table = b.table.clone();
        for i in 0..table.len() {
            for v in [0x00, 0x01, 0x7f, 0x80, 0xff, b.table[i] ^ 0x10] {
                table[i] = v;
                exercise(&table, &b.gofunc);
            }
            table[i] = b.table[i];
        }
        let mut gofunc = b.gofunc.clone();
        for i in 0..gofunc.len() {
            for v in [0x00, 0x01, 0x7f, 0x80, 0xff] {
                gofunc[i] = v;
                exercise(&b.table, &gofunc);
            }
            gofunc[i] = b.gofunc[i];
        }
        for len in 0..b.table.len() {
            exercise(&b.table[..len], &b.gofunc);
        }
        for len in 0..b.gofunc.len() {
            exercise(&b.table, &b.gofunc[..len]);
        }
    }
}

/// Every byte `main.(*Store).Put` of a real binary depends on — its `_func` record, its
/// pc-value tables, its inline tree — set in turn to a few values: no panic, no hang, and the
/// physical frame always last.
#[test]
fn corrupted_real_function_never_panics() {
    use crate::inspect::symbolize::{Symbolizer, tests as fixture};
    let Some((label, path)) = fixture::newest_stripped_fixture() else {
        return;
    };
    let data = std::fs::read(path).unwrap();
    let elf = crate::inspect::GoElf::parse("fixture", &data).unwrap();
    let sym = Symbolizer::for_elf(&elf, fixture::go_minor(&elf)).unwrap();
    let base = sym.table().clone();
    let (i, entry, end) = base
        .index_at(base.functions(&["main.(*Store).Put"])[0].1.address)
        .unwrap();
    let pcs: Vec<u64> = (entry..end).collect();
    let depth: usize = pcs.iter().map(|&pc| base.symbolize(pc).len()).sum();
    assert!(depth > pcs.len(), "{label}: Put has no inlined calls");

    let rec = base.record_with_tables(i).unwrap();
    let rec_at = rec.as_ptr() as usize - base.pcln.as_ptr() as usize;
    let npcdata = u32_at(rec, FUNC_NPCDATA).unwrap() as usize;
    let rec_len = base.func_fixed_size + 4 * (npcdata + usize::from(rec[base.func_fixed_size - 1]));
    // Each pc-value table runs to its terminating 0 after the first pair; bytes up to there.
    let tables: Vec<usize> = [FUNC_PCFILE, FUNC_PCLN]
        .iter()
        .map(|&f| u32_at(rec, f).unwrap())
        .chain((0..npcdata).map(|t| u32_at(rec, base.func_fixed_size + 4 * t).unwrap()))
        .filter(|&o| o != 0)
        .map(|o| o as usize)
        .collect();
    let tree = base.funcdata(rec, FUNCDATA_INL_TREE).unwrap();
    let tree_at = tree.as_ptr() as usize - base.gofunc.as_ptr() as usize;

    let check = |tab: &Pclntab<'_>| {
        for &pc in &pcs {
            let frames = tab.symbolize(pc);
            assert!(frames.len() <= MAX_INLINE_DEPTH + 1);
            // A corrupt record can also move the function's end before `pc`: no frames.
            assert!(frames.last().is_none_or(|f| !f.inlined));
        }
    };
    let values = |b: u8| [0x00, 0x01, 0x7f, 0x80, 0xff, b ^ 0x04];
    let mut pcln = base.pcln.to_vec();
    for at in rec_at..rec_at + rec_len {
        // The entry offset must still find this record, or there is nothing to check.
        if at < rec_at + 4 {
            continue;
        }
        for v in values(base.pcln[at]) {
            pcln[at] = v;
            check(&Pclntab {
                pcln: &pcln,
                ..base.clone()
            });
        }
        pcln[at] = base.pcln[at];
    }
    let mut pctab = base.pctab.to_vec();
    let mut mutated = 0;
    for &start in &tables {
        let len = base.pctab[start..]
            .windows(2)
            .position(|w| w[1] == 0)
            .unwrap_or(0)
            + 2;
        for at in start..(start + len).min(pctab.len()) {
            for v in values(base.pctab[at]) {
                pctab[at] = v;
                check(&Pclntab {
                    pctab: &pctab,
                    ..base.clone()
                });
            }
            pctab[at] = base.pctab[at];
            mutated += 1;
        }
    }
    let mut gofunc = base.gofunc.to_vec();
    for at in tree_at..(tree_at + 16 * 8).min(gofunc.len()) {
        for v in values(base.gofunc[at]) {
            gofunc[at] = v;
            check(&Pclntab {
                gofunc: &gofunc,
                ..base.clone()
            });
        }
        gofunc[at] = base.gofunc[at];
    }
    eprintln!(
        "Go {label}: corrupted {rec_len} record bytes, {mutated} pc-value table bytes, 128 inline tree bytes of Put"
    );
}

#[test]
fn finds_gofunc_in_moduledata_per_layout() {
    let b = sample(MAGIC_GO120);
    let tab = Pclntab::parse(&b.table, 0).unwrap();
    let header = 0x4b_0000u64;
    let word = |bytes: &[u8], i: usize| u64::from_le_bytes(bytes[i..i + 8].try_into().unwrap());
    for (minor, at) in [(19, 38), (21, 40), (26, 40), (27, 43)] {
        let mut md = [0u64; 48];
        md[0] = header;
        md[1] = header + word(&b.table, 32);
        md[16] = header + word(&b.table, 64);
        md[17] = 3;
        md[20] = T;
        md[21] = T + 0x240;
        md[22] = T;
        md[at - 1] = 0x48_0000;
        md[at] = 0x49_0000;
        let mut module = vec![0x55u8; 40];
        for w in md {
            module.extend_from_slice(&w.to_le_bytes());
        }
        assert_eq!(
            tab.moduledata_gofunc(&module, minor),
            Some(0x49_0000),
            "1.{minor}"
        );
        // Another version's layout reads other words, which fail the rodata check.
        let other = if minor == 27 { 21 } else { 27 };
        assert_eq!(
            tab.moduledata_gofunc(&module, other),
            None,
            "1.{minor} as 1.{other}"
        );
        // A module data for another table is not this one's.
        let mut wrong = module.clone();
        wrong[40 + 17 * 8] = 4;
        assert_eq!(tab.moduledata_gofunc(&wrong, minor), None);
        for len in 0..module.len() {
            let _ = tab.moduledata_gofunc(&module[..len], minor);
        }
    }
}
