//! Tests of correlation rules at run time.

use super::*;
use crate::detect::testing::compile_text;
use crate::detect::{Engine, Scratch};
use crate::event::{test_event, InputFormat};
use crate::sigma::RuleProblem;
use serde_json::json;
use std::sync::Arc;

/// Two base rules on a generic JSON source: `a` (action: a) and `b` (action: b).
const BASE: &str = "title: A\nid: rule-a\nname: rule_a\nlogsource: {product: test}\ndetection:\n  s: {action: a}\n  condition: s\n---\ntitle: B\nid: rule-b\nname: rule_b\nlogsource: {product: test}\ndetection:\n  s: {action: b}\n  condition: s\n";

pub(super) fn setup(correlations: &str) -> (Engine, Arc<CorrelationSet>, Vec<RuleProblem>) {
    let (engine, problems, report) = compile_text(&format!("{BASE}---\n{correlations}"));
    assert!(problems.is_empty(), "{problems:?}");
    let (set, problems) = CorrelationSet::build(report.correlations, &engine);
    (engine, Arc::new(set), problems)
}

/// Feeds events (source, seconds, fields) to a correlator the way the
/// pipeline does; returns what fired.
fn feed(
    engine: &Engine,
    set: &CorrelationSet,
    c: &mut Correlator,
    events: &[(&str, i64, serde_json::Value)],
) -> Vec<Firing> {
    let tags = vec![("product".to_string(), "test".to_string())];
    let (mut scratch, mut matched, mut obs, mut fired) =
        (Scratch::default(), Vec::new(), Vec::new(), Vec::new());
    for (i, (source, secs, fields)) in events.iter().enumerate() {
        let mut event = test_event(fields.clone(), InputFormat::Json);
        event.time = DateTime::from_timestamp(1_700_000_000 + secs, 0).unwrap();
        event.origin.source = source.to_string();
        engine.evaluate(&event, &tags, &mut scratch, &mut matched);
        for &r in &matched {
            set.observations(r, &event, &format!("ev{i}"), &mut obs);
            for o in obs.drain(..) {
                fired.extend(c.observe(o));
            }
        }
    }
    fired
}

/// Feeds events (seconds, fields) in the given order; returns (title, group values, value) of each firing.
fn run(correlations: &str, events: &[(i64, serde_json::Value)]) -> Vec<(String, Vec<String>, f64)> {
    let (engine, set, problems) = setup(correlations);
    assert!(problems.is_empty(), "{problems:?}");
    let mut correlator = Correlator::new(set.clone());
    let events: Vec<_> = events
        .iter()
        .map(|(secs, f)| ("test", *secs, f.clone()))
        .collect();
    let mut fired = feed(&engine, &set, &mut correlator, &events);
    fired.extend(correlator.finish());
    fired
        .iter()
        .map(|f| {
            let c = set.get(f.correlation).unwrap();
            (
                c.rule.meta.title.clone(),
                f.group.iter().map(|(_, v)| v.clone()).collect(),
                f.value,
            )
        })
        .collect()
}

/// One firing of `title` for the group `user` with `value`.
fn once(title: &str, user: &str, value: f64) -> Vec<(String, Vec<String>, f64)> {
    vec![(title.to_string(), vec![user.to_string()], value)]
}

/// `a` events at (seconds, user).
fn logins(events: &[(i64, &str)]) -> Vec<(i64, serde_json::Value)> {
    events.iter().map(|&(secs, user)| (secs, a(user))).collect()
}

fn a(user: &str) -> serde_json::Value {
    json!({"action": "a", "user": user, "src": "10.0.0.1"})
}

const COUNT: &str = "title: three a\ncorrelation:\n  type: event_count\n  rules: [rule_a]\n  group-by: [user]\n  timespan: 60s\n  condition: {gte: 3}\n";

