//! Session events from Redis keyspace notifications: what happens to sessions as it happens
//! (created, saved, expired, evicted, deleted), for the events view, the inspector, `sessiontop
//! events`, and to keep the census's count and the table current between passes.
//!
//! Redis sends them only when `notify-keyspace-events` says so; sessiontop reads that setting
//! (where `CONFIG` is allowed) and says how to turn it on, and never changes it. A subscription
//! is one connection per primary (notifications are node-local), to the pattern
//! `__keyspace@<db>__:<prefix>*`; events of keys that are not a session's key or one of its parts
//! (locks, counters, other applications) are dropped at once.

use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt;
use tokio::sync::{mpsc, watch};

use crate::conn::link::Failure;
use crate::conn::route::Router;
use crate::conn::topology::{LinkUse, Topology};
use crate::engine::domain::{EventKind, EventsState, Millis, SessionEvent};
use crate::engine::layout::{KeyType, Layout};
use crate::engine::msg::{Request, Update};
use crate::engine::names::SessionId;

/// The classes sessiontop asks for: keyspace channels (`K`), generic (`g`: `DEL`, `UNLINK`),
/// strings (`$`), hashes (`h`), lists (`l`), sorted sets (`z`), expired (`x`), evicted (`e`) and
/// new keys (`n`, Redis 7.0+; not in `A`).
pub const FLAGS: &str = "Kg$hlzxen";

/// How often collected events are handed on (and their sessions read again).
pub const BATCH_EVERY: Duration = Duration::from_millis(250);

/// How often (in batches) the subscribed primaries are compared with the map's.
const PRIMARIES_EVERY_TICKS: u32 = 8;

/// The most events one subscription holds before they are handed on; more are dropped (and
/// counted) rather than let a flood of writes grow sessiontop's memory.
const QUEUE: usize = 10_000;

/// The channel pattern of a layout's keys in database `db`.
pub fn pattern(db: i64, prefix: &str) -> String {
    let escaped = crate::engine::layout::glob_escape(prefix.as_bytes());
    format!("__keyspace@{db}__:{}*", String::from_utf8_lossy(&escaped))
}

/// The classes `flags` lacks for a layout's sessions (empty when it has them all). `A` stands
/// for `g$lshzxet`.
pub fn missing(flags: &str, layout: &Layout) -> String {
    let has = |c: char| flags.contains(c) || (flags.contains('A') && "g$lshzxet".contains(c));
    let mut types: Vec<KeyType> = vec![layout.session_type];
    types.extend(layout.parts.iter().map(|p| p.ty));
    let mut needed = vec!['K', 'g', 'x', 'e'];
    for t in types {
        needed.push(match t {
            KeyType::String => '$',
            KeyType::Hash => 'h',
            KeyType::List => 'l',
            KeyType::Set => 's',
            KeyType::Zset => 'z',
        });
    }
    let mut out = String::new();
    for c in needed {
        if !has(c) && !out.contains(c) {
            out.push(c);
        }
    }
    out
}

/// How to turn events on, said wherever they are off.
pub fn how_to_turn_on() -> String {
    format!(
        "CONFIG SET notify-keyspace-events {FLAGS} (on ElastiCache: the parameter group's notify-keyspace-events); sessiontop never changes it itself"
    )
}

/// What the server's setting allows: on (subscribe), off (and how to turn it on), or unknown
/// where `CONFIG` is denied or absent (subscribe anyway: ElastiCache sets it in its parameter
/// group, where `CONFIG` cannot read it).
pub async fn state_of(router: &Router, layout: &Layout) -> EventsState {
    let reply = router.query::<Vec<String>>(redis::cmd("CONFIG").arg("GET").arg("notify-keyspace-events")).await;
    match reply {
        Ok(pair) => {
            let flags = pair.get(1).cloned().unwrap_or_default();
            let lacks = missing(&flags, layout);
            if lacks.is_empty() {
                EventsState::On { flags: Some(flags) }
            } else {
                let shown = if flags.is_empty() { "off".to_string() } else { format!("\"{flags}\"") };
                EventsState::Off {
                    flags,
                    how: format!("notify-keyspace-events is {shown}, without {lacks}: {}", how_to_turn_on()),
                }
            }
        }
        Err(_) => EventsState::On { flags: None },
    }
}

