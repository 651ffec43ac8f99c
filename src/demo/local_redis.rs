//! A throwaway `redis-server` process: for the demo, the test suite and the benchmark.
//!
//! It runs in its own temporary directory with persistence off, answers `PING` before `start`
//! returns, and is stopped when dropped. On Linux it is also told to stop when the thread that
//! started it ends, so that nothing is left running even if sessiontop is killed.
//!
//! Must never touch a Redis it did not start.

use std::io::{Read, Write};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// How long a fresh `redis-server` may take to answer `PING`.
const READY_TIMEOUT: Duration = Duration::from_secs(10);
/// Pause between readiness probes.
const READY_POLL_INTERVAL: Duration = Duration::from_millis(10);
/// How long a stopping server may take before it is killed.
const STOP_TIMEOUT: Duration = Duration::from_secs(5);

/// The one-line advice for a machine without `redis-server`.
pub const INSTALL_HINT: &str =
    "install it with `apt-get install redis-server` (Debian, Ubuntu) or `brew install redis` (macOS)";

/// Why a local server could not be started.
#[derive(Debug, thiserror::Error)]
pub enum LocalRedisError {
    #[error("redis-server not found{where_}: {INSTALL_HINT}, or pass --redis-server PATH")]
    NotFound { where_: String },
    #[error("could not start {binary}: {reason}")]
    Spawn { binary: String, reason: String },
    #[error("redis-server did not become ready: {0}")]
    NotReady(String),
    #[error("could not create a temporary directory: {0}")]
    TempDir(String),
}

/// How the server listens.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Listen {
    /// A unix socket in the server's directory (no port can clash).
    Unix,
    /// A free TCP port on 127.0.0.1, plus the unix socket.
    Tcp,
    /// A free TCP port whose cluster bus port (the port + 10,000) is free too, plus the unix
    /// socket: a cluster node's.
    ClusterTcp,
    /// As [`Listen::ClusterTcp`], the port speaking TLS only (the TLS options among the extra
    /// arguments); the unix socket stays plain.
    ClusterTls,
}

/// Options for [`LocalRedis::start`].
#[derive(Debug, Clone)]
pub struct Options {
    /// The `redis-server` binary; `None` searches `PATH`.
    pub binary: Option<PathBuf>,
    pub listen: Listen,
    /// Further `--option value` arguments, e.g. `["--rename-command", "CONFIG", ""]`.
    pub extra_args: Vec<String>,
}

impl Default for Options {
    fn default() -> Self {
        Options { binary: None, listen: Listen::Unix, extra_args: Vec::new() }
    }
}

/// A running `redis-server` owned by this process.
pub struct LocalRedis {
    child: Option<Child>,
    dir: tempfile::TempDir,
    binary: PathBuf,
    port: Option<u16>,
    /// Whether the port speaks TLS.
    tls: bool,
    extra_args: Vec<String>,
}

impl LocalRedis {
    /// Starts a server and waits until it answers `PING`.
    pub fn start(options: Options) -> Result<Self, LocalRedisError> {
        let binary = find_binary(options.binary.as_deref())?;
        let dir = tempfile::Builder::new()
            .prefix("sessiontop-redis-")
            .tempdir()
            .map_err(|e| LocalRedisError::TempDir(e.to_string()))?;
        let tls = options.listen == Listen::ClusterTls;
        let mut server = LocalRedis { child: None, dir, binary, port: None, tls, extra_args: options.extra_args };
        match options.listen {
            Listen::Unix => server.spawn_and_wait()?,
            Listen::Tcp | Listen::ClusterTcp | Listen::ClusterTls => {
                // Binding port 0 and releasing it can race with another process; try a few ports.
                let mut last = None;
                for _ in 0..5 {
                    server.port = Some(if options.listen == Listen::Tcp { free_port()? } else { free_cluster_port()? });
                    match server.spawn_and_wait() {
                        Ok(()) => return Ok(server),
                        Err(e) => last = Some(e),
                    }
                }
                return Err(last.unwrap_or_else(|| LocalRedisError::NotReady("no free port".into())));
            }
        }
        Ok(server)
    }

    /// A URL for the TCP port when there is one, else for the unix socket.
    pub fn url(&self) -> String {
        match (self.port, self.tls) {
            (Some(port), true) => format!("rediss://127.0.0.1:{port}"),
            (Some(port), false) => format!("redis://127.0.0.1:{port}"),
            (None, _) => self.socket_url(),
        }
    }

    /// A `redis+unix://` URL for the server's socket.
    pub fn socket_url(&self) -> String {
        format!("redis+unix://{}", self.socket_path().display())
    }

    pub fn socket_path(&self) -> PathBuf {
        self.dir.path().join("redis.sock")
    }

    /// The TCP port, when it listens on one.
    pub fn port(&self) -> Option<u16> {
        self.port
    }

