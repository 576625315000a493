//! One upload's job on the io lane: pulls the body from its [`Pipe`], parses it, checks
//! the `file` part's name and (from its first bytes) its type, and writes it to the
//! backend as it comes; the file becomes visible only once the body ended well.
//! Whatever goes wrong on the way, nothing is left behind (the writer is dropped).

use std::fmt;

use super::multipart::{Event, MultipartError, Parser};
use super::name::{self, BadName};
use super::pipe::{Pipe, Pulled};
use super::sniff::{sniff, Refused, SNIFF_BYTES};
use super::{BlobError, BlobWriter, Blobs, FileMeta};

/// The multipart form field that carries the file (spec/http.md).
const FIELD: &str = "file";

/// What the request said before its body: everything but the file.
pub struct Incoming {
    pub file_id: String,
    pub owner: String,
    pub key: String,
    pub boundary: String,
    /// The largest file accepted, in bytes.
    pub max_size: u64,
    pub created: u64,
}

#[derive(Debug)]
pub enum UploadError {
    Body(MultipartError),
    /// No `file` part, or more than one.
    FilePart(&'static str),
    Name(BadName),
    Type(Refused),
    Empty,
    TooLarge,
    /// The client went away mid-body; nobody is left to answer.
    Aborted,
    Storage(BlobError),
}

impl UploadError {
    /// The HTTP status that answers it.
    pub fn status(&self) -> u16 {
        match self {
            UploadError::Type(_) | UploadError::Body(MultipartError::NotMultipart) => 415,
            UploadError::TooLarge => 413,
            UploadError::Storage(_) | UploadError::Aborted => 500,
            UploadError::Body(_)
            | UploadError::FilePart(_)
            | UploadError::Name(_)
            | UploadError::Empty => 400,
        }
    }
}

impl fmt::Display for UploadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            UploadError::Body(MultipartError::NotMultipart) => {
                f.write_str("Expected multipart/form-data with a boundary")
            }
            UploadError::Body(_) => f.write_str("Malformed multipart body"),
            UploadError::FilePart(what) => f.write_str(what),
            UploadError::Name(bad) => bad.fmt(f),
            UploadError::Type(refused) => refused.fmt(f),
            UploadError::Empty => f.write_str("The file is empty"),
            UploadError::TooLarge => f.write_str("File too large"),
            UploadError::Aborted => f.write_str("Upload aborted"),
            UploadError::Storage(_) => f.write_str("File storage failed"),
        }
    }
}

impl From<MultipartError> for UploadError {
    fn from(error: MultipartError) -> UploadError {
        UploadError::Body(error)
    }
}

impl From<BlobError> for UploadError {
    fn from(error: BlobError) -> UploadError {
        UploadError::Storage(error)
    }
}

/// Receives the body; `resume` is called whenever the loop may read the socket again.
pub fn receive(
    pipe: &Pipe,
    incoming: &Incoming,
    blobs: &dyn Blobs,
    resume: &mut dyn FnMut(),
) -> Result<FileMeta, UploadError> {
    let mut parser = Parser::new(&incoming.boundary);
    let mut file = Receiver {
        incoming,
        blobs,
        state: None,
        in_file_part: false,
    };
    loop {
        match pipe.pull() {
            Pulled::Chunk {
                data,
                resume: go_on,
            } => {
                if go_on {
                    resume();
                }
                parser.feed(&data, &mut |event| file.on_event(event))?;
            }
            Pulled::End => break,
            Pulled::Aborted => return Err(UploadError::Aborted),
        }
    }
    parser.finish()?;
    file.commit()
}

struct Receiver<'a> {
    incoming: &'a Incoming,
    blobs: &'a dyn Blobs,
    /// Set by the `file` part's head.
    state: Option<FileState>,
    in_file_part: bool,
}

struct FileState {
    meta: FileMeta,
    claimed: Option<String>,
    /// The first bytes, held until they decide the type (at most a chunk over
    /// `SNIFF_BYTES`); empty once `writer` exists.
    head: Vec<u8>,
    writer: Option<Box<dyn BlobWriter>>,
    complete: bool,
}

