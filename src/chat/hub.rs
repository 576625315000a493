//! Who is connected: each user's open sockets. The per-user socket limit is counted
//! here, and only for sockets whose upgrade succeeded.

use std::collections::HashMap;

use crate::net::slab::ConnId;

#[derive(Default)]
pub struct Hub {
    by_user: HashMap<String, Vec<ConnId>>,
    owner: HashMap<ConnId, String>,
}

impl Hub {
    pub fn sockets_of(&self, user_id: &str) -> &[ConnId] {
        self.by_user.get(user_id).map_or(&[], Vec::as_slice)
    }

    pub fn connect(&mut self, conn: ConnId, user_id: &str) {
        self.by_user
            .entry(user_id.to_owned())
            .or_default()
            .push(conn);
        self.owner.insert(conn, user_id.to_owned());
    }

    /// Forgets a socket; unknown ids (echo sockets, never connected) are ignored.
    pub fn disconnect(&mut self, conn: ConnId) -> Option<String> {
        let user_id = self.owner.remove(&conn)?;
        if let Some(sockets) = self.by_user.get_mut(&user_id) {
            sockets.retain(|&c| c != conn);
            if sockets.is_empty() {
                self.by_user.remove(&user_id);
            }
        }
        Some(user_id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::net::slab::Slab;

    #[test]
    fn tracks_sockets_per_user() {
        let mut slab = Slab::with_capacity(3);
        let ids: Vec<ConnId> = (0..3)
            .map(|_| slab.insert_with(|id| id).expect("slot"))
            .collect();
        let mut hub = Hub::default();
        hub.connect(ids[0], "ann");
        hub.connect(ids[1], "ann");
        hub.connect(ids[2], "bob");
        assert_eq!(hub.sockets_of("ann"), &ids[..2]);
        assert_eq!(hub.disconnect(ids[0]).as_deref(), Some("ann"));
        assert_eq!(hub.sockets_of("ann"), &ids[1..2]);
        assert_eq!(hub.disconnect(ids[0]), None, "once only");
        assert_eq!(hub.disconnect(ids[1]).as_deref(), Some("ann"));
        assert!(hub.sockets_of("ann").is_empty());
        assert_eq!(hub.sockets_of("bob"), &ids[2..]);
    }
}