#[test]
fn a_restored_snapshot_continues_the_windows_where_they_were() {
    let (engine, set, _) = setup(COUNT);
    let mut before = Correlator::new(set.clone());
    let first = [("test", 0, a("bob")), ("test", 10, a("bob"))];
    assert!(feed(&engine, &set, &mut before, &first).is_empty());
    // Through JSON, as the snapshot file has it.
    let saved = serde_json::to_string(&before.state()).unwrap();
    let state: CorrelatorState = serde_json::from_str(&saved).unwrap();

    let mut after = Correlator::new(set.clone());
    assert_eq!(after.restore(state.clone()), 1);
    assert_eq!(after.state(), state);
    let third = [("test", 20, a("bob"))];
    let fired = feed(&engine, &set, &mut after, &third);
    assert_eq!(
        fired.len(),
        1,
        "two before the snapshot and one after make three"
    );
    assert_eq!(fired[0].events, 3);

    // Without the snapshot, the third event alone is not enough.
    let mut fresh = Correlator::new(set.clone());
    assert!(feed(&engine, &set, &mut fresh, &third).is_empty());
}

#[test]
fn a_snapshot_of_a_correlation_no_longer_loaded_is_dropped_on_restore() {
    let (engine, set, _) = setup(COUNT);
    let mut before = Correlator::new(set.clone());
    feed(&engine, &set, &mut before, &[("test", 0, a("bob"))]);
    let state = before.state();
    let (_, other, _) = setup(&COUNT.replace("title: three a", "title: three a\nid: another-id"));
    let mut after = Correlator::new(other);
    assert_eq!(after.restore(state), 0);
}

#[test]
fn times_at_the_ends_of_the_calendar_never_overflow_the_window_arithmetic() {
    let (engine, set, _) = setup(COUNT);
    let tags = vec![("product".to_string(), "test".to_string())];
    let mut c = Correlator::new(set.clone()).with_lateness(Span::MAX.as_std());
    let (mut scratch, mut matched, mut obs) = (Scratch::default(), Vec::new(), Vec::new());
    // The first event of each source at the earliest and latest instants
    // chrono has (a snapshot or a saved model can carry any time).
    let times = [
        (DateTime::<Utc>::MIN_UTC, "early"),
        (DateTime::<Utc>::MAX_UTC, "late"),
        (DateTime::<Utc>::MIN_UTC, "late"),
        (DateTime::<Utc>::MAX_UTC, "early"),
    ];
    for (i, (time, source)) in times.into_iter().enumerate() {
        let mut event = test_event(a("bob"), InputFormat::Json);
        event.time = time;
        event.origin.source = source.to_string();
        engine.evaluate(&event, &tags, &mut scratch, &mut matched);
        for &r in &matched {
            set.observations(r, &event, &format!("ev{i}"), &mut obs);
            for o in obs.drain(..) {
                c.observe(o);
            }
        }
    }
    c.finish();
}

#[test]
fn event_count_fires_when_the_count_is_reached_within_the_span() {
    let fired = run(
        COUNT,
        &logins(&[
            (0, "bob"),
            (10, "alice"),
            (20, "bob"),
            (30, "bob"),
            (40, "alice"),
        ]),
    );
    assert_eq!(fired, once("three a", "bob", 3.0));
}

#[test]
fn event_count_windows_slide_and_events_outside_the_span_do_not_count() {
    // 0 and 61 are 61 s apart: never three within 60 s until 62, 100, 110.
    let fired = run(
        COUNT,
        &logins(&[
            (0, "bob"),
            (61, "bob"),
            (62, "bob"),
            (130, "bob"),
            (140, "bob"),
            (150, "bob"),
        ]),
    );
    assert_eq!(fired.len(), 1, "{fired:?}");
    assert_eq!(fired[0].2, 3.0);
}

#[test]
fn late_events_within_the_span_are_placed_correctly() {
    let fired = run(COUNT, &[(30, a("bob")), (0, a("bob")), (20, a("bob"))]);
    assert_eq!(fired.len(), 1);
}

#[test]
fn events_later_than_the_allowed_lateness_are_dropped_and_counted() {
    let (engine, set, _) = setup(COUNT);
    let run_with = |lateness_secs: u64| {
        let mut c = Correlator::new(set.clone())
            .with_lateness(std::time::Duration::from_secs(lateness_secs));
        // Newest first, then two events 40 s and 50 s older.
        let events = [
            ("s", 100, a("bob")),
            ("s", 60, a("bob")),
            ("s", 50, a("bob")),
        ];
        let fired = feed(&engine, &set, &mut c, &events).len();
        (fired, c.late_events())
    };
    // 60 s allowed: both late events count, three within 60 s fire.
    assert_eq!(run_with(60), (1, 0));
    // 45 s allowed: the event 50 s late is dropped; only two count.
    assert_eq!(run_with(45), (0, 1));
}

