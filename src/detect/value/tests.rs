//! Tests of compiled search items.

use super::encode::{expand_placeholders, utf16};
use super::*;
use crate::event::Event;
use crate::sigma::yaml::Pos;
use base64::Engine as _;
use serde_json::json;

fn event(fields: Value) -> Event {
    crate::event::test_event(fields, crate::event::InputFormat::Json)
}

fn item(key: &str, values: Vec<RuleValue>) -> SearchItem {
    let mut parts = key.split('|');
    let field = parts.next().unwrap();
    SearchItem {
        field: (!field.is_empty()).then(|| field.to_string()),
        modifiers: parts.map(|m| m.parse().unwrap()).collect(),
        values,
        pos: Pos::default(),
    }
}

fn s(v: &str) -> RuleValue {
    RuleValue::Str(v.to_string())
}

fn check(key: &str, values: Vec<RuleValue>, fields: Value) -> bool {
    let m = ItemMatcher::compile(&item(key, values), &Placeholders::new()).unwrap();
    let e = event(fields);
    m.matches(&EventView::new(&e, &[]))
}

#[test]
fn long_value_lists_match_through_one_literal_set() {
    let dlls = || {
        [
            "\\version.dll",
            "\\wbemcomn.dll",
            "\\dbghelp.dll",
            "\\wer*.dll",
            "\\ÄRGER.dll",
            "\\x.dll",
        ]
        .map(s)
        .to_vec()
    };
    let m = ItemMatcher::compile(&item("ImageLoaded|endswith", dlls()), &Placeholders::new());
    let Ok(ItemMatcher {
        test: ItemTest::Values { set: Some(set), .. },
        ..
    }) = &m
    else {
        panic!("expected a literal set: {m:?}")
    };
    assert_eq!(
        set.covered,
        [true, true, true, false, true, false],
        "globs and non-ASCII (sorted last) are compared alone"
    );
    let img = |v: &str| check("ImageLoaded|endswith", dlls(), json!({ "ImageLoaded": v }));
    assert!(img("C:\\Temp\\VERSION.DLL"));
    assert!(img("C:\\Temp\\werfault.dll"));
    assert!(img("C:\\Temp\\ärger.dll"));
    assert!(!img("C:\\Temp\\version.dll.bak"));
    let many: Vec<RuleValue> = (0..300).map(|i| s(&format!("tool{i}.exe"))).collect();
    let last = json!({ "Image": "C:\\x\\TOOL299.exe" });
    assert!(check("Image|endswith", many, last), "past 128 values too");
    let all = [" -w ", "hidden", "-nop", "iex"].map(s).to_vec();
    let ctx = |v: &str| {
        check(
            "ContextInfo|contains|all",
            all.clone(),
            json!({ "ContextInfo": v }),
        )
    };
    assert!(ctx("powershell -NoP -W Hidden -c IEX(x)"
        .replace("-NoP", "-nop")
        .as_str()));
    assert!(!ctx("powershell -nop -w hidden -c x"));
}

#[test]
fn values_that_need_a_non_ascii_character_are_not_compared_with_ascii_text() {
    let lookalikes = || {
        ["\u{0410}", "\u{0412}", "\u{0415}", "\u{041a}", "cmd"]
            .map(s)
            .to_vec()
    };
    let m = ItemMatcher::compile(
        &item("CommandLine|contains", lookalikes()),
        &Placeholders::new(),
    )
    .unwrap();
    let ItemTest::Values {
        preds, ascii_preds, ..
    } = &m.test
    else {
        panic!("string values")
    };
    assert_eq!((preds.len(), *ascii_preds), (5, 1), "the ASCII value first");
    let cmd = |v: &str| {
        check(
            "CommandLine|contains",
            lookalikes(),
            json!({ "CommandLine": v }),
        )
    };
    assert!(cmd("CMD /c whoami"));
    assert!(!cmd("powershell -c whoami"));
    assert!(
        cmd("p\u{0430}ypal.exe"),
        "lower-case Cyrillic a, case-insensitively"
    );
    assert!(cmd("\u{041a}ey"));
    let all = |v: &str| {
        check(
            "CommandLine|contains|all",
            vec![s("\u{0410}"), s("x")],
            json!({ "CommandLine": v }),
        )
    };
    assert!(!all("x only"));
    assert!(all("x and \u{0410}"));
}

