//! Where to put a probe in a Go function: after its stack-check prologue, and on each RET.
//!
//! A Go function starts with `CMPQ SP, 16(R14); JBE morestack` (or `LEAQ -N(SP), R12; CMPQ R12,
//! 16(R14); JBE …` for big frames). When the stack must grow the function re-runs from its entry,
//! so an entry probe can fire twice for one call; the first instruction after the branch runs once.

use iced_x86::{Code, Decoder, DecoderOptions, Instruction, Mnemonic, OpKind, Register};

/// How far into a function the stack check may be (instructions).
const PROLOGUE_WINDOW: usize = 8;
/// `g.stackguard0`, and `g.stackguard1` which system-stack functions (e.g.
/// `stopTheWorldWithSema`) check instead — the same offsets in every Go release.
const STACKGUARDS: [u64; 2] = [0x10, 0x18];

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FunctionLayout {
    /// Bytes from the entry to the first instruction after the stack check (0: no prologue).
    pub post_prologue: u64,
    /// Offsets of every RET instruction from the entry.
    pub rets: Vec<u64>,
}

/// Decodes `code` (the whole function, loaded at `address`).
pub fn analyze(code: &[u8], address: u64) -> Result<FunctionLayout, String> {
    let mut decoder = Decoder::with_ip(64, code, address, DecoderOptions::NONE);
    let mut insn = Instruction::default();
    let mut post_prologue = None;
    let mut saw_guard_cmp = false;
    let mut rets = Vec::new();
    let mut index = 0usize;
    while decoder.can_decode() {
        decoder.decode_out(&mut insn);
        if insn.code() == Code::INVALID {
            return Err(format!("undecodable instruction at {:#x}", insn.ip()));
        }
        if index < PROLOGUE_WINDOW && post_prologue.is_none() {
            if saw_guard_cmp {
                if !insn.is_jcc_short_or_near() {
                    return Err(format!(
                        "stack check at {:#x} is not followed by a branch",
                        insn.ip()
                    ));
                }
                post_prologue = Some(insn.next_ip() - address);
            } else if is_stackguard_cmp(&insn) {
                saw_guard_cmp = true;
            }
        }
        if insn.mnemonic() == Mnemonic::Ret {
            rets.push(insn.ip() - address);
        }
        index += 1;
    }
    if saw_guard_cmp && post_prologue.is_none() {
        return Err("function ends inside its stack check".into());
    }
    Ok(FunctionLayout {
        post_prologue: post_prologue.unwrap_or(0),
        rets,
    })
}

/// `CMP reg, [R14+0x10]` (or `+0x18`): a comparison against the current goroutine's stack guard.
fn is_stackguard_cmp(insn: &Instruction) -> bool {
    insn.mnemonic() == Mnemonic::Cmp
        && (0..insn.op_count()).any(|i| insn.op_kind(i) == OpKind::Memory)
        && insn.memory_base() == Register::R14
        && insn.memory_index() == Register::None
        && STACKGUARDS.contains(&insn.memory_displacement64())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn small_frame_prologue() {
        // cmp rsp,[r14+0x10]; jbe +0x10; push rbp; mov rbp,rsp; pop rbp; ret
        let code = [
            0x49, 0x3b, 0x66, 0x10, 0x76, 0x10, 0x55, 0x48, 0x89, 0xe5, 0x5d, 0xc3,
        ];
        let f = analyze(&code, 0x401000).unwrap();
        assert_eq!(f.post_prologue, 6);
        assert_eq!(f.rets, vec![11]);
    }

    #[test]
    fn big_frame_prologue() {
        // lea r12,[rsp-0x1000]; cmp r12,[r14+0x10]; jbe rel32; ret
        let code = [
            0x4c, 0x8d, 0xa4, 0x24, 0x00, 0xf0, 0xff, 0xff, 0x4d, 0x3b, 0x66, 0x10, 0x0f, 0x86,
            0x00, 0x00, 0x00, 0x00, 0xc3,
        ];
        let f = analyze(&code, 0x401000).unwrap();
        assert_eq!(f.post_prologue, 18);
        assert_eq!(f.rets, vec![18]);
    }

    #[test]
    fn system_stack_prologue_checks_stackguard1() {
        // lea r12,[rsp-0x18]; cmp r12,[r14+0x18]; jbe rel32; push rbp
        let code = [
            0x4c, 0x8d, 0x64, 0x24, 0xe8, 0x4d, 0x3b, 0x66, 0x18, 0x0f, 0x86, 0x0e, 0x04, 0x00,
            0x00, 0x55, 0xc3,
        ];
        let f = analyze(&code, 0x44a6c0).unwrap();
        assert_eq!(f.post_prologue, 15);
    }

    #[test]
    fn nosplit_function_has_no_prologue() {
        // mov rax,rbx; ret; ret
        let f = analyze(&[0x48, 0x89, 0xd8, 0xc3, 0xc3], 0x1000).unwrap();
        assert_eq!(f.post_prologue, 0);
        assert_eq!(f.rets, vec![3, 4]);
    }

    #[test]
    fn truncated_stack_check_is_an_error() {
        assert!(analyze(&[0x49, 0x3b, 0x66, 0x10], 0x1000).is_err());
        assert!(analyze(&[0x49, 0x3b, 0x66, 0x10, 0x90], 0x1000).is_err());
    }
}
