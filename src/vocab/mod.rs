//! The words every layer shares: the bottom of the import graph, importing
//! nothing from the rest of the crate.
//!
//! - [`Severity`] and [`AlertType`]: the labels every alert line starts with;
//! - [`Span`]: every duration, as rules and configuration write it;
//! - [`Clock`]: the engine's now (system, event time or simulated);
//! - [`LogsourceTags`]: the logsource a source declares for its events;
//! - [`text`]: escaping and shortening text shown to people;
//! - `atomic`: replacing a state file whole or not at all;
//! - `tally`: counts per name, most first, as summaries show them;
//! - [`replay`]: a whole input run again in event-time order (`scan`);
//! - [`watermark`]: how far every upstream input has been read, and
//!   [`held`]: what an owner holds until it has (scale-out).

pub(crate) mod atomic;
pub(crate) mod clock;
pub mod held;
pub(crate) mod id;
pub(crate) mod logsource;
pub mod replay;
pub(crate) mod severity;
pub(crate) mod span;
#[cfg(test)]
pub(crate) mod streams;
pub mod tally;
pub(crate) mod text;
pub mod watermark;

pub use clock::{Clock, ClockConfig, ClockMode};
pub use logsource::LogsourceTags;
pub use severity::{AlertType, Severity};
pub use span::{Span, SpanError};
