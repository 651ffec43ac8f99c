//! One connection to Redis, as sessiontop uses it: commands and pipelines whose failures are
//! sorted into what they mean for the program (the connection is gone, the password is wrong,
//! this one command is denied or unknown), and a count of every command sent, so that
//! sessiontop can show its own load on the server.
//!
//! A denied or unknown command is a [`Failure`] of that command only; a pipeline returns each
//! command's reply separately so that one refused command costs one field, not the poll.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use redis::aio::MultiplexedConnection;
use redis::{ErrorKind, FromRedisValue, ServerErrorKind};

use crate::conn::pace::{Counts, Kind};

/// Counts the commands sessiontop sends, in all and by kind (what the pacer turns into Redis
/// time): a node's across all its connections, or one connection's and, through it, its node's
/// ([`LoadCounter::child`]).
#[derive(Debug, Clone, Default)]
pub struct LoadCounter {
    own: Arc<(AtomicU64, Counts)>,
    /// The counter that counts this one's commands too.
    parent: Option<Arc<(AtomicU64, Counts)>>,
}

impl LoadCounter {
    /// A counter of its own whose commands this one counts too.
    pub fn child(&self) -> LoadCounter {
        LoadCounter { own: Arc::default(), parent: Some(self.own.clone()) }
    }

    /// Counts one command by its kind.
    fn count(&self, cmd: &redis::Cmd) {
        let kind = kind_of(cmd);
        for counter in std::iter::once(&self.own).chain(&self.parent) {
            counter.0.fetch_add(1, Ordering::Relaxed);
            counter.1.add(kind, 1);
        }
    }

    /// Counts commands by kind, as already known (`by_kind[k]` of kind `k`).
    fn count_kinds(&self, by_kind: &[u64; Kind::ALL.len()]) {
        let total: u64 = by_kind.iter().sum();
        for counter in std::iter::once(&self.own).chain(&self.parent) {
            counter.0.fetch_add(total, Ordering::Relaxed);
            for (kind, n) in Kind::ALL.iter().zip(by_kind).filter(|(_, n)| **n > 0) {
                counter.1.add(*kind, *n);
            }
        }
    }

    /// Commands sent since the counter was made.
    pub fn total(&self) -> u64 {
        self.own.0.load(Ordering::Relaxed)
    }

    /// Commands sent, by kind.
    pub fn by_kind(&self) -> &Counts {
        &self.own.1
    }
}

/// The kind of a command, from its first two arguments.
pub fn kind_of(cmd: &redis::Cmd) -> Kind {
    let mut args = cmd.args_iter().filter_map(|a| match a {
        redis::Arg::Simple(bytes) => Some(bytes),
        _ => None,
    });
    let name = args.next().unwrap_or_default();
    Kind::of(name, args.next())
}

/// What went wrong with a command, sorted by what the caller should do about it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Failure {
    /// The connection is unusable (refused, dropped, timed out, TLS): reconnect.
    #[error("{0}")]
    Connection(String),
    /// The server refused the credentials: retrying will not help until they change.
    #[error("authentication failed: {0}")]
    Auth(String),
    /// The user may not run this command or touch this key (`NOPERM`).
    #[error("{command} denied: {detail}")]
    Denied { command: String, detail: String },
    /// The server does not know the command: renamed or disabled (ElastiCache disables
    /// `CONFIG`), or too old.
    #[error("{command} is not available on this server")]
    Unknown { command: String },
    /// Any other error reply, for this command only (`WRONGTYPE`, `LOADING`, …).
    #[error("{command} failed: {code} {detail}")]
    Server { command: String, code: String, detail: String },
    /// A reply of a shape the command never gives.
    #[error("unexpected reply to {0}")]
    Protocol(String),
}

impl Failure {
    /// Whether the connection must be re-established before anything else can be sent.
    pub fn is_connection(&self) -> bool {
        matches!(self, Failure::Connection(_) | Failure::Auth(_))
    }

    /// Whether the failure means "this feature is unavailable here" rather than an error.
    pub fn is_unavailable(&self) -> bool {
        matches!(self, Failure::Denied { .. } | Failure::Unknown { .. })
    }

