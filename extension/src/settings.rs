//! The extension's GUC: which walmgr config file the master uses.

use std::ffi::CString;
use std::path::PathBuf;

use pgrx::guc::{GucContext, GucFlags, GucRegistry, GucSetting};
use pgrx::pg_sys;

static CONFIG: GucSetting<Option<CString>> = GucSetting::<Option<CString>>::new(None);

pub fn define() {
    GucRegistry::define_string_guc(
        c"walmgr.config",
        c"Path of the walmgr master configuration file.",
        c"Read by the archive module; changes take effect at reload. Set by walmgr.setup().",
        &CONFIG,
        GucContext::Sighup,
        GucFlags::SUPERUSER_ONLY,
    );
    // SAFETY: called from _PG_init on the main thread.
    unsafe { pg_sys::MarkGUCPrefixReserved(c"walmgr".as_ptr()) };
}

/// The configured path, if set. Main thread only (GUC memory belongs to the server).
pub fn config_path() -> Option<PathBuf> {
    CONFIG
        .get()
        .and_then(|c| c.into_string().ok())
        .filter(|s| !s.is_empty())
        .map(PathBuf::from)
}
