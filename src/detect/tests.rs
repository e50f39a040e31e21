//! Tests of the engine: routing, conditions, filters, the index.

use super::testing::compile_text;
use super::*;
use crate::event::InputFormat;
use serde_json::json;

fn engine(rules: &str) -> Engine {
    let (engine, problems, _) = compile_text(rules);
    assert!(problems.is_empty(), "{problems:?}");
    engine
}

fn event(fields: Value, format: InputFormat) -> Event {
    crate::event::test_event(fields, format)
}

fn fired(engine: &Engine, e: &Event) -> Vec<String> {
    let mut out = Vec::new();
    engine.evaluate(e, &[], &mut Scratch::default(), &mut out);
    out.iter()
        .map(|&i| engine.rules()[i].rule.meta.title.clone())
        .collect()
}

const RULES: &str = r"
title: win proc
logsource: {product: windows, category: process_creation}
detection:
  selection:
    Image|endswith: '\whoami.exe'
  condition: selection
---
title: linux keyword
logsource: {product: linux, service: sshd}
detection:
  keywords: ['whoami.exe']
  condition: keywords
---
title: conditions
logsource: {product: windows, category: process_creation}
detection:
  selection_a:
    CommandLine|contains: 'a1'
  selection_b:
    CommandLine|contains: 'b2'
  filter_x:
    User: 'SYSTEM'
  _helper:
    CommandLine|contains: 'never'
  condition: 1 of selection_* and not filter_x
";

/// Titles of the bundled test rules that fire on `fields` read as `format`.
fn fired_on(fields: Value, format: InputFormat) -> Vec<String> {
    fired(&engine(RULES), &event(fields, format))
}

#[test]
fn windows_rules_fire_only_on_windows_events() {
    let win = json!({"Channel": "Microsoft-Windows-Sysmon/Operational", "EventID": 1, "Image": "C:\\Windows\\System32\\whoami.exe"});
    assert_eq!(fired_on(win, InputFormat::Json), vec!["win proc"]);
    let linux = json!({"program": "sshd", "message": "ran whoami.exe", "Image": "C:\\whoami.exe"});
    assert_eq!(fired_on(linux, InputFormat::Syslog), vec!["linux keyword"]);
}

#[test]
fn security_4688_reads_image_through_the_field_mapping() {
    let ev = json!({"Channel": "Security", "EventID": 4688, "NewProcessName": "C:\\Windows\\System32\\whoami.exe"});
    assert_eq!(fired_on(ev, InputFormat::Json), vec!["win proc"]);
}

#[test]
fn one_of_patterns_and_not_filters_combine() {
    let e = engine(RULES);
    let base = json!({"Channel": "Microsoft-Windows-Sysmon/Operational", "EventID": 1});
    let with = |extra: Value| {
        let mut v = base.clone();
        v.as_object_mut()
            .unwrap()
            .extend(extra.as_object().unwrap().clone());
        event(v, InputFormat::Json)
    };
    assert_eq!(
        fired(&e, &with(json!({"CommandLine": "x b2"}))),
        vec!["conditions"]
    );
    assert!(fired(&e, &with(json!({"CommandLine": "x b2", "User": "system"}))).is_empty());
    assert!(fired(&e, &with(json!({"CommandLine": "x never"}))).is_empty());
}

fn compile_with_problems(text: &str) -> (Engine, Vec<RuleProblem>) {
    let (engine, problems, _) = compile_text(text);
    (engine, problems)
}

const FILTERED: &str = r"
title: rar compress
id: 6f3e2987-db24-4c78-a860-b4f4095a7095
logsource: {product: windows, category: process_creation}
detection:
  selection:
    Image|endswith: '\rar.exe'
  condition: selection
---
title: Filter Administrator account
logsource: {product: windows, category: process_creation}
filter:
  rules:
    - 6f3e2987-db24-4c78-a860-b4f4095a7095
  selection:
    User|startswith: 'adm_'
  condition: selection
";

#[test]
fn a_list_of_conditions_is_their_or() {
    let e = engine("title: list\nlogsource: {product: linux, service: sshd}\ndetection:\n  a: {message|contains: one}\n  b: {message|contains: two}\n  condition:\n    - a and b\n    - b and not a and not b\n    - a and message_two\n  message_two: {message|contains: three}\n");
    let ev = |m: &str| {
        event(
            json!({"program": "sshd", "message": m}),
            InputFormat::Syslog,
        )
    };
    assert_eq!(fired(&e, &ev("one two")), vec!["list"]);
    assert_eq!(fired(&e, &ev("one three")), vec!["list"]);
    assert!(fired(&e, &ev("two")).is_empty());
    assert!(fired(&e, &ev("one")).is_empty());
}

#[test]
fn all_of_them_excludes_underscore_identifiers() {
    let e = engine("title: them\nlogsource: {product: linux, service: sshd}\ndetection:\n  a: {message|contains: one}\n  _never: {message|contains: nothing-like-this}\n  condition: all of them\n");
    let ev = event(
        json!({"program": "sshd", "message": "one"}),
        InputFormat::Syslog,
    );
    assert_eq!(fired(&e, &ev), vec!["them"]);
}

