//! HTTP routes: what each path under the prefix means. The wire protocol is in
//! `crate::net::http`; this layer maps requests to answers.

pub mod admin;
pub mod client_ip;
pub mod cors;
pub mod error;
pub mod health;
pub mod metrics;
pub mod router;
pub mod sessions;
pub mod upgrade;
pub mod web;
