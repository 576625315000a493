//! The append log: where an append is made durable before it is acknowledged, so that
//! the acknowledgement costs one sequential write and one `fdatasync` per batch rather
//! than a redb commit (see the module header in `mod.rs`).
//!
//! Files are `wal-<generation>.log` in the store's directory, generations counting up.
//! Appends go to the newest; a checkpoint moves on to the next generation and, once redb
//! holds everything the older files carry, deletes them, all but the newest of them,
//! which becomes the spare (`wal-spare`) the next generation is written into.
//!
//! Recycling is what keeps the sync cheap: writes into blocks a file already has leave
//! its size and its block map as they were, so `fdatasync` writes the data alone. A file
//! that grows makes every sync write the inode too (one more synchronous I/O per batch
//! on ext4 without a journal, a journal commit with one; `perf` showed the inode's write
//! in a quarter of the store lane's sync). So a recycled file still holds an earlier
//! generation's records past what the new one has written, and every record names its
//! generation: the first one naming another ends the file as cleanly as its end does.
//!
//! A file is an 8-byte magic followed by records, each `[payload length u32][CRC-32 of
//! the payload u32][payload]`, little endian; a payload is its generation (u64) and one
//! [`Entry`]. A record cut short by a crash, or whose CRC does not match, ends the file:
//! nothing after it was acknowledged, because a batch is acknowledged only once all of it
//! is on the disk. Files of the first format (`CBXWAL01`, no generation in a record)
//! still read, so a log left by an older build replays after an upgrade.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

const MAGIC: &[u8; 8] = b"CBXWAL02";
/// The first format, whose records carry no generation (read only).
const MAGIC_UNNUMBERED: &[u8; 8] = b"CBXWAL01";
const PREFIX: &str = "wal-";
const SUFFIX: &str = ".log";
/// The file the next generation is written into; not a log file until renamed to one.
const SPARE: &str = "wal-spare";
/// A payload longer than this is no record of ours: a reply is at most 1 MiB of text,
/// and JSON escaping can at most sextuple it. Bounds what a damaged length makes us read.
const PAYLOAD_MAX: usize = 16 * 1024 * 1024;

/// One acknowledged append, as logged: the message row and the session record after it,
/// both exactly as redb stores them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) struct Entry {
    /// Log sequence number, counting up across files; redb's `meta` keeps the last one
    /// a checkpoint applied, so a replay skips what redb already holds.
    pub(super) lsn: u64,
    pub(super) session_id: String,
    /// The message's position in its session.
    pub(super) seq: u64,
    pub(super) row: Vec<u8>,
    pub(super) record: Vec<u8>,
}

impl Entry {
    fn encode_into(&self, out: &mut Vec<u8>, generation: u64) {
        let start = out.len();
        out.extend_from_slice(&[0; 8]);
        out.extend_from_slice(&generation.to_le_bytes());
        out.extend_from_slice(&self.lsn.to_le_bytes());
        out.extend_from_slice(&self.seq.to_le_bytes());
        for part in [self.session_id.as_bytes(), &self.row, &self.record] {
            out.extend_from_slice(&len_u32(part.len()).to_le_bytes());
            out.extend_from_slice(part);
        }
        let payload = &out[start + 8..];
        let header = [
            len_u32(payload.len()).to_le_bytes(),
            crc32(payload).to_le_bytes(),
        ];
        out[start..start + 8].copy_from_slice(header.as_flattened());
    }

    fn decode(payload: &[u8]) -> Option<Entry> {
        let mut reader = Reader(payload);
        let lsn = reader.u64()?;
        let seq = reader.u64()?;
        let session_id = String::from_utf8(reader.part()?.to_vec()).ok()?;
        let row = reader.part()?.to_vec();
        let record = reader.part()?.to_vec();
        reader.0.is_empty().then_some(Entry {
            lsn,
            session_id,
            seq,
            row,
            record,
        })
    }
}

/// A part's length as the format stores it. Rows are bounded far below 4 GiB by the
/// message limits, so saturating only matters for a bug, which the CRC then reports.
fn len_u32(len: usize) -> u32 {
    u32::try_from(len).unwrap_or(u32::MAX)
}

struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        let (head, rest) = self.0.split_at_checked(n)?;
        self.0 = rest;
        Some(head)
    }

    fn u32(&mut self) -> Option<u32> {
        Some(u32::from_le_bytes(self.take(4)?.try_into().ok()?))
    }

    fn u64(&mut self) -> Option<u64> {
        Some(u64::from_le_bytes(self.take(8)?.try_into().ok()?))
    }

    fn part(&mut self) -> Option<&'a [u8]> {
        let len = self.u32()? as usize;
        self.take(len)
    }
}

