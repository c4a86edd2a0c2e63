//! A small filesystem of its own under a test's directory, for the disk faults a DBA meets:
//! a tmpfs of a few megabytes mounted over a directory (full after a few segments), which a
//! test can make read-only, writable again, or larger. Unmounted on drop, also after a panic.

use std::path::{Path, PathBuf};

use crate::command::TestCommand;
use crate::dirs::{chown_to_postgres, postgres_ids};

const MOUNT: &str = "/usr/bin/mount";
const UMOUNT: &str = "/usr/bin/umount";

pub struct SmallDisk {
    pub dir: PathBuf,
}

impl SmallDisk {
    /// Mounts a tmpfs of `megabytes` over `dir` (created if missing, its missing parents
    /// owned by postgres, as walmgr's setup would make them), owned by postgres with mode
    /// 0700 as walmgr's own directories are. Whatever `dir` held is hidden meanwhile.
    pub fn mount(dir: &Path, megabytes: u32) -> SmallDisk {
        let mut missing: Vec<&Path> = dir.ancestors().take_while(|d| !d.exists()).collect();
        missing.reverse();
        for d in missing {
            std::fs::create_dir(d).expect("create the mount point");
            chown_to_postgres(d);
        }
        let (uid, gid) = postgres_ids();
        TestCommand::new(MOUNT)
            .args(["-t", "tmpfs", "-o"])
            .arg(format!("size={megabytes}m,uid={uid},gid={gid},mode=0700"))
            .args(["walmgr-test-disk"])
            .arg(dir)
            .ok();
        SmallDisk {
            dir: dir.to_path_buf(),
        }
    }

    /// Read-only from now on: every write fails with EROFS.
    pub fn read_only(&self) {
        self.remount("remount,ro");
    }

    /// Writable again.
    pub fn writable(&self) {
        self.remount("remount,rw");
    }

    /// More room: the DBA freed space.
    pub fn grow_to(&self, megabytes: u32) {
        self.remount(&format!("remount,size={megabytes}m"));
    }

    fn remount(&self, options: &str) {
        TestCommand::new(MOUNT)
            .args(["-o", options])
            .arg(&self.dir)
            .ok();
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        // Lazily: a server of the test may still have a file open there.
        if let Err(report) = TestCommand::new(UMOUNT).arg("-l").arg(&self.dir).try_ok() {
            eprintln!("unmounting {}: {report}", self.dir.display());
        }
    }
}
