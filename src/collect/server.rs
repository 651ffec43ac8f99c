//! Server statistics: `INFO` and `DBSIZE` in one round trip. Either may be denied (an ACL user
//! without `INFO`) without the other being lost.

use crate::conn::info::ServerStats;
use crate::conn::link::{Failure, Link, reply};

/// Reads the server's statistics. Only a connection failure is an error; a denied or unknown
/// command leaves its fields unknown and says why in the second value.
pub async fn poll(link: &mut Link) -> Result<(ServerStats, Vec<String>), Failure> {
    let mut pipe = crate::conn::link::pipe();
    pipe.cmd("INFO").cmd("DBSIZE");
    let mut replies = link.pipeline(&pipe).await?.into_iter();
    let info = replies.next().unwrap_or(Err(Failure::Protocol("INFO".into())));
    let dbsize = replies.next().unwrap_or(Err(Failure::Protocol("DBSIZE".into())));
    let mut unavailable = Vec::new();
    let mut stats = match info {
        Ok(_) => ServerStats::from_info(&reply::string(info).unwrap_or_default()),
        Err(failure) => {
            unavailable.push(failure.to_string());
            ServerStats::default()
        }
    };
    match reply::failure(&dbsize) {
        Some(failure) => unavailable.push(failure.to_string()),
        None => stats.db_keys = reply::int(&dbsize).map(|n| n.max(0) as u64),
    }
    Ok((stats, unavailable))
}
