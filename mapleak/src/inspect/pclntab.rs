//! `.gopclntab`: the runtime's own function table, which survives `-ldflags=-s -w` and `strip`.
//!
//! Layouts read here (little-endian, 32- or 64-bit pointers):
//!
//! * magic `0xFFFFFFF0`: Go 1.18–1.19, `_func.funcID` at byte 36;
//! * magic `0xFFFFFFF1`: Go 1.20 and later, `_func.startLine` added, `funcID` at byte 40.
//!
//! Older tables (Go ≤ 1.17) are refused: mapleak does not support those releases anyway.
//!
//! Where the table is: `.gopclntab`, except in PIEs from Go 1.18–1.25, where the header needs
//! a relocation and the section is `.data.rel.ro.gopclntab` (internal linking) or merged into
//! `.data.rel.ro` (external linking). Go 1.26 dropped that relocation: `.gopclntab` again.
//!
//! Everything is bounds-checked and [`Pclntab::parse`] validates every functab entry and
//! `_func` record once, so the lookups afterwards cannot run off the data either; corrupt input
//! yields `Err` (or fewer results), never a panic, and no allocation depends on header counts.

use super::InspectError;
use super::elf::FuncSym;

const MAGIC_GO118: u32 = 0xFFFF_FFF0;
const MAGIC_GO120: u32 = 0xFFFF_FFF1;
const MAGIC_GO116: u32 = 0xFFFF_FFFA;
const MAGIC_GO12: u32 = 0xFFFF_FFFB;

/// Byte offsets inside a `_func` record that are the same in every supported layout.
const FUNC_ENTRY_OFF: usize = 0;
const FUNC_NAME_OFF: usize = 4;
const FUNC_PCSP: usize = 16;

/// `runtime.moduledata` words (pointer-sized) used to find `runtime.text`; unchanged 1.19–1.27.
const MD_PCHEADER: usize = 0;
const MD_FUNCNAMETAB: usize = 1;
const MD_FTAB: usize = 16;
const MD_FTAB_LEN: usize = 17;
const MD_MINPC: usize = 20;
const MD_MAXPC: usize = 21;
const MD_TEXT: usize = 22;

/// A validated view of a `.gopclntab` section.
#[derive(Clone, Debug)]
pub struct Pclntab<'a> {
    ptr_size: usize,
    quantum: u64,
    nfunc: usize,
    /// Base of every entry offset: `runtime.text`.
    text_start: u64,
    header_text_start: Option<u64>,
    funcname_offset: u64,
    pcln_offset: u64,
    funcnametab: &'a [u8],
    /// Per compilation unit, `u32` offsets into `filetab` (file names for [`Pclntab::symbolize`]).
    cutab: &'a [u8],
    filetab: &'a [u8],
    pctab: &'a [u8],
    /// The functab (`nfunc` pairs plus the end-PC sentinel) followed by the `_func` records,
    /// which `funcOff` indexes from the start of this slice.
    pcln: &'a [u8],
    func_id_off: usize,
    func_fixed_size: usize,
    wrapper_id: Option<u8>,
    /// Memory from `moduledata.gofunc` on, which funcdata offsets index; empty when unknown
    /// (see [`Pclntab::with_gofunc`]).
    gofunc: &'a [u8],
}

fn corrupt(why: impl Into<String>) -> InspectError {
    InspectError::CorruptPclntab(why.into())
}

fn u32_at(b: &[u8], off: usize) -> Option<u32> {
    let bytes = b.get(off..off.checked_add(4)?)?;
    Some(u32::from_le_bytes(bytes.try_into().ok()?))
}

fn word_at(b: &[u8], off: usize, ptr_size: usize) -> Option<u64> {
    if ptr_size == 4 {
        return u32_at(b, off).map(u64::from);
    }
    let bytes = b.get(off..off.checked_add(8)?)?;
    Some(u64::from_le_bytes(bytes.try_into().ok()?))
}

