//! The owner of a repartition partition gives what one correlator fed the
//! same matches in event-time order gives, however the inputs interleave,
//! with replays, and across a restore from its changelog.

use super::*;
use crate::correlate::tests::setup;
use crate::correlate::CorrelationSet;
use crate::event::Position;
use crate::vocab::streams;
use proptest::prelude::*;
use std::sync::Arc;

const RULES: &str = "title: three a\ncorrelation:\n  type: event_count\n  rules: [rule_a]\n  group-by: [user]\n  timespan: 60s\n  condition: {gte: 3}\n---\ntitle: spray\ncorrelation:\n  type: value_count\n  rules: [rule_a]\n  group-by: [src]\n  timespan: 5m\n  condition: {field: user, gte: 3}\n---\ntitle: quiet\ncorrelation:\n  type: event_count\n  rules: [rule_b]\n  group-by: [user]\n  timespan: 60s\n  condition: {lt: 2}\n";

/// A record on the repartition topic, as far as correlation reads it.
#[derive(Debug, Clone)]
enum Exchanged {
    Match(Match),
    Progress(Progress),
}

impl PartitionOwner {
    fn offer(&mut self, record: Exchanged, now: Instant) -> Vec<Firing> {
        match record {
            Exchanged::Match(m) => self.offer_match(m, now),
            Exchanged::Progress(p) => self.offer_progress(&p, now),
        }
    }
}

/// One event: (seconds, input, user, src, is rule b).
type Ev = (i64, usize, usize, usize, bool);

fn time(secs: i64) -> DateTime<Utc> {
    DateTime::from_timestamp(1_700_000_000 + secs, 0).unwrap()
}

/// The observations an event makes (its matches for each correlation).
fn observations(set: &CorrelationSet, i: usize, ev: &Ev) -> Vec<Observation> {
    let (secs, input, user, src, b) = *ev;
    let mut out = Vec::new();
    for c in 0..set.len() {
        let corr = set.get(c).unwrap();
        let feeds = match corr.rule.meta.title.as_str() {
            "quiet" => b,
            _ => !b,
        };
        if !feeds {
            continue;
        }
        let group = match corr.rule.meta.title.as_str() {
            "spray" => vec![format!("s{src}")],
            _ => vec![format!("u{user}")],
        };
        out.push(Observation {
            correlation: c,
            group,
            entry: Entry {
                time: time(secs),
                input: 0,
                value: Some(format!("u{user}")),
                evidence: format!("ev{i}"),
            },
            origin: Origin {
                source: "logs".into(),
                position: Position::Offset {
                    partition: input as i32,
                    offset: i as i64,
                },
            },
        });
    }
    out
}

/// What fired, comparable across runs.
type Fired = (
    usize,
    Vec<(String, String)>,
    u64,
    usize,
    i64,
    i64,
    Vec<String>,
);

fn comparable(f: &Firing) -> Fired {
    (
        f.correlation,
        f.group.clone(),
        f.value.to_bits(),
        f.events,
        f.first.timestamp(),
        f.last.timestamp(),
        f.evidence.clone(),
    )
}

/// The reference: one correlator, every match in event-time order (what a
/// scan of the events in time order does before its input ends). Matches
/// of one second go by evidence id: the owner's tie-break, which no
/// interleaving changes.
fn in_order(set: &Arc<CorrelationSet>, events: &[Ev]) -> Vec<Fired> {
    let mut c = Correlator::new(set.clone());
    let mut all: Vec<Observation> = events
        .iter()
        .enumerate()
        .flat_map(|(i, ev)| observations(set, i, ev))
        .collect();
    all.sort_by(|a, b| (a.entry.time, &a.entry.evidence).cmp(&(b.entry.time, &b.entry.evidence)));
    let mut fired = Vec::new();
    for obs in all {
        fired.extend(c.observe(obs));
    }
    sorted(&fired)
}

/// Firings in a canonical order: one event can fire several correlations,
/// in whichever order; alerts are the same.
fn sorted(fired: &[Firing]) -> Vec<Fired> {
    let mut out: Vec<Fired> = fired.iter().map(comparable).collect();
    out.sort();
    out
}

/// The records the detection side sends for event `i`: its matches, then
/// its input's progress.
fn records(set: &CorrelationSet, i: usize, ev: &Ev) -> Vec<Exchanged> {
    let mut out: Vec<Exchanged> = observations(set, i, ev)
        .into_iter()
        .filter_map(|o| Match::of(set, o).map(Exchanged::Match))
        .collect();
    out.push(Exchanged::Progress(Progress {
        input: format!("logs[{}]", ev.1),
        time: time(ev.0),
        inputs: 3,
    }));
    out
}

