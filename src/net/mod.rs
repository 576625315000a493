//! The reactor: sockets, protocols and timing; nothing about chat.

pub mod conn;
mod frame;
pub mod handler;
pub mod http;
pub mod lanes;
pub mod limits;
pub mod per_ip;
pub mod reactor;
pub mod reject;
pub mod signals;
pub mod slab;
pub mod timers;
pub mod upgrade;
pub mod ws;
