//! `--layout auto`: samples the keyspace with `SCAN` and picks the built-in layout and prefix
//! that most sampled keys fit.
//!
//! Bounded: at most [`SAMPLE_KEYS`] keys over at most [`MAX_SCAN_CALLS`] `SCAN` calls, with one
//! pipelined `TYPE` round trip per batch. Never reads a value.

use std::collections::BTreeMap;

use super::{KeyType, Layout, LayoutKind, Overrides, Piece};
use crate::link::{Failure, Link, reply};

/// How many keys the sample may hold.
pub const SAMPLE_KEYS: usize = 2000;
/// How many `SCAN` calls the sample may take (a sparse keyspace returns few keys per call).
pub const MAX_SCAN_CALLS: usize = 100;
/// The prefix ChatMRPT keeps its sessions under.
const CHATMRPT_PREFIX: &str = "chatmrpt:";
/// `SCAN COUNT` during detection.
const SCAN_COUNT: usize = 100;

/// What the sample showed.
#[derive(Debug, Clone)]
pub struct Detection {
    /// The chosen layout, with the detected prefix.
    pub layout: Layout,
    /// Sampled keys that fit the chosen layout.
    pub matched: usize,
    /// Keys sampled.
    pub sampled: usize,
    /// Other layouts seen in the sample, most keys first: kind, prefix, keys.
    pub others: Vec<(LayoutKind, String, usize)>,
}

impl Detection {
    /// One line for the user: what was picked and on what evidence.
    pub fn describe(&self) -> String {
        format!(
            "detected layout {} with prefix '{}' ({})",
            self.layout.kind.name(),
            self.layout.prefix,
            self.evidence()
        )
    }

    /// The evidence alone: `440 of 2000 sampled keys; also seen: flask 'chatmrpt:' (433)`.
    pub fn evidence(&self) -> String {
        let mut line = format!("{} of {} sampled keys", self.matched, self.sampled);
        if !self.others.is_empty() {
            let others: Vec<String> = self.others.iter().map(|(k, p, n)| format!("{} '{p}' ({n})", k.name())).collect();
            line.push_str(&format!("; also seen: {}", others.join(", ")));
        }
        line
    }
}

/// What a sample of the keyspace found.
#[derive(Debug, Clone)]
pub enum Sample {
    Found(Box<Detection>),
    /// No sampled key fits a built-in layout: an empty database (`sampled == 0`), or a layout
    /// that needs `--layout`.
    Nothing {
        sampled: usize,
    },
}

/// Samples the keyspace and returns the best-fitting built-in layout.
pub async fn detect(link: &mut Link, overrides: &Overrides) -> Result<Sample, Failure> {
    let candidates = [
        Layout::builtin(LayoutKind::Trt, overrides).map_err(|e| Failure::Protocol(e.to_string()))?,
        Layout::builtin(LayoutKind::Flask, overrides).map_err(|e| Failure::Protocol(e.to_string()))?,
    ];
    let mut counts: BTreeMap<(usize, String), usize> = BTreeMap::new();
    let mut sampled = 0;
    let mut cursor: u64 = 0;
    for _ in 0..MAX_SCAN_CALLS {
        let (next, keys): (u64, Vec<Vec<u8>>) =
            link.query(redis::cmd("SCAN").arg(cursor).arg("COUNT").arg(SCAN_COUNT)).await?;
        cursor = next;
        // Layouts are told apart by key shapes, which are text; a key that is not UTF-8 is
        // sampled but fits no shape.
        sampled += keys.len();
        let keys: Vec<String> = keys.into_iter().filter_map(|k| String::from_utf8(k).ok()).collect();
        let mut pipe = crate::link::pipe();
        for key in &keys {
            pipe.cmd("TYPE").arg(key);
        }
        let types = link.pipeline(&pipe).await?;
        if let Some(failure) = types.iter().find_map(|t| t.as_ref().err().filter(|f| f.is_unavailable())) {
            return Err(failure.clone());
        }
        for (key, ty) in keys.iter().zip(types) {
            let ty = reply::string(ty).unwrap_or_default();
            for (i, layout) in candidates.iter().enumerate() {
                if let Some(prefix) = infer_prefix(layout, key, &ty)
                    && overrides.prefix.as_ref().is_none_or(|p| *p == prefix)
                {
                    *counts.entry((i, prefix)).or_default() += 1;
                }
            }
        }
        if cursor == 0 || sampled >= SAMPLE_KEYS {
            break;
        }
    }
    // A prefix that extends another candidate's prefix of the same layout is a related family
    // (`chatmrpt:analysis_complete:<sid>` beside `chatmrpt:<sid>`), not a layout of its own.
    let keys: Vec<(usize, String)> = counts.keys().cloned().collect();
    counts.retain(|(i, p), _| !keys.iter().any(|(j, q)| j == i && q != p && p.starts_with(q.as_str())));
    let mut ranked: Vec<((usize, String), usize)> = counts.into_iter().collect();
    // Most sessions first (only a layout's primary keys are counted), then trt before flask.
    ranked.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
    let Some(((best, prefix), matched)) = ranked.first().cloned() else {
        return Ok(Sample::Nothing { sampled });
    };
    let mut layout = candidates[best].clone();
    // Flask sessions under ChatMRPT's prefix are ChatMRPT's: its own layout knows its side keys,
    // its lifetime and its journey.
    let kind =
        if layout.kind == LayoutKind::Flask && prefix == CHATMRPT_PREFIX { LayoutKind::Chatmrpt } else { layout.kind };
    if overrides.prefix.is_none() || kind != layout.kind {
        layout = Layout::builtin(kind, &Overrides { prefix: Some(prefix), ..overrides.clone() })
            .map_err(|e| Failure::Protocol(e.to_string()))?;
    }
    let others = ranked.iter().skip(1).map(|((i, p), n)| (candidates[*i].kind, p.clone(), *n)).collect();
    Ok(Sample::Found(Box::new(Detection { layout, matched, sampled, others })))
}

