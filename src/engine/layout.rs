//! What a session is in a given application's key layout: which key makes it live, which keys
//! belong to it, where its stage and last interaction are written, and which index lists it.
//!
//! Layouts are data, not code: the two built-ins (`trt`, `flask`) are TOML files compiled into
//! the binary, and a third application's layout is one more file passed as `--layout PATH`.

use std::path::Path;

use serde::Deserialize;

use crate::engine::names::{Key, SessionId};

/// The built-in layouts, as shipped.
pub const BUILTIN_TRT: &str = include_str!("layout/trt.toml");
pub const BUILTIN_FLASK: &str = include_str!("layout/flask.toml");
pub const BUILTIN_CHATMRPT: &str = include_str!("layout/chatmrpt.toml");

/// Which family a layout belongs to; `custom` for user files.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum LayoutKind {
    Trt,
    Flask,
    /// ChatMRPT's own Flask-Session store: a flask layout that knows the app.
    Chatmrpt,
    Custom,
}

impl LayoutKind {
    pub fn name(self) -> &'static str {
        match self {
            LayoutKind::Trt => "trt",
            LayoutKind::Flask => "flask",
            LayoutKind::Chatmrpt => "chatmrpt",
            LayoutKind::Custom => "custom",
        }
    }
}

/// The Redis type of a session's keys.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum KeyType {
    Hash,
    String,
    List,
    Set,
    Zset,
}

/// What a part of a session holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum PartRole {
    /// A list of exchanges, newest first.
    History,
    /// Metadata written once.
    Meta,
    #[default]
    Data,
}

/// How a related key family follows its session.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Lifecycle {
    /// Lives and dies with the session: expired, persisted and deleted with it.
    #[default]
    Session,
    /// Short-lived by design (locks, rate-limit counters): deleted with the session, never
    /// given its TTL or made persistent.
    Ephemeral,
}

/// Where a session's idle time comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum IdleSource {
    /// The last-interaction field, or the index score.
    LastInteraction,
    /// `lifetime - TTL`, for stores that rewrite the key with a fresh TTL on every request.
    Ttl,
}

/// How timestamps without an offset are read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum NaiveTime {
    /// The local time of the machine sessiontop runs on.
    #[default]
    Local,
    Utc,
}

/// What an index's score means.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ScoreMeaning {
    /// Epoch seconds of the session's last interaction.
    LastInteraction,
    /// Anything else: the index only lists ids.
    None,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct LayoutFile {
    name: String,
    #[serde(default = "custom_kind")]
    kind: LayoutKind,
    #[serde(default)]
    prefix: String,
    session: SessionFile,
    index: Option<IndexFile>,
    #[serde(default)]
    fields: FieldsFile,
    idle: Option<IdleFile>,
    #[serde(default)]
    parts: Vec<PartFile>,
    #[serde(default)]
    related: Vec<RelatedFile>,
    #[serde(default)]
    workflow: WorkflowFile,
    stuck: Option<StuckFile>,
    #[serde(default)]
    markers: Vec<MarkerFile>,
}

/// A named flag a session carries when any of its conditions holds.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct MarkerFile {
    name: String,
    any: Vec<ConditionFile>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct ConditionFile {
    field: String,
    is: Option<toml::Value>,
    #[serde(rename = "in")]
    one_of: Option<Vec<String>>,
}

fn custom_kind() -> LayoutKind {
    LayoutKind::Custom
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct SessionFile {
    key: String,
    #[serde(rename = "type")]
    ty: KeyType,
    #[serde(default)]
    id_excludes: String,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct IndexFile {
    key: String,
    score: ScoreMeaning,
}

#[derive(Debug, Clone, Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct FieldsFile {
    #[serde(default)]
    stage: Vec<String>,
    #[serde(default)]
    substate: Vec<String>,
    #[serde(default)]
    status: Vec<String>,
    #[serde(default)]
    last_interaction: Vec<String>,
    #[serde(default)]
    naive_time: NaiveTime,
    #[serde(default)]
    ids: Vec<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct IdleFile {
    from: IdleSource,
    /// The session lifetime, for idle = lifetime - TTL (`1d`).
    lifetime: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct PartFile {
    name: String,
    key: String,
    #[serde(rename = "type")]
    ty: KeyType,
    #[serde(default)]
    role: PartRole,
    cap: Option<u64>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct RelatedFile {
    name: String,
    pattern: String,
    #[serde(default)]
    lifecycle: Lifecycle,
    #[serde(default)]
    role: RelatedRole,
    limit: Option<u64>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct StuckFile {
    history_stage: String,
    history_decision: Option<String>,
}

#[derive(Debug, Clone, Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct WorkflowFile {
    #[serde(default)]
    stages: Vec<String>,
    #[serde(default)]
    substates: Vec<String>,
    #[serde(default, rename = "final")]
    finals: Vec<String>,
    /// Stages or substates with their own stalled threshold (`"3.2_alpha_sequence" = "30m"`).
    #[serde(default)]
    stalled_after: std::collections::BTreeMap<String, String>,
}

/// Why a layout could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum LayoutError {
    #[error("cannot read layout file {path}: {reason}")]
    Read { path: String, reason: crate::util::local_file::LocalFileError },
    #[error("invalid layout {name}: {reason}")]
    Invalid { name: String, reason: String },
}

/// Why a key template is not one.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TemplateError {
    #[error("'{0}': `*` is only allowed in related-key patterns")]
    AnyOutsideRelated(String),
    #[error("'{0}': {{field:NAME}} is not closed")]
    FieldNotClosed(String),
    #[error("'{0}': {{field:…}} is only allowed in related-key patterns")]
    FieldOutsideRelated(String),
    #[error("'{template}': '{name}' is not a field name")]
    BadFieldName { template: String, name: String },
    #[error("'{0}': only {{prefix}}, {{id}} and (in related keys) {{field:NAME}} may appear in braces")]
    UnknownBraces(String),
    #[error("'{0}': {{id}} may appear only once")]
    IdTwice(String),
}

/// One piece of a key template.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Piece {
    Literal(String),
    Prefix,
    Id,
    /// `*` in a related-key pattern: any text.
    Any,
    /// `{field:NAME}` in a related-key pattern: the value of the session's own field `NAME`
    /// (ChatMRPT names its side keys by the `session_id` inside the payload, not the key's id).
    Field(String),
}

/// A key template such as `{prefix}session:{id}:state`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyTemplate {
    source: String,
    pieces: Vec<Piece>,
}

