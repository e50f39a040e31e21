//! The owner of a repartition partition scores what one detector fed the
//! same samples in event-time order scores, however the inputs interleave,
//! with replays, and across a restore from its changelog.

use super::*;
use crate::anomaly::test_job;
use crate::event::Position;
use crate::vocab::streams;
use proptest::prelude::*;

/// One sample: (seconds, input, user).
type Ev = (i64, usize, usize);

const USERS: [&str; 4] = ["alice", "bob", "carol", "dave"];

fn time(secs: i64) -> DateTime<Utc> {
    DateTime::from_timestamp(1_700_000_000 + secs, 0).unwrap_or_default()
}

/// One-minute buckets: the baselines form within a few dozen.
fn set() -> Arc<AnomalySet> {
    test_job(|spec| {
        spec.bucket_span = Span::from_secs(60);
        spec.min_history = 6;
    })
}

/// `buckets` minutes of 3-6 logins per user, `burst` logins for one user
/// in one minute; each sample on a random input, times strictly increasing.
fn stream() -> impl Strategy<Value = Vec<Ev>> {
    (
        40i64..60,
        30i64..38,
        0usize..4,
        20u64..80,
        prop::collection::vec(0usize..3, 64),
    )
        .prop_map(|(buckets, burst_at, burst_user, burst, inputs)| {
            let mut out = Vec::new();
            let mut picks = inputs.iter().cycle();
            for b in 0..buckets {
                let mut minute = Vec::new();
                for (u, user) in USERS.iter().enumerate() {
                    let n = if b == burst_at && u == burst_user {
                        burst
                    } else {
                        3 + (b as u64 * 7 + user.len() as u64) % 4
                    };
                    minute.extend((0..n).map(|_| u));
                }
                // Spread over the minute in order, at most 1 s apart.
                let step = (60 / minute.len().max(1) as i64).max(1);
                for (k, u) in minute.into_iter().enumerate() {
                    let secs = b * 60 + (k as i64 * step).min(59);
                    let input = picks.next().copied().unwrap_or(0);
                    out.push((secs, input, u));
                }
            }
            out
        })
}

fn record(set: &AnomalySet, i: usize, ev: &Ev) -> SampleRecord {
    let (secs, input, user) = *ev;
    let sample = Sample {
        job: 0,
        numerator: false,
        entity: USERS[user].into(),
        value: None,
        time: time(secs),
        origin: Origin {
            source: "logs".into(),
            position: Position::Offset {
                partition: input as i32,
                offset: i as i64,
            },
        },
    };
    SampleRecord::of(set, sample).unwrap_or_else(|| panic!("job 0"))
}

/// What an anomaly alert shows, comparable across runs.
type Scored = (String, i64, u64, String, u64);

fn comparable(a: &Anomaly) -> Scored {
    (
        format!("{:?}", a.entity),
        a.bucket_start.timestamp(),
        a.score.to_bits(),
        a.actual.to_string(),
        a.events,
    )
}

fn sorted(anomalies: &[Anomaly]) -> Vec<Scored> {
    let mut out: Vec<Scored> = anomalies.iter().map(comparable).collect();
    out.sort();
    out
}

/// The reference: one detector, every sample in event-time order (a scan
/// of the events before its input ends).
fn in_order(set: &Arc<AnomalySet>, events: &[Ev]) -> Vec<Scored> {
    let mut d = Detector::new(set.clone());
    let mut out = Vec::new();
    for (i, ev) in events.iter().enumerate() {
        let r = record(set, i, ev);
        out.extend(d.observe(Sample {
            job: 0,
            numerator: false,
            entity: r.entity.into(),
            value: None,
            time: r.time,
            origin: r.origin,
        }));
    }
    sorted(&out)
}

#[derive(Debug, Clone)]
enum Exchanged {
    Sample(SampleRecord),
    Progress(Progress),
}

impl SampleOwner {
    fn offer(&mut self, record: Exchanged, now: Instant) -> Vec<Anomaly> {
        match record {
            Exchanged::Sample(s) => self.offer_sample(s, now),
            Exchanged::Progress(p) => self.offer_progress(&p, now),
        }
    }
}

/// Each input's records in order (a sample, then its input's progress),
/// the inputs interleaved as `picks` says.
fn interleave(set: &AnomalySet, events: &[Ev], picks: &[usize]) -> Vec<Exchanged> {
    let mut queues: Vec<std::collections::VecDeque<Exchanged>> = vec![Default::default(); 3];
    for (i, ev) in events.iter().enumerate() {
        queues[ev.1].push_back(Exchanged::Sample(record(set, i, ev)));
        queues[ev.1].push_back(Exchanged::Progress(Progress {
            input: format!("logs[{}]", ev.1),
            time: time(ev.0),
            inputs: 3,
        }));
    }
    streams::interleave(queues, picks)
}

