//! Planning the writes that fix a finding, session by session: the one planner behind the
//! dashboard's `x` and `sessiontop fix`. Which findings have a fix of their own is the
//! finding's ([`FindingKind::own_fix`]); this turns it into the exact write for one session as
//! it is now.

use super::inspect;
use super::write::{WriteError, Writer};
use crate::conn::link::{Failure, reply};
use crate::conn::route::Router;
use crate::engine::domain::{FindingKind, OwnFix};
use crate::engine::layout::Layout;
use crate::engine::msg::{WriteKind, WritePlan};
use crate::engine::names::SessionId;

/// What a fix is to do: the finding, the write the user chose for a finding without one of
/// its own (expire or delete), and the TTL to give keys without one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FixOrder {
    pub kind: FindingKind,
    pub write: Option<WriteKind>,
    pub ttl_s: Option<i64>,
}

/// Where a fix is planned: the connections, the layout, and the writer that will carry it out.
pub struct Planner<'a> {
    pub router: &'a Router,
    pub layout: &'a Layout,
    pub writer: &'a Writer,
}

impl Planner<'_> {
    /// The write that fixes `order` for one session: `Unindex` for an orphaned entry, `EXPIRE`
    /// of exactly the keys without TTL, `Release` of a stale lock, or the write the user chose.
    /// `Ok(Err(why))` when the fix does not fit the session (any more).
    pub async fn plan(&mut self, id: &SessionId, order: FixOrder) -> Result<Result<WritePlan, WriteError>, Failure> {
        let not = |why: String| Ok(Err(WriteError::NotApplicable(why)));
        let write = match (order.kind.own_fix(), order.write) {
            (Some(OwnFix::Unindex), _) => WriteKind::Unindex,
            (Some(OwnFix::Release), _) => WriteKind::Release,
            (Some(OwnFix::GiveTtl), _) => match order.ttl_s {
                Some(s) => WriteKind::Expire(s),
                None => return not("no session lifetime is known: give a TTL".into()),
            },
            (None, Some(write)) => write,
            (None, None) => {
                return not(format!("{} has no fix of its own: expire or delete the sessions", order.kind.name()));
            }
        };
        // Keys named by wildcard patterns are not what these findings are about, and finding
        // them would scan the keyspace once per session: only a delete looks for them.
        let known = if write == WriteKind::Delete { None } else { Some(&[][..]) };
        let (mut keys, score) = inspect::find_keys(self.router, self.layout, id, 1000, known).await?;
        if order.kind.own_fix() == Some(OwnFix::GiveTtl) {
            let mut pipe = crate::conn::link::pipe();
            for k in &keys {
                pipe.cmd("PTTL").arg(&k.key);
            }
            let replies = self.router.pipeline(&pipe).await?;
            keys = keys.into_iter().zip(replies).filter(|(_, r)| reply::int(r) == Some(-1)).map(|(k, _)| k).collect();
        }
        Ok(match self.writer.plan(&self.router.topology().map(), self.layout, id, write, keys, score) {
            Ok(plan) if plan.is_empty() => Err(WriteError::NotApplicable("nothing left to change".into())),
            other => other,
        })
    }
}
