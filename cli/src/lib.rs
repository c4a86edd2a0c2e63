//! What the `walmgr` binary and `walmgr-docs` share: the command line's definition, and the
//! man page and shell completions generated from it.

pub mod args;
pub mod docs;