fn owner(set: &Arc<AnomalySet>) -> SampleOwner {
    SampleOwner::new(set.clone(), Span::from_secs(0), Duration::from_secs(60))
}

fn idle_end(o: &mut SampleOwner, start: Instant) -> Vec<Anomaly> {
    o.release(start + Duration::from_secs(3600))
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    #[test]
    fn any_interleaving_of_the_inputs_scores_what_event_time_order_scores(
        events in stream(),
        picks in prop::collection::vec(0usize..3, 1..40),
        replays in prop::collection::vec((0usize..2000, 1usize..30), 0..5),
    ) {
        let set = set();
        let expected = in_order(&set, &events);
        prop_assert!(!expected.is_empty(), "the burst alerts");
        let stream = interleave(&set, &events, &picks);
        let replayed = streams::with_replays(&stream, &replays);
        let start = Instant::now();
        let mut o = owner(&set);
        let mut out = Vec::new();
        for r in replayed {
            out.extend(o.offer(r, start));
        }
        out.extend(idle_end(&mut o, start));
        prop_assert_eq!(sorted(&out), expected);
    }

    #[test]
    fn a_new_owner_restored_from_the_changelog_carries_on_where_the_old_one_stopped(
        events in stream(),
        picks in prop::collection::vec(0usize..3, 1..40),
        flush_every in 1usize..200,
        crash_at in 0usize..2000,
        trail in 0usize..30,
    ) {
        let set = set();
        let expected = in_order(&set, &events);
        let stream = interleave(&set, &events, &picks);
        let crash_at = crash_at % (stream.len() + 1);
        let start = Instant::now();
        let mut old = owner(&set);
        let mut changelog: Vec<(String, Option<Vec<u8>>)> = Vec::new();
        let mut committed = 0;
        let mut alerted = Vec::new();
        for (i, r) in stream.iter().take(crash_at).enumerate() {
            alerted.extend(old.offer(r.clone(), start));
            if (i + 1) % flush_every == 0 {
                changelog.extend(old.changelog());
                committed = i + 1;
            }
        }
        // kill -9 between flushes: the new owner reads the changelog, then
        // the repartition topic from the last commit (or a little before).
        let mut new = owner(&set);
        new.restore(changelog.iter().map(|(k, v)| (k.as_bytes(), v.as_deref())), start);
        for r in &stream[committed.saturating_sub(trail)..] {
            alerted.extend(new.offer(r.clone(), start));
        }
        alerted.extend(idle_end(&mut new, start));
        // An alert of a bucket closed after the last flush is sent again,
        // with the same id (at-least-once); a sample counted twice would
        // change a count and a score.
        let mut distinct = sorted(&alerted);
        distinct.dedup();
        prop_assert_eq!(distinct, expected);
    }
}

#[test]
fn changelog_records_stay_small_and_closed_buckets_are_deleted() {
    let set = set();
    let start = Instant::now();
    let mut o = owner(&set);
    let events: Vec<Ev> = (0..600).map(|i| (i, 0, (i % 4) as usize)).collect();
    let mut written: HashMap<String, Option<usize>> = HashMap::new();
    for (i, ev) in events.iter().enumerate() {
        o.offer(Exchanged::Sample(record(&set, i, ev)), start);
        o.offer(
            Exchanged::Progress(Progress {
                input: "logs[0]".into(),
                time: time(ev.0),
                inputs: 1,
            }),
            start,
        );
        if i % 50 == 49 {
            for (k, v) in o.changelog() {
                written.insert(k, v.map(|v| v.len()));
            }
        }
    }
    let largest = written.values().flatten().max().copied().unwrap_or(0);
    assert!(largest < 64 * 1024, "largest record {largest} bytes");
    let open_buckets = written
        .iter()
        .filter(|(k, v)| k.starts_with("[\"ab\"") && v.is_some())
        .count();
    assert!(
        open_buckets <= 2 * USERS.len(),
        "only the last minute's accumulators are live: {open_buckets}"
    );
    assert!(written.keys().any(|k| k.starts_with("[\"ae\"")));
    assert!(written.keys().any(|k| k.starts_with("[\"aj\"")));
}

#[test]
fn unreadable_changelog_records_are_counted_and_skipped() {
    let set = set();
    let mut o = owner(&set);
    let records: Vec<(&[u8], Option<&[u8]>)> = vec![
        (b"not json", Some(b"{}")),
        (br#"["aj","J"]"#, Some(b"[1,2")),
        (
            br#"["ae","J","bob"]"#,
            Some(br#"{"model":null,"recent":[]}"#),
        ),
    ];
    o.restore(records, Instant::now());
    assert_eq!(o.counts.unreadable, 2);
}
