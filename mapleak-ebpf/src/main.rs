//! mapleak's kernel programs.
//!
//! Needs a kernel with BPF ring buffers (5.8+) and uprobes; every probe is attached by user space
//! at a post-prologue offset of a Go runtime function, scoped to the traced process.
#![no_std]
#![no_main]

#[macro_use]
mod program;

mod assign;
mod assist;
mod calibrate;
mod classic;
mod counters;
mod create;
mod evacuate;
mod exec;
mod gc;
mod go;
mod maps;
mod mem;
mod swiss;
mod types;

#[cfg(not(test))]
#[panic_handler]
fn panic(_info: &core::panic::PanicInfo) -> ! {
    loop {}
}

#[unsafe(link_section = "license")]
#[unsafe(no_mangle)]
static LICENSE: [u8; 13] = *b"Dual MIT/GPL\0";
