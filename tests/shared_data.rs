//! Tests on the real reference data in ../shared (SigmaHQ rules, raw logs).
//! They skip with a message when ../shared is absent; CI always has it.

mod common;

use common::{detection_rules, engine, lines, project_path, scan, shared_dir};
use tocsin::detect::{load_engine, CompileOptions};
use tocsin::event::InputFormat;

/// The sshd counts below are checked independently with grep:
/// `grep -c 'sshd\[[0-9]*\]: Failed password for'` = 518, plus 2
/// "message repeated N times: [ Failed password ..." lines = 520;
/// `grep -c 'sshd\[[0-9]*\]: Invalid user '` = 113;
/// `grep -c 'POSSIBLE BREAK-IN ATTEMPT'` = 85;
/// too many failures / max attempts / "PAM N more" = 13; no root login succeeds.
#[test]
fn openssh_log_raises_the_sshd_alerts_grep_predicts() {
    let Some(shared) = shared_dir() else { return };
    let e = engine(&detection_rules());
    let c = scan(
        &e,
        &lines(&shared.join("datasets/raw/openssh.log")),
        InputFormat::Auto,
        "2026-11-23T00:00:00Z",
    );
    assert_eq!(c.events, 2000);
    assert_eq!(c.parse_failures, 0);
    let count = |title: &str| {
        assert!(
            e.rules().iter().any(|r| r.rule.meta.title == title),
            "no rule titled {title:?}"
        );
        c.by_rule.get(title).copied().unwrap_or(0)
    };
    assert_eq!(count("SSH Password Authentication Failure"), 520);
    assert_eq!(count("SSH Login Attempt For A Non-Existent User"), 113);
    assert_eq!(count("SSH Client Address With Mismatching Reverse DNS"), 85);
    assert_eq!(
        count("SSH Session Dropped After Too Many Authentication Failures"),
        13
    );
    assert_eq!(count("Successful SSH Login As Root"), 0);
    // The first failed password is line 6 of the file.
    assert_eq!(c.lines_by_rule["SSH Password Authentication Failure"][0], 6);
    // Only sshd rules fire on an sshd log.
    assert!(
        c.by_rule.keys().all(|t| t.starts_with("SSH ")),
        "{:?}",
        c.by_rule.keys()
    );
}

#[test]
fn linux_syslog_pam_failures_in_the_older_program_form_alert() {
    let Some(shared) = shared_dir() else { return };
    let e = engine(&detection_rules());
    let log = lines(&shared.join("datasets/raw/linux_syslog.log"));
    let c = scan(&e, &log, InputFormat::Syslog, "2026-11-23T00:00:00Z");
    assert_eq!(c.parse_failures, 0);
    // Every "authentication failure" line of a `(pam_unix)` program but
    // sshd's (remote logins, which the rule's description leaves to the
    // sshd rules), counted here independently.
    let pam_failures =
        |l: &&String| l.contains("(pam_unix)[") && l.contains("]: authentication failure");
    let sshd = log
        .iter()
        .filter(pam_failures)
        .filter(|l| l.contains(" sshd(pam_unix)["))
        .count();
    assert!(sshd > 400, "{sshd}");
    let expected = log.iter().filter(pam_failures).count() - sshd;
    assert!(expected >= 1, "{expected}");
    assert_eq!(
        c.by_rule
            .get("Local PAM Authentication Failure (su, sudo, login)")
            .copied(),
        Some(expected)
    );
}

