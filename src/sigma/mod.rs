//! Sigma rules: YAML with positions -> rule AST (detection, condition, modifiers).
//!
//! This module knows the Sigma format only; turning rules into something that
//! runs is `detect`'s job.

pub mod anomaly;
pub mod condition;
pub mod correlation;
pub mod limits;
pub mod load;
pub mod modifier;
pub mod rule;
pub mod yaml;

pub use condition::{Condition, Quantifier, Selector};
pub use limits::{RuleLimit, RuleLimits};
pub use load::{
    load_paths, LoadReport, LoadedAnomalyJob, LoadedCorrelation, LoadedFilter, LoadedRule,
    RuleProblem,
};
pub use modifier::Modifier;
pub use rule::{Detection, Logsource, RuleValue, Search, SearchItem, SigmaFilter, SigmaRule};
pub use yaml::Pos;
