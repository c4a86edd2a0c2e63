//! ALTER SYSTEM from inside a function.
//!
//! The statement itself refuses to run in a transaction block, which every SQL function is
//! in. Its work, `AlterSystemSetConfigFile`, has no such limit (the file is rewritten under
//! its own lock, atomically): we let the parser build the statement node and call it.

use std::ffi::CString;

use pgrx::pg_sys;
use pgrx::prelude::*;
use walmgr_core::setup::server_settings::{Server, SettingChange};

pub fn apply(change: &SettingChange) -> Result<(), String> {
    let sql = CString::new(change.to_sql()).map_err(|_| format!("NUL byte in {}", change.name))?;
    // SAFETY: raw_parser returns a List of RawStmt for our single statement (or raises
    // an ERROR, which pgrx turns into a Rust panic caught by the SQL function wrapper).
    unsafe {
        let list = pg_sys::raw_parser(sql.as_ptr(), pg_sys::RawParseMode::RAW_PARSE_DEFAULT);
        if list.is_null() || (*list).length != 1 {
            return Err(format!("could not parse {sql:?}"));
        }
        let raw = (*(*list).elements).ptr_value as *mut pg_sys::RawStmt;
        let stmt = (*raw).stmt as *mut pg_sys::AlterSystemStmt;
        if (*stmt).type_ != pg_sys::NodeTag::T_AlterSystemStmt {
            return Err(format!("{sql:?} is not ALTER SYSTEM"));
        }
        pg_sys::AlterSystemSetConfigFile(stmt);
    }
    Ok(())
}

/// The value the server runs with now ('' when unset or unknown).
pub fn running_value(name: &str) -> String {
    if name == "archive_command" {
        // SHOW says "(disabled)" while archive_mode is off; the variable has the real value.
        // SAFETY: a GUC string read on the main thread; NULL-checked.
        unsafe {
            let raw = pg_sys::XLogArchiveCommand;
            if raw.is_null() {
                return String::new();
            }
            return std::ffi::CStr::from_ptr(raw).to_string_lossy().into_owned();
        }
    }
    let Ok(cname) = CString::new(name) else {
        return String::new();
    };
    // SAFETY: missing_ok = true; the result is palloc'd memory we only read.
    unsafe {
        let value = pg_sys::GetConfigOptionByName(cname.as_ptr(), std::ptr::null_mut(), true);
        if value.is_null() {
            return String::new();
        }
        std::ffi::CStr::from_ptr(value)
            .to_string_lossy()
            .into_owned()
    }
}

/// The value the configuration files give `name` (what a restart would run with): the last
/// valid entry of pg_file_settings (applied or waiting for a restart), else the built-in
/// default.
pub fn configured_value(name: &str) -> String {
    let from_files = Spi::get_one_with_args::<String>(
        // A value that waits for a restart is flagged "could not be applied": it still counts.
        "SELECT setting FROM pg_file_settings WHERE name = $1 \
         AND (error IS NULL OR error = 'setting could not be applied') \
         ORDER BY seqno DESC LIMIT 1",
        &[name.into()],
    );
    if let Ok(Some(v)) = from_files {
        return v;
    }
    Spi::get_one_with_args::<String>(
        "SELECT boot_val FROM pg_settings WHERE name = $1",
        &[name.into()],
    )
    .ok()
    .flatten()
    .unwrap_or_default()
}

pub fn server() -> Server<'static> {
    Server {
        running: &running_value,
        configured: &configured_value,
    }
}
