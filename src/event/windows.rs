//! Windows events in `evtx_dump` JSON shape, mapped to Sigma field names.
//!
//! `{"Event": {"System": {...}, "EventData": {...}}}` becomes a flat object:
//! System elements by name (`Channel`, `Computer`, `EventID`), System
//! attributes as `Element_Attribute` (`Provider_Name`, `TimeCreated_SystemTime`),
//! and every EventData/UserData field at top level, as the Sigma
//! specification names Windows fields.

use serde_json::{Map, Value};

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

/// `EventID` and friends may be strings; Sigma compares them as numbers or text,
/// so a numeric string becomes a number to keep one canonical form.
fn normalize_scalar(name: &str, v: Value) -> Value {
    if name == "EventID" {
        if let Some(s) = v.as_str() {
            if let Ok(n) = s.trim().parse::<u64>() {
                return Value::from(n);
            }
        }
    }
    v
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
    use serde_json::json;

    fn flat(v: Value) -> Value {
        Value::Object(flatten(v.as_object().unwrap().clone()).unwrap())
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
    fn flattened(event: &Value) -> Value {
        let fields = event.as_object().expect("an object");
        assert!(is_winlogbeat_shape(fields), "{event}");
        Value::Object(flatten_winlogbeat(fields.clone()))
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
