//! The command line: every subcommand and flag, with the defaults the README lists.

use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};

use crate::engine::layout::Choice;
use crate::util::text::DurationError;

/// A terminal dashboard for the Redis databases that web applications keep their user sessions in.
#[derive(Debug, Parser)]
#[command(name = "sessiontop", version, about, long_about = None)]
pub struct Cli {
    #[command(flatten)]
    pub global: Global,
    #[command(subcommand)]
    pub command: Option<Command>,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Start a throwaway redis-server filled with sessions of both layouts and live traffic,
    /// and open the dashboard on it.
    Demo(DemoArgs),
    /// One full poll and census, printed as text or JSON.
    Snapshot(SnapshotArgs),
    /// Everything about one session: keys, decoded state and payload, history.
    Inspect(InspectArgs),
    /// Give every key of a session a TTL of SECONDS.
    Expire(ExpireArgs),
    /// Remove the TTL from every key of a session.
    Persist(IdArgs),
    /// Delete every key of a session and its index entry, atomically.
    Delete(DeleteArgs),
    /// One poll and census, then every finding: exit 0 OK, 1 warning, 2 critical, 3 unknown
    /// (cannot connect, not authorised, no session layout), as Nagios plugins do.
    Check(CheckArgs),
    /// Fix what a finding found, session by session, through the audited write path: the exact
    /// changes are listed first, then asked for (default no), and refused when read-only.
    Fix(FixArgs),
    /// What a recording (--record FILE) saw: span, gaps and restarts, peaks, the findings as a
    /// timeline, the sessions per stage over time. Needs no Redis.
    Report(ReportArgs),
    /// The dashboard's watch without a terminal, for a server or a container: metrics for
    /// Prometheus (default http://127.0.0.1:9187/metrics), each finding as it opens, changes
    /// severity or closes as one log line on stdout, the recording with --record. Stops
    /// cleanly on SIGTERM or SIGINT.
    Serve(ServeArgs),
    /// Connect as the user would and say what works and what will degrade: server, TLS,
    /// round trip, layout, features, and for every command sessiontop sends whether this user
    /// may run it and what it costs when not; then the least-privilege ACL rules for the layout,
    /// read-only and with writes. Exit codes as `check`.
    Doctor(DoctorArgs),
    /// A live tail of what happens to sessions (created, saved, expired, evicted, deleted),
    /// from keyspace notifications, until Ctrl-C; says how to turn them on where they are off.
    Events(EventsArgs),
    /// Print the shell completion script for SHELL, generated from this command line (see the
    /// README's install section for where each shell looks for it).
    Completions(CompletionsArgs),
    /// Print the man page, sessiontop(1), generated from this command line; with --dir, write
    /// it and a page for each subcommand (sessiontop-check(1), ...) into DIR.
    Man(ManArgs),
    /// The charts of a recording, played back: Space plays and pauses, +/- change the speed,
    /// n/N jump to the next or previous finding, [ ] seek. Needs no Redis.
    Replay(ReplayArgs),
}

#[derive(Debug, Args, Clone)]
pub struct EventsArgs {
    /// One JSON object a line: at, kind, id, parts, event.
    #[arg(long)]
    pub json: bool,
    /// Stop after N events.
    #[arg(long, value_name = "N")]
    pub count: Option<u64>,
}

#[derive(Debug, Args, Clone)]
pub struct DoctorArgs {
    /// The report as JSON.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args, Clone)]
pub struct CompletionsArgs {
    /// The shell.
    #[arg(value_enum)]
    pub shell: clap_complete::Shell,
}

#[derive(Debug, Args, Clone)]
pub struct ManArgs {
    /// Write sessiontop.1 and a page for each subcommand into DIR instead of printing the one.
    #[arg(long, value_name = "DIR")]
    pub dir: Option<PathBuf>,
}

/// How `serve` writes its log lines.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    /// One JSON object a line.
    Json,
    /// `key=value` pairs a line (Loki, Heroku, `logfmt`).
    Logfmt,
}

#[derive(Debug, Args, Clone)]
pub struct ServeArgs {
    /// How each log line is written: one JSON object, or logfmt's key=value pairs.
    #[arg(long, value_enum, default_value = "json")]
    pub log_format: LogFormat,
}

#[derive(Debug, Args, Clone)]
pub struct ReplayArgs {
    /// The recording.
    pub file: PathBuf,
}

