//! A socket as the chat domain names it. The domain only compares and hashes these ids;
//! how the loop names a connection (slot, generation, token) is the application's to
//! map, so the domain depends on nothing of the network layer.

use std::fmt;
use std::ops::Deref;

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

/// The sockets of a user or of a session, in the order they came. Nearly always one:
/// that one is kept inline, and a list is allocated only while there are more (issue
/// 18: a `Vec` of one cost an allocation per idle socket, twice over).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum Sockets {
    #[default]
    None,
    One(SocketId),
    Many(Vec<SocketId>),
}

impl Sockets {
    pub fn push(&mut self, socket: SocketId) {
        *self = match std::mem::take(self) {
            Sockets::None => Sockets::One(socket),
            Sockets::One(first) => Sockets::Many(vec![first, socket]),
            Sockets::Many(mut all) => {
                all.push(socket);
                Sockets::Many(all)
            }
        };
    }

    /// Takes a socket out (absent ones are ignored); the list goes back to the
    /// allocator as soon as one socket is left.
    pub fn remove(&mut self, socket: SocketId) {
        *self = match std::mem::take(self) {
            Sockets::One(only) if only == socket => Sockets::None,
            Sockets::Many(mut all) => {
                all.retain(|&s| s != socket);
                match all[..] {
                    [] => Sockets::None,
                    [only] => Sockets::One(only),
                    _ => Sockets::Many(all),
                }
            }
            unchanged => unchanged,
        };
    }
}

impl Deref for Sockets {
    type Target = [SocketId];

    fn deref(&self) -> &[SocketId] {
        match self {
            Sockets::None => &[],
            Sockets::One(only) => std::slice::from_ref(only),
            Sockets::Many(all) => all,
        }
    }
}

impl<'a> IntoIterator for &'a Sockets {
    type Item = &'a SocketId;
    type IntoIter = std::slice::Iter<'a, SocketId>;

    fn into_iter(self) -> Self::IntoIter {
        self.iter()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_socket_is_inline_and_more_keep_their_order() {
        let ids: Vec<SocketId> = (0..3).map(SocketId).collect();
        let mut sockets = Sockets::default();
        sockets.push(ids[0]);
        assert_eq!(sockets, Sockets::One(ids[0]));
        sockets.push(ids[1]);
        sockets.push(ids[2]);
        assert_eq!(&sockets[..], &ids[..]);
        sockets.remove(ids[1]);
        assert_eq!(&sockets[..], [ids[0], ids[2]]);
        sockets.remove(ids[0]);
        assert_eq!(sockets, Sockets::One(ids[2]), "the list is given back");
        sockets.remove(ids[0]);
        assert_eq!(sockets, Sockets::One(ids[2]), "absent: unchanged");
        sockets.remove(ids[2]);
        assert!(sockets.is_empty() && sockets == Sockets::None);
    }

    #[test]
    fn as_small_as_a_vec() {
        assert!(std::mem::size_of::<Sockets>() <= std::mem::size_of::<Vec<SocketId>>());
    }
}
