//! chatbox: a WebSocket chat server on one hand-rolled `mio` event loop.
//!
//! `net` is the reactor (sockets, HTTP framing, timers, lanes); `http` maps routes to
//! answers; `app` joins them. See docs/ARCHITECTURE.md for what runs on which thread.

pub mod app;
pub mod auth;
pub mod chat;
pub mod cli;
pub mod config;
pub mod http;
pub mod net;
pub mod server;
pub mod time;
