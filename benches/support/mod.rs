//! Shared by the WebSocket benches (`ws_echo`, `chat_rtt`): the server under test pinned to
//! one CPU and the client to the other, and the tables. The client itself (one-thread mio
//! loop, hand-built frames) and the /proc readings are `chatbox::bench`, which the
//! `chatbox-bench` tool runs too.
#![allow(dead_code)] // each bench uses a different part of this module

pub mod args;
pub mod idle;
pub mod mongo;
pub mod report;
pub mod system;
