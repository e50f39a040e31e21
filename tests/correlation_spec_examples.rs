//! Every correlation example of the Sigma correlation specification
//! (../shared/sigma-spec/specification/sigma-correlation-rules-specification.md),
//! taken verbatim from the document, run over synthetic event streams with
//! the exact firings each must give.
//!
//! The examples reference base rules the specification does not spell out
//! (`5638f7c0-...`, `recon_cmd_a`, `website_access`, ...): the tests define
//! them on a `product: test` logsource, matching an `action` field. Examples
//! without a title get one, since the loader requires it. Skips (with a
//! message) when ../shared is absent.

mod common;

use std::path::Path;
use tocsin::correlate::{CorrelationSet, Correlator};
use tocsin::detect::LogsourceRouter;
use tocsin::detect::{CompileOptions, Engine, Scratch};
use tocsin::event::TimeOptions;
use tocsin::event::{InputFormat, Origin, Parser, Position};
use tocsin::sigma::{load_text, LoadReport};

/// The specification's text, or `None` (skip) without ../shared.
fn spec() -> Option<String> {
    let shared = common::shared_dir()?;
    let path = shared.join("sigma-spec/specification/sigma-correlation-rules-specification.md");
    Some(std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display())))
}

/// The first YAML code block of the document containing every `needle`.
fn block(spec: &str, needles: &[&str]) -> String {
    let mut rest = spec;
    while let Some(start) = rest.find("```y") {
        let after = &rest[start..];
        let body_start = after.find('\n').map_or(after.len(), |n| n + 1);
        let body = &after[body_start..];
        let end = body.find("```").unwrap_or(body.len());
        let text = &body[..end];
        if needles.iter().all(|n| text.contains(n)) {
            return text.to_string();
        }
        rest = &body[end..];
    }
    panic!("no YAML block in the specification contains {needles:?}");
}

fn titled(yaml: &str, title: &str) -> String {
    if yaml.contains("title:") {
        yaml.to_string()
    } else {
        format!("title: {title}\n{yaml}")
    }
}

/// A base rule on the test logsource matching `action: <action>`.
fn base_rule(id: &str, name: &str, action: &str) -> String {
    format!(
        "title: base {name}\nid: {id}\nname: {name}\nlogsource: {{product: test}}\ndetection:\n  s: {{action: {action}}}\n  condition: s\n"
    )
}

/// What fired: (correlation title, group values, measured value, events).
type Fired = Vec<(String, Vec<String>, f64, usize)>;

/// Loads the rule documents, feeds the JSON events (`@timestamp` seconds
/// after a fixed origin) in time order (stable), ends the input, and
/// returns the firings.
fn run(documents: &[String], events: &[(i64, serde_json::Value)]) -> Fired {
    let mut events = events.to_vec();
    events.sort_by_key(|(t, _)| *t);
    let mut report = LoadReport::default();
    load_text(
        &documents.join("\n---\n"),
        Path::new("spec.yml"),
        &mut report,
        &Default::default(),
    );
    assert!(report.problems.is_empty(), "{:?}", report.problems);
    let (engine, problems) = Engine::compile(
        report.rules,
        report.filters,
        LogsourceRouter::builtin().expect("built-in mapping"),
        &CompileOptions::default(),
    );
    assert!(problems.is_empty(), "{problems:?}");
    let (set, problems) = CorrelationSet::build(report.correlations, &engine);
    assert!(problems.is_empty(), "{problems:?}");
    let set = std::sync::Arc::new(set);
    let mut correlator = Correlator::new(set.clone());
    let parser = Parser::new(InputFormat::Json, TimeOptions::default());
    let base = chrono::DateTime::parse_from_rfc3339("2026-01-05T08:00:00Z")
        .expect("time")
        .with_timezone(&chrono::Utc);
    let tags = vec![("product".to_string(), "test".to_string())];
    let (mut scratch, mut matched, mut obs, mut fired) =
        (Scratch::default(), Vec::new(), Vec::new(), Vec::new());
    for (i, (secs, fields)) in events.iter().enumerate() {
        let mut fields = fields.clone();
        fields["@timestamp"] = (base + chrono::Duration::seconds(*secs))
            .to_rfc3339()
            .into();
        let origin = Origin {
            source: "stream".into(),
            position: Position::Line { line: i as u64 + 1 },
        };
        let event = parser
            .parse(&fields.to_string(), origin, base)
            .expect("event parses");
        let windows = fields.get("Channel").is_some();
        engine.evaluate(
            &event,
            if windows { &[] } else { &tags },
            &mut scratch,
            &mut matched,
        );
        for &r in &matched {
            set.observations(r, &event, &format!("e{i}"), &mut obs);
            for o in obs.drain(..) {
                fired.extend(correlator.observe(o));
            }
        }
    }
    fired.extend(correlator.finish());
    fired
        .iter()
        .map(|f| {
            let c = set.get(f.correlation).expect("fired correlation exists");
            (
                c.rule.meta.title.clone(),
                f.group.iter().map(|(_, v)| v.clone()).collect(),
                f.value,
                f.events,
            )
        })
        .collect()
}

