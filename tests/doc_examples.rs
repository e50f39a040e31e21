//! Every `tocsin` command in the shell examples of README.md and docs/ runs
//! as written, on the samples: a new user who copies one gets what the text
//! promises (exit 0), not a typo, a renamed flag or a missing file.
//!
//! Paths the examples take from a user's machine are replaced by project
//! files (the table in [`PLACEHOLDERS`]); examples over the SigmaHQ corpus
//! run when ../shared is present. A new example with a path the table does
//! not know fails here until it is added: that is the point. An example
//! whose comment says `(exits N)` must exit with N, every other one with 0.

mod common;

use std::path::{Path, PathBuf};

/// A user's path in an example, and what the test runs instead. `{tmp}`
/// is a scratch folder with the files below; `{shared}` is ../shared.
const PLACEHOLDERS: &[(&str, &str)] = &[
    // `tocsin train ... --from /var/log/auth.log.1 /var/log/auth.log`
    ("/var/log/auth.log.1 ", ""),
    ("/var/log/auth.log", "samples/auth.log"),
    ("/var/lib/tocsin/alerts.jsonl", "{tmp}/alerts.jsonl"),
    ("old.log.gz", "{tmp}/old.log.gz"),
    ("access.log.gz", "{tmp}/access.log.gz"),
    ("> alerts.jsonl", "> {tmp}/scan-alerts.jsonl"),
    ("events.jsonl", "samples/windows.jsonl"),
    ("--model-dir models", "--model-dir {tmp}/models"),
    (
        "Security.evtx Microsoft-Windows-Sysmon%4Operational.evtx",
        "{evtx}",
    ),
    (" sigma/", " {shared}/sigma/"),
];

/// Commands that cannot run to an end in a test, and why.
const NOT_RUN: &[(&str, &str)] = &[("git clone", "needs the internet")];

/// `(file, line, command)` for every line of a `sh` block that runs tocsin.
fn examples() -> Vec<(String, usize, String)> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut files = vec![root.join("README.md")];
    let mut docs: Vec<PathBuf> = std::fs::read_dir(root.join("docs"))
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == "md"))
        .collect();
    docs.sort();
    files.extend(docs);
    let mut out = Vec::new();
    for file in files {
        let text = std::fs::read_to_string(&file).unwrap();
        let name = file.strip_prefix(root).unwrap().display().to_string();
        let mut in_sh = false;
        for (n, line) in text.lines().enumerate() {
            let trimmed = line.trim();
            if trimmed.starts_with("```") {
                in_sh = !in_sh && matches!(trimmed, "```sh" | "```bash" | "```shell");
                continue;
            }
            let command = trimmed.trim_start_matches("$ ");
            let runs_tocsin = command.starts_with("tocsin ") || command.contains("| tocsin ");
            if in_sh && runs_tocsin {
                out.push((name.clone(), n + 1, command.to_string()));
            }
        }
    }
    out
}

/// A gzip copy of `from` at `to`.
fn gzip(from: &str, to: &Path) {
    use std::io::Write;
    let mut w = flate2::write::GzEncoder::new(
        std::fs::File::create(to).unwrap(),
        flate2::Compression::default(),
    );
    w.write_all(&std::fs::read(from).unwrap()).unwrap();
    w.finish().unwrap();
}

/// An alert journal of three alerts, as the incident desk writes it.
fn journal(path: &Path) {
    use tocsin::incident::{store::Journal, Change, Status, TrackedAlert};
    let (mut journal, _, _) = Journal::open(path).unwrap();
    let at = "2026-11-20T10:00:00Z".parse().unwrap();
    let changes: Vec<Change> = ["a", "b", "c"]
        .iter()
        .map(|id| {
            Change::Put(Box::new(TrackedAlert {
                id: id.to_string(),
                alert_type: tocsin::vocab::AlertType::StaticRule,
                severity: tocsin::vocab::Severity::High,
                score: None,
                rule_id: "r".into(),
                rule_title: "R".into(),
                source: "auth.log".into(),
                text: "t".into(),
                message: "m".into(),
                link: "l".into(),
                detected_at: at,
                due_at: at,
                status: Status::Open,
                history: vec![],
                escalations: vec![],
                breached_at: None,
            }))
        })
        .collect();
    journal.write(&changes).unwrap();
    journal.sync().unwrap();
}

/// Some `.evtx` originals from the SigmaHQ regression data.
fn evtx_files(shared: &Path) -> String {
    let mut found = Vec::new();
    let mut dirs = vec![shared.join("sigma/regression_data/rules/windows/process_creation")];
    while let Some(dir) = dirs.pop() {
        for e in std::fs::read_dir(&dir).unwrap().flatten() {
            let p = e.path();
            if p.is_dir() {
                dirs.push(p);
            } else if p.extension().is_some_and(|x| x == "evtx") {
                found.push(p.display().to_string());
            }
        }
    }
    found.sort();
    found.truncate(2);
    found.join(" ")
}

#[test]
fn every_tocsin_command_in_the_docs_runs_as_written() {
    let examples = examples();
    assert!(examples.len() >= 8, "{examples:#?}");
    let tmp = tempfile::tempdir().unwrap();
    gzip("samples/auth.log", &tmp.path().join("old.log.gz"));
    gzip("samples/access.log", &tmp.path().join("access.log.gz"));
    journal(&tmp.path().join("alerts.jsonl"));
    let shared = common::shared_dir();
    let bin = Path::new(env!("CARGO_BIN_EXE_tocsin")).parent().unwrap();
    let path = format!(
        "{}:{}",
        bin.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let mut ran = 0;
    for (file, line, example) in &examples {
        let at = format!("{file}:{line}: {example}");
        if let Some((_, why)) = NOT_RUN.iter().find(|(p, _)| example.contains(p)) {
            eprintln!("not run ({why}): {at}");
            continue;
        }
        let expected = example
            .split_once("(exits ")
            .and_then(|(_, rest)| rest.split(')').next())
            .and_then(|n| n.parse::<i32>().ok())
            .unwrap_or(0);
        let mut command = example.split(" # ").next().unwrap().trim().to_string();
        for (placeholder, replacement) in PLACEHOLDERS {
            command = command.replace(placeholder, replacement);
        }
        if command.contains("{shared}") || command.contains("{evtx}") {
            let Some(shared) = &shared else {
                eprintln!("not run (needs ../shared): {at}");
                continue;
            };
            command = command
                .replace("{shared}", &shared.display().to_string())
                .replace("{evtx}", &evtx_files(shared));
        }
        command = command.replace("{tmp}", &tmp.path().display().to_string());
        let out = std::process::Command::new("bash")
            .args(["-o", "pipefail", "-c", &command])
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .env("PATH", &path)
            .env_remove("TOCSIN_CONFIG")
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(
            out.status.code(),
            Some(expected),
            "{at}\nran: {command}\nexit {:?}\n{}",
            out.status.code(),
            stderr.lines().rev().take(5).collect::<Vec<_>>().join("\n")
        );
        ran += 1;
    }
    eprintln!("{ran} of {} examples run", examples.len());
    assert!(ran >= 6);
}