#[test]
fn another_source_with_older_times_is_not_late() {
    let (engine, set, _) = setup(COUNT);
    let mut c = Correlator::new(set.clone());
    // Source one is an hour ahead of source two; source two's events all count.
    let events = [
        ("one", 3600, a("bob")),
        ("two", 0, a("alice")),
        ("two", 10, a("alice")),
        ("two", 20, a("alice")),
    ];
    let fired = feed(&engine, &set, &mut c, &events).len();
    assert_eq!((fired, c.late_events()), (1, 0));
}

const QUIET: &str = "title: quiet\ncorrelation:\n  type: event_count\n  rules: [rule_a]\n  group-by: [user]\n  timespan: 60s\n  condition: {lt: 3}\n";

#[test]
fn a_slow_source_holds_windows_open_until_it_catches_up() {
    let (engine, set, _) = setup(QUIET);
    let mut c = Correlator::new(set.clone()).with_lateness(std::time::Duration::ZERO);
    // bob's window (0..60 s) on the slow source; the fast source races ahead.
    let mut events = vec![("slow", 0, a("bob")), ("fast", 1, a("carol"))];
    events.extend((2..6).map(|i| ("fast", i * 100, a("carol"))));
    assert!(
        feed(&engine, &set, &mut c, &events).is_empty(),
        "bob's window is not final while the slow source is at 0 s"
    );
    // The slow source's second event at 30 s still joins bob's window;
    // then the slow source passes 60 s and the window (two events, lt 3) is decided.
    let fired = feed(
        &engine,
        &set,
        &mut c,
        &[("slow", 30, a("bob")), ("slow", 500, a("dave"))],
    );
    let bob: Vec<_> = fired
        .iter()
        .filter(|f| f.group[0].1 == "bob")
        .map(|f| f.events)
        .collect();
    assert_eq!(bob, vec![2]);
}

#[test]
fn an_idle_source_stops_holding_the_watermark_back() {
    let (engine, set, _) = setup(QUIET);
    let mut c = Correlator::new(set.clone())
        .with_lateness(std::time::Duration::ZERO)
        .with_idle_timeout(std::time::Duration::ZERO);
    feed(&engine, &set, &mut c, &[("finished", 0, a("bob"))]);
    std::thread::sleep(std::time::Duration::from_millis(5));
    // The first source went quiet: the other one's time decides alone.
    let fired = feed(&engine, &set, &mut c, &[("live", 500, a("carol"))]);
    assert_eq!(fired.len(), 1, "{fired:?}");
    assert_eq!(fired[0].group[0].1, "bob");
}

#[test]
fn a_group_starts_over_after_firing() {
    let events: Vec<_> = (0..7).map(|i| (i, a("bob"))).collect();
    assert_eq!(run(COUNT, &events).len(), 2);
}

#[test]
fn value_count_counts_distinct_values_per_group() {
    let corr = "title: spray\ncorrelation:\n  type: value_count\n  rules: [rule_a]\n  group-by: [src]\n  timespan: 5m\n  condition: {field: user, gte: 3}\n";
    let fired = run(
        corr,
        &[(0, a("u1")), (1, a("u1")), (2, a("u2")), (3, a("u3"))],
    );
    assert_eq!(fired, once("spray", "10.0.0.1", 3.0));
}

#[test]
fn temporal_needs_every_rule_in_any_order() {
    let corr = "title: both\ncorrelation:\n  type: temporal\n  rules: [rule_a, rule_b]\n  group-by: [user]\n  timespan: 30s\n";
    let b = json!({"action": "b", "user": "bob"});
    assert_eq!(run(corr, &[(0, b.clone()), (10, a("bob"))]).len(), 1);
    assert_eq!(
        run(corr, &[(0, b.clone()), (40, a("bob"))]).len(),
        0,
        "too far apart"
    );
    assert_eq!(
        run(corr, &[(0, b), (10, a("alice"))]).len(),
        0,
        "different users"
    );
}

#[test]
fn temporal_ordered_needs_the_rules_in_order() {
    let corr = "title: a then b\ncorrelation:\n  type: temporal_ordered\n  rules: [rule_a, rule_b]\n  group-by: [user]\n  timespan: 30s\n";
    let b = json!({"action": "b", "user": "bob"});
    assert_eq!(run(corr, &[(0, a("bob")), (10, b.clone())]).len(), 1);
    assert_eq!(run(corr, &[(0, b), (10, a("bob"))]).len(), 0);
}

