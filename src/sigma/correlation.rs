//! Sigma correlation rules (sigma-correlation-rules-specification): the AST.

use super::rule::{Diagnostic, SigmaRuleMeta};
use super::yaml::{Node, Pos, Value};
use crate::vocab::Span;

/// The correlation types of the specification.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum CorrelationType {
    EventCount,
    ValueCount,
    Temporal,
    TemporalOrdered,
    ValueSum,
    ValueAvg,
    ValuePercentile,
}

impl CorrelationType {
    fn parse(s: &str) -> Option<CorrelationType> {
        Some(match s {
            "event_count" => CorrelationType::EventCount,
            "value_count" => CorrelationType::ValueCount,
            "temporal" => CorrelationType::Temporal,
            "temporal_ordered" => CorrelationType::TemporalOrdered,
            "value_sum" => CorrelationType::ValueSum,
            "value_avg" => CorrelationType::ValueAvg,
            "value_percentile" => CorrelationType::ValuePercentile,
            _ => return None,
        })
    }

    pub fn name(self) -> &'static str {
        match self {
            CorrelationType::EventCount => "event_count",
            CorrelationType::ValueCount => "value_count",
            CorrelationType::Temporal => "temporal",
            CorrelationType::TemporalOrdered => "temporal_ordered",
            CorrelationType::ValueSum => "value_sum",
            CorrelationType::ValueAvg => "value_avg",
            CorrelationType::ValuePercentile => "value_percentile",
        }
    }

    /// Types whose condition needs a `field`.
    fn needs_field(self) -> bool {
        matches!(
            self,
            CorrelationType::ValueCount
                | CorrelationType::ValueSum
                | CorrelationType::ValueAvg
                | CorrelationType::ValuePercentile
        )
    }
}

/// A comparison of the condition.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
pub enum Bound {
    Gt(f64),
    Gte(f64),
    Lt(f64),
    Lte(f64),
    Eq(f64),
    Neq(f64),
}

impl Bound {
    pub fn holds(self, v: f64) -> bool {
        match self {
            Bound::Gt(x) => v > x,
            Bound::Gte(x) => v >= x,
            Bound::Lt(x) => v < x,
            Bound::Lte(x) => v <= x,
            Bound::Eq(x) => v == x,
            Bound::Neq(x) => v != x,
        }
    }
}

/// The condition: a conjunction of bounds (a range), on a field for value types.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct CorrelationCondition {
    pub field: Option<String>,
    pub bounds: Vec<Bound>,
}

impl CorrelationCondition {
    pub fn holds(&self, v: f64) -> bool {
        self.bounds.iter().all(|b| b.holds(v))
    }

    /// Whether the condition can only be decided when the window is over:
    /// "fewer than" conditions (and exact counts) can still be broken by a
    /// later event, so they are judged at window end.
    pub fn decided_at_window_end(&self) -> bool {
        self.bounds.iter().any(|b| {
            matches!(
                b,
                Bound::Lt(_) | Bound::Lte(_) | Bound::Eq(_) | Bound::Neq(_)
            )
        })
    }
}

/// A correlation rule.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct SigmaCorrelation {
    /// Title, id, level and the rest, as for a detection rule.
    pub meta: SigmaRuleMeta,
    /// The `correlation.type`.
    pub kind: CorrelationType,
    /// Referenced rules (detection or correlation), by id or name.
    pub rules: Vec<String>,
    /// The `group-by` fields: matches are counted per combination of their values.
    pub group_by: Vec<String>,
    /// The `timespan`: the length of the sliding window matches are counted in.
    /// Never zero.
    pub timespan: Span,
    /// The `condition` on the count or value; without bounds when a temporal rule
    /// gives none.
    pub condition: CorrelationCondition,
    /// alias -> [(rule name or id, field)].
    pub aliases: Vec<(String, Vec<(String, String)>)>,
    /// Whether the referenced rules also alert on their own.
    pub generate: bool,
    /// Where the correlation document starts.
    pub pos: Pos,
}

