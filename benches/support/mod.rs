//! Shared by the WebSocket benches (`ws_echo`, `chat_rtt`): the server under test pinned to
//! one CPU and the client to the other, CPU readings from /proc, a one-thread mio client
//! with hand-built frames, and the tables.
#![allow(dead_code)] // each bench uses a different part of this module

pub mod args;
pub mod client;
pub mod echo;
pub mod idle;
pub mod mongo;
pub mod pace;
pub mod report;
pub mod system;
