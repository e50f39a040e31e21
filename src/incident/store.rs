//! The durable alert state outside Kafka: a JSON-lines journal, one alert
//! record per line, the last line per alert id winning. It is appended to
//! as alerts change and rewritten compacted when opened.
//!
//! The journal is evidence (ISO 27001 A.16), so it is tamper-evident: every
//! line carries `"prev"`, the SHA-256 of the line before it, as written.
//! Changing, removing or inserting a line breaks the chain at the next one,
//! which [`verify`] names (`tocsin report --verify`). The first line of a
//! file carries the hash of the last line of the file it was compacted from
//! (zeros for a new journal), so a compaction continues the chain. What the
//! chain cannot show by itself is a change to the last lines together with
//! every hash after them: an auditor records the head [`verify`] prints
//! (also logged at each start) and compares it the next time.
//!
//! (On Kafka the same records go to a compacted topic keyed by alert id:
//! `pipeline::kafka::state`.)

use super::{Change, TrackedAlert};
use sha2::{Digest, Sha256};
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

/// The hash a journal line chains to: SHA-256 of its bytes, as written.
type LineHash = [u8; 32];

/// What the first line of a new journal chains to.
const GENESIS: LineHash = [0; 32];

fn line_hash(line: &[u8]) -> LineHash {
    Sha256::digest(line).into()
}

/// `value` (an alert record or a deletion) as a journal line chained to `prev`.
fn chained_line(value: &impl serde::Serialize, prev: &LineHash) -> serde_json::Result<Vec<u8>> {
    let mut record = serde_json::to_value(value)?;
    if let serde_json::Value::Object(map) = &mut record {
        map.insert(
            "prev".into(),
            serde_json::Value::String(crate::vocab::text::hex(prev)),
        );
    }
    serde_json::to_vec(&record)
}

/// An intact chain: how many records, what the first line chains to, and
/// the head (the hash of the last line) to record for the next check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Chain {
    /// Records (lines) checked.
    pub records: usize,
    /// The hash the first line chains to: zeros, or the head of the
    /// journal it was compacted from.
    pub anchor: String,
    /// The hash of the last line.
    pub head: String,
}

/// The first record at which a journal's chain breaks.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{file}:{line}: {reason}")]
pub struct ChainBreak {
    /// The journal.
    pub file: String,
    /// The 1-based line where the break shows.
    pub line: usize,
    /// What does not hold, naming the record that was changed.
    pub reason: String,
}

/// Checks a journal's hash chain line by line.
pub fn verify(path: &Path) -> Result<Result<Chain, ChainBreak>, StoreError> {
    let text = std::fs::read(path).map_err(io(path))?;
    let file = path.display().to_string();
    let broken = |line: usize, reason: String| ChainBreak {
        file: file.clone(),
        line,
        reason,
    };
    let mut previous: Option<(usize, LineHash, String)> = None;
    let mut anchor = None;
    let mut records = 0;
    for (n, line) in text.split(|&b| b == b'\n').enumerate() {
        let number = n + 1;
        if line.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        records += 1;
        let record: serde_json::Value = match serde_json::from_slice(line) {
            Ok(v) => v,
            Err(e) => return Ok(Err(broken(number, format!("not a JSON record: {e}")))),
        };
        let id = record["id"]
            .as_str()
            .or(record["deleted"].as_str())
            .unwrap_or("?")
            .to_string();
        let Some(prev) = record["prev"].as_str() else {
            return Ok(Err(broken(
                number,
                format!(
                    "record of alert {id} has no `prev` hash: written before chaining, or forged"
                ),
            )));
        };
        match &previous {
            None => anchor = Some(prev.to_string()),
            Some((at, hash, previous_id)) => {
                let expected = crate::vocab::text::hex(hash);
                if prev != expected {
                    return Ok(Err(broken(
                        number,
                        format!(
                            "the chain breaks here: this record says the one before hashes to {prev}, but line {at} (alert {previous_id}) hashes to {expected}; line {at} was changed, or records between were removed or inserted"
                        ),
                    )));
                }
            }
        }
        previous = Some((number, line_hash(line), id));
    }
    Ok(Ok(Chain {
        records,
        anchor: anchor.unwrap_or_else(|| crate::vocab::text::hex(&GENESIS)),
        head: crate::vocab::text::hex(&previous.map_or(GENESIS, |(_, h, _)| h)),
    }))
}

