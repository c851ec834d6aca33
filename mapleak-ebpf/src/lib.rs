#![no_std]
// Lets `mapleak`'s build script depend on this crate, so that editing kernel code reruns it.
