//! `file_upload` and `voice_message` frames: a file the user sends (uploaded with
//! `P/upload`, or an external link) is stored as a message with its `file_id` and
//! `file_url` and echoed to every socket of the session; a voice message is also
//! answered by the assistant, which is told `Audio file: <url without query>`. A link
//! to anything but this server's own files is checked first, on the io lane (resolving
//! a name blocks): `https` only, and never to a private, loopback or link-local address.

use super::frames::Budget;
use super::*;

impl Chat {
    pub(super) fn file_message(
        &mut self,
        socket: SocketId,
        session_id: &str,
        inbound: Inbound,
        now: Now,
    ) {
        let Some(url) = inbound.file_url.clone() else {
            let missing = "Required field missing: file_url";
            self.error(socket, Some(session_id), code::MISSING_FIELD, missing, now);
            return;
        };
        if url.starts_with(&self.settings.files_path) {
            self.store_file(socket, session_id, inbound, now);
        } else if url
            .get(..8)
            .is_some_and(|s| s.eq_ignore_ascii_case("https://"))
        {
            // A lookup per link: drawn from the same budget as other lookups.
            if !self.within_budget(socket, Some(session_id), Budget::Controls, now) {
                return;
            }
            let then = Continuation::FileUrl {
                socket,
                session_id: session_id.to_owned(),
                frame: Box::new(inbound),
            };
            self.spawn(Work::CheckUrl(url), then);
        } else {
            self.invalid_url(socket, session_id, now);
        }
    }

    /// The io lane's verdict on an external link (`Updated(true)`: public https).
    pub(super) fn file_url_checked(
        &mut self,
        socket: SocketId,
        session_id: &str,
        inbound: Inbound,
        result: Result<StoreReply, WriteError>,
        now: Now,
    ) {
        match result {
            Ok(StoreReply::Updated(true)) => self.store_file(socket, session_id, inbound, now),
            Ok(_) => self.invalid_url(socket, session_id, now),
            Err(_) => self.error(socket, Some(session_id), code::SERVICE_ERROR, BUSY, now),
        }
    }

    fn invalid_url(&mut self, socket: SocketId, session_id: &str, now: Now) {
        let message = "Invalid file URL";
        self.error(socket, Some(session_id), code::INVALID_FORMAT, message, now);
    }

    fn store_file(&mut self, socket: SocketId, session_id: &str, inbound: Inbound, now: Now) {
        // A file needs no caption: an empty content is a message all the same.
        let caption = Some(inbound.content.unwrap_or_default());
        let Some((content, message_id)) = self.admit_message(socket, session_id, caption, now)
        else {
            return;
        };
        let mut message = Message::new(message_id, Sender::User, content, now.ms);
        message.file_id = inbound.file_id;
        message.file_url = inbound.file_url;
        message.meta = inbound.metadata;
        message.meta.remove("last_seq");
        self.store_message(socket, session_id, message, inbound.kind, now);
    }
}

/// What the assistant is told of a voice message (spec/websocket.md): its link without
/// the query, where a signature may be.
pub(super) fn voice_prompt(url: &str) -> String {
    let bare = url.split(['?', '#']).next().unwrap_or_default();
    format!("Audio file: {bare}")
}