/// The log file appends go to.
pub(super) struct Wal {
    dir: PathBuf,
    file: File,
    generation: u64,
    /// The bytes of whole, synced batches in `file`.
    len: u64,
    /// Set when a write or sync failed: what the file holds past `len` is unknown, so
    /// the next batch starts a new file rather than write behind it.
    damaged: bool,
    /// One buffer for every batch's records, kept to avoid an allocation per batch.
    buffer: Vec<u8>,
}

impl Wal {
    /// Starts generation `generation` in `dir` (a new, empty file). A spare left by an
    /// earlier run goes: its records' generations count from that run's files, which
    /// someone may have deleted since, so this run's numbers could meet them again.
    pub(super) fn create(dir: &Path, generation: u64) -> io::Result<Wal> {
        match fs::remove_file(dir.join(SPARE)) {
            Err(error) if error.kind() != io::ErrorKind::NotFound => return Err(error),
            _ => {}
        }
        let file = new_file(dir, &path_of(dir, generation))?;
        Ok(Wal {
            dir: dir.to_owned(),
            file,
            generation,
            len: MAGIC.len() as u64,
            damaged: false,
            buffer: Vec::new(),
        })
    }

    /// Writes `entries` and waits until the disk has them: one write, one `fdatasync`.
    pub(super) fn write<'a>(&mut self, entries: impl Iterator<Item = &'a Entry>) -> io::Result<()> {
        if self.damaged {
            self.rotate()?;
        }
        self.buffer.clear();
        for entry in entries {
            entry.encode_into(&mut self.buffer, self.generation);
        }
        let written = self
            .file
            .write_all(&self.buffer)
            .and_then(|()| self.file.sync_data());
        match written {
            Ok(()) => self.len += self.buffer.len() as u64,
            Err(_) => {
                // Best effort: a failed batch was not acknowledged, so a replay should
                // not find it either. Whatever happens, the next batch goes elsewhere.
                let _ = self.file.set_len(self.len);
                self.damaged = true;
            }
        }
        written
    }

    /// Moves on to the next generation's file; returns the generation it left, which
    /// holds nothing appended after this call.
    pub(super) fn rotate(&mut self) -> io::Result<u64> {
        let next = self.generation + 1;
        self.file = next_file(&self.dir, next)?;
        self.len = MAGIC.len() as u64;
        self.damaged = false;
        Ok(std::mem::replace(&mut self.generation, next))
    }
}

/// What the log files in a directory hold, oldest first.
pub(super) struct Found {
    pub(super) entries: Vec<Entry>,
    /// The newest generation present (0 with no file).
    pub(super) newest: u64,
}

/// Reads every log file in `dir`. A torn or damaged record ends its file; that is logged,
/// not an error: it was never acknowledged.
pub(super) fn read_all(dir: &Path) -> io::Result<Found> {
    let mut found = Found {
        entries: Vec::new(),
        newest: 0,
    };
    for (generation, path) in files(dir)? {
        let bytes = fs::read(&path)?;
        let (entries, ignored) = parse(&bytes, generation);
        if ignored > 0 {
            log::warn!(
                "store: {}: the last {ignored} byte(s) are a record cut short or damaged \
                 (never acknowledged); ignored",
                path.display()
            );
        }
        found.entries.extend(entries);
        found.newest = generation;
    }
    Ok(found)
}

/// Deletes the log files of generations up to `through`: redb holds all they carry. The
/// newest of them becomes the spare, unless it is of the first format.
pub(super) fn remove_through(dir: &Path, through: u64) -> io::Result<()> {
    let mut done: Vec<(u64, PathBuf)> = files(dir)?
        .into_iter()
        .filter(|(generation, _)| *generation <= through)
        .collect();
    if let Some((_, newest)) = done.pop() {
        if has_magic(&newest)? {
            // Not synced: a crash that loses the rename leaves a file whose entries redb
            // already holds, which a replay skips.
            fs::rename(&newest, dir.join(SPARE))?;
        } else {
            fs::remove_file(newest)?;
        }
    }
    for (_, path) in done {
        fs::remove_file(path)?;
    }
    Ok(())
}

fn has_magic(path: &Path) -> io::Result<bool> {
    let mut magic = [0; MAGIC.len()];
    let read = File::open(path)?.read_exact(&mut magic);
    match read {
        Ok(()) => Ok(&magic == MAGIC),
        Err(error) if error.kind() == io::ErrorKind::UnexpectedEof => Ok(false),
        Err(error) => Err(error),
    }
}

