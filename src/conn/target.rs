//! Where sessiontop connects: URLs, TLS, credentials and timeouts, turned into a redis client.
//!
//! A password never leaves this module in readable form: every URL shown anywhere is the
//! [`Target::redacted_url`], and errors are built from redacted text only.

use std::path::{Path, PathBuf};
use std::time::Duration;

use redis::aio::MultiplexedConnection;
use redis::{AsyncConnectionConfig, ConnectionAddr, ConnectionInfo, IntoConnectionInfo};

use crate::conn::link::{Failure, Link, LoadCounter};

/// The URL used when neither `--url` nor `$REDIS_URL` is given.
pub const DEFAULT_URL: &str = "redis://127.0.0.1:6379";

/// How long establishing a connection (TCP, TLS, AUTH, SELECT) may take.
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// How long one reply may take. `INFO` on a loaded server can take far longer than the redis
/// crate's 500 ms default, and a timed-out reply would be mistaken for an outage.
pub const DEFAULT_RESPONSE_TIMEOUT: Duration = Duration::from_secs(10);

/// How long to wait for a server's unasked greeting when finding out why it closed a connection.
const GREETING_TIMEOUT: Duration = Duration::from_millis(500);

/// What the user asked to connect to, before validation.
#[derive(Debug, Clone, Default)]
pub struct TargetSpec {
    /// A name from the config file, shown instead of the URL where space is short.
    pub name: Option<String>,
    pub url: String,
    pub user: Option<String>,
    /// Read from `--password-file`; takes precedence over a password in the URL.
    pub password_file: Option<PathBuf>,
    /// `$REDISCLI_AUTH`, used when neither the URL nor a file gives a password.
    pub env_password: Option<String>,
    pub db: Option<i64>,
    pub tls_ca: Option<PathBuf>,
    pub tls_insecure: bool,
    pub connect_timeout: Option<Duration>,
    pub response_timeout: Option<Duration>,
}

/// Why a target could not be used. Messages hold redacted URLs only.
#[derive(Debug, thiserror::Error)]
pub enum TargetError {
    #[error("invalid Redis URL '{url}': {reason}")]
    BadUrl { url: String, reason: String },
    #[error("cannot read password file {path}: {reason}")]
    PasswordFile { path: String, reason: crate::util::local_file::LocalFileError },
    #[error("cannot read TLS CA file {path}: {reason}")]
    CaFile { path: String, reason: String },
    #[error("{0} needs a rediss:// URL")]
    TlsWithoutTls(&'static str),
}

/// A validated target: the client to connect with and how to show it.
///
/// The client connects bare (no `AUTH`, no `SELECT`, nothing sent on its own); sessiontop then
/// authenticates and selects the database itself, one command at a time, so that whatever the
/// server says first (a wrong password, `max number of clients reached`, a database out of
/// range) reaches the user as the server said it.
#[derive(Clone)]
pub struct Target {
    client: redis::Client,
    redacted: String,
    name: Option<String>,
    db: i64,
    /// User and password for `AUTH`; a user without a password authenticates with an empty
    /// one (which an ACL user marked `nopass` accepts).
    auth: Option<(Option<String>, String)>,
    /// Where to look for a greeting the server sent before closing (plain TCP and unix).
    probe: Option<ProbeAddr>,
    tls: bool,
    /// A TLS target's host and port, to ask in plain text whether it is a plain Redis port.
    tls_addr: Option<(String, u16)>,
    config: AsyncConnectionConfig,
    /// What the whole setup of a connection may take: connecting, TLS, the client library's
    /// own first commands, `AUTH`, `SELECT` and the courtesies.
    connect_timeout: Duration,
    /// Where the server is: `host:port` or the socket's path (to tell two targets that are
    /// one server).
    address: String,
    /// The CA certificates given with `--tls-ca`, for the targets of other nodes ([`Target::at`]).
    root_cert: Option<std::sync::Arc<Vec<u8>>>,
}

/// A plain address to open a raw connection to.
#[derive(Debug, Clone)]
enum ProbeAddr {
    Tcp(String, u16),
    Unix(PathBuf),
}

impl std::fmt::Debug for Target {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Target").field("url", &self.redacted).field("db", &self.db).finish()
    }
}