/// What fills a template's variable pieces when it is written out ([`KeyTemplate::render`]).
struct Fill<'a> {
    /// The session's id; `None` for every session's (`*`).
    id: Option<&'a [u8]>,
    /// The session's field values; `None` writes `any` for a `{field:NAME}`.
    fields: Option<&'a [(String, Vec<u8>)]>,
    /// What each `*` becomes.
    any: &'a [u8],
}

/// Bytes a key is given beyond its prefix and id when it is built, for the template's own
/// text (`session:`, `:state`), so that building one allocates once.
const KEY_SPARE: usize = 32;

impl KeyTemplate {
    fn parse(source: &str, allow_any: bool) -> Result<Self, TemplateError> {
        let mut pieces = Vec::new();
        let mut literal = String::new();
        let mut rest = source;
        while !rest.is_empty() {
            let piece = if let Some(r) = rest.strip_prefix("{prefix}") {
                rest = r;
                Some(Piece::Prefix)
            } else if let Some(r) = rest.strip_prefix("{id}") {
                rest = r;
                Some(Piece::Id)
            } else if let Some(r) = rest.strip_prefix('*') {
                if !allow_any {
                    return Err(TemplateError::AnyOutsideRelated(source.to_string()));
                }
                rest = r;
                Some(Piece::Any)
            } else if let Some(r) = rest.strip_prefix("{field:") {
                let Some((name, after)) = r.split_once('}') else {
                    return Err(TemplateError::FieldNotClosed(source.to_string()));
                };
                if !allow_any {
                    return Err(TemplateError::FieldOutsideRelated(source.to_string()));
                }
                if name.is_empty() || name.contains(['{', '*']) {
                    return Err(TemplateError::BadFieldName { template: source.to_string(), name: name.to_string() });
                }
                rest = after;
                Some(Piece::Field(name.to_string()))
            } else {
                let mut chars = rest.chars();
                if let Some(c) = chars.next() {
                    if c == '{' {
                        return Err(TemplateError::UnknownBraces(source.to_string()));
                    }
                    literal.push(c);
                }
                rest = chars.as_str();
                None
            };
            if let Some(piece) = piece {
                if !literal.is_empty() {
                    pieces.push(Piece::Literal(std::mem::take(&mut literal)));
                }
                pieces.push(piece);
            }
        }
        if !literal.is_empty() {
            pieces.push(Piece::Literal(literal));
        }
        if pieces.iter().filter(|p| **p == Piece::Id).count() > 1 {
            return Err(TemplateError::IdTwice(source.to_string()));
        }
        Ok(KeyTemplate { source: source.to_string(), pieces })
    }

    /// The template as written in the layout.
    pub fn source(&self) -> &str {
        &self.source
    }

    fn has_id(&self) -> bool {
        self.pieces.contains(&Piece::Id)
    }

    /// The session fields the template names (`{field:NAME}`), in order.
    pub fn field_names(&self) -> Vec<&str> {
        self.pieces
            .iter()
            .filter_map(|p| match p {
                Piece::Field(name) => Some(name.as_str()),
                _ => None,
            })
            .collect()
    }

    /// The key for a session whose fields are `fields` (`*` pieces left as `*`); `None` when
    /// the session has no value for a field the template names.
    pub fn key_for(&self, prefix: &str, id: &[u8], fields: &[(String, Vec<u8>)]) -> Option<Key> {
        let mut out = Vec::new();
        self.render(&mut out, prefix, &Fill { id: Some(id), fields: Some(fields), any: b"*" }, false)?;
        Some(Key::from(out))
    }