fn fired(
    title: &str,
    group: &[&str],
    value: f64,
    events: usize,
) -> (String, Vec<String>, f64, usize) {
    (
        title.to_string(),
        group.iter().map(|s| s.to_string()).collect(),
        value,
        events,
    )
}

const FAILED_LOGIN_ID: &str = "5638f7c0-ac70-491d-8465-2a65075e0d86";

#[test]
fn spec_event_count_example_fires_at_one_hundred_failures_within_an_hour() {
    let Some(spec) = spec() else { return };
    let corr = block(&spec, &["type: event_count", "gte: 100", "ComputerName"]);
    let mut events = Vec::new();
    // host-a: 100 failures within 99 s: fires at the 100th.
    events.extend((0..100).map(|i| {
        (
            i,
            serde_json::json!({"action": "failed", "ComputerName": "host-a"}),
        )
    }));
    // host-b: 99 failures: never.
    events.extend((0..99).map(|i| {
        (
            i,
            serde_json::json!({"action": "failed", "ComputerName": "host-b"}),
        )
    }));
    // host-c: 100 failures 37 s apart: 3663 s, never 100 within an hour.
    events.extend((0..100).map(|i| {
        (
            200 + i * 37,
            serde_json::json!({"action": "failed", "ComputerName": "host-c"}),
        )
    }));
    let got = run(
        &[base_rule(FAILED_LOGIN_ID, "failed_login", "failed"), corr],
        &events,
    );
    assert_eq!(
        got,
        vec![fired("Many failed logins", &["host-a"], 100.0, 100)]
    );
}

#[test]
fn spec_value_count_example_fires_at_one_hundred_distinct_users() {
    let Some(spec) = spec() else { return };
    let corr = block(&spec, &["type: value_count", "field: User"]);
    let mut events = Vec::new();
    for i in 0..100 {
        events.push((i, serde_json::json!({"action": "failed", "ComputerName": "dc1", "WorkstationName": "ws1", "User": format!("user{i}")})));
    }
    // 150 attempts, 99 distinct users: never.
    for i in 0..150 {
        events.push((i, serde_json::json!({"action": "failed", "ComputerName": "dc1", "WorkstationName": "ws2", "User": format!("user{}", i % 99)})));
    }
    let got = run(
        &[base_rule(FAILED_LOGIN_ID, "failed_login", "failed"), corr],
        &events,
    );
    assert_eq!(
        got,
        vec![fired("Failed login", &["dc1", "ws1"], 100.0, 100)]
    );
}

