//! Which sessions to read before the census has counted them, and which changed since the
//! last poll: the most recent from an index scored by last interaction, else the session keys
//! the first few `SCAN` calls find.

use super::walk::{Count, KeyWalk, KeyspaceWalk, Pacing};
use crate::conn::link::Failure;
use crate::conn::pace::Kind;
use crate::conn::route::Router;
use crate::engine::layout::{Index, Layout, ScoreMeaning};
use crate::engine::names::SessionId;

/// `SCAN` calls the first page may take on a layout without an index.
const FIRST_PAGE_SCAN_CALLS: u64 = 50;

/// The index scored by last interaction, when the layout has one: the newest sessions are at
/// its top.
pub fn recency_index(layout: &Layout) -> Option<&Index> {
    layout.index.as_ref().filter(|i| i.score == ScoreMeaning::LastInteraction)
}

/// The first page of sessions, before any census: the `limit` most recent from an index scored
/// by last interaction, else the session keys of the first few `SCAN` calls, until `limit` are
/// found (the caller keeps the most recent of them). Someone waits for it: its commands are
/// sized by their measured cost but not held back by the budget.
pub async fn first_page(
    router: &Router,
    layout: &Layout,
    limit: usize,
    scan_count: usize,
) -> Result<Vec<SessionId>, Failure> {
    if limit == 0 {
        return Ok(Vec::new());
    }
    if let Some(index) = recency_index(layout) {
        // The newest `limit` members, in pages sized by their cost (a large `--limit` is not
        // one dear command).
        let node = router.node_for(index.key.as_bytes());
        let page = node.pacer().lock().map(|p| p.page_size(Kind::Zrevrange, 1000)).unwrap_or(100);
        let mut ids = Vec::new();
        while ids.len() < limit {
            let start = ids.len();
            let stop = (start + page).min(limit) - 1;
            let members: Vec<Vec<u8>> =
                router.query(redis::cmd("ZREVRANGE").arg(&index.key).arg(start).arg(stop)).await?;
            let last = members.len() < stop - start + 1;
            ids.extend(members.into_iter().map(SessionId::from));
            if last {
                break;
            }
        }
        return Ok(ids);
    }
    let mut walk = KeyspaceWalk::new(router, KeyWalk::matching(layout.session_scan_pattern()));
    let mut ids = Vec::new();
    while walk.calls() < FIRST_PAGE_SCAN_CALLS && !walk.is_done() && ids.len() < limit {
        let keys = walk.next(router, Count::UpTo(scan_count), Pacing::Now).await?;
        ids.extend(keys.iter().filter_map(|k| layout.session_id(k).map(SessionId::from)));
    }
    Ok(ids)
}

/// Sessions saved since the index score `since` (the most recent `limit` when `None`), newest
/// first, with their scores: each poll reads only what changed, so the table stays live
/// between census passes.
pub async fn saved_since(
    router: &Router,
    index: &Index,
    since: Option<f64>,
    limit: usize,
) -> Result<Vec<(Vec<u8>, f64)>, Failure> {
    match since {
        None => {
            router
                .query(redis::cmd("ZREVRANGE").arg(&index.key).arg(0).arg(limit.saturating_sub(1)).arg("WITHSCORES"))
                .await
        }
        Some(since) => {
            router
                .query(
                    redis::cmd("ZREVRANGEBYSCORE")
                        .arg(&index.key)
                        .arg("+inf")
                        .arg(format!("({since}"))
                        .arg("WITHSCORES")
                        .arg("LIMIT")
                        .arg(0)
                        .arg(limit),
                )
                .await
        }
    }
}