#[derive(Debug, Args, Clone)]
pub struct ReportArgs {
    /// The recording.
    pub file: PathBuf,
    /// Also write the report as one self-contained HTML page (inline SVG charts) to OUT.
    #[arg(long, value_name = "OUT")]
    pub html: Option<PathBuf>,
}

/// Options shared by every command (they may be given before or after it).
#[derive(Debug, Args, Clone)]
pub struct Global {
    /// Redis URL: redis://, rediss:// (TLS) or redis+unix://. Default: the --target's URL, then
    /// $REDIS_URL, then the config's default_target, then redis://127.0.0.1:6379. Repeat as
    /// NAME=URL to watch several targets side by side (the dashboard).
    #[arg(long, global = true, value_name = "[NAME=]URL")]
    pub url: Vec<String>,
    /// A named target from the config file (repeat to watch several side by side).
    #[arg(long, global = true, value_name = "NAME")]
    pub target: Vec<String>,
    /// Config file. Default: $XDG_CONFIG_HOME/sessiontop/config.toml (~/.config/...).
    #[arg(long, global = true, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// ACL user name (overrides the URL's).
    #[arg(long, global = true, value_name = "USER")]
    pub user: Option<String>,
    /// Read the password from FILE (overrides the URL's; $REDISCLI_AUTH is used when neither gives one).
    #[arg(long, global = true, value_name = "FILE")]
    pub password_file: Option<PathBuf>,
    /// Treat the target as a Redis Cluster, whatever `INFO` says or when it may not be read
    /// (a cluster is otherwise found from `INFO cluster`).
    #[arg(long, global = true)]
    pub cluster: bool,
    /// Where to reach a node that the cluster or the sentinels announce at another address
    /// (NAT, an SSH tunnel, a port forward): ANNOUNCED=REACHABLE, both HOST:PORT. Repeatable.
    #[arg(long, global = true, value_name = "HOST:PORT=HOST:PORT")]
    pub node_address_map: Vec<String>,
    /// A sentinel to ask for the primary (HOST:PORT; repeatable), with --master; the same as a
    /// redis+sentinel://HOST:PORT[,HOST:PORT]/MASTER URL.
    #[arg(long, global = true, value_name = "HOST:PORT", requires = "master")]
    pub sentinel: Vec<String>,
    /// The name the sentinels know the primary by.
    #[arg(long, global = true, value_name = "NAME")]
    pub master: Option<String>,
    /// ACL user for the sentinels, when they want their own.
    #[arg(long, global = true, value_name = "USER")]
    pub sentinel_user: Option<String>,
    /// Read the sentinels' own password from FILE.
    #[arg(long, global = true, value_name = "FILE")]
    pub sentinel_password_file: Option<PathBuf>,
    /// Where the census and the visible page read sessions: `primary`; `replica` (only a
    /// replica whose link is up and whose lag is under --replica-max-lag); or `auto` (such a
    /// replica when there is one, else the primary, said on screen). Writes always go to the
    /// primary.
    #[arg(long, global = true, value_name = "WHERE", default_value = "primary")]
    pub read_from: crate::conn::topology::ReadFrom,
    /// The most bytes of replication stream a replica may be behind its primary to be read from.
    #[arg(long, global = true, value_name = "BYTES", default_value_t = 1 << 20)]
    pub replica_max_lag: u64,
    /// Database number (overrides the URL's).
    #[arg(long, global = true, value_name = "N", allow_negative_numbers = true, value_parser = clap::value_parser!(i64).range(0..))]
    pub db: Option<i64>,
    /// CA certificate (PEM) to verify a rediss:// server with, instead of the system roots.
    #[arg(long, global = true, value_name = "FILE")]
    pub tls_ca: Option<PathBuf>,
    /// Do not verify the rediss:// server's certificate.
    #[arg(long, global = true)]
    pub tls_insecure: bool,
    /// How long connecting may take.
    #[arg(long, global = true, value_name = "DURATION", value_parser = parse_positive_duration, default_value = "5s")]
    pub connect_timeout: Duration,
    /// How long one reply may take.
    #[arg(long, global = true, value_name = "DURATION", value_parser = parse_positive_duration, default_value = "10s")]
    pub response_timeout: Duration,
    /// Session layout: auto (sample the keyspace), trt, flask, or a layout file PATH.toml.
    #[arg(long, global = true, value_name = "LAYOUT", default_value = "auto", alias = "schema")]
    pub layout: Choice,
    /// Key prefix of the layout (default: the layout's own, or the detected one).
    #[arg(long, global = true, value_name = "P")]
    pub prefix: Option<String>,
    /// Field holding the stage (dotted path), instead of the layout's.
    #[arg(long, global = true, value_name = "PATH")]
    pub stage_field: Option<String>,
    /// Session lifetime for idle = lifetime - TTL (default: the largest TTL seen).
    #[arg(long, global = true, value_name = "DURATION", value_parser = parse_duration)]
    pub session_lifetime: Option<Duration>,
    /// A session idle longer than this, not at a final stage, is stalled.
    #[arg(long, global = true, value_name = "DURATION", value_parser = parse_duration, default_value = "15m", alias = "stuck-after")]
    pub stalled_after: Duration,
    /// Sessions per census batch: COUNT for SCAN, LIMIT for the index walk.
    #[arg(long, global = true, value_name = "N", default_value_t = 1000, value_parser = clap::value_parser!(u32).range(1..=100_000))]
    pub scan_count: u32,
    /// What the census (and other work that can wait) may cost Redis: a share of one Redis
    /// core (`2%`), a command rate (`20000/s`), or `0` for no limit. Default: 2% for the
    /// dashboard, 50% for one-shot commands.
    #[arg(long, global = true, value_name = "SHARE|RATE")]
    pub budget: Option<crate::conn::pace::Budget>,
    /// The most bytes of one value read from Redis; larger values are shown cut, with their size.
    /// At most 512 MiB, the largest value Redis holds.
    #[arg(long, global = true, value_name = "BYTES", default_value_t = 1 << 20, value_parser = clap::value_parser!(u64).range(1..=MAX_VALUE_BYTES_LIMIT))]
    pub max_value_bytes: u64,
    /// Refuse every write (expire, persist, delete).
    #[arg(long, global = true)]
    pub read_only: bool,
    /// Audit log of writes (JSON lines). Default: $XDG_STATE_HOME/sessiontop/audit.log.
    #[arg(long, global = true, value_name = "FILE")]
    pub audit_log: Option<PathBuf>,
    /// Write logs to FILE (never to the screen). Level from $SESSIONTOP_LOG (default info).
    #[arg(long, global = true, value_name = "FILE")]
    pub log: Option<PathBuf>,
    /// Dashboard theme: default, light, high-contrast, production, or a theme file PATH.toml.
    /// Default: the target's theme, then the config's, then default. NO_COLOR turns colours off.
    #[arg(long, global = true, value_name = "NAME|PATH")]
    pub theme: Option<String>,
    /// Sessions the dashboard's table keeps (the most recently active); the census still counts
    /// every one.
    #[arg(long, global = true, value_name = "N", default_value_t = crate::engine::table::DEFAULT_MAX_ROWS, value_parser = clap::value_parser!(usize))]
    pub max_rows: usize,
    /// Time between polls of the server and the visible sessions.
    #[arg(long, global = true, value_name = "DURATION", value_parser = parse_duration, default_value = "2s")]
    pub poll_interval: Duration,
    /// Mark a deploy: `now` or an RFC 3339 time; the panels show changes since it and the
    /// charts draw it (`b` marks it from the dashboard).
    #[arg(long, global = true, value_name = "now|RFC3339", value_parser = parse_baseline)]
    pub baseline: Option<Baseline>,
    /// Count the host's processes whose name or command line contains PATTERN (gunicorn,
    /// uvicorn, redis-server), with their memory and CPU; a change of count is a finding.
    /// Repeatable.
    #[arg(long, global = true, value_name = "PATTERN", value_parser = parse_pattern)]
    pub watch_process: Vec<String>,
    /// Record every figure and finding to FILE (JSON lines), going on with it when it exists;
    /// the dashboard, serve and the demo only. Read it back with `sessiontop report FILE`.
    #[arg(long, global = true, value_name = "FILE")]
    pub record: Option<PathBuf>,
    /// The size past which a recording is rotated (FILE becomes FILE.1).
    #[arg(long, global = true, value_name = "BYTES", default_value_t = crate::export::record::DEFAULT_MAX_BYTES, value_parser = clap::value_parser!(u64).range(4096..))]
    pub record_max_bytes: u64,
    /// Serve the dashboard's figures for Prometheus at http://ADDR:PORT/metrics (a bare PORT
    /// listens on 127.0.0.1). The dashboard, serve (default 127.0.0.1:9187) and the demo only.
    #[arg(long, global = true, value_name = "[ADDR:]PORT", value_parser = crate::export::metrics::parse_listen)]
    pub metrics_listen: Option<std::net::SocketAddr>,
    #[command(flatten)]
    pub thresholds: ThresholdArgs,
}