#[test]
fn value_sum_avg_and_percentile_measure_the_field() {
    let ev = |n: i64| json!({"action": "a", "user": "bob", "bytes": n});
    let sum = "title: sum\ncorrelation:\n  type: value_sum\n  rules: [rule_a]\n  group-by: [user]\n  timespan: 1h\n  condition: {field: bytes, gt: 100}\n";
    assert_eq!(
        run(sum, &[(0, ev(50)), (1, ev(40)), (2, ev(20))]),
        once("sum", "bob", 110.0)
    );
    let avg = "title: avg\ncorrelation:\n  type: value_avg\n  rules: [rule_a]\n  group-by: [user]\n  timespan: 1h\n  condition: {field: bytes, gte: 500}\n";
    assert_eq!(run(avg, &[(0, ev(100)), (1, ev(900))])[0].2, 500.0);
    let pct = "title: rare\ncorrelation:\n  type: value_percentile\n  rules: [rule_a]\n  group-by: [src]\n  timespan: 1h\n  condition: {field: user, lte: 20}\n";
    let mut events: Vec<_> = (0..9).map(|i| (i, a("common"))).collect();
    events.push((10, a("rare")));
    let fired = run(pct, &events);
    assert!(fired.iter().any(|f| f.2 == 10.0), "{fired:?}");
}

#[test]
fn fewer_than_conditions_are_decided_at_window_end() {
    let corr = "title: quiet\ncorrelation:\n  type: event_count\n  rules: [rule_a]\n  group-by: [user]\n  timespan: 60s\n  condition: {lt: 3}\n";
    // bob: 2 events in his window -> fires when a later event (alice at 100) closes it.
    // alice: 3 events -> does not fire, even at the end of input.
    let fired = run(
        corr,
        &logins(&[
            (0, "bob"),
            (10, "bob"),
            (100, "alice"),
            (101, "alice"),
            (102, "alice"),
        ]),
    );
    assert_eq!(fired, once("quiet", "bob", 2.0));
}

#[test]
fn ranges_combine_bounds() {
    let corr = "title: range\ncorrelation:\n  type: event_count\n  rules: [rule_a]\n  group-by: [user]\n  timespan: 60s\n  condition: {gt: 1, lte: 2}\n";
    // Decided at window end because of lte: 2 events fire, 3 do not.
    assert_eq!(run(corr, &[(0, a("bob")), (1, a("bob"))]).len(), 1);
    assert_eq!(
        run(corr, &[(0, a("bob")), (1, a("bob")), (2, a("bob"))]).len(),
        0
    );
}

#[test]
fn correlations_chain_by_name() {
    let corr = "title: many a\nname: many_a\ncorrelation:\n  type: event_count\n  rules: [rule_a]\n  group-by: [user]\n  timespan: 10m\n  condition: {gte: 3}\n---\ntitle: many a then b\ncorrelation:\n  type: temporal_ordered\n  rules: [many_a, rule_b]\n  group-by: [user]\n  timespan: 10m\n";
    let b = json!({"action": "b", "user": "bob"});
    let fired = run(corr, &[(0, a("bob")), (1, a("bob")), (2, a("bob")), (5, b)]);
    let titles: Vec<&str> = fired.iter().map(|f| f.0.as_str()).collect();
    assert_eq!(titles, vec!["many a", "many a then b"]);
}

#[test]
fn aliases_group_different_fields_of_different_rules() {
    let corr = "title: same address\ncorrelation:\n  type: temporal\n  rules: [rule_a, rule_b]\n  group-by: [ip]\n  timespan: 1m\n  aliases:\n    ip:\n      rule_a: src\n      rule_b: dst\n";
    let b = json!({"action": "b", "dst": "10.0.0.1"});
    assert_eq!(
        run(corr, &[(0, a("x")), (5, b)]),
        vec![(
            "same address".to_string(),
            vec!["10.0.0.1".to_string()],
            2.0
        )]
    );
}

