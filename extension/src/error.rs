//! core's errors as PostgreSQL errors: each kind with its SQLSTATE, so that a client (or a
//! DBA reading the log) can tell a config error from a missing file from a standby that
//! cannot be reached, instead of one XX000 with a string.

use pgrx::pg_sys::panic::ErrorReport;
use pgrx::PgSqlErrorCode;
use walmgr_core::Error;

pub fn sqlstate(e: &Error) -> PgSqlErrorCode {
    use PgSqlErrorCode::*;
    match e {
        Error::Config { .. } => ERRCODE_CONFIG_FILE_ERROR,
        Error::Io { .. } if e.is_not_found() => ERRCODE_UNDEFINED_FILE,
        Error::Io { .. } => ERRCODE_IO_ERROR,
        Error::WalName { .. } | Error::Usage(_) => ERRCODE_INVALID_PARAMETER_VALUE,
        Error::Conflict { .. } => ERRCODE_DUPLICATE_FILE,
        Error::Damaged { .. } => ERRCODE_DATA_CORRUPTED,
        Error::Remote { .. } => ERRCODE_CONNECTION_FAILURE,
        Error::Connection { .. } => ERRCODE_SQLCLIENT_UNABLE_TO_ESTABLISH_SQLCONNECTION,
        Error::Protocol { .. } => ERRCODE_PROTOCOL_VIOLATION,
        Error::LockBusy { .. } => ERRCODE_LOCK_NOT_AVAILABLE,
        Error::Server { .. } | Error::CommandFailed { .. } => ERRCODE_EXTERNAL_ROUTINE_EXCEPTION,
        Error::Refused(_) => ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE,
    }
}

/// The error a SQL function of walmgr raises for `e`.
#[track_caller]
pub fn report(e: Error) -> ErrorReport {
    ErrorReport::new(sqlstate(&e), e.to_string(), "walmgr")
}