    /// A `SCAN MATCH` pattern for one session's keys, with its field values in place; `None`
    /// when a named field has no value.
    pub fn scan_pattern_for(&self, prefix: &str, id: &[u8], fields: &[(String, Vec<u8>)]) -> Option<Vec<u8>> {
        let mut out = Vec::new();
        self.render(&mut out, prefix, &Fill { id: Some(id), fields: Some(fields), any: b"*" }, true)?;
        Some(out)
    }

    /// Whether `key` fits the template for a session with these field values.
    pub fn matches_for(&self, prefix: &str, id: &[u8], fields: &[(String, Vec<u8>)], key: &[u8]) -> bool {
        let mut pieces = Vec::with_capacity(self.pieces.len());
        for p in &self.pieces {
            pieces.push(match p {
                Piece::Literal(s) => Glob::Text(s.as_bytes().to_vec()),
                Piece::Prefix => Glob::Text(prefix.as_bytes().to_vec()),
                Piece::Id => Glob::Text(id.to_vec()),
                Piece::Any => Glob::Any,
                Piece::Field(name) => match field_value(fields, name) {
                    Some(v) => Glob::Text(v.to_vec()),
                    None => return false,
                },
            });
        }
        glob_match(&pieces, key)
    }

    /// The key for a session with every `*` replaced by `any` (a rate limit's current minute).
    pub fn key_with(&self, prefix: &str, id: &[u8], any: &[u8]) -> Key {
        let mut out = Vec::with_capacity(prefix.len() + id.len() + any.len() + KEY_SPARE);
        self.write_key_with(&mut out, prefix, id, any);
        Key::from(out)
    }

    /// Appends [`Self::key_with`]'s key to `out`.
    pub fn write_key_with(&self, out: &mut Vec<u8>, prefix: &str, id: &[u8], any: &[u8]) {
        self.render(out, prefix, &Fill { id: Some(id), fields: None, any }, false);
    }

    /// Writes the template out to `out`: literal text and the prefix as they are (glob-escaped
    /// for a `SCAN MATCH` pattern), the id (or `*` for every session's), field values (or `any`
    /// without them), and `any` for each `*`. `None` when a named field has no value.
    fn render(&self, out: &mut Vec<u8>, prefix: &str, fill: &Fill<'_>, glob: bool) -> Option<()> {
        let text = |out: &mut Vec<u8>, bytes: &[u8]| {
            if glob { glob_escape_into(out, bytes) } else { out.extend_from_slice(bytes) }
        };
        for piece in &self.pieces {
            match piece {
                Piece::Literal(s) => text(out, s.as_bytes()),
                Piece::Prefix => text(out, prefix.as_bytes()),
                Piece::Id => match fill.id {
                    Some(id) => text(out, id),
                    None => out.push(b'*'),
                },
                Piece::Any => out.extend_from_slice(fill.any),
                Piece::Field(name) => match fill.fields {
                    Some(fields) => text(out, field_value(fields, name)?),
                    None => out.extend_from_slice(fill.any),
                },
            }
        }
        Some(())
    }

    /// Whether the template names one key (no `*`).
    pub fn is_exact(&self) -> bool {
        !self.pieces.contains(&Piece::Any)
    }

    /// The key for a session (`*` pieces are left as `*`; use [`Self::scan_pattern`] for them).
    pub fn key(&self, prefix: &str, id: &[u8]) -> Key {
        let mut out = Vec::with_capacity(prefix.len() + id.len() + KEY_SPARE);
        self.write_key(&mut out, prefix, id);
        Key::from(out)
    }

    /// Appends the key for a session to `out` (for building many keys in one buffer).
    pub fn write_key(&self, out: &mut Vec<u8>, prefix: &str, id: &[u8]) {
        self.render(out, prefix, &Fill { id: Some(id), fields: None, any: b"*" }, false);
    }

    /// A `SCAN MATCH` pattern: with `id = None` every session's key, else one session's keys.
    /// Literal text is glob-escaped, so an id with `*` or `[` matches only itself.
    pub fn scan_pattern(&self, prefix: &str, id: Option<&[u8]>) -> Vec<u8> {
        let mut out = Vec::new();
        self.render(&mut out, prefix, &Fill { id, fields: None, any: b"*" }, true);
        out
    }

