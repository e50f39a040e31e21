//! The `[[sources]]` configuration: where records come from and how they
//! are read. The fields every kind shares are written once.

use crate::event::time::TimeOptions;
use crate::event::InputFormat;
use crate::vocab::LogsourceTags;
use serde::{Deserialize, Serialize};

/// An input and how its records are read.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(try_from = "RawSource", into = "RawSource")]
pub struct SourceConfig {
    /// Where the records come from.
    pub input: Input,
    /// How records are parsed.
    pub format: InputFormat,
    /// Where the event time is and how to read it.
    pub time: TimeOptions,
    /// Logsource tags declared for every event of the source.
    pub logsource: LogsourceTags,
    /// What the records are: events, triage updates or alert records.
    pub records: RecordKind,
}

/// Where a source's records come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Input {
    /// Files by path or glob; `.gz` files are decompressed.
    File {
        /// The source's name (metrics, silence watches); default: its paths.
        name: Option<String>,
        /// Paths and globs (`paths`), at least one; a glob's files are read in
        /// sorted order. Read once, one that finds no file is an input
        /// error; the rest are read. Followed, it is watched until a file appears.
        paths: Vec<String>,
        /// Follow the files as `tail -F` does (`follow = true`, the default
        /// in a configuration); `None`: read them once and end.
        follow: Option<Follow>,
    },
    /// Standard input.
    Stdin,
    /// A Kafka topic, read by the consumer group of `[kafka]`; every Kafka
    /// source shares one consumer, each topic has its own parser.
    Kafka {
        /// The topic to read (`topic`); must not be empty.
        topic: String,
    },
}

/// How a followed file source reads: where it starts in a file seen for
/// the first time, and whether its positions survive a restart.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Follow {
    /// Where a file with no saved position starts: at its `beginning`
    /// (default) or its `end`. Files that appear while running, such as the
    /// new file after a rotation, are always read from their beginning.
    pub read_from: ReadFrom,
    /// Save each file's position (keyed by a fingerprint of its content)
    /// under `engine.data_dir`, so that a restart neither skips nor re-reads
    /// lines (`checkpoint = true`, the default).
    pub checkpoint: bool,
}

impl Default for Follow {
    fn default() -> Self {
        Follow {
            read_from: ReadFrom::Beginning,
            checkpoint: true,
        }
    }
}

/// Where a followed file with no saved position is read from.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ReadFrom {
    /// Its first line.
    #[default]
    Beginning,
    /// Its end: only lines written from now on.
    End,
}

/// What a source's records are.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RecordKind {
    /// Log events, parsed and matched against the rules.
    #[default]
    Events,
    /// Triage updates `{alert_id, status, by, at, note}` for the incident desk.
    Triage,
    /// Alert records (as tocsin writes them) for the incident desk to track.
    Alerts,
    /// The repartition topic's matches and progress records
    /// (`correlate::exchange`): internal, not a setting.
    #[serde(skip)]
    Matches,
}

impl SourceConfig {
    /// A source of `input` with every other setting at its default.
    pub fn new(input: Input, format: InputFormat) -> SourceConfig {
        SourceConfig {
            input,
            format,
            time: TimeOptions::default(),
            logsource: LogsourceTags::default(),
            records: RecordKind::default(),
        }
    }

    /// The name the source goes by: a file source's name (or its paths),
    /// `stdin`, or the topic.
    pub fn name(&self) -> String {
        match &self.input {
            Input::File { name, paths, .. } => name.clone().unwrap_or_else(|| paths.join(",")),
            Input::Stdin => "stdin".to_string(),
            Input::Kafka { topic } => topic.clone(),
        }
    }
}

/// The TOML form: one flat table, `type` selecting the input.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSource {
    #[serde(rename = "type")]
    kind: InputKind,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    name: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    paths: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    follow: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    read_from: Option<ReadFrom>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    checkpoint: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    topic: Option<String>,
    #[serde(default)]
    format: InputFormat,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    time_field: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    time_format: Option<String>,
    #[serde(default)]
    logsource: LogsourceTags,
    #[serde(default)]
    records: RecordKind,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
enum InputKind {
    File,
    Stdin,
    Kafka,
}

impl TryFrom<RawSource> for SourceConfig {
    type Error = String;