/// A CA file's certificates (PEM), refused when it holds none.
fn read_ca(path: &Path) -> Result<Vec<u8>, TargetError> {
    let ca_error = |reason: String| TargetError::CaFile { path: path.display().to_string(), reason };
    let pem = crate::util::local_file::read(path, crate::util::local_file::CERTIFICATES_MAX_BYTES)
        .map_err(|e| ca_error(e.to_string()))?;
    let count = <rustls::pki_types::CertificateDer<'_> as rustls::pki_types::pem::PemObject>::pem_slice_iter(&pem)
        .filter(Result::is_ok)
        .count();
    if count == 0 {
        return Err(ca_error("no PEM certificate in it".into()));
    }
    Ok(pem)
}

impl Target {
    /// Validates a spec: parses the URL, applies the user, password, database and TLS options.
    pub fn from_spec(spec: &TargetSpec) -> Result<Self, TargetError> {
        install_crypto_provider();
        let redacted = redact_url(&spec.url);
        let bad = |reason: String| TargetError::BadUrl { url: redacted.clone(), reason };

        let parsed = url::Url::parse(&spec.url).map_err(|e| bad(e.to_string()))?;
        let scheme = parsed.scheme().to_string();
        if !matches!(scheme.as_str(), "redis" | "rediss" | "redis+unix" | "unix" | "valkey" | "valkeys") {
            return Err(bad(format!("unsupported scheme '{scheme}' (use redis://, rediss:// or redis+unix://)")));
        }
        if matches!(scheme.as_str(), "redis" | "rediss" | "valkey" | "valkeys") && parsed.host_str().is_none() {
            return Err(bad("missing host".into()));
        }
        let is_tls = matches!(scheme.as_str(), "rediss" | "valkeys");
        if !is_tls && spec.tls_ca.is_some() {
            return Err(TargetError::TlsWithoutTls("--tls-ca"));
        }
        if !is_tls && spec.tls_insecure {
            return Err(TargetError::TlsWithoutTls("--tls-insecure"));
        }

        // The redis crate reads user, password and database from the URL; its messages never
        // include the URL itself, so they are safe to pass on.
        let mut info: ConnectionInfo = spec.url.as_str().into_connection_info().map_err(|e| bad(describe(&e)))?;

        let settings = info.redis_settings().clone();
        let user = spec.user.clone().or_else(|| settings.username().map(str::to_string));
        let file_password = match &spec.password_file {
            Some(path) => Some(read_password_file(path)?),
            None => None,
        };
        let password = file_password
            .or_else(|| settings.password().map(str::to_string))
            .or_else(|| spec.env_password.clone().filter(|pw| !pw.is_empty()));
        let auth = match (user, password) {
            (user, Some(password)) => Some((user, password)),
            (Some(user), None) => Some((Some(user), String::new())),
            (None, None) => None,
        };
        let db = spec.db.unwrap_or(settings.db());
        if db < 0 {
            return Err(bad(format!("database {db} is not a database number (0 or more)")));
        }
        info = info.set_redis_settings(redis::RedisConnectionInfo::default().set_skip_set_lib_name());
        let probe = match info.addr() {
            ConnectionAddr::Tcp(host, port) => Some(ProbeAddr::Tcp(host.clone(), *port)),
            ConnectionAddr::Unix(path) => Some(ProbeAddr::Unix(path.clone())),
            _ => None,
        };
        let tls_addr = match info.addr() {
            ConnectionAddr::TcpTls { host, port, .. } => Some((host.clone(), *port)),
            _ => None,
        };

        if spec.tls_insecure
            && let ConnectionAddr::TcpTls { host, port, tls_params, .. } = info.addr().clone()
        {
            info = info.set_addr(ConnectionAddr::TcpTls { host, port, insecure: true, tls_params });
        }

        let address = info.addr().to_string();
        let mut root_cert = None;
        let client = match &spec.tls_ca {
            Some(path) => {
                let pem = read_ca(path)?;
                root_cert = Some(std::sync::Arc::new(pem.clone()));
                let certs = redis::TlsCertificates { client_tls: None, root_cert: Some(pem) };
                redis::Client::build_with_tls(info, certs)
                    .map_err(|e| TargetError::CaFile { path: path.display().to_string(), reason: describe(&e) })?
            }
            None => redis::Client::open(info).map_err(|e| bad(describe(&e)))?,
        };

        let connect_timeout = spec.connect_timeout.unwrap_or(DEFAULT_CONNECT_TIMEOUT);
        let config = AsyncConnectionConfig::new()
            .set_connection_timeout(Some(connect_timeout))
            .set_response_timeout(Some(spec.response_timeout.unwrap_or(DEFAULT_RESPONSE_TIMEOUT)));

        Ok(Target {
            client,
            redacted: with_db(&redacted, spec.db),
            name: spec.name.clone(),
            db,
            auth,
            probe,
            tls: is_tls,
            tls_addr,
            config,
            connect_timeout,
            address,
            root_cert,
        })
    }

