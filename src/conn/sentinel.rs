//! Redis Sentinel: which server is the primary now. A target given as
//! `redis+sentinel://[user:pass@]host:port[,host:port…]/MASTER[/db]` (or `--sentinel` with
//! `--master`) is resolved by asking the sentinels (`SENTINEL GET-MASTER-ADDR-BY-NAME`), then
//! confirmed with the primary itself (`ROLE`, or `INFO replication` where `ROLE` is denied, as
//! it is for many read-only ACL users): a server that says it is a replica is not taken, however
//! a sentinel named it (it may be mid-failover). The sentinels' own list of their peers is
//! learnt, so a seed sentinel that goes away is not fatal; a switch of primary is followed by
//! subscribing to `+switch-master`, and by asking again after any connection error.

use std::sync::{Arc, Mutex};

use crate::conn::link::{Failure, Link, LoadCounter, reply};
use crate::conn::target::{Target, TargetError, split_host_port};

/// How a target's sentinels are reached.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SentinelSpec {
    /// `host:port` of each sentinel given.
    pub sentinels: Vec<(String, u16)>,
    /// The name the sentinels know the primary by.
    pub master: String,
    /// The sentinels' own user and password, when they want one.
    pub auth: Option<(Option<String>, String)>,
}

/// A `redis+sentinel://` URL taken apart: the URL of the data nodes (credentials, database,
/// TLS) with the first sentinel standing in for the host, the sentinels, and the primary's name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SentinelUrl {
    pub data_url: String,
    pub sentinels: Vec<(String, u16)>,
    pub master: String,
}

/// Why a sentinel URL is not one.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid sentinel URL '{url}': {why} (redis+sentinel://[user:pass@]host:port[,host:port...]/MASTER[/db])")]
pub struct SentinelUrlError {
    url: String,
    why: &'static str,
}

/// Takes apart a `redis+sentinel://` or `rediss+sentinel://` URL; `None` for any other scheme.
pub fn parse_url(url: &str) -> Option<Result<SentinelUrl, SentinelUrlError>> {
    let (scheme, rest) = url.split_once("://")?;
    let data_scheme = match scheme {
        "redis+sentinel" | "valkey+sentinel" => "redis",
        "rediss+sentinel" | "valkeys+sentinel" => "rediss",
        _ => return None,
    };
    let bad = |why| SentinelUrlError { url: crate::conn::target::redact_url(url), why };
    let (authority, path) = rest.split_once('/').unwrap_or((rest, ""));
    let (userinfo, hosts) = match authority.rsplit_once('@') {
        Some((u, h)) => (Some(u), h),
        None => (None, authority),
    };
    let sentinels: Option<Vec<(String, u16)>> = hosts.split(',').map(|h| split_host_port(h.trim())).collect();
    let Some(sentinels) = sentinels.filter(|s| !s.is_empty()) else {
        return Some(Err(bad("every sentinel needs a host and a port")));
    };
    let mut parts = path.split('/').filter(|p| !p.is_empty());
    let Some(master) = parts.next().map(str::to_string) else {
        return Some(Err(bad("the primary's name is missing")));
    };
    let db = match parts.next() {
        Some(db) if db.parse::<u32>().is_err() => return Some(Err(bad("the database is not a number"))),
        Some(db) => format!("/{db}"),
        None => String::new(),
    };
    let (host, port) = &sentinels[0];
    let host = if host.contains(':') { format!("[{host}]") } else { host.clone() };
    let user = userinfo.map(|u| format!("{u}@")).unwrap_or_default();
    Some(Ok(SentinelUrl { data_url: format!("{data_scheme}://{user}{host}:{port}{db}"), sentinels, master }))
}

/// What the sentinels said: the primary, its replicas, and every sentinel they know.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Answer {
    pub primary: (String, u16),
    pub replicas: Vec<(String, u16)>,
    pub sentinels: Vec<(String, u16)>,
}

/// The sentinels of a target: those given, and those learnt from them.
#[derive(Debug)]
pub struct Sentinels {
    spec: SentinelSpec,
    known: Mutex<Vec<(String, u16)>>,
    /// Switches of primary a subscription announced, and not yet followed.
    switched: std::sync::atomic::AtomicU64,
}