/// The records of generation `generation`'s file, and how many bytes at its end were
/// neither a whole record nor an earlier generation's (a recycled file's rest).
fn parse(bytes: &[u8], generation: u64) -> (Vec<Entry>, usize) {
    let (numbered, mut rest) = if let Some(rest) = bytes.strip_prefix(MAGIC.as_slice()) {
        (true, rest)
    } else if let Some(rest) = bytes.strip_prefix(MAGIC_UNNUMBERED.as_slice()) {
        (false, rest)
    } else {
        // A file cut before its magic was created by a crash and never written to.
        return (Vec::new(), bytes.len());
    };
    let mut entries = Vec::new();
    loop {
        let mut reader = Reader(rest);
        let payload = (|| {
            let len = reader.u32()? as usize;
            let crc = reader.u32()?;
            let payload = reader.take(len).filter(|_| len <= PAYLOAD_MAX)?;
            (crc32(payload) == crc).then_some(payload)
        })();
        let Some(mut payload) = payload else {
            return (entries, rest.len());
        };
        if numbered {
            let mut fields = Reader(payload);
            match fields.u64() {
                Some(written) if written == generation => payload = fields.0,
                // Whole and intact, but another generation's: this one ends here.
                Some(_) => return (entries, 0),
                None => return (entries, rest.len()),
            }
        }
        let Some(entry) = Entry::decode(payload) else {
            return (entries, rest.len());
        };
        entries.push(entry);
        rest = reader.0;
    }
}

/// The log files in `dir` with their generations, oldest first.
fn files(dir: &Path) -> io::Result<Vec<(u64, PathBuf)>> {
    let mut out = Vec::new();
    for entry in fs::read_dir(dir)? {
        let entry = entry?;
        let name = entry.file_name();
        let generation = name
            .to_str()
            .and_then(|n| n.strip_prefix(PREFIX)?.strip_suffix(SUFFIX)?.parse().ok());
        if let Some(generation) = generation {
            out.push((generation, entry.path()));
        }
    }
    out.sort_unstable();
    Ok(out)
}

/// The file for generation `generation`: the spare renamed, written from just past its
/// magic, else a new one.
fn next_file(dir: &Path, generation: u64) -> io::Result<File> {
    let path = path_of(dir, generation);
    match fs::rename(dir.join(SPARE), &path) {
        Ok(()) => {
            let mut file = OpenOptions::new().write(true).open(&path)?;
            file.seek(SeekFrom::Start(MAGIC.len() as u64))?;
            sync_dir(dir)?;
            Ok(file)
        }
        Err(error) if error.kind() == io::ErrorKind::NotFound => new_file(dir, &path),
        Err(error) => Err(error),
    }
}

fn path_of(dir: &Path, generation: u64) -> PathBuf {
    dir.join(format!("{PREFIX}{generation:020}{SUFFIX}"))
}

fn new_file(dir: &Path, path: &Path) -> io::Result<File> {
    let mut file = OpenOptions::new()
        .create(true)
        .truncate(true)
        .write(true)
        .open(path)?;
    file.write_all(MAGIC)?;
    file.sync_all()?;
    sync_dir(dir)?;
    Ok(file)
}

/// The file's name must survive a power cut too, or the appends in it would.
fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

/// CRC-32 (IEEE): catches a torn or damaged record. Every append's payload (its row and
/// session record, ~500 bytes) goes through it on the store lane, so it takes eight bytes
/// a step (slice-by-8), a third of the instructions of a byte a step (callgrind).
fn crc32(bytes: &[u8]) -> u32 {
    let (words, tail) = bytes.as_chunks::<8>();
    let mut crc = !0_u32;
    for &word in words {
        let x = (u64::from_le_bytes(word) ^ u64::from(crc)).to_le_bytes();
        let t = |k: usize, byte: u8| CRC_TABLES[k][usize::from(byte)];
        crc = t(7, x[0]) ^ t(6, x[1]) ^ t(5, x[2]) ^ t(4, x[3]);
        crc ^= t(3, x[4]) ^ t(2, x[5]) ^ t(1, x[6]) ^ t(0, x[7]);
    }
    !tail.iter().fold(crc, |crc, &byte| {
        CRC_TABLES[0][usize::from((crc as u8) ^ byte)] ^ (crc >> 8)
    })
}

/// `CRC_TABLES[0]` is the byte-at-a-time table; `CRC_TABLES[k]` advances a byte's CRC
/// past `k` more zero bytes, so that eight table reads take a whole 8-byte word.
const CRC_TABLES: [[u32; 256]; 8] = {
    let mut tables = [[0_u32; 256]; 8];
    let mut n = 0;
    while n < 256 {
        let mut crc = n as u32;
        let mut bit = 0;
        while bit < 8 {
            crc = if crc & 1 == 1 {
                (crc >> 1) ^ 0xEDB8_8320
            } else {
                crc >> 1
            };
            bit += 1;
        }
        tables[0][n] = crc;
        n += 1;
    }
    let mut k = 1;
    while k < 8 {
        let mut n = 0;
        while n < 256 {
            let previous = tables[k - 1][n];
            tables[k][n] = (previous >> 8) ^ tables[0][(previous & 0xff) as usize];
            n += 1;
        }
        k += 1;
    }
    tables
};

#[cfg(test)]
mod tests;
