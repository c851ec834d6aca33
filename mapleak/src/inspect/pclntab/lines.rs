//! PC → function, file and line from the pc-value tables, the way the runtime's own
//! `runtime.CallersFrames` does it (runtime/symtab.go `funcline1`, `pcvalue`, `step`), so that
//! stripped binaries symbolize exactly like Go's tracebacks and `go tool pprof`.
//!
//! Every read is bounds-checked: a corrupt table yields `"?"` names/files, line 0, or fewer
//! inlined frames, never a panic.

use super::{Pclntab, u32_at, uvarint};

/// `_func` fields used here; the same byte offsets in the 1.18 and 1.20 layouts.
const FUNC_PCFILE: usize = 20;
const FUNC_PCLN: usize = 24;
const FUNC_NPCDATA: usize = 28;
const FUNC_CU_OFFSET: usize = 32;

/// `PCDATA_InlTreeIndex` and `FUNCDATA_InlTree`, unchanged since Go 1.12.
const PCDATA_INL_TREE_INDEX: u32 = 2;
const FUNCDATA_INL_TREE: u8 = 3;

/// Far deeper than any inlining the compiler does; only a corrupt tree gets here.
const MAX_INLINE_DEPTH: usize = 256;

/// One logical frame: a physical function, or a call inlined into it.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Frame {
    /// As `runtime.Frame.Function` prints it: `main.(*T).M`, `main.f.func1`, `pkg.F[...]`.
    pub function: String,
    /// `"?"` (and line 0) when the tables do not say, as in the runtime.
    pub file: String,
    pub line: u32,
    /// This call was inlined into the frame that follows it.
    pub inlined: bool,
}

/// One entry of the `FUNCDATA_InlTree` array (runtime `inlinedCall`).
struct InlinedCall {
    func_id: u8,
    name_off: i32,
    parent_pc: i32,
}

impl<'a> Pclntab<'a> {
    /// Frames for one PC, innermost first: inlined callees (`inlined: true`) then the physical
    /// function. Empty when `pc` is in no function.
    ///
    /// `pc` must be the address of an instruction. For a return address taken from a stack
    /// (every frame but the interrupted one), pass `ret - 1`, as the runtime does, or the line
    /// after the call (or even the next function) is reported.
    ///
    /// Without [`Pclntab::with_gofunc`] the inline tree cannot be read, and only the physical
    /// frame is returned (its file and line are still those of the innermost inlined call).
    pub fn symbolize(&self, pc: u64) -> Vec<Frame> {
        self.symbolize_marked(pc)
            .into_iter()
            .map(|(f, _)| f)
            .collect()
    }

    /// [`Pclntab::symbolize`], each frame marked when it is a wrapper (funcID
    /// [`Pclntab::wrapper_func_id`]): tracebacks leave those out.
    pub(crate) fn symbolize_marked(&self, pc: u64) -> Vec<(Frame, bool)> {
        let Some((i, entry, _)) = self.index_at(pc) else {
            return Vec::new();
        };
        let Some(rec) = self.record_with_tables(i) else {
            return Vec::new();
        };
        let is_wrapper = |id: Option<u8>| self.wrapper_id.is_some() && id == self.wrapper_id;
        let tree = self.funcdata(rec, FUNCDATA_INL_TREE);
        let mut frames = Vec::new();
        let mut off = pc - entry;
        // runtime inlineUnwinder: the inline index at a PC names the innermost inlined call;
        // its parentPc is a PC whose index (and file/line) is the caller's call site.
        while let Some(tree) = tree {
            if frames.len() >= MAX_INLINE_DEPTH {
                break;
            }
            let Some(call) = self
                .pcdata(rec, PCDATA_INL_TREE_INDEX, off)
                .and_then(|ix| self.inlined_call(tree, ix))
            else {
                break;
            };
            let frame = self.frame(rec, self.print_name(call.name_off), off, true);
            frames.push((frame, is_wrapper(Some(call.func_id))));
            match u64::try_from(call.parent_pc) {
                Ok(parent) => off = parent,
                Err(_) => break,
            }
        }
        let name = u32_at(rec, super::FUNC_NAME_OFF)
            .map_or_else(|| "?".to_owned(), |n| self.print_name(n as i32));
        let wrapper = is_wrapper(rec.get(self.func_id_off).copied());
        frames.push((self.frame(rec, name, off, false), wrapper));
        frames
    }