#[test]
fn spec_temporal_example_needs_all_three_recon_commands_within_five_minutes() {
    let Some(spec) = spec() else { return };
    let corr = titled(&block(&spec, &["type: temporal\n", "recon_cmd_c"]), "Recon");
    let rules = [
        base_rule("recon-a", "recon_cmd_a", "a"),
        base_rule("recon-b", "recon_cmd_b", "b"),
        base_rule("recon-c", "recon_cmd_c", "c"),
        corr,
    ];
    let ev = |action: &str, host: &str, user: &str| serde_json::json!({"action": action, "ComputerName": host, "User": user});
    let events = vec![
        // bob on pc1: c, a, b within two minutes, any order: fires.
        (0, ev("c", "pc1", "bob")),
        (60, ev("a", "pc1", "bob")),
        (120, ev("b", "pc1", "bob")),
        // alice: only a and b.
        (0, ev("a", "pc1", "alice")),
        (10, ev("b", "pc1", "alice")),
        // carol: all three, but over six minutes.
        (200, ev("a", "pc2", "carol")),
        (400, ev("b", "pc2", "carol")),
        (560, ev("c", "pc2", "carol")),
    ];
    let got = run(&rules, &events);
    assert_eq!(got, vec![fired("Recon", &["pc1", "bob"], 3.0, 3)]);
}

#[test]
fn spec_temporal_ordered_example_needs_the_failures_before_the_success() {
    let Some(spec) = spec() else { return };
    let corr = titled(
        &block(&spec, &["type: temporal_ordered", "many_failed_logins"]),
        "Failures then success",
    );
    // The example's note: `many_failed_logins` is a correlation of its own.
    let many = "title: many failed logins\nname: many_failed_logins\ncorrelation:\n  type: event_count\n  rules: [failed_login]\n  group-by: [User]\n  timespan: 1h\n  condition: {gte: 3}\n".to_string();
    let rules = [
        base_rule(FAILED_LOGIN_ID, "failed_login", "failed"),
        base_rule("success-id", "successful_login", "success"),
        many,
        corr,
    ];
    let ev = |action: &str, user: &str| serde_json::json!({"action": action, "User": user});
    let events = vec![
        (0, ev("failed", "bob")),
        (10, ev("failed", "bob")),
        (20, ev("failed", "bob")),
        (30, ev("success", "bob")),
        // alice logs in first, then fails three times: the order is wrong.
        (0, ev("success", "alice")),
        (40, ev("failed", "alice")),
        (50, ev("failed", "alice")),
        (60, ev("failed", "alice")),
    ];
    let got = run(&rules, &events);
    assert_eq!(
        got,
        vec![
            fired("many failed logins", &["bob"], 3.0, 3),
            fired("Failures then success", &["bob"], 2.0, 2),
            fired("many failed logins", &["alice"], 3.0, 3),
        ]
    );
}

/// value_sum and value_avg: one group crosses the threshold, the other not.
#[test]
fn spec_value_sum_and_avg_examples_fire_only_past_their_thresholds() {
    let Some(spec) = spec() else { return };
    let cases = [
        // (block needles, base rule name, field, bob's values, eve's values, title, expected value)
        (
            ["type: value_sum", "bytes_sent"],
            "website_access",
            "bytes_sent",
            vec![400_000, 400_000, 400_000],
            vec![400_000, 400_000],
            "Possible Exfiltration to Website",
            1_200_000.0,
        ),
        (
            ["type: value_avg", "BytesOut"],
            "rule_a_id",
            "BytesOut",
            vec![400, 700],
            vec![400, 500],
            "Suspicious average network traffic",
            550.0,
        ),
    ];
    for (needles, rule, field, bob, eve, title, value) in cases {
        let corr = block(&spec, &needles);
        let mut events = Vec::new();
        for (who, ip, values) in [("bob", "10.0.0.1", &bob), ("eve", "10.0.0.2", &eve)] {
            for (i, v) in values.iter().enumerate() {
                let mut e = serde_json::json!({"action": "x", "SourceIP": ip, "User": who});
                e[field] = (*v).into();
                events.push((i as i64 * 10, e));
            }
        }
        let got = run(
            &[base_rule(&format!("{rule}-id"), rule, "x"), corr],
            &events,
        );
        assert_eq!(
            got,
            vec![fired(title, &["10.0.0.1", "bob"], value, bob.len())],
            "{title}"
        );
    }
}