    /// The same target at another node of it (a cluster's, a sentinel's primary): the same
    /// user, password, database, TLS settings and timeouts, at `host:port`. Over TLS the
    /// certificate is checked against `host`.
    pub fn at(&self, host: &str, port: u16) -> Result<Target, TargetError> {
        let host = host.trim_start_matches('[').trim_end_matches(']').to_string();
        let info = self.client.get_connection_info().clone();
        let addr = match info.addr().clone() {
            ConnectionAddr::TcpTls { insecure, tls_params, .. } => {
                ConnectionAddr::TcpTls { host: host.clone(), port, insecure, tls_params }
            }
            _ => ConnectionAddr::Tcp(host.clone(), port),
        };
        let info = info.set_addr(addr);
        let bad = |e: &redis::RedisError| TargetError::BadUrl { url: format!("{host}:{port}"), reason: describe(e) };
        let client = match &self.root_cert {
            Some(pem) => {
                let certs = redis::TlsCertificates { client_tls: None, root_cert: Some(pem.to_vec()) };
                redis::Client::build_with_tls(info.clone(), certs).map_err(|e| bad(&e))?
            }
            None => redis::Client::open(info.clone()).map_err(|e| bad(&e))?,
        };
        let scheme = if self.tls { "rediss" } else { "redis" };
        let user = self.auth.as_ref().and_then(|(u, _)| u.as_deref()).map(|u| format!("{u}@")).unwrap_or_default();
        let shown = if host.contains(':') { format!("[{host}]") } else { host.clone() };
        Ok(Target {
            client,
            redacted: format!("{scheme}://{user}{shown}:{port}"),
            name: self.name.clone(),
            db: self.db,
            auth: self.auth.clone(),
            probe: (!self.tls).then(|| ProbeAddr::Tcp(host.clone(), port)),
            tls: self.tls,
            tls_addr: self.tls.then(|| (host.clone(), port)),
            config: self.config.clone(),
            connect_timeout: self.connect_timeout,
            address: info.addr().to_string(),
            root_cert: self.root_cert.clone(),
        })
    }

    /// The target of a sentinel at `host:port`: the same TLS settings and timeouts, the
    /// sentinels' own credentials (or none), database 0.
    pub fn for_sentinel(
        &self,
        host: &str,
        port: u16,
        auth: Option<(Option<String>, String)>,
    ) -> Result<Target, TargetError> {
        let mut target = self.at(host, port)?;
        target.auth = auth;
        target.db = 0;
        target.redacted = target.redacted.split_once("://").map_or(target.redacted.clone(), |(scheme, rest)| {
            format!("{scheme}://{}", rest.rsplit_once('@').map_or(rest, |(_, host)| host))
        });
        Ok(target)
    }

    /// A subscriber's connection (for a sentinel's `+switch-master`), authenticated as the
    /// target is.
    pub async fn pubsub(&self) -> Result<redis::aio::PubSub, Failure> {
        let info = self.client.get_connection_info().clone();
        let mut settings = redis::RedisConnectionInfo::default().set_skip_set_lib_name();
        if let Some((user, password)) = &self.auth {
            if let Some(user) = user {
                settings = settings.set_username(user);
            }
            settings = settings.set_password(password);
        }
        let info = info.set_redis_settings(settings);
        let client = match &self.root_cert {
            Some(pem) => redis::Client::build_with_tls(
                info,
                redis::TlsCertificates { client_tls: None, root_cert: Some(pem.to_vec()) },
            ),
            None => redis::Client::open(info),
        }
        .map_err(|e| Failure::Connection(describe(&e)))?;
        let connect = client.get_async_pubsub();
        match tokio::time::timeout(self.connect_timeout, connect).await {
            Ok(Ok(pubsub)) => Ok(pubsub),
            Ok(Err(e)) => Err(Failure::from_redis("SUBSCRIBE", &e)),
            Err(_) => Err(Failure::Connection("timed out".into())),
        }
    }

