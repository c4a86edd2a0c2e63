//! Replays files (or directories of them, such as corpus/wire or artifacts/wire) through
//! the fuzz target's check on a stable toolchain: `cargo run --bin replay -- corpus/wire`.

use std::path::PathBuf;

fn main() {
    let args: Vec<PathBuf> = std::env::args_os().skip(1).map(PathBuf::from).collect();
    let args = if args.is_empty() {
        vec![PathBuf::from("corpus/wire")]
    } else {
        args
    };
    let mut inputs = Vec::new();
    for arg in args {
        match std::fs::read_dir(&arg) {
            Ok(entries) => inputs.extend(entries.filter_map(|e| e.ok()).map(|e| e.path())),
            Err(_) => inputs.push(arg),
        }
    }
    inputs.sort();
    for input in &inputs {
        let bytes =
            std::fs::read(input).unwrap_or_else(|e| panic!("cannot read {}: {e}", input.display()));
        println!("{}", input.display());
        walmgr_fuzz::wire(&bytes);
    }
    println!("{} inputs, no finding", inputs.len());
}