impl Sentinels {
    pub fn new(spec: SentinelSpec) -> Sentinels {
        Sentinels { known: Mutex::new(spec.sentinels.clone()), spec, switched: Default::default() }
    }

    pub fn master(&self) -> &str {
        &self.spec.master
    }

    /// Every sentinel known, those given first.
    pub fn known(&self) -> Vec<(String, u16)> {
        self.known.lock().map(|k| k.clone()).unwrap_or_else(|_| self.spec.sentinels.clone())
    }

    /// A connection target for the sentinel at `host:port`, with the sentinels' credentials.
    pub fn target(&self, template: &Target, host: &str, port: u16) -> Result<Target, TargetError> {
        template.for_sentinel(host, port, self.spec.auth.clone())
    }

    /// Asks each known sentinel in turn until one names the primary.
    pub async fn ask(&self, template: &Target) -> Result<Answer, Failure> {
        let mut last = Failure::Connection("no sentinel given".into());
        for (host, port) in self.known() {
            let target = match self.target(template, &host, port) {
                Ok(t) => t,
                Err(e) => {
                    last = Failure::Connection(e.to_string());
                    continue;
                }
            };
            match self.ask_one(&target).await {
                Ok(answer) => {
                    if let Ok(mut known) = self.known.lock() {
                        for s in &answer.sentinels {
                            if !known.contains(s) {
                                known.push(s.clone());
                            }
                        }
                    }
                    return Ok(answer);
                }
                Err(f) => {
                    tracing::debug!(sentinel = %format!("{host}:{port}"), error = %f, "sentinel did not answer");
                    last = f;
                }
            }
        }
        Err(match last {
            Failure::Connection(why) => Failure::Connection(format!("no sentinel answers: {why}")),
            other => other,
        })
    }

    async fn ask_one(&self, target: &Target) -> Result<Answer, Failure> {
        let mut link = target.open(LoadCounter::default()).await?;
        let master = &self.spec.master;
        let mut pipe = crate::conn::link::pipe();
        pipe.cmd("SENTINEL").arg("GET-MASTER-ADDR-BY-NAME").arg(master);
        pipe.cmd("SENTINEL").arg("REPLICAS").arg(master);
        pipe.cmd("SENTINEL").arg("SENTINELS").arg(master);
        let mut replies = link.pipeline(&pipe).await?.into_iter();
        let addr = replies.next().unwrap_or(Err(Failure::Protocol("SENTINEL".into())))?;
        let primary = match reply::byte_list(Ok(addr)).unwrap_or_default().as_slice() {
            [Some(host), Some(port)] => {
                let port = std::str::from_utf8(port).ok().and_then(|p| p.parse().ok());
                port.map(|p| (String::from_utf8_lossy(host).into_owned(), p))
            }
            _ => None,
        };
        let Some(primary) = primary else {
            return Err(Failure::Server {
                command: "SENTINEL GET-MASTER-ADDR-BY-NAME".into(),
                code: "ERR".into(),
                detail: format!("the sentinel knows no primary named '{}'", crate::util::text::escape_str(master)),
            });
        };
        let replicas = replies.next().map(|r| instances(r, true)).unwrap_or_default();
        let sentinels = replies.next().map(|r| instances(r, false)).unwrap_or_default();
        Ok(Answer { primary, replicas, sentinels })
    }

    /// Notes that a subscription announced a switch of primary.
    pub fn note_switch(&self) {
        self.switched.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    }

    /// Switches announced so far.
    pub fn switches(&self) -> u64 {
        self.switched.load(std::sync::atomic::Ordering::Relaxed)
    }
}

/// The instances of a `SENTINEL REPLICAS` or `SENTINEL SENTINELS` reply (each a flat list of
/// names and values); replicas that are down or cut off from their primary are left out.
fn instances(r: crate::conn::link::Reply, replicas: bool) -> Vec<(String, u16)> {
    let Some(items) = reply::array(r) else { return Vec::new() };
    items
        .into_iter()
        .filter_map(|item| {
            let fields = reply::byte_list(Ok(item))?;
            let text: Vec<String> = fields
                .into_iter()
                .map(|f| f.map(|b| String::from_utf8_lossy(&b).into_owned()).unwrap_or_default())
                .collect();
            let get = |name: &str| text.chunks_exact(2).find(|c| c[0] == name).map(|c| c[1].as_str());
            let flags = get("flags").unwrap_or_default();
            if replicas
                && (flags.contains("down")
                    || flags.contains("disconnected")
                    || get("master-link-status") == Some("err"))
            {
                return None;
            }
            Some((get("ip")?.to_string(), get("port")?.parse().ok()?))
        })
        .collect()
}