/// Events in time order (several in one second), each on one of three inputs.
fn events() -> impl Strategy<Value = Vec<Ev>> {
    prop::collection::vec(
        (
            0i64..40,
            0usize..3,
            0usize..3,
            0usize..2,
            prop::bool::weighted(0.2),
        ),
        1..60,
    )
    .prop_map(|raw| {
        let mut t = 0;
        raw.into_iter()
            .map(|(gap, input, user, src, b)| {
                t += gap;
                (t, input, user, src, b)
            })
            .collect()
    })
}

/// Interleaves the inputs' records: each input keeps its own order, the
/// choice of which input goes next comes from `picks`.
fn interleave(set: &CorrelationSet, events: &[Ev], picks: &[usize]) -> Vec<Exchanged> {
    let mut queues: Vec<std::collections::VecDeque<Exchanged>> = vec![Default::default(); 3];
    for (i, ev) in events.iter().enumerate() {
        queues[ev.1].extend(records(set, i, ev));
    }
    streams::interleave(queues, picks)
}

fn owner(set: &Arc<CorrelationSet>) -> PartitionOwner {
    PartitionOwner::new(
        Correlator::new(set.clone()),
        Span::from_secs(0),
        Duration::from_secs(60),
    )
}

/// After the stream, every input falls idle: what is pending is released.
fn idle_end(o: &mut PartitionOwner, start: Instant) -> Vec<Firing> {
    o.release(start + Duration::from_secs(3600))
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    #[test]
    fn any_interleaving_of_the_inputs_fires_what_event_time_order_fires(
        events in events(),
        picks in prop::collection::vec(0usize..3, 1..40),
    ) {
        let (_, set, _) = setup(RULES);
        let expected = in_order(&set, &events);
        let start = Instant::now();
        let mut o = owner(&set);
        let mut fired = Vec::new();
        for r in interleave(&set, &events, &picks) {
            fired.extend(o.offer(r, start));
        }
        fired.extend(idle_end(&mut o, start));
        prop_assert_eq!(sorted(&fired), expected);
    }

    #[test]
    fn replayed_records_do_not_count_twice(
        events in events(),
        picks in prop::collection::vec(0usize..3, 1..40),
        replays in prop::collection::vec((0usize..200, 1usize..20), 0..5),
    ) {
        let (_, set, _) = setup(RULES);
        let expected = in_order(&set, &events);
        let stream = interleave(&set, &events, &picks);
        let replayed = streams::with_replays(&stream, &replays);
        let start = Instant::now();
        let mut o = owner(&set);
        let mut fired = Vec::new();
        for r in replayed {
            fired.extend(o.offer(r, start));
        }
        fired.extend(idle_end(&mut o, start));
        prop_assert_eq!(sorted(&fired), expected);
    }

    #[test]
    fn a_new_owner_restored_from_the_changelog_carries_on_where_the_old_one_stopped(
        events in events(),
        picks in prop::collection::vec(0usize..3, 1..40),
        flush_every in 1usize..15,
        crash_at in 0usize..300,
        trail in 0usize..10,
        cut in 0usize..40,
    ) {
        let (_, set, _) = setup(RULES);
        let expected = in_order(&set, &events);
        let stream = interleave(&set, &events, &picks);
        let crash_at = crash_at % (stream.len() + 1);
        let start = Instant::now();
        let mut old = owner(&set);
        let mut changelog: Vec<(String, Option<Vec<u8>>)> = Vec::new();
        // Offsets are committed after each flush: the new owner reads
        // from the last commit (or a little before: a slow commit).
        let mut committed = 0;
        let mut alerted = Vec::new();
        let mut since_flush = Vec::new();
        for (i, r) in stream.iter().take(crash_at).enumerate() {
            since_flush.extend(old.offer(r.clone(), start));
            if (i + 1) % flush_every == 0 {
                changelog.extend(old.changelog());
                committed = i + 1;
                alerted.append(&mut since_flush);
            }
        }
        // kill -9 in the middle of a flush: a prefix of its records made
        // it, the offsets after it were not committed. Alerts are
        // acknowledged before a flush starts, so if any of it made it,
        // what fired before it was sent; otherwise it fires again after the
        // replay (at-least-once: an alert may repeat, no match may count
        // twice).
        let torn = old.changelog();
        if cut > 0 && !torn.is_empty() {
            alerted.append(&mut since_flush);
        }
        changelog.extend(torn.into_iter().take(cut));
        let mut new = owner(&set);
        new.restore(changelog.iter().map(|(k, v)| (k.as_bytes(), v.as_deref())), start);
        let mut after = Vec::new();
        for r in &stream[committed.saturating_sub(trail)..] {
            after.extend(new.offer(r.clone(), start));
        }
        after.extend(idle_end(&mut new, start));
        alerted.extend(after);
        // An alert sent before the crash whose group's state did not make it
        // into the changelog fires again, the same alert with the same id
        // (at-least-once). A match counted twice would make another firing.
        let mut distinct = sorted(&alerted);
        distinct.dedup();
        prop_assert_eq!(distinct, expected);
    }
}