    pub fn from_redis(command: &str, e: &redis::RedisError) -> Self {
        let command = command.to_ascii_uppercase();
        let detail = e.detail().unwrap_or_default().to_string();
        match e.kind() {
            ErrorKind::AuthenticationFailed => Failure::Auth(auth_detail(e)),
            ErrorKind::Server(ServerErrorKind::NoPerm) => Failure::Denied { command, detail },
            _ if e.code() == Some("WRONGPASS") || e.code() == Some("NOAUTH") => Failure::Auth(auth_detail(e)),
            ErrorKind::Parse => Failure::Connection(
                "the reply is not Redis protocol (is this a Redis port? TLS needs rediss://)".into(),
            ),
            ErrorKind::Io | ErrorKind::Client | ErrorKind::InvalidClientConfig => {
                Failure::Connection(connection_detail(e))
            }
            _ if e.is_connection_dropped() || e.is_timeout() || e.is_connection_refusal() => {
                Failure::Connection(connection_detail(e))
            }
            ErrorKind::Server(_) | ErrorKind::Extension => match e.code() {
                Some(code) => Self::from_code(&command, code, &detail),
                None => Failure::Server { command, code: "ERR".into(), detail },
            },
            _ => Failure::Connection(connection_detail(e)),
        }
    }

    pub(crate) fn from_server_error(command: &str, e: &redis::ServerError) -> Self {
        Self::from_code(&command.to_ascii_uppercase(), e.code(), e.details().unwrap_or_default())
    }

    pub(crate) fn from_code(command: &str, code: &str, detail: &str) -> Self {
        let command = command.to_string();
        match code {
            "NOPERM" => Failure::Denied { command, detail: detail.to_string() },
            "WRONGPASS" | "NOAUTH" => Failure::Auth(format!("{code} {detail}")),
            // Said once, before the server closes the connection.
            "ERR" if detail.starts_with("max number of clients") => {
                Failure::Connection(format!("the server refused the connection: {code} {detail}"))
            }
            "ERR" if detail.starts_with("unknown command") || detail.starts_with("unknown subcommand") => {
                Failure::Unknown { command }
            }
            _ => Failure::Server { command, code: code.to_string(), detail: detail.to_string() },
        }
    }
}

fn auth_detail(e: &redis::RedisError) -> String {
    match (e.code(), e.detail()) {
        (Some(code), Some(detail)) => format!("{code} {detail}"),
        (_, Some(detail)) => detail.to_string(),
        _ => "the server refused the user name or password".to_string(),
    }
}

fn connection_detail(e: &redis::RedisError) -> String {
    if e.is_timeout() {
        return "timed out".to_string();
    }
    if e.is_connection_refusal() {
        return "connection refused".to_string();
    }
    let text = e.to_string();
    // The crate's I/O errors read "… - IoError: Connection refused (os error 111)"; keep the cause.
    let cause = match text.rsplit_once(": ") {
        Some((_, cause)) if !cause.is_empty() => cause.to_string(),
        _ => text.clone(),
    };
    if text.contains("certificate")
        || ["UnknownIssuer", "NotValidForName", "Expired", "BadSignature"].contains(&cause.as_str())
    {
        return format!(
            "TLS: the server's certificate was not accepted ({cause}); pass --tls-ca FILE, or --tls-insecure"
        );
    }
    cause
}

/// One reply of a pipeline: the value, or what went wrong with that command alone.
pub type Reply = Result<redis::Value, Failure>;

/// A pipeline whose commands fail one by one: a server error costs its own reply only.
/// Build every pipeline sent through [`Link::pipeline`] with this.
pub fn pipe() -> redis::Pipeline {
    let mut pipe = redis::pipe();
    pipe.ignore_errors();
    pipe
}

/// A connection with failure sorting and command counting.
#[derive(Clone)]
pub struct Link {
    conn: MultiplexedConnection,
    load: LoadCounter,
}

impl Link {
    pub(crate) fn new(conn: MultiplexedConnection, load: LoadCounter) -> Self {
        Link { conn, load }
    }

