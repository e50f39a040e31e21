//! Configuration errors with a place: the file, line and column, and the
//! key's full path (`sinks[0].type`), which the config crate's messages
//! lack (they name the key without the file, or the file without the line).
//!
//! The file is read again on its own with the TOML parser, which knows the
//! span of what it rejects; the key path is rebuilt from the table headers
//! above that span.

use super::{Config, ConfigError};
use std::path::Path;

/// Why the configuration file, read alone, does not fit; `None` when it
/// fits (the problem is in a layer above it: the environment or a flag).
pub(super) fn file_problem(path: &Path) -> Option<ConfigError> {
    let text = std::fs::read_to_string(path).ok()?;
    let e = toml::from_str::<Config>(&text).err()?;
    // Inside a tagged enum (a sink, a source) the parser's span is the
    // whole array; an unknown key can still be found by its name.
    let start = e.span().map_or(0, |s| s.start);
    let start = unknown_key_offset(&text, start, e.message()).unwrap_or(start);
    let (line, column) = line_and_column(&text, start);
    Some(ConfigError::File {
        path: path.to_path_buf(),
        line,
        column,
        key: key_path_at(&text, start),
        message: e.message().trim_end().to_string(),
    })
}

/// Where the key an "unknown field `name`" message names is written, at
/// or after byte `from`.
fn unknown_key_offset(text: &str, from: usize, message: &str) -> Option<usize> {
    let name = message.strip_prefix("unknown field `")?.split('`').next()?;
    let mut offset = 0;
    for line in text.split_inclusive('\n') {
        let key = line
            .split_once('=')
            .map(|(k, _)| k.trim().trim_matches('"'));
        if offset >= from && key == Some(name) {
            return Some(offset + line.len() - line.trim_start().len());
        }
        offset += line.len();
    }
    None
}

/// 1-based line and column (in characters) of byte `offset`.
fn line_and_column(text: &str, offset: usize) -> (usize, usize) {
    let before = text.get(..offset).unwrap_or(text);
    let line = before.matches('\n').count() + 1;
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    let column = before.get(line_start..).map_or(0, |s| s.chars().count()) + 1;
    (line, column)
}

/// The full path of the key or table at byte `offset`: the table headers
/// before it, with array tables numbered (`sinks[1]`), then the key on its
/// line, if the line has one.
fn key_path_at(text: &str, offset: usize) -> String {
    let mut table = String::new();
    let mut counts: std::collections::HashMap<String, usize> = Default::default();
    let mut line_start = 0;
    for line in text.split_inclusive('\n') {
        let trimmed = line.trim();
        let is_last = line_start + line.len() > offset;
        if let Some(name) = trimmed
            .strip_prefix("[[")
            .and_then(|r| r.split("]]").next())
        {
            let name = name.trim().to_string();
            let n = counts.entry(name.clone()).or_insert(0);
            table = format!("{name}[{n}]");
            *n += 1;
        } else if let Some(name) = trimmed.strip_prefix('[').and_then(|r| r.split(']').next()) {
            table = name.trim().to_string();
        } else if is_last {
            if let Some((key, _)) = trimmed.split_once('=') {
                let key = key.trim().trim_matches('"');
                return join(&table, key);
            }
        }
        if is_last {
            break;
        }
        line_start += line.len();
    }
    table
}

fn join(table: &str, key: &str) -> String {
    match table.is_empty() {
        true => key.to_string(),
        false => format!("{table}.{key}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn problem(text: &str) -> String {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("tocsin.toml");
        std::fs::write(&path, text).unwrap();
        let message = file_problem(&path).expect("a problem").to_string();
        message.replace(&path.display().to_string(), "tocsin.toml")
    }

    #[test]
    fn errors_name_the_line_column_and_full_key_path() {
        assert_eq!(
            problem("[engine]\nworkers = \"x\"\n"),
            "configuration: tocsin.toml:2:11: engine.workers: invalid type: string \"x\", expected usize"
        );
        let second_sink =
            problem("[[sinks]]\ntype = \"stdout\"\n[[sinks]]\ntype = \"file\"\npaht = \"a\"\n");
        assert!(
            second_sink
                .starts_with("configuration: tocsin.toml:5:1: sinks[1].paht: unknown field `paht`"),
            "{second_sink}"
        );
        let missing = problem("[metrics]\nenabled = true\n[[sinks]]\nformat = \"json\"\n");
        assert!(
            missing.starts_with("configuration: tocsin.toml:3:1: sinks[0]: missing field `type`"),
            "{missing}"
        );
        let syntax = problem("[engine\n");
        assert!(
            syntax.starts_with("configuration: tocsin.toml:1:"),
            "{syntax}"
        );
    }

    #[test]
    fn a_file_that_fits_is_no_problem() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("tocsin.toml");
        std::fs::write(&path, "[engine]\nworkers = 2\n").unwrap();
        assert!(file_problem(&path).is_none());
    }
}
