//! Windows events in `evtx_dump` JSON shape, mapped to Sigma field names.
//!
//! `{"Event": {"System": {...}, "EventData": {...}}}` becomes a flat object:
//! System elements by name (`Channel`, `Computer`, `EventID`), System
//! attributes as `Element_Attribute` (`Provider_Name`, `TimeCreated_SystemTime`),
//! and every EventData/UserData field at top level, as the Sigma
//! specification names Windows fields.

use super::fields::Fields;
use super::json::{self, Found, FoundMembers, LazyBuilder};
use serde_json::{Map, Value};
use std::borrow::Cow;

/// Winlogbeat's names for Windows event fields (6.x top level, 7.x+ under `winlog`),
/// and the Sigma names they become.
const WINLOGBEAT_FIELDS: &[(&str, &str)] = &[
    ("channel", "Channel"),
    ("log_name", "Channel"),
    ("event_id", "EventID"),
    ("computer_name", "Computer"),
    ("provider_name", "Provider_Name"),
    ("source_name", "Provider_Name"),
    ("provider_guid", "Provider_Guid"),
    ("record_id", "EventRecordID"),
    ("record_number", "EventRecordID"),
    ("process_id", "Execution_ProcessID"),
    ("thread_id", "Execution_ThreadID"),
    ("task", "Task"),
    ("opcode", "Opcode"),
    ("version", "Version"),
];

/// Whether a JSON object is a Winlogbeat Windows event (6.x or 7.x+ layout).
pub(crate) fn is_winlogbeat_shape(obj: &Map<String, Value>) -> bool {
    let has_channel = |m: &Map<String, Value>| {
        (m.contains_key("log_name") || m.contains_key("channel")) && m.contains_key("event_id")
    };
    has_channel(obj)
        || obj
            .get("winlog")
            .and_then(Value::as_object)
            .is_some_and(has_channel)
}

/// Flattens a Winlogbeat event into Sigma-named fields: the Windows
/// metadata under Sigma names, event data fields at top level, and every
/// other top-level key kept.
pub(crate) fn flatten_winlogbeat(mut obj: Map<String, Value>) -> Map<String, Value> {
    // Values move into the flat object: Winlogbeat's `message` alone is
    // kilobytes, and a copy of every value per event showed in profiles.
    let mut nested = match obj.shift_remove("winlog") {
        Some(Value::Object(winlog)) => Some(winlog),
        _ => None,
    };
    let winlog = nested.as_mut().unwrap_or(&mut obj);
    let mut out = Map::new();
    for (from, to) in WINLOGBEAT_FIELDS {
        if let Some(v) = winlog.get(*from) {
            if !out.contains_key(*to) {
                out.insert((*to).to_string(), normalize_scalar(to, v.clone()));
            }
        }
    }
    for section in ["event_data", "user_data"] {
        if let Some(Value::Object(data)) = winlog.get_mut(section) {
            for (k, v) in std::mem::take(data) {
                out.entry(k).or_insert(v);
            }
        }
    }
    for (k, v) in obj {
        if k != "event_data" && k != "user_data" {
            out.entry(k).or_insert(v);
        }
    }
    out
}

