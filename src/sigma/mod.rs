//! Sigma rules: YAML with positions -> rule AST (detection, condition, modifiers).
//!
//! This module knows the Sigma format only; turning rules into something that
//! runs is `detect`'s job.

pub(crate) mod anomaly;
pub(crate) mod cache;
pub(crate) mod condition;
pub(crate) mod correlation;
pub(crate) mod limits;
pub(crate) mod lint;
pub(crate) mod load;
pub(crate) mod modifier;
pub(crate) mod rule;
pub mod yaml;

pub use anomaly::{AnomalyJob, AnomalyRule, Function, JobSpec, Side};
pub use condition::parse as parse_condition;
pub use condition::{Condition, Quantifier, Selector};
pub use correlation::SigmaCorrelation;
pub use limits::{RuleLimit, RuleLimits};
pub(crate) use lint::did_you_mean;
pub use load::{
    load_paths, load_paths_cached, load_text, LoadReport, LoadedAnomalyJob, LoadedCorrelation,
    LoadedFilter, LoadedRule, RuleProblem,
};
pub use modifier::Modifier;
pub use rule::{Detection, Logsource, RuleValue, Search, SearchItem, SigmaFilter, SigmaRule};
pub use rule::{Diagnostic, Document, SigmaRuleMeta};
pub use yaml::Pos;
pub use yaml::{parse_documents, Node};
