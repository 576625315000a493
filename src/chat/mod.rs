//! The chat domain: no sockets, no threads, no clocks of its own.

pub mod hub;
pub mod protocol;
