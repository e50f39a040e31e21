//! The model directory: one file per job, `<job name>.model.json`.
//!
//! A file records its format version and the job's analysis settings it
//! was trained for. A file that does not parse, has another version, or
//! was trained for different settings (another function, field, entity or
//! bucket span) is refused with a message that says which; the engine logs
//! it, moves the file aside (`.model.json.rejected`, so a downgrade does
//! not destroy a newer model) and the job retrains from the stream.

use super::detector::JobModel;
use crate::sigma::anomaly::AnomalyJob;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// Bumped whenever the saved shape or its meaning changes.
pub const MODEL_VERSION: u32 = 1;
const FORMAT: &str = "tocsin-anomaly-model";

/// Why a model file cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum ModelError {
    /// The file exists but could not be read.
    #[error("{path}: cannot read: {source}")]
    Read {
        /// The model file.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// The directory or the file could not be written.
    #[error("{path}: cannot write: {source}")]
    Write {
        /// The model file.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// Not JSON, not a tocsin model, or not the expected shape.
    #[error("{path}: not a tocsin model file (corrupt or truncated?): {reason}")]
    Corrupt {
        /// The model file.
        path: PathBuf,
        /// What did not parse.
        reason: String,
    },
    /// A model of another format version than [`MODEL_VERSION`].
    #[error("{path}: model format version {found}, this tocsin reads version {MODEL_VERSION}")]
    Version {
        /// The model file.
        path: PathBuf,
        /// The version the file says it is.
        found: u32,
    },
    /// Trained for another job id or other analysis settings.
    #[error("{path}: trained for {found}, but the job is now {expected}")]
    Incompatible {
        /// The model file.
        path: PathBuf,
        /// The job id and analysis the file was trained for.
        found: String,
        /// The job id and analysis of the job as loaded now.
        expected: String,
    },
}

#[derive(Serialize, Deserialize)]
struct Header {
    format: String,
    version: u32,
}

#[derive(Serialize, Deserialize)]
struct ModelFile {
    format: String,
    version: u32,
    job_id: String,
    /// The analysis the model was trained for, e.g. `high_count by user every 600s`.
    analysis: String,
    trained_at: chrono::DateTime<chrono::Utc>,
    model: JobModel,
}

/// What a model is valid for: a change to any of these makes it meaningless.
pub fn analysis_signature(job: &AnomalyJob) -> String {
    let s = &job.spec;
    format!(
        "{}({}) by [{}] over [{}] every {}s",
        s.function_name(),
        s.field.as_deref().unwrap_or(""),
        s.by.join(","),
        s.over.as_deref().unwrap_or(""),
        s.bucket_span.as_secs()
    )
}

/// The file of a job in `dir`: its name with anything but `[A-Za-z0-9_.-]` replaced.
pub fn model_path(dir: &Path, job: &AnomalyJob) -> PathBuf {
    let name: String = job
        .name()
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.') {
                c
            } else {
                '_'
            }
        })
        .collect();
    dir.join(format!("{name}.model.json"))
}

/// Loads a job's model; `Ok(None)` when there is no file yet.
pub fn load(dir: &Path, job: &AnomalyJob) -> Result<Option<JobModel>, ModelError> {
    let path = model_path(dir, job);
    let bytes = match std::fs::read(&path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(source) => return Err(ModelError::Read { path, source }),
    };
    let corrupt = |e: serde_json::Error| ModelError::Corrupt {
        path: path.clone(),
        reason: e.to_string(),
    };
    let header: Header = serde_json::from_slice(&bytes).map_err(corrupt)?;
    if header.format != FORMAT {
        return Err(ModelError::Corrupt {
            path,
            reason: format!("format is {:?}, expected {FORMAT:?}", header.format),
        });
    }
    if header.version != MODEL_VERSION {
        return Err(ModelError::Version {
            path,
            found: header.version,
        });
    }
    let file: ModelFile = serde_json::from_slice(&bytes).map_err(corrupt)?;
    let expected = analysis_signature(job);
    if file.job_id != job.rule.meta.id || file.analysis != expected {
        return Err(ModelError::Incompatible {
            path,
            found: format!("job {} {}", file.job_id, file.analysis),
            expected: format!("job {} {}", job.rule.meta.id, expected),
        });
    }
    Ok(Some(file.model))
}

/// Saves a job's model atomically (a temporary file renamed over the old one).
pub fn save(dir: &Path, job: &AnomalyJob, model: &JobModel) -> Result<PathBuf, ModelError> {
    let path = model_path(dir, job);
    let write = |source| ModelError::Write {
        path: path.clone(),
        source,
    };
    let file = ModelFile {
        format: FORMAT.to_string(),
        version: MODEL_VERSION,
        job_id: job.rule.meta.id.clone(),
        analysis: analysis_signature(job),
        trained_at: chrono::Utc::now(),
        model: model.clone(),
    };
    let bytes = serde_json::to_vec(&file).map_err(|e| write(std::io::Error::other(e)))?;
    crate::vocab::atomic::write_atomic(&path, &bytes).map_err(write)?;
    Ok(path)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sigma::rule::{parse_document, Document};
    use crate::sigma::yaml::parse_documents;

    fn job(function: &str) -> AnomalyJob {
        let text = format!("title: J\nname: failed/logins\nid: j1\nlogsource: {{product: t}}\ndetection:\n  s: {{a: 1}}\n  condition: s\nanomaly:\n  function: {function}\n  by: user\n");
        let docs = parse_documents(&text, &Default::default()).unwrap();
        match parse_document(&docs[0], &Default::default()) {
            Ok(Document::AnomalyJob(j)) => *j,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn a_saved_model_loads_back() {
        let dir = tempfile::tempdir().unwrap();
        let mut model = JobModel {
            buckets_closed: 7,
            ..Default::default()
        };
        model.normalizer.record(2.5);
        let path = save(dir.path(), &job("high_count"), &model).unwrap();
        assert!(path.ends_with("failed_logins.model.json"));
        let loaded = load(dir.path(), &job("high_count")).unwrap().unwrap();
        assert_eq!(loaded, model);
        assert!(load(tempfile::tempdir().unwrap().path(), &job("count"))
            .unwrap()
            .is_none());
    }

    #[test]
    fn corrupt_old_and_mismatched_files_are_refused_with_the_reason() {
        let dir = tempfile::tempdir().unwrap();
        let j = job("high_count");
        let path = model_path(dir.path(), &j);
        std::fs::write(&path, b"{\"format\": \"tocsin-anomaly-model\", \"vers").unwrap();
        let e = load(dir.path(), &j).unwrap_err().to_string();
        assert!(e.contains("corrupt or truncated"), "{e}");
        std::fs::write(
            &path,
            br#"{"format": "tocsin-anomaly-model", "version": 99}"#,
        )
        .unwrap();
        let e = load(dir.path(), &j).unwrap_err().to_string();
        assert!(e.contains("version 99"), "{e}");
        save(dir.path(), &j, &JobModel::default()).unwrap();
        let e = load(dir.path(), &job("high_mean\n  field: bytes"))
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("trained for job j1 high_count() by [user]"),
            "{e}"
        );
    }
}