    /// The server's directory (its log file is `redis.log` there).
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// Stops the server (SIGTERM, then SIGKILL after a while); `restart` brings it back on the
    /// same socket and port, empty.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            terminate(&mut child);
        }
    }

    /// Starts the server again after [`stop`](Self::stop), on the same address.
    pub fn restart(&mut self) -> Result<(), LocalRedisError> {
        self.stop();
        self.spawn_and_wait()
    }

    fn spawn_and_wait(&mut self) -> Result<(), LocalRedisError> {
        let dir = self.dir.path();
        let socket = self.socket_path();
        let _ = std::fs::remove_file(&socket);
        let mut cmd = Command::new(&self.binary);
        let (port, tls_port) = match (self.port, self.tls) {
            (Some(port), true) => (0, Some(port)),
            (port, _) => (port.unwrap_or(0), None),
        };
        if let Some(tls_port) = tls_port {
            cmd.arg("--tls-port").arg(tls_port.to_string());
        }
        cmd.arg("--port")
            .arg(port.to_string())
            .args(["--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--daemonize", "no"])
            .arg("--dir")
            .arg(dir)
            .arg("--unixsocket")
            .arg(&socket)
            .args(["--unixsocketperm", "700", "--logfile"])
            .arg(dir.join("redis.log"))
            .args(&self.extra_args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        stop_with_parent(&mut cmd);
        let mut child = cmd
            .spawn()
            .map_err(|e| LocalRedisError::Spawn { binary: self.binary.display().to_string(), reason: e.to_string() })?;
        let deadline = Instant::now() + READY_TIMEOUT;
        loop {
            if ping(&socket) {
                self.child = Some(child);
                return Ok(());
            }
            if let Ok(Some(status)) = child.try_wait() {
                return Err(LocalRedisError::NotReady(format!(
                    "it exited ({status}): {}",
                    last_log_line(&dir.join("redis.log"))
                )));
            }
            if Instant::now() > deadline {
                terminate(&mut child);
                return Err(LocalRedisError::NotReady(format!(
                    "no PING reply within {READY_TIMEOUT:?}: {}",
                    last_log_line(&dir.join("redis.log"))
                )));
            }
            std::thread::sleep(READY_POLL_INTERVAL);
        }
    }
}

impl Drop for LocalRedis {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Finds `redis-server`: the given path, else `PATH`.
pub fn find_binary(explicit: Option<&Path>) -> Result<PathBuf, LocalRedisError> {
    if let Some(path) = explicit {
        return if path.is_file() {
            Ok(path.to_path_buf())
        } else {
            Err(LocalRedisError::NotFound { where_: format!(" at {}", path.display()) })
        };
    }
    let path_var = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path_var)
        .map(|dir| dir.join("redis-server"))
        .find(|candidate| candidate.is_file())
        .ok_or(LocalRedisError::NotFound { where_: " on PATH".into() })
}

fn free_port() -> Result<u16, LocalRedisError> {
    let listener = TcpListener::bind("127.0.0.1:0").map_err(|e| LocalRedisError::NotReady(e.to_string()))?;
    listener.local_addr().map(|a| a.port()).map_err(|e| LocalRedisError::NotReady(e.to_string()))
}

/// A free port below `limit` (a sentinel's, beside servers whose ports come from the kernel).
pub(crate) fn free_port_below(limit: u16) -> Result<u16, LocalRedisError> {
    for _ in 0..200 {
        let port = fastrand::u16(20_000..limit);
        if TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return Ok(port);
        }
    }
    Err(LocalRedisError::NotReady("no free port".into()))
}

/// A free port below 55,536 whose bus port (the port + 10,000) is free too.
pub(crate) fn free_cluster_port() -> Result<u16, LocalRedisError> {
    for _ in 0..200 {
        let port = fastrand::u16(20_000..55_000);
        let free = |p: u16| TcpListener::bind(("127.0.0.1", p)).is_ok();
        if free(port) && free(port + 10_000) {
            return Ok(port);
        }
    }
    Err(LocalRedisError::NotReady("no free port pair for a cluster node".into()))
}

fn ping(socket: &Path) -> bool {
    let Ok(mut stream) = std::os::unix::net::UnixStream::connect(socket) else {
        return false;
    };
    let _ = stream.set_read_timeout(Some(Duration::from_secs(1)));
    if stream.write_all(b"PING\r\n").is_err() {
        return false;
    }
    // `+PONG`, or `-NOAUTH` from a server started with `--requirepass`: either way it answers.
    let mut buf = [0u8; 7];
    stream.read_exact(&mut buf).is_ok() && (&buf == b"+PONG\r\n" || buf.starts_with(b"-NOAUTH"))
}

pub(crate) fn terminate(child: &mut Child) {
    // SAFETY: kill(2) with a pid we own and a valid signal number has no memory effects.
    unsafe {
        libc::kill(child.id() as libc::pid_t, libc::SIGTERM);
    }
    let deadline = Instant::now() + STOP_TIMEOUT;
    while Instant::now() < deadline {
        if let Ok(Some(_)) = child.try_wait() {
            return;
        }
        std::thread::sleep(READY_POLL_INTERVAL);
    }
    let _ = child.kill();
    let _ = child.wait();
}

pub(crate) fn last_log_line(path: &Path) -> String {
    std::fs::read_to_string(path)
        .ok()
        .and_then(|log| log.lines().rev().find(|l| !l.trim().is_empty()).map(str::to_string))
        .unwrap_or_else(|| "no log".to_string())
}

#[cfg(target_os = "linux")]
pub(crate) fn stop_with_parent(cmd: &mut Command) {
    use std::os::unix::process::CommandExt;
    // SAFETY: prctl(PR_SET_PDEATHSIG) is async-signal-safe and touches no memory of the parent.
    unsafe {
        cmd.pre_exec(|| {
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM) == -1 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
}

#[cfg(not(target_os = "linux"))]
pub(crate) fn stop_with_parent(_cmd: &mut Command) {}