/// [`flatten_winlogbeat`] without a tree, as [`flatten_lazy`] is for
/// evtx_dump: None when the line is not a Winlogbeat event (or is an
/// evtx_dump one), or has a part the lazy form cannot hold.
pub(crate) fn flatten_winlogbeat_lazy(line: json::Validated<'_>) -> Option<Fields> {
    let top = once_each(&line.members)?;
    let is_object = |v: &Found<'_>| v.text.starts_with('{');
    if member(top, "Event").is_some_and(is_object) {
        return None;
    }
    let nested = match member(top, "winlog").filter(|w| is_object(w)) {
        Some(winlog) => Some(object(winlog)?),
        None => None,
    };
    let winlog = nested.unwrap_or(top);
    let has = |k: &str| member(winlog, k).is_some();
    if !((has("log_name") || has("channel")) && has("event_id")) {
        return None;
    }
    let mut out = LazyBuilder::new(line.raw);
    for (from, to) in WINLOGBEAT_FIELDS {
        if let Some(v) = member(winlog, from) {
            if !out.contains(to) {
                out.push_sigma(to, v.text, event_id_number(to, v.text))?;
            }
        }
    }
    for section in ["event_data", "user_data"] {
        let Some(data) = member(winlog, section).filter(|d| is_object(d)) else {
            continue;
        };
        for (key, value) in object(data)? {
            match out.contains(key) {
                true => json::is_shallow(value.text).then_some(())?,
                false => out.push(key.clone(), value.text, None)?,
            }
        }
    }
    if let Some(winlog) = nested {
        let read = |k: &str, v: &Found<'_>| {
            WINLOGBEAT_FIELDS.iter().any(|(from, _)| *from == k)
                || ((k == "event_data" || k == "user_data") && is_object(v))
        };
        unread_are_shallow(winlog, read)?;
    }
    for (key, value) in top {
        let data = key == "event_data" || key == "user_data";
        match key == "winlog" || data || out.contains(key) {
            true => {
                let descended = (data && nested.is_none()) || key == "winlog";
                (descended && is_object(value) || json::is_shallow(value.text)).then_some(())?
            }
            false => out.push(key.clone(), value.text, None)?,
        }
    }
    Some(out.finish())
}

/// Whether a JSON object has the evtx_dump shape.
pub(crate) fn is_evtx_shape(obj: &Map<String, Value>) -> bool {
    obj.get("Event")
        .and_then(Value::as_object)
        .is_some_and(|e| e.get("System").is_some_and(Value::is_object))
}

/// Flattens an evtx_dump event into Sigma-named fields. Values move into
/// the flat object, as in [`flatten_winlogbeat`]: copying them cost a
/// tenth of a scan of evtx_dump events.
pub(crate) fn flatten(mut obj: Map<String, Value>) -> Result<Map<String, Value>, String> {
    let Some(Value::Object(mut event)) = obj.shift_remove("Event") else {
        return Err("no `Event` object".into());
    };
    let Some(Value::Object(system)) = event.shift_remove("System") else {
        return Err("no `Event.System` object".into());
    };
    let mut out = Map::new();
    for (name, value) in system {
        match value {
            Value::Object(mut inner) => {
                if let Some(text) = inner.shift_remove("#text") {
                    let text = normalize_scalar(&name, text);
                    out.insert(name.clone(), text);
                }
                if let Some(Value::Object(attrs)) = inner.shift_remove("#attributes") {
                    for (attr, v) in attrs {
                        out.insert(format!("{name}_{attr}"), v);
                    }
                }
            }
            Value::Null => {}
            other => {
                let value = normalize_scalar(&name, other);
                out.insert(name, value);
            }
        }
    }
    // Data fields must not replace System ones: a 104 event's UserData has a
    // `Channel` (the log that was cleared) that is not the event's channel.
    // A clashing data field is kept as `<Section>_<name>`.
    for section in ["EventData", "UserData"] {
        if let Some(data) = event.shift_remove(section) {
            let mut fields = Map::new();
            flatten_data(section, data, &mut fields);
            for (k, v) in fields {
                if out.contains_key(&k) {
                    out.insert(format!("{section}_{k}"), v);
                } else {
                    out.insert(k, v);
                }
            }
        }
    }
    // Other top-level keys (e.g. `_meta` added by shippers) are kept as they are.
    for (k, v) in obj {
        out.entry(k).or_insert(v);
    }
    Ok(out)
}

