//! The archive module: PostgreSQL's archiver calls `archive_file` once per finished WAL file.
//!
//! Failures never leave as ERROR or panic: PostgreSQL 15 turns an ERROR here into a FATAL
//! exit of the archiver. Each failure is logged, recorded in `walmgr.status`, and reported
//! as `false`, which makes PostgreSQL keep the file and retry.

use std::cell::RefCell;
use std::ffi::CStr;
use std::fs;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};

use pgrx::prelude::*;
use walmgr_core::changes::Changes;
use walmgr_core::config::{Config, FileStamp, Role};
use walmgr_core::remote::{self, Transport};
use walmgr_core::wal::name::WalFileName;

use crate::{settings, status};

/// The loaded config and the open transport, kept between files and rebuilt when the
/// config file (or `walmgr.config`) changes.
struct Loaded {
    key: (PathBuf, FileStamp),
    transport: Box<dyn Transport>,
}

thread_local! {
    static LOADED: RefCell<Option<Loaded>> = const { RefCell::new(None) };
}

/// At a fast shutdown the postmaster tells the archiver to finish only once the shutdown
/// checkpoint is written, by a flag this module cannot see; pg_control says the same.
/// Every server process runs in its data directory.
fn server_stopping() -> bool {
    walmgr_core::cluster::shutting_down(Path::new("."))
}

fn with_transport<T>(
    work: impl FnOnce(&mut dyn Transport) -> Result<T, String>,
) -> Result<T, String> {
    remote::when_stopping(server_stopping);
    let path = settings::config_path().ok_or_else(|| {
        "walmgr.config is not set (run `walmgr <master config> setup`)".to_string()
    })?;
    let stamp = FileStamp::of(&path).map_err(|e| format!("cannot read walmgr.config file: {e}"))?;
    let key = (path.clone(), stamp);
    LOADED.with(|cell| {
        let mut loaded = cell.borrow_mut();
        if loaded.as_ref().map(|l| &l.key) != Some(&key) {
            // Drop the old state first: a config that no longer loads must not keep
            // archiving with stale settings.
            *loaded = None;
            let config = Config::load(&path, &[]).map_err(|e| e.to_string())?;
            if config.role != Role::Master {
                return Err(format!(
                    "{}: not a master config (it has no master_data)",
                    path.display()
                ));
            }
            let transport = remote::for_master(&config).map_err(|e| e.to_string())?;
            *loaded = Some(Loaded { key, transport });
        }
        match loaded.as_mut() {
            Some(l) => work(l.transport.as_mut()),
            None => Err("internal: config not loaded".to_string()),
        }
    })
}

/// Runs `f`, turning a panic into an error message so that nothing unwinds into the server.
fn contained<T>(f: impl FnOnce() -> Result<T, String>) -> Result<T, String> {
    match catch_unwind(AssertUnwindSafe(f)) {
        Ok(result) => result,
        Err(panic) => Err(panic
            .downcast_ref::<String>()
            .cloned()
            .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
            .unwrap_or_else(|| "internal error".into())),
    }
}

fn check_configured() -> bool {
    match contained(|| with_transport(|t| t.check().map_err(|e| e.to_string()))) {
        Ok(()) => true,
        Err(reason) => {
            log!("walmgr: archiving waits: {reason}");
            status::record_failure(None, &reason);
            false
        }
    }
}

fn archive_file(file: *const std::ffi::c_char, path: *const std::ffi::c_char) -> bool {
    // SAFETY: PostgreSQL passes two valid NUL-terminated strings.
    let (file, path) = unsafe { (CStr::from_ptr(file), CStr::from_ptr(path)) };
    let file = file.to_string_lossy();
    let path = PathBuf::from(path.to_string_lossy().into_owned());
    let result = contained(|| {
        let name = WalFileName::parse(&file).map_err(|e| e.to_string())?;
        if let WalFileName::Segment(_) = name {
            check_segment_size(&path)?;
        }
        with_transport(|t| {
            t.archive(&name, &path, &mut Changes::new(false))
                .map_err(|e| e.to_string())?;
            Ok(t.describe())
        })
    });
    match result {
        Ok(transport) => {
            status::record_success(&file, &transport);
            true
        }
        Err(reason) => {
            log!("walmgr: could not archive {file}: {reason}");
            status::record_failure(Some(&file), &reason);
            false
        }
    }
}