/// Whether the server on `link` says it is a primary: `ROLE`, or `INFO replication` where
/// `ROLE` is denied or unknown.
pub async fn is_primary(link: &mut Link) -> Result<bool, Failure> {
    match link.query::<redis::Value>(&redis::cmd("ROLE")).await {
        Ok(redis::Value::Array(items)) => {
            Ok(items.first().and_then(|v| reply::string(Ok(v.clone()))).is_some_and(|r| r == "master"))
        }
        Ok(_) => Err(Failure::Protocol("ROLE".into())),
        Err(f) if f.is_connection() => Err(f),
        Err(_) => {
            let info: String = link.query(redis::cmd("INFO").arg("replication")).await?;
            Ok(info.lines().any(|l| l.trim_end() == "role:master"))
        }
    }
}

/// Subscribes to `+switch-master` on the sentinels, one after another as they fail, and notes
/// each switch of this target's primary; runs until dropped.
pub async fn follow_switches(template: Target, sentinels: Arc<Sentinels>) {
    use futures_util::StreamExt;
    let mut attempt: u32 = 0;
    loop {
        for (host, port) in sentinels.known() {
            let Ok(target) = sentinels.target(&template, &host, port) else { continue };
            let Ok(mut pubsub) = target.pubsub().await else { continue };
            if pubsub.subscribe("+switch-master").await.is_err() {
                continue;
            }
            attempt = 0;
            let mut messages = pubsub.on_message();
            while let Some(message) = messages.next().await {
                let text: String = message.get_payload().unwrap_or_default();
                // `<master name> <old ip> <old port> <new ip> <new port>`
                if text.split_whitespace().next() == Some(sentinels.master()) {
                    tracing::info!(%text, "sentinel: the primary switched");
                    sentinels.note_switch();
                }
            }
        }
        attempt = attempt.saturating_add(1);
        tokio::time::sleep(std::time::Duration::from_millis(500u64.saturating_mul(u64::from(attempt.min(20))))).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sentinel_urls_name_the_sentinels_the_primary_and_the_database() {
        let u = parse_url("redis+sentinel://ops:pw@s1:26379,s2:26380/mymaster/2").unwrap().unwrap();
        assert_eq!(u.sentinels, vec![("s1".into(), 26379), ("s2".into(), 26380)]);
        assert_eq!(u.master, "mymaster");
        assert_eq!(u.data_url, "redis://ops:pw@s1:26379/2");
        let tls = parse_url("rediss+sentinel://[::1]:26379/m").unwrap().unwrap();
        assert_eq!(tls.data_url, "rediss://[::1]:26379");
        assert!(parse_url("redis://h:1").is_none());
        let err = parse_url("redis+sentinel://u:secret@s1/m").unwrap().unwrap_err().to_string();
        assert!(err.contains("host and a port") && !err.contains("secret"), "{err}");
        assert!(parse_url("redis+sentinel://s1:1").unwrap().is_err(), "the primary's name is needed");
        assert!(parse_url("redis+sentinel://s1:1/m/x").unwrap().is_err());
    }

    #[test]
    fn replicas_that_are_down_are_not_offered() {
        let item = |ip: &str, flags: &str| {
            redis::Value::Array(
                ["ip", ip, "port", "6380", "flags", flags, "master-link-status", "ok"]
                    .iter()
                    .map(|s| redis::Value::BulkString(s.as_bytes().to_vec()))
                    .collect(),
            )
        };
        let r = Ok(redis::Value::Array(vec![item("10.0.0.2", "slave"), item("10.0.0.3", "s_down,slave")]));
        assert_eq!(instances(r, true), vec![("10.0.0.2".to_string(), 6380)]);
    }
}
