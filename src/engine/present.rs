//! How model values read on screen and in plain-text output: TTLs, idle times, a decoded value
//! as an indented outline, a history entry as an exchange. Shared by the headless commands and
//! the dashboard so both say the same thing the same way.
//!
//! Every string returned here is terminal-safe (see [`crate::util::text`]).

use crate::decode::Value;
use crate::engine::domain::{Millis, Ttl};
use crate::util::text;

/// `23h56m`, `no TTL`, or `—` when unknown.
pub fn ttl_text(ttl: Ttl, now: Millis) -> String {
    match ttl {
        Ttl::Persistent => "no TTL".into(),
        Ttl::Unknown => "—".into(),
        Ttl::ExpiresAt(_) => ttl.seconds_left(now).map_or_else(|| "—".into(), text::human_duration),
    }
}

/// `3m12s`, or `—` when unknown.
pub fn idle_text(idle_seconds: Option<i64>) -> String {
    idle_seconds.map_or_else(|| "—".into(), text::human_duration)
}

/// An optional field, escaped, or `—`.
pub fn or_dash(value: Option<&str>) -> String {
    value.map_or_else(|| "—".into(), text::escape_str)
}

/// One line of a value's outline.
#[derive(Debug, Clone, PartialEq)]
pub struct OutlineLine {
    pub depth: usize,
    /// The key or index this line is under, escaped.
    pub label: Option<String>,
    /// The value inline for a leaf; a short summary (`{3}`, `[12]`, `<module.Class>`) for a container.
    pub text: String,
    /// Number of lines below this one that belong to it (0 for a leaf).
    pub descendants: usize,
}

/// The deepest level an outline goes to; deeper values are shown inline.
const OUTLINE_MAX_DEPTH: usize = 12;
/// Characters of a leaf shown before it is cut (with its size).
const LEAF_MAX_CHARS: usize = 240;
/// Children of one container an outline lists; the rest are counted on one line.
pub const OUTLINE_MAX_CHILDREN: usize = 200;
/// Lines an outline holds in all; a value that needs more ends with a line saying so. The
/// inspector and `inspect` show what fits here, so a huge payload costs a bounded tree.
pub const OUTLINE_MAX_LINES: usize = 5000;

/// Flattens a value into indented lines, containers before their children, at most
/// [`OUTLINE_MAX_CHILDREN`] children per container and [`OUTLINE_MAX_LINES`] lines in all.
pub fn outline(value: &Value) -> Vec<OutlineLine> {
    let mut lines = Vec::new();
    push_outline(&mut lines, None, value, 0);
    if lines.len() >= OUTLINE_MAX_LINES {
        lines.push(OutlineLine {
            depth: 0,
            label: None,
            text: format!("… cut at {} lines", text::grouped(OUTLINE_MAX_LINES as u64)),
            descendants: 0,
        });
    }
    lines
}

fn push_outline(lines: &mut Vec<OutlineLine>, label: Option<String>, value: &Value, depth: usize) {
    if lines.len() >= OUTLINE_MAX_LINES {
        return;
    }
    if !value.is_container() || value.is_empty() || depth >= OUTLINE_MAX_DEPTH {
        lines.push(OutlineLine { depth, label, text: leaf_text(value), descendants: 0 });
        return;
    }
    let at = lines.len();
    lines.push(OutlineLine { depth, label, text: container_summary(value), descendants: 0 });
    let more = |lines: &mut Vec<OutlineLine>, shown: usize, total: usize| {
        if total > shown && lines.len() < OUTLINE_MAX_LINES {
            let text = format!("… {} more", text::grouped((total - shown) as u64));
            lines.push(OutlineLine { depth: depth + 1, label: None, text, descendants: 0 });
        }
    };
    match value {
        Value::Map(entries) => {
            for (k, v) in entries.iter().take(OUTLINE_MAX_CHILDREN) {
                let key = match k {
                    Value::Str(s) => text::clip_sized(&text::escape_str(s), 60).into_owned(),
                    other => other.inline(60),
                };
                push_outline(lines, Some(key), v, depth + 1);
            }
            more(lines, OUTLINE_MAX_CHILDREN, entries.len());
        }
        Value::List(items) | Value::Tuple(items) | Value::Set(items) => {
            for (i, v) in items.iter().enumerate().take(OUTLINE_MAX_CHILDREN) {
                push_outline(lines, Some(i.to_string()), v, depth + 1);
            }
            more(lines, OUTLINE_MAX_CHILDREN, items.len());
        }
        Value::Object { args, state, .. } => {
            for (i, a) in args.iter().enumerate().take(OUTLINE_MAX_CHILDREN) {
                push_outline(lines, Some(format!("arg {i}")), a, depth + 1);
            }
            more(lines, OUTLINE_MAX_CHILDREN, args.len());
            if let Some(state) = state {
                push_outline(lines, Some("state".into()), state, depth + 1);
            }
        }
        _ => {}
    }
    lines[at].descendants = lines.len() - at - 1;
}