impl SigmaCorrelation {
    /// Whether two correlation rules count the same thing the same way:
    /// equal but for their metadata (title, level, description) and where
    /// they are written. Open windows survive a reload only between these.
    pub fn same_logic(&self, other: &SigmaCorrelation) -> bool {
        self.meta.id == other.meta.id
            && self.kind == other.kind
            && self.rules == other.rules
            && self.group_by == other.group_by
            && self.timespan == other.timespan
            && self.condition == other.condition
            && self.aliases == other.aliases
            && self.generate == other.generate
    }
}

/// Parses a correlation document (`meta` is the shared rule metadata).
pub(crate) fn parse_correlation(
    doc: &Node,
    meta: SigmaRuleMeta,
    diags: &mut Vec<Diagnostic>,
) -> Option<SigmaCorrelation> {
    let before = diags.len();
    let corr = doc.get("correlation")?;
    if corr.as_map().is_none() {
        diags.push(Diagnostic::new(corr.pos, "`correlation` must be a mapping"));
        return None;
    }
    let kind = match corr.get("type") {
        Some(t) => match t.scalar_text().as_deref().and_then(CorrelationType::parse) {
            Some(k) => Some(k),
            None => {
                diags.push(Diagnostic::new(
                    t.pos,
                    "`correlation.type` must be one of event_count, value_count, temporal, temporal_ordered, value_sum, value_avg, value_percentile",
                ));
                None
            }
        },
        None => {
            diags.push(Diagnostic::new(corr.pos, "missing `correlation.type`"));
            None
        }
    };
    let list = |key: &str, diags: &mut Vec<Diagnostic>| -> Vec<String> {
        match corr.get(key) {
            Some(Node {
                value: Value::Seq(items),
                ..
            }) => items.iter().filter_map(Node::scalar_text).collect(),
            Some(n) => match n.scalar_text() {
                Some(one) => vec![one],
                None => {
                    diags.push(Diagnostic::new(
                        n.pos,
                        format!("`correlation.{key}` must be a list"),
                    ));
                    Vec::new()
                }
            },
            None => Vec::new(),
        }
    };
    let rules = list("rules", diags);
    if rules.is_empty() {
        diags.push(Diagnostic::new(
            corr.pos,
            "`correlation.rules` must name at least one rule",
        ));
    }
    let group_by = list("group-by", diags);
    let timespan = match corr.get("timespan") {
        Some(t) => match t
            .scalar_text()
            .unwrap_or_default()
            .parse::<Span>()
            .and_then(|s| s.nonzero("timespan"))
        {
            Ok(span) => span,
            Err(e) => {
                diags.push(Diagnostic::new(
                    t.pos,
                    format!("`timespan`: {e}; write a number and a unit: s, m, h, d (e.g. `90m`)"),
                ));
                Span::ZERO
            }
        },
        None => {
            diags.push(Diagnostic::new(corr.pos, "missing `correlation.timespan`"));
            Span::ZERO
        }
    };
    let condition = parse_condition(corr.get("condition"), kind, corr.pos, diags);
    let mut aliases = Vec::new();
    if let Some(a) = corr.get("aliases") {
        match a.as_map() {
            Some(entries) => {
                for (alias, mapping) in entries {
                    let pairs: Vec<(String, String)> = mapping
                        .as_map()
                        .map(|m| {
                            m.iter()
                                .filter_map(|(r, f)| Some((r.scalar_text()?, f.scalar_text()?)))
                                .collect()
                        })
                        .unwrap_or_default();
                    if pairs.is_empty() {
                        diags.push(Diagnostic::new(
                            mapping.pos,
                            "an alias maps rule names to field names",
                        ));
                    }
                    aliases.push((alias.scalar_text().unwrap_or_default(), pairs));
                }
            }
            None => diags.push(Diagnostic::new(a.pos, "`aliases` must be a mapping")),
        }
    }
    let generate = match doc
        .get("generate")
        .or_else(|| corr.get("generate"))
        .map(|g| &g.value)
    {
        None => false,
        Some(Value::Bool(b)) => *b,
        Some(_) => {
            diags.push(Diagnostic::new(doc.pos, "`generate` must be true or false"));
            false
        }
    };
    let kind = kind?;
    (diags.len() == before).then(|| SigmaCorrelation {
        meta,
        kind,
        rules,
        group_by,
        timespan,
        condition: condition.unwrap_or(CorrelationCondition {
            field: None,
            bounds: Vec::new(),
        }),
        aliases,
        generate,
        pos: doc.pos,
    })
}