    fn try_from(raw: RawSource) -> Result<SourceConfig, String> {
        let only = |what: &str, allowed: bool| {
            if allowed {
                Ok(())
            } else {
                Err(format!("`{what}` is not a setting of a {:?} source", raw.kind).to_lowercase())
            }
        };
        only("name", raw.name.is_none() || raw.kind == InputKind::File)?;
        only("paths", raw.paths.is_empty() || raw.kind == InputKind::File)?;
        only("topic", raw.topic.is_none() || raw.kind == InputKind::Kafka)?;
        let file = raw.kind == InputKind::File;
        only("follow", raw.follow.is_none() || file)?;
        only("read_from", raw.read_from.is_none() || file)?;
        only("checkpoint", raw.checkpoint.is_none() || file)?;
        let follow = raw.follow != Some(false);
        if !follow && (raw.read_from.is_some() || raw.checkpoint.is_some()) {
            return Err(
                "`read_from` and `checkpoint` are settings of a followed file source (remove `follow = false`)".into(),
            );
        }
        let input = match raw.kind {
            InputKind::File if raw.paths.is_empty() => {
                return Err("a file source needs `paths` (at least one path or glob)".into())
            }
            InputKind::File => Input::File {
                name: raw.name,
                paths: raw.paths,
                follow: follow.then(|| Follow {
                    read_from: raw.read_from.unwrap_or_default(),
                    checkpoint: raw.checkpoint.unwrap_or(true),
                }),
            },
            InputKind::Stdin => Input::Stdin,
            InputKind::Kafka => Input::Kafka {
                topic: raw
                    .topic
                    .filter(|t| !t.is_empty())
                    .ok_or("a kafka source needs `topic`")?,
            },
        };
        Ok(SourceConfig {
            input,
            format: raw.format,
            time: TimeOptions {
                field: raw.time_field,
                format: raw.time_format,
            },
            logsource: raw.logsource,
            records: raw.records,
        })
    }
}

impl From<SourceConfig> for RawSource {
    fn from(s: SourceConfig) -> RawSource {
        let (kind, name, paths, topic) = match &s.input {
            Input::File { name, paths, .. } => (InputKind::File, name.clone(), paths.clone(), None),
            Input::Stdin => (InputKind::Stdin, None, Vec::new(), None),
            Input::Kafka { topic } => (InputKind::Kafka, None, Vec::new(), Some(topic.clone())),
        };
        let follow = match &s.input {
            Input::File { follow, .. } => Some(*follow),
            _ => None,
        };
        RawSource {
            kind,
            name,
            paths,
            follow: follow.map(|f| f.is_some()),
            read_from: follow.flatten().map(|f| f.read_from),
            checkpoint: follow.flatten().map(|f| f.checkpoint),
            topic,
            format: s.format,
            time_field: s.time.field,
            time_format: s.time.format,
            logsource: s.logsource,
            records: s.records,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn source(toml_text: &str) -> Result<SourceConfig, String> {
        #[derive(Deserialize)]
        struct One {
            source: SourceConfig,
        }
        toml_from_str::<One>(toml_text).map(|o| o.source)
    }

    fn toml_from_str<T: serde::de::DeserializeOwned>(text: &str) -> Result<T, String> {
        config::Config::builder()
            .add_source(config::File::from_str(text, config::FileFormat::Toml))
            .build()
            .and_then(|c| c.try_deserialize())
            .map_err(|e| e.to_string())
    }

    #[test]
    fn every_kind_shares_the_reading_settings() {
        let s = source("[source]\ntype = \"kafka\"\ntopic = \"logs\"\nformat = \"syslog\"\ntime_field = \"t\"\nrecords = \"triage\"\nlogsource = { product = \"linux\" }").unwrap();
        assert_eq!(
            s.input,
            Input::Kafka {
                topic: "logs".into()
            }
        );
        assert_eq!(s.format, InputFormat::Syslog);
        assert_eq!(s.time.field.as_deref(), Some("t"));
        assert_eq!(s.records, RecordKind::Triage);
        assert_eq!(s.name(), "logs");
        let s = source("[source]\ntype = \"file\"\npaths = [\"a.log\", \"b.log\"]").unwrap();
        assert_eq!(s.name(), "a.log,b.log");
    }

    #[test]
    fn file_sources_follow_by_default_and_follow_false_reads_once() {
        let follow = |extra: &str| match source(&format!(
            "[source]\ntype = \"file\"\npaths = [\"a.log\"]\n{extra}"
        ))
        .unwrap()
        .input
        {
            Input::File { follow, .. } => follow,
            other => panic!("{other:?}"),
        };
        assert_eq!(follow(""), Some(Follow::default()));
        assert_eq!(follow("follow = false"), None);
        assert_eq!(
            follow("read_from = \"end\"\ncheckpoint = false"),
            Some(Follow {
                read_from: ReadFrom::End,
                checkpoint: false
            })
        );
    }

    #[test]
    fn settings_of_another_kind_typos_and_missing_paths_are_errors() {
        for (text, needle) in [
            (
                "type = \"stdin\"\npaths = [\"x\"]",
                "`paths` is not a setting of a stdin source",
            ),
            ("type = \"file\"\ntopic = \"x\"\npaths = [\"a\"]", "`topic`"),
            ("type = \"file\"", "needs `paths`"),
            ("type = \"kafka\"", "needs `topic`"),
            ("type = \"stdin\"\nformatt = \"json\"", "formatt"),
            ("type = \"stdin\"\nread_from = \"end\"", "`read_from`"),
            (
                "type = \"file\"\npaths = [\"a\"]\nfollow = false\ncheckpoint = true",
                "settings of a followed file source",
            ),
            (
                "type = \"file\"\npaths = [\"a\"]\nread_from = \"middle\"",
                "middle",
            ),
            ("type = \"socket\"", "socket"),
        ] {
            let err = source(&format!("[source]\n{text}")).unwrap_err();
            assert!(err.contains(needle), "{text}: {err}");
        }
    }
}