/// Whether an outline of `value` is shown without its first line, under a line that already
/// names the container (a key's line): maps, lists, tuples and sets. An object is never
/// skipped: its `<module.Class …>` line is what says what it is.
pub fn skips_root(value: &Value) -> bool {
    matches!(value, Value::Map(_) | Value::List(_) | Value::Tuple(_) | Value::Set(_)) && !value.is_empty()
}

/// A leaf inline; a long string is cut with its size.
fn leaf_text(value: &Value) -> String {
    match value {
        Value::Str(s) if s.len() > LEAF_MAX_CHARS => {
            format!("\"{}\"", text::clip_sized(&text::escape_str(s), LEAF_MAX_CHARS))
        }
        Value::Bytes(b) if b.len() > LEAF_MAX_CHARS => format!(
            "b\"{}\" ({})",
            text::clip(&text::escape_bytes(&b[..LEAF_MAX_CHARS.min(b.len())]), LEAF_MAX_CHARS),
            text::human_bytes(b.len() as u64)
        ),
        other => other.inline(LEAF_MAX_CHARS),
    }
}

fn container_summary(value: &Value) -> String {
    match value {
        Value::Map(m) => format!("{{{}}}", m.len()),
        Value::List(v) => format!("[{}]", v.len()),
        Value::Tuple(v) => format!("({})", v.len()),
        Value::Set(v) => format!("set {{{}}}", v.len()),
        Value::Object { class, .. } => format!("<{}>", text::escape_str(class)),
        other => other.inline(LEAF_MAX_CHARS),
    }
}

/// A history entry read as a conversation turn. Fields are found by the names chat
/// applications use; whatever else the entry holds stays in `other`.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Exchange {
    pub when: Option<String>,
    pub client: Option<String>,
    pub reply: Option<String>,
    pub decision: Option<String>,
    pub substate: Option<String>,
    /// Other fields, inline.
    pub other: Vec<(String, String)>,
}

/// Characters of one field of a history entry shown (a reply is a paragraph, not a novel).
const EXCHANGE_MAX_CHARS: usize = 2000;

const CLIENT_KEYS: [&str; 4] = ["client_input", "user_input", "input", "message"];
const REPLY_KEYS: [&str; 4] = ["therapist_response", "response", "reply", "assistant"];
const DECISION_KEYS: [&str; 2] = ["navigation_decision", "decision"];
const TIME_KEYS: [&str; 3] = ["timestamp", "time", "at"];
const SUBSTATE_KEYS: [&str; 2] = ["current_substate", "substate"];

