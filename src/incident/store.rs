//! The durable alert state outside Kafka: a JSON-lines journal, one alert
//! record per line, the last line per alert id winning. It is appended to
//! as alerts change and rewritten compacted when opened.
//!
//! (On Kafka the same records go to a compacted topic keyed by alert id:
//! `pipeline::kafka::state`.)

use super::{Change, TrackedAlert};
use std::collections::HashMap;
use std::io::{BufRead, BufWriter, Write};
use std::path::{Path, PathBuf};

/// Why the alert-state journal could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// A file operation failed.
    #[error("alert state {path}: {source}")]
    Io {
        /// The journal, or its `.tmp` copy while it is rewritten.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> StoreError + '_ {
    move |source| StoreError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// A journal line that deletes an alert (it was pruned).
#[derive(serde::Serialize, serde::Deserialize)]
struct Deleted {
    deleted: String,
}

/// One stored record: the alert's JSON (or `None` for a deletion) under its id.
pub fn encode(change: &Change) -> (String, Option<Vec<u8>>) {
    match change {
        Change::Put(a) => (a.id.clone(), serde_json::to_vec(a.as_ref()).ok()),
        Change::Delete(id) => (id.clone(), None),
    }
}

/// Parses one stored alert record.
pub fn decode(bytes: &[u8]) -> Result<TrackedAlert, String> {
    serde_json::from_slice(bytes).map_err(|e| e.to_string())
}

/// Reads a journal: the latest record per alert, and the problems met
/// (`line N: why`). Unreadable lines are skipped, not fatal: one torn write
/// must not cost every other alert's state.
pub fn read(path: &Path) -> Result<(Vec<TrackedAlert>, Vec<String>), StoreError> {
    let file = match std::fs::File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok((Vec::new(), Vec::new())),
        Err(e) => return Err(io(path)(e)),
    };
    let mut latest: HashMap<String, (usize, TrackedAlert)> = HashMap::new();
    let mut problems = Vec::new();
    for (n, line) in std::io::BufReader::new(file).split(b'\n').enumerate() {
        let line = line.map_err(io(path))?;
        if line.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        if let Ok(d) = serde_json::from_slice::<Deleted>(&line) {
            latest.remove(&d.deleted);
            continue;
        }
        match decode(&line) {
            Ok(a) => {
                latest.insert(a.id.clone(), (n, a));
            }
            Err(e) => problems.push(format!("{}:{}: {e}", path.display(), n + 1)),
        }
    }
    // Journal order, so a rewrite keeps it.
    let mut alerts: Vec<(usize, TrackedAlert)> = latest.into_values().collect();
    alerts.sort_by_key(|(n, _)| *n);
    Ok((alerts.into_iter().map(|(_, a)| a).collect(), problems))
}

/// The open journal.
pub struct Journal {
    path: PathBuf,
    out: BufWriter<std::fs::File>,
}

impl Journal {
    /// Reads the journal, rewrites it compacted and opens it for appending.
    pub fn open(path: &Path) -> Result<(Journal, Vec<TrackedAlert>, Vec<String>), StoreError> {
        let (alerts, problems) = read(path)?;
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(io(path))?;
        }
        let mut tmp = path.as_os_str().to_owned();
        tmp.push(".tmp");
        let tmp = PathBuf::from(tmp);
        {
            let mut w = BufWriter::new(std::fs::File::create(&tmp).map_err(io(&tmp))?);
            for a in &alerts {
                serde_json::to_writer(&mut w, a).map_err(|e| io(&tmp)(e.into()))?;
                w.write_all(b"\n").map_err(io(&tmp))?;
            }
            let file = w.into_inner().map_err(|e| io(&tmp)(e.into_error()))?;
            file.sync_all().map_err(io(&tmp))?;
        }
        std::fs::rename(&tmp, path).map_err(io(path))?;
        let file = std::fs::OpenOptions::new()
            .append(true)
            .open(path)
            .map_err(io(path))?;
        Ok((
            Journal {
                path: path.to_path_buf(),
                out: BufWriter::new(file),
            },
            alerts,
            problems,
        ))
    }

    /// Appends one line per change; durable only after [`Journal::sync`].
    pub fn write(&mut self, changes: &[Change]) -> Result<(), StoreError> {
        for change in changes {
            let line = match change {
                Change::Put(a) => serde_json::to_vec(a.as_ref()),
                Change::Delete(id) => serde_json::to_vec(&Deleted {
                    deleted: id.clone(),
                }),
            }
            .map_err(|e| io(&self.path)(e.into()))?;
            self.out.write_all(&line).map_err(io(&self.path))?;
            self.out.write_all(b"\n").map_err(io(&self.path))?;
        }
        Ok(())
    }

    /// Makes everything written durable.
    pub fn sync(&mut self) -> Result<(), StoreError> {
        self.out.flush().map_err(io(&self.path))?;
        self.out.get_ref().sync_data().map_err(io(&self.path))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::alert::{AlertType, Severity};
    use crate::incident::Status;

    fn alert(id: &str, status: Status) -> TrackedAlert {
        let t = "2026-11-20T10:00:00Z".parse().unwrap();
        TrackedAlert {
            id: id.into(),
            alert_type: AlertType::StaticRule,
            severity: Severity::High,
            score: None,
            rule_id: "r".into(),
            rule_title: "R".into(),
            source: "s".into(),
            text: "t".into(),
            message: "m".into(),
            link: "l".into(),
            detected_at: t,
            due_at: t,
            status,
            history: vec![],
            escalations: vec![],
            breached_at: None,
        }
    }

    #[test]
    fn the_journal_keeps_the_latest_record_per_alert_across_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state/alerts.jsonl");
        let (mut j, loaded, _) = Journal::open(&path).unwrap();
        assert!(loaded.is_empty());
        j.write(&[
            Change::Put(Box::new(alert("a", Status::Open))),
            Change::Put(Box::new(alert("b", Status::Open))),
            Change::Put(Box::new(alert("a", Status::Triaged))),
            Change::Delete("b".into()),
        ])
        .unwrap();
        j.sync().unwrap();
        drop(j);
        let (_, loaded, problems) = Journal::open(&path).unwrap();
        assert!(problems.is_empty());
        assert_eq!(loaded, vec![alert("a", Status::Triaged)]);
        let compacted = std::fs::read_to_string(&path).unwrap();
        assert_eq!(compacted.lines().count(), 1, "rewritten compacted");
    }

    #[test]
    fn a_torn_line_is_reported_and_skipped_not_fatal() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("alerts.jsonl");
        let good = serde_json::to_string(&alert("a", Status::Open)).unwrap();
        std::fs::write(&path, format!("{good}\n{{\"id\":\"b\",\"ty")).unwrap();
        let (alerts, problems) = read(&path).unwrap();
        assert_eq!(alerts.len(), 1);
        assert_eq!(problems.len(), 1);
        assert!(problems[0].contains("alerts.jsonl:2:"), "{problems:?}");
    }
}
