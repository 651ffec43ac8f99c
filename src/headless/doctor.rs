//! `sessiontop doctor`: connects as the user would and says what works and what will degrade:
//! the server and its kind, TLS, the round trip, the layout, the features sessiontop uses, and
//! for every command sessiontop sends whether this user may run it (each read by trying a
//! harmless form of it on a key that does not exist, which also says whether the server has
//! it; each write by `ACL DRYRUN` where the user may ask that, else by trying its no-op form)
//! and what it costs when denied; then the least-privilege ACL rules sessiontop needs for the
//! layout found, read-only and with writes, ready to paste.
//!
//! Nothing it sends changes data: the reads it tries read a key that does not exist, and the
//! writes it tries (never under `--read-only`) are no-ops on that key (`UNLINK` of nothing,
//! `PERSIST` of nothing, an empty `MULTI`/`EXEC`).

use std::collections::HashMap;

use serde::Serialize;

use crate::collect::detect::{self, Resolved};
use crate::conn::link::Failure;
use crate::conn::route::Router;
use crate::conn::topology::{Kind, LinkUse};
use crate::engine::domain::EventsState;
use crate::engine::layout::{KeyType, Layout};
use crate::setup::Setup;

/// A command sessiontop sends, with a harmless form of it to try and what it costs when denied.
#[derive(Debug, Clone, Copy)]
struct Need {
    /// As ACL rules name it: `hmget`, `client|list`.
    acl: &'static str,
    /// The form tried: `{key}` is a key that does not exist under the layout's prefix.
    probe: &'static [&'static str],
    /// What is lost without it.
    costs: &'static str,
    /// Without it sessiontop cannot count or read sessions at all.
    essential: bool,
    write: bool,
}

