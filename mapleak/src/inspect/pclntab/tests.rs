use super::*;

mod real;

thread_local! {
    /// Names read and pcsp tables decoded on this thread: how much work a lookup did, which
    /// unlike its duration does not depend on the machine.
    pub(super) static WORK: std::cell::Cell<(u64, u64)> = const { std::cell::Cell::new((0, 0)) };
}

/// One function of a synthetic table.
#[derive(Clone, Copy)]
struct F {
    name: &'static str,
    entry: u32,
    /// Code size recorded by the pcsp table; `None` writes no pcsp table.
    size: Option<u32>,
    func_id: u8,
}

fn f(name: &'static str, entry: u32, size: u32) -> F {
    F {
        name,
        entry,
        size: Some(size),
        func_id: 0,
    }
}

/// Go's uvarint, for the synthetic tables here and in the line-table tests.
pub(in crate::inspect::pclntab) fn put_uvarint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push(v as u8 | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

struct Table {
    magic: u32,
    ptr_size: usize,
    text_start: u64,
    funcs: Vec<F>,
    end: u32,
}

impl Table {
    fn new(funcs: Vec<F>, end: u32) -> Self {
        Self {
            magic: MAGIC_GO120,
            ptr_size: 8,
            text_start: 0x40_1000,
            funcs,
            end,
        }
    }

    /// Lays the tables out in the linker's order: header, funcnametab, cutab, filetab, pctab,
    /// functab + `_func` records.
    fn bytes(&self) -> Vec<u8> {
        let (id_off, rec_size) = if self.magic == MAGIC_GO118 {
            (36, 40)
        } else {
            (40, 44)
        };
        let mut names = Vec::new();
        let mut name_offs = Vec::new();
        for func in &self.funcs {
            name_offs.push(names.len() as u32);
            names.extend_from_slice(func.name.as_bytes());
            names.push(0);
        }
        // Offset 0 of pctab means "no table", as in Go.
        let mut pctab = vec![0u8];
        let mut pcsp_offs = Vec::new();
        for func in &self.funcs {
            match func.size {
                None => pcsp_offs.push(0),
                Some(size) => {
                    pcsp_offs.push(pctab.len() as u32);
                    // Two value changes, then the terminator.
                    pctab.push(2);
                    put_uvarint(&mut pctab, u64::from(size / 2));
                    pctab.push(16);
                    put_uvarint(&mut pctab, u64::from(size - size / 2));
                    pctab.push(0);
                }
            }
        }
        let n = self.funcs.len();
        let functab_len = n * 8 + 4;
        let mut pcln = vec![0u8; functab_len];
        for (i, func) in self.funcs.iter().enumerate() {
            let rec_off = (functab_len + i * rec_size) as u32;
            pcln[i * 8..i * 8 + 4].copy_from_slice(&func.entry.to_le_bytes());
            pcln[i * 8 + 4..i * 8 + 8].copy_from_slice(&rec_off.to_le_bytes());
        }
        pcln[n * 8..n * 8 + 4].copy_from_slice(&self.end.to_le_bytes());
        for (i, func) in self.funcs.iter().enumerate() {
            let mut rec = vec![0u8; rec_size];
            rec[0..4].copy_from_slice(&func.entry.to_le_bytes());
            rec[4..8].copy_from_slice(&name_offs[i].to_le_bytes());
            rec[16..20].copy_from_slice(&pcsp_offs[i].to_le_bytes());
            rec[id_off] = func.func_id;
            pcln.extend_from_slice(&rec);
        }

        let p = self.ptr_size;
        let header_len = 8 + 8 * p;
        let funcname_off = header_len;
        let cu_off = funcname_off + names.len();
        let filetab_off = cu_off + 4;
        let pctab_off = filetab_off + 1;
        let pcln_off = pctab_off + pctab.len();
        let mut out = Vec::new();
        out.extend_from_slice(&self.magic.to_le_bytes());
        out.extend_from_slice(&[0, 0, 1, p as u8]);
        let words = [
            n as u64,
            1,
            self.text_start,
            funcname_off as u64,
            cu_off as u64,
            filetab_off as u64,
            pctab_off as u64,
            pcln_off as u64,
        ];
        for w in words {
            out.extend_from_slice(&w.to_le_bytes()[..p]);
        }
        out.extend_from_slice(&names);
        out.extend_from_slice(&[0; 4]);
        out.push(0);
        out.extend_from_slice(&pctab);
        out.extend_from_slice(&pcln);
        out
    }
}

fn sample() -> Table {
    let mut c = f("main.c", 64, 0);
    c.size = None;
    Table::new(
        vec![
            f("runtime.a", 0, 30),
            f("main.b", 32, 20),
            c,
            f("main.d", 96, 300),
        ],
        396,
    )
}

fn sym(address: u64, size: u64) -> FuncSym {
    FuncSym { address, size }
}

#[test]
fn resolves_names_with_exact_sizes() {
    let data = sample().bytes();
    let tab = Pclntab::parse(&data, 0).unwrap();
    assert_eq!(tab.func_count(), 4);
    assert_eq!(tab.text_start(), 0x40_1000);
    assert_eq!(tab.header_text_start(), Some(0x40_1000));
    let got = tab.functions(&["main.b", "main.d", "nope", "main.c", "main.b", "runtime.a"]);
    assert_eq!(
        got,
        vec![
            ("main.b", sym(0x40_1020, 20)),
            // Multi-byte uvarint PC deltas; the last function ends where pcsp says.
            ("main.d", sym(0x40_1060, 300)),
            // No pcsp table: the functab gap, padding included.
            ("main.c", sym(0x40_1040, 32)),
            ("runtime.a", sym(0x40_1000, 30)),
        ]
    );
    // Prefixes and extensions of a name are different names.
    assert!(
        tab.functions(&["main.", "main.bb", "untime.a", ""])
            .is_empty()
    );
}

#[test]
fn zero_text_start_uses_the_callers_address() {
    let mut t = sample();
    t.text_start = 0;
    let data = t.bytes();
    let tab = Pclntab::parse(&data, 0x1000).unwrap();
    assert_eq!(tab.header_text_start(), None);
    assert_eq!(
        tab.functions(&["main.b"]),
        vec![("main.b", sym(0x1020, 20))]
    );
    let tab = tab.with_text_start(0x2000);
    assert_eq!(
        tab.functions(&["main.b"]),
        vec![("main.b", sym(0x2020, 20))]
    );
}

#[test]
fn pcsp_beyond_the_next_function_falls_back_to_the_gap() {
    let data = Table::new(vec![f("a", 0, 64), f("b", 32, 8)], 40).bytes();
    let tab = Pclntab::parse(&data, 0).unwrap();
    assert_eq!(tab.functions(&["a"]), vec![("a", sym(0x40_1000, 32))]);
}

fn with_ids(ids: &[(&'static str, u32, u8)]) -> Vec<F> {
    ids.iter()
        .map(|&(name, entry, func_id)| F {
            func_id,
            ..f(name, entry, 16)
        })
        .collect()
}

#[test]
fn abi_wrappers_lose_to_the_function_they_wrap() {
    for magic in [MAGIC_GO118, MAGIC_GO120] {
        let mut t = Table::new(
            with_ids(&[
                ("dup1", 0, 23),
                ("x", 32, 0),
                ("dup1", 64, 0),
                ("dup2", 96, 0),
                ("sys", 128, 20),
                ("dup2", 160, 23),
                ("sys2", 192, 23),
                ("sys2", 224, 19),
            ]),
            256,
        );
        t.magic = magic;
        let data = t.bytes();
        let tab = Pclntab::parse(&data, 0).unwrap();
        assert_eq!(tab.wrapper_func_id(), Some(23));
        let got = tab.functions(&["dup1", "dup2", "sys2"]);
        assert_eq!(
            got,
            vec![
                ("dup1", sym(0x40_1040, 16)),
                ("dup2", sym(0x40_1060, 16)),
                // An assembly body (special funcID) beats its ABIInternal wrapper.
                ("sys2", sym(0x40_10e0, 16)),
            ],
            "magic {magic:#x}"
        );
    }
}

#[test]
fn distinct_functions_sharing_a_name_are_all_returned() {
    let data = Table::new(
        with_ids(&[("d", 0, 0), ("w", 32, 23), ("d", 64, 0), ("d", 96, 23)]),
        128,
    )
    .bytes();
    let tab = Pclntab::parse(&data, 0).unwrap();
    assert_eq!(
        tab.functions(&["w", "d"]),
        vec![
            // Only a wrapper has this name, so the wrapper it is.
            ("w", sym(0x40_1020, 16)),
            ("d", sym(0x40_1000, 16)),
            ("d", sym(0x40_1040, 16)),
        ]
    );
    let data = Table::new(with_ids(&[("d", 0, 0), ("d", 32, 0)]), 64).bytes();
    let tab = Pclntab::parse(&data, 0).unwrap();
    assert_eq!(tab.wrapper_func_id(), None);
    assert_eq!(tab.functions(&["d"]).len(), 2);
}

#[test]
fn prefix_lookup_skips_wrappers_and_other_names() {
    let data = Table::new(
        with_ids(&[
            ("runtime.gcStart", 0, 0),
            ("runtime.gcStart", 32, 23),
            ("runtime.g", 64, 0),
            ("main.gcStart", 96, 0),
            ("runtime.gcDrain", 128, 0),
        ]),
        160,
    )
    .bytes();
    let tab = Pclntab::parse(&data, 0).unwrap();
    assert_eq!(
        tab.functions_with_prefix("runtime.gc"),
        vec![
            ("runtime.gcStart", sym(0x40_1000, 16)),
            ("runtime.gcDrain", sym(0x40_1080, 16)),
        ]
    );
    assert!(tab.functions_with_prefix("nope").is_empty());
}

#[test]
fn func_at_finds_the_enclosing_function() {
    let data = sample().bytes();
    let tab = Pclntab::parse(&data, 0).unwrap();
    let t = 0x40_1000;
    assert_eq!(tab.func_at(t), Some(("runtime.a", t, t + 30)));
    assert_eq!(tab.func_at(t + 29), Some(("runtime.a", t, t + 30)));
    // Alignment padding belongs to no function.
    assert_eq!(tab.func_at(t + 30), None);
    assert_eq!(tab.func_at(t + 32), Some(("main.b", t + 32, t + 52)));
    assert_eq!(tab.func_at(t + 95), Some(("main.c", t + 64, t + 96)));
    assert_eq!(tab.func_at(t + 395), Some(("main.d", t + 96, t + 396)));
    assert_eq!(tab.func_at(t + 396), None);
    assert_eq!(tab.func_at(t - 1), None);
    assert_eq!(tab.func_at(0), None);
    assert_eq!(tab.func_at(u64::MAX), None);
}

#[test]
fn func_at_with_a_first_function_after_text_start() {
    let data = Table::new(vec![f("a", 0x100, 16), f("b", 0x120, 16)], 0x130).bytes();
    let tab = Pclntab::parse(&data, 0).unwrap();
    assert_eq!(tab.func_at(0x40_1000), None);
    assert_eq!(tab.func_at(0x40_1100), Some(("a", 0x40_1100, 0x40_1110)));
    assert_eq!(tab.func_at(0x40_112f), Some(("b", 0x40_1120, 0x40_1130)));
}

#[test]
fn thirty_two_bit_tables_parse() {
    let mut t = sample();
    t.ptr_size = 4;
    let data = t.bytes();
    let tab = Pclntab::parse(&data, 0).unwrap();
    assert_eq!(
        tab.functions(&["main.b"]),
        vec![("main.b", sym(0x40_1020, 20))]
    );
}

#[test]
fn empty_table() {
    let data = Table::new(vec![], 0).bytes();
    let tab = Pclntab::parse(&data, 0).unwrap();
    assert_eq!(tab.func_count(), 0);
    assert!(tab.functions(&["x"]).is_empty());
    assert_eq!(tab.func_at(0x40_1000), None);
    assert_eq!(tab.moduledata_text(0x1000, &[0; 512]), None);
}

#[test]
fn refuses_other_magics() {
    let mut data = sample().bytes();
    for (magic, old) in [
        (MAGIC_GO116, true),
        (MAGIC_GO12, true),
        (0xFFFF_FFF2, false),
    ] {
        data[..4].copy_from_slice(&magic.to_le_bytes());
        let err = Pclntab::parse(&data, 0).unwrap_err();
        assert_eq!(matches!(err, InspectError::UnsupportedGo(_)), old, "{err}");
    }
    data[..4].copy_from_slice(&MAGIC_GO120.to_be_bytes());
    let err = Pclntab::parse(&data, 0).unwrap_err().to_string();
    assert!(err.contains("big-endian"), "{err}");
    assert_eq!(
        err,
        "the Go symbol table (.gopclntab) is corrupt (big-endian tables are not supported)"
    );
}

fn set_word(data: &mut [u8], i: usize, v: u64) {
    data[8 + 8 * i..16 + 8 * i].copy_from_slice(&v.to_le_bytes());
}

#[test]
fn refuses_impossible_counts_and_offsets() {
    for nfunc in [
        5,
        26,
        27,
        1 << 20,
        u64::from(u32::MAX),
        u64::MAX / 8,
        u64::MAX,
    ] {
        let mut data = sample().bytes();
        set_word(&mut data, 0, nfunc);
        let err = Pclntab::parse(&data, 0).unwrap_err().to_string();
        // 26 pairs fit in the bytes after the functab; more are refused before any is read.
        assert_eq!(err.contains("do not fit"), nfunc > 26, "{nfunc}: {err}");
    }
    for word in 3..8 {
        for bad in [0, 7, 1 << 40, u64::MAX] {
            let mut data = sample().bytes();
            set_word(&mut data, word, bad);
            assert!(Pclntab::parse(&data, 0).is_err(), "word {word} = {bad:#x}");
        }
    }
}

#[test]
fn refuses_inconsistent_functabs() {
    let out_of_order = Table::new(vec![f("a", 32, 8), f("b", 0, 8)], 64).bytes();
    assert!(Pclntab::parse(&out_of_order, 0).is_err());
    let end_before_last = Table::new(vec![f("a", 0, 8), f("b", 32, 8)], 16).bytes();
    assert!(Pclntab::parse(&end_before_last, 0).is_err());

    // A funcOff past the data, and a record whose entry disagrees with its functab slot.
    let t = sample();
    let good = t.bytes();
    let pcln = u64::from_le_bytes(good[64..72].try_into().unwrap()) as usize;
    let mut far = good.clone();
    far[pcln + 4..pcln + 8].copy_from_slice(&u32::MAX.to_le_bytes());
    assert!(Pclntab::parse(&far, 0).is_err());
    let mut moved = good.clone();
    moved[pcln + 8..pcln + 12].copy_from_slice(&33u32.to_le_bytes());
    let err = Pclntab::parse(&moved, 0).unwrap_err().to_string();
    assert!(err.contains("disagrees"), "{err}");
}

/// Runs every public entry point; the point is that none of them panics or loops.
fn exercise(data: &[u8]) {
    let Ok(tab) = Pclntab::parse(data, 0x1000) else {
        return;
    };
    let names = ["main.b", "main.d", "dup1", "runtime.a", ""];
    for (_, s) in tab.functions(&names) {
        assert!(s.address.checked_add(s.size).is_some());
    }
    for pc in [0, 0x1000, 0x40_1000, 0x40_1020, 0x40_1100, u64::MAX] {
        if let Some((_, entry, end)) = tab.func_at(pc) {
            assert!(entry <= pc && pc < end);
        }
    }
    let _ = tab.moduledata_text(0x50_0000, data);
}

#[test]
fn truncated_tables_never_panic() {
    let data = sample().bytes();
    for len in 0..data.len() {
        exercise(&data[..len]);
    }
    let mut t = sample();
    t.magic = MAGIC_GO118;
    let data = t.bytes();
    for len in 0..data.len() {
        exercise(&data[..len]);
    }
}

#[test]
fn corrupted_tables_never_panic() {
    let data = Table::new(
        with_ids(&[("dup1", 0, 23), ("x", 32, 0), ("dup1", 64, 0)]),
        200,
    )
    .bytes();
    let mut copy = data.clone();
    for i in 0..data.len() {
        for v in [0x00, 0x01, 0x7f, 0x80, 0xff, data[i] ^ 0x10] {
            copy[i] = v;
            exercise(&copy);
        }
        copy[i] = data[i];
    }
}

#[test]
fn finds_runtime_text_in_moduledata() {
    let mut t = sample();
    t.text_start = 0;
    let data = t.bytes();
    let tab = Pclntab::parse(&data, 0).unwrap();
    let pclntab_addr = 0x4a_0000u64;
    let text = 0x40_2400u64;
    let words = |i: usize, v: u64, md: &mut [u64]| md[i] = v;
    let mut md = [0u64; 30];
    words(MD_PCHEADER, pclntab_addr, &mut md);
    words(MD_FUNCNAMETAB, pclntab_addr + 72, &mut md);
    let pcln = u64::from_le_bytes(data[64..72].try_into().unwrap());
    words(MD_FTAB, pclntab_addr + pcln, &mut md);
    words(MD_FTAB_LEN, 5, &mut md);
    words(MD_MINPC, text, &mut md);
    words(MD_MAXPC, text + 396, &mut md);
    words(MD_TEXT, text, &mut md);
    let mut module = vec![0xAAu8; 24];
    // A decoy that points at the table but disagrees on the PC range.
    let mut decoy = md;
    decoy[MD_MAXPC] += 1;
    for w in decoy.iter().chain(md.iter()) {
        module.extend_from_slice(&w.to_le_bytes());
    }
    assert_eq!(tab.moduledata_text(pclntab_addr, &module), Some(text));
    assert_eq!(tab.moduledata_text(pclntab_addr + 8, &module), None);
    for len in 0..module.len() {
        let _ = tab.moduledata_text(pclntab_addr, &module[..len]);
    }
    let tab = tab.with_text_start(text);
    assert_eq!(
        tab.functions(&["main.b"]),
        vec![("main.b", sym(text + 32, 20))]
    );
}

#[test]
fn a_few_names_in_a_large_table_take_one_pass_over_the_names() {
    // ~60 MB pclntab for 400k functions, about the function count of a 100+ MB Go binary.
    const N: u32 = 400_000;
    static NAMES: std::sync::OnceLock<Vec<String>> = std::sync::OnceLock::new();
    let names = NAMES.get_or_init(|| {
        (0..N)
            .map(|i| format!("example.com/pkg{}.(*T).Method{i}", i % 97))
            .collect()
    });
    let funcs = names
        .iter()
        .enumerate()
        .map(|(i, n)| f(n.as_str(), i as u32 * 64, 48))
        .collect();
    let data = Table::new(funcs, N * 64).bytes();
    WORK.set((0, 0));
    let tab = Pclntab::parse(&data, 0).unwrap();
    assert_eq!(tab.func_count(), N as usize);
    // Parsing checks every name once and decodes no pcsp table.
    assert_eq!(WORK.replace((0, 0)), (u64::from(N), 0));
    let wanted = [
        names[7].as_str(),
        names[N as usize / 2].as_str(),
        names[N as usize - 1].as_str(),
        "runtime.hashGrow",
        "runtime.gcMarkTermination",
        "main.main",
    ];
    let got = tab.functions(&wanted);
    assert_eq!(got.len(), 3);
    assert_eq!(got[2].1, sym(0x40_1000 + u64::from(N - 1) * 64, 48));
    // Six names cost one pass over the functions' names, not one per name, and the sizes of
    // the three found only.
    assert_eq!(WORK.get(), (u64::from(N), 3));
}
