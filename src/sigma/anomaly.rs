//! Anomaly job definitions: a Sigma-style document with an `anomaly:` section.
//!
//! ```yaml
//! title: Failed SSH logins per user
//! id: 7d0c...
//! name: ssh_failed_logins_per_user
//! logsource: {product: linux, service: sshd}
//! detection:
//!   failed: {outcome: failure}
//!   condition: failed
//! anomaly:
//!   function: high_count     # see Function
//!   by: user                 # the entity: one baseline per value
//!   bucket_span: 10m
//!   alert: {min_score: 75}   # the anomaly rule
//! ```
//!
//! The detection part is an ordinary Sigma detection, compiled and indexed
//! with every other rule; its matches feed the job instead of alerting.

use super::condition::Condition;
use super::rule::{Diagnostic, SigmaRule};
use super::yaml::{Node, Value};
use crate::vocab::Span;
use serde::{Deserialize, Serialize};

/// Which side of the baseline is anomalous.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Side {
    /// Only values above the baseline (`high_` functions, and `rare`).
    High,
    /// Only values below the baseline (`low_` functions).
    Low,
    /// Values far from the baseline either way (functions without a prefix).
    Both,
}

/// What a job measures per entity and bucket.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Function {
    /// Events.
    Count,
    /// Different values of `field`.
    DistinctCount,
    /// A value of `field` the entity rarely or never had.
    Rare,
    /// Sum of the numeric `field`.
    Sum,
    /// Mean of the numeric `field`.
    Mean,
    /// Share of the events that also match the `numerator` search.
    Ratio,
}

impl Function {
    /// The function without its side prefix: `count`, `distinct_count`, `rare`, ...
    pub fn name(self) -> &'static str {
        match self {
            Function::Count => "count",
            Function::DistinctCount => "distinct_count",
            Function::Rare => "rare",
            Function::Sum => "sum",
            Function::Mean => "mean",
            Function::Ratio => "ratio",
        }
    }

    fn needs_field(self) -> bool {
        matches!(
            self,
            Function::DistinctCount | Function::Rare | Function::Sum | Function::Mean
        )
    }

    /// `high_count` -> (Count, High); `rare` is always high-sided.
    fn parse(text: &str) -> Option<(Function, Side)> {
        let (side, base) = if let Some(b) = text.strip_prefix("high_") {
            (Side::High, b)
        } else if let Some(b) = text.strip_prefix("low_") {
            (Side::Low, b)
        } else {
            (Side::Both, text)
        };
        let function = match base {
            "count" => Function::Count,
            "distinct_count" => Function::DistinctCount,
            "rare" if side == Side::Both => return Some((Function::Rare, Side::High)),
            "sum" => Function::Sum,
            "mean" => Function::Mean,
            "ratio" => Function::Ratio,
            _ => return None,
        };
        Some((function, side))
    }
}

const FUNCTIONS: &str = "count, high_count, low_count, distinct_count, high_distinct_count, low_distinct_count, rare, sum, high_sum, low_sum, mean, high_mean, low_mean, ratio, high_ratio, low_ratio";

/// Whether a job's baselines follow a rhythm, and which.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Seasonality {
    /// One baseline for all hours (`seasonality: none`).
    None,
    /// What is usual depends on the time within `period` (hour slots), and
    /// with `weekend`, on whether the day is a Saturday or Sunday (UTC).
    Period {
        /// The rhythm's length: `1d` (the default) or `1w`.
        period: Span,
        /// Weekdays and weekend days are learned apart.
        weekend: bool,
    },
}

impl Seasonality {
    /// The default: a daily rhythm, weekdays and weekends apart.
    pub const DAILY: Seasonality = Seasonality::Period {
        period: Span::from_secs(86_400),
        weekend: true,
    };
}

/// When anomalies become an alert.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AnomalyRule {
    /// Anomalies below this score never alert.
    pub min_score: f64,
    /// How many anomalies of the same entity, at or above `min_score`...
    pub count: usize,
    /// ...within this span of bucket time.
    pub within: Span,
}

impl Default for AnomalyRule {
    fn default() -> Self {
        AnomalyRule {
            min_score: 50.0,
            count: 1,
            within: Span::from_secs(3600),
        }
    }
}

