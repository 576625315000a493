//! Who is connected: every chat socket, the user it belongs to and the session it is
//! bound to. The per-user socket limit is counted here, and only for sockets whose
//! upgrade succeeded. Sessions keep the reverse index (session → sockets) themselves.

use std::collections::{HashMap, VecDeque};

use super::stream::Delivery;
use crate::net::slab::ConnId;

/// The authenticated user behind a socket.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct User {
    pub id: String,
    pub name: String,
    pub admin: bool,
}

/// Where a reconnecting client left off in a streaming reply.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Resume {
    pub message_id: Option<String>,
    pub last_seq: Option<u64>,
}

/// Frames a socket may send while its session is being looked up; more is a client
/// that does not wait for answers.
pub const HELD_FRAMES_MAX: usize = 32;

pub struct SocketState {
    pub user: User,
    pub session: Option<String>,
    /// Frames that arrived while a store lookup for this socket was running; they are
    /// handled in order when it finishes.
    pub held: Option<VecDeque<String>>,
    pub delivery: Option<Delivery>,
    pub resume: Resume,
    /// A frame named an unknown session id and got a fresh session instead: later frames
    /// naming the old id go to the new one.
    pub alias: Option<(String, String)>,
    pub frames_seen: u64,
}

#[derive(Default)]
pub struct Hub {
    sockets: HashMap<ConnId, SocketState>,
    by_user: HashMap<String, Vec<ConnId>>,
}

impl Hub {
    pub fn sockets_of(&self, user_id: &str) -> &[ConnId] {
        self.by_user.get(user_id).map_or(&[], Vec::as_slice)
    }

    pub fn connect(&mut self, conn: ConnId, user: User, resume: Resume) {
        self.by_user.entry(user.id.clone()).or_default().push(conn);
        self.sockets.insert(
            conn,
            SocketState {
                user,
                session: None,
                held: None,
                delivery: None,
                resume,
                alias: None,
                frames_seen: 0,
            },
        );
    }

    /// Forgets a socket; unknown ids are ignored.
    pub fn disconnect(&mut self, conn: ConnId) -> Option<SocketState> {
        let state = self.sockets.remove(&conn)?;
        if let Some(sockets) = self.by_user.get_mut(&state.user.id) {
            sockets.retain(|&c| c != conn);
            if sockets.is_empty() {
                self.by_user.remove(&state.user.id);
            }
        }
        Some(state)
    }

    pub fn get(&self, conn: ConnId) -> Option<&SocketState> {
        self.sockets.get(&conn)
    }

    pub fn get_mut(&mut self, conn: ConnId) -> Option<&mut SocketState> {
        self.sockets.get_mut(&conn)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::net::slab::Slab;

    fn user(id: &str) -> User {
        User {
            id: id.into(),
            name: id.into(),
            admin: false,
        }
    }

    #[test]
    fn tracks_sockets_per_user() {
        let mut slab = Slab::with_capacity(3);
        let ids: Vec<ConnId> = (0..3)
            .map(|_| slab.insert_with(|id| id).expect("slot"))
            .collect();
        let mut hub = Hub::default();
        hub.connect(ids[0], user("ann"), Resume::default());
        hub.connect(ids[1], user("ann"), Resume::default());
        hub.connect(ids[2], user("bob"), Resume::default());
        assert_eq!(hub.sockets_of("ann"), &ids[..2]);
        assert_eq!(
            hub.disconnect(ids[0]).map(|s| s.user.id),
            Some("ann".into())
        );
        assert_eq!(hub.sockets_of("ann"), &ids[1..2]);
        assert!(hub.disconnect(ids[0]).is_none(), "once only");
        assert!(hub.disconnect(ids[1]).is_some());
        assert!(hub.sockets_of("ann").is_empty());
        assert_eq!(hub.sockets_of("bob"), &ids[2..]);
        assert!(hub.get(ids[0]).is_none() && hub.get(ids[2]).is_some());
    }
}
