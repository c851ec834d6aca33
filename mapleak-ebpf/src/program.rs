//! Every uprobe program twice: once for a perf-event uprobe (`NAME`), once for a `uprobe.multi`
//! link (`NAME_m`, Linux 6.6+). User space loads the second where the kernel has it: a multi
//! link goes in and out in one system call with the program already on it, and is not a perf
//! event bound to the target's threads (which costs the target at every context switch while
//! attached), so switching a group on and off costs the target less; creating one also needs
//! no CAP_SYS_ADMIN.

/// `uprobe_program!(name, name_m, |ctx| { … })` defines both programs with the same body.
macro_rules! uprobe_program {
    ($(#[$doc:meta])* $name:ident, $multi:ident, |$ctx:ident| $body:block) => {
        $(#[$doc])*
        #[aya_ebpf::macros::uprobe]
        pub fn $name($ctx: aya_ebpf::programs::ProbeContext) -> u32 $body

        $(#[$doc])*
        #[aya_ebpf::macros::uprobe(multi)]
        pub fn $multi($ctx: aya_ebpf::programs::ProbeContext) -> u32 $body
    };
}