    /// What this connection (and the others sharing its counter) has sent.
    pub fn load(&self) -> &LoadCounter {
        &self.load
    }

    /// Sends one command. A reply of a shape `T` cannot hold (text that is not UTF-8, say) is
    /// a [`Failure::Protocol`] of this command only: the connection is fine.
    pub async fn query<T: FromRedisValue>(&mut self, cmd: &redis::Cmd) -> Result<T, Failure> {
        self.load.count(cmd);
        let value = cmd
            .query_async::<redis::Value>(&mut self.conn)
            .await
            .map_err(|e| Failure::from_redis(&command_name(cmd), &e))?;
        match value {
            redis::Value::ServerError(e) => Err(Failure::from_server_error(&command_name(cmd), &e)),
            value => T::from_redis_value(value).map_err(|e| Failure::Protocol(format!("{} ({e})", command_name(cmd)))),
        }
    }

    /// Sends a pipeline (built with [`pipe`]) in one round trip and returns each command's own
    /// reply. The outer error is only for failures of the connection itself.
    pub async fn pipeline(&mut self, pipe: &redis::Pipeline) -> Result<Vec<Reply>, Failure> {
        for cmd in pipe.cmd_iter() {
            self.load.count(cmd);
        }
        self.send_counted(pipe).await
    }

    /// [`Link::pipeline`] for commands whose kinds are known: `by_kind[k]` of kind `k`.
    pub async fn pipeline_of_kinds(
        &mut self,
        pipe: &redis::Pipeline,
        by_kind: &[u64; Kind::ALL.len()],
    ) -> Result<Vec<Reply>, Failure> {
        self.load.count_kinds(by_kind);
        self.send_counted(pipe).await
    }

    async fn send_counted(&mut self, pipe: &redis::Pipeline) -> Result<Vec<Reply>, Failure> {
        if pipe.is_empty() {
            return Ok(Vec::new());
        }
        let first = || pipe.cmd_iter().next().map_or_else(|| "PIPELINE".to_string(), command_name);
        let values: Vec<redis::Value> =
            pipe.query_async(&mut self.conn).await.map_err(|e| Failure::from_redis(&first(), &e))?;
        if values.len() != pipe.len() {
            return Err(Failure::Protocol(format!("pipeline of {} commands", pipe.len())));
        }
        // A command's name is only worked out when it failed.
        Ok(values
            .into_iter()
            .zip(pipe.cmd_iter())
            .map(|(value, cmd)| match value {
                redis::Value::ServerError(e) => Err(Failure::from_server_error(&command_name(cmd), &e)),
                other => Ok(other),
            })
            .collect())
    }

    /// Runs commands atomically in `MULTI`/`EXEC` and returns their replies. The transaction is
    /// sent as one pipeline of its own (`MULTI`, the commands, `EXEC`), so that when Redis
    /// refuses a command as it is queued (`NOPERM`, `READONLY`, `OOM`) and discards the whole
    /// transaction, the reply for that command says why rather than only `EXECABORT`.
    pub async fn transaction(&mut self, pipe: &redis::Pipeline) -> Result<Vec<Reply>, Failure> {
        let mut wrapped = self::pipe();
        wrapped.cmd("MULTI");
        for cmd in pipe.cmd_iter() {
            wrapped.add_command(cmd.clone());
        }
        wrapped.cmd("EXEC");
        let mut replies = self.pipeline(&wrapped).await?;
        let exec = replies.pop().unwrap_or_else(|| Err(Failure::Protocol("EXEC".into())));
        let queued: Vec<Reply> = replies.into_iter().skip(1).collect();
        let refused = queued.iter().find_map(|r| r.as_ref().err().cloned());
        match (exec, refused) {
            // Redis discarded the transaction: every command carries the refusal that caused it.
            (_, Some(refusal)) => Ok(queued.iter().map(|_| Err(refusal.clone())).collect()),
            (Ok(redis::Value::Array(results)), None) if results.len() == queued.len() => Ok(results
                .into_iter()
                .zip(pipe.cmd_iter())
                .map(|(value, cmd)| match value {
                    redis::Value::ServerError(e) => Err(Failure::from_server_error(&command_name(cmd), &e)),
                    other => Ok(other),
                })
                .collect()),
            (Err(failure), None) => Err(failure),
            (Ok(_), None) => Err(Failure::Protocol("EXEC".into())),
        }
    }
}

