//! Which layout a target's sessions are in: `--layout trt|flask|chatmrpt|FILE` as asked, or,
//! with `--layout auto`, the built-in layout and prefix that most keys of a sample of the
//! keyspace fit (what each layout's keys look like is the layout's own: [`Layout::prefix_of`]).
//!
//! Bounded: at most [`SAMPLE_KEYS`] keys over at most [`MAX_SCAN_CALLS`] `SCAN` calls, with one
//! pipelined `TYPE` round trip per batch. Never reads a value.

use std::collections::BTreeMap;

use super::walk::{Count, KeyWalk, KeyspaceWalk, Pacing};
use crate::conn::link::{Failure, reply};
use crate::conn::route::Router;
use crate::engine::layout::{Choice, Layout, LayoutKind, Overrides};

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

/// Samples the keyspace (a walk of at most [`MAX_SCAN_CALLS`] calls, charged to the node's
/// pacer but not held back by it: the first screen waits for it) and returns the
/// best-fitting built-in layout.
pub async fn detect(router: &Router, overrides: &Overrides) -> Result<Sample, Failure> {
    let candidates = [
        Layout::builtin(LayoutKind::Trt, overrides).map_err(|e| Failure::Protocol(e.to_string()))?,
        Layout::builtin(LayoutKind::Flask, overrides).map_err(|e| Failure::Protocol(e.to_string()))?,
    ];
    let mut counts: BTreeMap<(usize, String), usize> = BTreeMap::new();
    let mut sampled = 0;
    let mut walk = KeyspaceWalk::new(router, KeyWalk::all());
    while walk.calls() < MAX_SCAN_CALLS as u64 && !walk.is_done() && sampled < SAMPLE_KEYS {
        let keys = walk.next(router, Count::Fixed(SCAN_COUNT), Pacing::Now).await?;
        // Layouts are told apart by key shapes, which are text; a key that is not UTF-8 is
        // sampled but fits no shape.
        sampled += keys.len();
        let keys: Vec<String> = keys.into_iter().filter_map(|k| String::from_utf8(k).ok()).collect();
        let mut pipe = crate::conn::link::pipe();
        for key in &keys {
            pipe.cmd("TYPE").arg(key);
        }
        let types = router.pipeline(&pipe).await?;
        if let Some(failure) = types.iter().find_map(|t| t.as_ref().err().filter(|f| f.is_unavailable())) {
            return Err(failure.clone());
        }
        for (key, ty) in keys.iter().zip(types) {
            let ty = reply::string(ty).unwrap_or_default();
            for (i, layout) in candidates.iter().enumerate() {
                if let Some(prefix) = layout.prefix_of(key, &ty)
                    && overrides.prefix.as_ref().is_none_or(|p| *p == prefix)
                {
                    *counts.entry((i, prefix)).or_default() += 1;
                }
            }
        }
    }
    choose(&candidates, counts, sampled, overrides)
}

/// The layout most sampled keys fit, from the count of keys by candidate and prefix.
fn choose(
    candidates: &[Layout],
    mut counts: BTreeMap<(usize, String), usize>,
    sampled: usize,
    overrides: &Overrides,
) -> Result<Sample, Failure> {
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

/// The layout to use: the one asked for, or what detection found.
#[derive(Debug, Clone)]
pub enum Resolved {
    Layout {
        layout: Box<Layout>,
        note: Option<String>,
    },
    /// Detection found nothing (yet): the note says what was sampled; `empty` when the sample
    /// found no key at all (a store just flushed or restarted).
    NotDetected {
        note: String,
        empty: bool,
    },
}

/// Why a layout could not be resolved.
#[derive(Debug, thiserror::Error)]
pub enum ResolveError {
    #[error(transparent)]
    Layout(#[from] crate::engine::layout::LayoutError),
    #[error(transparent)]
    Redis(#[from] Failure),
}

/// Resolves `--layout`: loads a built-in or a file, or samples the keyspace.
pub async fn resolve_layout(router: &Router, choice: &Choice, overrides: &Overrides) -> Result<Resolved, ResolveError> {
    match choice {
        Choice::Builtin(kind) => {
            Ok(Resolved::Layout { layout: Box::new(Layout::builtin(*kind, overrides)?), note: None })
        }
        Choice::File(path) => {
            Ok(Resolved::Layout { layout: Box::new(Layout::from_file(path, overrides)?), note: None })
        }
        Choice::Auto => Ok(match detect(router, overrides).await? {
            Sample::Found(detection) => {
                tracing::info!("{}", detection.describe());
                let note = format!("detected from {}", detection.evidence());
                let Detection { layout, .. } = *detection;
                Resolved::Layout { layout: Box::new(layout), note: Some(note) }
            }
            Sample::Nothing { sampled: 0 } => Resolved::NotDetected {
                note: "no session layout recognised: the database is empty; waiting for sessions to appear \
                       (or pass --layout trt|flask|FILE.toml)"
                    .into(),
                empty: true,
            },
            Sample::Nothing { sampled } => Resolved::NotDetected {
                note: format!(
                    "no session layout recognised in a sample of {sampled} keys{}; pass --layout trt|flask|FILE.toml",
                    overrides
                        .prefix
                        .as_ref()
                        .map(|p| format!(" under prefix '{}'", crate::util::text::escape_str(p)))
                        .unwrap_or_default()
                ),
                empty: false,
            },
        }),
    }
}
