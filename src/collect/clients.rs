//! Who is connected: `CLIENT LIST` of every primary, grouped by source host, with names,
//! libraries, idle times and last commands. Listing costs Redis about a microsecond a client,
//! in one command that cannot be paged, so it is read every [`CLIENTS_EVERY_MS`] and only while
//! at most [`LIST_MAX_CLIENTS`] are connected; where it is denied (ElastiCache Serverless, a
//! narrow ACL user) the clients are one unavailable field.

use std::collections::BTreeMap;

use crate::conn::link::{Failure, reply};
use crate::conn::route::Router;
use crate::engine::domain::{ClientsView, HostClients, Millis};

/// How often the clients are listed.
pub const CLIENTS_EVERY_MS: Millis = 10_000;
/// Clients listed at most: beyond this one `CLIENT LIST` would cost Redis more than a
/// millisecond.
pub const LIST_MAX_CLIENTS: u64 = 1_000;
/// Names and commands kept a host.
const KEPT_A_HOST: usize = 4;
/// The name sessiontop's connections carry.
const OWN_NAME: &str = "sessiontop";

/// What a connection runs before it is anyone's: its greeting.
const GREETINGS: [&str; 6] = ["NULL", "auth", "hello", "ping", "select", "client|setname"];

/// Lists the clients of every primary of the target, `connected` being how many `INFO` counts
/// (to leave too many unlisted). Only a lost connection is an error.
pub async fn poll(router: &Router, connected: Option<u64>, now: Millis) -> Result<ClientsView, Failure> {
    if let Some(n) = connected.filter(|n| *n > LIST_MAX_CLIENTS) {
        return Ok(unavailable(
            now,
            format!(
                "not listed: {} clients are connected, and CLIENT LIST of more than {} would cost Redis over a millisecond",
                crate::util::text::grouped(n),
                crate::util::text::grouped(LIST_MAX_CLIENTS)
            ),
        ));
    }
    // Every primary at once, as a poll of the nodes asks them.
    let primaries = router.topology().map().primaries();
    let listed = futures_util::future::join_all(primaries.iter().map(|node| list(router, node))).await;
    let mut lines = String::new();
    for listed in listed {
        match listed? {
            Ok(text) => {
                lines.push_str(&text);
                lines.push('\n');
            }
            Err(why) => return Ok(unavailable(now, why)),
        }
    }
    Ok(parse(&lines, now))
}

/// One node's `CLIENT LIST`, or why it would not give it; only a lost connection is an error.
async fn list(
    router: &Router,
    node: &std::sync::Arc<crate::conn::topology::Node>,
) -> Result<Result<String, String>, Failure> {
    let mut link = router.link(node).await?;
    let mut pipe = crate::conn::link::pipe();
    pipe.cmd("CLIENT").arg("LIST").arg("TYPE").arg("normal");
    let Some(listed) = link.pipeline(&pipe).await?.into_iter().next() else { return Ok(Ok(String::new())) };
    match reply::failure(&listed) {
        Some(failure) if failure.is_connection() => Err(failure.clone()),
        Some(failure) => Ok(Err(format!("CLIENT LIST: {failure}"))),
        None => Ok(Ok(reply::string(listed).unwrap_or_default())),
    }
}

fn unavailable(now: Millis, why: String) -> ClientsView {
    ClientsView { at: now, unavailable: Some(why), ..ClientsView::default() }
}

#[derive(Default)]
struct Host {
    connections: u64,
    names: BTreeMap<String, u64>,
    idle: Option<(u64, u64)>,
    commands: BTreeMap<String, u64>,
}

