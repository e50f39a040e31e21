//! Limits on rule files: how large, deep and wide a rule may be.
//!
//! Rule files come from people and from repositories, and a rule is parsed
//! by recursive code (conditions, the YAML tree). Every limit here turns
//! what would be a stack overflow or an exhausted memory into a problem
//! reported at `file:line:col`, and the rest of the rule set still loads.

use serde::{Deserialize, Serialize};

/// The limits on one rule file. Serde form of the `[rule_limits]` config section.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RuleLimits {
    /// Largest rule file read, in bytes.
    pub max_rule_file_bytes: u64,
    /// Deepest nesting of YAML collections in a rule file.
    pub max_yaml_depth: usize,
    /// Most YAML nodes in one file, counting each alias as the nodes it
    /// stands for (so a "billion laughs" alias bomb stops here).
    pub max_yaml_nodes: usize,
    /// Deepest nesting of `not` and parentheses in a condition.
    pub max_condition_depth: usize,
    /// Most values in one rule's detection (over all its selections).
    pub max_values_per_rule: usize,
}

impl Default for RuleLimits {
    /// Far above anything in the SigmaHQ corpus (largest file 0.2 MB,
    /// conditions nested 4 deep, 3,000 values in one rule), far below
    /// what hurts.
    fn default() -> Self {
        RuleLimits {
            max_rule_file_bytes: 8 << 20,
            max_yaml_depth: 64,
            max_yaml_nodes: 1_000_000,
            max_condition_depth: 64,
            max_values_per_rule: 100_000,
        }
    }
}

/// Which limit a rule broke, for the `tocsin_limit_exceeded_total` metric.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub enum RuleLimit {
    /// The file is larger than `max_rule_file_bytes`.
    FileBytes,
    /// YAML collections nest deeper than `max_yaml_depth`.
    YamlDepth,
    /// The file has more YAML nodes than `max_yaml_nodes`.
    YamlNodes,
    /// A condition nests deeper than `max_condition_depth`.
    ConditionDepth,
    /// A rule has more values than `max_values_per_rule`.
    ValuesPerRule,
}

impl RuleLimit {
    /// The limit's key in `[limits]`.
    pub fn key(self) -> &'static str {
        match self {
            RuleLimit::FileBytes => "max_rule_file_bytes",
            RuleLimit::YamlDepth => "max_yaml_depth",
            RuleLimit::YamlNodes => "max_yaml_nodes",
            RuleLimit::ConditionDepth => "max_condition_depth",
            RuleLimit::ValuesPerRule => "max_values_per_rule",
        }
    }
}