impl Receiver<'_> {
    fn on_event(&mut self, event: Event) -> Result<(), UploadError> {
        match event {
            Event::Part(part) if part.name == FIELD => {
                if self.state.is_some() {
                    return Err(UploadError::FilePart("Only one file per upload"));
                }
                let name = part.filename.ok_or(UploadError::Name(BadName::Missing))?;
                name::check(&name).map_err(UploadError::Name)?;
                self.state = Some(FileState {
                    meta: FileMeta {
                        file_id: self.incoming.file_id.clone(),
                        owner: self.incoming.owner.clone(),
                        key: self.incoming.key.clone(),
                        name,
                        content_type: String::new(),
                        size: 0,
                        created: self.incoming.created,
                    },
                    claimed: part.content_type,
                    head: Vec::new(),
                    writer: None,
                    complete: false,
                });
                self.in_file_part = true;
            }
            // Other fields are allowed and ignored.
            Event::Part(_) => self.in_file_part = false,
            Event::Data(data) if self.in_file_part => self.data(data)?,
            Event::Data(_) => {}
            Event::PartEnd if self.in_file_part => {
                self.in_file_part = false;
                self.decide()?;
                if let Some(state) = &mut self.state {
                    state.complete = true;
                }
            }
            Event::PartEnd => {}
        }
        Ok(())
    }

    fn data(&mut self, data: &[u8]) -> Result<(), UploadError> {
        let Some(state) = &mut self.state else {
            return Ok(());
        };
        state.meta.size += data.len() as u64;
        if state.meta.size > self.incoming.max_size {
            return Err(UploadError::TooLarge);
        }
        match &mut state.writer {
            Some(writer) => writer.write(data)?,
            None => {
                state.head.extend_from_slice(data);
                if state.head.len() >= SNIFF_BYTES {
                    self.decide()?;
                }
            }
        }
        Ok(())
    }

    /// Decides the type from the first bytes and starts writing, once.
    fn decide(&mut self) -> Result<(), UploadError> {
        let Some(state) = &mut self.state else {
            return Ok(());
        };
        if state.writer.is_some() {
            return Ok(());
        }
        if state.head.is_empty() {
            return Err(UploadError::Empty);
        }
        let sniffed = &state.head[..state.head.len().min(SNIFF_BYTES)];
        let content_type = sniff(sniffed, &state.meta.name, state.claimed.as_deref())
            .map_err(UploadError::Type)?;
        state.meta.content_type = content_type.to_owned();
        let mut writer = self.blobs.create(&state.meta)?;
        writer.write(&state.head)?;
        state.head = Vec::new();
        state.writer = Some(writer);
        Ok(())
    }

    fn commit(self) -> Result<FileMeta, UploadError> {
        let Some(state) = self.state.filter(|state| state.complete) else {
            return Err(UploadError::FilePart("Missing form field: file"));
        };
        let writer = state
            .writer
            .ok_or(UploadError::FilePart("Missing form field: file"))?;
        writer.commit(&state.meta)?;
        Ok(state.meta)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use super::*;
    use crate::upload::Served;

    /// The files committed so far, with their bytes.
    type Committed = Arc<Mutex<Vec<(FileMeta, Vec<u8>)>>>;

    /// Keeps files in memory: what `receive` wrote and committed.
    #[derive(Default)]
    struct Memory {
        committed: Committed,
    }

    struct MemoryWriter {
        data: Vec<u8>,
        committed: Committed,
    }

    impl Blobs for Memory {
        fn create(&self, _: &FileMeta) -> Result<Box<dyn BlobWriter>, BlobError> {
            Ok(Box::new(MemoryWriter {
                data: Vec::new(),
                committed: Arc::clone(&self.committed),
            }))
        }
        fn meta(&self, _: &str) -> Result<FileMeta, BlobError> {
            Err(BlobError::NotFound)
        }
        fn serve(&self, _: &FileMeta, _: u64) -> Result<Served, BlobError> {
            Err(BlobError::NotFound)
        }
        fn delete(&self, _: &FileMeta) -> Result<(), BlobError> {
            Ok(())
        }
        fn url(&self, _: &FileMeta, _: u64) -> Result<String, BlobError> {
            Ok(String::new())
        }
    }

    impl BlobWriter for MemoryWriter {
        fn write(&mut self, data: &[u8]) -> Result<(), BlobError> {
            self.data.extend_from_slice(data);
            Ok(())
        }
        fn commit(self: Box<Self>, meta: &FileMeta) -> Result<(), BlobError> {
            let mut committed = self.committed.lock().expect("lock");
            committed.push((meta.clone(), self.data));
            Ok(())
        }
    }

    fn body(filename: &str, content: &[u8]) -> Vec<u8> {
        let mut body = format!(
            "--B\r\nContent-Disposition: form-data; name=\"file\"; filename=\"{filename}\"\r\n\r\n"
        )
        .into_bytes();
        body.extend_from_slice(content);
        body.extend_from_slice(b"\r\n--B--\r\n");
        body
    }

    fn run(body: &[u8], max_size: u64) -> (Result<FileMeta, UploadError>, Memory) {
        let pipe = Pipe::default();
        for chunk in body.chunks(1000) {
            pipe.push(chunk.to_vec(), false);
        }
        pipe.push(Vec::new(), true);
        let incoming = Incoming {
            file_id: "f".into(),
            owner: "u".into(),
            key: "k".into(),
            boundary: "B".into(),
            max_size,
            created: 0,
        };
        let memory = Memory::default();
        (receive(&pipe, &incoming, &memory, &mut || {}), memory)
    }

    #[test]
    fn a_file_is_stored_with_its_sniffed_type() {
        let content = "line\n".repeat(5000).into_bytes();
        let (result, memory) = run(&body("notes.txt", &content), 1 << 20);
        let meta = result.expect("stored");
        assert_eq!(
            (meta.content_type.as_str(), meta.size),
            ("text/plain", 25_000)
        );
        let committed = memory.committed.lock().expect("lock");
        assert_eq!(committed[0].1, content);
    }

    #[test]
    fn refusals() {
        let cases: [(Vec<u8>, u64, u16); 5] = [
            (body("../x.txt", b"hi"), 100, 400),
            (body("x.png", b"#!/bin/sh\necho"), 100, 415),
            (body("x.txt", b"0123456789"), 5, 413),
            (body("x.txt", b""), 100, 400),
            (
                b"--B\r\nContent-Disposition: form-data; name=\"other\"\r\n\r\nx\r\n--B--".to_vec(),
                100,
                400,
            ),
        ];
        for (body, max, status) in cases {
            let (result, memory) = run(&body, max);
            assert_eq!(result.expect_err("refused").status(), status);
            assert!(memory.committed.lock().expect("lock").is_empty());
        }
    }
}