proptest::proptest! {
    /// An item with many values decides exactly as its values one by one.
    #[test]
    fn value_lists_decide_as_their_values_one_by_one(
        values in proptest::collection::vec("[abä*]{0,3}", 4..8),
        modifier in 0..5usize,
        all in proptest::bool::ANY,
        texts in proptest::collection::vec("[aAbBäÄ]{0,5}", 1..3),
        number in proptest::bool::ANY,
    ) {
        let modifier = ["", "|contains", "|startswith", "|endswith", "|neq"][modifier];
        let all = all && modifier != "|neq";
        let key = format!("f{modifier}{}", if all { "|all" } else { "" });
        let field = match (texts.len(), number) {
            (_, true) => json!(12),
            (1, _) => json!(texts[0]),
            _ => json!(texts),
        };
        let fields = json!({ "f": field });
        let values: Vec<RuleValue> = values.iter().map(|v| s(v)).collect();
        let together = check(&key, values.clone(), fields.clone());
        // Each value compared on its own, past every shortcut of the item
        // (the literal set, the ASCII pre-check).
        let e = event(fields.clone());
        let view = EventView::new(&e, &[]);
        let single = |v: &RuleValue| {
            let plain = format!("f{}", if modifier == "|neq" { "" } else { modifier });
            let m = ItemMatcher::compile(&item(&plain, vec![v.clone()]), &Placeholders::new()).unwrap();
            let ItemTest::Values { preds, .. } = &m.test else {
                unreachable!("string values")
            };
            e.get("f").is_some_and(|value| preds.iter().any(|p| p.matches_value(value, &view)))
        };
        let expected = if modifier == "|neq" {
            !values.iter().any(single)
        } else if all {
            values.iter().all(single)
        } else {
            values.iter().any(single)
        };
        proptest::prop_assert_eq!(together, expected, "{} {:?} on {}", key, values, fields);
    }
}

fn compile_err(key: &str, values: Vec<RuleValue>) -> String {
    ItemMatcher::compile(&item(key, values), &Placeholders::new()).unwrap_err()
}

#[test]
fn contains_startswith_endswith_wrap_the_value() {
    assert!(check("a|contains", vec![s("b")], json!({"a": "xBx"})));
    assert!(check("a|startswith", vec![s("x")], json!({"a": "Xb"})));
    assert!(!check("a|startswith", vec![s("b")], json!({"a": "xb"})));
    assert!(check("a|endswith", vec![s("B")], json!({"a": "xb"})));
}

#[test]
fn all_requires_every_value() {
    let v = vec![s("a"), s("b")];
    assert!(check("f|contains|all", v.clone(), json!({"f": "b a"})));
    assert!(!check("f|contains|all", v, json!({"f": "a only"})));
}

#[test]
fn numbers_match_their_string_form_both_ways() {
    assert!(check(
        "EventID",
        vec![RuleValue::Int(4688)],
        json!({"EventID": "4688"})
    ));
    assert!(check(
        "EventID",
        vec![RuleValue::Int(4688)],
        json!({"EventID": 4688})
    ));
    assert!(check("EventID", vec![s("4688")], json!({"EventID": 4688})));
    assert!(!check(
        "EventID",
        vec![RuleValue::Int(4688)],
        json!({"EventID": 46880})
    ));
}

#[test]
fn arrays_match_if_any_element_matches() {
    assert!(check("tags", vec![s("b")], json!({"tags": ["a", "B"]})));
    assert!(!check("tags", vec![s("c")], json!({"tags": ["a", "b"]})));
}

