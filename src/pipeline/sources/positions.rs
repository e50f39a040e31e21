//! Where followed files stand: each record read from one carries a
//! [`FileMark`]; the writer keeps the marks of what it has handed to the
//! sinks ([`FileProgress`]) and, at each checkpoint, saves them to the
//! positions file under `engine.data_dir`. A restart resumes each file at
//! its saved position, so no line is skipped, and after a clean stop none
//! is read twice (after a crash, the lines since the last checkpoint are:
//! at-least-once, like Kafka offsets).
//!
//! Files are known by a fingerprint of their beginning, not by path or
//! inode: a rotated file keeps its fingerprint under its new name, and a
//! new file at the old path has its own.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// The positions file's name under `engine.data_dir`.
pub const POSITIONS_FILE: &str = "file-positions.json";

/// Layout version of the positions file; another is refused, not guessed at.
const POSITIONS_VERSION: u32 = 1;

/// A followed file: the source reading it and its content fingerprint.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct FileKey {
    /// The name of the source that reads it.
    pub source: String,
    /// The fingerprint of the file's beginning.
    pub fingerprint: Fingerprint,
}

/// A file's identity by content: the SHA-256 of its first `bytes` bytes,
/// `bytes` being what the file held (up to [`Fingerprint::MAX_BYTES`]) when
/// it was first seen. Appending never changes it; a rotation moves it with
/// the file. Long enough to tell apart files that share a header (Zeek
/// logs share their first lines, and differ at `#open`).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Fingerprint {
    /// How many bytes from the start are hashed.
    pub bytes: u64,
    /// Hex SHA-256 of those bytes.
    pub sha256: String,
}

impl Fingerprint {
    /// The most bytes a fingerprint covers.
    pub const MAX_BYTES: u64 = 4096;

    /// The fingerprint of `prefix`, the beginning of a file.
    pub fn of(prefix: &[u8]) -> Fingerprint {
        use sha2::Digest;
        Fingerprint {
            bytes: prefix.len() as u64,
            sha256: crate::vocab::text::hex(&sha2::Sha256::digest(prefix)),
        }
    }
}

/// How far into a file the input has been handled.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct FilePosition {
    /// Bytes from the start of the file (decompressed, for gzip) to the
    /// next line to read.
    pub offset: u64,
    /// Lines before that point, so line numbers go on after a restart.
    pub line: u64,
}

/// Where a followed file stands once the record carrying this is handled.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileMark {
    /// The file.
    pub key: Arc<FileKey>,
    /// Its path when the record was read (for people reading the positions).
    pub path: Arc<str>,
    /// The position after the record.
    pub position: FilePosition,
}

/// The positions of followed files handled so far. Records of one file are
/// handled in the order they were read, so the last mark of a file wins:
/// after a copy-truncate rotation a position may go back to the start.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FileProgress {
    files: BTreeMap<Arc<FileKey>, (Arc<str>, FilePosition)>,
}

impl FileProgress {
    /// Notes that the record carrying `mark` has been handled.
    pub fn advance(&mut self, mark: &FileMark) {
        match self.files.get_mut(&mark.key) {
            Some(entry) => *entry = (mark.path.clone(), mark.position),
            None => {
                self.files
                    .insert(mark.key.clone(), (mark.path.clone(), mark.position));
            }
        }
    }

    /// Takes in `later`, handled after everything here.
    pub fn merge(&mut self, later: &FileProgress) {
        for (key, (path, position)) in &later.files {
            self.files.insert(key.clone(), (path.clone(), *position));
        }
    }

    /// No position noted.
    pub fn is_empty(&self) -> bool {
        self.files.is_empty()
    }

    /// The saved position of each file the source `source` read.
    pub fn of_source(&self, source: &str) -> BTreeMap<Fingerprint, FilePosition> {
        self.files
            .iter()
            .filter(|(key, _)| key.source == source)
            .map(|(key, (_, position))| (key.fingerprint.clone(), *position))
            .collect()
    }

    /// The positions file's content.
    pub fn encode(&self) -> Vec<u8> {
        let files = self
            .files
            .iter()
            .map(|(key, (path, position))| SavedFile {
                source: key.source.clone(),
                fingerprint_bytes: key.fingerprint.bytes,
                fingerprint_sha256: key.fingerprint.sha256.clone(),
                path: path.to_string(),
                offset: position.offset,
                line: position.line,
            })
            .collect();
        // Serialising plain strings and numbers cannot fail.
        serde_json::to_vec_pretty(&SavedPositions {
            version: POSITIONS_VERSION,
            files,
        })
        .unwrap_or_default()
    }

