//! The documentation's claims stay tied to tests: every test named in the
//! semantics tables of docs/sigma-semantics.md and docs/correlation.md exists.

use std::path::Path;

fn sources(dir: &Path, out: &mut String) {
    for entry in std::fs::read_dir(dir).unwrap().flatten() {
        let p = entry.path();
        if p.is_dir() {
            sources(&p, out);
        } else if p.extension().is_some_and(|e| e == "rs") {
            out.push_str(&std::fs::read_to_string(&p).unwrap());
        }
    }
}

/// Checks the tables of `doc_name` from the heading `from` on (the whole
/// document for `None`).
fn check(doc_name: &str, at_least: usize, from: Option<&str>) {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let whole = std::fs::read_to_string(root.join("docs").join(doc_name)).unwrap();
    let doc = match from {
        Some(heading) => whole
            .split_once(heading)
            .map(|(_, rest)| rest)
            .unwrap_or_else(|| panic!("{doc_name} has no `{heading}`")),
        None => whole.as_str(),
    };
    let mut code = String::new();
    sources(&root.join("src"), &mut code);
    sources(&root.join("tests"), &mut code);
    let mut named = 0;
    for line in doc.lines().filter(|l| l.starts_with('|')) {
        let Some(last) = line.trim_end_matches('|').rsplit('|').next() else {
            continue;
        };
        for name in last.split('`').skip(1).step_by(2) {
            if name
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
                && name.contains('_')
            {
                named += 1;
                assert!(
                    code.contains(&format!("fn {name}(")),
                    "docs/{doc_name} names `{name}`, which is not a test"
                );
            }
        }
    }
    assert!(named >= at_least, "{doc_name}: {named}");
}

#[test]
fn every_test_named_in_the_sigma_semantics_table_exists() {
    check("sigma-semantics.md", 40, None);
}

#[test]
fn every_test_named_in_the_correlation_table_exists() {
    check("correlation.md", 12, None);
}

#[test]
fn every_test_named_in_the_kafka_doc_exists() {
    check("kafka.md", 10, Some("## Tests"));
}