#[test]
fn null_matches_missing_or_null_fields_only() {
    assert!(check("f", vec![RuleValue::Null], json!({})));
    assert!(check("f", vec![RuleValue::Null], json!({"f": null})));
    assert!(!check("f", vec![RuleValue::Null], json!({"f": ""})));
    assert!(compile_err("f", vec![RuleValue::Null, s("x")]).contains("null"));
}

#[test]
fn empty_string_matches_only_empty_values() {
    assert!(check("f", vec![s("")], json!({"f": ""})));
    assert!(!check("f", vec![s("")], json!({})));
    assert!(!check("f", vec![s("")], json!({"f": "x"})));
}

#[test]
fn exists_checks_presence_not_value() {
    assert!(check(
        "f|exists",
        vec![RuleValue::Bool(true)],
        json!({"f": null})
    ));
    assert!(check(
        "f|exists",
        vec![RuleValue::Bool(false)],
        json!({"g": 1})
    ));
    assert!(!check("f|exists", vec![RuleValue::Bool(true)], json!({})));
}

#[test]
fn keywords_search_every_string_value() {
    assert!(check(
        "",
        vec![s("evil")],
        json!({"a": {"b": ["x", "very EVIL thing"]}})
    ));
    assert!(!check("", vec![s("evil")], json!({"a": "good"})));
    assert!(check(
        "|all",
        vec![s("one"), s("two")],
        json!({"a": "one", "b": "two"})
    ));
}

#[test]
fn cased_is_case_sensitive() {
    assert!(check("f|cased", vec![s("Abc")], json!({"f": "Abc"})));
    assert!(!check("f|cased", vec![s("Abc")], json!({"f": "abc"})));
}

#[test]
fn neq_matches_existing_fields_that_differ_from_every_value() {
    assert!(check("f|neq", vec![s("a"), s("b")], json!({"f": "c"})));
    assert!(!check("f|neq", vec![s("a"), s("b")], json!({"f": "B"})));
    assert!(!check("f|neq", vec![s("a")], json!({})));
}

#[test]
fn regexes_are_case_sensitive_unless_i() {
    assert!(check("f|re", vec![s("^ab+c$")], json!({"f": "abbc"})));
    assert!(!check("f|re", vec![s("^abc$")], json!({"f": "ABC"})));
    assert!(check("f|re|i", vec![s("^abc$")], json!({"f": "ABC"})));
    assert!(check("f|re|s", vec![s("a.b")], json!({"f": "a\nb"})));
    assert!(check("f|re|m", vec![s("^b$")], json!({"f": "a\nb"})));
    assert!(check("f|re|m", vec![s("^a$")], json!({"f": "a\nb"})));
    let re = |pattern: &str, text: &str| check("f|re", vec![s(pattern)], json!({ "f": text }));
    assert!(re("tail$", "the tail\n"), "PCRE: $ before a final newline");
    assert!(!re("tail$", "the tail\nx"));
    assert!(!re("tail$", "the tail\n\n"));
    assert!(
        re("a\\$|[$]b", "xa$"),
        "escaped and class dollars stay literal"
    );
    assert!(re("(?P<n>x)$", "x"));
    assert!(compile_err("f|re", vec![s("(")]).contains("invalid regular expression"));
    assert!(compile_err("f|i", vec![s("x")]).contains("sub-modifiers"));
}

#[test]
fn regex_perl_classes_and_word_boundaries_are_ascii_as_in_pcre() {
    let re = |pattern: &str, text: &str| check("f|re", vec![s(pattern)], json!({ "f": text }));
    assert!(re("^\\w+$", "abc_19"));
    assert!(!re("^\\w+$", "über"), "PCRE's \\w is ASCII");
    assert!(re("^\\W$", "ü"), "so a non-ASCII letter is \\W");
    assert!(!re("\\d", "٣"), "Arabic-Indic digits are not \\d");
    assert!(re("^\\D$", "٣"));
    assert!(!re("\\s", "a\u{a0}b"), "no-break space is not \\s");
    assert!(
        re("a\\sb", "a\u{b}b"),
        "vertical tab is \\s, as since PCRE 8.34"
    );
    assert!(re("^[\\w.-]+$", "a-b.c"), "inside a class too");
    assert!(!re("^[\\w.-]+$", "a-é"));
    assert!(re("^[^\\W]+$", "abc") && !re("^[^\\W]+$", "aé"));
    assert!(
        re("\\bcmd\\b", "écmd."),
        "é is not a word character for \\b"
    );
    assert!(!re("\\Bcmd", "écmd"));
    assert!(
        re("C:\\\\windows", "C:\\windows"),
        "an escaped backslash stays one"
    );
    assert!(re("(?i)^\\w\\s\\d$", "A 1"), "with flags");
    assert!(re("^\\d{3}$", "123") && !re("^\\d{3}$", "12"));
}