/// The `anomaly:` section.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct JobSpec {
    /// What is measured per entity and bucket, from `function`.
    pub function: Function,
    /// Which side of the baseline is anomalous, from the `high_`/`low_` prefix.
    pub side: Side,
    /// The `field` the function reads; required by all but `count` and `ratio`.
    pub field: Option<String>,
    /// Fields naming the entity; empty = the whole stream is one entity.
    pub by: Vec<String>,
    /// Population field: each value is compared with all others.
    pub over: Option<String>,
    /// The `bucket_span`: events are measured in buckets this long. Default `1h`.
    pub bucket_span: Span,
    /// How long to wait for late events before a bucket is closed.
    pub latency: Span,
    /// Buckets an entity needs before it is scored on its own history.
    pub min_history: usize,
    /// Buckets of history kept per entity.
    pub max_history: usize,
    /// The search whose share `ratio` measures.
    pub numerator: Option<String>,
    /// The `seasonality`: whether baselines learn per hour of the day and
    /// weekday/weekend. Default [`Seasonality::DAILY`]; `rare` has none.
    pub seasonality: Seasonality,
    /// The `alert` section: when anomalies become an alert.
    pub alert: AnomalyRule,
}

#[cfg(test)]
impl JobSpec {
    /// A `high_count` by `user` over 10 minutes with the defaults, for tests.
    pub(crate) fn example() -> JobSpec {
        JobSpec {
            function: Function::Count,
            side: Side::High,
            field: None,
            by: vec!["user".into()],
            over: None,
            bucket_span: Span::from_secs(600),
            latency: Span::from_secs(60),
            min_history: 12,
            max_history: 500,
            numerator: None,
            seasonality: Seasonality::DAILY,
            alert: AnomalyRule::default(),
        }
    }
}

/// A parsed job: the detection rule that selects its events, and the analysis.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct AnomalyJob {
    /// The detection rule whose matches feed the job, with the job's metadata.
    pub rule: SigmaRule,
    /// For `ratio`: the job's condition `and` the numerator search.
    pub numerator_rule: Option<SigmaRule>,
    /// The `anomaly:` section.
    pub spec: JobSpec,
}

impl JobSpec {
    /// The function as written: `high_count`, `rare`, `mean`.
    pub fn function_name(&self) -> String {
        let prefix = match (self.side, self.function) {
            (_, Function::Rare) | (Side::Both, _) => "",
            (Side::High, _) => "high_",
            (Side::Low, _) => "low_",
        };
        format!("{prefix}{}", self.function.name())
    }
}

impl AnomalyJob {
    /// Whether two jobs measure the same events the same way: equal but for
    /// metadata and positions. A baseline survives a reload only between these.
    pub fn same_logic(&self, other: &AnomalyJob) -> bool {
        let detection_same = |a: &Option<SigmaRule>, b: &Option<SigmaRule>| match (a, b) {
            (None, None) => true,
            (Some(a), Some(b)) => {
                a.logsource == b.logsource && a.detection.same_logic(&b.detection)
            }
            _ => false,
        };
        self.rule.meta.id == other.rule.meta.id
            && self.spec == other.spec
            && self.rule.logsource == other.rule.logsource
            && self.rule.detection.same_logic(&other.rule.detection)
            && detection_same(&self.numerator_rule, &other.numerator_rule)
    }

    /// The name `tocsin train --job` takes: `name`, else the id.
    pub fn name(&self) -> &str {
        self.rule
            .meta
            .name
            .as_deref()
            .unwrap_or(self.rule.meta.id.as_str())
    }

    /// The fields that name an entity, in display order.
    pub fn entity_fields(&self) -> impl Iterator<Item = &str> {
        self.spec
            .by
            .iter()
            .map(String::as_str)
            .chain(self.spec.over.as_deref())
    }
}

