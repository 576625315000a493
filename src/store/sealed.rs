//! Encryption at rest as a wrapper around any backend: every backend gets the same
//! format, and none of them handles keys.
//!
//! Writes seal message `content`, and with `all_fields` also the session name, file URLs
//! and metadata values. Reads open all of those whatever `all_fields` says: switching
//! `ENCRYPT_ALL_FIELDS` off must not leave ciphertext on screen, and a value that is not
//! sealed comes back as stored (`Cipher::open`).

use super::{
    AdminPage, AdminQuery, Aggregate, Append, AssistingAdmin, Message, Millis, Result, Session,
    Store, StoreError, Transcript, Window,
};
use crate::crypto::Cipher;

pub struct Sealed<S> {
    inner: S,
    cipher: Cipher,
    all_fields: bool,
}

impl<S: Store> Sealed<S> {
    pub fn new(inner: S, cipher: Cipher, all_fields: bool) -> Sealed<S> {
        Sealed {
            inner,
            cipher,
            all_fields,
        }
    }

    fn seal(&self, text: &str) -> Result<String> {
        self.cipher
            .seal(text)
            .map_err(|err| StoreError::Unavailable(format!("encryption failed: {err}")))
    }

    fn seal_message(&self, message: &Message) -> Result<Message> {
        let mut sealed = message.clone();
        sealed.content = self.seal(&message.content)?;
        if self.all_fields {
            if let Some(url) = &message.file_url {
                sealed.file_url = Some(self.seal(url)?);
            }
            for value in sealed.meta.values_mut() {
                *value = self.seal(value)?;
            }
        }
        Ok(sealed)
    }

    /// The name and message of an append as they are stored.
    fn seal_append(&self, append: &Append) -> Result<(String, Message)> {
        let message = self.seal_message(append.message)?;
        let name = if self.all_fields {
            self.seal(append.name)?
        } else {
            append.name.to_owned()
        };
        Ok((name, message))
    }

    fn open_session(&self, mut session: Session) -> Session {
        session.name = self.cipher.open(&session.name);
        session
    }

    fn open_message(&self, mut message: Message) -> Message {
        message.content = self.cipher.open(&message.content);
        message.file_url = message.file_url.map(|url| self.cipher.open(&url));
        for value in message.meta.values_mut() {
            *value = self.cipher.open(value);
        }
        message
    }

    fn open_transcript(&self, transcript: Transcript) -> Transcript {
        Transcript {
            session: self.open_session(transcript.session),
            messages: transcript
                .messages
                .into_iter()
                .map(|message| self.open_message(message))
                .collect(),
        }
    }
}

impl<S: Store> Store for Sealed<S> {
    fn append(&self, append: &Append) -> Result<u64> {
        let (name, message) = self.seal_append(append)?;
        let sealed = Append {
            name: &name,
            message: &message,
            ..*append
        };
        self.inner.append(&sealed)
    }

    fn append_batch(&self, appends: &[Append]) -> Vec<Result<u64>> {
        let sealed: Vec<Result<(String, Message)>> =
            appends.iter().map(|a| self.seal_append(a)).collect();
        // Only the appends that sealed go to the backend, still as one batch.
        let ready: Vec<Append> = appends
            .iter()
            .zip(&sealed)
            .filter_map(|(append, sealed)| {
                let (name, message) = sealed.as_ref().ok()?;
                Some(Append {
                    name,
                    message,
                    ..*append
                })
            })
            .collect();
        let mut stored = self.inner.append_batch(&ready).into_iter();
        sealed
            .into_iter()
            .map(|sealed| match sealed {
                Ok(_) => stored.next().unwrap_or_else(|| {
                    Err(StoreError::Unavailable(
                        "backend answered too few appends".into(),
                    ))
                }),
                Err(error) => Err(error),
            })
            .collect()
    }

    fn session(&self, id: &str) -> Result<Option<Session>> {
        Ok(self.inner.session(id)?.map(|s| self.open_session(s)))
    }

    fn transcript_page(&self, id: &str, window: Window) -> Result<Option<Transcript>> {
        Ok(self
            .inner
            .transcript_page(id, window)?
            .map(|t| self.open_transcript(t)))
    }

    fn latest_active(&self, user_id: &str) -> Result<Option<Session>> {
        Ok(self
            .inner
            .latest_active(user_id)?
            .map(|s| self.open_session(s)))
    }

    fn user_sessions(&self, user_id: &str, limit: usize) -> Result<Vec<Session>> {
        let sessions = self.inner.user_sessions(user_id, limit)?;
        Ok(sessions.into_iter().map(|s| self.open_session(s)).collect())
    }

    fn set_model(&self, id: &str, model_id: &str, at: Millis) -> Result<bool> {
        self.inner.set_model(id, model_id, at)
    }

    fn set_assist(&self, id: &str, admin: Option<&AssistingAdmin>, at: Millis) -> Result<bool> {
        self.inner.set_assist(id, admin, at)
    }

    fn set_help_requested(&self, id: &str, at: Millis) -> Result<bool> {
        self.inner.set_help_requested(id, at)
    }

    fn end(&self, id: &str, at: Millis) -> Result<bool> {
        self.inner.end(id, at)
    }

    fn share(&self, id: &str, candidate: &str, at: Millis) -> Result<Option<String>> {
        self.inner.share(id, candidate, at)
    }

    fn unshare(&self, id: &str, at: Millis) -> Result<bool> {
        self.inner.unshare(id, at)
    }

    fn shared(&self, token: &str, window: Window) -> Result<Option<Transcript>> {
        Ok(self
            .inner
            .shared(token, window)?
            .map(|t| self.open_transcript(t)))
    }

    fn end_idle(&self, idle_before: Millis, at: Millis) -> Result<Vec<String>> {
        self.inner.end_idle(idle_before, at)
    }

    fn count_active(&self) -> Result<u64> {
        self.inner.count_active()
    }

    /// The filters and the order are on fields that are never sealed.
    fn admin_sessions(&self, query: &AdminQuery) -> Result<AdminPage> {
        let mut page = self.inner.admin_sessions(query)?;
        page.sessions = page
            .sessions
            .into_iter()
            .map(|s| self.open_session(s))
            .collect();
        Ok(page)
    }

    fn session_metrics(&self, from: Millis, to: Millis) -> Result<Aggregate> {
        self.inner.session_metrics(from, to)
    }

    fn ping(&self) -> Result<()> {
        self.inner.ping()
    }
}