/// [`flatten`] without a tree: the same fields, as positions in the line's
/// text (see `fields.rs`), for a line [`json::index_object`] found to
/// start an `Event`. None when the event has a part this does not read
/// (`UserData`, `Data` elements, `EventData` that is not an object, a
/// data field named twice) or that the lazy form cannot hold: [`flatten`]
/// reads those from a tree.
pub(crate) fn flatten_lazy(line: json::Validated<'_>) -> Option<Fields> {
    let top = once_each(&line.members)?;
    let event = object(member(top, "Event")?)?;
    let mut out = LazyBuilder::new(line.raw);
    for (name, value) in object(member(event, "System")?)? {
        if value.text == "null" {
            continue;
        }
        if !value.text.starts_with('{') {
            let number = event_id_number(name, value.text);
            out.push(name.clone(), value.text, number)?;
            continue;
        }
        let inner = object(value)?;
        if let Some(text) = member(inner, "#text") {
            out.push(name.clone(), text.text, event_id_number(name, text.text))?;
        }
        let attributes = member(inner, "#attributes").filter(|a| a.text.starts_with('{'));
        if let Some(attributes) = attributes {
            for (attribute, v) in object(attributes)? {
                out.push(Cow::Owned(format!("{name}_{attribute}")), v.text, None)?;
            }
        }
        unread_are_shallow(inner, |k, _| k == "#text")?;
    }
    if member(event, "UserData").is_some_and(|d| d.text != "null") {
        return None;
    }
    if let Some(data) = member(event, "EventData").filter(|d| d.text != "null") {
        let data = object(data)?;
        for (key, value) in data {
            if key == "Data" {
                return None;
            }
            if key == "#attributes" {
                continue;
            }
            let name = match key.contains(' ') {
                true => Cow::Owned(key.replace(' ', "")),
                false => Cow::Borrowed(key.as_ref()),
            };
            // Two names for one field once spaces are stripped: the tree's.
            if name != *key && data.iter().any(|(k, _)| *k == name) {
                return None;
            }
            let text = match value.text.starts_with('{') {
                true => {
                    let inner = object(value)?;
                    let text = member(inner, "#text");
                    unread_are_shallow(inner, |k, _| text.is_some() && k == "#text")?;
                    text.unwrap_or(value).text
                }
                false => value.text,
            };
            // Data fields must not replace System ones (see `flatten`).
            match out.contains(&name) {
                true => out.push(Cow::Owned(format!("EventData_{name}")), text, None)?,
                false => out.push(name, text, None)?,
            }
        }
        unread_are_shallow(data, |k, _| k != "#attributes")?;
    }
    unread_are_shallow(event, |k, _| k == "System" || k == "EventData")?;
    for (key, value) in top {
        if key == "Event" {
            continue;
        }
        match out.contains(key) {
            true => json::is_shallow(value.text).then_some(())?,
            false => out.push(key.clone(), value.text, None)?,
        }
    }
    Some(out.finish())
}

/// The members of an object the split of a validated line descended into
/// ([`json::members_of_validated`]), when no key is there twice; None for
/// any other value.
fn object<'b, 'a>(value: &'b Found<'a>) -> Option<&'b FoundMembers<'a>> {
    once_each(value.members.as_ref()?)
}

/// The members when no key is there twice (a tree keeps the last of two;
/// the lazy flattening leaves such objects to it).
fn once_each<'b, 'a>(members: &'b FoundMembers<'a>) -> Option<&'b FoundMembers<'a>> {
    let twice = members
        .iter()
        .enumerate()
        .any(|(i, (k, _))| members.iter().take(i).any(|(other, _)| other == k));
    (!twice).then_some(members)
}

/// The value of member `key`.
fn member<'b, 'a>(members: &'b FoundMembers<'a>, key: &str) -> Option<&'b Found<'a>> {
    members.iter().find(|(k, _)| k == key).map(|(_, v)| v)
}