#[test]
fn web_access_logs_parse_completely_and_raise_web_alerts() {
    let Some(shared) = shared_dir() else { return };
    let e = engine(&detection_rules());
    let mut report = String::new();
    for name in [
        "apache_access_honeynet.log.gz",
        "apache_access_scanners.log.gz",
    ] {
        let log = lines(&shared.join("datasets/raw").join(name));
        let c = scan(&e, &log, InputFormat::Auto, "2026-11-23T00:00:00Z");
        assert_eq!(c.parse_failures, 0, "{name}");
        assert_eq!(c.events, log.len(), "{name}");
        // Scanner user agents, counted independently of the rule.
        let nikto = log
            .iter()
            .filter(|l| l.to_lowercase().contains("nikto"))
            .count();
        let w3af = log
            .iter()
            .filter(|l| l.to_lowercase().contains("w3af"))
            .count();
        let ua_alerts = c
            .by_rule
            .get("Web Vulnerability Scanner User Agent")
            .copied()
            .unwrap_or(0);
        assert!(
            ua_alerts >= nikto.max(w3af) * 9 / 10,
            "{name}: {ua_alerts} UA alerts, nikto {nikto}, w3af {w3af}"
        );
        report.push_str(&format!("# {name}: {} events\n", c.events));
        for (rule, n) in &c.by_rule {
            report.push_str(&format!("{n:>6} {rule}\n"));
        }
    }
    common::assert_snapshot("web_access_logs.txt", &report);
}

#[test]
fn the_sigmahq_corpus_loads_with_only_the_rejections_the_spec_requires() {
    let Some(shared) = shared_dir() else { return };
    let dirs = common::sigma_corpus(&shared);
    let (engine, summary) = load_engine(&dirs, None, &CompileOptions::default()).unwrap();
    eprintln!(
        "SigmaHQ corpus: {} files, {} rules loaded, {} rejected",
        summary.files, summary.loaded, summary.rejected
    );
    for p in &summary.problems {
        eprintln!("  rejected: {p}");
        // Sigma: "If the tool isn't able to handle placeholders, it must reject the rule."
        assert!(
            p.message.contains("unresolved placeholder"),
            "unexpected rejection: {p}"
        );
    }
    assert!(summary.loaded >= 3700, "{}", summary.loaded);
    assert_eq!(engine.rules().len(), summary.loaded);
}

#[test]
fn deprecated_and_unsupported_rules_never_panic() {
    let Some(shared) = shared_dir() else { return };
    let dirs = [
        shared.join("sigma/deprecated"),
        shared.join("sigma/unsupported"),
    ];
    let (_, summary) = load_engine(&dirs, None, &CompileOptions::default()).unwrap();
    eprintln!(
        "deprecated+unsupported: {} loaded, {} rejected",
        summary.loaded, summary.rejected
    );
    assert!(summary.files > 200);
    // Every rejection names a file and a line.
    assert!(
        summary.problems.iter().all(|p| p.pos.line > 0),
        "{:#?}",
        summary.problems
    );
}

/// The shipped brute-force correlation on the real sshd log gives exactly
/// the alerts in tests/snapshots/openssh_brute_force_expected.txt, which were
/// computed independently from the raw lines (see the file's header).
#[test]
fn openssh_brute_force_correlation_matches_the_independent_computation() {
    let Some(shared) = shared_dir() else { return };
    let log = lines(&shared.join("datasets/raw/openssh.log"));
    let (set, fired) = common::correlate_lines(&log, InputFormat::Syslog, "2026-11-23T00:00:00Z");
    let actual: Vec<String> = fired
        .iter()
        .filter(|f| {
            set.get(f.correlation)
                .is_some_and(|c| c.rule.meta.title == "SSH Brute Force From One Address")
        })
        .map(|f| {
            format!(
                "{} {} {}",
                f.group[0].1,
                f.first.format("%m-%dT%H:%M:%S"),
                f.last.format("%m-%dT%H:%M:%S")
            )
        })
        .collect();
    let expected: Vec<String> = std::fs::read_to_string(project_path(
        "tests/snapshots/openssh_brute_force_expected.txt",
    ))
    .unwrap()
    .lines()
    .filter(|l| !l.starts_with('#'))
    .map(str::to_string)
    .collect();
    assert_eq!(expected.len(), 44);
    assert_eq!(actual, expected);
}