/// Parses the `anomaly:` section of a document whose rule part is `rule`.
pub(crate) fn parse_job(
    rule: SigmaRule,
    node: &Node,
    diags: &mut Vec<Diagnostic>,
) -> Option<AnomalyJob> {
    let Some(entries) = node.as_map() else {
        diags.push(Diagnostic::new(node.pos, "`anomaly` must be a mapping"));
        return None;
    };
    let before = diags.len();
    let text = |key: &str| node.get(key).map(|n| (n, n.scalar_text()));
    for (key, _) in entries {
        let known = [
            "function",
            "field",
            "by",
            "over",
            "bucket_span",
            "latency",
            "min_history",
            "max_history",
            "numerator",
            "seasonality",
            "alert",
        ];
        if !key.as_str().is_some_and(|k| known.contains(&k)) {
            diags.push(Diagnostic::new(
                key.pos,
                format!(
                    "unknown key `{}` in `anomaly`; expected one of {}",
                    key.scalar_text().unwrap_or_default(),
                    known.join(", ")
                ),
            ));
        }
    }
    let (function, side) = match text("function") {
        Some((n, Some(f))) => match Function::parse(f.trim()) {
            Some(fs) => fs,
            None => {
                diags.push(Diagnostic::new(
                    n.pos,
                    format!("unknown anomaly function `{f}`; expected one of {FUNCTIONS}"),
                ));
                (Function::Count, Side::Both)
            }
        },
        Some((n, None)) => {
            diags.push(Diagnostic::new(n.pos, "`function` must be a string"));
            (Function::Count, Side::Both)
        }
        None => {
            diags.push(Diagnostic::new(
                node.pos,
                format!("missing `function` in `anomaly`; expected one of {FUNCTIONS}"),
            ));
            (Function::Count, Side::Both)
        }
    };
    let field = text("field").and_then(|(n, t)| {
        if t.is_none() {
            diags.push(Diagnostic::new(n.pos, "`field` must be a field name"));
        }
        t
    });
    if function.needs_field() && field.is_none() {
        diags.push(Diagnostic::new(
            node.pos,
            format!("function `{}` needs a `field`", function.name()),
        ));
    }
    let by = match node.get("by") {
        None => Vec::new(),
        Some(n) => match &n.value {
            Value::Seq(items) => items.iter().filter_map(Node::scalar_text).collect(),
            _ => match n.scalar_text() {
                Some(s) => vec![s],
                None => {
                    diags.push(Diagnostic::new(n.pos, "`by` must be a field or a list"));
                    Vec::new()
                }
            },
        },
    };
    let over = text("over").and_then(|(n, t)| {
        if t.is_none() {
            diags.push(Diagnostic::new(n.pos, "`over` must be a field name"));
        }
        t
    });
    let span = |key: &str, default: Span, allow_zero: bool, diags: &mut Vec<Diagnostic>| {
        let Some((n, t)) = text(key) else {
            return default;
        };
        let t = t.unwrap_or_default();
        let parsed = t
            .parse::<Span>()
            .and_then(|s| if allow_zero { Ok(s) } else { s.nonzero(key) });
        parsed.unwrap_or_else(|e| {
            diags.push(Diagnostic::new(
                n.pos,
                format!("`{key}` must be a timespan like 10m, 1h or 1d: {e}"),
            ));
            default
        })
    };
    let bucket_span = span("bucket_span", Span::from_secs(3600), false, diags);
    let latency = span("latency", Span::from_secs(60), true, diags);
    let count = |key: &str, default: usize, diags: &mut Vec<Diagnostic>| match node.get(key) {
        None => default,
        Some(n) => match n.value {
            Value::Int(i) if i >= 1 => i as usize,
            _ => {
                diags.push(Diagnostic::new(
                    n.pos,
                    format!("`{key}` must be a whole number of at least 1"),
                ));
                default
            }
        },
    };
    let min_history = count("min_history", 12, diags);
    let max_history = count("max_history", 500, diags).max(min_history);
    let numerator = text("numerator").and_then(|(n, t)| {
        match &t {
            Some(name) if rule.detection.searches.iter().any(|s| &s.name == name) => {}
            _ => diags.push(Diagnostic::new(
                n.pos,
                format!(
                    "`numerator` must name a search in `detection`, found `{}`",
                    t.clone().unwrap_or_default()
                ),
            )),
        }
        t
    });
    if function == Function::Ratio && numerator.is_none() {
        diags.push(Diagnostic::new(
            node.pos,
            "function `ratio` needs a `numerator`: the search whose share is measured",
        ));
    }
    let alert = match node.get("alert") {
        None => AnomalyRule::default(),
        Some(n) => parse_alert(n, diags),
    };
    let seasonality = match (function, node.get("seasonality")) {
        (Function::Rare, _) => Seasonality::None,
        (_, None) => Seasonality::DAILY,
        (_, Some(n)) => parse_seasonality(n, diags),
    };
    if diags.len() > before {
        return None;
    }
    let numerator_rule = numerator.as_ref().map(|name| {
        let mut r = rule.clone();
        r.meta.id = format!("{}#{name}", rule.meta.id);
        r.meta.name = None;
        let pos = r.pos;
        let original = Condition::Or(r.detection.conditions.drain(..).map(|(_, c)| c).collect());
        r.detection.conditions = vec![(
            pos,
            Condition::And(vec![original, Condition::Search(name.clone())]),
        )];
        r
    });
    Some(AnomalyJob {
        rule,
        numerator_rule,
        spec: JobSpec {
            function,
            side,
            field,
            by,
            over,
            bucket_span,
            latency,
            min_history,
            max_history,
            numerator,
            seasonality,
            alert,
        },
    })
}