/// The prefix under which `key` would be a session primary key of `layout`.
fn infer_prefix(layout: &Layout, key: &str, redis_type: &str) -> Option<String> {
    let type_fits = matches!(
        (layout.session_type, redis_type),
        (KeyType::Hash, "hash")
            | (KeyType::String, "string")
            | (KeyType::List, "list")
            | (KeyType::Set, "set")
            | (KeyType::Zset, "zset")
    );
    if !type_fits {
        return None;
    }
    match layout.session_key.pieces.as_slice() {
        // `{prefix}text{id}text`: the first occurrence of the text before the id ends the prefix.
        [Piece::Prefix, Piece::Literal(before), Piece::Id, Piece::Literal(after)] => {
            let body = key.strip_suffix(after.as_str())?;
            let at = body.find(before.as_str())?;
            let id = &body[at + before.len()..];
            (!id.is_empty()).then(|| key[..at].to_string())
        }
        // `{prefix}{id}`: only the id's shape tells where the prefix ends. Flask-Session ids are
        // 43 base64url characters (0.6+) or a uuid4 (older).
        [Piece::Prefix, Piece::Id] => {
            let colon = key.rfind(':')?;
            let id = &key[colon + 1..];
            looks_like_flask_sid(id).then(|| key[..=colon].to_string())
        }
        _ => None,
    }
}

fn looks_like_flask_sid(id: &str) -> bool {
    let token = id.len() == 43 && id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    let uuid = id.len() == 36
        && id.bytes().enumerate().all(|(i, b)| match i {
            8 | 13 | 18 | 23 => b == b'-',
            _ => b.is_ascii_hexdigit(),
        });
    token || uuid
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefixes_are_inferred_from_key_shapes() {
        let o = Overrides::default();
        let trt = Layout::builtin(LayoutKind::Trt, &o).unwrap();
        let flask = Layout::builtin(LayoutKind::Flask, &o).unwrap();
        assert_eq!(infer_prefix(&trt, "trt:session:user_1:state", "hash").as_deref(), Some("trt:"));
        assert_eq!(infer_prefix(&trt, "app:trt:session:u:state", "hash").as_deref(), Some("app:trt:"));
        assert_eq!(infer_prefix(&trt, "trt:session:user_1:state", "string"), None);
        assert_eq!(infer_prefix(&trt, "trt:session:user_1:history", "list"), None);
        let sid = "7c6jMfKivIBH2MwYM1VdPBwWagCCw_0q1idEtMeBUrE";
        assert_eq!(infer_prefix(&flask, &format!("chatmrpt:{sid}"), "string").as_deref(), Some("chatmrpt:"));
        assert_eq!(
            infer_prefix(&flask, "session:d6474e42-b794-4ee5-ae8e-36709bba8307", "string").as_deref(),
            Some("session:")
        );
        assert_eq!(infer_prefix(&flask, "chatmrpt:short", "string"), None);
        assert_eq!(infer_prefix(&flask, &format!("chatmrpt:{sid}"), "hash"), None);
    }
}
