//! Placeholder filled below.
#[path = "support/load.rs"]
mod load;

use sessiontop::local_redis::{Listen, LocalRedis, Options};

fn main() {
    let sessions: usize = std::env::var("N").ok().and_then(|s| s.parse().ok()).unwrap_or(100_000);
    let kind = if std::env::var("KIND").as_deref() == Ok("flask") { load::Kind::Flask } else { load::Kind::Trt };
    let server = LocalRedis::start(Options { listen: Listen::Tcp, ..Options::default() }).unwrap();
    let port: u16 = server.url().rsplit(':').next().unwrap().parse().unwrap();
    let t = std::time::Instant::now();
    load::load(port, kind, sessions);
    println!("{} loaded {sessions} {} sessions in {:?}", server.url(), kind.name(), t.elapsed());
    std::thread::sleep(std::time::Duration::from_secs(100_000));
}