/// Go's uvarint, refusing encodings longer than a u64.
fn uvarint(p: &[u8]) -> Option<(u64, usize)> {
    let mut v = 0u64;
    for (i, &b) in p.iter().enumerate().take(10) {
        v |= u64::from(b & 0x7f) << (7 * i);
        if b & 0x80 == 0 {
            return Some((v, i + 1));
        }
    }
    None
}

/// `NUL`-terminated name at the start of `tail`, compared without scanning for the terminator.
fn name_is(tail: &[u8], want: &[u8]) -> bool {
    tail.get(..want.len()) == Some(want) && tail.get(want.len()) == Some(&0)
}

/// The `NUL`-terminated name at the start of `tail`, if it is UTF-8.
fn name_str(tail: &[u8]) -> Option<&str> {
    let len = tail.iter().position(|&b| b == 0)?;
    std::str::from_utf8(tail.get(..len)?).ok()
}

impl<'a> Pclntab<'a> {
    /// Parses and validates the bytes of the `.gopclntab` section.
    ///
    /// Function addresses are `textStart + entryOff`. Go 1.18–1.25 record textStart in the
    /// header; it equals `runtime.text` (link-time address, also in PIE files), and is used.
    /// Go 1.26+ write 0 there, and `text_addr` is used instead: it must be `runtime.text`.
    /// The `.text` section address is `runtime.text` for internally linked programs (the
    /// default), but externally linked ones (cgo) start `.text` with C runtime code; for those
    /// find `runtime.text` with [`Pclntab::moduledata_text`] and [`Pclntab::with_text_start`].
    pub fn parse(data: &'a [u8], text_addr: u64) -> Result<Self, InspectError> {
        let magic = u32_at(data, 0).ok_or_else(|| corrupt("shorter than its header"))?;
        let (func_id_off, func_fixed_size) = match magic {
            // 1.18–1.19 `_func`: ..., cuOffset u32 @32, funcID u8 @36, flag, pad, nfuncdata.
            MAGIC_GO118 => (36, 40),
            // 1.20 inserted startLine i32 @36.
            MAGIC_GO120 => (40, 44),
            MAGIC_GO116 | MAGIC_GO12 => {
                return Err(InspectError::UnsupportedGo(
                    "go1.17 or older (pre-1.18 symbol table)".into(),
                ));
            }
            _ if matches!(
                magic.swap_bytes(),
                MAGIC_GO118 | MAGIC_GO120 | MAGIC_GO116 | MAGIC_GO12
            ) =>
            {
                return Err(corrupt("big-endian tables are not supported"));
            }
            _ => return Err(corrupt(format!("unknown magic {magic:#010x}"))),
        };
        let (pad, min_lc, ptr_size) = match data.get(4..8) {
            Some(&[p1, p2, lc, ps]) => (p1 | p2, lc, ps),
            _ => return Err(corrupt("shorter than its header")),
        };
        if pad != 0 || !matches!(min_lc, 1 | 2 | 4) || !matches!(ptr_size, 4 | 8) {
            return Err(corrupt("bad header flags"));
        }
        let ptr_size = usize::from(ptr_size);
        let word = |i: usize| {
            word_at(data, 8 + i * ptr_size, ptr_size).ok_or_else(|| corrupt("truncated header"))
        };
        let nfunc = word(0)?;
        let header_text_start = word(2)?;
        let offsets = [word(3)?, word(4)?, word(5)?, word(6)?, word(7)?];
        let [
            funcname_offset,
            cu_offset,
            filetab_offset,
            pctab_offset,
            pcln_offset,
        ] = offsets;
        let header_len = (8 + 8 * ptr_size) as u64;
        let len = data.len() as u64;
        if let Some(bad) = offsets.iter().find(|&&o| o < header_len || o > len) {
            return Err(corrupt(format!(
                "table offset {bad:#x} outside the section ({len:#x} bytes)"
            )));
        }
        // The linker writes the tables in header order, but nothing here relies on it: each
        // table ends where the next one (in address order) starts.
        let region = |start: u64| -> &'a [u8] {
            let end = offsets.iter().copied().filter(|&o| o > start).min();
            let (start, end) = (start as usize, end.unwrap_or(len) as usize);
            data.get(start..end).unwrap_or_default()
        };
        let pcln = region(pcln_offset);
        let max_nfunc = (pcln.len().saturating_sub(4) / 8) as u64;
        if nfunc > max_nfunc {
            return Err(corrupt(format!(
                "{nfunc} functions do not fit in {} bytes",
                pcln.len()
            )));
        }
        let mut tab = Self {
            ptr_size,
            quantum: u64::from(min_lc),
            nfunc: nfunc as usize,
            text_start: if header_text_start == 0 {
                text_addr
            } else {
                header_text_start
            },
            header_text_start: (header_text_start != 0).then_some(header_text_start),
            funcname_offset,
            pcln_offset,
            funcnametab: region(funcname_offset),
            cutab: region(cu_offset),
            filetab: region(filetab_offset),
            pctab: region(pctab_offset),
            pcln,
            func_id_off,
            func_fixed_size,
            wrapper_id: None,
            gofunc: &[],
        };
        tab.wrapper_id = tab.validate()?;
        Ok(tab)
    }

    /// Checks every entry once so lookups can trust the order and the record bounds; returns
    /// the largest funcID seen.
    fn validate(&self) -> Result<Option<u8>, InspectError> {
        let mut max_id = 0u8;
        let mut prev = 0u32;
        for i in 0..self.nfunc {
            let entry = self
                .entry_off(i)
                .ok_or_else(|| corrupt("truncated functab"))?;
            if entry < prev {
                return Err(corrupt(format!("functab entry {i} is out of order")));
            }
            prev = entry;
            let rec = self
                .record(i)
                .ok_or_else(|| corrupt(format!("function {i} lies outside the table")))?;
            if u32_at(rec, FUNC_ENTRY_OFF) != Some(entry) {
                return Err(corrupt(format!(
                    "function {i} disagrees with the functab on its entry"
                )));
            }
            if self.name_tail(rec).is_none() {
                return Err(corrupt(format!("function {i} has a bad name offset")));
            }
            max_id = max_id.max(rec.get(self.func_id_off).copied().unwrap_or(0));
        }
        let end = self
            .entry_off(self.nfunc)
            .ok_or_else(|| corrupt("truncated functab"))?;
        if end < prev {
            return Err(corrupt("functab end precedes the last function"));
        }
        // FuncIDWrapper is the last FuncID constant in every release (21 in 1.19 and 1.21, 22
        // in 1.22–1.24, 23 in 1.25–1.27), and every Go program has ABI or method wrappers, so
        // the largest funcID present is the wrapper ID without knowing the Go version.
        Ok((max_id > 0).then_some(max_id))
    }

    pub fn func_count(&self) -> usize {
        self.nfunc
    }

    /// The address function entry offsets are relative to (`runtime.text`).
    pub fn text_start(&self) -> u64 {
        self.text_start
    }

    /// textStart as recorded in the header; `None` when it is 0 (always so in Go 1.26+).
    pub fn header_text_start(&self) -> Option<u64> {
        self.header_text_start
    }

    /// The same table with functions placed relative to another `runtime.text`.
    pub fn with_text_start(mut self, text_start: u64) -> Self {
        self.text_start = text_start;
        self
    }

    /// Whether `_func` records have `startLine`: magic 0xFFFFFFF1, Go 1.20 and later.
    pub fn has_start_line(&self) -> bool {
        self.func_id_off == 40
    }

    /// funcID of ABI/method wrappers in this binary, if any function is marked special at all.
    pub fn wrapper_func_id(&self) -> Option<u8> {
        self.wrapper_id
    }

    /// Finds `runtime.text` in `runtime.firstmoduledata`, given the bytes of the section that
    /// holds it (`.go.module` in Go 1.26+, `.noptrdata` before) and the `.gopclntab` address.
    ///
    /// Needed for Go 1.26+ programs linked externally, whose `.text` does not start at
    /// `runtime.text` and whose header no longer records it. A candidate must point at this
    /// table, its name table and functab, and agree with the functab on the first and last PC.
    pub fn moduledata_text(&self, pclntab_addr: u64, module: &[u8]) -> Option<u64> {
        let p = self.ptr_size;
        let names = pclntab_addr.checked_add(self.funcname_offset)?;
        let ftab = pclntab_addr.checked_add(self.pcln_offset)?;
        let first = u64::from(self.entry_off(0)?);
        let last = u64::from(self.entry_off(self.nfunc)?);
        (0..module.len() / p).find_map(|w| {
            let word = |i: usize| word_at(module, (w + i) * p, p);
            if word(MD_PCHEADER)? != pclntab_addr
                || word(MD_FUNCNAMETAB)? != names
                || word(MD_FTAB)? != ftab
                || word(MD_FTAB_LEN)? != self.nfunc as u64 + 1
            {
                return None;
            }
            let text = word(MD_TEXT)?;
            (text.checked_add(first)? == word(MD_MINPC)?
                && text.checked_add(last)? == word(MD_MAXPC)?)
            .then_some(text)
        })
    }

    /// Looks up functions by exact name, like [`super::GoElf::functions`] does in `.symtab`.
    /// Results are grouped by name in the order of `names`, in address order within a name.
    ///
    /// An ABI wrapper shares its pclntab name with the function it wraps and is left out
    /// (for an assembly function called from Go, the body is returned, which `.symtab` names
    /// `NAME.abi0`); a wrapper is returned only if nothing else has its name. Distinct
    /// functions can share a name too (closures in large programs): all of them are returned,
    /// as `.symtab` lists all of them. `size` is the code size without alignment padding, as
    /// in `.symtab`.
    ///
    /// Names are spelled as the runtime prints them, which differs from `.symtab` in two ways:
    /// `·` stays `·` (the ELF writer turns it into `.`), and Go 1.19 stores bracketed names
    /// (generic instantiations, `type..eq.[2]T`) with the outermost brackets' contents elided,
    /// `pkg.F[...]`; 1.21+ store them in full (1.20 unchecked).
    pub fn functions<'n>(&self, names: &[&'n str]) -> Vec<(&'n str, FuncSym)> {
        // (index into names, function index, is a wrapper), in functab (= address) order.
        let mut matches = Vec::new();
        for i in 0..self.nfunc {
            let Some(rec) = self.record(i) else { continue };
            let Some(tail) = self.name_tail(rec) else {
                continue;
            };
            if let Some(k) = names.iter().position(|n| name_is(tail, n.as_bytes())) {
                matches.push((k, i, self.is_wrapper(rec)));
            }
        }
        let mut found = Vec::new();
        for (k, name) in names.iter().enumerate() {
            let mine = || matches.iter().filter(move |m| m.0 == k);
            let chosen: Vec<usize> = if mine().any(|m| !m.2) {
                mine().filter(|m| !m.2).map(|m| m.1).collect()
            } else {
                mine().map(|m| m.1).take(1).collect()
            };
            for i in chosen {
                if let Some((address, end)) = self.bounds(i) {
                    let size = end - address;
                    found.push((*name, FuncSym { address, size }));
                }
            }
        }
        found
    }

    /// Every function whose name starts with `prefix`, ABI wrappers left out (they only call
    /// the function they wrap), in address order, with sizes as [`Pclntab::functions`] gives.
    pub fn functions_with_prefix(&self, prefix: &str) -> Vec<(&'a str, FuncSym)> {
        (0..self.nfunc)
            .filter_map(|i| {
                let rec = self.record(i)?;
                let tail = self.name_tail(rec)?;
                if !tail.starts_with(prefix.as_bytes()) || self.is_wrapper(rec) {
                    return None;
                }
                let (address, end) = self.bounds(i)?;
                let size = end - address;
                Some((name_str(tail)?, FuncSym { address, size }))
            })
            .collect()
    }

    /// The function whose code contains `pc`: `(name, entry, end)`, `end` exclusive.
    ///
    /// `None` outside every function, in the alignment padding between two functions, and for
    /// names that are not UTF-8.
    pub fn func_at(&self, pc: u64) -> Option<(&'a str, u64, u64)> {
        let (i, entry, end) = self.index_at(pc)?;
        let name = name_str(self.name_tail(self.record(i)?)?)?;
        Some((name, entry, end))
    }

    /// Index, entry and exclusive end of the function whose code contains `pc`.
    fn index_at(&self, pc: u64) -> Option<(usize, u64, u64)> {
        let off = u32::try_from(pc.checked_sub(self.text_start)?).ok()?;
        if self.nfunc == 0 || off < self.entry_off(0)? || off >= self.entry_off(self.nfunc)? {
            return None;
        }
        // Invariant: entry(lo) <= off < entry(hi).
        let (mut lo, mut hi) = (0, self.nfunc);
        while hi - lo > 1 {
            let mid = lo + (hi - lo) / 2;
            if self.entry_off(mid)? <= off {
                lo = mid;
            } else {
                hi = mid;
            }
        }
        let (entry, end) = self.bounds(lo)?;
        (pc < end).then_some((lo, entry, end))
    }

    fn is_wrapper(&self, rec: &[u8]) -> bool {
        self.wrapper_id.is_some() && rec.get(self.func_id_off).copied() == self.wrapper_id
    }

    fn entry_off(&self, i: usize) -> Option<u32> {
        u32_at(self.pcln, i.checked_mul(8)?)
    }

    fn record(&self, i: usize) -> Option<&'a [u8]> {
        let off = u32_at(self.pcln, i.checked_mul(8)?.checked_add(4)?)? as usize;
        self.pcln.get(off..off.checked_add(self.func_fixed_size)?)
    }

    /// The name table from this function's name on (the name is `NUL`-terminated).
    fn name_tail(&self, rec: &[u8]) -> Option<&'a [u8]> {
        #[cfg(test)]
        tests::WORK.with(|w| w.set((w.get().0 + 1, w.get().1)));
        let off = usize::try_from(i32::from_le_bytes(
            rec.get(FUNC_NAME_OFF..FUNC_NAME_OFF + 4)?.try_into().ok()?,
        ))
        .ok()?;
        let tail = self.funcnametab.get(off..)?;
        tail.contains(&0).then_some(tail)
    }

    /// Entry address and exclusive end of function `i`.
    ///
    /// The functab only says where the next function starts, which includes the padding up to
    /// its alignment; the pcsp table covers exactly the function's code, so its extent is the
    /// size `.symtab` records. Falls back to the functab gap when pcsp is absent or implausible.
    fn bounds(&self, i: usize) -> Option<(u64, u64)> {
        let entry = self.entry_off(i)?;
        let gap = u64::from(self.entry_off(i.checked_add(1)?)?.checked_sub(entry)?);
        let size = match self.pcsp_extent(self.record(i)?, gap) {
            Some(n) if n > 0 => n,
            _ => gap,
        };
        let start = self.text_start.checked_add(u64::from(entry))?;
        Some((start, start.checked_add(size)?))
    }

    /// Sum of the PC deltas of the function's pcsp table, or `None` past `limit` bytes.
    fn pcsp_extent(&self, rec: &[u8], limit: u64) -> Option<u64> {
        #[cfg(test)]
        tests::WORK.with(|w| w.set((w.get().0, w.get().1 + 1)));
        let off = u32_at(rec, FUNC_PCSP)? as usize;
        if off == 0 {
            return None;
        }
        let mut p = self.pctab.get(off..)?;
        let mut pc = 0u64;
        let mut first = true;
        // Each step consumes at least two bytes, so this ends within the table.
        loop {
            // Like the runtime's pcvalue step: a single 0 byte in value position ends the table.
            if *p.first()? == 0 && !first {
                return Some(pc);
            }
            let (_, n) = uvarint(p)?;
            p = p.get(n..)?;
            let (delta, n) = uvarint(p)?;
            p = p.get(n..)?;
            pc = pc.checked_add(delta.checked_mul(self.quantum)?)?;
            if pc > limit {
                return None;
            }
            first = false;
        }
    }
}

// PC → function, file and line, inlined calls included: `Pclntab::symbolize`.
mod inline;
mod lines;

pub use lines::Frame;

#[cfg(test)]
mod tests;
