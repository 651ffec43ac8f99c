//! The decoded form of a payload: one tree that JSON, msgpack and pickle all decode into.
//!
//! It keeps what the source said (tuples stay tuples, bytes stay bytes, a pickled class keeps its
//! name) so that the inspector shows what the application stored, not a guess. It never holds
//! anything executable: a class is a name and its arguments, nothing more.

use std::fmt::Write as _;

use crate::util::text;

/// A decoded value.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Null,
    Bool(bool),
    Int(i64),
    /// An integer outside `i64`, as decimal digits (pickle `LONG`, msgpack `uint64` above `i64::MAX`).
    BigInt(String),
    Float(f64),
    Str(String),
    Bytes(Vec<u8>),
    List(Vec<Value>),
    Tuple(Vec<Value>),
    /// A Python `set` or `frozenset`.
    Set(Vec<Value>),
    /// A mapping in source order; keys need not be strings.
    Map(Vec<(Value, Value)>),
    /// ISO 8601 text, with its offset when the source was aware (`2024-05-17T12:34:56.789000+00:00`);
    /// a `ZoneInfo` zone's name follows its offset in brackets, as RFC 9557 writes it
    /// (`…+02:00[Europe/Berlin]`).
    DateTime(String),
    /// ISO 8601 date, `2024-05-17`.
    Date(String),
    /// ISO 8601 time of day, `12:34:56.789000`.
    Time(String),
    /// A Python `timedelta`, normalised as Python does: `0 <= seconds < 86400`, `0 <= micros < 10^6`.
    TimeDelta {
        days: i64,
        seconds: i64,
        micros: i64,
    },
    /// A `decimal.Decimal`, as the digits Python would print.
    Decimal(String),
    /// A `uuid.UUID`, canonical lowercase hyphenated form.
    Uuid(String),
    /// An instance of a class sessiontop does not interpret: its dotted name, the arguments it was
    /// built from and the state it was given. Shown as `<module.Class …>`, never run.
    Object {
        class: String,
        args: Vec<Value>,
        state: Option<Box<Value>>,
    },
    /// A msgpack extension type other than the timestamp (-1).
    Ext {
        type_id: i8,
        data: Vec<u8>,
    },
}

impl Value {
    /// The value under `key` when `self` is a map with string keys.
    pub fn get(&self, key: &str) -> Option<&Value> {
        match self {
            Value::Map(entries) => entries.iter().find_map(|(k, v)| match k {
                Value::Str(s) if s == key => Some(v),
                _ => None,
            }),
            _ => None,
        }
    }

    /// Follows a dotted path (`a.b.c`) through maps with string keys.
    pub fn get_path(&self, path: &str) -> Option<&Value> {
        path.split('.').try_fold(self, |v, part| v.get(part))
    }

    /// The value as a short scalar text, for fields such as a stage: strings as they are,
    /// numbers and booleans printed, `None` for null and for containers.
    pub fn as_scalar_text(&self) -> Option<String> {
        match self {
            Value::Str(s) => Some(s.clone()),
            Value::Bool(b) => Some(if *b { "true" } else { "false" }.to_string()),
            Value::Int(i) => Some(i.to_string()),
            Value::BigInt(s) | Value::Decimal(s) | Value::Uuid(s) => Some(s.clone()),
            Value::Float(f) => Some(f.to_string()),
            Value::DateTime(s) | Value::Date(s) | Value::Time(s) => Some(s.clone()),
            Value::Bytes(b) => Some(text::escape_bytes(b)),
            _ => None,
        }
    }

    /// A map's entries with their keys as text (keys that are not scalars read `?`).
    pub fn entries(&self) -> Option<impl Iterator<Item = (String, &Value)>> {
        match self {
            Value::Map(m) => Some(m.iter().map(|(k, v)| (k.as_scalar_text().unwrap_or_else(|| "?".into()), v))),
            _ => None,
        }
    }

