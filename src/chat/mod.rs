//! The chat domain: no sockets, no threads, no clocks of its own. [`engine::Chat`] takes
//! events and returns effects; the application runs the jobs it asks for on lanes.

pub mod engine;
pub mod helpdesk;
pub mod hub;
pub mod id;
pub mod jobs;
pub mod protocol;
pub mod ratelimit;
pub mod session;
pub mod socket;
pub mod stream;

#[cfg(test)]
mod tests;
