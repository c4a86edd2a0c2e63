//! What the fuzz target checks, as a library so that the libFuzzer binary and the stable
//! `replay` binary run exactly the same code.

#[allow(dead_code)]
#[path = "../../core/tests/hostile_input/scratch_standby.rs"]
mod scratch_standby;

pub use scratch_standby::ScratchStandby;

/// Serves `input` as one `walmgr xserve` session on a fresh scratch standby; panics (a
/// finding, for libFuzzer) when the standby wrote anything but replies, or anything
/// outside its directories. A panic inside walmgr is a finding by itself.
pub fn wire(input: &[u8]) {
    let standby = ScratchStandby::new();
    let session = standby.serve(input);
    let replies = String::from_utf8_lossy(&session.replies);
    if let Some(line) = replies
        .lines()
        .find(|l| !l.starts_with("OK ") && !l.starts_with("ERR "))
    {
        panic!("the standby wrote {line:?}, which is no reply");
    }
    if let Err(escape) = standby.nothing_escaped() {
        panic!("{escape} (the session ended with {:?})", session.result);
    }
}
