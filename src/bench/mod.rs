//! `chatbox-bench`, the measuring tool people point at any deployment, and the client
//! the cargo benches share: one thread on a mio loop, frames built by hand (`frames`,
//! `conn`), connections in a slab (`client`), what the sockets say (`echo`, `chat`),
//! paced load (`pace`), /proc readings (`meter`), HDR percentiles (`hist`), the client's
//! limits (`limits`), blocking probes (`probe`), the live line (`progress`), the drain's store
//! check (`verify`), the command line (`cli`) and the subcommands (`cmd`). Nothing here runs inside the server.

pub mod chat;
pub mod cli;
pub mod client;
pub mod cmd;
pub mod conn;
pub mod echo;
pub mod frames;
pub mod hist;
pub mod limits;
pub mod meter;
pub mod pace;
pub mod probe;
pub mod progress;
pub mod verify;
