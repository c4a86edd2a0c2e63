//! `cargo +nightly fuzz run wire`: any bytes as the master's side of an xserve session.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|input: &[u8]| walmgr_fuzz::wire(input));