/// `seasonality: none`, `seasonality: 1d` (a period, weekends apart), or
/// `seasonality: {period: 1w, weekend: false}`.
fn parse_seasonality(node: &Node, diags: &mut Vec<Diagnostic>) -> Seasonality {
    const EXPECTED: &str = "`seasonality` must be `none`, a period like 1d or 1w, or a mapping with `period` and `weekend`";
    let period = |n: &Node, diags: &mut Vec<Diagnostic>| {
        let text = n.scalar_text().unwrap_or_default();
        match text.parse::<Span>().and_then(|s| s.nonzero("period")) {
            Ok(s) if s.as_secs() >= 3600 => Some(s),
            Ok(_) => {
                diags.push(Diagnostic::new(n.pos, "a seasonal `period` is at least 1h"));
                None
            }
            Err(e) => {
                diags.push(Diagnostic::new(n.pos, format!("{EXPECTED}: {e}")));
                None
            }
        }
    };
    let daily = |period: Span, weekend: bool| Seasonality::Period {
        period,
        // A weekly period already tells Saturday from Tuesday.
        weekend: weekend && period.as_secs() < 7 * 86_400,
    };
    match &node.value {
        Value::Map(entries) => {
            let (mut p, mut weekend) = (Span::from_secs(86_400), true);
            for (key, value) in entries {
                match key.as_str() {
                    Some("period") => p = period(value, diags).unwrap_or(p),
                    Some("weekend") => match value.value {
                        Value::Bool(b) => weekend = b,
                        _ => diags.push(Diagnostic::new(
                            value.pos,
                            "`weekend` must be true or false",
                        )),
                    },
                    _ => diags.push(Diagnostic::new(
                        key.pos,
                        format!(
                            "unknown key `{}` in `seasonality`; expected period, weekend",
                            key.scalar_text().unwrap_or_default()
                        ),
                    )),
                }
            }
            daily(p, weekend)
        }
        _ => match node.scalar_text().as_deref() {
            Some("none") | Some("off") => Seasonality::None,
            Some(_) => period(node, diags).map_or(Seasonality::DAILY, |p| daily(p, true)),
            None => {
                diags.push(Diagnostic::new(node.pos, EXPECTED));
                Seasonality::DAILY
            }
        },
    }
}

fn parse_alert(node: &Node, diags: &mut Vec<Diagnostic>) -> AnomalyRule {
    let mut rule = AnomalyRule::default();
    let Some(entries) = node.as_map() else {
        diags.push(Diagnostic::new(node.pos, "`alert` must be a mapping"));
        return rule;
    };
    for (key, value) in entries {
        match key.as_str() {
            Some("min_score") => match value.value {
                Value::Int(i) if (0..=100).contains(&i) => rule.min_score = i as f64,
                Value::Float(f) if (0.0..=100.0).contains(&f) => rule.min_score = f,
                _ => diags.push(Diagnostic::new(
                    value.pos,
                    "`min_score` must be a number from 0 to 100",
                )),
            },
            Some("count") => match value.value {
                Value::Int(i) if i >= 1 => rule.count = i as usize,
                _ => diags.push(Diagnostic::new(
                    value.pos,
                    "`count` must be a whole number of at least 1",
                )),
            },
            Some("within") => {
                match value
                    .scalar_text()
                    .unwrap_or_default()
                    .parse::<Span>()
                    .and_then(|s| s.nonzero("within"))
                {
                    Ok(span) => rule.within = span,
                    Err(e) => diags.push(Diagnostic::new(
                        value.pos,
                        format!("`within` must be a timespan like 1h: {e}"),
                    )),
                }
            }
            _ => diags.push(Diagnostic::new(
                key.pos,
                format!(
                    "unknown key `{}` in `alert`; expected min_score, count, within",
                    key.scalar_text().unwrap_or_default()
                ),
            )),
        }
    }
    rule
}