/// The session event a notification is, if it is one: its key (the channel past its
/// `__keyspace@N__:`) matched to a session's key or part, the event named by the payload.
pub fn event_of(layout: &Layout, channel: &[u8], payload: &[u8], at: Millis) -> Option<SessionEvent> {
    let start = memchr::memmem::find(channel, b"__:")? + 3;
    let key = &channel[start..];
    let name = std::str::from_utf8(payload).ok()?;
    let (id, part, own_key) = owner(layout, key)?;
    let kind = match (name, own_key) {
        ("new", true) => EventKind::Created,
        ("expired", true) => EventKind::Expired,
        ("evicted", true) => EventKind::Evicted,
        ("del", true) => EventKind::Deleted,
        // A TTL set or taken comes with the write it belongs to; a key moved or copied is not
        // the application's; a part that ends does not end its session.
        ("new" | "expire" | "persist" | "expired" | "evicted" | "del", _) => return None,
        (n, _) if n.starts_with("rename") || n.starts_with("move") || n == "copy_to" => return None,
        _ => EventKind::Saved,
    };
    Some(SessionEvent { at, id: SessionId::from(id), kind, part: part.to_string(), event: name.to_string() })
}

/// Consecutive events of one kind for one session (a save's several writes) as one, their parts
/// joined.
pub fn collapse(events: Vec<SessionEvent>) -> Vec<SessionEvent> {
    let mut out: Vec<SessionEvent> = Vec::with_capacity(events.len());
    for e in events {
        let last = out.iter_mut().rev().find(|l| l.id == e.id);
        // A new session's first writes are its creation.
        if let Some(last) = &last
            && last.kind == EventKind::Created
            && e.kind == EventKind::Saved
        {
            continue;
        }
        if let Some(last) = last
            && last.kind == e.kind
        {
            if !last.part.split(", ").any(|p| p == e.part) {
                last.part.push_str(", ");
                last.part.push_str(&e.part);
            }
            continue;
        }
        out.push(e);
    }
    out
}

/// Which sessions keyspace events have heard written (their key, a part or a related key)
/// since the census last began a pass, so that a watch's census can read the others settled
/// or light ([`crate::collect::carry::Read`]). Filled by the subscription as each
/// notification comes, turned by the census at the start of each pass. Only an unbroken record
/// counts: light reads are allowed in a pass only when events were heard on every primary
/// without a break since before the pass before began (when each session was last read), and
/// stop at once when they break.
#[derive(Debug, Default)]
pub struct Changes {
    inner: std::sync::Mutex<ChangesInner>,
}

#[derive(Debug, Default)]
struct ChangesInner {
    hasher: std::hash::RandomState,
    /// Since the last turn, and between the two turns before it.
    current: std::collections::HashSet<u64>,
    previous: std::collections::HashSet<u64>,
    /// Subscribed on every primary, with no break since.
    live: bool,
    /// Live at the last turn, with no break since.
    unbroken: bool,
    /// Light reads allowed in the pass under way.
    usable: bool,
    /// `CONFIG` was refused: the server's setting cannot be known, so nothing heard proves
    /// nothing written, and it is not asked again.
    refused: bool,
}

/// The most written sessions held between two turns; more break the record (it is cleared),
/// and passes read every session whole until it is whole again.
const CHANGES_MAX: usize = 200_000;

impl Changes {
    /// Events are heard on every primary from now on.
    pub fn subscribed(&self) {
        if let Ok(mut c) = self.inner.lock() {
            c.live = true;
        }
    }

    /// Events may have been missed from now on (a subscription lost or moved).
    pub fn broken(&self) {
        if let Ok(mut c) = self.inner.lock() {
            c.live = false;
            c.unbroken = false;
            c.usable = false;
        }
    }

    /// A key of the session `id` was written, expired or removed.
    pub fn touched(&self, id: &[u8]) {
        let Ok(mut c) = self.inner.lock() else { return };
        let hash = std::hash::BuildHasher::hash_one(&c.hasher, id);
        c.current.insert(hash);
        if c.current.len() > CHANGES_MAX {
            c.current = Default::default();
            c.previous = Default::default();
            c.unbroken = false;
            c.usable = false;
        }
    }

    /// A census pass begins: returns whether it may read sessions light.
    pub fn turn(&self) -> bool {
        let Ok(mut c) = self.inner.lock() else { return false };
        c.usable = c.live && c.unbroken;
        c.previous = std::mem::take(&mut c.current);
        c.unbroken = c.live;
        c.usable
    }

