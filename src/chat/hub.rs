//! Who is connected: every chat socket, the user it belongs to and the session it is
//! bound to. The per-user socket limit is counted here, and only for sockets whose
//! upgrade succeeded. Sessions keep the reverse index (session → sockets) themselves;
//! admin sockets are indexed here too, for the alerts that go to every admin.

use std::collections::VecDeque;

use super::id::Id;
use super::socket::{SocketId, Sockets};
use super::stream::Delivery;
use crate::hash::{IdMap, NameMap};

/// The authenticated user behind a socket. The name is most often the id itself (a
/// token without one): then both are one allocation.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct User {
    pub id: Id,
    pub name: Id,
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

/// One socket's state. What a socket holds only now and then (frames held during a
/// lookup, its place in a streaming reply, where it asked to resume, an alias) is boxed
/// apart, so that an idle socket pays a pointer for each (issue 18).
pub struct SocketState {
    pub user: User,
    pub session: Option<Id>,
    /// Frames that arrived while a store lookup for this socket was running; they are
    /// handled in order when it finishes.
    pub held: Option<Box<VecDeque<String>>>,
    pub delivery: Option<Box<Delivery>>,
    /// `None`: nothing to resume.
    resume: Option<Box<Resume>>,
    /// A frame named an unknown session id and got a fresh session instead: later frames
    /// naming the old id (`.0`) go to the new one (`.1`).
    pub alias: Option<Box<(String, String)>>,
}

impl SocketState {
    /// Where the socket left off, forgotten here.
    pub fn take_resume(&mut self) -> Resume {
        self.resume
            .take()
            .map_or_else(Resume::default, |resume| *resume)
    }

    /// Keeps where the socket left off, for later.
    pub fn keep_resume(&mut self, resume: Resume) {
        self.resume = (resume != Resume::default()).then(|| Box::new(resume));
    }

    /// A frame said which chunk the socket saw last; the first one to say so counts.
    pub fn saw_seq(&mut self, last_seq: u64) {
        let resume = self.resume.get_or_insert_with(Box::default);
        resume.last_seq.get_or_insert(last_seq);
    }
}

#[derive(Default)]
pub struct Hub {
    /// Boxed: the map's spare slots (up to half of them) then cost a pointer each, not
    /// a whole state (issue 18).
    sockets: IdMap<SocketId, Box<SocketState>>,
    /// Keyed by the id the sockets' users share.
    by_user: NameMap<Id, Sockets>,
    admins: Vec<SocketId>,
}

impl Hub {
    pub fn sockets_of(&self, user_id: &str) -> &[SocketId] {
        self.by_user.get(user_id).map_or(&[], |sockets| sockets)
    }

    /// Each user with a socket here, and how many.
    pub fn socket_counts(&self) -> impl Iterator<Item = (&str, usize)> {
        self.by_user
            .iter()
            .map(|(user, sockets)| (&**user, sockets.len()))
    }

    /// Every socket whose token made it an admin.
    pub fn admins(&self) -> &[SocketId] {
        &self.admins
    }

    pub fn connect(&mut self, socket: SocketId, user: User, resume: Resume) {
        if user.admin {
            self.admins.push(socket);
        }
        self.by_user
            .entry(user.id.clone())
            .or_default()
            .push(socket);
        let mut state = SocketState {
            user,
            session: None,
            held: None,
            delivery: None,
            resume: None,
            alias: None,
        };
        state.keep_resume(resume);
        self.sockets.insert(socket, Box::new(state));
    }

    /// Forgets a socket; unknown ids are ignored.
    pub fn disconnect(&mut self, socket: SocketId) -> Option<Box<SocketState>> {
        let state = self.sockets.remove(&socket)?;
        if state.user.admin {
            self.admins.retain(|&s| s != socket);
        }
        if let Some(sockets) = self.by_user.get_mut(&state.user.id) {
            sockets.remove(socket);
            if sockets.is_empty() {
                self.by_user.remove(&state.user.id);
            }
        }
        Some(state)
    }

    /// Sockets connected.
    pub fn count(&self) -> usize {
        self.sockets.len()
    }

    /// The most frames any socket holds while its session is looked up.
    pub fn held_max(&self) -> usize {
        self.sockets
            .values()
            .filter_map(|state| state.held.as_ref().map(|held| held.len()))
            .max()
            .unwrap_or(0)
    }

    pub fn get(&self, socket: SocketId) -> Option<&SocketState> {
        self.sockets.get(&socket).map(Box::as_ref)
    }

    pub fn get_mut(&mut self, socket: SocketId) -> Option<&mut SocketState> {
        self.sockets.get_mut(&socket).map(Box::as_mut)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn user(id: &str) -> User {
        User {
            id: id.into(),
            name: id.into(),
            admin: false,
        }
    }

    #[test]
    fn tracks_sockets_per_user() {
        let ids: Vec<SocketId> = (0..3).map(SocketId).collect();
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

    #[test]
    fn tracks_admin_sockets() {
        let mut hub = Hub::default();
        let admin = User {
            admin: true,
            ..user("ada")
        };
        hub.connect(SocketId(1), admin.clone(), Resume::default());
        hub.connect(SocketId(2), user("bob"), Resume::default());
        hub.connect(SocketId(3), admin, Resume::default());
        assert_eq!(hub.admins(), [SocketId(1), SocketId(3)]);
        hub.disconnect(SocketId(1));
        hub.disconnect(SocketId(2));
        assert_eq!(hub.admins(), [SocketId(3)]);
    }
}