    /// The session id in `key`, when the key fits this template. `excludes` lists characters an
    /// id cannot contain.
    pub fn match_id<'k>(&self, prefix: &str, key: &'k [u8], excludes: &str) -> Option<&'k [u8]> {
        // Templates are `text {id} text` once the prefix is substituted; `*` pieces (related
        // patterns) are matched by `matches`, not here.
        let mut before = Vec::new();
        let mut after = Vec::new();
        let mut seen_id = false;
        for piece in &self.pieces {
            let target = if seen_id { &mut after } else { &mut before };
            match piece {
                Piece::Literal(s) => target.extend_from_slice(s.as_bytes()),
                Piece::Prefix => target.extend_from_slice(prefix.as_bytes()),
                Piece::Id => seen_id = true,
                Piece::Any | Piece::Field(_) => return None,
            }
        }
        let id = key.strip_prefix(before.as_slice())?.strip_suffix(after.as_slice())?;
        (!id.is_empty() && !has_excluded(id, excludes)).then_some(id)
    }

    /// Whether `key` fits the template for this session (with `*` matching any text).
    pub fn matches(&self, prefix: &str, id: &[u8], key: &[u8]) -> bool {
        let pieces = self.glob_pieces(prefix, Some(id));
        glob_match(&pieces, key)
    }

    /// Every id for which `key` fits the template, shortest first. A key of a pattern with `*`
    /// next to `{id}` can fit several ids (`{prefix}ratelimit:{id}:*` fits `abc` and `abc:def` for
    /// `…:abc:def:7`); the caller decides whose it is.
    pub fn possible_ids<'k>(&self, prefix: &str, key: &'k [u8], excludes: &str) -> Vec<&'k [u8]> {
        let Some(at) = self.pieces.iter().position(|p| *p == Piece::Id) else { return Vec::new() };
        let (before, after) = (&self.pieces[..at], &self.pieces[at + 1..]);
        let to_glob = |pieces: &[Piece]| -> Vec<Glob> {
            pieces
                .iter()
                .map(|p| match p {
                    Piece::Literal(s) => Glob::Text(s.as_bytes().to_vec()),
                    Piece::Prefix => Glob::Text(prefix.as_bytes().to_vec()),
                    Piece::Any | Piece::Id | Piece::Field(_) => Glob::Any,
                })
                .collect()
        };
        let (before, after) = (to_glob(before), to_glob(after));
        let mut out = Vec::new();
        for start in 0..=key.len() {
            if !glob_match(&before, &key[..start]) {
                continue;
            }
            for end in start + 1..=key.len() {
                let id = &key[start..end];
                if !has_excluded(id, excludes) && glob_match(&after, &key[end..]) {
                    out.push(id);
                }
            }
        }
        out.sort_by_key(|id| id.len());
        out.dedup();
        out
    }

    fn glob_pieces(&self, prefix: &str, id: Option<&[u8]>) -> Vec<Glob> {
        self.pieces
            .iter()
            .map(|p| match p {
                Piece::Literal(s) => Glob::Text(s.as_bytes().to_vec()),
                Piece::Prefix => Glob::Text(prefix.as_bytes().to_vec()),
                Piece::Id => id.map_or(Glob::Any, |id| Glob::Text(id.to_vec())),
                Piece::Any | Piece::Field(_) => Glob::Any,
            })
            .collect()
    }
}

/// The value of field `name` among a session's field values.
fn field_value<'v>(fields: &'v [(String, Vec<u8>)], name: &str) -> Option<&'v [u8]> {
    fields.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_slice()).filter(|v| !v.is_empty())
}

/// Whether an id holds a character the layout says ids cannot contain.
fn has_excluded(id: &[u8], excludes: &str) -> bool {
    excludes.chars().any(|c| {
        let mut buf = [0; 4];
        let c = c.encode_utf8(&mut buf).as_bytes();
        id.windows(c.len()).any(|w| w == c)
    })
}

/// A piece of a key pattern: literal bytes, or any bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Glob {
    Text(Vec<u8>),
    Any,
}

/// Matches `key` against pieces where [`Glob::Any`] stands for any bytes.
fn glob_match(pieces: &[Glob], key: &[u8]) -> bool {
    match pieces.split_first() {
        None => key.is_empty(),
        Some((Glob::Any, rest)) => {
            if rest.is_empty() {
                return true;
            }
            (0..=key.len()).any(|i| glob_match(rest, &key[i..]))
        }
        Some((Glob::Text(text), rest)) => key.strip_prefix(text.as_slice()).is_some_and(|k| glob_match(rest, k)),
    }
}

/// Escapes the glob characters of `SCAN MATCH` (`*`, `?`, `[`, `]`, `\`).
pub fn glob_escape(s: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(s.len());
    glob_escape_into(&mut out, s);
    out
}

fn glob_escape_into(out: &mut Vec<u8>, s: &[u8]) {
    for &b in s {
        if matches!(b, b'*' | b'?' | b'[' | b']' | b'\\') {
            out.push(b'\\');
        }
        out.push(b);
    }
}

/// One key of a session other than its primary key (history list, meta hash, …).
#[derive(Debug, Clone)]
pub struct Part {
    pub name: String,
    pub template: KeyTemplate,
    pub ty: KeyType,
    pub role: PartRole,
    /// The most entries the application keeps (it trims the list to this many).
    pub cap: Option<u64>,
}

/// A family of keys that belong to a session without being part of its data.
#[derive(Debug, Clone)]
pub struct Related {
    pub name: String,
    pub template: KeyTemplate,
    pub lifecycle: Lifecycle,
    pub role: RelatedRole,
    /// For rate-limit counters: the most requests a window allows.
    pub limit: Option<u64>,
}

/// What a family of related keys is for, where sessiontop can judge it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum RelatedRole {
    #[default]
    Other,
    /// A lock held while a request runs: it should expire, and soon.
    Lock,
    /// Request counters per epoch minute (the `*` of the pattern): at the limit, requests are
    /// refused.
    RateLimit,
}

