#![warn(missing_docs, unreachable_pub)]
//! tocsin: a streaming SIEM alert engine for Sigma rules.
//!
//! Data flows one way: `pipeline` sources -> `event` parsing -> `detect`
//! (compiled Sigma rules from `sigma`) -> `alert` (record, line, SLA) ->
//! `pipeline` sinks, with `anomaly` jobs scoring what no rule names,
//! and with `metrics` on the side and `config` around it all. The
//! `incident` desk follows each alert through triage and escalation, on
//! the engine's `clock`.

pub mod alert;
pub mod anomaly;
pub mod config;
pub mod correlate;
pub mod detect;
pub mod event;
pub mod incident;
pub mod pipeline;
pub mod ruletest;
pub mod sigma;
pub mod vocab;
