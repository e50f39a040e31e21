//! The `[engine]` section: which rules run, and how the pipeline's stages
//! are sized.

use serde::{Deserialize, Serialize};
use std::path::PathBuf;

/// Default longest record: 1 MiB, the largest message a Kafka broker
/// accepts by default.
pub const DEFAULT_MAX_RECORD_BYTES: usize = 1 << 20;

/// The `[engine]` section.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct EngineConfig {
    /// Rule files or folders (searched recursively for `.yml`/`.yaml`).
    pub rules: Vec<PathBuf>,
    /// A logsource mapping file replacing the built-in one.
    pub logsource_map: Option<PathBuf>,
    /// Records buffered between stages; bounds memory and applies backpressure.
    pub channel_capacity: usize,
    /// Detection threads; 0 means one per core.
    pub workers: usize,
    /// Longest record read (a line, or a Kafka message), in bytes. Longer
    /// ones are dead-lettered with their size and a prefix, never read into
    /// memory whole.
    pub max_record_bytes: usize,
    /// Where tocsin keeps what a restart needs: the followed files'
    /// positions (`file-positions.json`). Relative paths are from the
    /// working directory; created when first needed.
    pub data_dir: PathBuf,
    /// `tocsin run` reloads the rules when a file under `rules` (or the
    /// logsource mapping) changes; SIGHUP and `POST /reload` always do.
    pub watch_rules: bool,
    /// Whether parsed rule files are cached between loads, so a start-up
    /// or a reload parses only the files that changed (see `sigma::cache`).
    pub rule_cache: bool,
    /// Where the rule cache is kept; unset: `$XDG_CACHE_HOME/tocsin`, else
    /// `~/.cache/tocsin`.
    pub rule_cache_dir: Option<PathBuf>,
}

impl EngineConfig {
    /// The number of detection threads to run.
    pub fn worker_threads(&self) -> usize {
        match self.workers {
            0 => std::thread::available_parallelism().map_or(1, |n| n.get()),
            n => n,
        }
    }

    /// The folder of the rule cache, or `None` when it is off or there is
    /// no place for it (no cache folder and no home).
    pub fn rule_cache_folder(&self) -> Option<PathBuf> {
        if !self.rule_cache {
            return None;
        }
        if let Some(dir) = &self.rule_cache_dir {
            return Some(dir.clone());
        }
        // The XDG base directory rule: only an absolute XDG_CACHE_HOME counts.
        let xdg = std::env::var_os("XDG_CACHE_HOME")
            .map(PathBuf::from)
            .filter(|p| p.is_absolute());
        let home = || {
            std::env::var_os("HOME")
                .map(PathBuf::from)
                .filter(|p| p.is_absolute())
                .map(|h| h.join(".cache"))
        };
        Some(xdg.or_else(home)?.join("tocsin"))
    }
}

impl Default for EngineConfig {
    fn default() -> Self {
        EngineConfig {
            rules: vec![PathBuf::from("rules/")],
            logsource_map: None,
            channel_capacity: 1024,
            workers: 0,
            max_record_bytes: DEFAULT_MAX_RECORD_BYTES,
            data_dir: PathBuf::from("tocsin-data"),
            watch_rules: true,
            rule_cache: true,
            rule_cache_dir: None,
        }
    }
}