#[test]
fn generate_decides_whether_base_rules_alert_on_their_own() {
    let (_, set, _) = setup(COUNT);
    assert!(
        set.is_silenced(0),
        "rule_a feeds a correlation without generate"
    );
    assert!(!set.is_silenced(1));
    let (_, set, _) = setup(&COUNT.replace("correlation:", "generate: true\ncorrelation:"));
    assert!(!set.is_silenced(0));
}

#[test]
fn unknown_references_and_cycles_are_reported() {
    let (_, set, problems) = setup("title: x\ncorrelation:\n  type: event_count\n  rules: [nope]\n  group-by: [user]\n  timespan: 1m\n  condition: {gte: 1}\n");
    assert!(problems[0].message.contains("`nope`"), "{problems:?}");
    assert!(set.is_empty());
    let cyc = "title: c1\nname: c1\ncorrelation:\n  type: event_count\n  rules: [c2]\n  group-by: [user]\n  timespan: 1m\n  condition: {gte: 1}\n---\ntitle: c2\nname: c2\ncorrelation:\n  type: event_count\n  rules: [c1]\n  group-by: [user]\n  timespan: 1m\n  condition: {gte: 1}\n";
    let (_, set, problems) = setup(cyc);
    assert_eq!(problems.len(), 2, "{problems:?}");
    assert!(set.is_empty());
}

#[test]
fn groups_expire_once_their_window_is_over() {
    let (engine, set, _) = setup(COUNT);
    let mut correlator = Correlator::new(set.clone());
    let first = [("s", 0, a("u1")), ("s", 1, a("u2")), ("s", 2, a("u3"))];
    feed(&engine, &set, &mut correlator, &first);
    assert_eq!(correlator.active_groups(), 3);
    // 10 minutes later: the three old groups are past their timespan and gone.
    feed(&engine, &set, &mut correlator, &[("s", 600, a("u4"))]);
    assert_eq!(correlator.active_groups(), 1);
}

#[test]
fn the_group_cap_evicts_the_oldest_and_counts_it() {
    let (engine, set, _) = setup(COUNT);
    let mut correlator = Correlator::with_max_groups(set.clone(), 2);
    let events: Vec<_> = ["u1", "u2", "u3", "u3", "u3"]
        .iter()
        .enumerate()
        .map(|(i, user)| ("s", i as i64, a(user)))
        .collect();
    feed(&engine, &set, &mut correlator, &events);
    assert!(correlator.active_groups() <= 2);
    assert_eq!(correlator.evictions(), 1);
}

#[test]
fn events_without_the_group_field_do_not_take_part() {
    let fired = run(
        COUNT,
        &[
            (0, json!({"action": "a"})),
            (1, json!({"action": "a"})),
            (2, json!({"action": "a"})),
        ],
    );
    assert!(fired.is_empty());
}

#[test]
fn a_reload_keeps_the_windows_of_unchanged_correlations_and_drops_changed_ones() {
    const TWO: &str = "title: three a\nid: corr-count\ncorrelation:\n  type: event_count\n  rules: [rule_a]\n  group-by: [user]\n  timespan: 60s\n  condition: {gte: 3}\n---\ntitle: two b\nid: corr-b\ncorrelation:\n  type: event_count\n  rules: [rule_b]\n  group-by: [user]\n  timespan: 60s\n  condition: {gte: 2}\n";
    let (engine, set, _) = setup(TWO);
    let mut c = Correlator::new(set.clone());
    let b = json!({"action": "b", "user": "ana"});
    assert!(feed(
        &engine,
        &set,
        &mut c,
        &[("s", 0, a("ana")), ("s", 1, a("ana")), ("s", 2, b.clone())]
    )
    .is_empty());
    assert_eq!(c.active_groups(), 2);
    // The reloaded set: `corr-count` retitled and moved after a new rule
    // (same logic), `corr-b` with another threshold (changed logic).
    let reloaded = TWO
        .replace("title: three a", "title: three a, renamed")
        .replace("condition: {gte: 2}", "condition: {gte: 5}");
    let (engine, set, _) = setup(&format!(
        "title: new\nid: corr-new\ncorrelation:\n  type: event_count\n  rules: [rule_b]\n  group-by: [user]\n  timespan: 60s\n  condition: {{gte: 9}}\n---\n{reloaded}"
    ));
    assert_eq!(c.replace_rules(set.clone()), (1, 1));
    // The third `a` completes the window opened before the reload.
    let fired = feed(&engine, &set, &mut c, &[("s", 3, a("ana"))]);
    assert_eq!(fired.len(), 1, "{fired:?}");
    assert_eq!(
        set.get(fired[0].correlation).unwrap().rule.meta.id,
        "corr-count"
    );
    assert_eq!(fired[0].events, 3);
}

