//! The fan-out seam: every frame the chat core addresses to an audience — the sockets
//! of a session, of a user, or every admin socket — is delivered here, and only here.
//!
//! The core names the audience rather than listing sockets, and the sockets are looked
//! up at delivery. Today that lookup is the local hub. For several pods, this is where
//! a bus publishes the frame once per audience (one message "to session S", not one
//! per socket) and each pod, this one included, delivers it to the sockets it holds:
//! the domain does not change. (A reply's streamed chunks stay per socket: each
//! socket's delivery is paced by its own flush, which only the pod holding it knows.)

use super::socket::conn_of;
use super::App;
use crate::chat::engine::Audience;
use crate::chat::socket::SocketId;
use crate::net::handler::Ctx;

impl App {
    pub(super) fn fan_out(
        &mut self,
        to: &Audience,
        frame: String,
        except: Option<SocketId>,
        ctx: &mut Ctx,
    ) {
        for socket in self.chat.audience(to) {
            if Some(socket) != except {
                ctx.send_text(conn_of(socket), frame.clone());
            }
        }
    }
}
