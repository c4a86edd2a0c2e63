//! The walmgr CLI, copied into the test dir so that the postgres user can run it.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use crate::command::{Context, TestCommand};
use crate::dirs::{chown_to_postgres, TestDir};

/// A walmgr binary as `<dir>/bin/walmgr` (mode 0755, owned by postgres), and the [`Context`]
/// its failures report: the scenario's archive directories, server logs, sshd log.
#[derive(Debug, Clone)]
pub struct Walmgr {
    pub bin: PathBuf,
    context: Context,
}

impl Walmgr {
    /// Copies `built` into `dir/bin/walmgr`: in a test of walmgr-cli the binary Cargo built
    /// for it, `env!("CARGO_BIN_EXE_walmgr")`, never a stale one found in a target dir. A
    /// copy, because the repository may not be readable by postgres, and a build running
    /// meanwhile cannot change it.
    pub fn new(dir: &TestDir, built: impl AsRef<Path>) -> Walmgr {
        Walmgr::new_in(dir, "", built)
    }

    /// [`Walmgr::new`] into `dir/place/bin/walmgr`.
    pub fn new_in(dir: &TestDir, place: &str, built: impl AsRef<Path>) -> Walmgr {
        let src = built.as_ref();
        assert!(
            src.is_file(),
            "walmgr binary {} not found: build it first (cargo build -p walmgr-cli)",
            src.display()
        );
        let bin_dir = dir.join(place).join("bin");
        dir.mkdir(&bin_dir);
        let bin = bin_dir.join("walmgr");
        std::fs::copy(src, &bin)
            .unwrap_or_else(|e| panic!("copy {} to {}: {e}", src.display(), bin.display()));
        std::fs::set_permissions(&bin, std::fs::Permissions::from_mode(0o755))
            .unwrap_or_else(|e| panic!("chmod 755 {}: {e}", bin.display()));
        chown_to_postgres(&bin);
        Walmgr {
            bin,
            context: Context::default(),
        }
    }

    /// `walmgr` with no arguments yet, as root; its failures report [`Walmgr::context`].
    pub fn command(&self) -> TestCommand {
        TestCommand::new(&self.bin).with_context(&self.context)
    }

    /// What a failing walmgr command reports besides its own output; add to it as the
    /// scenario grows (a standby's log, an sshd's).
    pub fn context(&self) -> &Context {
        &self.context
    }
}