    /// About how many bytes the value takes written out (as JSON would take it), for saying
    /// which fields make a payload large. Walks the tree without recursion.
    pub fn approx_size(&self) -> usize {
        let mut total = 0usize;
        let mut stack = vec![self];
        while let Some(v) = stack.pop() {
            total = total.saturating_add(match v {
                Value::Null | Value::Bool(_) => 4,
                Value::Int(_) | Value::Float(_) => 8,
                Value::Str(s) | Value::BigInt(s) | Value::Decimal(s) | Value::Uuid(s) => s.len() + 2,
                Value::DateTime(s) | Value::Date(s) | Value::Time(s) => s.len() + 2,
                Value::Bytes(b) | Value::Ext { data: b, .. } => b.len(),
                Value::TimeDelta { .. } => 16,
                Value::List(items) | Value::Tuple(items) | Value::Set(items) => {
                    stack.extend(items);
                    2 + items.len()
                }
                Value::Map(entries) => {
                    stack.extend(entries.iter().flat_map(|(k, v)| [k, v]));
                    2 + 2 * entries.len()
                }
                Value::Object { class, args, state } => {
                    stack.extend(args);
                    stack.extend(state.as_deref());
                    class.len() + 2
                }
            });
        }
        total
    }

    /// Whether the value is a container that the inspector shows as a foldable node.
    pub fn is_container(&self) -> bool {
        matches!(self, Value::List(_) | Value::Tuple(_) | Value::Set(_) | Value::Map(_) | Value::Object { .. })
    }

    /// Number of direct children, for fold labels such as `{11}`.
    pub fn len(&self) -> usize {
        match self {
            Value::List(v) | Value::Tuple(v) | Value::Set(v) => v.len(),
            Value::Map(m) => m.len(),
            Value::Object { args, state, .. } => args.len() + usize::from(state.is_some()),
            _ => 0,
        }
    }

    /// Whether a container has no children.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// A JSON rendering for `--json` output. Types JSON lacks keep their meaning in the text:
    /// bytes become `{"$bytes": "escaped"}`, an object `{"$class": …, "args": …, "state": …}`,
    /// a big integer its decimal string; tuples and sets become arrays. Map keys that are not
    /// strings are written with their display form.
    pub fn to_json(&self) -> serde_json::Value {
        use serde_json::{Value as J, json};
        match self {
            Value::Null => J::Null,
            Value::Bool(b) => J::Bool(*b),
            Value::Int(i) => json!(i),
            Value::BigInt(s) | Value::Decimal(s) | Value::Uuid(s) => J::String(s.clone()),
            Value::Float(f) => {
                serde_json::Number::from_f64(*f).map(J::Number).unwrap_or_else(|| J::String(f.to_string()))
            }
            Value::Str(s) => J::String(s.clone()),
            Value::Bytes(b) => json!({ "$bytes": text::escape_bytes(b) }),
            Value::List(v) | Value::Tuple(v) | Value::Set(v) => J::Array(v.iter().map(Value::to_json).collect()),
            Value::Map(m) => J::Object(
                m.iter()
                    .map(|(k, v)| {
                        let key = match k {
                            Value::Str(s) => s.clone(),
                            other => other.inline(usize::MAX),
                        };
                        (key, v.to_json())
                    })
                    .collect(),
            ),
            // A zone's name is not part of an RFC 3339 timestamp: a zoned datetime is the
            // timestamp with its offset, and the zone beside it.
            Value::DateTime(s) => match s.strip_suffix(']').and_then(|s| s.split_once('[')) {
                Some((at, zone)) => json!({ "$datetime": at, "zone": zone }),
                None => J::String(s.clone()),
            },
            Value::Date(s) | Value::Time(s) => J::String(s.clone()),
            Value::TimeDelta { .. } => J::String(self.inline(usize::MAX)),
            Value::Object { class, args, state } => json!({
                "$class": class,
                "args": args.iter().map(Value::to_json).collect::<Vec<_>>(),
                "state": state.as_ref().map(|s| s.to_json()),
            }),
            Value::Ext { type_id, data } => {
                json!({ "$ext": type_id, "data": text::escape_bytes(data) })
            }
        }
    }

