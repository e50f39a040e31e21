//! Lint: what loads but is probably not what the author meant.
//!
//! The specification allows arbitrary custom fields, so an unknown key is not
//! an error; but `levle: high` then loads as a Medium rule (and gets a
//! Medium SLA) and `logsoruce:` turns into "missing logsource". These checks
//! run on every document as it is read and come back as warnings at
//! `file:line:col`; `tocsin rules check --strict` fails on them. Values of
//! `logsource` need the logsource mapping and are checked in `detect`.
//!
//! Checks, after SigmaHQ's validators and rsigma's `rule lint`: unknown
//! top-level and `logsource` keys (with a did-you-mean), upper-case keys,
//! `id` missing or not a UUID, `status` outside the specification's list,
//! `date`/`modified` not `YYYY-MM-DD`, tags not `namespace.name` in lower
//! case. Duplicate ids are errors, not warnings (see `load`).

use super::rule::Diagnostic;
use super::yaml::{Node, Value};

/// Keys every kind of Sigma document may carry.
const COMMON_KEYS: &[&str] = &[
    "title",
    "id",
    "name",
    "related",
    "taxonomy",
    "status",
    "description",
    "license",
    "author",
    "references",
    "date",
    "modified",
    "tags",
    "level",
    "falsepositives",
    "fields",
    "scope",
];

/// Keys of a detection rule; `anomaly` is tocsin's ML section.
const RULE_KEYS: &[&str] = &["logsource", "detection", "anomaly"];
/// Keys of a correlation rule.
const CORRELATION_KEYS: &[&str] = &["correlation", "generate"];
/// Keys of a filter.
const FILTER_KEYS: &[&str] = &["logsource", "filter"];

/// Custom fields SigmaHQ's own rules carry (regression test references and
/// metadata): not worth a warning.
const SIGMAHQ_CUSTOM_KEYS: &[&str] = &[
    "rule_metadata",
    "regression_tests_path",
    "regression_tests_info",
    "simulation",
];

/// The keys of `logsource`.
const LOGSOURCE_KEYS: &[&str] = &["category", "product", "service", "definition"];

/// The specification's `status` values.
const STATUSES: &[&str] = &[
    "stable",
    "test",
    "experimental",
    "deprecated",
    "unsupported",
];

/// Warnings for one document: unknown keys, ids, status, dates, tags.
pub(crate) fn lint(doc: &Node) -> Vec<Diagnostic> {
    let mut warnings = Vec::new();
    let Some(entries) = doc.as_map() else {
        return warnings;
    };
    let kind_keys = if doc.get("correlation").is_some() {
        CORRELATION_KEYS
    } else if doc.get("filter").is_some() && doc.get("detection").is_none() {
        FILTER_KEYS
    } else {
        RULE_KEYS
    };
    let known: Vec<&str> = COMMON_KEYS.iter().chain(kind_keys).copied().collect();
    for (key, _) in entries {
        let Some(name) = key.as_str() else { continue };
        if known.contains(&name) || SIGMAHQ_CUSTOM_KEYS.contains(&name) {
            continue;
        }
        let message = match did_you_mean(name, &known) {
            Some(k) if doc.get(k).is_none() => format!(
                "unknown key `{name}`: did you mean `{k}`? (kept as a custom field, so the rule loads without `{k}`)"
            ),
            Some(k) => format!("unknown key `{name}` looks like `{k}`, which the rule also has; kept as a custom field"),
            None => format!("unknown key `{name}`: not a Sigma key, kept as a custom field"),
        };
        warnings.push(Diagnostic::new(key.pos, message));
    }
    if let Some(logsource) = doc.get("logsource").and_then(Node::as_map) {
        for (key, _) in logsource {
            let Some(name) = key.as_str() else { continue };
            if LOGSOURCE_KEYS.contains(&name) {
                continue;
            }
            let hint = hint(name, LOGSOURCE_KEYS);
            warnings.push(Diagnostic::new(
                key.pos,
                format!(
                    "unknown key `logsource.{name}`: {hint}only category, product and service route events"
                ),
            ));
        }
    }
    lint_id(doc, &mut warnings);
    lint_status(doc, &mut warnings);
    for key in ["date", "modified"] {
        if let Some(n) = doc.get(key) {
            let ok = n
                .as_str()
                .is_some_and(|s| chrono::NaiveDate::parse_from_str(s, "%Y-%m-%d").is_ok());
            if !ok {
                warnings.push(Diagnostic::new(
                    n.pos,
                    format!("`{key}` should be a date written YYYY-MM-DD"),
                ));
            }
        }
    }
    if let Some(Value::Seq(tags)) = doc.get("tags").map(|n| &n.value) {
        for tag in tags {
            if !tag.as_str().is_some_and(is_tag) {
                warnings.push(Diagnostic::new(
                    tag.pos,
                    "a tag should be `namespace.name` in lower case (attack.t1110, cve.2021-44228)",
                ));
            }
        }
    }
    warnings
}

