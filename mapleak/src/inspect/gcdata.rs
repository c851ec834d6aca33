//! Locating `runtime.memstats.numgc` without data symbols, so that stripped binaries get GC cycle
//! numbers too.
//!
//! `gcMarkTermination` ends a cycle with `memstats.numgc++` and, for forced cycles,
//! `memstats.numforcedgc++`: two RIP-relative `INCL`s of adjacent `uint32` fields, numgc first.
//! That pair is in every Go release mapleak supports; the tests check it against `.symtab`.

use iced_x86::{Code, Decoder, DecoderOptions, Instruction, Mnemonic, OpKind};

/// Link-time address of `memstats.numgc`, from the code of `runtime.gcMarkTermination`.
pub fn numgc_address(code: &[u8], address: u64) -> Option<u64> {
    let mut decoder = Decoder::with_ip(64, code, address, DecoderOptions::NONE);
    let mut insn = Instruction::default();
    let mut targets = Vec::new();
    while decoder.can_decode() {
        decoder.decode_out(&mut insn);
        if insn.code() == Code::INVALID {
            return None;
        }
        if insn.mnemonic() == Mnemonic::Inc
            && insn.op0_kind() == OpKind::Memory
            && insn.is_ip_rel_memory_operand()
            && insn.memory_size().size() == 4
        {
            targets.push(insn.ip_rel_memory_address());
        }
    }
    targets.sort_unstable();
    targets.dedup();
    targets.windows(2).find(|w| w[1] - w[0] == 4).map(|w| w[0])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_the_lower_of_two_adjacent_counters() {
        // incl 0x100(%rax); incl 0x14(%rip) → 0x101d; incl 0x6(%rip) → 0x1019 (= 0x1013 + 6)
        let code = [
            0xff, 0x80, 0x00, 0x01, 0x00, 0x00, // incl 0x100(%rax)
            0xff, 0x05, 0x11, 0x00, 0x00, 0x00, // incl 0x11(%rip): next ip 0x100c → 0x101d
            0xff, 0x05, 0x07, 0x00, 0x00, 0x00, // incl 0x7(%rip): next ip 0x1012 → 0x1019
            0xc3,
        ];
        assert_eq!(numgc_address(&code, 0x1000), Some(0x1019));
    }

    #[test]
    fn no_pair_no_answer() {
        let code = [0xff, 0x05, 0x11, 0x00, 0x00, 0x00, 0xc3];
        assert_eq!(numgc_address(&code, 0x1000), None);
        assert_eq!(numgc_address(&[0xff], 0x1000), None);
    }
}