    /// Whether connections use TLS.
    pub fn is_tls(&self) -> bool {
        self.tls
    }

    /// The URL with any password replaced by `***`.
    pub fn redacted_url(&self) -> &str {
        &self.redacted
    }

    /// The config-file name of the target, when it has one.
    pub fn name(&self) -> Option<&str> {
        self.name.as_deref()
    }

    /// Where the server is: `host:port`, or the unix socket's path.
    pub fn address(&self) -> &str {
        &self.address
    }

    /// The database number selected after connecting.
    pub fn db(&self) -> i64 {
        self.db
    }

    /// Opens one multiplexed connection, authenticates and selects the database; commands
    /// sent on it are counted in `load`. Collectors connect through a
    /// topology's node, which counts and paces per node; this is for the
    /// simple clients around them (the demo's traffic). Connections are named `sessiontop` (`CLIENT LIST`
    /// shows whose they are) and, on Redis 7.2+, do not touch the keys they read (`CLIENT
    /// NO-TOUCH`), so reading sessions leaves their LRU/LFU standing as it was.
    pub async fn open(&self, load: LoadCounter) -> Result<Link, Failure> {
        // The connect timeout bounds the whole setup: a server that takes the connection but
        // answers nothing (paused, frozen) would otherwise hold the client library's first
        // commands for the response timeout.
        let deadline = tokio::time::Instant::now() + self.connect_timeout;
        let silent = || {
            Failure::Connection(format!(
                "timed out: no answer within the connect timeout of {} (the server took the connection but answers nothing: paused, frozen or overloaded?)",
                match self.connect_timeout.as_secs() {
                    0 => format!("{} ms", self.connect_timeout.as_millis()),
                    secs => crate::util::text::human_duration(secs as i64),
                }
            ))
        };
        let connect = self.client.get_multiplexed_async_connection_with_config(&self.config);
        let conn: MultiplexedConnection = match tokio::time::timeout_at(deadline, connect).await {
            Ok(Ok(conn)) => conn,
            Ok(Err(e)) => return Err(self.explain(Failure::from_redis("connect", &e)).await),
            Err(_) => return Err(self.explain(silent()).await),
        };
        match tokio::time::timeout_at(deadline, self.set_up(conn, load)).await {
            Ok(result) => result,
            Err(_) => Err(silent()),
        }
    }

    /// A new connection's greeting (`AUTH` or `PING`), `SELECT` and courtesies.
    async fn set_up(&self, conn: MultiplexedConnection, load: LoadCounter) -> Result<Link, Failure> {
        let mut link = Link::new(conn, load);
        let greeting = match &self.auth {
            Some((user, password)) => {
                let mut auth = redis::cmd("AUTH");
                if let Some(user) = user {
                    auth.arg(user);
                }
                auth.arg(password);
                link.query::<redis::Value>(&auth).await
            }
            None => link.query::<redis::Value>(&redis::cmd("PING")).await,
        };
        match greeting {
            Ok(_) => {}
            Err(Failure::Server { code, detail, .. }) if code == "ERR" && detail.contains("AUTH") => {
                return Err(Failure::Auth(format!("{code} {detail}")));
            }
            Err(f) if f.is_connection() => return Err(self.explain(f).await),
            Err(f) => return Err(Failure::Connection(f.to_string())),
        }
        if self.db != 0 {
            match link.query::<redis::Value>(redis::cmd("SELECT").arg(self.db)).await {
                Ok(_) => {}
                Err(f) if f.is_connection() => return Err(f),
                Err(f) => return Err(Failure::Connection(f.to_string())),
            }
        }
        // Courtesies that an older server or a narrow ACL may refuse; nothing depends on them.
        let mut pipe = crate::conn::link::pipe();
        pipe.cmd("CLIENT").arg("SETNAME").arg("sessiontop");
        pipe.cmd("CLIENT").arg("NO-TOUCH").arg("ON");
        link.pipeline(&pipe).await?;
        Ok(link)
    }