fn lint_id(doc: &Node, warnings: &mut Vec<Diagnostic>) {
    match doc.get("id") {
        None if doc.get("filter").is_none() || doc.get("detection").is_some() => {
            // The first key is where the reader's eye starts the document.
            let start = doc
                .as_map()
                .and_then(|entries| entries.first())
                .map_or(doc.pos, |(key, _)| key.pos);
            warnings.push(Diagnostic::new(
                start,
                "no `id`: one is derived from the title, so renaming the rule changes its alert ids (add `id:` with a UUID)",
            ));
        }
        Some(n) => {
            if let Some(id) = n.as_str() {
                if uuid::Uuid::try_parse(id).is_err() {
                    warnings.push(Diagnostic::new(
                        n.pos,
                        format!("`id` `{id}` is not a UUID; the specification asks for one (uuidgen gives one)"),
                    ));
                }
            }
        }
        None => {}
    }
}

fn lint_status(doc: &Node, warnings: &mut Vec<Diagnostic>) {
    let Some(n) = doc.get("status") else { return };
    let Some(status) = n.as_str() else { return };
    if STATUSES.contains(&status) {
        return;
    }
    let hint = hint(status, STATUSES);
    warnings.push(Diagnostic::new(
        n.pos,
        format!(
            "`status` `{status}`: {hint}the specification knows {}",
            STATUSES.join(", ")
        ),
    ));
}

/// `namespace.name`, lower case: letters, digits, `_`, `-`, and dots after the first.
fn is_tag(tag: &str) -> bool {
    let valid = |s: &str, dots: bool| {
        !s.is_empty()
            && s.bytes().all(|b| {
                b.is_ascii_lowercase()
                    || b.is_ascii_digit()
                    || b == b'_'
                    || b == b'-'
                    || (dots && b == b'.')
            })
    };
    match tag.split_once('.') {
        Some((namespace, name)) => valid(namespace, false) && valid(name, true),
        None => false,
    }
}

/// `did you mean `x`? ` for a likely misspelling, else nothing.
fn hint(word: &str, known: &[&str]) -> String {
    match did_you_mean(word, known) {
        Some(k) => format!("did you mean `{k}`? "),
        None => String::new(),
    }
}

/// The known word `word` is most likely a misspelling of: same letters in
/// another case, or at most one edit away (two for longer words), counting
/// a swap of neighbours as one edit.
pub(crate) fn did_you_mean<'a>(word: &str, known: &[&'a str]) -> Option<&'a str> {
    // The distance costs length x length in time and memory; a word this
    // long is no typo of a key or a logsource value.
    if word.len() > 64 {
        return None;
    }
    let lower = word.to_lowercase();
    let allowed = if lower.chars().count() >= 6 { 2 } else { 1 };
    known
        .iter()
        .map(|k| (strsim::damerau_levenshtein(&lower, k), *k))
        .filter(|&(d, _)| d <= allowed)
        .min_by_key(|&(d, _)| d)
        .map(|(_, k)| k)
}

/// A key of `doc` that looks like a misspelling of the missing `key`, for
/// "missing `logsource` (is `logsoruce` at 3:1 a typo?)".
pub(crate) fn misspelling_of<'a>(doc: &'a Node, key: &str) -> Option<&'a Node> {
    doc.as_map()?.iter().map(|(k, _)| k).find(|k| {
        k.as_str()
            .is_some_and(|name| name != key && did_you_mean(name, &[key]).is_some())
    })
}