#[cfg(test)]
mod tests {
    use crate::sigma::rule::{parse_document, Document};
    use crate::sigma::yaml::parse_documents;

    fn parse(anomaly: &str) -> Result<super::AnomalyJob, Vec<String>> {
        let text = format!(
            "title: Job\nid: job-1\nlogsource: {{product: linux}}\ndetection:\n  sel: {{a: 1}}\n  err: {{b: 2}}\n  condition: sel\nanomaly:\n{anomaly}"
        );
        let docs = parse_documents(&text, &Default::default()).unwrap();
        match parse_document(&docs[0], &Default::default()) {
            Ok(Document::AnomalyJob(job)) => Ok(*job),
            Ok(other) => panic!("not a job: {other:?}"),
            Err(d) => Err(d
                .into_iter()
                .map(|d| format!("{}: {}", d.pos, d.message))
                .collect()),
        }
    }

    #[test]
    fn a_job_document_parses_with_defaults() {
        let job = parse("  function: high_count\n  by: user\n  bucket_span: 10m\n").unwrap();
        assert_eq!(job.spec.function, super::Function::Count);
        assert_eq!(job.spec.side, super::Side::High);
        assert_eq!(job.spec.by, vec!["user"]);
        assert_eq!(job.spec.bucket_span.as_secs(), 600);
        assert_eq!(job.spec.alert.min_score, 50.0);
        assert_eq!(job.spec.seasonality, super::Seasonality::DAILY);
        assert_eq!(job.name(), "job-1");
    }

    #[test]
    fn seasonality_is_off_a_period_or_a_mapping() {
        use super::Seasonality;
        let season = |text: &str| parse(&format!("  function: count\n  seasonality: {text}\n"));
        assert_eq!(season("none").unwrap().spec.seasonality, Seasonality::None);
        let weekly = season("{period: 1w, weekend: true}").unwrap();
        assert_eq!(
            weekly.spec.seasonality,
            Seasonality::Period {
                period: crate::vocab::Span::from_secs(7 * 86_400),
                weekend: false
            }
        );
        let errs = season("{period: 10m}").unwrap_err();
        assert!(
            errs[0].contains("10:25: a seasonal `period` is at least 1h"),
            "{errs:?}"
        );
        let errs = season("sometimes").unwrap_err();
        assert!(errs[0].contains("`seasonality` must be"), "{errs:?}");
        let rare = parse("  function: rare\n  field: ua\n").unwrap();
        assert_eq!(rare.spec.seasonality, Seasonality::None);
    }

    #[test]
    fn ratio_jobs_get_a_numerator_rule_that_narrows_the_condition() {
        let job = parse("  function: high_ratio\n  numerator: err\n  by: c-ip\n").unwrap();
        let num = job.numerator_rule.unwrap();
        assert_eq!(num.meta.id, "job-1#err");
        assert_eq!(num.detection.conditions.len(), 1);
    }

    #[test]
    fn problems_name_the_line_and_what_is_wrong() {
        let errs = parse("  function: loudest\n  bucket_span: soon\n  colour: red\n").unwrap_err();
        let all = errs.join("\n");
        assert!(
            all.contains("9:13: unknown anomaly function `loudest`"),
            "{all}"
        );
        assert!(
            all.contains("10:16: `bucket_span` must be a timespan"),
            "{all}"
        );
        assert!(all.contains("11:3: unknown key `colour`"), "{all}");
        let errs = parse("  function: distinct_count\n").unwrap_err();
        assert!(errs[0].contains("needs a `field`"), "{errs:?}");
        let errs = parse("  function: ratio\n  numerator: nope\n").unwrap_err();
        assert!(errs[0].contains("must name a search"), "{errs:?}");
    }
}