#[test]
fn sigma_filters_veto_the_rules_they_name() {
    let (e, problems) = compile_with_problems(FILTERED);
    assert!(problems.is_empty(), "{problems:?}");
    assert_eq!(
        e.rules()[0].filter_titles,
        vec!["Filter Administrator account"]
    );
    let ev = |user: &str| {
        event(
            json!({"Channel": "Microsoft-Windows-Sysmon/Operational", "EventID": 1, "Image": "C:\\rar.exe", "User": user}),
            InputFormat::Json,
        )
    };
    assert_eq!(fired(&e, &ev("alice")), vec!["rar compress"]);
    assert!(
        fired(&e, &ev("ADM_bob")).is_empty(),
        "the filter silences admin accounts"
    );
    let mut out = Vec::new();
    e.evaluate_exhaustive(&ev("adm_bob"), &[], &mut out);
    assert!(out.is_empty());
}

#[test]
fn filters_naming_unknown_rules_or_other_logsources_are_reported() {
    let text = FILTERED.replace(
        "    - 6f3e2987-db24-4c78-a860-b4f4095a7095",
        "    - no-such-rule",
    );
    let (_, problems) = compile_with_problems(&text);
    assert!(
        problems[0]
            .message
            .contains("`no-such-rule`, which is not loaded"),
        "{problems:?}"
    );
    let text = FILTERED.replace(
            "title: Filter Administrator account\nlogsource: {product: windows, category: process_creation}",
            "title: Filter Administrator account\nlogsource: {product: linux}",
        );
    let (e, problems) = compile_with_problems(&text);
    assert!(
        problems[0].message.contains("does not apply"),
        "{problems:?}"
    );
    assert!(e.rules()[0].filter_titles.is_empty());
}

#[test]
fn source_tags_admit_events_no_mapping_entry_covers() {
    let e = engine("title: acme dns\nlogsource: {product: acme, service: dns}\ndetection:\n  sel: {query|endswith: '.evil'}\n  condition: sel\n");
    let ev = event(json!({"query": "x.evil"}), InputFormat::Json);
    assert!(fired(&e, &ev).is_empty());
    let tags = vec![
        ("product".to_string(), "acme".to_string()),
        ("service".to_string(), "dns".to_string()),
    ];
    let mut out = Vec::new();
    e.evaluate(&ev, &tags, &mut Scratch::default(), &mut out);
    assert_eq!(out.len(), 1);
    assert_eq!(e.unrouted_rules().count(), 1);
}

/// The index requires every item of a selection that has literals, so a
/// rule is not even a candidate when only one of them occurs.
#[test]
fn a_rule_is_a_candidate_only_when_all_its_required_sets_are_hit() {
    let e = engine(
        r"
title: run key
logsource: {product: windows, category: registry_set}
detection:
  base:
    TargetObject|contains: '\SOFTWARE\Microsoft\Windows\CurrentVersion'
  keys:
    TargetObject|contains: ['\Run\', '\RunOnce\']
  condition: base and keys
",
    );
    let candidates = |object: &str| {
        let ev = event(
            json!({"Channel": "Microsoft-Windows-Sysmon/Operational", "EventID": 13, "TargetObject": object}),
            InputFormat::EvtxJson,
        );
        let mut scratch = Scratch::default();
        e.route(&ev, &[], &mut scratch);
        let view = EventView::new(&ev, &[]);
        e.index
            .candidates(&view, &[], &scratch.admitted, &mut scratch.index)
            .len()
    };
    let base = r"HKLM\SOFTWARE\Microsoft\Windows\CurrentVersion";
    assert_eq!(
        candidates(&format!("{base}\\Explorer\\x")),
        0,
        "one set of two"
    );
    assert_eq!(candidates(r"HKU\x\Run\evil"), 0, "the other set alone");
    assert_eq!(candidates(&format!("{base}\\Run\\evil")), 1);
    let fired = fired(
        &e,
        &event(
            json!({"Channel": "Microsoft-Windows-Sysmon/Operational", "EventID": 13, "TargetObject": format!("{base}\\RunOnce\\evil")}),
            InputFormat::EvtxJson,
        ),
    );
    assert_eq!(fired, vec!["run key"]);
}

/// One scratch reused the way workers reuse it: the remembered routing
/// must follow the source tags, the routing fields and the engine.
#[test]
fn remembered_routing_follows_tags_fields_and_engine() {
    let acme = engine("title: acme dns\nlogsource: {product: acme, service: dns}\ndetection:\n  sel: {query|endswith: '.evil'}\n  condition: sel\n");
    let tags = vec![
        ("product".to_string(), "acme".to_string()),
        ("service".to_string(), "dns".to_string()),
    ];
    let dns = event(json!({"query": "x.evil"}), InputFormat::Json);
    let mut scratch = Scratch::default();
    let mut out = Vec::new();
    let mut run = |e: &Engine, ev: &Event, tags: &[(String, String)]| {
        e.evaluate(ev, tags, &mut scratch, &mut out);
        out.len()
    };
    assert_eq!(run(&acme, &dns, &[]), 0);
    assert_eq!(run(&acme, &dns, &tags), 1, "tags are part of the key");
    assert_eq!(run(&acme, &dns, &[]), 0);

    let win = engine(RULES);
    let proc = |channel: &str, id: u64| {
        event(
            json!({"Channel": channel, "EventID": id, "Image": "C:\\x\\whoami.exe"}),
            InputFormat::EvtxJson,
        )
    };
    let sysmon = "Microsoft-Windows-Sysmon/Operational";
    assert_eq!(
        run(&win, &proc(sysmon, 1), &[]),
        1,
        "a new engine starts afresh"
    );
    assert_eq!(
        run(&win, &proc(sysmon, 3), &[]),
        0,
        "EventID 3 is not process creation"
    );
    assert_eq!(run(&win, &proc(sysmon, 1), &[]), 1);
    assert_eq!(
        run(&win, &proc("Security", 1), &[]),
        0,
        "the channel is part of the key"
    );
}
