//! sessiontop: a terminal dashboard for the Redis databases that web applications keep their
//! user sessions in.
//!
//! Data flows one way: Redis -> collectors -> model -> view; user intent flows back as
//! key -> action -> command.

pub mod decode;
pub mod text;
