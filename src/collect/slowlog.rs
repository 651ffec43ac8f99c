//! The slowlog: `SLOWLOG GET` (bounded) of every primary, with the client and the key each
//! slow command touched, and `LATENCY LATEST` where allowed. Read every [`SLOWLOG_EVERY_MS`];
//! a denied or absent command (ElastiCache Serverless, a narrow ACL user) is one field.

use crate::conn::link::{Failure, Reply, reply};
use crate::conn::route::Router;
use crate::engine::domain::{Millis, SlowEntry, SlowlogView};
use crate::engine::layout::Layout;
use crate::engine::names::SessionId;

/// How often the slowlog is read.
pub const SLOWLOG_EVERY_MS: Millis = 30_000;
/// Entries read from each node (`SLOWLOG GET` is O(N) in them).
const ENTRIES_A_NODE: usize = 32;
/// Entries kept, newest first, over every node.
const ENTRIES_KEPT: usize = 64;
/// Characters of a command kept.
const COMMAND_CHARS: usize = 160;

/// Reads the slowlog (and latency) of every primary, all at once, as a poll of the nodes asks
/// them. Only a lost connection is an error.
pub async fn poll(router: &Router, layout: Option<&Layout>, now: Millis) -> Result<SlowlogView, Failure> {
    let primaries = router.topology().map().primaries();
    let read = futures_util::future::join_all(primaries.iter().map(|node| read_node(router, node))).await;
    let mut view = SlowlogView { at: now, latency: Some(Vec::new()), ..SlowlogView::default() };
    for (node, replies) in primaries.iter().zip(read) {
        let (slow, latency) = replies?;
        match slow {
            Some(Err(f)) if f.is_connection() => return Err(f),
            Some(Err(f)) => view.unavailable = Some(format!("SLOWLOG: {f}")),
            Some(Ok(value)) => view.entries.extend(entries(node.address(), value, layout)),
            None => {}
        }
        match latency {
            Some(Ok(value)) => {
                if let Some(events) = view.latency.as_mut() {
                    events.extend(latency_events(value));
                }
            }
            _ => view.latency = None,
        }
    }
    view.entries.sort_by(|a, b| b.at.cmp(&a.at).then(b.micros.cmp(&a.micros)));
    view.entries.truncate(ENTRIES_KEPT);
    Ok(view)
}

/// One node's `SLOWLOG GET` and `LATENCY LATEST`, in one round trip.
async fn read_node(
    router: &Router,
    node: &std::sync::Arc<crate::conn::topology::Node>,
) -> Result<(Option<Reply>, Option<Reply>), Failure> {
    let mut link = router.link(node).await?;
    let mut pipe = crate::conn::link::pipe();
    pipe.cmd("SLOWLOG").arg("GET").arg(ENTRIES_A_NODE);
    pipe.cmd("LATENCY").arg("LATEST");
    let mut replies = link.pipeline(&pipe).await?.into_iter();
    Ok((replies.next(), replies.next()))
}

/// `SLOWLOG GET`'s entries: `[id, unix time, µs, [args…], client address, client name]`.
fn entries(node: &str, value: redis::Value, layout: Option<&Layout>) -> Vec<SlowEntry> {
    let redis::Value::Array(items) = value else { return Vec::new() };
    items
        .into_iter()
        .filter_map(|item| {
            let redis::Value::Array(fields) = item else { return None };
            let mut fields = fields.into_iter();
            let _id = fields.next();
            let at = int(fields.next()?)? * 1000;
            let micros = int(fields.next()?)?.max(0) as u64;
            let args: Vec<Vec<u8>> = match fields.next()? {
                redis::Value::Array(args) => args.into_iter().filter_map(|a| reply::bytes(Ok(a))).collect(),
                _ => Vec::new(),
            };
            let text = |v: Option<redis::Value>| v.and_then(|v| reply::string(Ok(v))).unwrap_or_default();
            let client = text(fields.next());
            let client_name = text(fields.next());
            let session = layout.and_then(|l| args.get(1).and_then(|key| session_of(l, key)));
            let command = args.iter().map(|a| crate::util::text::escape_bytes(a)).collect::<Vec<_>>().join(" ");
            Some(SlowEntry {
                node: node.to_string(),
                at,
                micros,
                command: crate::util::text::clip(&command, COMMAND_CHARS),
                session,
                own: client_name == "sessiontop",
                client: crate::util::text::escape_str(&client),
                client_name: crate::util::text::escape_str(&client_name),
            })
        })
        .collect()
}

/// The session a key is the key or a part of, under `layout`.
fn session_of(layout: &Layout, key: &[u8]) -> Option<SessionId> {
    let id = layout
        .session_id(key)
        .or_else(|| layout.parts.iter().find_map(|p| p.template.match_id(&layout.prefix, key, &layout.id_excludes)))?;
    Some(SessionId::from(id))
}

fn int(v: redis::Value) -> Option<i64> {
    reply::int(&Ok(v))
}

/// `LATENCY LATEST`'s events: `[name, time, latest ms, max ms]`.
fn latency_events(value: redis::Value) -> Vec<(String, u64, u64)> {
    let redis::Value::Array(items) = value else { return Vec::new() };
    items
        .into_iter()
        .filter_map(|item| {
            let redis::Value::Array(f) = item else { return None };
            let mut f = f.into_iter();
            let name = reply::string(Ok(f.next()?))?;
            let _time = f.next();
            let latest = int(f.next()?)?.max(0) as u64;
            let max = int(f.next()?)?.max(0) as u64;
            Some((crate::util::text::escape_str(&name), latest, max))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::layout::{LayoutKind, Overrides};

    fn bulk(s: &str) -> redis::Value {
        redis::Value::BulkString(s.as_bytes().to_vec())
    }

    #[test]
    fn entries_name_their_client_and_session() {
        let trt = Layout::builtin(LayoutKind::Trt, &Overrides::default()).unwrap();
        let entry = |id: i64, at: i64, us: i64, args: &[&str], addr: &str, name: &str| {
            redis::Value::Array(vec![
                redis::Value::Int(id),
                redis::Value::Int(at),
                redis::Value::Int(us),
                redis::Value::Array(args.iter().map(|a| bulk(a)).collect()),
                bulk(addr),
                bulk(name),
            ])
        };
        let value = redis::Value::Array(vec![
            entry(7, 1_800_000_000, 15_000, &["HGETALL", "trt:session:user_1:state"], "10.0.0.5:5000", ""),
            entry(6, 1_799_999_990, 1_200, &["PTTL", "trt:session:user_2:history"], "10.0.0.9:6000", "sessiontop"),
            entry(5, 1_799_999_980, 30_000, &["KEYS", "*"], "10.0.0.5:5001", "worker\u{1b}"),
        ]);
        let e = entries("n1:6379", value, Some(&trt));
        assert_eq!(e.len(), 3);
        assert_eq!((e[0].at, e[0].micros, e[0].own), (1_800_000_000_000, 15_000, false));
        assert_eq!(e[0].session.as_ref().map(|s| s.escaped()), Some("user_1".into()));
        assert_eq!(e[0].command, "HGETALL trt:session:user_1:state");
        assert!(e[1].own && e[1].session.is_some());
        assert_eq!((e[2].session.as_ref(), e[2].client_name.as_str()), (None, "worker\\x1b"));
        let latency = latency_events(redis::Value::Array(vec![redis::Value::Array(vec![
            bulk("command"),
            redis::Value::Int(1),
            redis::Value::Int(12),
            redis::Value::Int(40),
        ])]));
        assert_eq!(latency, [("command".to_string(), 12, 40)]);
    }
}
