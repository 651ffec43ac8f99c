//! The inspector's tree: a report's keys and decoded contents as indented, foldable lines.
//! Built once per report (and per fold), not per frame: the update logic keeps the lines and
//! the view draws them. Bounded by [`present::OUTLINE_MAX_LINES`] whatever the payload.

use std::collections::HashSet;

use crate::dashboard::theme::Role;
use crate::engine::domain::{Decodedish, KeyReport, SessionReport};
use crate::engine::present;
use crate::util::text;

/// Characters of one raw value shown before it is cut (with its size stated).
const RAW_MAX_CHARS: usize = 400;

/// One line of the inspector's tree.
#[derive(Debug, Clone, PartialEq)]
pub struct TreeLine {
    pub depth: usize,
    pub label: Option<String>,
    pub text: String,
    /// Identifies the node across refreshes, for folding.
    pub path: String,
    pub foldable: bool,
    pub folded: bool,
    pub role: Role,
}

/// The tree of a report's keys and contents, folded as `folded` says. History is not in it;
/// it has its own pane.
pub fn tree_lines(report: &SessionReport, raw: bool, folded: &HashSet<String>) -> Vec<TreeLine> {
    let mut out = Vec::new();
    for key in report.keys.iter().filter(|k| k.content.is_some() || !k.raw.is_empty()) {
        let path = key.key.escaped();
        let is_folded = folded.contains(&path);
        out.push(TreeLine {
            depth: 0,
            label: Some(text::escape_str(&key.role)),
            text: key_summary(key),
            path: path.clone(),
            foldable: true,
            folded: is_folded,
            role: Role::Accent,
        });
        if is_folded {
            continue;
        }
        if raw {
            for (i, (label, bytes)) in key.raw.iter().enumerate() {
                out.push(TreeLine {
                    depth: 1,
                    label: label.clone(),
                    text: raw_text(bytes),
                    path: format!("{path}/#{i}"),
                    foldable: false,
                    folded: false,
                    role: Role::Text,
                });
            }
            continue;
        }
        match &key.content {
            Some(Decodedish::Value { format, value }) => {
                if let Some(f) = format {
                    out.push(leaf(1, Some("format".into()), f.name().into(), format!("{path}/=format"), Role::Muted));
                }
                let outline = present::outline(value);
                // A map or list is the key's line; its children hang below it. An object keeps
                // its own line, so its class is always shown.
                let skip = usize::from(present::skips_root(value));
                let mut stack: Vec<String> = Vec::new();
                let mut hidden_until: Option<usize> = None;
                for (i, line) in outline.iter().enumerate().skip(skip) {
                    let depth = line.depth.saturating_sub(skip) + 1;
                    stack.truncate(depth - 1);
                    stack.push(line.label.clone().unwrap_or_default());
                    if hidden_until.is_some_and(|end| i <= end) {
                        continue;
                    }
                    let node = format!("{path}/{}", stack.join("/"));
                    let is_folded = line.descendants > 0 && folded.contains(&node);
                    if is_folded {
                        hidden_until = Some(i + line.descendants);
                    }
                    out.push(TreeLine {
                        depth,
                        label: line.label.clone(),
                        text: line.text.clone(),
                        path: node,
                        foldable: line.descendants > 0,
                        folded: is_folded,
                        role: Role::Text,
                    });
                }
            }
            Some(Decodedish::Undecodable { reason, raw, total_len }) => {
                out.push(leaf(
                    1,
                    Some("undecodable".into()),
                    text::escape_str(reason),
                    format!("{path}/=error"),
                    Role::Crit,
                ));
                let cut = if (raw.len() as u64) < *total_len { " (cut)" } else { "" };
                out.push(leaf(
                    1,
                    Some(format!("raw {}{cut}", text::human_bytes(*total_len))),
                    raw_text(raw),
                    format!("{path}/=raw"),
                    Role::Muted,
                ));
            }
            None => {}
        }
    }
    out
}

fn leaf(depth: usize, label: Option<String>, text: String, path: String, role: Role) -> TreeLine {
    TreeLine { depth, label, text, path, foldable: false, folded: false, role }
}

fn key_summary(key: &KeyReport) -> String {
    let length = key.length.map(|n| format!(", {n}{}", if key.truncated { " (cut)" } else { "" })).unwrap_or_default();
    format!("{} ({}{length})", key.key.escaped_short(120), text::escape_str(&key.redis_type))
}

/// Raw bytes, escaped and cut with their size stated. Only the start is escaped: a value of a
/// megabyte costs what is shown.
pub fn raw_text(bytes: &[u8]) -> String {
    // An escaped byte takes at most four characters.
    let head = &bytes[..bytes.len().min(RAW_MAX_CHARS * 4)];
    let escaped = text::escape_bytes(head);
    if escaped.chars().count() > RAW_MAX_CHARS || head.len() < bytes.len() {
        format!("{} ({} in all)", text::clip(&escaped, RAW_MAX_CHARS), text::human_bytes(bytes.len() as u64))
    } else {
        escaped
    }
}
