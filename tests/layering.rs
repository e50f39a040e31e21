//! The layers of the library, kept: each top-level module imports only from
//! the layers below it (docs/architecture.md). Read from the source: every
//! `crate::<module>` path outside comments and unit tests.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// Bottom to top: each module and the modules it may import.
const LAYERS: &[(&str, &[&str])] = &[
    ("vocab", &[]),
    ("event", &["vocab"]),
    ("sigma", &["vocab"]),
    ("detect", &["vocab", "event", "sigma"]),
    ("correlate", &["vocab", "event", "sigma", "detect"]),
    ("anomaly", &["vocab", "event", "sigma", "detect"]),
    ("ruletest", &["vocab", "event", "sigma", "detect"]),
    ("alert", &["vocab", "event", "sigma"]),
    ("incident", &["vocab", "event", "sigma", "alert"]),
    (
        "pipeline",
        &[
            "vocab",
            "event",
            "sigma",
            "detect",
            "correlate",
            "anomaly",
            "alert",
            "incident",
        ],
    ),
    (
        "config",
        &[
            "vocab",
            "event",
            "sigma",
            "detect",
            "correlate",
            "anomaly",
            "alert",
            "incident",
            "pipeline",
        ],
    ),
];

fn src() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("src")
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// The library's code in a file: comments and its unit-test module cut off.
fn code(path: &Path) -> String {
    let text = std::fs::read_to_string(path).unwrap();
    let comments = regex::Regex::new(r"//[^\n]*").unwrap();
    let text = comments.replace_all(&text, "").into_owned();
    let tests =
        regex::Regex::new(r"#\[cfg\(test\)\]\s*(pub(\(crate\))?\s+)?mod\s+\w+\s*\{").unwrap();
    match tests.find(&text) {
        Some(m) => text[..m.start()].to_string(),
        None => text,
    }
}

/// Each top-level library module and the top-level modules it imports,
/// with the file of each import.
fn imports() -> BTreeMap<String, BTreeMap<String, BTreeSet<String>>> {
    let single = regex::Regex::new(r"crate::(\w+)").unwrap();
    let group = regex::Regex::new(r"crate::\{([^}]*)\}").unwrap();
    let name = regex::Regex::new(r"(?:^|,)\s*(\w+)").unwrap();
    let mut files = Vec::new();
    rust_files(&src(), &mut files);
    let mut out: BTreeMap<String, BTreeMap<String, BTreeSet<String>>> = BTreeMap::new();
    for file in files {
        let rel = file.strip_prefix(src()).unwrap();
        let top = rel
            .components()
            .next()
            .unwrap()
            .as_os_str()
            .to_string_lossy();
        let top = top.trim_end_matches(".rs").to_string();
        // The binary (main.rs, cli/) sits above the library; test-only files
        // (tests.rs, testing.rs) may reach anywhere.
        let name_of = rel.file_name().unwrap().to_string_lossy();
        if ["main", "lib", "cli"].contains(&top.as_str())
            || ["tests.rs", "testing.rs"].contains(&name_of.as_ref())
        {
            continue;
        }
        let code = code(&file);
        let mut used: BTreeSet<String> = single
            .captures_iter(&code)
            .map(|c| c[1].to_string())
            .collect();
        for g in group.captures_iter(&code) {
            used.extend(name.captures_iter(&g[1]).map(|c| c[1].to_string()));
        }
        let entry = out.entry(top.clone()).or_default();
        for module in used.into_iter().filter(|m| *m != top) {
            entry
                .entry(module)
                .or_default()
                .insert(rel.display().to_string());
        }
    }
    out
}

#[test]
fn every_module_imports_only_from_the_layers_below_it() {
    let allowed: BTreeMap<&str, &[&str]> = LAYERS.iter().copied().collect();
    let mut wrong = Vec::new();
    for (module, used) in imports() {
        let Some(may) = allowed.get(module.as_str()) else {
            wrong.push(format!(
                "{module}: not in a layer; add it to LAYERS here and to docs/architecture.md"
            ));
            continue;
        };
        for (import, files) in used {
            if !may.contains(&import.as_str()) {
                wrong.push(format!(
                    "{module} imports {import} ({}), but may import only {may:?}",
                    files.iter().cloned().collect::<Vec<_>>().join(", ")
                ));
            }
        }
    }
    assert!(
        wrong.is_empty(),
        "imports against the data flow:\n{}",
        wrong.join("\n")
    );
}

#[test]
fn the_layers_are_ordered_bottom_to_top() {
    // A module may import only from modules listed before it: no cycle can hide in the table.
    for (i, (module, may)) in LAYERS.iter().enumerate() {
        let below: Vec<&str> = LAYERS[..i].iter().map(|(m, _)| *m).collect();
        for m in *may {
            assert!(
                below.contains(m),
                "{module} may import {m}, which is not below it"
            );
        }
    }
}

#[test]
fn the_architecture_document_names_every_layer() {
    let doc =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/architecture.md"))
            .expect("docs/architecture.md");
    for (module, _) in LAYERS {
        assert!(
            doc.contains(&format!("`{module}/`")) || doc.contains(&format!("`{module}.rs`")),
            "docs/architecture.md does not describe `{module}`"
        );
    }
}