/// The index sorted set of a layout.
#[derive(Debug, Clone)]
pub struct Index {
    pub key: String,
    pub score: ScoreMeaning,
}

/// Where the fields that describe a session are (hash fields, or dotted paths in a payload).
#[derive(Debug, Clone, Default)]
pub struct Fields {
    pub stage: Vec<String>,
    pub substate: Vec<String>,
    pub status: Vec<String>,
    pub last_interaction: Vec<String>,
    pub naive_time: NaiveTime,
    /// Fields holding the application's own ids for a session (`session_id`, `user_id`): what
    /// engineers know from logs, looked up with `inspect --by` and the filter `FIELD=VALUE`.
    pub ids: Vec<String>,
    /// Flags a session carries, counted by the census.
    pub markers: Vec<Marker>,
}

/// A named flag a session carries when any of its conditions holds (ChatMRPT's "TPR").
#[derive(Debug, Clone, PartialEq)]
pub struct Marker {
    pub name: String,
    pub any: Vec<Condition>,
}

/// One condition on a session field.
#[derive(Debug, Clone, PartialEq)]
pub enum Condition {
    /// The field's value, as text, is this (`true`, `1`, `tpr_excel`).
    Is { field: String, value: String },
    /// The field's value, as text, is one of these.
    In { field: String, values: Vec<String> },
}

impl Condition {
    pub fn field(&self) -> &str {
        match self {
            Condition::Is { field, .. } | Condition::In { field, .. } => field,
        }
    }

    /// Whether the condition holds for a field whose value reads `text` (or is absent).
    pub fn holds(&self, text: Option<&str>) -> bool {
        match (self, text) {
            (Condition::Is { value, .. }, Some(t)) => t == value,
            (Condition::In { values, .. }, Some(t)) => values.iter().any(|v| v == t),
            _ => false,
        }
    }
}

/// A session layout with its prefix applied.
#[derive(Debug, Clone)]
pub struct Layout {
    pub name: String,
    pub kind: LayoutKind,
    pub prefix: String,
    pub session_key: KeyTemplate,
    pub session_type: KeyType,
    /// Characters a session id cannot contain.
    pub id_excludes: String,
    pub index: Option<Index>,
    pub fields: Fields,
    pub idle: IdleSource,
    pub parts: Vec<Part>,
    pub related: Vec<Related>,
    /// Stages and substates in workflow order, for the per-stage bar.
    pub stages: Vec<String>,
    pub substates: Vec<String>,
    /// Stages or substates at which a session is done (never "stalled").
    pub finals: Vec<String>,
    /// Stages or substates with their own stalled threshold in seconds (others take
    /// `--stalled-after`).
    pub stalled_after: Vec<(String, i64)>,
    /// How a history shows a workflow that does not advance.
    pub stuck: Option<StuckRule>,
    /// The session lifetime, when the layout knows it (idle = lifetime - TTL).
    pub lifetime_s: Option<i64>,
}

/// The most markers a layout may name (a row keeps them as bits).
pub const MAX_MARKERS: usize = 8;

/// A TOML scalar as the text a session field's value reads as (`None` for a table or array).
fn toml_scalar(v: &toml::Value) -> Option<String> {
    match v {
        toml::Value::String(s) => Some(s.clone()),
        toml::Value::Boolean(b) => Some(b.to_string()),
        toml::Value::Integer(i) => Some(i.to_string()),
        _ => None,
    }
}

/// Which fields of a history entry tell that a user is going round in circles: the stage (or
/// substate) each turn was in, and the decision the application took.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StuckRule {
    pub history_stage: String,
    pub history_decision: Option<String>,
}

/// Options that change a layout after it is loaded.
#[derive(Debug, Clone, Default)]
pub struct Overrides {
    pub prefix: Option<String>,
    /// `--stage-field`: a dotted path that replaces the layout's stage fields.
    pub stage_field: Option<String>,
}

/// A layout named `layout` is invalid for `reason`.
fn invalid(layout: &str, reason: impl std::fmt::Display) -> LayoutError {
    LayoutError::Invalid { name: layout.to_string(), reason: reason.to_string() }
}

impl Part {
    fn from_file(p: PartFile, layout: &str) -> Result<Part, LayoutError> {
        let template = KeyTemplate::parse(&p.key, false).map_err(|e| invalid(layout, e))?;
        if !template.has_id() {
            return Err(invalid(layout, format!("part '{}' key '{}' has no {{id}}", p.name, p.key)));
        }
        Ok(Part { name: p.name, template, ty: p.ty, role: p.role, cap: p.cap })
    }
}

impl Related {
    fn from_file(r: RelatedFile, layout: &str) -> Result<Related, LayoutError> {
        let template = KeyTemplate::parse(&r.pattern, true).map_err(|e| invalid(layout, e))?;
        if !template.has_id() && template.field_names().is_empty() {
            let why = format!("related '{}' pattern '{}' has no {{id}} or {{field:NAME}}", r.name, r.pattern);
            return Err(invalid(layout, why));
        }
        if r.role == RelatedRole::RateLimit && (r.limit.is_none() || template.is_exact()) {
            let why = format!("rate-limit '{}' needs a `limit` and a `*` (the epoch minute) in its pattern", r.name);
            return Err(invalid(layout, why));
        }
        Ok(Related { name: r.name, template, lifecycle: r.lifecycle, role: r.role, limit: r.limit })
    }
}