/// Where findings start (the dashboard's alerts, `check`, `snapshot --json`).
#[derive(Debug, Args, Clone)]
pub struct ThresholdArgs {
    /// A session active within this window is a user still trying: stuck when its workflow
    /// does not advance.
    #[arg(long, global = true, value_name = "DURATION", value_parser = parse_positive_duration, default_value = "30m")]
    pub active_window: Duration,
    /// Turns in one stage with the same decision that make a session with history stuck.
    #[arg(long, global = true, value_name = "N", default_value_t = 6, value_parser = clap::value_parser!(u32).range(2..=50))]
    pub stuck_turns: u32,
    /// A session payload larger than this (bytes) is oversized.
    #[arg(long, global = true, value_name = "BYTES", default_value_t = 256 << 10, value_parser = clap::value_parser!(u64).range(1..))]
    pub large_session_bytes: u64,
    /// Parts of one session that expire more than this apart disagree.
    #[arg(long, global = true, value_name = "DURATION", value_parser = parse_positive_duration, default_value = "10m")]
    pub ttl_mismatch: Duration,
    /// A lock held, or set to be held, longer than this is stale.
    #[arg(long, global = true, value_name = "DURATION", value_parser = parse_positive_duration, default_value = "60s")]
    pub lock_held: Duration,
    /// A last interaction further than this in the future means a wrong clock.
    #[arg(long, global = true, value_name = "DURATION", value_parser = parse_positive_duration, default_value = "5m")]
    pub clock_skew: Duration,
    /// Used memory at this percentage of maxmemory is a warning.
    #[arg(long, global = true, value_name = "PERCENT", default_value_t = 80, value_parser = clap::value_parser!(u8).range(1..=100))]
    pub memory_warning: u8,
    /// Used memory at this percentage of maxmemory is critical.
    #[arg(long, global = true, value_name = "PERCENT", default_value_t = 90, value_parser = clap::value_parser!(u8).range(1..=100))]
    pub memory_critical: u8,
    /// Live sessions falling by more than this percentage between two census passes is critical.
    #[arg(long, global = true, value_name = "PERCENT", default_value_t = 30, value_parser = clap::value_parser!(u8).range(1..=100))]
    pub drop_alert: u8,
    /// New sessions are counted over this window: many of them never used again after their
    /// first request is a session cookie the application does not get back.
    #[arg(long, global = true, value_name = "DURATION", value_parser = parse_positive_duration, default_value = "10m")]
    pub new_sessions_window: Duration,
    /// This percentage of the window's new sessions never used again is a warning (judged
    /// against the hour before).
    #[arg(long, global = true, value_name = "PERCENT", default_value_t = 80, value_parser = clap::value_parser!(u8).range(1..=100))]
    pub unused_alert: u8,
    /// Entries into and exits from each stage are counted over this window: a stage many
    /// reach and none leaves is a warning.
    #[arg(long, global = true, value_name = "DURATION", value_parser = parse_positive_duration, default_value = "30m")]
    pub flow_window: Duration,
    /// Connections from the hosts that were connected at the start falling by this percentage
    /// is a warning (workers gone).
    #[arg(long, global = true, value_name = "PERCENT", default_value_t = 50, value_parser = clap::value_parser!(u8).range(1..=100))]
    pub clients_fall: u8,
}

