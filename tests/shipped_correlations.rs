//! The correlation rules shipped in rules/ on synthetic attack streams, with
//! near misses that must not fire. Events go through the same parsers,
//! detection and correlator as the pipeline.

mod common;

use common::correlate_lines;
use tocsin::event::InputFormat;

/// Titles of the correlation rules that fire on `lines` (each a syslog,
/// access-log or JSON line), in order.
fn correlations_fired(lines: &[String]) -> Vec<String> {
    let (set, fired) = correlate_lines(lines, InputFormat::Auto, "2026-11-23T00:00:00Z");
    fired
        .iter()
        .map(|f| set.get(f.correlation).unwrap().rule.meta.title.clone())
        .collect()
}

fn sshd(sec: u32, msg: &str) -> String {
    format!(
        "Nov 20 08:{:02}:{:02} bastion1 sshd[4121]: {msg}",
        10 + sec / 60,
        sec % 60
    )
}

#[test]
fn password_spraying_needs_five_users_from_one_address() {
    let users = |n: usize| -> Vec<String> {
        (0..n).map(|i| sshd(i as u32 * 5, &format!("Failed password for invalid user user{i} from 203.0.113.50 port 4{i}000 ssh2"))).collect()
    };
    assert_eq!(
        correlations_fired(&users(5)),
        vec!["SSH Password Spraying From One Address"]
    );
    assert!(correlations_fired(&users(4)).is_empty());
}

#[test]
fn brute_force_then_login_chains_two_correlations() {
    let mut lines: Vec<String> = (0..10)
        .map(|i| {
            sshd(
                i * 3,
                &format!("Failed password for root from 203.0.113.77 port 5{i}000 ssh2"),
            )
        })
        .collect();
    lines.push(sshd(
        60,
        "Accepted password for root from 203.0.113.77 port 60000 ssh2",
    ));
    assert_eq!(
        correlations_fired(&lines),
        vec![
            "SSH Brute Force From One Address",
            "SSH Login After A Brute Force From The Same Address"
        ]
    );
    // The login comes from another address: only the brute force.
    let last = lines.len() - 1;
    lines[last] = sshd(
        60,
        "Accepted password for root from 198.51.100.9 port 60000 ssh2",
    );
    assert_eq!(
        correlations_fired(&lines),
        vec!["SSH Brute Force From One Address"]
    );
}

#[test]
fn content_discovery_needs_twenty_distinct_missing_paths() {
    let scan = |n: usize| -> Vec<String> {
        (0..n)
            .map(|i| format!(r#"203.0.113.61 - - [20/Nov/2026:08:16:{:02} +0000] "GET /hidden{i}.php HTTP/1.1" 404 196 "-" "curl/8.0""#, i))
            .collect()
    };
    assert_eq!(
        correlations_fired(&scan(20)),
        vec!["Web Content Discovery Scan From One Client"]
    );
    assert!(correlations_fired(&scan(19)).is_empty());
}

fn win(sec: u32, event_id: u32, logon_type: u32) -> String {
    format!(
        r#"{{"Channel": "Security", "EventID": {event_id}, "Computer": "dc01", "TargetUserName": "alice", "IpAddress": "198.51.100.7", "LogonType": {logon_type}, "TimeCreated_SystemTime": "2026-11-20T08:10:{sec:02}Z"}}"#
    )
}

#[test]
fn windows_failed_logons_then_success_from_the_same_address() {
    let mut lines: Vec<String> = (0..5).map(|i| win(i, 4625, 3)).collect();
    lines.push(win(30, 4624, 10));
    assert_eq!(
        correlations_fired(&lines),
        vec![
            "Many Failed Windows Logons From One Address",
            "Windows Logon After Many Failures From The Same Address"
        ]
    );
    lines.remove(0);
    assert!(
        correlations_fired(&lines).is_empty(),
        "four failures are not enough"
    );
}

#[test]
fn office_shell_followed_by_encoded_powershell_on_one_computer() {
    let proc = |sec: u32, computer: &str, image: &str, parent: &str, cmd: &str| {
        serde_json::json!({"Channel": "Microsoft-Windows-Sysmon/Operational", "EventID": 1, "Computer": computer,
            "Image": image, "ParentImage": parent, "CommandLine": cmd, "UtcTime": format!("2026-11-20 08:10:{sec:02}.000")})
        .to_string()
    };
    let shell = proc(
        1,
        "ws01",
        "C:\\Windows\\System32\\cmd.exe",
        "C:\\Program Files\\Microsoft Office\\root\\Office16\\WINWORD.EXE",
        "cmd.exe /c x",
    );
    let ps = |computer: &str| {
        proc(
            20,
            computer,
            "C:\\Windows\\System32\\WindowsPowerShell\\v1.0\\powershell.exe",
            "C:\\Windows\\System32\\cmd.exe",
            "powershell.exe -nop -enc SQBFAFgA",
        )
    };
    assert_eq!(
        correlations_fired(&[shell.clone(), ps("ws01")]),
        vec!["Office Application Shell Followed By Encoded PowerShell"]
    );
    assert!(
        correlations_fired(&[shell, ps("ws02")]).is_empty(),
        "another computer"
    );
    // Order is event time, not arrival: PowerShell one minute before the shell does not fire.
    let early_ps = proc(
        0,
        "ws01",
        "C:\\Windows\\System32\\WindowsPowerShell\\v1.0\\powershell.exe",
        "C:\\Windows\\System32\\cmd.exe",
        "powershell.exe -nop -enc SQBFAFgA",
    );
    let late_shell = proc(
        40,
        "ws01",
        "C:\\Windows\\System32\\cmd.exe",
        "C:\\Program Files\\Microsoft Office\\root\\Office16\\WINWORD.EXE",
        "cmd.exe /c x",
    );
    assert!(
        correlations_fired(&[early_ps, late_shell]).is_empty(),
        "wrong order in time"
    );
}