#[test]
fn spec_value_percentile_example_finds_the_rare_process_at_window_end() {
    let Some(spec) = spec() else { return };
    let corr = block(&spec, &["type: value_percentile", "field: image"]);
    let ev = |host: &str, image: &str| serde_json::json!({"action": "proc", "ComputerName": host, "image": image});
    let mut events = Vec::new();
    // pc1: 199 cmd.exe and one evil.exe: the rarest value is 0.5% of the window.
    for i in 0..199 {
        events.push((i, ev("pc1", "C:\\Windows\\System32\\cmd.exe")));
    }
    events.push((199, ev("pc1", "C:\\Users\\Public\\evil.exe")));
    // pc2: two images, half each: nothing rare.
    for i in 0..100 {
        events.push((i, ev("pc2", if i % 2 == 0 { "a.exe" } else { "b.exe" })));
    }
    let got = run(
        &[base_rule("proc-id", "process_creation", "proc"), corr],
        &events,
    );
    assert_eq!(got.len(), 1, "{got:?}");
    assert_eq!(got[0].1, vec!["pc1".to_string()]);
    assert!((got[0].2 - 0.5).abs() < 1e-9, "{got:?}");
}

#[test]
fn spec_aliases_example_joins_source_and_destination_addresses() {
    let Some(spec) = spec() else { return };
    let with_logsource =
        |yaml: String, title: &str| format!("title: {title}\nlogsource: {{product: test}}\n{yaml}");
    let internal_error = with_logsource(
        block(&spec, &["name: internal_error", "status_code"]),
        "internal error",
    );
    let new_connection = with_logsource(
        block(&spec, &["name: new_network_connection", "event.outcome"]),
        "new connection",
    );
    let corr = block(&spec, &["aliases:", "internal_ip:", "type: temporal"])
        .replace("title: —", "title: alias example")
        .replace("id: —\n", "");
    let error = |dst: &str, src: &str| serde_json::json!({"http": {"response": {"status_code": 500}}, "destination": {"ip": dst}, "source": {"ip": src}});
    let connection = |src: &str, dst: &str| serde_json::json!({"event": {"category": "network", "type": "connection", "outcome": "success"}, "source": {"ip": src}, "destination": {"ip": dst}});
    let events = vec![
        // The server 10.0.0.5 answers 500 to 1.2.3.4, then connects out to it.
        (0, error("10.0.0.5", "1.2.3.4")),
        (5, connection("10.0.0.5", "1.2.3.4")),
        // Addresses that do not line up.
        (20, error("10.0.0.6", "5.6.7.8")),
        (22, connection("10.0.0.6", "9.9.9.9")),
        // Lined up, but 15 s apart (timespan 10s).
        (40, error("10.0.0.7", "1.1.1.1")),
        (55, connection("10.0.0.7", "1.1.1.1")),
    ];
    let got = run(&[internal_error, new_connection, corr], &events);
    assert_eq!(
        got,
        vec![fired("alias example", &["10.0.0.5", "1.2.3.4"], 2.0, 2)]
    );
}

#[test]
fn spec_complete_example_chains_failed_logins_into_a_successful_login() {
    let Some(spec) = spec() else { return };
    let documents = block(
        &spec,
        &["Multiple Failed Logins Followed by Successful Login"],
    );
    let ev = |id: u32, user: &str| serde_json::json!({"Channel": "Security", "EventID": id, "User": user});
    let mut events: Vec<_> = (0..10).map(|i| (i * 10, ev(4625, "bob"))).collect();
    events.push((120, ev(4624, "bob")));
    // alice: ten failures with the old event id 529, and no success.
    events.extend((0..10).map(|i| (200 + i, ev(529, "alice"))));
    // carol: nine failures, then a success: not enough failures.
    events.extend((0..9).map(|i| (300 + i, ev(4625, "carol"))));
    events.push((320, ev(4624, "carol")));
    let got = run(&[documents], &events);
    assert_eq!(
        got,
        vec![
            fired("Multiple failed logons", &["bob"], 10.0, 10),
            fired(
                "Correlation - Multiple Failed Logins Followed by Successful Login",
                &["bob"],
                2.0,
                2
            ),
            fired("Multiple failed logons", &["alice"], 10.0, 10),
        ]
    );
}