proptest::proptest! {
    /// On ASCII text, the ASCII classes match exactly as Unicode ones do:
    /// the rewrite changes what non-ASCII text matches, nothing else.
    #[test]
    fn ascii_classes_agree_with_unicode_ones_on_ascii_text(
        pieces in proptest::collection::vec(
            proptest::sample::select(vec![
                "\\w", "\\W", "\\d", "\\D", "\\s", "\\S", "\\b", "\\B",
                "[\\w-]", "[^\\d\\s]", "a", "1", " ", ".", "+", "*", "?", "(x|\\w)",
                "\\\\w", "{1,3}",
            ]),
            1..8,
        ),
        text in "[a-c1-2 _.\\\\w-]{0,12}",
    ) {
        let pattern: String = pieces.concat();
        let unicode = regex::Regex::new(&pattern);
        let ascii = regex::Regex::new(&compare::pcre_ascii_classes(&pattern));
        match (unicode, ascii) {
            (Ok(u), Ok(a)) => proptest::prop_assert_eq!(u.is_match(&text), a.is_match(&text), "{}", pattern),
            (u, a) => proptest::prop_assert_eq!(u.is_ok(), a.is_ok(), "{}", pattern),
        }
    }
}

#[test]
fn cidr_matches_ipv4_and_ipv6() {
    let cidr = |network: &str, ip: &str| check("ip|cidr", vec![s(network)], json!({ "ip": ip }));
    assert!(cidr("10.0.0.0/8", "10.1.2.3"));
    assert!(!cidr("10.0.0.0/8", "11.1.2.3"));
    assert!(cidr("fe80::/10", "fe80::1%eth0"), "a zone id is ignored");
    assert!(!cidr("10.0.0.0/8", "not an ip"));
    assert!(compile_err("ip|cidr", vec![s("10.0.0.0/33")]).contains("CIDR"));
}

#[test]
fn numeric_comparisons_accept_numbers_and_numeric_strings() {
    assert!(check("n|gt", vec![RuleValue::Int(5)], json!({"n": 6})));
    assert!(check("n|gte", vec![RuleValue::Int(5)], json!({"n": "5"})));
    assert!(!check("n|lt", vec![RuleValue::Int(5)], json!({"n": 5})));
    assert!(check("n|lte", vec![RuleValue::Float(5.5)], json!({"n": 5})));
    assert!(!check("n|gt", vec![RuleValue::Int(5)], json!({"n": "abc"})));
    assert!(compile_err("n|gt", vec![s("x")]).contains("not a number"));
}

#[test]
fn time_modifiers_extract_date_parts() {
    let t = json!({"t": "2026-11-23T14:05:00Z"});
    assert!(check("t|hour", vec![RuleValue::Int(14)], t.clone()));
    assert!(check("t|minute", vec![RuleValue::Int(5)], t.clone()));
    assert!(check("t|month", vec![RuleValue::Int(11)], t.clone()));
    assert!(check("t|year", vec![RuleValue::Int(2026)], t.clone()));
    assert!(check("t|day", vec![RuleValue::Int(23)], t.clone()));
    assert!(check("t|week", vec![RuleValue::Int(48)], t.clone()));
    assert!(check("t|hour|gte", vec![RuleValue::Int(12)], t.clone()));
    assert!(!check("t|hour", vec![RuleValue::Int(15)], t));
}