impl ThresholdArgs {
    pub fn thresholds(&self) -> crate::engine::domain::Thresholds {
        crate::engine::domain::Thresholds {
            active_window_s: self.active_window.as_secs() as i64,
            stuck_turns: self.stuck_turns as usize,
            large_session_bytes: self.large_session_bytes,
            ttl_mismatch_s: self.ttl_mismatch.as_secs() as i64,
            lock_held_s: self.lock_held.as_secs() as i64,
            clock_skew_s: self.clock_skew.as_secs() as i64,
            memory_warning: f64::from(self.memory_warning) / 100.0,
            memory_critical: f64::from(self.memory_critical.max(self.memory_warning)) / 100.0,
            drop_share: f64::from(self.drop_alert) / 100.0,
            arrivals_window_s: self.new_sessions_window.as_secs().max(1) as i64,
            unused_share: f64::from(self.unused_alert) / 100.0,
            flow_window_s: self.flow_window.as_secs().max(1) as i64,
            clients_fall_share: f64::from(self.clients_fall) / 100.0,
            ..crate::engine::domain::Thresholds::default()
        }
    }
}

#[derive(Debug, Args)]
pub struct DemoArgs {
    /// Print the URL and keep the store and traffic running until Ctrl-C, without the dashboard.
    #[arg(long)]
    pub no_tui: bool,
    /// The redis-server binary (default: from PATH).
    #[arg(long, value_name = "PATH")]
    pub redis_server: Option<PathBuf>,
    /// TRT sessions to start with (and three quarters as many Flask sessions).
    #[arg(long, value_name = "N", default_value_t = 2000)]
    pub sessions: u32,
    /// A Redis Cluster instead: three primaries with a replica each, on loopback.
    #[arg(long)]
    pub cluster: bool,
    /// With --cluster: every DURATION a replica takes over from its primary (CLUSTER FAILOVER),
    /// in turn, so that the failover is seen live.
    #[arg(long, value_name = "DURATION", value_parser = parse_positive_duration, requires = "cluster")]
    pub failover_every: Option<Duration>,
}