    /// A connection failure with what can be learnt about it: the line a server sends before
    /// it closes a connection it will not serve (`ERR max number of clients reached`), or a
    /// hint when a plain connection met a TLS port (or the other way round).
    async fn explain(&self, failure: Failure) -> Failure {
        let Failure::Connection(detail) = &failure else { return failure };
        let lower = detail.to_ascii_lowercase();
        if self.tls {
            let garbled = ["corrupt message", "invalidcontenttype", "wrong version number", "received plaintext"]
                .iter()
                .any(|s| lower.contains(s));
            // A plain Redis port waits for the end of a line that a TLS greeting never sends.
            if garbled || (lower.contains("timed out") && self.answers_plain_ping().await) {
                return Failure::Connection(format!(
                    "{detail} (the server did not answer in TLS, but answers plain Redis: use redis://)"
                ));
            }
            return failure;
        }
        let closed = ["reset by peer", "broken pipe", "unexpected end of file", "connection closed", "terminated"]
            .iter()
            .any(|s| lower.contains(s));
        if !closed {
            return failure;
        }
        if let Some(line) = self.greeting().await {
            return match Failure::from_code(
                "connect",
                line.split_once(' ').map_or(line.as_str(), |(c, _)| c),
                line.split_once(' ').map_or("", |(_, d)| d),
            ) {
                Failure::Server { code, detail, .. } => {
                    Failure::Connection(format!("the server refused the connection: {code} {detail}"))
                }
                other => other,
            };
        }
        Failure::Connection(format!(
            "{detail} (the server closed the connection at once: if it only speaks TLS, use rediss://)"
        ))
    }

    /// Whether the TLS target's port answers a plain `PING` (in any Redis way).
    async fn answers_plain_ping(&self) -> bool {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let Some((host, port)) = self.tls_addr.clone() else { return false };
        let ask = async move {
            let mut stream = tokio::net::TcpStream::connect((host.as_str(), port)).await.ok()?;
            stream.write_all(b"PING\r\n").await.ok()?;
            let mut buf = [0u8; 64];
            let n = stream.read(&mut buf).await.ok()?;
            Some(matches!(buf.get(..n.min(1)), Some([b'+' | b'-'])))
        };
        tokio::time::timeout(GREETING_TIMEOUT, ask).await.ok().flatten().unwrap_or(false)
    }

    /// What the server says unasked on a fresh raw connection, within a moment: Redis greets
    /// a connection it will not serve with one error line before closing it.
    async fn greeting(&self) -> Option<String> {
        use tokio::io::AsyncReadExt;
        let probe = self.probe.clone()?;
        let read = async move {
            let mut buf = vec![0u8; 512];
            let n = match probe {
                ProbeAddr::Tcp(host, port) => {
                    tokio::net::TcpStream::connect((host.as_str(), port)).await.ok()?.read(&mut buf).await.ok()?
                }
                ProbeAddr::Unix(path) => tokio::net::UnixStream::connect(path).await.ok()?.read(&mut buf).await.ok()?,
            };
            let line = String::from_utf8_lossy(&buf[..n]).lines().next()?.to_string();
            line.strip_prefix('-').map(|l| crate::util::text::escape_str(l.trim()))
        };
        tokio::time::timeout(GREETING_TIMEOUT, read).await.ok().flatten()
    }
}

/// `host:port`, `[v6]:port`.
pub fn split_host_port(text: &str) -> Option<(String, u16)> {
    let (host, port) = text.rsplit_once(':')?;
    let host = host.trim_start_matches('[').trim_end_matches(']');
    (!host.is_empty()).then_some(())?;
    Some((host.to_string(), port.parse().ok()?))
}

fn with_db(redacted: &str, db: Option<i64>) -> String {
    match db {
        Some(db) => format!("{redacted} (db {db})"),
        None => redacted.to_string(),
    }
}

fn read_password_file(path: &Path) -> Result<String, TargetError> {
    let text = crate::util::local_file::read_text(path, crate::util::local_file::PASSWORD_MAX_BYTES)
        .map_err(|reason| TargetError::PasswordFile { path: path.display().to_string(), reason })?;
    Ok(text.trim_end_matches(['\n', '\r']).to_string())
}

