//! chatbox: a WebSocket chat server on one hand-rolled `mio` event loop.
//!
//! `net` is the reactor (sockets, HTTP framing, timers, lanes); `http` maps routes to
//! answers; `chat` is the domain (a state machine with no I/O); `store` and `llm` are
//! the blocking backends the lanes call, and `notify` tells admins about help requests
//! from the io lane; `metrics` is what all of them count; `app` joins them. The
//! README's layout table says where each part lives and what runs on which thread.

pub mod app;
pub mod auth;
pub mod background;
pub mod bench;
pub mod bus;
pub mod chat;
pub mod cli;
pub mod config;
pub mod crypto;
pub mod decimal;
pub mod hash;
pub mod http;
pub mod ids;
pub mod json;
pub mod llm;
pub mod metrics;
pub mod net;
pub mod notify;
pub mod server;
pub mod store;
pub mod time;
pub mod upload;
