//! Locating `runtime.gcController` without data symbols, so that stripped binaries get the live
//! heap too.
//!
//! The runtime calls `gcControllerState` methods on its one global controller, and Go's register
//! ABI passes the receiver in RAX: `LEAQ runtime.gcController(SB), AX` right before
//! `CALL runtime.(*gcControllerState).<method>`. Which `runtime.gc*` functions do so changes
//! between releases (go1.19 before `trigger`, `revise`, `resetLive`…; go1.21+ also before
//! `heapGoalInternal` in `gcMarkTermination`), but every supported release has several, and
//! they all name the same address; the tests check it against `.symtab`.

use iced_x86::{
    Code, Decoder, DecoderOptions, Instruction, InstructionInfoFactory, Mnemonic, OpAccess, OpKind,
    Register,
};

use super::{GoElf, pclntab::Pclntab, symbols};

pub const SYMBOL: &str = "runtime.gcController";
/// The GC's own functions: calling the controller is their business, so nothing else is decoded.
const CALLERS: &str = "runtime.gc";
const METHODS: &str = "runtime.(*gcControllerState).";

/// Link-time address of `runtime.gcController`: `.symtab`'s, else decoded from the GC's code.
pub fn address(elf: &GoElf) -> Option<u64> {
    elf.data_symbol(SYMBOL)
        .or_else(|| decoded_address(elf, &symbols::pclntab(elf).ok()?))
}

/// The receiver the `runtime.gc*` functions most often pass to a `gcControllerState` method.
pub fn decoded_address(elf: &GoElf, table: &Pclntab) -> Option<u64> {
    let is_method = |target: u64| {
        table
            .func_at(target)
            .is_some_and(|(name, entry, _)| entry == target && name.starts_with(METHODS))
    };
    let mut found: Vec<u64> = table
        .functions_with_prefix(CALLERS)
        .into_iter()
        .filter_map(|(_, f)| Some((elf.code(f.address, f.size)?, f.address)))
        .flat_map(|(code, at)| receivers(code, at, is_method))
        .collect();
    most_frequent(&mut found)
}

/// Targets of every `LEA RAX, [RIP+disp]` directly followed by a `CALL` to an address
/// `is_method` accepts. Nothing from code that does not decode: it is not what it seems.
pub fn receivers(code: &[u8], address: u64, is_method: impl Fn(u64) -> bool) -> Vec<u64> {
    receivers_within(code, address, is_method, 0)
}

/// [`receivers`], with up to `between` instructions between the `LEA` and the `CALL` that
/// leave RAX alone: the compiler sets the other arguments there (`MOVL $1, BX`).
pub fn receivers_within(
    code: &[u8],
    address: u64,
    is_method: impl Fn(u64) -> bool,
    between: usize,
) -> Vec<u64> {
    let mut decoder = Decoder::with_ip(64, code, address, DecoderOptions::NONE);
    let mut info = InstructionInfoFactory::new();
    let mut insn = Instruction::default();
    // The receiver loaded, and how many instructions ago.
    let mut loaded: Option<(u64, usize)> = None;
    let mut found = Vec::new();
    while decoder.can_decode() {
        decoder.decode_out(&mut insn);
        if insn.code() == Code::INVALID {
            return Vec::new();
        }
        if let Some((receiver, _)) = loaded
            && insn.mnemonic() == Mnemonic::Call
            && insn.op0_kind() == OpKind::NearBranch64
            && is_method(insn.near_branch_target())
        {
            found.push(receiver);
        }
        loaded = match loaded {
            Some((receiver, n))
                if n < between
                    && insn.mnemonic() != Mnemonic::Call
                    && !writes_rax(&mut info, &insn) =>
            {
                Some((receiver, n + 1))
            }
            _ => None,
        };
        if insn.code() == Code::Lea_r64_m
            && insn.op0_register() == Register::RAX
            && insn.is_ip_rel_memory_operand()
        {
            loaded = Some((insn.ip_rel_memory_address(), 0));
        }
    }
    found
}

/// Whether `insn` may change any part of RAX.
fn writes_rax(info: &mut InstructionInfoFactory, insn: &Instruction) -> bool {
    info.info(insn).used_registers().iter().any(|r| {
        r.register().full_register() == Register::RAX
            && !matches!(r.access(), OpAccess::Read | OpAccess::NoMemAccess)
    })
}

/// The most common value; `None` on a tie, where picking one would be a guess.
pub(super) fn most_frequent(values: &mut [u64]) -> Option<u64> {
    values.sort_unstable();
    let mut best: Option<(u64, usize)> = None;
    let mut tied = false;
    for run in values.chunk_by(|a, b| a == b) {
        match best {
            Some((_, n)) if run.len() < n => {}
            Some((_, n)) if run.len() == n => tied = true,
            _ => {
                best = Some((run[0], run.len()));
                tied = false;
            }
        }
    }
    best.filter(|_| !tied).map(|(value, _)| value)
}

#[cfg(test)]
mod tests;