#[derive(Debug, Args)]
pub struct SnapshotArgs {
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
    /// Sessions listed, most recently active first.
    #[arg(long, value_name = "N", default_value_t = 50)]
    pub limit: usize,
    /// The server and the first page of sessions only, without the census (the first screen).
    #[arg(long)]
    pub no_census: bool,
}

#[derive(Debug, Args)]
pub struct CheckArgs {
    /// The verdict and the findings as JSON, with the sessions and keys involved.
    #[arg(long)]
    pub json: bool,
    /// Keep polling and counting for this long before answering, to see what only a series
    /// shows (evictions and refused connections while watching, a restart, a failover, a drop
    /// of sessions, a stalled count that jumps).
    #[arg(long, value_name = "DURATION", value_parser = parse_duration, default_value = "0s")]
    pub observe: Duration,
}

#[derive(Debug, Args)]
pub struct FixArgs {
    /// What to fix: `orphaned` (remove index entries whose session keys are gone), `no_ttl`
    /// (give the session's keys without TTL one), `stale_lock` (delete the lock), `stuck`
    /// (expire or delete the sessions; with --expire or --delete).
    #[arg(value_parser = ["orphaned", "no_ttl", "stale_lock", "stuck"])]
    pub finding: String,
    /// The TTL `no_ttl` gives (default: the session lifetime, the layout's or inferred).
    #[arg(long, value_name = "DURATION", value_parser = parse_positive_duration)]
    pub ttl: Option<Duration>,
    /// `stuck`: give the sessions' keys this TTL.
    #[arg(long, value_name = "DURATION", value_parser = parse_positive_duration, conflicts_with = "delete")]
    pub expire: Option<Duration>,
    /// `stuck`: delete the sessions.
    #[arg(long)]
    pub delete: bool,
    /// The most sessions one run fixes (run again for more).
    #[arg(long, value_name = "N", default_value_t = 1000, value_parser = clap::value_parser!(u32).range(1..=100_000))]
    pub limit: u32,
    /// List what would change, and change nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Do not ask (for scripts).
    #[arg(long)]
    pub yes: bool,
}

