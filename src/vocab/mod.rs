//! The words every layer shares: the bottom of the import graph, importing
//! nothing from the rest of the crate.

pub mod span;
pub mod text;

pub use span::{Span, SpanError};