/// "missing `key`", with the likely misspelling when the document has one.
pub(crate) fn missing_key(doc: &Node, key: &str) -> String {
    match misspelling_of(doc, key) {
        Some(k) => format!(
            "missing `{key}` (is `{}` at {} a typo?)",
            k.as_str().unwrap_or_default(),
            k.pos
        ),
        None => format!("missing `{key}`"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sigma::{parse_documents, RuleLimits};

    fn warnings(text: &str) -> Vec<String> {
        let docs = parse_documents(text, &RuleLimits::default()).unwrap();
        lint(&docs[0])
            .into_iter()
            .map(|d| format!("{}: {}", d.pos, d.message))
            .collect()
    }

    const GOOD: &str = "title: t\nid: 5d6e2c1a-8f5b-4c1e-9f3a-2b7d1c0e4a11\nstatus: test\ndate: 2026-01-02\ntags: [attack.t1110.001, cve.2021-44228]\nlogsource: {product: linux, service: sshd}\ndetection:\n  sel: {a: 1}\n  condition: sel\nlevel: high\n";

    #[test]
    fn a_clean_rule_has_no_warnings() {
        assert_eq!(warnings(GOOD), Vec::<String>::new());
    }

    #[test]
    fn typos_of_keys_get_a_did_you_mean_at_their_position() {
        let w = warnings(&GOOD.replace("level: high", "levle: high"));
        assert_eq!(w.len(), 1, "{w:?}");
        assert!(
            w[0].starts_with("10:1: unknown key `levle`: did you mean `level`?"),
            "{w:?}"
        );
        let w = warnings(&GOOD.replace("logsource:", "logsoruce:"));
        assert!(w[0].contains("did you mean `logsource`?"), "{w:?}");
        let w = warnings(&GOOD.replace("level: high", "Level: high"));
        assert!(w[0].contains("did you mean `level`?"), "{w:?}");
        let w = warnings(&GOOD.replace("product: linux", "prodcut: linux"));
        assert!(
            w[0].contains("`logsource.prodcut`: did you mean `product`?"),
            "{w:?}"
        );
    }

    #[test]
    fn unknown_keys_far_from_any_sigma_key_are_custom_fields() {
        let w = warnings(&format!("{GOOD}severity: 3\nregression_tests_path: x\n"));
        assert_eq!(w.len(), 1, "{w:?}");
        assert!(w[0].contains("`severity`: not a Sigma key"), "{w:?}");
    }

    #[test]
    fn ids_status_dates_and_tags_are_checked() {
        let w = warnings(
            &GOOD
                .replace("5d6e2c1a-8f5b-4c1e-9f3a-2b7d1c0e4a11", "not-a-uuid")
                .replace("status: test", "status: stabel")
                .replace("2026-01-02", "2026/01/02")
                .replace("attack.t1110.001", "T1110"),
        );
        assert_eq!(w.len(), 4, "{w:?}");
        assert!(w[0].contains("`not-a-uuid` is not a UUID"), "{w:?}");
        assert!(w[1].contains("did you mean `stable`?"), "{w:?}");
        assert!(w[2].contains("YYYY-MM-DD"), "{w:?}");
        assert!(w[3].contains("namespace.name"), "{w:?}");
        let w = warnings(&GOOD.replace("id: 5d6e2c1a-8f5b-4c1e-9f3a-2b7d1c0e4a11\n", ""));
        assert!(w[0].starts_with("1:1: no `id`"), "{w:?}");
    }

    #[test]
    fn correlation_and_filter_keys_are_known_to_their_documents() {
        let corr = "title: c\nid: 5d6e2c1a-8f5b-4c1e-9f3a-2b7d1c0e4a12\ncorrelation:\n  type: event_count\n  rules: [x]\n  timespan: 1m\n  condition: {gte: 2}\ngenerate: false\n";
        assert_eq!(warnings(corr), Vec::<String>::new());
        let filter = "title: f\nlogsource: {product: linux}\nfilter:\n  rules: [x]\n  selection: {a: 1}\n  condition: not selection\n";
        assert_eq!(warnings(filter), Vec::<String>::new());
        assert!(warnings(&corr.replace("generate", "detection"))[0].contains("`detection`"));
    }

    #[test]
    fn a_huge_unknown_key_costs_nothing_and_gets_no_suggestion() {
        let key = "l".repeat(1 << 20);
        assert_eq!(did_you_mean(&key, &["level"]), None);
    }

    #[test]
    fn a_missing_key_names_its_likely_misspelling() {
        let docs = parse_documents(
            "title: t\nlogsoruce: {product: linux}\n",
            &RuleLimits::default(),
        )
        .unwrap();
        assert_eq!(
            missing_key(&docs[0], "logsource"),
            "missing `logsource` (is `logsoruce` at 2:1 a typo?)"
        );
        assert_eq!(missing_key(&docs[0], "detection"), "missing `detection`");
    }
}