    fn frame(&self, rec: &[u8], function: String, off: u64, inlined: bool) -> Frame {
        let (file, line) = self.file_line(rec, off).unwrap_or(("?", 0));
        Frame {
            function,
            file: file.to_owned(),
            line,
            inlined,
        }
    }

    /// The `_func` record with its variable tail (pcdata and funcdata offsets), as far as the
    /// table holds it; [`Pclntab::record`] is only the fixed part.
    fn record_with_tables(&self, i: usize) -> Option<&'a [u8]> {
        let off = u32_at(self.pcln, i.checked_mul(8)?.checked_add(4)?)? as usize;
        let rec = self.pcln.get(off..)?;
        (rec.len() >= self.func_fixed_size).then_some(rec)
    }

    /// runtime `funcline1`: file and line at `off` bytes into the function.
    fn file_line(&self, rec: &[u8], off: u64) -> Option<(&'a str, u32)> {
        let fileno = self.pcvalue(u32_at(rec, FUNC_PCFILE)?, off)?;
        let line = self.pcvalue(u32_at(rec, FUNC_PCLN)?, off)?;
        let line = u32::try_from(line).ok()?;
        // cutab[cuOffset + fileno] is the file's offset in filetab; ^0 marks a missing file.
        let cu = u32_at(rec, FUNC_CU_OFFSET)?;
        let slot = cu.checked_add(u32::try_from(fileno).ok()?)? as usize;
        let file_off = u32_at(self.cutab, slot.checked_mul(4)?)?;
        Some((cstr(self.filetab, file_off as usize)?, line))
    }

    /// runtime `pcdatavalue`: the value of pcdata table `table` at `off`.
    fn pcdata(&self, rec: &[u8], table: u32, off: u64) -> Option<i32> {
        if table >= u32_at(rec, FUNC_NPCDATA)? {
            return None;
        }
        let at = self.func_fixed_size + 4 * table as usize;
        self.pcvalue(u32_at(rec, at)?, off)
    }

    /// runtime `funcdata`: the bytes at `gofunc + funcdata[i]`, if known.
    fn funcdata(&self, rec: &[u8], i: u8) -> Option<&'a [u8]> {
        // nfuncdata is the last byte of the fixed part, followed by the pcdata offsets.
        if i >= *rec.get(self.func_fixed_size - 1)? {
            return None;
        }
        let npcdata = u32_at(rec, FUNC_NPCDATA)? as usize;
        let at = npcdata
            .checked_add(usize::from(i))?
            .checked_mul(4)?
            .checked_add(self.func_fixed_size)?;
        match u32_at(rec, at)? {
            u32::MAX => None,
            off => self.gofunc.get(off as usize..).filter(|d| !d.is_empty()),
        }
    }

    /// Entry `ix` of an inline tree. Go 1.12–1.19 (`0xFFFFFFF0` tables here) use a 20-byte
    /// `{parent i16, funcID u8, _ u8, file, line, func_, parentPc int32}`; 1.20 replaced it
    /// with the 16-byte `{funcID u8, _ [3]u8, nameOff, parentPc, startLine int32}`.
    fn inlined_call(&self, tree: &[u8], ix: i32) -> Option<InlinedCall> {
        let (size, id_at, name_at, parent_at) = if self.func_fixed_size == 40 {
            (20, 2, 12, 16)
        } else {
            (16, 0, 4, 8)
        };
        let entry = tree.get(usize::try_from(ix).ok()?.checked_mul(size)?..)?;
        Some(InlinedCall {
            func_id: *entry.get(id_at)?,
            name_off: u32_at(entry, name_at)? as i32,
            parent_pc: u32_at(entry, parent_at)? as i32,
        })
    }

    /// runtime `pcvalue`: the value a pc-value table (at `table` in pctab) has at `off` bytes
    /// into the function; `None` for no table (offset 0) or a table that does not cover `off`.
    pub(super) fn pcvalue(&self, table: u32, off: u64) -> Option<i32> {
        if table == 0 {
            return None;
        }
        let mut p = self.pctab.get(table as usize..)?;
        let (mut pc, mut val) = (0u64, -1i32);
        // Pairs of (zig-zag value delta, pc delta / quantum); a 0 value delta ends the table,
        // except while still at the entry PC (runtime `step`'s `first`). Every step consumes
        // bytes, so this ends within the table.
        loop {
            if *p.first()? == 0 && pc != 0 {
                return None;
            }
            let (uv, n) = uvarint(p)?;
            p = p.get(n..)?;
            let uv = u32::try_from(uv).ok()?;
            val = val.wrapping_add((uv >> 1) as i32 ^ -((uv & 1) as i32));
            let (delta, n) = uvarint(p)?;
            p = p.get(n..)?;
            pc = pc.checked_add(delta.checked_mul(self.quantum)?)?;
            if off < pc {
                return Some(val);
            }
        }
    }

    /// A function name from funcnametab, as the runtime prints it; `"?"` if unreadable.
    fn print_name(&self, off: i32) -> String {
        usize::try_from(off)
            .ok()
            .and_then(|off| cstr(self.funcnametab, off))
            .map_or_else(|| "?".to_owned(), name_for_print)
    }
}

