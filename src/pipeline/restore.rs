//! Resuming correlation windows from a snapshot (a file or a compacted
//! topic) at start, with the input positions it reflects.

use super::kafka;
use super::kafka::progress::Progress;

/// Loads the latest snapshot from the state topic into `correlator`.
/// A missing topic is a configuration error; an unreadable snapshot is
/// logged and the engine starts with empty windows.
pub(super) fn restore_from_topic(
    topic: &kafka::state::StateTopic,
    properties: &[(String, String)],
    correlator: &mut crate::correlate::Correlator,
) -> Result<Progress, kafka::KafkaError> {
    let origin = std::path::PathBuf::from(format!("{}[{}]", topic.topic, topic.key));
    let decoded = match topic.load_latest(properties)? {
        None => Ok(None),
        Some(bytes) => crate::correlate::snapshot::decode(&bytes, &origin).map(Some),
    };
    Ok(restore_snapshot(decoded, &origin, correlator, || false))
}

/// Loads a correlation snapshot into `correlator`; returns the positions it
/// reflects. A missing file is a first start; an unreadable one is moved
/// aside with an error logged, and the engine starts with empty windows
/// rather than not at all.
pub(super) fn restore_correlation(
    path: &std::path::Path,
    correlator: &mut crate::correlate::Correlator,
) -> Progress {
    let move_aside = || {
        let mut aside = path.as_os_str().to_owned();
        aside.push(".unreadable");
        std::fs::rename(path, &aside).is_ok()
    };
    restore_snapshot(
        crate::correlate::snapshot::load(path),
        path,
        correlator,
        move_aside,
    )
}

fn restore_snapshot(
    loaded: Result<
        Option<crate::correlate::snapshot::Snapshot>,
        crate::correlate::snapshot::SnapshotError,
    >,
    path: &std::path::Path,
    correlator: &mut crate::correlate::Correlator,
    move_aside: impl FnOnce() -> bool,
) -> Progress {
    match loaded {
        Ok(Some(snap)) => {
            let groups = correlator.restore(snap.correlation);
            tracing::info!(
                groups,
                file = %path.display(),
                "correlation windows restored from the snapshot"
            );
            Progress::from_vec(snap.positions)
        }
        Ok(None) => Progress::default(),
        Err(e) => {
            let moved = move_aside();
            tracing::error!(
                error = %e,
                moved_aside = moved,
                "correlation snapshot unusable: starting with empty windows"
            );
            Progress::default()
        }
    }
}