fn parse_condition(
    node: Option<&Node>,
    kind: Option<CorrelationType>,
    pos: Pos,
    diags: &mut Vec<Diagnostic>,
) -> Option<CorrelationCondition> {
    let temporal = matches!(
        kind,
        Some(CorrelationType::Temporal | CorrelationType::TemporalOrdered)
    );
    let Some(node) = node else {
        if !temporal && kind.is_some() {
            diags.push(Diagnostic::new(pos, "missing `correlation.condition`"));
        }
        return None;
    };
    let Some(entries) = node.as_map() else {
        diags.push(Diagnostic::new(
            node.pos,
            "`condition` must be a mapping like `gte: 10`",
        ));
        return None;
    };
    let mut field = None;
    let mut bounds = Vec::new();
    for (k, v) in entries {
        let key = k.scalar_text().unwrap_or_default();
        if key == "field" {
            field = v.scalar_text();
            continue;
        }
        let n = match &v.value {
            Value::Int(i) => *i as f64,
            Value::Float(f) => *f,
            _ => {
                diags.push(Diagnostic::new(v.pos, format!("`{key}` needs a number")));
                continue;
            }
        };
        bounds.push(match key.as_str() {
            "gt" => Bound::Gt(n),
            "gte" => Bound::Gte(n),
            "lt" => Bound::Lt(n),
            "lte" => Bound::Lte(n),
            "eq" => Bound::Eq(n),
            "neq" => Bound::Neq(n),
            other => {
                diags.push(Diagnostic::new(
                    k.pos,
                    format!("unknown condition `{other}`: use gt, gte, lt, lte, eq, neq"),
                ));
                continue;
            }
        });
    }
    if bounds.is_empty() {
        diags.push(Diagnostic::new(
            node.pos,
            "`condition` needs at least one of gt, gte, lt, lte, eq, neq",
        ));
    }
    if let Some(k) = kind {
        if k.needs_field() && field.is_none() {
            diags.push(Diagnostic::new(
                node.pos,
                format!("`{}` needs `field` in its condition", k.name()),
            ));
        }
    }
    Some(CorrelationCondition { field, bounds })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<SigmaCorrelation, Vec<Diagnostic>> {
        let docs = crate::sigma::yaml::parse_documents(text, &Default::default()).unwrap();
        match crate::sigma::rule::parse_document(&docs[0], &Default::default())? {
            crate::sigma::rule::Document::Correlation(c) => Ok(*c),
            _ => panic!("not a correlation"),
        }
    }

    #[test]
    fn timespans_are_number_and_unit() {
        let timespan = |t: &str| {
            parse(&format!(
                "title: c\ncorrelation:\n  type: event_count\n  rules: [a]\n  timespan: {t}\n  condition: {{gte: 2}}\n"
            ))
        };
        assert_eq!(timespan("90m").unwrap().timespan, Span::from_secs(5400));
        assert_eq!(timespan("1d").unwrap().timespan, Span::from_secs(86400));
        for bad in ["0m", "5x", "m", "999999999d"] {
            let diags = timespan(bad).unwrap_err();
            assert!(diags[0].message.contains("timespan"), "{bad}: {diags:?}");
            assert_eq!(diags[0].pos.line, 5, "{bad}");
        }
    }

    #[test]
    fn conditions_are_ranges() {
        let c = CorrelationCondition {
            field: None,
            bounds: vec![Bound::Gt(100.0), Bound::Lte(200.0)],
        };
        assert!(!c.holds(100.0));
        assert!(c.holds(101.0));
        assert!(c.holds(200.0));
        assert!(!c.holds(201.0));
        assert!(!c.decided_at_window_end() || c.bounds.iter().any(|b| matches!(b, Bound::Lte(_))));
        assert!(CorrelationCondition {
            field: None,
            bounds: vec![Bound::Lt(3.0)]
        }
        .decided_at_window_end());
        assert!(!CorrelationCondition {
            field: None,
            bounds: vec![Bound::Gte(3.0)]
        }
        .decided_at_window_end());
    }
}