impl Marker {
    fn from_file(m: MarkerFile, layout: &str) -> Result<Marker, LayoutError> {
        let any = m
            .any
            .into_iter()
            .map(|c| match (c.is, c.one_of) {
                (Some(is), None) => match toml_scalar(&is) {
                    Some(value) => Ok(Condition::Is { field: c.field, value }),
                    None => Err(invalid(
                        layout,
                        format!("a condition compares with a string, a number or a boolean, not {is}"),
                    )),
                },
                (None, Some(values)) => Ok(Condition::In { field: c.field, values }),
                _ => Err(invalid(layout, format!("marker '{}': a condition needs `is` or `in`", m.name))),
            })
            .collect::<Result<Vec<_>, LayoutError>>()?;
        Ok(Marker { name: m.name, any })
    }
}

impl Layout {
    /// Parses a layout from TOML text.
    pub fn from_toml(text: &str, overrides: &Overrides) -> Result<Self, LayoutError> {
        let file: LayoutFile = toml::from_str(text)
            .map_err(|e| LayoutError::Invalid { name: "file".into(), reason: e.message().to_string() })?;
        let name = file.name.clone();
        let invalid = |reason: String| invalid(&name, reason);
        let template =
            |source: &str, related: bool| KeyTemplate::parse(source, related).map_err(|e| invalid(e.to_string()));

        let session_key = template(&file.session.key, false)?;
        if !session_key.has_id() {
            return Err(invalid(format!("session key '{}' has no {{id}}", file.session.key)));
        }
        let prefix = overrides.prefix.clone().unwrap_or(file.prefix);
        let index = match file.index {
            Some(ix) => {
                let key = template(&ix.key, false)?;
                if key.has_id() {
                    return Err(invalid(format!("index key '{}' cannot contain {{id}}", ix.key)));
                }
                Some(Index {
                    key: String::from_utf8_lossy(key.key(&prefix, b"").as_bytes()).into_owned(),
                    score: ix.score,
                })
            }
            None => None,
        };
        let parts = file.parts.into_iter().map(|p| Part::from_file(p, &name)).collect::<Result<Vec<_>, _>>()?;
        let related = file.related.into_iter().map(|r| Related::from_file(r, &name)).collect::<Result<Vec<_>, _>>()?;
        let mut fields = Fields {
            markers: file.markers.into_iter().map(|m| Marker::from_file(m, &name)).collect::<Result<_, _>>()?,
            stage: file.fields.stage,
            substate: file.fields.substate,
            status: file.fields.status,
            last_interaction: file.fields.last_interaction,
            naive_time: file.fields.naive_time,
            ids: file.fields.ids,
        };
        if fields.markers.len() > MAX_MARKERS {
            return Err(invalid(format!("at most {MAX_MARKERS} markers")));
        }
        if let Some(stage) = &overrides.stage_field {
            fields.stage = vec![stage.clone()];
        }
        let seconds = |what: &str, text: &str| {
            crate::util::text::parse_duration(text)
                .map(|d| d.as_secs().max(1) as i64)
                .map_err(|e| invalid(format!("{what}: {e}")))
        };
        let lifetime_s = match file.idle.as_ref().and_then(|i| i.lifetime.as_deref()) {
            Some(text) => Some(seconds("idle.lifetime", text)?),
            None => None,
        };
        let stalled_after = file
            .workflow
            .stalled_after
            .iter()
            .map(|(stage, text)| Ok((stage.clone(), seconds(&format!("workflow.stalled_after.{stage}"), text)?)))
            .collect::<Result<Vec<_>, LayoutError>>()?;
        let idle = match &file.idle {
            Some(idle) => idle.from,
            None if !fields.last_interaction.is_empty() => IdleSource::LastInteraction,
            None if index.as_ref().is_some_and(|i| i.score == ScoreMeaning::LastInteraction) => {
                IdleSource::LastInteraction
            }
            None => IdleSource::Ttl,
        };
        Ok(Layout {
            name: file.name,
            kind: file.kind,
            prefix,
            session_key,
            session_type: file.session.ty,
            id_excludes: file.session.id_excludes,
            index,
            fields,
            idle,
            parts,
            related,
            stages: file.workflow.stages,
            substates: file.workflow.substates,
            finals: file.workflow.finals,
            stalled_after,
            lifetime_s,
            stuck: file
                .stuck
                .map(|s| StuckRule { history_stage: s.history_stage, history_decision: s.history_decision }),
        })
    }

    /// A built-in layout by name.
    pub fn builtin(kind: LayoutKind, overrides: &Overrides) -> Result<Self, LayoutError> {
        let text = match kind {
            LayoutKind::Trt => BUILTIN_TRT,
            LayoutKind::Flask => BUILTIN_FLASK,
            LayoutKind::Chatmrpt => BUILTIN_CHATMRPT,
            LayoutKind::Custom => {
                return Err(LayoutError::Invalid { name: "custom".into(), reason: "pass a file".into() });
            }
        };
        Self::from_toml(text, overrides)
    }