    /// Whether the server's setting, read now, makes the record proof: every primary sends the
    /// notifications of every write to the layout's keys. Without that a subscription hears
    /// nothing and looks like a store nobody writes to (ElastiCache's default parameter group
    /// has them off, and there `CONFIG` cannot read it). Asked at each pass that may read light,
    /// so a setting turned off during a watch is seen at the next; where `CONFIG` is refused,
    /// asked once, and never light.
    pub async fn confirmed(&self, router: &Router, layout: &Layout) -> bool {
        if self.inner.lock().map_or(true, |c| c.refused) {
            return false;
        }
        match setting_holds(router, layout).await {
            Some(holds) => holds,
            None => {
                if let Ok(mut c) = self.inner.lock() {
                    c.refused = true;
                }
                false
            }
        }
    }

    /// For each of `ids`, whether nothing was heard of it since it was last read (an empty list
    /// when light reads are not allowed now).
    pub fn unchanged(&self, ids: &[SessionId]) -> Vec<bool> {
        let Ok(c) = self.inner.lock() else { return Vec::new() };
        if !c.usable {
            return Vec::new();
        }
        ids.iter()
            .map(|id| {
                let hash = std::hash::BuildHasher::hash_one(&c.hasher, id.as_bytes());
                !c.current.contains(&hash) && !c.previous.contains(&hash)
            })
            .collect()
    }
}

/// Whether every primary's `notify-keyspace-events` has every class `layout` needs (`false` when
/// one cannot be asked now), or `None` where `CONFIG` is refused.
async fn setting_holds(router: &Router, layout: &Layout) -> Option<bool> {
    for node in router.topology().map().primaries() {
        let Ok(mut link) = router.link(&node).await else { return Some(false) };
        let ask = redis::cmd("CONFIG").arg("GET").arg("notify-keyspace-events").clone();
        match link.query::<Vec<String>>(&ask).await {
            Ok(pair) if missing(pair.get(1).map_or("", String::as_str), layout).is_empty() => {}
            Ok(_) => return Some(false),
            Err(f) if f.is_unavailable() => return None,
            Err(_) => return Some(false),
        }
    }
    Some(true)
}

/// The sessions a written key may be one of: its own key's or a part's session, or every
/// session a related key's name fits (a rate-limit counter `…:{id}:*` fits several ids when
/// ids hold `:`).
pub fn touched_ids<'k>(layout: &Layout, key: &'k [u8]) -> Vec<&'k [u8]> {
    if let Some((id, _, _)) = owner(layout, key) {
        return vec![id];
    }
    layout.related.iter().flat_map(|r| r.template.possible_ids(&layout.prefix, key, &layout.id_excludes)).collect()
}

/// The session whose own key or part `key` is: its id, the part's name (`session` for its own
/// key), and whether it is its own key.
fn owner<'k, 'l>(layout: &'l Layout, key: &'k [u8]) -> Option<(&'k [u8], &'l str, bool)> {
    match layout.session_id(key) {
        Some(id) => Some((id, "session", true)),
        None => layout.parts.iter().find_map(|p| {
            p.template.match_id(&layout.prefix, key, &layout.id_excludes).map(|id| (id, p.name.as_str(), false))
        }),
    }
}

