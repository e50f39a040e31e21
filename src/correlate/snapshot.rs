//! Correlation state on disk: the open windows together with the input
//! positions they reflect, so a restarted engine resumes them where they were.
//!
//! The file is replaced atomically (write a temporary file beside it, sync,
//! rename), so a crash leaves the previous snapshot or the new one, never a
//! torn file. A snapshot is written only after every alert before its
//! positions is acknowledged, and before those offsets are committed: the
//! committed offsets are never ahead of the snapshot, and records replayed
//! from before its positions are skipped by correlation (already counted).

use super::CorrelatorState;
use std::path::{Path, PathBuf};

/// Bumped when the layout changes; other versions are refused, not guessed at.
pub(crate) const SNAPSHOT_VERSION: u32 = 1;

/// The saved correlation state and the input positions it reflects.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Snapshot {
    /// The layout version; only the current one is read.
    pub version: u32,
    /// Next offset per (topic, partition) the state reflects.
    pub positions: Vec<(String, i32, i64)>,
    /// The correlator's open windows.
    pub correlation: CorrelatorState,
}

/// Why a snapshot could not be saved or read.
#[derive(Debug, thiserror::Error)]
pub enum SnapshotError {
    /// Reading or writing the file failed.
    #[error("correlation snapshot {path}: {source}")]
    Io {
        /// The snapshot file.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// The content is not a snapshot (not JSON, or not the expected shape).
    #[error("correlation snapshot {path}: not a snapshot: {message}")]
    Corrupt {
        /// Where the snapshot came from.
        path: PathBuf,
        /// The decoder's complaint.
        message: String,
    },
    /// A snapshot of another layout version, refused rather than guessed at.
    #[error("correlation snapshot {path}: version {found}, this tocsin reads version {SNAPSHOT_VERSION}")]
    Version {
        /// Where the snapshot came from.
        path: PathBuf,
        /// The version the snapshot says it is.
        found: u32,
    },
}

/// Reads the snapshot at `path`; `None` when there is none yet.
pub(crate) fn load(path: &Path) -> Result<Option<Snapshot>, SnapshotError> {
    match std::fs::read(path) {
        Ok(bytes) => decode(&bytes, path).map(Some),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(source) => Err(SnapshotError::Io {
            path: path.to_path_buf(),
            source,
        }),
    }
}

/// Reads a serialised snapshot; `origin` names where it came from in errors
/// (a file, or a Kafka topic and key).
pub(crate) fn decode(bytes: &[u8], origin: &Path) -> Result<Snapshot, SnapshotError> {
    #[derive(serde::Deserialize)]
    struct Versioned {
        version: u32,
    }
    let corrupt = |e: serde_json::Error| SnapshotError::Corrupt {
        path: origin.to_path_buf(),
        message: e.to_string(),
    };
    let v: Versioned = serde_json::from_slice(bytes).map_err(corrupt)?;
    if v.version != SNAPSHOT_VERSION {
        return Err(SnapshotError::Version {
            path: origin.to_path_buf(),
            found: v.version,
        });
    }
    serde_json::from_slice(bytes).map_err(corrupt)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn empty_state() -> CorrelatorState {
        serde_json::from_str(r#"{"groups":[],"newest":null,"newest_by_source":[]}"#).unwrap()
    }

    #[test]
    fn a_saved_snapshot_loads_back_and_a_missing_one_is_none() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("new-dir").join("state.json");
        assert!(load(&path).unwrap().is_none());
        let snap = Snapshot {
            version: SNAPSHOT_VERSION,
            positions: vec![("logs".into(), 2, 41)],
            correlation: empty_state(),
        };
        crate::vocab::atomic::write_atomic(&path, &serde_json::to_vec(&snap).unwrap()).unwrap();
        assert_eq!(load(&path).unwrap(), Some(snap));
    }

    #[test]
    fn corrupt_and_foreign_version_snapshots_are_clear_errors() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state.json");
        std::fs::write(&path, b"{\"version\": 1, \"positions\": [").unwrap();
        let err = load(&path).unwrap_err().to_string();
        assert!(err.contains("not a snapshot"), "{err}");
        std::fs::write(&path, b"{\"version\": 99}").unwrap();
        let err = load(&path).unwrap_err().to_string();
        assert!(err.contains("version 99"), "{err}");
    }
}
