//! Locating `runtime.gcCPULimiter` without data symbols: the assist probes read its `enabled`
//! flag, to tell the calls the GC CPU limiter cut short from the others, and the GC cost probe
//! reads it at the end of each cycle.
//!
//! In a stripped binary it is decoded from the code two ways, each checked against `.symtab`
//! on every release from go1.19 to go1.27:
//! - `gcAssistAlloc` asks `gcCPULimiter.limiting()` (inlined: an atomic load of the `enabled`
//!   byte) before any other global it reads as a byte: its first `MOV r8, byte [rip+disp]`;
//! - the `runtime.gc*` functions pass it as the receiver of `gcCPULimiterState` methods
//!   ([`gccost::decoded_limiter`]).
//!
//! Where both find it they must agree, or neither is believed.

use iced_x86::{Decoder, DecoderOptions, Instruction, Mnemonic, OpKind};

use super::{GoElf, gccost, symbols};

/// `gcCPULimiterState.enabled`: an `atomic.Bool` at the same offset from go1.19 to go1.27.
pub const ENABLED_OFFSET: u64 = 4;

pub const SYMBOL: &str = "runtime.gcCPULimiter";

/// Link-time address of `runtime.gcCPULimiter`: `.symtab`'s, else decoded (see the module
/// comment), given the code of `gcAssistAlloc` and its address where it was found. A
/// disagreement between the two decodings is said in `notes`.
pub fn address(
    elf: &GoElf,
    assist_alloc: Option<(&[u8], u64)>,
    notes: &mut Vec<String>,
) -> Option<u64> {
    if let Some(symbol) = elf.data_symbol(SYMBOL) {
        return Some(symbol);
    }
    let from_assist = assist_alloc
        .and_then(|(code, at)| enabled_address(code, at))
        .and_then(|enabled| enabled.checked_sub(ENABLED_OFFSET));
    let from_methods = symbols::pclntab(elf)
        .ok()
        .and_then(|table| gccost::decoded_limiter(elf, &table));
    agreed(from_assist, from_methods).unwrap_or_else(|(a, b)| {
        notes.push(format!(
            "whether the GC CPU limiter is on is not known: {SYMBOL} decodes to {a:#x} from runtime.gcAssistAlloc but to {b:#x} from the runtime.gc* functions"
        ));
        None
    })
}

/// One address where both decodings found the same, or only one found any; both otherwise.
fn agreed(a: Option<u64>, b: Option<u64>) -> Result<Option<u64>, (u64, u64)> {
    match (a, b) {
        (Some(a), Some(b)) if a != b => Err((a, b)),
        (a, b) => Ok(a.or(b)),
    }
}

/// Link-time address of `gcCPULimiter.enabled`, from the code of `runtime.gcAssistAlloc`.
pub fn enabled_address(code: &[u8], address: u64) -> Option<u64> {
    let mut decoder = Decoder::with_ip(64, code, address, DecoderOptions::NONE);
    let mut insn = Instruction::default();
    while decoder.can_decode() {
        decoder.decode_out(&mut insn);
        if insn.is_invalid() {
            return None;
        }
        if insn.mnemonic() == Mnemonic::Mov
            && insn.op_count() == 2
            && insn.op0_kind() == OpKind::Register
            && insn.op1_kind() == OpKind::Memory
            && insn.is_ip_rel_memory_operand()
            && insn.memory_size().size() == 1
        {
            return Some(insn.ip_rel_memory_address());
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn two_decodings_are_believed_only_where_they_agree() {
        assert_eq!(agreed(Some(8), Some(8)), Ok(Some(8)));
        assert_eq!(agreed(Some(8), None), Ok(Some(8)));
        assert_eq!(agreed(None, Some(9)), Ok(Some(9)));
        assert_eq!(agreed(None, None), Ok(None));
        assert_eq!(agreed(Some(8), Some(9)), Err((8, 9)));
    }

    #[test]
    fn the_first_byte_load_is_the_flag() {
        let code = [
            0x8b, 0x05, 0x10, 0x00, 0x00, 0x00, // mov eax, [rip+0x10]: a word, not the flag
            0x8a, 0x15, 0x69, 0x3a, 0x0e, 0x00, // mov dl, [rip+0xe3a69]: next ip 0x100c
            0x40, 0x8a, 0x35, 0x00, 0x01, 0x00, 0x00, // mov sil, [rip+0x100]
            0xc3,
        ];
        assert_eq!(enabled_address(&code, 0x1000), Some(0x100c + 0xe3a69));
        assert_eq!(enabled_address(&[0xc3], 0x1000), None);
    }

    /// On every installed Go: the byte decoded from `gcAssistAlloc` is `.symtab`'s
    /// `gcCPULimiter` plus the field's offset, and a stripped build is inspected to the same
    /// place.
    #[test]
    fn decoded_on_every_installed_go_matches_symtab() {
        use crate::inspect::{GoElf, inspect_bytes, testgo};

        let placed = testgo::placed;
        let mut checked = 0;
        for version in testgo::versions() {
            let Some((full, stripped)) = testgo::full_and_stripped(version) else {
                continue;
            };
            let data = std::fs::read(&full).expect("read fixture");
            let elf = GoElf::parse("full", &data).expect("parse");
            let want = elf.data_symbol(SYMBOL).expect("symbol") + ENABLED_OFFSET;
            let plan = inspect_bytes("full", &data).expect("inspect");
            assert_eq!(plan.limiter_enabled_address, Some(want), "Go {version}");
            let func = crate::inspect::symbols::resolve(&elf, &["runtime.gcAssistAlloc"])
                .expect("resolve")
                .functions[0]
                .1;
            let code = elf.code(func.address, func.size).expect("code");
            assert_eq!(
                enabled_address(code, func.address),
                Some(want),
                "Go {version}"
            );
            let stripped_data = std::fs::read(&stripped).expect("read stripped fixture");
            let stripped_elf = GoElf::parse("stripped", &stripped_data).expect("parse");
            let plan = inspect_bytes("stripped", &stripped_data).expect("inspect stripped");
            assert_eq!(
                plan.limiter_enabled_address
                    .map(|a| placed(&stripped_elf, a)),
                Some(placed(&elf, want)),
                "Go {version}"
            );
            checked += 1;
        }
        assert!(checked > 0, "no Go toolchain installed");
    }
}