fn command_name(cmd: &redis::Cmd) -> String {
    let mut args = cmd.args_iter().filter_map(|a| match a {
        redis::Arg::Simple(bytes) => Some(String::from_utf8_lossy(bytes).to_ascii_uppercase()),
        _ => None,
    });
    let first = args.next().unwrap_or_default();
    // Name the subcommand too for the commands that have them (`MEMORY USAGE`, `CONFIG GET`).
    if matches!(first.as_str(), "MEMORY" | "CONFIG" | "OBJECT" | "CLIENT" | "SLOWLOG" | "LATENCY" | "ACL")
        && let Some(sub) = args.next()
    {
        return format!("{first} {sub}");
    }
    first
}

/// Readers for reply values. They return `None` for nil and for shapes a command cannot give,
/// so a surprising reply costs the one field it was for.
pub mod reply {
    use redis::Value;

    use super::{Failure, Reply};

    pub fn int(r: &Reply) -> Option<i64> {
        match r {
            Ok(Value::Int(i)) => Some(*i),
            Ok(Value::BulkString(b)) => std::str::from_utf8(b).ok()?.parse().ok(),
            Ok(Value::SimpleString(s)) => s.parse().ok(),
            _ => None,
        }
    }

    pub fn float(r: &Reply) -> Option<f64> {
        match r {
            Ok(Value::Double(f)) => Some(*f),
            Ok(Value::Int(i)) => Some(*i as f64),
            Ok(Value::BulkString(b)) => std::str::from_utf8(b).ok()?.parse().ok(),
            _ => None,
        }
    }

    pub fn bytes(r: Reply) -> Option<Vec<u8>> {
        match r {
            Ok(Value::BulkString(b)) => Some(b),
            Ok(Value::SimpleString(s)) => Some(s.into_bytes()),
            Ok(Value::VerbatimString { text, .. }) => Some(text.into_bytes()),
            _ => None,
        }
    }

    pub fn string(r: Reply) -> Option<String> {
        bytes(r).map(|b| String::from_utf8_lossy(&b).into_owned())
    }

    /// An array reply as its elements (nil elements kept as `Value::Nil`).
    pub fn array(r: Reply) -> Option<Vec<Value>> {
        match r {
            Ok(Value::Array(items)) | Ok(Value::Set(items)) => Some(items),
            Ok(Value::Map(pairs)) => Some(pairs.into_iter().flat_map(|(k, v)| [k, v]).collect()),
            _ => None,
        }
    }

    /// An array reply's elements as bytes, skipping nil.
    pub fn byte_list(r: Reply) -> Option<Vec<Option<Vec<u8>>>> {
        array(r).map(|items| items.into_iter().map(|v| bytes(Ok(v))).collect())
    }

    /// The failure of a reply, if it is one.
    pub fn failure(r: &Reply) -> Option<&Failure> {
        r.as_ref().err()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn command_names_include_subcommands() {
        assert_eq!(command_name(redis::cmd("memory").arg("usage").arg("k")), "MEMORY USAGE");
        assert_eq!(command_name(redis::cmd("hgetall").arg("k")), "HGETALL");
    }

    #[test]
    fn server_codes_sort_into_failures() {
        assert_eq!(
            Failure::from_code("CONFIG GET", "ERR", "unknown command 'CONFIG', with args beginning with: "),
            Failure::Unknown { command: "CONFIG GET".into() }
        );
        assert!(matches!(
            Failure::from_code("MEMORY USAGE", "NOPERM", "this user has no permissions"),
            Failure::Denied { .. }
        ));
        assert!(Failure::from_code("GET", "WRONGPASS", "invalid").is_connection());
        assert!(matches!(Failure::from_code("GET", "WRONGTYPE", "Operation"), Failure::Server { .. }));
    }
}