/// Subscriptions to a layout's keys on every primary; they end when this is dropped.
pub struct Subscription {
    pub events: mpsc::Receiver<Result<SessionEvent, Failure>>,
    /// The primaries subscribed to, by address.
    pub nodes: Vec<String>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Drop for Subscription {
    fn drop(&mut self) {
        for t in &self.tasks {
            t.abort();
        }
    }
}

/// Subscribes on every primary of `topology` to `layout`'s keys in database `db`.
pub async fn subscribe(
    topology: &Arc<Topology>,
    layout: &Arc<Layout>,
    db: i64,
    changes: Option<Arc<Changes>>,
) -> Result<Subscription, Failure> {
    let (tx, events) = mpsc::channel(QUEUE);
    let channel = pattern(db, &layout.prefix);
    let mut subscription = Subscription { events, nodes: Vec::new(), tasks: Vec::new() };
    for node in topology.map().primaries() {
        subscription.nodes.push(node.address().to_string());
        let mut pubsub = node.target().pubsub().await?;
        pubsub.psubscribe(&channel).await.map_err(|e| Failure::from_redis("PSUBSCRIBE", &e))?;
        let (tx, layout, changes) = (tx.clone(), layout.clone(), changes.clone());
        subscription.tasks.push(tokio::spawn(async move {
            let mut messages = pubsub.into_on_message();
            while let Some(message) = messages.next().await {
                let (channel, payload) = (message.get_channel_name().as_bytes(), message.get_payload_bytes());
                // Recorded as it comes, whatever becomes of the event: the census's record of
                // what was written must miss nothing the subscription heard.
                if let Some(changes) = &changes
                    && let Some(at) = memchr::memmem::find(channel, b"__:")
                {
                    for id in touched_ids(&layout, &channel[at + 3..]) {
                        changes.touched(id);
                    }
                }
                let Some(event) = event_of(&layout, channel, payload, super::now_millis()) else { continue };
                // Full: sessiontop is behind a flood of writes; an event dropped costs a row's
                // freshness until the next pass, never memory.
                if let Err(mpsc::error::TrySendError::Closed(_)) = tx.try_send(Ok(event)) {
                    return;
                }
            }
            let _ = tx.send(Err(Failure::Connection("the subscription to keyspace events ended".into()))).await;
        }));
    }
    Ok(subscription)
}

/// The collector's events task: once the first census pass has ended, says whether events can be had;
/// subscribes when they can; hands them on every [`BATCH_EVERY`], asks the poller to read the
/// sessions written (so they show between passes) and tells the table those that ended. A lost
/// subscription is taken up again with backoff; events off are looked at again every minute.
pub(super) async fn events_loop(
    topology: Arc<Topology>,
    updates: mpsc::UnboundedSender<Update>,
    requests: mpsc::UnboundedSender<Request>,
    mut layout_rx: watch::Receiver<Option<super::Found>>,
    mut passes_done: watch::Receiver<u64>,
    changes: Arc<Changes>,
) {
    let layout = loop {
        if let Some((layout, _)) = layout_rx.borrow_and_update().clone() {
            break layout;
        }
        if layout_rx.changed().await.is_err() {
            return;
        }
    };
    // The first pass reads every session anyway; its connections need not share the start
    // with the subscription's (a server near maxclients refuses one of them).
    if passes_done.wait_for(|n| *n > 0).await.is_err() {
        return;
    }
    let db = topology.template().db();
    let mut attempt = 0;
    // Asked once: a user without CONFIG (ElastiCache, a least-privilege ACL) is not asked again.
    let mut config_readable = true;
    loop {
        let state = if config_readable {
            // A connection of its own for the one question, closed at once.
            match Router::discover(&topology, LinkUse::Poll).await {
                Ok(router) => state_of(&router, &layout).await,
                Err(_) => {
                    attempt += 1;
                    tokio::time::sleep(super::backoff(attempt)).await;
                    continue;
                }
            }
        } else {
            EventsState::On { flags: None }
        };
        config_readable = matches!(state, EventsState::On { flags: Some(_) } | EventsState::Off { .. });
        let _ = updates.send(Update::EventsState(state.clone()));
        if let EventsState::Off { .. } = state {
            tokio::time::sleep(Duration::from_secs(60)).await;
            continue;
        }
        let mut subscription = match subscribe(&topology, &layout, db, Some(changes.clone())).await {
            Ok(subscription) => subscription,
            Err(failure) => {
                attempt += 1;
                let _ = updates.send(Update::EventsState(EventsState::Unavailable(failure.to_string())));
                tokio::time::sleep(super::backoff(attempt).max(Duration::from_secs(5))).await;
                continue;
            }
        };
        attempt = 0;
        changes.subscribed();
        let ended = forward(&mut subscription, &topology, &updates, &requests).await;
        changes.broken();
        drop(subscription);
        // Subscribing again where the primaries now are is no outage.
        if let Ended::Lost(why) = ended {
            let _ = updates.send(Update::EventsState(EventsState::Unavailable(why)));
            tokio::time::sleep(super::backoff(1)).await;
        }
    }
}

/// Why handing events on ended.
enum Ended {
    /// The subscription was lost: why.
    Lost(String),
    /// The primaries are no longer those subscribed to.
    Moved,
}

/// Hands events on in batches until the subscription ends, or the primaries are no longer
/// those subscribed to (a failover, a node added: their events are each node's own); returns
/// why it ended.
async fn forward(
    subscription: &mut Subscription,
    topology: &Topology,
    updates: &mpsc::UnboundedSender<Update>,
    requests: &mpsc::UnboundedSender<Request>,
) -> Ended {
    let mut tick = tokio::time::interval(BATCH_EVERY);
    let mut batch = Vec::new();
    let mut ticks: u32 = 0;
    loop {
        tokio::select! {
            event = subscription.events.recv() => match event {
                Some(Ok(e)) => batch.push(e),
                Some(Err(f)) => return Ended::Lost(f.to_string()),
                None => return Ended::Lost("the subscription ended".into()),
            },
            _ = tick.tick() => {
                ticks = ticks.wrapping_add(1);
                if ticks.is_multiple_of(PRIMARIES_EVERY_TICKS) {
                    let mut now: Vec<String> = topology.map().primaries().iter().map(|n| n.address().to_string()).collect();
                    let mut then = subscription.nodes.clone();
                    now.sort();
                    then.sort();
                    if now != then {
                        return Ended::Moved;
                    }
                }
                if batch.is_empty() {
                    continue;
                }
                let events = collapse(std::mem::take(&mut batch));
                let touched: Vec<SessionId> =
                    events.iter().filter(|e| !e.kind.ends()).map(|e| e.id.clone()).collect();
                let gone: Vec<SessionId> = events.iter().filter(|e| e.kind.ends()).map(|e| e.id.clone()).collect();
                if !touched.is_empty() {
                    let _ = requests.send(Request::Touched(touched));
                }
                if !gone.is_empty() {
                    let _ = updates.send(Update::Gone { ids: gone });
                }
                if updates.send(Update::SessionEvents(events)).is_err() {
                    return Ended::Lost("the program is ending".into());
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::layout::{LayoutKind, Overrides};

    #[test]
    fn notifications_become_session_events_and_the_rest_is_dropped() {
        let trt = Layout::builtin(LayoutKind::Trt, &Overrides::default()).unwrap();
        let ev = |channel: &str, payload: &str| event_of(&trt, channel.as_bytes(), payload.as_bytes(), 1);
        let state = "__keyspace@0__:trt:session:user_1:state";
        assert_eq!(
            ev(state, "hset").map(|e| (e.kind, e.part, e.id)),
            Some((EventKind::Saved, "session".into(), "user_1".into()))
        );
        assert_eq!(ev(state, "new").map(|e| e.kind), Some(EventKind::Created));
        assert_eq!(ev(state, "expired").map(|e| e.kind), Some(EventKind::Expired));
        assert_eq!(ev(state, "evicted").map(|e| e.kind), Some(EventKind::Evicted));
        assert_eq!(ev(state, "del").map(|e| e.kind), Some(EventKind::Deleted));
        assert_eq!(ev(state, "expire"), None, "a TTL comes with its write");
        let history = "__keyspace@0__:trt:session:user_1:history";
        assert_eq!(ev(history, "lpush").map(|e| (e.kind, e.part)), Some((EventKind::Saved, "history".into())));
        assert_eq!(ev(history, "expired"), None, "a part ending does not end the session");
        assert_eq!(ev("__keyspace@0__:trt:lock:user_1", "set"), None, "locks are not sessions");
        assert_eq!(ev("__keyspace@0__:trt:active_sessions", "zadd"), None);
        let flask =
            Layout::builtin(LayoutKind::Flask, &Overrides { prefix: Some("chatmrpt:".into()), ..Overrides::default() })
                .unwrap();
        let e = event_of(&flask, b"__keyspace@1__:chatmrpt:abc123", b"set", 1).unwrap();
        assert_eq!((e.kind, e.id), (EventKind::Saved, "abc123".into()));
        assert_eq!(event_of(&flask, b"__keyspace@1__:chatmrpt:analysis_complete:abc123", b"set", 1), None);
    }

    #[test]
    fn the_flags_a_layout_needs() {
        let trt = Layout::builtin(LayoutKind::Trt, &Overrides::default()).unwrap();
        assert_eq!(missing("", &trt), "Kgxehl");
        assert_eq!(missing("KA", &trt), "");
        assert_eq!(missing(FLAGS, &trt), "");
        assert_eq!(missing("Kx", &trt), "gehl");
        assert_eq!(pattern(1, "chat*mrpt:"), "__keyspace@1__:chat\\*mrpt:*");
    }

    #[test]
    fn a_saves_several_writes_are_one_event() {
        let e = |id: &str, kind, part: &str| SessionEvent {
            at: 1,
            id: id.into(),
            kind,
            part: part.into(),
            event: "x".into(),
        };
        let events = collapse(vec![
            e("n", EventKind::Created, "session"),
            e("n", EventKind::Saved, "session"),
            e("a", EventKind::Saved, "session"),
            e("b", EventKind::Saved, "session"),
            e("a", EventKind::Saved, "history"),
            e("a", EventKind::Saved, "history"),
            e("a", EventKind::Expired, "session"),
        ]);
        let said: Vec<(String, EventKind, String)> =
            events.into_iter().map(|e| (e.id.escaped(), e.kind, e.part)).collect();
        assert_eq!(
            said,
            vec![
                ("n".into(), EventKind::Created, "session".into()),
                ("a".into(), EventKind::Saved, "session, history".into()),
                ("b".into(), EventKind::Saved, "session".into()),
                ("a".into(), EventKind::Expired, "session".into()),
            ]
        );
    }
}