impl Exchange {
    /// Reads an entry; an entry that is not a map becomes `other` as a whole.
    pub fn from_value(value: &Value) -> Exchange {
        let Value::Map(entries) = value else {
            return Exchange { other: vec![(String::new(), value.inline(LEAF_MAX_CHARS))], ..Default::default() };
        };
        let mut exchange = Exchange::default();
        for (k, v) in entries {
            let key = match k {
                Value::Str(s) => s.as_str(),
                _ => "",
            };
            let text = match v {
                Value::Str(s) => text::clip_sized(&text::escape_str(s), EXCHANGE_MAX_CHARS).into_owned(),
                other => other.inline(LEAF_MAX_CHARS),
            };
            let slot = if CLIENT_KEYS.contains(&key) {
                &mut exchange.client
            } else if REPLY_KEYS.contains(&key) {
                &mut exchange.reply
            } else if DECISION_KEYS.contains(&key) {
                &mut exchange.decision
            } else if TIME_KEYS.contains(&key) {
                &mut exchange.when
            } else if SUBSTATE_KEYS.contains(&key) {
                &mut exchange.substate
            } else {
                exchange.other.push((text::escape_str(key), text));
                continue;
            };
            if slot.is_none() {
                *slot = Some(text);
            } else {
                exchange.other.push((text::escape_str(key), text));
            }
        }
        exchange
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(v: &str) -> Value {
        Value::Str(v.into())
    }

    #[test]
    fn outline_nests_and_counts_descendants() {
        let v = Value::Map(vec![
            (s("a"), Value::Int(1)),
            (s("b"), Value::List(vec![Value::Int(2), Value::Map(vec![(s("c"), Value::Bool(true))])])),
        ]);
        let lines = outline(&v);
        let shown: Vec<(usize, Option<&str>, &str, usize)> =
            lines.iter().map(|l| (l.depth, l.label.as_deref(), l.text.as_str(), l.descendants)).collect();
        assert_eq!(
            shown,
            vec![
                (0, None, "{2}", 5),
                (1, Some("a"), "1", 0),
                (1, Some("b"), "[2]", 3),
                (2, Some("0"), "2", 0),
                (2, Some("1"), "{1}", 1),
                (3, Some("c"), "true", 0),
            ]
        );
    }

    #[test]
    fn outlines_are_bounded_and_say_what_they_left_out() {
        let huge = Value::List((0..500_000).map(Value::Int).collect());
        let lines = outline(&huge);
        assert_eq!(lines.len(), 1 + OUTLINE_MAX_CHILDREN + 1);
        assert_eq!(lines.last().unwrap().text, "… 499,800 more");
        let wide = Value::List((0..400).map(|_| Value::List((0..400).map(Value::Int).collect())).collect());
        let lines = outline(&wide);
        assert!(lines.len() <= OUTLINE_MAX_LINES + 1, "{}", lines.len());
        assert_eq!(lines.last().unwrap().text, "… cut at 5,000 lines");
        let long = outline(&Value::Str("y".repeat(70_000)));
        assert!(long[0].text.ends_with("(70,000 chars)\""), "{}", long[0].text);
    }

    #[test]
    fn history_entries_read_as_exchanges() {
        let entry = crate::decode::decode_text(
            br#"{"client_input": "I feel it in my chest", "therapist_response": "Where in your chest?",
                "navigation_decision": "body_location", "current_substate": "1.2_problem_and_body",
                "timestamp": "2025-10-17T16:49:03.004211", "rag_query": "dr_q_location"}"#,
        );
        let e = Exchange::from_value(&entry);
        assert_eq!(e.client.as_deref(), Some("I feel it in my chest"));
        assert_eq!(e.reply.as_deref(), Some("Where in your chest?"));
        assert_eq!(e.decision.as_deref(), Some("body_location"));
        assert_eq!(e.when.as_deref(), Some("2025-10-17T16:49:03.004211"));
        assert_eq!(e.other, vec![("rag_query".to_string(), "dr_q_location".to_string())]);
    }

    #[test]
    fn hostile_text_is_escaped() {
        let e = Exchange::from_value(&Value::Map(vec![(s("client_input"), s("\u{1b}[2Jhi"))]));
        assert_eq!(e.client.as_deref(), Some("\\x1b[2Jhi"));
        assert_eq!(or_dash(Some("a\u{7}")), "a\\x07");
        assert_eq!(ttl_text(Ttl::Persistent, 0), "no TTL");
    }
}
