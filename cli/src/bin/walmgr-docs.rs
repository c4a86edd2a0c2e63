//! `walmgr-docs OUTDIR`: writes the man page and the shell completions generated from the
//! command line's definition (OUTDIR/walmgr.1, OUTDIR/completions/{walmgr.bash,_walmgr,
//! walmgr.fish}). Packaging runs it at build time; a DBA never needs to.

use std::path::PathBuf;
use std::process::ExitCode;

fn main() -> ExitCode {
    let mut args = std::env::args_os().skip(1);
    let (Some(outdir), None) = (args.next(), args.next()) else {
        eprintln!(
            "usage: walmgr-docs OUTDIR\n\
             writes OUTDIR/walmgr.1 and OUTDIR/completions/{{walmgr.bash,_walmgr,walmgr.fish}}"
        );
        return ExitCode::from(2);
    };
    match walmgr_cli::docs::write_all(&PathBuf::from(&outdir)) {
        Ok(written) => {
            for path in written {
                println!("{}", path.display());
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("walmgr-docs: {e}");
            ExitCode::from(1)
        }
    }
}
