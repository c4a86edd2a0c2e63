//! PostgreSQL's write-ahead log as walmgr sees it from outside the server: file names,
//! segment headers, and log sequence numbers.

pub mod lsn;
pub mod name;
pub mod segment;

pub use lsn::Lsn;
pub use name::{SegmentName, WalFileName};