    /// Loads a layout file.
    pub fn from_file(path: &Path, overrides: &Overrides) -> Result<Self, LayoutError> {
        let text = crate::util::local_file::read_text(path, crate::util::local_file::TEXT_MAX_BYTES)
            .map_err(|reason| LayoutError::Read { path: path.display().to_string(), reason })?;
        Self::from_toml(&text, overrides).map_err(|e| match e {
            LayoutError::Invalid { reason, .. } => LayoutError::Invalid { name: path.display().to_string(), reason },
            other => other,
        })
    }

    /// The primary key of a session.
    pub fn session_key(&self, id: &SessionId) -> Key {
        self.session_key.key(&self.prefix, id.as_bytes())
    }

    /// The session id in `key`, when `key` is a session's primary key.
    pub fn session_id<'k>(&self, key: &'k [u8]) -> Option<&'k [u8]> {
        self.session_key.match_id(&self.prefix, key, &self.id_excludes)
    }

    /// The `SCAN MATCH` pattern for every session's primary key.
    pub fn session_scan_pattern(&self) -> Vec<u8> {
        self.session_key.scan_pattern(&self.prefix, None)
    }

    /// Whether a stage or substate ends the workflow.
    /// The prefix under which `key` (of type `redis_type`) would be a session primary key of this
    /// layout: what detection tells layouts apart by.
    pub fn prefix_of(&self, key: &str, redis_type: &str) -> Option<String> {
        let type_fits = matches!(
            (self.session_type, redis_type),
            (KeyType::Hash, "hash")
                | (KeyType::String, "string")
                | (KeyType::List, "list")
                | (KeyType::Set, "set")
                | (KeyType::Zset, "zset")
        );
        if !type_fits {
            return None;
        }
        match self.session_key.pieces.as_slice() {
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

    pub fn is_final(&self, stage: Option<&str>, substate: Option<&str>) -> bool {
        [stage, substate].into_iter().flatten().any(|s| self.finals.iter().any(|f| f == s))
    }

    /// Whether a related family (by name) holds the session's locks.
    pub fn is_lock(&self, family: &str) -> bool {
        self.related.iter().any(|r| r.name == family && r.role == RelatedRole::Lock)
    }

    /// The history part, when the layout has one.
    pub fn history(&self) -> Option<&Part> {
        self.parts.iter().find(|p| p.role == PartRole::History)
    }
}

/// Which layout to use, as given on the command line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Choice {
    Auto,
    Builtin(LayoutKind),
    File(std::path::PathBuf),
}

/// Why `--layout` names no layout.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("'{0}' is not auto, trt, flask, chatmrpt or a .toml file")]
pub struct ChoiceError(String);