/// The redis crate's description of a configuration error, without anything it was given and
/// without its internal error-kind suffix (`… - InvalidClientConfig`).
fn describe(e: &redis::RedisError) -> String {
    let text = e.to_string();
    let text = text.split(" - ").next().unwrap_or(&text).trim().to_string();
    match e.detail() {
        Some(detail) if !text.contains(detail) => format!("{text}: {detail}"),
        _ => text,
    }
}

/// rustls needs a process-wide crypto provider before the first TLS connection.
fn install_crypto_provider() {
    // Fails only when a provider is already installed, which is the state we want.
    let _ = rustls::crypto::ring::default_provider().install_default();
}

/// Whether a URL holds a password (`redis://user:pw@host`, `?password=`/`?pass=`).
pub fn has_password(url: &str) -> bool {
    redact_url(url) != url
}

/// Replaces the password in a URL with `***`, also when the URL does not parse: the text
/// between `scheme://` and the last `@` before the host is treated as `user:password`, and a
/// `pass=` query parameter (unix-socket URLs) is redacted too.
pub fn redact_url(url: &str) -> String {
    let mut out = url.to_string();
    if !out.contains("://") {
        // Not URL-shaped: whatever precedes an `@` may be credentials.
        if let Some(at) = out.rfind('@') {
            out.replace_range(..at, "***");
        }
    }
    if let Some(scheme_end) = out.find("://") {
        let rest_start = scheme_end + 3;
        let authority_end = out[rest_start..].find(['/', '?', '#']).map_or(out.len(), |i| rest_start + i);
        if let Some(at) = out[rest_start..authority_end].rfind('@') {
            let at = rest_start + at;
            if let Some(colon) = out[rest_start..at].find(':') {
                let colon = rest_start + colon;
                out.replace_range(colon + 1..at, "***");
            }
        }
    }
    if let Some(q) = out.find('?') {
        let (base, query) = out.split_at(q + 1);
        let query: Vec<String> = query
            .split('&')
            .map(|pair| match pair.split_once('=') {
                Some((k, _)) if k.eq_ignore_ascii_case("pass") || k.eq_ignore_ascii_case("password") => {
                    format!("{k}=***")
                }
                _ => pair.to_string(),
            })
            .collect();
        out = format!("{base}{}", query.join("&"));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_are_redacted_in_every_url_shape() {
        assert_eq!(redact_url("redis://:s3cret@host:6379/0"), "redis://:***@host:6379/0");
        assert_eq!(redact_url("rediss://ops:p%40ss@cache.example:6380"), "rediss://ops:***@cache.example:6380");
        assert_eq!(redact_url("redis://user@host"), "redis://user@host");
        assert_eq!(redact_url("redis://host:6379"), "redis://host:6379");
        assert_eq!(redact_url("redis+unix:///tmp/r.sock?db=1&pass=hunter2"), "redis+unix:///tmp/r.sock?db=1&pass=***");
        // Unparseable URLs are redacted as text.
        assert_eq!(redact_url("redis://u:pw@host:notaport"), "redis://u:***@host:notaport");
        assert_eq!(redact_url("redis://u:p@ss@host"), "redis://u:***@host");
    }

    #[test]
    fn passwords_in_urls_are_noticed() {
        assert!(has_password("redis://:pw@h"));
        assert!(has_password("redis+unix:///s?pass=pw"));
        assert!(!has_password("redis://user@h:6379/0"));
    }

    #[test]
    fn bad_urls_are_refused_without_leaking_the_password() {
        let spec = |url: &str| TargetSpec { url: url.into(), ..Default::default() };
        for url in ["redis://u:topsecret@host:notaport", "http://u:topsecret@host", "u:topsecret@host"] {
            let err = Target::from_spec(&spec(url)).unwrap_err().to_string();
            assert!(!err.contains("topsecret"), "{err}");
            assert!(err.starts_with("invalid Redis URL"), "{err}");
        }
        let err = Target::from_spec(&TargetSpec { tls_insecure: true, ..spec("redis://h") }).unwrap_err();
        assert_eq!(err.to_string(), "--tls-insecure needs a rediss:// URL");
    }

    #[test]
    fn db_flag_overrides_and_is_shown() {
        let t = Target::from_spec(&TargetSpec { url: "redis://:pw@h:1/2".into(), db: Some(5), ..Default::default() })
            .unwrap();
        assert_eq!(t.db(), 5);
        assert_eq!(t.redacted_url(), "redis://:***@h:1/2 (db 5)");
    }
}