    /// A one-line, terminal-safe rendering, cut to about `max_chars` characters with `…`.
    pub fn inline(&self, max_chars: usize) -> String {
        let mut out = String::new();
        self.write_inline(&mut out, max_chars);
        if out.chars().count() > max_chars {
            let cut: String = out.chars().take(max_chars.saturating_sub(1)).collect();
            return cut + "…";
        }
        out
    }

    fn write_inline(&self, out: &mut String, budget: usize) {
        // Stop descending once the budget is spent; the caller cuts the text.
        if out.len() > budget {
            return;
        }
        let seq = |out: &mut String, open: &str, items: &[Value], close: &str| {
            out.push_str(open);
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push_str(", ");
                }
                if out.len() > budget {
                    out.push('…');
                    break;
                }
                item.write_inline(out, budget);
            }
            out.push_str(close);
        };
        match self {
            Value::Null => out.push_str("null"),
            Value::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
            Value::Int(i) => {
                let _ = write!(out, "{i}");
            }
            Value::BigInt(s) => out.push_str(s),
            Value::Float(f) => {
                let _ = write!(out, "{f:?}");
            }
            Value::Str(s) => {
                out.push('"');
                out.push_str(&text::escape_str(s));
                out.push('"');
            }
            Value::Bytes(b) => {
                out.push_str("b\"");
                out.push_str(&text::escape_bytes(b));
                out.push('"');
            }
            Value::List(v) => seq(out, "[", v, "]"),
            Value::Tuple(v) => {
                if v.len() == 1 {
                    seq(out, "(", v, ",)")
                } else {
                    seq(out, "(", v, ")")
                }
            }
            Value::Set(v) => seq(out, "{", v, "}"),
            Value::Map(m) => write_map_inline(out, m, budget),
            Value::DateTime(s) | Value::Date(s) | Value::Time(s) => out.push_str(&text::escape_str(s)),
            Value::TimeDelta { days, seconds, micros } => {
                let _ = write!(out, "{}", format_timedelta(*days, *seconds, *micros));
            }
            Value::Decimal(s) => {
                let _ = write!(out, "Decimal('{}')", text::escape_str(s));
            }
            Value::Uuid(s) => {
                let _ = write!(out, "UUID('{}')", text::escape_str(s));
            }
            Value::Object { class, args, state } => write_object_inline(out, class, args, state.as_deref(), budget),
            Value::Ext { type_id, data } => {
                let _ = write!(out, "ext({type_id}, b\"{}\")", text::escape_bytes(data));
            }
        }
    }
}

/// Python's `str(timedelta)`: `1 day, 2:03:04.000005`, `0:01:30`, `-1 day, 23:59:59`.
pub fn format_timedelta(days: i64, seconds: i64, micros: i64) -> String {
    let (h, m, s) = (seconds / 3600, (seconds % 3600) / 60, seconds % 60);
    let mut out = String::new();
    if days != 0 {
        let plural = if days.abs() == 1 { "" } else { "s" };
        let _ = write!(out, "{days} day{plural}, ");
    }
    let _ = write!(out, "{h}:{m:02}:{s:02}");
    if micros != 0 {
        let _ = write!(out, ".{micros:06}");
    }
    out
}

/// A map on one line: `{key: value, …}`, cut once `budget` is spent.
fn write_map_inline(out: &mut String, m: &[(Value, Value)], budget: usize) {
    out.push('{');
    for (i, (k, v)) in m.iter().enumerate() {
        if i > 0 {
            out.push_str(", ");
        }
        if out.len() > budget {
            out.push('…');
            break;
        }
        k.write_inline(out, budget);
        out.push_str(": ");
        v.write_inline(out, budget);
    }
    out.push('}');
}