/// `CLIENT LIST`'s lines (`id=3 addr=10.0.0.5:52466 … name=worker idle=0 … cmd=get …`), grouped
/// by source host.
pub fn parse(text: &str, now: Millis) -> ClientsView {
    let mut view = ClientsView { at: now, ..ClientsView::default() };
    let mut hosts: BTreeMap<String, Host> = BTreeMap::new();
    for line in text.lines().filter(|l| !l.trim().is_empty()).take(LIST_MAX_CLIENTS as usize * 4) {
        let field = |name: &str| {
            line.split(' ').find_map(|kv| kv.strip_prefix(name).and_then(|rest| rest.strip_prefix('='))).unwrap_or("")
        };
        let name = field("name");
        // A connection still saying hello (connected this second, no name yet, nothing run but
        // its greeting) is nobody's yet: sessiontop's own are named right after, and counting
        // them at the first listing made a fall of connections out of nothing.
        if name.is_empty() && field("age") == "0" && GREETINGS.contains(&field("cmd")) {
            continue;
        }
        view.total += 1;
        if name == OWN_NAME {
            view.own += 1;
            continue;
        }
        let host = hosts.entry(host_of(field("addr"))).or_default();
        host.connections += 1;
        let lib = field("lib-name");
        let label = match (name, lib) {
            ("", "") => "(no name)".to_string(),
            (n, "") => n.to_string(),
            ("", l) => format!("({l})"),
            (n, l) => format!("{n} ({l})"),
        };
        *host.names.entry(crate::util::text::escape_str(&label)).or_default() += 1;
        if let Ok(idle) = field("idle").parse::<u64>() {
            host.idle = Some(host.idle.map_or((idle, idle), |(lo, hi)| (lo.min(idle), hi.max(idle))));
        }
        let cmd = field("cmd");
        if !cmd.is_empty() && cmd != "NULL" {
            *host.commands.entry(crate::util::text::escape_str(cmd)).or_default() += 1;
        }
    }
    view.hosts = hosts
        .into_iter()
        .map(|(host, h)| HostClients {
            host,
            connections: h.connections,
            names: most_first(h.names),
            idle_s: h.idle.unwrap_or((0, 0)),
            commands: most_first(h.commands),
        })
        .collect();
    view.hosts.sort_by(|a, b| b.connections.cmp(&a.connections).then(a.host.cmp(&b.host)));
    view
}

/// The host part of a client's address: `10.0.0.5:52466` → `10.0.0.5`, `[::1]:6379` → `::1`,
/// a unix socket → `local socket`.
fn host_of(addr: &str) -> String {
    let host = addr.rsplit_once(':').map_or(addr, |(h, _)| h);
    if host.starts_with('/') || host.is_empty() {
        return "local socket".to_string();
    }
    crate::util::text::escape_str(host.trim_start_matches('[').trim_end_matches(']'))
}

fn most_first(counts: BTreeMap<String, u64>) -> Vec<(String, u64)> {
    let mut v: Vec<(String, u64)> = counts.into_iter().collect();
    v.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
    v.truncate(KEPT_A_HOST);
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clients_are_grouped_by_host_with_sessiontop_apart() {
        let text = "\
id=3 addr=10.0.0.5:52466 laddr=10.0.0.1:6379 fd=8 name=worker age=9 idle=0 flags=N db=0 cmd=get user=default lib-name=redis-py lib-ver=5.0
id=4 addr=10.0.0.5:52467 laddr=10.0.0.1:6379 fd=9 name=worker age=9 idle=4 flags=N db=0 cmd=set user=default
id=5 addr=10.0.0.5:52468 laddr=10.0.0.1:6379 fd=10 name= age=9 idle=2 flags=N db=0 cmd=get user=default
id=6 addr=[::1]:40000 laddr=[::1]:6379 fd=11 name=sessiontop age=9 idle=0 flags=N db=0 cmd=client|list user=default
id=7 addr=/tmp/redis.sock:0 laddr=/tmp/redis.sock:0 fd=12 name= age=1 idle=1 flags=U db=0 cmd=ping user=default
id=8 addr=10.0.0.9:41000 laddr=10.0.0.1:6379 fd=13 name= age=0 idle=0 flags=N db=0 cmd=select user=default
";
        let v = parse(text, 1);
        assert_eq!((v.total, v.own), (5, 1));
        assert_eq!(v.hosts.len(), 2, "{v:?}");
        let app = &v.hosts[0];
        assert_eq!((app.host.as_str(), app.connections, app.idle_s), ("10.0.0.5", 3, (0, 4)));
        assert_eq!(
            app.names,
            [("(no name)".to_string(), 1), ("worker".to_string(), 1), ("worker (redis-py)".to_string(), 1)]
        );
        assert_eq!(app.commands, [("get".to_string(), 2), ("set".to_string(), 1)]);
        assert_eq!(v.hosts[1].host, "local socket");
    }
}