/// The `NUL`-terminated UTF-8 string at `off`.
fn cstr(tab: &[u8], off: usize) -> Option<&str> {
    let tail = tab.get(off..)?;
    let len = tail.iter().position(|&b| b == 0)?;
    std::str::from_utf8(&tail[..len]).ok()
}

/// runtime `funcNameForPrint` (Go 1.27's, which also covers generic methods): the type
/// arguments of generic instantiations, shape names like `go.shape.int`, become `...`.
/// Go 1.18–1.19 linkers already store names that way; the function leaves those alone.
pub(super) fn name_for_print(name: &str) -> String {
    let (Some(i), Some(j)) = (name.find('['), name.rfind(']')) else {
        return name.to_owned();
    };
    if j <= i {
        return name.to_owned();
    }
    let interior = &name[i + 1..j];
    if !interior.contains('[') {
        return format!("{}[...]{}", &name[..i], &name[j + 1..]);
    }
    // Either nested brackets in one type argument list (`F[go.shape.[]int]`), or a generic
    // method of a generic type (`T[go.shape.int].M[go.shape.string]`): find the `]` closing
    // the first list and the `[` opening the second, at depth 0 and 1.
    let mut depth = 1;
    let (mut rbr, mut lbr) = (None, None);
    for (k, c) in interior.char_indices() {
        match c {
            '[' => {
                depth += 1;
                if depth == 1 {
                    lbr = Some(k);
                    break;
                }
            }
            ']' => {
                depth -= 1;
                if depth < 0 {
                    break;
                }
                if depth == 0 {
                    rbr = Some(k);
                }
            }
            _ => {}
        }
    }
    if depth == 1 {
        match (rbr, lbr) {
            (Some(r), Some(l)) if l > r => {
                let between = &interior[r + 1..l];
                return format!("{}[...]{between}[...]{}", &name[..i], &name[j + 1..]);
            }
            (None, None) => return format!("{}[...]{}", &name[..i], &name[j + 1..]),
            _ => {}
        }
    }
    name.to_owned()
}

#[cfg(test)]
mod tests;