impl std::str::FromStr for Choice {
    type Err = ChoiceError;
    fn from_str(s: &str) -> Result<Self, ChoiceError> {
        Ok(match s {
            "auto" => Choice::Auto,
            "trt" => Choice::Builtin(LayoutKind::Trt),
            "flask" => Choice::Builtin(LayoutKind::Flask),
            "chatmrpt" => Choice::Builtin(LayoutKind::Chatmrpt),
            path if path.ends_with(".toml") => Choice::File(path.into()),
            other => return Err(ChoiceError(other.to_string())),
        })
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

    fn trt() -> Layout {
        Layout::builtin(LayoutKind::Trt, &Overrides::default()).unwrap()
    }

    fn flask(prefix: &str) -> Layout {
        Layout::builtin(LayoutKind::Flask, &Overrides { prefix: Some(prefix.into()), ..Default::default() }).unwrap()
    }

    #[test]
    fn builtins_load_with_their_defaults() {
        let t = trt();
        assert_eq!((t.kind, t.prefix.as_str()), (LayoutKind::Trt, "trt:"));
        assert_eq!(t.session_key(&"user_1234".into()), Key::from("trt:session:user_1234:state"));
        assert_eq!(t.index.as_ref().unwrap().key, "trt:active_sessions");
        assert_eq!(t.idle, IdleSource::LastInteraction);
        assert_eq!(t.history().unwrap().template.key("trt:", b"u"), Key::from("trt:session:u:history"));
        let f = Layout::builtin(LayoutKind::Flask, &Overrides::default()).unwrap();
        assert_eq!((f.kind, f.prefix.as_str(), f.idle), (LayoutKind::Flask, "session:", IdleSource::Ttl));
        assert!(f.index.is_none());
    }

    #[test]
    fn session_ids_come_out_of_keys() {
        let t = trt();
        assert_eq!(t.session_id(b"trt:session:user_1234:state"), Some(&b"user_1234"[..]));
        assert_eq!(t.session_id(b"trt:session:a:b:state"), Some(&b"a:b"[..]));
        assert_eq!(t.session_id(b"trt:session:bad\xff:state"), Some(&b"bad\xff"[..]), "ids are bytes");
        assert_eq!(t.session_id(b"trt:session:user_1234:history"), None);
        assert_eq!(t.session_id(b"trt:session::state"), None);
        let f = flask("chatmrpt:");
        assert_eq!(f.session_id(b"chatmrpt:7c6jMfKivIBH2MwYM1VdPBwWagCCw_0q1idEtMeBUrE").map(<[u8]>::len), Some(43));
        assert_eq!(f.session_id(b"chatmrpt:analysis_complete:abc"), None, "a further ':' is not a session");
        assert_eq!(f.session_id(b"other:abc"), None);
    }

    #[test]
    fn scan_patterns_escape_literal_glob_characters() {
        let t = trt();
        assert_eq!(t.session_scan_pattern(), b"trt:session:*:state");
        let rl = &t.related[1];
        assert_eq!(rl.template.scan_pattern("trt:", Some(b"we*ird[1]")), b"trt:ratelimit:we\\*ird\\[1\\]:*");
        assert!(rl.template.matches("trt:", b"u1", b"trt:ratelimit:u1:29301"));
        assert!(!rl.template.matches("trt:", b"u1", b"trt:ratelimit:u10:29301"));
        let f = flask("chatmrpt:");
        assert_eq!(f.related[0].template.scan_pattern("chatmrpt:", Some(b"sid")), b"chatmrpt:*:sid");
        assert!(f.related[0].template.matches("chatmrpt:", b"sid", b"chatmrpt:analysis_complete:sid"));
    }

    #[test]
    fn a_wildcard_key_can_fit_several_ids() {
        let t = trt();
        let rl = &t.related[1].template;
        let ids = rl.possible_ids("trt:", b"trt:ratelimit:abc:def:29000001", "");
        assert_eq!(ids, [&b"abc"[..], b"abc:def"]);
        assert_eq!(rl.possible_ids("trt:", b"trt:ratelimit:u1:7", ""), [&b"u1"[..]]);
        assert!(rl.possible_ids("trt:", b"other:u1:7", "").is_empty());
        let f = flask("chatmrpt:");
        let flags = &f.related[0].template;
        assert_eq!(flags.possible_ids("chatmrpt:", b"chatmrpt:a:b:sid", ":"), [&b"sid"[..]], "flask ids have no ':'");
        assert_eq!(flags.possible_ids("chatmrpt:", b"chatmrpt:a:b:sid", ""), [&b"sid"[..], b"b:sid"]);
    }

    #[test]
    fn overrides_apply() {
        let f = Layout::builtin(
            LayoutKind::Flask,
            &Overrides { prefix: Some("myapp:sess:".into()), stage_field: Some("wf.step".into()) },
        )
        .unwrap();
        assert_eq!(f.session_key(&"x".into()), Key::from("myapp:sess:x"));
        assert_eq!(f.fields.stage, ["wf.step"]);
    }

    #[test]
    fn finals_match_stage_or_substate() {
        let t = trt();
        assert!(t.is_final(Some("stage_1_safety_building"), Some("stage_1_complete")));
        assert!(!t.is_final(Some("stage_1_safety_building"), Some("3.1_assess_readiness")));
        assert!(!t.is_final(None, None));
    }

    #[test]
    fn bad_layout_files_say_what_is_wrong() {
        let err = Layout::from_toml(
            "name = \"x\"\n[session]\nkey = \"{prefix}all\"\ntype = \"hash\"\n",
            &Overrides::default(),
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("has no {id}"), "{err}");
        let err = Layout::from_toml("name = 1", &Overrides::default()).unwrap_err().to_string();
        assert!(err.starts_with("invalid layout"), "{err}");
        let err =
            Layout::from_toml("name = \"x\"\n[session]\nkey = \"{pfx}{id}\"\ntype = \"hash\"\n", &Overrides::default())
                .unwrap_err()
                .to_string();
        assert!(err.contains("braces"), "{err}");
    }

    #[test]
    fn prefixes_are_inferred_from_key_shapes() {
        let o = Overrides::default();
        let trt = Layout::builtin(LayoutKind::Trt, &o).unwrap();
        let flask = Layout::builtin(LayoutKind::Flask, &o).unwrap();
        assert_eq!(trt.prefix_of("trt:session:user_1:state", "hash").as_deref(), Some("trt:"));
        assert_eq!(trt.prefix_of("app:trt:session:u:state", "hash").as_deref(), Some("app:trt:"));
        assert_eq!(trt.prefix_of("trt:session:user_1:state", "string"), None);
        assert_eq!(trt.prefix_of("trt:session:user_1:history", "list"), None);
        let sid = "7c6jMfKivIBH2MwYM1VdPBwWagCCw_0q1idEtMeBUrE";
        assert_eq!(flask.prefix_of(&format!("chatmrpt:{sid}"), "string").as_deref(), Some("chatmrpt:"));
        assert_eq!(
            flask.prefix_of("session:d6474e42-b794-4ee5-ae8e-36709bba8307", "string").as_deref(),
            Some("session:")
        );
        assert_eq!(flask.prefix_of("chatmrpt:short", "string"), None);
        assert_eq!(flask.prefix_of(&format!("chatmrpt:{sid}"), "hash"), None);
    }
}
