//! Small things every layer uses: terminal-safe text, capped reads of local files, and how the
//! process hands memory back.

pub mod local_file;
pub mod memory;
pub mod progress;
pub mod text;
