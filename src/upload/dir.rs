//! The local backend (the default): files under `DATA_DIR/uploads/<key>`, their
//! metadata in `DATA_DIR/uploads/.meta/<file_id>.json`. A file is written to
//! `.tmp/<file_id>` and renamed into place only when complete, so a reader never sees
//! half a file and an upload that dies leaves only a temp file, removed at once (and
//! any left by a crash at start-up).

use std::fs::{self, File};
use std::io::Write;
use std::path::{Path, PathBuf};

use super::signed::Signer;
use super::{BlobError, BlobWriter, Blobs, FileMeta, Served};

pub struct DirBlobs {
    root: PathBuf,
    /// `<path prefix>/files`: where `P/files/:file_id` is served.
    files_path: String,
    signer: Signer,
}

impl DirBlobs {
    /// Creates the folders, clearing temp files an earlier process left behind.
    pub fn open(root: PathBuf, files_path: String, signer: Signer) -> Result<DirBlobs, BlobError> {
        let tmp = root.join(".tmp");
        if tmp.exists() {
            fs::remove_dir_all(&tmp)?;
        }
        fs::create_dir_all(&tmp)?;
        fs::create_dir_all(root.join(".meta"))?;
        Ok(DirBlobs {
            root,
            files_path,
            signer,
        })
    }

    fn meta_path(&self, file_id: &str) -> PathBuf {
        self.root.join(".meta").join(format!("{file_id}.json"))
    }
}

impl Blobs for DirBlobs {
    fn create(&self, meta: &FileMeta) -> Result<Box<dyn BlobWriter>, BlobError> {
        let temp = self.root.join(".tmp").join(&meta.file_id);
        let file = File::create(&temp)?;
        Ok(Box::new(DirWriter {
            file,
            temp: Some(temp),
            dest: self.root.join(&meta.key),
            meta_path: self.meta_path(&meta.file_id),
        }))
    }

    fn meta(&self, file_id: &str) -> Result<FileMeta, BlobError> {
        let raw = fs::read(self.meta_path(file_id))?;
        serde_json::from_slice(&raw).map_err(|error| BlobError::Corrupt(error.to_string()))
    }

    fn serve(&self, meta: &FileMeta, _exp: u64) -> Result<Served, BlobError> {
        Ok(Served::Bytes(fs::read(self.root.join(&meta.key))?))
    }

    fn delete(&self, meta: &FileMeta) -> Result<(), BlobError> {
        // The metadata first: once it is gone the file cannot be found, even if
        // removing the file itself fails half-way.
        fs::remove_file(self.meta_path(&meta.file_id))?;
        match fs::remove_file(self.root.join(&meta.key)) {
            Err(error) if error.kind() != std::io::ErrorKind::NotFound => Err(error.into()),
            _ => Ok(()),
        }
    }

    fn url(&self, meta: &FileMeta, exp: u64) -> Result<String, BlobError> {
        Ok(format!(
            "{}/{}?{}",
            self.files_path,
            meta.file_id,
            self.signer.query(&meta.file_id, exp)
        ))
    }
}

struct DirWriter {
    file: File,
    /// `None` once renamed into place.
    temp: Option<PathBuf>,
    dest: PathBuf,
    meta_path: PathBuf,
}

impl BlobWriter for DirWriter {
    fn write(&mut self, data: &[u8]) -> Result<(), BlobError> {
        Ok(self.file.write_all(data)?)
    }

    fn commit(mut self: Box<Self>, meta: &FileMeta) -> Result<(), BlobError> {
        self.file.sync_all()?;
        let Some(temp) = self.temp.take() else {
            return Ok(());
        };
        if let Some(folder) = self.dest.parent() {
            fs::create_dir_all(folder)?;
        }
        if let Err(error) = fs::rename(&temp, &self.dest) {
            let _ = fs::remove_file(&temp);
            return Err(error.into());
        }
        let json =
            serde_json::to_vec(meta).map_err(|error| BlobError::Corrupt(error.to_string()))?;
        let written = write_atomically(&self.meta_path, &json);
        if written.is_err() {
            // Without its metadata the file could never be served or deleted.
            let _ = fs::remove_file(&self.dest);
        }
        written
    }
}

impl Drop for DirWriter {
    fn drop(&mut self) {
        if let Some(temp) = self.temp.take() {
            let _ = fs::remove_file(temp);
        }
    }
}

fn write_atomically(path: &Path, data: &[u8]) -> Result<(), BlobError> {
    let temp = path.with_extension("json.tmp");
    let mut file = File::create(&temp)?;
    file.write_all(data)?;
    file.sync_all()?;
    fs::rename(&temp, path)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scratch(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("chatbox-dir-{name}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        dir
    }

    fn meta(id: &str) -> FileMeta {
        FileMeta {
            file_id: id.into(),
            owner: "u1".into(),
            key: format!("chat-files/u1/2026/12/{id}"),
            name: "a.txt".into(),
            content_type: "text/plain".into(),
            size: 5,
            created: 0,
        }
    }

    #[test]
    fn a_file_appears_only_when_committed_and_goes_when_deleted() {
        let root = scratch("commit");
        let blobs =
            DirBlobs::open(root.clone(), "/p/files".into(), Signer::new(b"k")).expect("open");
        let m = meta("f1");
        let mut writer = blobs.create(&m).expect("create");
        writer.write(b"hello").expect("write");
        assert!(matches!(blobs.meta("f1"), Err(BlobError::NotFound)));
        writer.commit(&m).expect("commit");
        assert_eq!(blobs.meta("f1").expect("meta"), m);
        let Served::Bytes(bytes) = blobs.serve(&m, 10).expect("serve") else {
            panic!("the bytes themselves");
        };
        assert_eq!(bytes, b"hello");
        assert!(fs::read_dir(root.join(".tmp"))
            .expect("tmp")
            .next()
            .is_none());
        assert!(blobs
            .url(&m, 10)
            .expect("url")
            .starts_with("/p/files/f1?exp=10&sig="));
        blobs.delete(&m).expect("delete");
        assert!(matches!(blobs.meta("f1"), Err(BlobError::NotFound)));
        assert!(!root.join(&m.key).exists());
        fs::remove_dir_all(root).expect("clean up");
    }

    #[test]
    fn a_dropped_writer_leaves_nothing() {
        let root = scratch("drop");
        let blobs =
            DirBlobs::open(root.clone(), "/p/files".into(), Signer::new(b"k")).expect("open");
        let mut writer = blobs.create(&meta("f2")).expect("create");
        writer.write(b"half").expect("write");
        drop(writer);
        assert!(fs::read_dir(root.join(".tmp"))
            .expect("tmp")
            .next()
            .is_none());
        fs::remove_dir_all(root).expect("clean up");
    }
}
