//! `xrestore SRCNAME DSTPATH [LAST]`: PostgreSQL's restore_command. Exit 0 only when the
//! complete file is at DSTPATH, 1 when the archive does not have it (yet) or cannot give
//! it; never above 125, which PostgreSQL takes as "stop recovery".

use std::path::Path;

use walmgr_core::standby::restore_command::{hand_out, Answer};

use super::Context;
use crate::error::{CliError, Result};

pub fn run(ctx: &mut Context, srcname: &str, dstpath: &Path, last: Option<&str>) -> Result<()> {
    match hand_out(&ctx.config, srcname, dstpath, last, &mut ctx.changes)? {
        Answer::HandedOut { bytes } => {
            tracing::debug!("restored {srcname} ({bytes} bytes)");
            Ok(())
        }
        Answer::NotAvailable(why) => Err(CliError::Declined(why)),
    }
}