const fn read(acl: &'static str, probe: &'static [&'static str], costs: &'static str) -> Need {
    Need { acl, probe, costs, essential: false, write: false }
}

const fn essential(acl: &'static str, probe: &'static [&'static str], costs: &'static str) -> Need {
    Need { acl, probe, costs, essential: true, write: false }
}

const fn write(acl: &'static str, probe: &'static [&'static str], costs: &'static str) -> Need {
    Need { acl, probe, costs, essential: false, write: true }
}

/// What every target needs.
const BASE: &[Need] = &[
    essential("ping", &["PING"], "the connection check"),
    read("info", &["INFO", "server"], "the server panel, the pacing by INFO commandstats, every server finding"),
    read("dbsize", &["DBSIZE"], "the key count and the census' progress"),
    essential(
        "scan",
        &["SCAN", "0", "MATCH", "{key}", "COUNT", "1"],
        "layout detection and the census of a layout without an index",
    ),
    essential("type", &["TYPE", "{key}"], "reading keys of unknown type (the inspector, detection)"),
    essential("pttl", &["PTTL", "{key}"], "every TTL: idle times, no_ttl, ttl_mismatch"),
    read("exists", &["EXISTS", "{key}"], "locks and rate-limit counters (stale_lock, rate_limited)"),
    read("memory|usage", &["MEMORY", "USAGE", "{key}"], "session sizes (oversized) and the read cap's check"),
    read("client|setname", &["CLIENT", "SETNAME", "sessiontop"], "its name in CLIENT LIST (courtesy)"),
    read("client|list", &["CLIENT", "LIST", "ID", "0"], "the clients view, new_client_host and clients_fell"),
    read("slowlog|get", &["SLOWLOG", "GET", "1"], "the slowlog view and slow_session_commands"),
    read("latency|latest", &["LATENCY", "LATEST"], "latency events in the slowlog view"),
];

/// `CLIENT NO-TOUCH` exists from 7.2; on older servers it is not asked for.
const NO_TOUCH: Need =
    read("client|no-touch", &["CLIENT", "NO-TOUCH", "ON"], "reads leave sessions' LRU/LFU as it was (7.2+)");

const STRINGS: &[Need] = &[
    essential("getrange", &["GETRANGE", "{key}", "0", "0"], "string payloads (Flask-Session)"),
    read("strlen", &["STRLEN", "{key}"], "the size of payloads past the first peek"),
    read("get", &["GET", "{key}"], "rate-limit counters and whole values in the inspector"),
];

const HASHES: &[Need] = &[
    essential("hmget", &["HMGET", "{key}", "f"], "hash sessions' stage and fields"),
    read("hlen", &["HLEN", "{key}"], "hash sizes"),
    read("hstrlen", &["HSTRLEN", "{key}", "f"], "field sizes against the read cap"),
    read("hgetall", &["HGETALL", "{key}"], "the inspector's hashes"),
    read("hkeys", &["HKEYS", "{key}"], "the largest fields of an oversized hash"),
    read("hscan", &["HSCAN", "{key}", "0", "COUNT", "1"], "the inspector's large hashes"),
    read("hrandfield", &["HRANDFIELD", "{key}", "1"], "detection's sample of hash fields"),
];

const LISTS: &[Need] = &[
    read("llen", &["LLEN", "{key}"], "history lengths (history_over_cap)"),
    read("lrange", &["LRANGE", "{key}", "0", "0"], "history entries (stuck, the inspector)"),
];

const ZSETS: &[Need] = &[
    read("zcard", &["ZCARD", "{key}"], "the index's size"),
    read("zscore", &["ZSCORE", "{key}", "m"], "a session's index score (clock_trouble)"),
    read("zrange", &["ZRANGE", "{key}", "0", "0"], "the inspector's sorted sets"),
    essential(
        "zrangebyscore",
        &["ZRANGEBYSCORE", "{key}", "-inf", "+inf", "LIMIT", "0", "1"],
        "the census' walk over the index",
    ),
    read("zrevrange", &["ZREVRANGE", "{key}", "0", "0"], "the first page, most recent first"),
    read(
        "zrevrangebyscore",
        &["ZREVRANGEBYSCORE", "{key}", "+inf", "-inf", "LIMIT", "0", "1"],
        "the visible page's refresh",
    ),
];

const SETS: &[Need] = &[
    read("scard", &["SCARD", "{key}"], "set sizes"),
    read("sscan", &["SSCAN", "{key}", "0", "COUNT", "1"], "the inspector's sets"),
];

const CLUSTER: &[Need] = &[
    read("cluster|shards", &["CLUSTER", "SHARDS"], "the cluster's map (CLUSTER SLOTS before 7.0)"),
    read("cluster|slots", &["CLUSTER", "SLOTS"], "the cluster's map where CLUSTER SHARDS is missing"),
    read("readonly", &["READONLY"], "reads from replicas (--read-from)"),
    read("asking", &["ASKING"], "following a slot being migrated"),
];

/// Session events: a subscription to the layout's keys' notifications (tried on a connection
/// of its own: a subscribed connection can send nothing else).
const EVENTS: Need = read(
    "psubscribe",
    &["PSUBSCRIBE", "{channel}"],
    "session events (the events view, sessiontop events, counts between passes)",
);

const WRITES: &[Need] = &[
    write("unlink", &["UNLINK", "{key}"], "delete"),
    write("pexpireat", &["PEXPIREAT", "{key}", "1"], "expire"),
    write("persist", &["PERSIST", "{key}"], "persist and no_ttl's fix"),
    write("zrem", &["ZREM", "{key}", "m"], "the index entry of a delete, orphaned's fix"),
    write("multi", &["MULTI"], "every write (one MULTI/EXEC a slot)"),
    write("exec", &["EXEC"], "every write (one MULTI/EXEC a slot)"),
];

/// Whether the user may run one command, and how that was found.
#[derive(Debug, Clone, Serialize)]
pub struct Permission {
    pub command: String,
    /// `None`: not tried (a write under `--read-only`, or unknown to the server).
    pub allowed: Option<bool>,
    /// `acl dryrun`, `tried`, `not tried (--read-only)`, `unknown command`.
    pub how: String,
    pub costs: String,
    pub essential: bool,
    pub write: bool,
    /// What the server said when it refused.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub said: Option<String>,
}

/// What `doctor` found.
#[derive(Debug, Clone, Serialize)]
pub struct Diagnosis {
    pub target: String,
    pub tls: bool,
    pub user: Option<String>,
    pub round_trip_ms: Option<f64>,
    pub server: ServerFacts,
    pub layout: Option<String>,
    pub features: Vec<(String, String)>,
    pub permissions: Vec<Permission>,
    pub acl_read_only: Option<String>,
    pub acl_with_writes: Option<String>,
    /// 0 fine, 1 some fields degrade, 2 sessions cannot be read (as `check`).
    pub exit_code: u8,
    pub verdict: String,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct ServerFacts {
    pub version: Option<String>,
    /// `Redis`, `Valkey`, `ElastiCache (Redis)`, …
    pub product: String,
    /// `standalone`, `cluster` or `sentinel`, and the role of the node answering.
    pub kind: String,
    pub role: Option<String>,
}

/// Runs the doctor on the setup's one target.
pub async fn diagnose(setup: &Setup) -> Result<Diagnosis, super::HeadlessError> {
    let target = setup.one()?;
    let url = target.target.redacted_url().to_string();
    let topology = setup.topology(target, false);
    let router = Router::discover(&topology, LinkUse::Poll)
        .await
        .map_err(|failure| super::HeadlessError::Connect { url: url.clone(), failure })?;
    let round_trip_ms = round_trip(&router).await?;
    let server = server_facts(&router, topology.kind(), url.contains(".cache.amazonaws.com")).await;
    let (layout, layout_note) =
        match detect::resolve_layout(&router, &target.layout.choice, &target.layout.overrides).await {
            Ok(Resolved::Layout { layout, note }) => {
                let note = note.map(|n| format!(" ({n})")).unwrap_or_default();
                let said = format!("{}, prefix '{}'{note}", layout.name, layout.prefix);
                (Some(*layout), Some(said))
            }
            Ok(Resolved::NotDetected { note, .. }) => (None, Some(format!("none detected ({note})"))),
            Err(e) => (None, Some(format!("not detected: {e}"))),
        };
    let prefix = layout.as_ref().map_or("", |l| l.prefix.as_str());
    let needs = needs_of(layout.as_ref(), topology.kind(), target.target.db(), topology.sentinels().is_some());
    let user = user_of(&router, &url).await;
    let writes_allowed = !target.writer.is_read_only();
    let mut permissions = Vec::with_capacity(needs.len() + 1);
    let probe_key = format!("{prefix}sessiontop-doctor:{:016x}", fastrand::u64(..));
    let dryrun = dryrun_works(&router, user.as_deref()).await;
    let channel = crate::collect::events::pattern(target.target.db(), prefix);
    let mut probe =
        Probe { router: &router, topology: &topology, key: &probe_key, channel: &channel, reads: HashMap::new() };
    let all: Vec<&Need> = needs.iter().chain(std::iter::once(&NO_TOUCH)).collect();
    probe.reads = try_reads(&probe, &all).await;
    for need in all {
        permissions.push(permission(&probe, need, user.as_deref(), dryrun, writes_allowed).await);
    }
    let features = features(&router, &permissions, topology.kind(), layout.as_ref()).await;
    let known = |p: &&Permission| p.how != "unknown command";
    let granted: Vec<&Permission> = permissions.iter().filter(known).collect();
    let patterns = layout.as_ref().map(key_patterns);
    let events = granted.iter().any(|p| p.command == "psubscribe").then_some(channel.as_str());
    let acl = |writes: bool| {
        let commands = granted.iter().filter(|p| writes || !p.write).map(|p| p.command.as_str());
        patterns.as_ref().map(|keys| acl_rule(keys, events, commands))
    };
    let (acl_read_only, acl_with_writes) = (acl(false), acl(true));
    let (exit_code, verdict) = verdict(&permissions, layout.is_some());
    Ok(Diagnosis {
        target: url,
        tls: target.target.is_tls(),
        user,
        round_trip_ms,
        server,
        layout: layout_note,
        features,
        permissions,
        acl_read_only,
        acl_with_writes,
        exit_code,
        verdict,
    })
}

/// The commands sessiontop sends to this target for this layout (every type's reads when the
/// layout has keys of any type, or none was found).
fn needs_of(layout: Option<&Layout>, kind: Kind, db: i64, sentinel: bool) -> Vec<Need> {
    let mut needs: Vec<Need> = BASE.to_vec();
    let mut types: Vec<KeyType> = Vec::new();
    match layout {
        Some(l) => {
            types.push(l.session_type);
            types.extend(l.parts.iter().map(|p| p.ty));
            if l.index.is_some() {
                types.push(KeyType::Zset);
            }
            if !l.related.is_empty() {
                // Locks and counters are strings; the inspector reads related keys of any type.
                types.extend([KeyType::String, KeyType::Hash, KeyType::List, KeyType::Set, KeyType::Zset]);
            }
        }
        None => types.extend([KeyType::String, KeyType::Hash, KeyType::List, KeyType::Set, KeyType::Zset]),
    }
    for (ty, family) in [
        (KeyType::String, STRINGS),
        (KeyType::Hash, HASHES),
        (KeyType::List, LISTS),
        (KeyType::Zset, ZSETS),
        (KeyType::Set, SETS),
    ] {
        // A family's first read is essential only where it holds the sessions (or the index).
        let holds = layout.is_some_and(|l| l.session_type == ty || (ty == KeyType::Zset && l.index.is_some()));
        if types.contains(&ty) {
            needs.extend(family.iter().map(|n| Need { essential: n.essential && holds, ..*n }));
        }
    }
    if kind == Kind::Cluster {
        needs.extend_from_slice(CLUSTER);
    }
    if sentinel {
        needs.push(read(
            "role",
            &["ROLE"],
            "confirming the primary the sentinels name (INFO replication is used where denied)",
        ));
    }
    if db != 0 {
        needs.push(essential("select", &["SELECT", "0"], "choosing the database"));
    }
    if layout.is_some() {
        needs.push(EVENTS);
    }
    // The index entry is the one key a write removes with ZREM.
    let index = layout.is_some_and(|l| l.index.is_some());
    needs.extend(WRITES.iter().filter(|w| index || w.acl != "zrem"));
    needs
}

/// The median of five `PING`s.
async fn round_trip(router: &Router) -> Result<Option<f64>, super::HeadlessError> {
    let mut times = Vec::with_capacity(5);
    for _ in 0..5 {
        let sent = std::time::Instant::now();
        match router.query::<redis::Value>(&redis::cmd("PING")).await {
            Ok(_) => times.push(sent.elapsed().as_secs_f64() * 1e3),
            Err(f) if f.is_connection() => return Err(super::HeadlessError::Redis(f)),
            Err(_) => return Ok(None),
        }
    }
    times.sort_by(f64::total_cmp);
    Ok(times.get(2).copied())
}

async fn server_facts(router: &Router, kind: Kind, aws_host: bool) -> ServerFacts {
    let info: Option<String> = router.query(redis::cmd("INFO").arg("server")).await.ok();
    let replication: Option<String> = router.query(redis::cmd("INFO").arg("replication")).await.ok();
    let field = |text: &Option<String>, name: &str| {
        text.as_deref()?.lines().find_map(|l| l.strip_prefix(name)?.strip_prefix(':')).map(|v| v.trim().to_string())
    };
    let valkey = field(&info, "valkey_version").or_else(|| field(&info, "server_name").filter(|n| n == "valkey"));
    let aws = aws_host || field(&info, "os").is_some_and(|os| os.contains("ElastiCache"));
    let engine = if valkey.is_some() { "Valkey" } else { "Redis" };
    let product = if aws { format!("ElastiCache ({engine})") } else { engine.to_string() };
    let version = field(&info, "valkey_version").or_else(|| field(&info, "redis_version"));
    ServerFacts { version, product, kind: kind.name().to_string(), role: field(&replication, "role") }
}

/// The user this connection is: `ACL WHOAMI`, else the URL's, else `default`.
async fn user_of(router: &Router, url: &str) -> Option<String> {
    if let Ok(name) = router.query::<String>(redis::cmd("ACL").arg("WHOAMI")).await {
        return Some(name);
    }
    let parsed = url::Url::parse(url).ok()?;
    Some(if parsed.username().is_empty() { "default".into() } else { parsed.username().to_string() })
}

/// Whether `ACL DRYRUN` answers for this user (7.0+, and a user allowed to ask it).
async fn dryrun_works(router: &Router, user: Option<&str>) -> bool {
    let Some(user) = user else { return false };
    matches!(router.query::<String>(redis::cmd("ACL").arg("DRYRUN").arg(user).arg("PING")).await, Ok(ok) if ok == "OK")
}

/// Where the harmless forms are tried: the connection, the nodes (for a subscription), the key
/// that does not exist and the events' channel pattern.
struct Probe<'a> {
    router: &'a Router,
    topology: &'a std::sync::Arc<crate::conn::topology::Topology>,
    key: &'a str,
    channel: &'a str,
    /// What each read's harmless form got, all sent in one pipeline.
    reads: HashMap<&'static str, Result<(), Failure>>,
}

impl Probe<'_> {
    /// A need's harmless form, with the probe's key and channel in their places.
    fn form(&self, need: &Need) -> Vec<&str> {
        need.probe
            .iter()
            .map(|a| match *a {
                "{key}" => self.key,
                "{channel}" => self.channel,
                other => other,
            })
            .collect()
    }
}

/// Tries the reads' harmless forms (not the subscription, which needs a connection of its own)
/// in one pipeline.
async fn try_reads(probe: &Probe<'_>, needs: &[&Need]) -> HashMap<&'static str, Result<(), Failure>> {
    let reads: Vec<&Need> = needs.iter().copied().filter(|n| !n.write && n.acl != "psubscribe").collect();
    let mut pipe = crate::conn::link::pipe();
    for need in &reads {
        let args = probe.form(need);
        let cmd = pipe.cmd(args[0]);
        for a in &args[1..] {
            cmd.arg(*a);
        }
    }
    let replies = match probe.router.pipeline(&pipe).await {
        Ok(replies) => replies,
        Err(f) => return reads.iter().map(|n| (n.acl, Err(f.clone()))).collect(),
    };
    let mut replies = replies.into_iter();
    reads
        .iter()
        .map(|n| {
            let reply = replies.next().unwrap_or_else(|| Err(Failure::Protocol("pipeline".into())));
            (n.acl, reply.map(|_| ()))
        })
        .collect()
}

async fn permission(
    probe: &Probe<'_>,
    need: &Need,
    user: Option<&str>,
    dryrun: bool,
    writes_allowed: bool,
) -> Permission {
    let router = probe.router;
    let args = probe.form(need);
    let mut permission = Permission {
        command: need.acl.to_string(),
        allowed: None,
        how: String::new(),
        costs: need.costs.to_string(),
        essential: need.essential,
        write: need.write,
        said: None,
    };
    // Reads are tried (harmless, and only trying says whether the server has them); writes
    // are asked of ACL DRYRUN where it answers.
    let result = if dryrun && need.write {
        permission.how = "acl dryrun".into();
        let mut cmd = redis::cmd("ACL");
        cmd.arg("DRYRUN").arg(user.unwrap_or("default"));
        for a in &args {
            cmd.arg(*a);
        }
        match router.query::<String>(&cmd).await {
            Ok(ok) if ok == "OK" => Ok(()),
            Ok(refusal) => Err(Failure::Denied { command: need.acl.to_uppercase(), detail: refusal }),
            Err(f) => Err(f),
        }
    } else if need.write && !writes_allowed {
        permission.how = "not tried (--read-only)".into();
        return permission;
    } else {
        permission.how = "tried".into();
        match probe.reads.get(need.acl) {
            Some(read) => read.clone(),
            None if need.acl == "psubscribe" => try_subscribe(probe).await,
            None => try_form(router, need, &args).await,
        }
    };
    match result {
        Ok(()) => permission.allowed = Some(true),
        Err(f @ Failure::Denied { .. }) => {
            permission.allowed = Some(false);
            permission.said = Some(f.to_string());
        }
        Err(Failure::Unknown { .. }) => permission.how = "unknown command".into(),
        Err(Failure::Server { detail, .. }) if detail.to_ascii_lowercase().contains("unknown") => {
            permission.how = "unknown command".into();
        }
        // Any other refusal (a wrong type, a cluster that is not one) means it ran.
        Err(Failure::Server { .. } | Failure::Protocol(_)) => permission.allowed = Some(true),
        Err(f) => {
            permission.how = format!("could not try: {f}");
        }
    }
    permission
}

/// Subscribes to the events' channel pattern on a connection of its own, and leaves.
async fn try_subscribe(probe: &Probe<'_>) -> Result<(), Failure> {
    let Some(node) = probe.topology.map().primaries().into_iter().next() else { return Ok(()) };
    let mut pubsub = node.target().pubsub().await?;
    pubsub.psubscribe(probe.channel).await.map_err(|e| Failure::from_redis("PSUBSCRIBE", &e))
}

/// Sends the harmless form; `MULTI` and `EXEC` go as the empty transaction they make together.
async fn try_form(router: &Router, need: &Need, args: &[&str]) -> Result<(), Failure> {
    let mut cmd = redis::cmd(args[0]);
    for a in &args[1..] {
        cmd.arg(*a);
    }
    if matches!(need.acl, "multi" | "exec") {
        let mut pipe = crate::conn::link::pipe();
        pipe.cmd("MULTI").cmd("EXEC");
        let replies = router.pipeline(&pipe).await?;
        let index = usize::from(need.acl == "exec");
        return match replies.into_iter().nth(index) {
            Some(Err(f @ Failure::Denied { .. })) => Err(f),
            // EXEC after a refused MULTI: "EXEC without MULTI" says nothing of EXEC itself.
            _ => Ok(()),
        };
    }
    router.query::<redis::Value>(&cmd).await.map(|_| ())
}

async fn features(
    router: &Router,
    permissions: &[Permission],
    kind: Kind,
    layout: Option<&Layout>,
) -> Vec<(String, String)> {
    let state = |command: &str| -> String {
        match permissions.iter().find(|p| p.command == command) {
            Some(p) if p.how == "unknown command" => "not on this server".into(),
            Some(Permission { allowed: Some(true), .. }) => "yes".into(),
            Some(Permission { allowed: Some(false), .. }) => "denied to this user".into(),
            Some(p) => p.how.clone(),
            None => "not used here".into(),
        }
    };
    // The events' own judgement of the server's setting, as the watch makes it.
    let events = match layout {
        None => "not judged without a session layout".to_string(),
        Some(layout) => match crate::collect::events::state_of(router, layout).await {
            EventsState::On { flags: Some(flags) } => format!("on ({flags})"),
            EventsState::Off { how, .. } => format!("off: {how}"),
            _ => format!(
                "cannot tell (CONFIG GET is not allowed; on ElastiCache, see the parameter group's notify-keyspace-events), so a watch's census reads every session whole each pass: {}",
                crate::collect::events::how_to_turn_on()
            ),
        },
    };
    let slowlog = state("slowlog|get");
    let mut features = vec![
        ("CLIENT NO-TOUCH".to_string(), state("client|no-touch")),
        ("MEMORY USAGE".to_string(), state("memory|usage")),
        ("CLIENT LIST".to_string(), state("client|list")),
        ("SLOWLOG".to_string(), slowlog),
        ("keyspace events".to_string(), events),
    ];
    if kind == Kind::Cluster {
        features.insert(0, ("CLUSTER SHARDS".to_string(), state("cluster|shards")));
    }
    features
}

/// The keys a layout's commands touch, as ACL key patterns: its prefix and everything under
/// it when every key it names begins with the prefix (the built-in layouts), else each key's
/// own pattern.
fn key_patterns(layout: &Layout) -> Vec<String> {
    let mut globs: Vec<Vec<u8>> = vec![layout.session_key.scan_pattern(&layout.prefix, None)];
    globs.extend(layout.parts.iter().map(|p| p.template.scan_pattern(&layout.prefix, None)));
    globs.extend(layout.related.iter().map(|r| r.template.scan_pattern(&layout.prefix, None)));
    if let Some(index) = &layout.index {
        globs.push(crate::engine::layout::glob_escape(index.key.as_bytes()));
    }
    let prefix = crate::engine::layout::glob_escape(layout.prefix.as_bytes());
    if !layout.prefix.is_empty() && globs.iter().all(|g| g.starts_with(&prefix)) {
        return vec![format!("{}*", String::from_utf8_lossy(&prefix))];
    }
    let mut patterns: Vec<String> = globs.iter().map(|g| String::from_utf8_lossy(g).into_owned()).collect();
    patterns.sort();
    patterns.dedup();
    patterns
}

/// `ACL SETUSER sessiontop on >CHANGE-ME resetkeys ~trt:* resetchannels -@all +ping …`.
fn acl_rule<'a>(keys: &[String], events: Option<&str>, commands: impl Iterator<Item = &'a str>) -> String {
    let mut rule = String::from("ACL SETUSER sessiontop on >CHANGE-ME resetkeys");
    for k in keys {
        rule.push_str(&format!(" ~{k}"));
    }
    rule.push_str(" resetchannels");
    // The one channel pattern session events are subscribed to, exactly as it is subscribed.
    if let Some(channel) = events {
        rule.push_str(&format!(" &{channel}"));
    }
    rule.push_str(" -@all");
    let mut seen: Vec<&str> = Vec::new();
    for c in commands {
        if !seen.contains(&c) {
            seen.push(c);
            rule.push_str(&format!(" +{c}"));
        }
    }
    rule
}

/// The exit code and its sentence: 2 when sessions cannot be read, 1 when fields degrade.
fn verdict(permissions: &[Permission], layout: bool) -> (u8, String) {
    let denied = |essential: bool| -> Vec<&Permission> {
        permissions.iter().filter(|p| !p.write && p.essential == essential && p.allowed == Some(false)).collect()
    };
    let names = |list: &[&Permission]| list.iter().map(|p| p.command.to_uppercase()).collect::<Vec<_>>().join(", ");
    let (blocking, degrading) = (denied(true), denied(false));
    let writes: Vec<&Permission> = permissions.iter().filter(|p| p.write && p.allowed == Some(false)).collect();
    let mut said = Vec::new();
    let code = if !blocking.is_empty() {
        said.push(format!("CRITICAL: sessiontop cannot read sessions: {} denied", names(&blocking)));
        2
    } else if !degrading.is_empty() {
        said.push(format!(
            "WARNING: {} denied: those fields show — and their findings are not judged",
            names(&degrading)
        ));
        1
    } else {
        said.push("OK: every read sessiontop sends is allowed".into());
        0
    };
    if !writes.is_empty() {
        said.push(format!("writes will be refused by the server ({} denied)", names(&writes)));
    }
    if !layout {
        said.push("no session layout found: the commands listed are every type's".into());
    }
    (code, said.join("; "))
}

/// The report as text: a line a fact, a line a command, the ACL rules last.
pub fn text(d: &Diagnosis) -> String {
    use std::fmt::Write;
    let esc = crate::util::text::escape_str;
    let mut out = String::new();
    let _ = writeln!(out, "sessiontop doctor: {}", esc(&d.target));
    let rtt = d.round_trip_ms.map_or_else(|| "unknown".into(), |ms| format!("{ms:.2} ms (median of 5 PINGs)"));
    let user = d.user.as_deref().map_or_else(|| "unknown".into(), esc);
    let _ = writeln!(out, "connection   TLS {}, user {user}, round trip {rtt}", if d.tls { "on" } else { "off" });
    let s = &d.server;
    let role = s.role.as_deref().map(|r| format!(", answered by a {r}")).unwrap_or_default();
    let _ = writeln!(
        out,
        "server       {} {}, {}{role}",
        s.product,
        s.version.as_deref().unwrap_or("(version unknown)"),
        s.kind
    );
    let _ = writeln!(out, "layout       {}", d.layout.as_deref().map_or_else(|| "none".into(), esc));
    for (i, (name, state)) in d.features.iter().enumerate() {
        let head = if i == 0 { "features" } else { "" };
        let _ = writeln!(out, "{head:<12} {name}: {}", esc(state));
    }
    let dryrun = d.permissions.iter().any(|p| p.how == "acl dryrun");
    let how = if dryrun { "writes asked of ACL DRYRUN" } else { "writes tried as no-ops on a key that does not exist" };
    let _ = writeln!(out, "commands     (reads tried in a harmless form; {how})");
    for p in &d.permissions {
        let mark = match (p.allowed, p.how.as_str()) {
            (Some(true), _) => "ok",
            (Some(false), _) => "DENIED",
            (None, "unknown command") => "absent",
            (None, _) => "untried",
        };
        let kind = if p.write { " (write)" } else { "" };
        let _ = writeln!(out, "  {mark:<8} {:<18} {}{kind}", p.command.to_uppercase(), p.costs);
        if let Some(said) = &p.said {
            let _ = writeln!(out, "           {}", esc(said));
        }
    }
    let _ = writeln!(out, "verdict      {}", d.verdict);
    match (&d.acl_read_only, &d.acl_with_writes) {
        (Some(ro), Some(rw)) => {
            let _ = writeln!(out, "\nLeast-privilege ACL, read-only (the dashboard, snapshot, check, serve):\n  {ro}");
            let _ = writeln!(out, "With writes (expire, persist, delete, fix):\n  {rw}");
            let _ = writeln!(out, "(replace CHANGE-ME with the password, and the user name if you like)");
            if d.server.kind == "cluster" {
                let _ = writeln!(
                    out,
                    "(on a cluster, on every node: the ACL is each node's own; ElastiCache: the same rules as an access string)"
                );
            }
        }
        _ => {
            let _ = writeln!(out, "\nNo ACL suggested: no session layout was found (give --layout and --prefix).");
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::layout::{LayoutKind, Overrides};

    #[test]
    fn a_builtin_layout_is_one_key_pattern_and_its_commands_only() {
        let trt = Layout::builtin(LayoutKind::Trt, &Overrides::default()).unwrap();
        assert_eq!(key_patterns(&trt), vec!["trt:*".to_string()]);
        let needs = needs_of(Some(&trt), Kind::Standalone, 0, false);
        let names: Vec<&str> = needs.iter().map(|n| n.acl).collect();
        for must in ["hmget", "llen", "zrangebyscore", "pttl", "unlink", "multi"] {
            assert!(names.contains(&must), "{must} missing from {names:?}");
        }
        assert!(!names.contains(&"cluster|shards") && !names.contains(&"select"), "{names:?}");
        assert!(needs.iter().any(|n| n.acl == "hmget" && n.essential));
        assert!(needs.iter().any(|n| n.acl == "getrange" && !n.essential), "a lock's read is not the sessions'");
        // Flask: string sessions, side keys of any type, no index.
        let flask = Layout::builtin(LayoutKind::Flask, &Overrides::default()).unwrap();
        let needs = needs_of(Some(&flask), Kind::Cluster, 0, false);
        let essential: Vec<&str> = needs.iter().filter(|n| n.essential).map(|n| n.acl).collect();
        assert_eq!(essential, ["ping", "scan", "type", "pttl", "getrange"]);
        let names: Vec<&str> = needs.iter().map(|n| n.acl).collect();
        assert!(names.contains(&"cluster|shards") && !names.contains(&"zrem"), "{names:?}");
    }

    #[test]
    fn the_rule_names_each_command_once() {
        let rule = acl_rule(&["trt:*".into()], None, ["ping", "info", "ping"].into_iter());
        assert_eq!(rule, "ACL SETUSER sessiontop on >CHANGE-ME resetkeys ~trt:* resetchannels -@all +ping +info");
        let rule = acl_rule(&["trt:*".into()], Some("__keyspace@0__:trt:*"), ["psubscribe"].into_iter());
        assert!(rule.contains(" resetchannels &__keyspace@0__:trt:* -@all +psubscribe"), "{rule}");
    }
}