/// (title, group values) of a firing.
type Named = (String, Vec<String>);

/// Feeds events (seconds, fields) through a [`Reorder`] as `scan` does;
/// returns the firings handed out while feeding, those handed out at the
/// end, and the report.
fn run_reordered(
    correlations: &str,
    events: &[(i64, serde_json::Value)],
    limit: usize,
) -> (Vec<Named>, Vec<Named>, LateReport) {
    let (engine, set, problems) = setup(correlations);
    assert!(problems.is_empty(), "{problems:?}");
    let mut correlator = Correlator::new(set.clone());
    let mut reorder = Reorder::new(limit, DEFAULT_LATENESS);
    let named = |fired: Vec<Firing>| -> Vec<Named> {
        fired
            .iter()
            .map(|f| {
                let c = set.get(f.correlation).unwrap();
                let group = f.group.iter().map(|(_, v)| v.clone()).collect();
                (c.rule.meta.title.clone(), group)
            })
            .collect()
    };
    let tags = vec![("product".to_string(), "test".to_string())];
    let (mut scratch, mut matched, mut obs, mut streamed) =
        (Scratch::default(), Vec::new(), Vec::new(), Vec::new());
    for (i, (secs, fields)) in events.iter().enumerate() {
        let mut event = test_event(fields.clone(), InputFormat::Json);
        event.time = DateTime::from_timestamp(1_700_000_000 + secs, 0).unwrap();
        engine.evaluate(&event, &tags, &mut scratch, &mut matched);
        for &r in &matched {
            set.observations(r, &event, &format!("ev{i}"), &mut obs);
            for o in obs.drain(..) {
                streamed.extend(reorder.observe(&mut correlator, o));
            }
        }
    }
    let (at_end, report) = reorder.finish(&mut correlator);
    (named(streamed), named(at_end), report)
}

/// Two bursts of three logins: `new` an hour after `old`.
fn two_bursts(new_first: bool) -> Vec<(i64, serde_json::Value)> {
    let old = logins(&[(0, "old"), (10, "old"), (20, "old")]);
    let new = logins(&[(3600, "new"), (3610, "new"), (3620, "new")]);
    match new_first {
        true => [new, old].concat(),
        false => [old, new].concat(),
    }
}

#[test]
fn a_stream_drops_an_older_file_appended_after_a_newer_one() {
    let fired = run(COUNT, &two_bursts(true));
    assert_eq!(
        fired,
        once("three a", "new", 3.0),
        "the old burst came too late"
    );
}

#[test]
fn a_whole_input_correlates_the_same_whatever_the_order_of_its_parts() {
    let (streamed, at_end, report) = run_reordered(COUNT, &two_bursts(true), 100);
    let group = |u: &str| ("three a".to_string(), vec![u.to_string()]);
    assert_eq!(
        streamed,
        vec![group("new")],
        "in order until the old part began"
    );
    assert_eq!(
        at_end,
        vec![group("old")],
        "the ordered run adds only what is new"
    );
    assert_eq!(report.late, 3);
    assert_eq!(report.by_rule, vec![("three a".to_string(), 3)]);
    assert_eq!(report.reordered, Reordered::Replayed { added: 1 });

    let (streamed, at_end, report) = run_reordered(COUNT, &two_bursts(false), 100);
    assert_eq!(streamed, vec![group("old"), group("new")]);
    assert!(at_end.is_empty());
    assert_eq!(report, LateReport::default(), "in order: nothing to say");
}

#[test]
fn past_the_reorder_limit_a_scan_is_a_stream_again_and_says_so() {
    let (streamed, at_end, report) = run_reordered(COUNT, &two_bursts(true), 4);
    assert_eq!(report.reordered, Reordered::TooMany { limit: 4 });
    // The fourth match (the first old one) was kept and run in order with
    // the new burst; the two after it were late for the stream again.
    assert_eq!(
        streamed,
        vec![("three a".to_string(), vec!["new".to_string()])]
    );
    assert!(at_end.is_empty());
    assert_eq!(report.late, 3);
}