/// An object of a class sessiontop does not know on one line: `<module.Class args key=value>`.
fn write_object_inline(out: &mut String, class: &str, args: &[Value], state: Option<&Value>, budget: usize) {
    out.push('<');
    out.push_str(&text::escape_str(class));
    for a in args {
        out.push(' ');
        a.write_inline(out, budget);
    }
    match state {
        Some(Value::Map(m)) => {
            for (k, v) in m {
                out.push(' ');
                match k {
                    Value::Str(s) => out.push_str(&text::escape_str(s)),
                    other => other.write_inline(out, budget),
                }
                out.push('=');
                v.write_inline(out, budget);
            }
        }
        Some(other) => {
            out.push(' ');
            other.write_inline(out, budget);
        }
        None => {}
    }
    out.push('>');
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map(entries: Vec<(&str, Value)>) -> Value {
        Value::Map(entries.into_iter().map(|(k, v)| (Value::Str(k.into()), v)).collect())
    }

    #[test]
    fn dotted_paths_follow_string_keyed_maps() {
        let v = map(vec![("a", map(vec![("b", Value::Str("deep".into()))]))]);
        assert_eq!(v.get_path("a.b"), Some(&Value::Str("deep".into())));
        assert_eq!(v.get_path("a.c"), None);
        assert_eq!(v.get_path("x"), None);
    }

    #[test]
    fn timedelta_prints_like_python() {
        assert_eq!(format_timedelta(0, 90, 0), "0:01:30");
        assert_eq!(format_timedelta(1, 3723, 5), "1 day, 1:02:03.000005");
        assert_eq!(format_timedelta(-1, 86399, 0), "-1 day, 23:59:59");
    }

    #[test]
    fn inline_escapes_control_bytes_and_cuts_long_text() {
        let v = Value::Str("\u{1b}[2Jboom".into());
        assert_eq!(v.inline(80), "\"\\x1b[2Jboom\"");
        let long = Value::List((0..100).map(Value::Int).collect());
        let shown = long.inline(20);
        assert_eq!(shown.chars().count(), 20);
        assert!(shown.ends_with('…'));
    }

    #[test]
    fn objects_show_class_and_state() {
        let v = Value::Object {
            class: "__main__.Cart".into(),
            args: vec![],
            state: Some(Box::new(map(vec![("items", Value::List(vec![Value::Int(1), Value::Int(2)]))]))),
        };
        assert_eq!(v.inline(100), "<__main__.Cart items=[1, 2]>");
    }

    #[test]
    fn json_keeps_meaning_of_types_json_lacks() {
        let v = map(vec![
            ("raw", Value::Bytes(vec![0, 1, b'a'])),
            ("tup", Value::Tuple(vec![Value::Int(1), Value::Int(2)])),
            ("big", Value::BigInt("18446744073709551616".into())),
        ]);
        assert_eq!(
            v.to_json(),
            serde_json::json!({"raw": {"$bytes": "\\x00\\x01a"}, "tup": [1, 2], "big": "18446744073709551616"})
        );
    }

    #[test]
    fn a_zoned_datetime_is_an_rfc3339_timestamp_with_its_zone_beside_it() {
        let zoned = Value::DateTime("2025-07-23T10:15:00+01:00[Africa/Lagos]".into());
        let json = zoned.to_json();
        assert_eq!(json, serde_json::json!({"$datetime": "2025-07-23T10:15:00+01:00", "zone": "Africa/Lagos"}));
        let at = chrono::DateTime::parse_from_rfc3339(json["$datetime"].as_str().unwrap()).unwrap();
        assert_eq!(at.to_rfc3339(), "2025-07-23T10:15:00+01:00");
        // On screen the zone stays where RFC 9557 puts it.
        assert_eq!(zoned.inline(80), "2025-07-23T10:15:00+01:00[Africa/Lagos]");
        let aware = Value::DateTime("2024-05-17T12:34:56.789000+00:00".into());
        assert_eq!(aware.to_json(), serde_json::json!("2024-05-17T12:34:56.789000+00:00"));
    }
}
