//! mapleak: find the Go maps that grow, and what they cost.
//!
//! Data flows one way: [`inspect`] turns a Go binary into a probe plan (of the probes in
//! [`catalogue`]); [`trace`] loads the kernel programs and streams their events; [`decode`]
//! types them; [`aggregate`] keeps per-map state; [`report`] renders it.

pub mod aggregate;
pub mod catalogue;
pub mod cli;
pub mod decode;
pub mod inspect;
pub mod procs;
pub mod report;
pub mod trace;
