//! The 158,545 Mordor Windows events (../shared/datasets) through the whole
//! SigmaHQ corpus: alerts per rule, compared with tests/snapshots/mordor_alerts_per_rule.txt
//! so any change in detection behaviour shows up as a diff. Skips when ../shared is absent.
//! Update after an intended change with TOCSIN_UPDATE_SNAPSHOTS=1.

mod common;

use common::{lines, shared_dir};
use std::collections::BTreeMap;
use tocsin::detect::{load_engine, CompileOptions, Scratch};
use tocsin::event::TimeOptions;
use tocsin::event::{InputFormat, Origin, Parser, Position};

#[test]
fn mordor_alerts_per_rule_match_the_snapshot() {
    let Some(shared) = shared_dir() else { return };
    let dirs = common::sigma_corpus(&shared);
    let (engine, _) = load_engine(&dirs, None, &CompileOptions::default()).unwrap();
    let events = lines(&shared.join("datasets/mordor_windows.jsonl.gz"));
    assert_eq!(events.len(), 158_545);
    let parser = Parser::new(InputFormat::Json, TimeOptions::default());
    let now = chrono::Utc::now();
    let (mut scratch, mut matched) = (Scratch::default(), Vec::new());
    let mut per_rule: BTreeMap<usize, usize> = BTreeMap::new();
    let mut parse_failures = 0;
    for (i, line) in events.iter().enumerate() {
        let origin = Origin {
            source: "mordor".into(),
            position: Position::Line { line: i as u64 + 1 },
        };
        let Ok(event) = parser.parse(line, origin, now) else {
            parse_failures += 1;
            continue;
        };
        engine.evaluate(&event, &[], &mut scratch, &mut matched);
        for &r in &matched {
            *per_rule.entry(r).or_default() += 1;
        }
    }
    assert_eq!(parse_failures, 0);
    let mut rows: Vec<(usize, &str, &str)> = per_rule
        .iter()
        .map(|(&r, &n)| {
            (
                n,
                engine.rules()[r].rule.meta.id.as_str(),
                engine.rules()[r].rule.meta.title.as_str(),
            )
        })
        .collect();
    rows.sort_by(|a, b| b.0.cmp(&a.0).then(a.1.cmp(b.1)));
    let total: usize = rows.iter().map(|r| r.0).sum();
    let mut text = format!(
        "# {} events, {} rules fired, {total} alerts (count, rule id, title)\n",
        events.len(),
        rows.len()
    );
    for (n, id, title) in rows {
        text.push_str(&format!("{n:>7} {id} {title}\n"));
    }
    common::assert_snapshot("mordor_alerts_per_rule.txt", &text);
}