#[test]
fn fieldref_compares_two_fields() {
    let e = json!({"a": "Admin", "b": "admin", "c": "other"});
    assert!(check("a|fieldref", vec![s("b")], e.clone()));
    assert!(!check("a|fieldref", vec![s("c")], e.clone()));
    assert!(check("a|fieldref|neq", vec![s("c")], e.clone()));
    assert!(!check("a|fieldref|cased", vec![s("b")], e.clone()));
    assert!(!check("a|fieldref", vec![s("missing")], e));
}

#[test]
fn base64_encodes_the_value() {
    // "cmd" -> "Y21k"
    assert!(check(
        "f|base64|contains",
        vec![s("cmd")],
        json!({"f": "xxY21kxx"})
    ));
    assert!(compile_err("f|base64", vec![s("a*")]).contains("wildcards"));
}

#[test]
fn base64offset_finds_the_value_at_any_alignment() {
    let b64 = &base64::engine::general_purpose::STANDARD;
    for prefix in ["", "a", "ab", "abc"] {
        let encoded = b64.encode(format!("{prefix}http://evil/x"));
        assert!(
            check(
                "f|base64offset|contains",
                vec![s("http://")],
                json!({ "f": encoded })
            ),
            "prefix {prefix:?}"
        );
    }
    assert!(!check(
        "f|base64offset|contains",
        vec![s("http://")],
        json!({"f": b64.encode("nothing to see")})
    ));
}

#[test]
fn utf16_modifiers_encode_before_base64() {
    let b64 = &base64::engine::general_purpose::STANDARD;
    let wide: Vec<u8> = "xx cmd yy"
        .encode_utf16()
        .flat_map(u16::to_le_bytes)
        .collect();
    let encoded = b64.encode(wide);
    assert!(check(
        "f|wide|base64offset|contains",
        vec![s("cmd")],
        json!({ "f": encoded })
    ));
    assert_eq!(utf16(b"cmd", false, false), vec![0x63, 0, 0x6d, 0, 0x64, 0]);
    assert_eq!(utf16(b"cmd", true, false), vec![0, 0x63, 0, 0x6d, 0, 0x64]);
    assert_eq!(utf16(b"c", false, true), vec![0xFF, 0xFE, 0x63, 0]);
}

#[test]
fn windash_accepts_every_dash_form() {
    for flag in [
        "-exec",
        "/exec",
        "\u{2013}exec",
        "\u{2014}exec",
        "\u{2015}exec",
    ] {
        let line = format!("tool.exe {flag} bypass");
        assert!(check(
            "c|windash|contains",
            vec![s(" -exec ")],
            json!({ "c": line })
        ));
    }
    assert!(!check(
        "c|windash|contains",
        vec![s(" -exec ")],
        json!({"c": "tool.exe +exec x"})
    ));
}

#[test]
fn expand_resolves_placeholders_or_rejects_the_item() {
    let mut ph = Placeholders::new();
    ph.insert("Admins".into(), vec!["root".into(), "adm*".into()]);
    let m = ItemMatcher::compile(&item("u|expand", vec![s("%Admins%")]), &ph).unwrap();
    let yes = event(json!({"u": "admin1"}));
    let no = event(json!({"u": "bob"}));
    assert!(m.matches(&EventView::new(&yes, &[])));
    assert!(!m.matches(&EventView::new(&no, &[])));
    let err = ItemMatcher::compile(&item("u|expand", vec![s("%Servers%")]), &ph).unwrap_err();
    assert!(err.contains("%Servers%"), "{err}");
    assert_eq!(
        expand_placeholders("\\%plain", &ph).unwrap(),
        vec!["%plain"]
    );
}

#[test]
fn incompatible_modifiers_are_rejected() {
    assert!(compile_err("f|cidr|contains", vec![s("10.0.0.0/8")]).contains("cannot be combined"));
    assert!(compile_err("f|exists", vec![s("yes")]).contains("true"));
}