    /// Reads the positions file at `path`; empty when there is none yet.
    pub fn load(path: &Path) -> Result<FileProgress, PositionsError> {
        let bytes = match std::fs::read(path) {
            Ok(bytes) => bytes,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Ok(FileProgress::default())
            }
            Err(source) => {
                return Err(PositionsError::Io {
                    path: path.to_path_buf(),
                    source,
                })
            }
        };
        let saved: SavedPositions =
            serde_json::from_slice(&bytes).map_err(|e| PositionsError::Corrupt {
                path: path.to_path_buf(),
                message: e.to_string(),
            })?;
        if saved.version != POSITIONS_VERSION {
            return Err(PositionsError::Corrupt {
                path: path.to_path_buf(),
                message: format!(
                    "version {}, this tocsin reads version {POSITIONS_VERSION}",
                    saved.version
                ),
            });
        }
        let mut progress = FileProgress::default();
        for f in saved.files {
            progress.advance(&FileMark {
                key: Arc::new(FileKey {
                    source: f.source,
                    fingerprint: Fingerprint {
                        bytes: f.fingerprint_bytes,
                        sha256: f.fingerprint_sha256,
                    },
                }),
                path: f.path.into(),
                position: FilePosition {
                    offset: f.offset,
                    line: f.line,
                },
            });
        }
        Ok(progress)
    }
}

/// The positions file could not be read.
#[derive(Debug, thiserror::Error)]
pub enum PositionsError {
    /// Reading failed.
    #[error("file positions {path}: {source}")]
    Io {
        /// The positions file.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// The content is not a positions file of this version.
    #[error("file positions {path}: not a positions file: {message} (move it away to start over)")]
    Corrupt {
        /// The positions file.
        path: PathBuf,
        /// What is wrong with it.
        message: String,
    },
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct SavedPositions {
    version: u32,
    files: Vec<SavedFile>,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct SavedFile {
    source: String,
    fingerprint_bytes: u64,
    fingerprint_sha256: String,
    path: String,
    offset: u64,
    line: u64,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mark(source: &str, beginning: &str, offset: u64) -> FileMark {
        FileMark {
            key: Arc::new(FileKey {
                source: source.into(),
                fingerprint: Fingerprint::of(beginning.as_bytes()),
            }),
            path: format!("/var/log/{beginning}.log").into(),
            position: FilePosition {
                offset,
                line: offset / 10,
            },
        }
    }

    #[test]
    fn the_last_mark_of_a_file_wins_even_when_it_goes_back() {
        let mut earlier = FileProgress::default();
        earlier.advance(&mark("s", "aa", 500));
        earlier.advance(&mark("s", "bb", 70));
        let mut later = FileProgress::default();
        later.advance(&mark("s", "aa", 20)); // copy-truncate: back to the start
        earlier.merge(&later);
        let positions = earlier.of_source("s");
        assert_eq!(positions[&Fingerprint::of(b"aa")].offset, 20);
        assert_eq!(positions[&Fingerprint::of(b"bb")].offset, 70);
        assert!(earlier.of_source("other").is_empty());
    }

    #[test]
    fn positions_survive_a_save_and_load() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(POSITIONS_FILE);
        assert!(FileProgress::load(&path).unwrap().is_empty());
        let mut progress = FileProgress::default();
        progress.advance(&mark("auth", "aa", 1234));
        progress.advance(&mark("web", "aa", 99));
        crate::vocab::atomic::write_atomic(&path, &progress.encode()).unwrap();
        assert_eq!(FileProgress::load(&path).unwrap(), progress);
    }

    #[test]
    fn a_damaged_positions_file_is_an_error_naming_it() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(POSITIONS_FILE);
        for bad in [&b"{not json"[..], br#"{"version": 9, "files": []}"#] {
            std::fs::write(&path, bad).unwrap();
            let err = FileProgress::load(&path).unwrap_err().to_string();
            assert!(err.contains(POSITIONS_FILE), "{err}");
        }
    }
}