/// Some when every member `read` does not take is shallow (see
/// [`json::is_shallow`]): a tree parse would refuse the line for a deep one.
fn unread_are_shallow(
    members: &FoundMembers<'_>,
    read: impl Fn(&str, &Found<'_>) -> bool,
) -> Option<()> {
    members
        .iter()
        .all(|(k, v)| read(k, v) || json::is_shallow(v.text))
        .then_some(())
}

/// An `EventID` given as a numeric string, as the number
/// [`normalize_scalar`] makes of it.
fn event_id_number(name: &str, raw: &str) -> Option<Value> {
    let text: String = (name == "EventID")
        .then(|| serde_json::from_str(raw).ok())
        .flatten()?;
    numeric_event_id(name, &text)
}

/// The number a numeric `EventID` string stands for.
fn numeric_event_id(name: &str, text: &str) -> Option<Value> {
    (name == "EventID")
        .then(|| text.trim().parse::<u64>().ok())
        .flatten()
        .map(Value::from)
}

/// `EventID` and friends may be strings; Sigma compares them as numbers or text,
/// so a numeric string becomes a number to keep one canonical form.
fn normalize_scalar(name: &str, v: Value) -> Value {
    v.as_str()
        .and_then(|s| numeric_event_id(name, s))
        .unwrap_or(v)
}

fn flatten_data(section: &str, data: Value, out: &mut Map<String, Value>) {
    let Value::Object(map) = data else {
        if !data.is_null() {
            out.insert(section.to_string(), data);
        }
        return;
    };
    for (key, value) in map {
        if key == "#attributes" {
            continue;
        }
        if key == "Data" {
            flatten_data_elements(value, out);
            continue;
        }
        match (section, value) {
            // UserData holds one element whose children are the fields.
            ("UserData", Value::Object(inner)) => {
                for (k, v) in inner {
                    if k != "#attributes" {
                        out.insert(sigma_name(&k), text_of(v));
                    }
                }
            }
            (_, value) => {
                out.insert(sigma_name(&key), text_of(value));
            }
        }
    }
}

/// Sigma field names are the log's names with spaces stripped
/// (`Source Name` -> `SourceName`, as Windows Defender events need).
fn sigma_name(name: &str) -> String {
    if name.contains(' ') {
        name.replace(' ', "")
    } else {
        name.to_string()
    }
}

/// `<Data Name="x">v</Data>` elements, or unnamed `<Data>` text.
fn flatten_data_elements(value: Value, out: &mut Map<String, Value>) {
    let items = match value {
        Value::Array(items) => items,
        other => vec![other],
    };
    let mut unnamed = Vec::new();
    for item in items {
        let name = item
            .get("#attributes")
            .and_then(|a| a.get("Name"))
            .and_then(Value::as_str)
            .map(sigma_name);
        match name {
            Some(name) => {
                out.insert(name, text_of(item));
            }
            None => unnamed.push(text_of(item)),
        }
    }
    match unnamed.len() {
        0 => {}
        1 => {
            out.insert("Data".into(), unnamed.remove(0));
        }
        _ => {
            out.insert("Data".into(), Value::Array(unnamed));
        }
    }
}

fn text_of(v: Value) -> Value {
    match v {
        Value::Object(mut inner) if inner.contains_key("#text") => {
            inner.shift_remove("#text").unwrap_or(Value::Null)
        }
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// [`flatten_lazy`] of a line, validated as the parser validates it.
    fn evtx_lazy(line: &str) -> Option<Fields> {
        flatten_lazy(json::validated(line)?)
    }

    /// [`flatten_winlogbeat_lazy`] of a line, validated as the parser validates it.
    fn winlogbeat_lazy(line: &str) -> Option<Fields> {
        flatten_winlogbeat_lazy(json::validated(line)?)
    }
    use serde_json::json;

    /// The tree flattening of `v`; the lazy one must give the same fields
    /// when it takes the event.
    fn flat(v: Value) -> Value {
        let tree = flatten(v.as_object().unwrap().clone()).unwrap();
        let line = v.to_string();
        if let Some(lazy) = evtx_lazy(&line) {
            assert_eq!(lazy, Fields::from(tree.clone()), "{line}");
        }
        Value::Object(tree)
    }

    fn lazy_is_tree(line: &str) -> bool {
        let tree = flatten(crate::event::json::parse_object(line).unwrap()).unwrap();
        match evtx_lazy(line) {
            Some(lazy) => {
                assert_eq!(lazy, Fields::from(tree), "{line}");
                true
            }
            None => false,
        }
    }

    #[test]
    fn the_lazy_flattening_gives_the_trees_fields_or_leaves_the_event_to_it() {
        let taken = [
            r##"{"Event": {"#attributes": {"xmlns": "x"}, "System": {"Provider": {"#attributes": {"Name": "P", "Guid": "{1}"}}, "EventID": "4688", "Channel": "Security", "Correlation": null, "TimeCreated": {"#attributes": {"SystemTime": "2025-01-01T00:00:00Z"}}, "Level": {"#text": 4, "#attributes": {"x": 1}}}, "EventData": {"Image": "C:\\x.exe", "Source Name": "s", "Channel": "clash", "Wrapped": {"#text": "w", "#attributes": {"a": 1}}, "Obj": {"a": [1]}, "#attributes": {"b": 2}}}, "_meta": {"k": 1}, "Channel": "top loses"}"##,
            r##"{"Event": {"System": {"EventID": {"#attributes": {"Qualifiers": 0}, "#text": 7045}}, "EventData": null, "UserData": null}}"##,
            r##"{"Event": {"System": {}}}"##,
        ];
        for line in taken {
            assert!(lazy_is_tree(line), "{line}");
        }
        let left_to_the_tree = [
            r##"{"Event": {"System": {"EventID": 1}, "UserData": {"LogFileCleared": {"Channel": "x"}}}}"##,
            r##"{"Event": {"System": {"EventID": 1}, "EventData": {"Data": [{"#attributes": {"Name": "a"}, "#text": "1"}]}}}"##,
            r##"{"Event": {"System": {"EventID": 1}, "EventData": "text"}}"##,
            r##"{"Event": {"System": {"EventID": 1}, "EventData": {"A B": 1, "AB": 2}}}"##,
            r##"{"Event": {"System": {"EventID": 1, "EventID": 2}}}"##,
            r##"{"Event": {"System": {}}, "Event": {"System": {"EventID": 2}}}"##,
            r##"{"Event": {"System": {"Level": {"#text": 1, "#text": 2}}}}"##,
        ];
        for line in left_to_the_tree {
            assert!(!lazy_is_tree(line), "{line}");
        }
        let deep = format!(
            r##"{{"Event": {{"System": {{}}, "#attributes": {{"a": {}1{}}}}}}}"##,
            "[".repeat(200),
            "]".repeat(200)
        );
        assert!(evtx_lazy(&deep).is_none(), "a tree parse refuses it");
    }

    use proptest::prelude::*;

    /// Values as Windows events hold them, `#text`/`#attributes` wrappers
    /// and awkward names included.
    fn windows_value() -> impl Strategy<Value = Value> {
        let name = prop::sample::select(vec![
            "EventID",
            "Channel",
            "#text",
            "#attributes",
            "Data",
            "A B",
            "AB",
            "x",
            "event_id",
            "channel",
            "log_name",
            "event_data",
            "user_data",
            "Name",
        ]);
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<u16>().prop_map(Value::from),
            "[0-9 a-z\\\\\"]{0,6}".prop_map(Value::from),
        ];
        leaf.prop_recursive(4, 32, 5, move |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..3).prop_map(Value::from),
                prop::collection::vec((name.clone(), inner), 0..5).prop_map(|members| {
                    Value::Object(
                        members
                            .into_iter()
                            .map(|(k, v)| (k.to_string(), v))
                            .collect(),
                    )
                }),
            ]
        })
    }

    proptest! {
        #[test]
        fn any_windows_shaped_event_flattens_lazily_as_from_a_tree_or_is_left_to_it(
            system in windows_value(),
            data in windows_value(),
            meta in windows_value(),
            winlogbeat in any::<bool>(),
        ) {
            let event = match winlogbeat {
                false => json!({"Event": {"System": system, "EventData": data}, "_meta": meta}),
                true => json!({"winlog": {"channel": "c", "event_id": system, "event_data": data}, "event_data": meta}),
            };
            let line = event.to_string();
            let object = event.as_object().unwrap().clone();
            if is_evtx_shape(&object) {
                if let Some(lazy) = evtx_lazy(&line) {
                    prop_assert_eq!(lazy, Fields::from(flatten(object).unwrap()));
                }
            } else if is_winlogbeat_shape(&object) {
                if let Some(lazy) = winlogbeat_lazy(&line) {
                    prop_assert_eq!(lazy, Fields::from(flatten_winlogbeat(object)));
                }
            }
        }
    }

    #[test]
    fn mordors_winlogbeat_events_flatten_lazily_as_from_a_tree() {
        use std::io::BufRead;
        let path = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../shared/datasets/mordor_windows.jsonl.gz"
        );
        let Ok(file) = std::fs::File::open(path) else {
            eprintln!("SKIPPED: needs ../shared (the Mordor events)");
            return;
        };
        let lines = std::io::BufReader::new(flate2::read::GzDecoder::new(file)).lines();
        let mut winlogbeat = 0;
        for line in lines.take(20_000).map_while(Result::ok) {
            let object = crate::event::json::parse_object(&line).unwrap();
            if !is_winlogbeat_shape(&object) {
                continue;
            }
            winlogbeat += 1;
            let lazy = winlogbeat_lazy(&line).expect("the lazy form");
            assert_eq!(lazy, Fields::from(flatten_winlogbeat(object)), "{line}");
        }
        assert!(
            winlogbeat > 1000,
            "{winlogbeat} Winlogbeat events in the first 20,000"
        );
    }

    #[test]
    fn the_sigma_regression_events_flatten_lazily_as_from_a_tree() {
        let path = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../shared/sigma/regression_events.jsonl"
        );
        let Ok(text) = std::fs::read_to_string(path) else {
            eprintln!("SKIPPED: needs ../shared (the SigmaHQ regression events)");
            return;
        };
        let lines: Vec<&str> = text.lines().collect();
        let taken = lines.iter().filter(|l| lazy_is_tree(l)).count();
        assert!(
            taken * 10 >= lines.len() * 9,
            "{taken} of {} taken lazily",
            lines.len()
        );
    }

    #[test]
    fn system_elements_and_attributes_get_sigma_names() {
        let f = flat(json!({"Event": {"System": {
            "Provider": {"#attributes": {"Name": "Microsoft-Windows-Sysmon", "Guid": "{5770}"}},
            "EventID": 1, "Channel": "Microsoft-Windows-Sysmon/Operational", "Computer": "ws1",
            "TimeCreated": {"#attributes": {"SystemTime": "2025-12-06T21:11:02.6491508Z"}},
            "Execution": {"#attributes": {"ProcessID": 3904}}, "Correlation": null},
            "EventData": {"Image": "C:\\x.exe", "ProcessId": 3412}}}));
        assert_eq!(f["Provider_Name"], "Microsoft-Windows-Sysmon");
        assert_eq!(f["Channel"], "Microsoft-Windows-Sysmon/Operational");
        assert_eq!(f["EventID"], 1);
        assert_eq!(f["TimeCreated_SystemTime"], "2025-12-06T21:11:02.6491508Z");
        assert_eq!(f["Execution_ProcessID"], 3904);
        assert_eq!(f["Image"], "C:\\x.exe");
        assert!(f.get("Correlation").is_none());
    }

    #[test]
    fn spaces_are_stripped_from_data_field_names() {
        let f = flat(
            json!({"Event": {"System": {"EventID": 1116}, "EventData": {"Source Name": "Real-Time Protection"}}}),
        );
        assert_eq!(f["SourceName"], "Real-Time Protection");
    }

    #[test]
    fn event_id_is_a_number_whatever_its_json_shape() {
        for id in [
            json!(7045),
            json!("7045"),
            json!({"#attributes": {"Qualifiers": 16384}, "#text": 7045}),
            json!({"#text": "7045"}),
        ] {
            let f = flat(json!({"Event": {"System": {"EventID": id, "Channel": "System"}}}));
            assert_eq!(f["EventID"], 7045, "{f}");
        }
    }

    #[test]
    fn user_data_children_and_unnamed_data_are_flattened() {
        let f = flat(
            json!({"Event": {"System": {"EventID": 1102, "Channel": "Security"},
            "UserData": {"LogFileCleared": {"#attributes": {"xmlns": "x"}, "SubjectUserName": "bob"}}}}),
        );
        assert_eq!(f["SubjectUserName"], "bob");
        let f = flat(
            json!({"Event": {"System": {"EventID": 104, "Channel": "System"},
            "UserData": {"LogFileCleared": {"SubjectUserName": "bob", "Channel": "Application"}}}}),
        );
        assert_eq!(f["Channel"], "System", "System fields win");
        assert_eq!(f["UserData_Channel"], "Application");
        let f = flat(
            json!({"Event": {"System": {"EventID": 1}, "EventData": {"Data": {"#text": "free text"}}}}),
        );
        assert_eq!(f["Data"], "free text");
        let f = flat(
            json!({"Event": {"System": {"EventID": 1}, "EventData": {"Data": [
            {"#attributes": {"Name": "User"}, "#text": "alice"}, {"#attributes": {"Name": "Pid"}, "#text": "4"}]}}}),
        );
        assert_eq!(f["User"], "alice");
    }

    /// A winlogbeat event, recognised and flattened to Sigma names.
    /// The tree flattening of a Winlogbeat event; the lazy one must give
    /// the same fields.
    fn flattened(event: &Value) -> Value {
        let fields = event.as_object().expect("an object");
        assert!(is_winlogbeat_shape(fields), "{event}");
        let tree = flatten_winlogbeat(fields.clone());
        let lazy = winlogbeat_lazy(&event.to_string()).expect("the lazy form");
        assert_eq!(lazy, Fields::from(tree.clone()), "{event}");
        Value::Object(tree)
    }

    #[test]
    fn the_lazy_winlogbeat_flattening_gives_the_trees_fields_or_leaves_the_event_to_it() {
        for line in [
            r#"{"winlog": "not an object", "log_name": "Security", "event_id": "4624", "event_data": {"A": 1, "Channel": "data loses"}, "user_data": [1]}"#,
            r#"{"winlog": {"channel": "Security", "event_id": 4624, "api": {"x": [1]}, "event_data": null, "user_data": {"U": "u"}}, "event_data": {"ignored": 1}, "message": "m"}"#,
        ] {
            let tree = flatten_winlogbeat(crate::event::json::parse_object(line).unwrap());
            let lazy = winlogbeat_lazy(line).expect("the lazy form");
            assert_eq!(lazy, Fields::from(tree), "{line}");
        }
        for line in [
            r#"{"log_name": "Security", "event_id": 1, "winlog": {"api": "wineventlog"}}"#,
            r#"{"log_name": "Security", "event_id": 1, "Event": {"System": {}}}"#,
            r#"{"log_name": "Security", "event_id": 1, "event_id": 2}"#,
            r#"{"log_name": "Security"}"#,
        ] {
            assert!(winlogbeat_lazy(line).is_none(), "{line}");
        }
        let deep = format!(
            r#"{{"winlog": {{"channel": "S", "event_id": 1, "process": {}1{}}}}}"#,
            "[".repeat(200),
            "]".repeat(200)
        );
        assert!(winlogbeat_lazy(&deep).is_none(), "a tree parse refuses it");
    }

    #[test]
    fn winlogbeat_6_and_7_events_get_sigma_names() {
        let six = json!({"log_name": "Microsoft-Windows-PowerShell/Operational", "event_id": 4103,
            "computer_name": "IT001", "source_name": "Microsoft-Windows-PowerShell",
            "event_data": {"Payload": "x"}, "message": "m"});
        let f = flattened(&six);
        assert_eq!(f["Channel"], "Microsoft-Windows-PowerShell/Operational");
        assert_eq!(f["EventID"], 4103);
        assert_eq!(f["Computer"], "IT001");
        assert_eq!(f["Provider_Name"], "Microsoft-Windows-PowerShell");
        assert_eq!(f["Payload"], "x");
        assert_eq!(f["message"], "m");
        let order: Vec<&str> = f.as_object().unwrap().keys().map(String::as_str).collect();
        assert_eq!(
            order,
            [
                "Channel",
                "EventID",
                "Computer",
                "Provider_Name",
                "Payload",
                "log_name",
                "event_id",
                "computer_name",
                "source_name",
                "message"
            ],
            "Sigma names first, then the data, then the event's own keys in order"
        );
        let seven = json!({"winlog": {"channel": "Security", "event_id": "4688", "event_data": {"NewProcessName": "C:\\x.exe"}}, "@timestamp": "t"});
        let f = flattened(&seven);
        assert_eq!(f["Channel"], "Security");
        assert_eq!(f["EventID"], 4688);
        assert_eq!(f["NewProcessName"], "C:\\x.exe");
        assert_eq!(f["@timestamp"], "t");
        assert!(!is_winlogbeat_shape(
            json!({"event_id": 1}).as_object().unwrap()
        ));
    }

    #[test]
    fn the_shape_is_recognised_only_with_a_system_object() {
        assert!(is_evtx_shape(
            json!({"Event": {"System": {}}}).as_object().unwrap()
        ));
        assert!(!is_evtx_shape(json!({"Event": "x"}).as_object().unwrap()));
        assert!(!is_evtx_shape(json!({"EventID": 1}).as_object().unwrap()));
    }
}