#[test]
fn the_watermark_waits_for_every_input_and_an_idle_one_stops_holding_it_back() {
    let (_, set, _) = setup(RULES);
    let start = Instant::now();
    let mut o = owner(&set);
    let ev: Vec<Ev> = (0..3).map(|i| (i * 10, 0, 0, 0, false)).collect();
    let mut fired = Vec::new();
    for (i, e) in ev.iter().enumerate() {
        for r in records(&set, i, e) {
            fired.extend(o.offer(r, start));
        }
    }
    assert!(fired.is_empty(), "inputs 1 and 2 were not heard from yet");
    assert_eq!(o.pending(), 3 * 2);
    // The other inputs never report: after the idle timeout they no longer count.
    let fired = o.release(start + Duration::from_secs(61));
    assert_eq!(fired.len(), 1, "three a for u0 fires: {fired:?}");
    assert_eq!(o.pending(), 0);
}

#[test]
fn unreadable_changelog_records_are_counted_and_skipped() {
    let (_, set, _) = setup(RULES);
    let mut o = owner(&set);
    let records: Vec<(&[u8], Option<&[u8]>)> = vec![
        (b"not json", Some(b"{}")),
        (br#"["g","x",["a"]]"#, Some(b"[1,2")),
        (
            br#"["m"]"#,
            Some(br#"{"released":null,"inputs":[],"expected_inputs":2}"#),
        ),
    ];
    o.restore(records, Instant::now());
    assert_eq!(o.counts.unreadable, 2);
    assert_eq!(o.expected_inputs(), 2);
}

#[test]
fn an_input_holding_the_watermark_back_cannot_grow_the_pending_set_past_its_cap() {
    let (_, set, _) = setup(RULES);
    let start = Instant::now();
    let mut o = owner(&set).with_max_pending(4);
    // Input 1 reports once, at t=0, and keeps reporting (a stalled reader
    // or a clock behind); input 0 runs ahead with matches.
    let mut fired = Vec::new();
    fired.extend(o.offer(
        Exchanged::Progress(Progress {
            input: "logs[1]".into(),
            time: time(0),
            inputs: 2,
        }),
        start,
    ));
    for i in 0..12 {
        for r in records(&set, i, &(10 + i as i64, 0, 0, 0, false)) {
            fired.extend(o.offer(r, start));
        }
    }
    assert!(o.pending() <= 4 + 1, "pending {}", o.pending());
    assert!(o.counts.forced > 0);
    assert!(
        !fired.is_empty(),
        "the oldest were released in order and fired"
    );
}

#[test]
fn a_chain_whose_links_group_alike_routes_by_group_and_one_that_does_not_routes_whole() {
    let alike = "title: fails\nname: fails\ncorrelation:\n  type: event_count\n  rules: [rule_a]\n  group-by: [user]\n  timespan: 60s\n  condition: {gte: 2}\n---\ntitle: fails again\ncorrelation:\n  type: event_count\n  rules: [fails]\n  group-by: [user]\n  timespan: 5m\n  condition: {gte: 2}\n";
    let unlike = alike.replace(
        "group-by: [user]\n  timespan: 60s",
        "group-by: [user, src]\n  timespan: 60s",
    );
    let key = |set: &CorrelationSet, c: usize, group: &[&str]| {
        let obs = Observation {
            correlation: c,
            group: group.iter().map(|g| g.to_string()).collect(),
            entry: Entry {
                time: time(0),
                input: 0,
                value: None,
                evidence: "ev0".into(),
            },
            origin: Origin {
                source: "logs".into(),
                position: Position::Line { line: 1 },
            },
        };
        Match::route_key(set, &obs).unwrap_or_default()
    };
    let (_, set, _) = setup(alike);
    let (inner, outer) = (0, 1);
    assert_eq!(set.route(inner), set.route(outer), "one chain, one head");
    assert_eq!(key(&set, inner, &["u1"]), key(&set, outer, &["u1"]));
    assert_ne!(key(&set, inner, &["u1"]), key(&set, inner, &["u2"]));

    // The outer link counts a user's firings of every (user, src) group:
    // they must all reach its owner, so the chain goes whole to one.
    let (_, set, _) = setup(&unlike);
    assert_eq!(
        key(&set, inner, &["u1", "10.0.0.1"]),
        key(&set, inner, &["u2", "10.0.0.2"])
    );
    assert_eq!(
        key(&set, inner, &["u1", "10.0.0.1"]),
        key(&set, outer, &["u1"])
    );
    assert_eq!(set.route(outer).map(|(_, by_group)| by_group), Some(false));
}