#[derive(Debug, Args)]
pub struct InspectArgs {
    /// Session id (the key's, in the escaped form sessiontop shows; one that begins with `-`
    /// is taken as an id).
    #[arg(required_unless_present = "by", allow_hyphen_values = true)]
    pub id: Option<String>,
    /// Find the session by one of the application's own ids instead (`session_id=9b2f…`,
    /// `user_id=…`; the layout names its id fields): a paced pass over the sessions.
    #[arg(long, value_name = "FIELD=VALUE", conflicts_with = "id")]
    pub by: Option<String>,
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct IdArgs {
    /// Session id.
    #[arg(allow_hyphen_values = true)]
    pub id: String,
}

#[derive(Debug, Args)]
pub struct ExpireArgs {
    /// Session id.
    #[arg(allow_hyphen_values = true)]
    pub id: String,
    /// The new TTL, as the dashboard's dialog takes it: `900` (seconds), `15m`, `2h`, `1d`.
    #[arg(value_name = "TTL", value_parser = parse_positive_duration)]
    pub ttl: Duration,
}

#[derive(Debug, Args)]
pub struct DeleteArgs {
    /// Session id.
    #[arg(allow_hyphen_values = true)]
    pub id: String,
    /// Do not ask for confirmation.
    #[arg(long)]
    pub yes: bool,
}

/// The largest `--max-value-bytes`: Redis's own limit on one value (`proto-max-bulk-len`).
pub const MAX_VALUE_BYTES_LIMIT: u64 = 512 << 20;

/// A duration that must be more than zero (a timeout of 0 would mean every command fails).
pub fn parse_positive_duration(text: &str) -> Result<Duration, DurationError> {
    let d = parse_duration(text)?;
    if d.is_zero() {
        return Err(DurationError::Zero(text.to_string()));
    }
    Ok(d)
}

/// Parses `90`, `90s`, `15m`, `24h`, `1d`, `500ms`.
/// A duration as people type it (`90s`, `15m`, `24h`, `1d`); see [`crate::util::text::parse_duration`].
/// `--url NAME=URL`: the name, when one is given, and the URL. A name has no `:` or `/`, so
/// the `=` of a URL's query (`redis://h/0?x=1`) is never taken for one.
pub fn split_named_url(spec: &str) -> (Option<&str>, &str) {
    match spec.split_once('=') {
        Some((name, url)) if !name.is_empty() && !name.contains([':', '/', '@', '?']) => (Some(name), url),
        _ => (None, spec),
    }
}

/// A `--watch-process` pattern: not empty (it would match every process).
fn parse_pattern(text: &str) -> Result<String, ArgError> {
    if text.trim().is_empty() { Err(ArgError::EmptyPattern) } else { Ok(text.to_string()) }
}

/// Why a flag's value is refused (the durations' own are [`DurationError`]s).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ArgError {
    #[error("an empty pattern would match every process")]
    EmptyPattern,
    #[error("'{text}' is neither now nor an RFC 3339 time (2026-12-02T14:30:00Z): {reason}")]
    NotABaseline { text: String, reason: String },
}

/// `--baseline`: when the deploy was.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Baseline {
    Now,
    /// Epoch milliseconds.
    At(i64),
}

impl Baseline {
    /// The baseline in epoch milliseconds, `now` being `now_ms`.
    pub fn millis(self, now_ms: i64) -> i64 {
        match self {
            Baseline::Now => now_ms,
            Baseline::At(ms) => ms,
        }
    }
}

pub fn parse_baseline(text: &str) -> Result<Baseline, ArgError> {
    if text.eq_ignore_ascii_case("now") {
        return Ok(Baseline::Now);
    }
    chrono::DateTime::parse_from_rfc3339(text)
        .map(|t| Baseline::At(t.timestamp_millis()))
        .map_err(|e| ArgError::NotABaseline { text: text.to_string(), reason: e.to_string() })
}

pub fn parse_duration(text: &str) -> Result<Duration, DurationError> {
    crate::util::text::parse_duration(text)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("90"), Ok(Duration::from_secs(90)));
        assert_eq!(parse_duration("15m"), Ok(Duration::from_secs(900)));
        assert_eq!(parse_duration("1d"), Ok(Duration::from_secs(86_400)));
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert!(parse_duration("soon").is_err());
        assert!(parse_duration("5y").is_err());
        assert!(parse_positive_duration("0s").is_err());
        assert!(parse_positive_duration("0").is_err());
        assert_eq!(parse_positive_duration("1ms"), Ok(Duration::from_millis(1)));
    }

    #[test]
    fn urls_may_carry_a_name() {
        assert_eq!(split_named_url("prod=rediss://u@h:6380/0"), (Some("prod"), "rediss://u@h:6380/0"));
        assert_eq!(split_named_url("redis://h:6379/0?x=1"), (None, "redis://h:6379/0?x=1"));
        assert_eq!(split_named_url("redis+unix:///tmp/r.sock"), (None, "redis+unix:///tmp/r.sock"));
        assert_eq!(split_named_url("=redis://h"), (None, "=redis://h"));
        let cli = Cli::try_parse_from(["sessiontop", "--url", "a=redis://h1", "--url", "b=redis://h2"]).unwrap();
        assert_eq!(cli.global.url.len(), 2);
    }

    #[test]
    fn baselines() {
        assert_eq!(parse_baseline("now"), Ok(Baseline::Now));
        assert_eq!(parse_baseline("2026-12-02T14:30:00Z"), Ok(Baseline::At(1_796_221_800_000)));
        assert_eq!(parse_baseline("2026-12-02T15:30:00+01:00"), Ok(Baseline::At(1_796_221_800_000)));
        assert!(parse_baseline("yesterday").is_err());
    }

    #[test]
    fn the_cli_is_well_formed() {
        use clap::CommandFactory;
        Cli::command().debug_assert();
    }
}
