//! Where sessiontop connects: URLs, TLS, credentials and timeouts, turned into a redis client.
//!
//! A password never leaves this module in readable form: every URL shown anywhere is the
//! [`Target::redacted_url`], and errors are built from redacted text only.

use std::path::{Path, PathBuf};
use std::time::Duration;

use redis::aio::MultiplexedConnection;
use redis::{AsyncConnectionConfig, ConnectionAddr, ConnectionInfo, IntoConnectionInfo};

use crate::link::{Failure, Link, LoadCounter};

/// The URL used when neither `--url` nor `$REDIS_URL` is given.
pub const DEFAULT_URL: &str = "redis://127.0.0.1:6379";

/// How long establishing a connection (TCP, TLS, AUTH, SELECT) may take.
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// How long one reply may take. `INFO` on a loaded server can take far longer than the redis
/// crate's 500 ms default, and a timed-out reply would be mistaken for an outage.
pub const DEFAULT_RESPONSE_TIMEOUT: Duration = Duration::from_secs(10);

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
    PasswordFile { path: String, reason: String },
    #[error("cannot read TLS CA file {path}: {reason}")]
    CaFile { path: String, reason: String },
    #[error("{0} needs a rediss:// URL")]
    TlsWithoutTls(&'static str),
}

/// A validated target: the client to connect with and how to show it.
#[derive(Clone)]
pub struct Target {
    client: redis::Client,
    redacted: String,
    name: Option<String>,
    db: i64,
    config: AsyncConnectionConfig,
}

impl std::fmt::Debug for Target {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Target").field("url", &self.redacted).field("db", &self.db).finish()
    }
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

        let mut settings = info.redis_settings().clone();
        if let Some(user) = &spec.user {
            settings = settings.set_username(user);
        }
        let file_password = match &spec.password_file {
            Some(path) => Some(read_password_file(path)?),
            None => None,
        };
        match (file_password, settings.password().is_some(), &spec.env_password) {
            (Some(pw), _, _) => settings = settings.set_password(pw),
            (None, false, Some(pw)) if !pw.is_empty() => settings = settings.set_password(pw),
            _ => {}
        }
        if let Some(db) = spec.db {
            settings = settings.set_db(db);
        }
        let db = settings.db();
        info = info.set_redis_settings(settings);

        if spec.tls_insecure
            && let ConnectionAddr::TcpTls { host, port, tls_params, .. } = info.addr().clone()
        {
            info = info.set_addr(ConnectionAddr::TcpTls { host, port, insecure: true, tls_params });
        }

        let client = match &spec.tls_ca {
            Some(path) => {
                let pem = std::fs::read(path)
                    .map_err(|e| TargetError::CaFile { path: path.display().to_string(), reason: e.to_string() })?;
                let certs = redis::TlsCertificates { client_tls: None, root_cert: Some(pem) };
                redis::Client::build_with_tls(info, certs)
                    .map_err(|e| TargetError::CaFile { path: path.display().to_string(), reason: describe(&e) })?
            }
            None => redis::Client::open(info).map_err(|e| bad(describe(&e)))?,
        };

        let config = AsyncConnectionConfig::new()
            .set_connection_timeout(Some(spec.connect_timeout.unwrap_or(DEFAULT_CONNECT_TIMEOUT)))
            .set_response_timeout(Some(spec.response_timeout.unwrap_or(DEFAULT_RESPONSE_TIMEOUT)));

        Ok(Target { client, redacted: with_db(&redacted, spec.db), name: spec.name.clone(), db, config })
    }

    /// The URL with any password replaced by `***`.
    pub fn redacted_url(&self) -> &str {
        &self.redacted
    }

    /// The config-file name of the target, when it has one.
    pub fn name(&self) -> Option<&str> {
        self.name.as_deref()
    }

    /// The database number selected after connecting.
    pub fn db(&self) -> i64 {
        self.db
    }

    /// Opens one multiplexed connection; commands sent on it are counted in `load`.
    pub async fn connect(&self, load: LoadCounter) -> Result<Link, Failure> {
        let conn: MultiplexedConnection = self
            .client
            .get_multiplexed_async_connection_with_config(&self.config)
            .await
            .map_err(|e| Failure::from_redis("connect", &e))?;
        Ok(Link::new(conn, load))
    }
}

fn with_db(redacted: &str, db: Option<i64>) -> String {
    match db {
        Some(db) => format!("{redacted} (db {db})"),
        None => redacted.to_string(),
    }
}

fn read_password_file(path: &Path) -> Result<String, TargetError> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| TargetError::PasswordFile { path: path.display().to_string(), reason: e.to_string() })?;
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