/// The segment size is the cluster's, read from the server, never assumed.
fn check_segment_size(path: &Path) -> Result<(), String> {
    // SAFETY: a plain read of a server global on the main thread.
    let seg_size = unsafe { pg_sys::wal_segment_size } as u64;
    let len = fs::metadata(path)
        .map_err(|e| format!("cannot stat {}: {e}", path.display()))?
        .len();
    if len != seg_size {
        return Err(format!(
            "{} has {len} bytes but this cluster's segments have {seg_size}",
            path.display()
        ));
    }
    Ok(())
}

fn shutdown() {
    LOADED.with(|cell| cell.borrow_mut().take());
}

#[cfg(feature = "pg15")]
mod callbacks {
    use super::*;

    #[pg_guard]
    unsafe extern "C-unwind" fn check_configured_cb() -> bool {
        check_configured()
    }

    #[pg_guard]
    unsafe extern "C-unwind" fn archive_file_cb(
        file: *const std::ffi::c_char,
        path: *const std::ffi::c_char,
    ) -> bool {
        archive_file(file, path)
    }

    #[pg_guard]
    unsafe extern "C-unwind" fn shutdown_cb() {
        shutdown()
    }

    /// PostgreSQL 15 looks this symbol up in the library named by archive_library.
    #[pg_guard]
    #[no_mangle]
    pub unsafe extern "C-unwind" fn _PG_archive_module_init(
        cb: *mut pg_sys::ArchiveModuleCallbacks,
    ) {
        (*cb).check_configured_cb = Some(check_configured_cb);
        (*cb).archive_file_cb = Some(archive_file_cb);
        (*cb).shutdown_cb = Some(shutdown_cb);
    }
}

/// PostgreSQL 16 changed the API (a state pointer, a startup callback, the callbacks
/// returned by the init function); pgrx's bindings for 16+ lack the types, so they are
/// declared here as in `archive/archive_module.h`.
#[cfg(any(feature = "pg16", feature = "pg17", feature = "pg18"))]
mod callbacks {
    use super::*;

    #[repr(C)]
    pub struct ArchiveModuleState {
        pub private_data: *mut std::ffi::c_void,
    }

    #[repr(C)]
    pub struct ArchiveModuleCallbacks {
        pub startup_cb: Option<unsafe extern "C-unwind" fn(*mut ArchiveModuleState)>,
        pub check_configured_cb:
            Option<unsafe extern "C-unwind" fn(*mut ArchiveModuleState) -> bool>,
        pub archive_file_cb: Option<
            unsafe extern "C-unwind" fn(
                *mut ArchiveModuleState,
                *const std::ffi::c_char,
                *const std::ffi::c_char,
            ) -> bool,
        >,
        pub shutdown_cb: Option<unsafe extern "C-unwind" fn(*mut ArchiveModuleState)>,
    }

    #[pg_guard]
    unsafe extern "C-unwind" fn check_configured_cb(_state: *mut ArchiveModuleState) -> bool {
        check_configured()
    }

    #[pg_guard]
    unsafe extern "C-unwind" fn archive_file_cb(
        _state: *mut ArchiveModuleState,
        file: *const std::ffi::c_char,
        path: *const std::ffi::c_char,
    ) -> bool {
        archive_file(file, path)
    }

    #[pg_guard]
    unsafe extern "C-unwind" fn shutdown_cb(_state: *mut ArchiveModuleState) {
        shutdown()
    }

    static CALLBACKS: ArchiveModuleCallbacks = ArchiveModuleCallbacks {
        startup_cb: None,
        check_configured_cb: Some(check_configured_cb),
        archive_file_cb: Some(archive_file_cb),
        shutdown_cb: Some(shutdown_cb),
    };

    // SAFETY: only function pointers, never mutated.
    unsafe impl Sync for ArchiveModuleCallbacks {}

    /// PostgreSQL 16+ looks this symbol up in the library named by archive_library.
    #[no_mangle]
    pub extern "C-unwind" fn _PG_archive_module_init() -> *const ArchiveModuleCallbacks {
        &CALLBACKS
    }
}
