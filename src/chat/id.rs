//! The ids the core keeps in several places at once: a user's id in each of its
//! sockets, in the index of its sockets and in each session it owns; a session's id as
//! the key of the sessions in memory, in the session and in each socket bound to it.
//! One shared allocation serves them all, where each place used to hold a copy
//! (issue 18: an idle socket is counted ten thousand times over). The core runs on the
//! loop's thread only, so the count needs no atomics.

use std::rc::Rc;

/// A user's or a session's id, shared by everything in the core that names it.
pub type Id = Rc<str>;
