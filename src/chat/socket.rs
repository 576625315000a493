//! A socket as the chat domain names it. The domain only compares and hashes these ids;
//! how the loop names a connection (slot, generation, token) is the application's to
//! map, so the domain depends on nothing of the network layer.

use std::fmt;

/// One chat socket. The application never hands the domain an id it gave another
/// socket that could still be mentioned, so a late job outcome for a socket that left
/// cannot reach a newcomer.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SocketId(pub u64);

impl fmt::Debug for SocketId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "#{}", self.0)
    }
}
