//! The `[anomaly]` section: where job models are kept.

use crate::vocab::Span;
use serde::{Deserialize, Serialize};
use std::path::PathBuf;

/// The `[anomaly]` section (the jobs themselves are `anomaly:` documents among the rules).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AnomalyConfig {
    /// Where job models are loaded from at start and saved to; `tocsin
    /// train` writes here too. Unset (the default) keeps models in memory
    /// only: baselines are learned again from the stream on every start.
    pub model_dir: Option<PathBuf>,
    /// How often changed models are saved while running (also at the end).
    pub save_interval: Span,
}

impl Default for AnomalyConfig {
    fn default() -> Self {
        AnomalyConfig {
            model_dir: None,
            save_interval: Span::from_secs(300),
        }
    }
}

impl AnomalyConfig {
    /// The model directory; an empty `model_dir` turns persistence off.
    pub fn model_dir(&self) -> Option<&std::path::Path> {
        self.model_dir
            .as_deref()
            .filter(|p| !p.as_os_str().is_empty())
    }
}