/// The hash of a file's last non-blank line: what a compacted copy chains to.
fn head_of(path: &Path) -> Result<LineHash, StoreError> {
    match std::fs::read(path) {
        Ok(text) => Ok(text
            .split(|&b| b == b'\n')
            .rfind(|l| !l.iter().all(u8::is_ascii_whitespace))
            .map_or(GENESIS, line_hash)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(GENESIS),
        Err(e) => Err(io(path)(e)),
    }
}

/// The open journal.
pub struct Journal {
    path: PathBuf,
    out: BufWriter<std::fs::File>,
    /// The hash of the last line written: the next line's `prev`.
    head: LineHash,
}

impl Journal {
    /// Reads the journal, rewrites it compacted and opens it for appending.
    pub fn open(path: &Path) -> Result<(Journal, Vec<TrackedAlert>, Vec<String>), StoreError> {
        let (alerts, mut problems) = read(path)?;
        if path.exists() {
            // A broken chain is evidence: keep the file as it was, say so,
            // and go on with the state it holds.
            if let Err(chain_break) = verify(path)? {
                let mut kept = path.as_os_str().to_owned();
                kept.push(format!(
                    ".broken-{}",
                    chrono::Utc::now().format("%Y%m%dT%H%M%SZ")
                ));
                std::fs::copy(path, &kept).map_err(io(path))?;
                problems.push(format!(
                    "hash chain broken, the journal is kept as {}: {chain_break}",
                    PathBuf::from(kept).display()
                ));
            }
        }
        let mut head = head_of(path)?;
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(io(path))?;
        }
        let mut tmp = path.as_os_str().to_owned();
        tmp.push(".tmp");
        let tmp = PathBuf::from(tmp);
        {
            let mut w = BufWriter::new(std::fs::File::create(&tmp).map_err(io(&tmp))?);
            for a in &alerts {
                let line = chained_line(a, &head).map_err(|e| io(&tmp)(e.into()))?;
                w.write_all(&line).map_err(io(&tmp))?;
                w.write_all(b"\n").map_err(io(&tmp))?;
                head = line_hash(&line);
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
                head,
            },
            alerts,
            problems,
        ))
    }

    /// Appends one line per change; durable only after [`Journal::sync`].
    pub fn write(&mut self, changes: &[Change]) -> Result<(), StoreError> {
        for change in changes {
            let line = match change {
                Change::Put(a) => chained_line(a.as_ref(), &self.head),
                Change::Delete(id) => chained_line(
                    &Deleted {
                        deleted: id.clone(),
                    },
                    &self.head,
                ),
            }
            .map_err(|e| io(&self.path)(e.into()))?;
            self.out.write_all(&line).map_err(io(&self.path))?;
            self.out.write_all(b"\n").map_err(io(&self.path))?;
            self.head = line_hash(&line);
        }
        Ok(())
    }

    /// The hash of the last line written, as [`verify`] prints it.
    pub fn head(&self) -> String {
        crate::vocab::text::hex(&self.head)
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
    fn the_chain_holds_across_writes_and_compaction_and_names_an_edited_record() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("alerts.jsonl");
        let (mut j, _, _) = Journal::open(&path).unwrap();
        j.write(&[
            Change::Put(Box::new(alert("a", Status::Open))),
            Change::Put(Box::new(alert("b", Status::Open))),
            Change::Put(Box::new(alert("c", Status::Open))),
        ])
        .unwrap();
        j.sync().unwrap();
        let head = j.head();
        drop(j);
        let chain = verify(&path).unwrap().unwrap();
        assert_eq!(chain.records, 3);
        assert_eq!(chain.anchor, "0".repeat(64), "a new journal");
        assert_eq!(chain.head, head);

        // Compaction continues the chain from the old head.
        let (j, _, problems) = Journal::open(&path).unwrap();
        assert!(problems.is_empty(), "{problems:?}");
        drop(j);
        let compacted = verify(&path).unwrap().unwrap();
        assert_eq!(compacted.anchor, head);

        // One edited line: the next record names it.
        let text = std::fs::read_to_string(&path).unwrap();
        let edited = text.replacen("\"status\":\"open\"", "\"status\":\"resolved\"", 1);
        assert_ne!(edited, text);
        std::fs::write(&path, edited).unwrap();
        let broken = verify(&path).unwrap().unwrap_err();
        assert_eq!(broken.line, 2, "{broken}");
        assert!(
            broken.reason.contains("line 1 (alert a) hashes to"),
            "{broken}"
        );

        // A removed line too.
        let lines: Vec<&str> = text.lines().collect();
        std::fs::write(&path, format!("{}\n{}\n", lines[0], lines[2])).unwrap();
        assert_eq!(verify(&path).unwrap().unwrap_err().line, 2);

        // Opening a broken journal keeps it as evidence and says so.
        let (_, loaded, problems) = Journal::open(&path).unwrap();
        assert_eq!(loaded.len(), 2);
        assert!(problems[0].contains("hash chain broken"), "{problems:?}");
        let kept = std::fs::read_dir(dir.path())
            .unwrap()
            .filter(|e| {
                e.as_ref()
                    .unwrap()
                    .file_name()
                    .to_string_lossy()
                    .contains(".broken-")
            })
            .count();
        assert_eq!(kept, 1);
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
