//! The archivers compared, each with its gate, its destination and how to verify what it
//! wrote, and the interleaved measurement of them.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::io::Read;
use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::Instant;

use walmgr_tests::{chown_to_postgres, TestCommand, TestDir};

use crate::master::{is_segment, sync, Master};
use crate::ssh::{Logins, SshClient};
use crate::{log, VerifyError, MIB};

const STANZA: &str = "bench";

/// How a variant is kept from archiving until its drain starts.
enum Gate {
    /// The destination does not exist until it appears, with owner and mode, in one rename:
    /// each attempt before fails (a module's check, or the standby's xserve).
    Directory,
    /// The archive_command starts with `test -e GATE &&`; the gate is created.
    File(PathBuf),
    /// Not an archiver: the bench copies the files itself.
    None,
}

enum Kind {
    Archiver,
    PgBackRest,
    PageCache,
    RsyncWithControlMaster,
}

pub struct Variant {
    pub name: &'static str,
    kind: Kind,
    /// archive_library ('' = archive_command).
    library: &'static str,
    command: String,
    walmgr_config: Option<PathBuf>,
    /// Drains only the first `limit` of the N segments.
    pub limit: Option<usize>,
    dest: PathBuf,
    gate: Gate,
    /// The client whose sshd log tells this variant's logins and cipher.
    pub ssh: Option<SshClient>,
    /// Per counted drain: the (cipher, MAC) of each new connection.
    pub logins: Vec<Logins>,
    /// Every (cipher, MAC) seen, warm-up included: a ControlMaster made then serves on.
    pub ciphers: Logins,
}

impl Variant {
    fn new(name: &'static str, kind: Kind, dest: PathBuf, gate: Gate) -> Variant {
        Variant {
            name,
            kind,
            library: "",
            command: String::new(),
            walmgr_config: None,
            limit: None,
            dest,
            gate,
            ssh: None,
            logins: Vec::new(),
            ciphers: Logins::new(),
        }
    }

    /// `archive_library = 'walmgr'`, the local transport: temp file, fsync, rename, fsync
    /// directory. Gate: its completed_wals is missing, so the module's check fails.
    pub fn walmgr(master: &Master, dest: &Path) -> Variant {
        Variant {
            library: "walmgr",
            walmgr_config: Some(master.config.clone()),
            ..Variant::new(
                "walmgr",
                Kind::Archiver,
                dest.join("walmgr"),
                Gate::Directory,
            )
        }
    }

    /// The module over SSH: the standby's completed_wals (this variant's destination) is
    /// missing until the gate opens, so xserve refuses each attempt before, over a session
    /// that then stays open, as in the steady state.
    pub fn walmgr_ssh(ssh: &SshClient, config: PathBuf, compression: bool, dest: &Path) -> Variant {
        let name = if compression {
            "walmgr-ssh-zstd"
        } else {
            "walmgr-ssh"
        };
        Variant {
            library: "walmgr",
            walmgr_config: Some(config),
            ssh: Some(ssh.clone()),
            ..Variant::new(name, Kind::Archiver, dest.join(name), Gate::Directory)
        }
    }

    /// contrib basic_archive: temp file, fsync, rename, fsync directory.
    pub fn basic_archive(dest: &Path) -> Variant {
        Variant {
            library: "basic_archive",
            ..Variant::new(
                "basic_archive",
                Kind::Archiver,
                dest.join("basic_archive"),
                Gate::Directory,
            )
        }
    }

    /// The PostgreSQL docs' example: refuses to overwrite, does not fsync.
    pub fn cp(dest: &Path, gate: &Path) -> Variant {
        let d = dest.join("cp");
        Variant {
            command: format!(
                "test -e {g} && test ! -f {d}/%f && cp %p {d}/%f",
                g = gate.display(),
                d = d.display()
            ),
            ..Variant::new("cp", Kind::Archiver, d, Gate::File(gate.to_path_buf()))
        }
    }

    /// `pgbackrest archive-push`, synchronous (one process per segment), into a local repo
    /// without compression. Creates the repo, its config and the stanza.
    pub fn pgbackrest(dir: &TestDir, master: &Master, gate: &Path) -> Variant {
        let repo = dir.join("pgbackrest-repo");
        for d in [
            repo.clone(),
            dir.join("pgbackrest-log"),
            dir.join("pgbackrest-lock"),
        ] {
            mkdir_pg(&d, 0o750);
        }
        let conf = dir.write(
            "pgbackrest.conf",
            format!(
                "[global]\n\
                 repo1-path={repo}\n\
                 compress-type=none\n\
                 archive-async=n\n\
                 log-level-console=off\n\
                 log-level-stderr=error\n\
                 log-level-file=off\n\
                 log-path={log}\n\
                 lock-path={lock}\n\
                 \n\
                 [{STANZA}]\n\
                 pg1-path={data}\n\
                 pg1-socket-path={socket}\n\
                 pg1-port={port}\n\
                 pg1-user=postgres\n",
                repo = repo.display(),
                log = dir.join("pgbackrest-log").display(),
                lock = dir.join("pgbackrest-lock").display(),
                data = master.cluster.data.display(),
                socket = master.cluster.socket_dir.display(),
                port = master.cluster.port,
            ),
        );
        TestCommand::new("pgbackrest")
            .arg(format!("--config={}", conf.display()))
            .arg(format!("--stanza={STANZA}"))
            .arg("stanza-create")
            .as_postgres()
            .ok();
        Variant {
            command: format!(
                "test -e {} && pgbackrest --config={} --stanza={STANZA} archive-push %p",
                gate.display(),
                conf.display()
            ),
            ..Variant::new(
                "pgbackrest",
                Kind::PgBackRest,
                repo,
                Gate::File(gate.to_path_buf()),
            )
        }
    }

    /// This process copies the files itself: no archiver, no fsync, no checks. The upper
    /// bound.
    pub fn page_cache(dest: &Path) -> Variant {
        Variant::new(
            "page-cache",
            Kind::PageCache,
            dest.join("page-cache"),
            Gate::None,
        )
    }

    /// walmgr3's way: rsync over ssh, then `ssh standby sync` for durability, per file. With
    /// a ControlMaster (ControlPersist=60) the logins are shared; without it every file costs
    /// two logins, so it drains only the first `limit` segments.
    pub fn rsync_ssh(
        ssh: &SshClient,
        control_master: bool,
        limit: Option<usize>,
        dest: &Path,
        gate: &Path,
    ) -> Variant {
        let (name, kind) = if control_master {
            ("rsync-ssh-cm", Kind::RsyncWithControlMaster)
        } else {
            ("rsync-ssh", Kind::Archiver)
        };
        let d = dest.join(name);
        let client = ["ssh".to_string()]
            .into_iter()
            .chain(ssh.options(control_master))
            .collect::<Vec<_>>()
            .join(" ");
        let target = "postgres@127.0.0.1";
        Variant {
            command: format!(
                "test -e {g} && rsync -a -e '{client}' %p {target}:{d}/%f && {client} {target} sync",
                g = gate.display(),
                d = d.display()
            ),
            limit,
            ssh: Some(ssh.clone()),
            ..Variant::new(name, kind, d, Gate::File(gate.to_path_buf()))
        }
    }

    /// Gate closed, destination empty (for a file gate: present, owned by postgres).
    fn clean(&self) {
        if let Gate::File(gate) = &self.gate {
            remove_file_if_exists(gate);
        }
        match self.kind {
            // Keep the stanza (archive.info), drop the archived segments.
            Kind::PgBackRest => {
                for d in self.pgbackrest_wal_dirs() {
                    remove_dir_all(&d);
                }
            }
            _ => {
                remove_dir_all(&self.dest);
                match self.gate {
                    Gate::Directory => {}
                    Gate::File(_) => mkdir_pg(&self.dest, 0o700),
                    Gate::None => mkdir_pg(&self.dest, 0o755),
                }
            }
        }
    }

    fn open_gate(&self) {
        match &self.gate {
            Gate::Directory => {
                let parent = self.dest.parent().expect("a destination has a parent");
                let staging = parent.join(format!(".staging-{}", self.name));
                mkdir_pg(&staging, 0o700);
                fs::rename(&staging, &self.dest).unwrap_or_else(|e| {
                    panic!(
                        "rename {} to {}: {e}",
                        staging.display(),
                        self.dest.display()
                    )
                });
            }
            Gate::File(gate) => {
                fs::write(gate, "").unwrap_or_else(|e| panic!("create {}: {e}", gate.display()))
            }
            Gate::None => {}
        }
    }

    /// The last step before the gate opens, once the archiver is idle.
    fn prepare(&self) {
        if let (Kind::RsyncWithControlMaster, Some(ssh)) = (&self.kind, &self.ssh) {
            // The master connection, as the steady state has it (ControlPersist=60 keeps it
            // between files).
            ssh.open_control_master();
        }
    }

    /// Drains `names` once: (seconds, seconds until the first file was done).
    fn run(&mut self, master: &Master, names: &[String]) -> (f64, f64) {
        if let Kind::PageCache = self.kind {
            return self.copy_here(master, names);
        }
        let mark = self.ssh.as_ref().map(SshClient::mark);
        master.configure(self.library, &self.command, self.walmgr_config.as_deref());
        self.prepare();
        sync();
        master.warm(names);
        let result = master.drain(names, || self.open_gate());
        if let (Some(ssh), Some(mark)) = (&self.ssh, mark) {
            let logins = ssh.logins_since(mark);
            for (k, v) in &logins {
                *self.ciphers.entry(k.clone()).or_default() += v;
            }
            self.logins.push(logins);
        }
        result
    }

    fn copy_here(&self, master: &Master, names: &[String]) -> (f64, f64) {
        sync();
        master.warm(names);
        let t0 = Instant::now();
        let mut first = None;
        for n in names {
            let (from, to) = (master.pg_wal().join(n), self.dest.join(n));
            fs::copy(&from, &to)
                .unwrap_or_else(|e| panic!("copy {} to {}: {e}", from.display(), to.display()));
            first.get_or_insert(t0.elapsed());
        }
        let elapsed = t0.elapsed();
        (
            elapsed.as_secs_f64(),
            first.unwrap_or(elapsed).as_secs_f64(),
        )
    }

    /// File name -> path of everything the variant wrote.
    fn outputs(&self) -> Result<BTreeMap<String, PathBuf>, VerifyError> {
        if let Kind::PgBackRest = self.kind {
            return self.pgbackrest_outputs();
        }
        let Ok(entries) = fs::read_dir(&self.dest) else {
            return Ok(BTreeMap::new());
        };
        Ok(entries
            .filter_map(Result::ok)
            .map(|e| (e.file_name().to_string_lossy().into_owned(), e.path()))
            .collect())
    }

    /// The repo's WAL directories: archive/<stanza>/<pg version>-<n>/<16 hex>/.
    fn pgbackrest_wal_dirs(&self) -> Vec<PathBuf> {
        let base = self.dest.join("archive").join(STANZA);
        subdirs(&base).iter().flat_map(|d| subdirs(d)).collect()
    }

    /// Stored as <segment>-<sha1 of the content>, raw bytes with compress-type=none; the
    /// name's checksum must match.
    fn pgbackrest_outputs(&self) -> Result<BTreeMap<String, PathBuf>, VerifyError> {
        let mut out = BTreeMap::new();
        for d in self.pgbackrest_wal_dirs() {
            for path in files(&d) {
                let file = path.file_name().map(|f| f.to_string_lossy().into_owned());
                let file = file.unwrap_or_default();
                let (name, sha1) = file.split_once('-').unwrap_or((&file, ""));
                if out.contains_key(name) || sha1.len() != 40 {
                    return Err(VerifyError(format!(
                        "pgbackrest: unexpected repo file {}",
                        path.display()
                    )));
                }
                out.insert(name.to_string(), path);
            }
        }
        if !out.is_empty() {
            let sums = TestCommand::new("sha1sum").args(out.values()).ok();
            for line in sums.lines() {
                let (sum, path) = line.split_once("  ").unwrap_or((line, ""));
                if !path.ends_with(&format!("-{sum}")) {
                    return Err(VerifyError(format!(
                        "pgbackrest: {path} does not match its checksum ({sum})"
                    )));
                }
            }
        }
        Ok(out)
    }
}

/// Seconds per variant per repetition. Round 0 is a warm-up, not counted: it proves every
/// variant works before minutes are spent, and lets the disk settle after the fill (the first
/// timed drain after it was consistently slow).
pub fn measure(
    variants: &mut [Variant],
    master: &Master,
    names: &[String],
    reps: usize,
) -> Result<BTreeMap<&'static str, Vec<f64>>, VerifyError> {
    let mut times: BTreeMap<&'static str, Vec<f64>> =
        variants.iter().map(|v| (v.name, Vec::new())).collect();
    let count = variants.len();
    for rep in 0..=reps {
        // Rotate the order so that no variant always runs first or after the same one.
        for i in 0..count {
            let v = &mut variants[(rep + i) % count];
            let mine = subset(v, names);
            let unused: BTreeSet<String> = names[mine.len()..].iter().cloned().collect();
            v.clean();
            if !matches!(v.kind, Kind::PageCache) {
                master.reset_ready(mine, &unused);
            }
            let (t, first) = v.run(master, mine);
            verify(v.name, mine, &v.outputs()?, &master.pg_wal())?;
            let what = if rep == 0 {
                "warm-up".to_string()
            } else {
                format!("rep {rep}/{reps}")
            };
            log(&format!(
                "{what:<9} {:<15} {t:7.3} s for {} (first file done after {:.0} ms), output verified",
                v.name,
                mine.len(),
                first * 1000.0
            ));
            if rep > 0 {
                times.entry(v.name).or_default().push(t);
            } else {
                v.logins.clear();
            }
            v.clean();
        }
    }
    Ok(times)
}

pub fn subset<'a>(v: &Variant, names: &'a [String]) -> &'a [String] {
    match v.limit {
        Some(limit) => &names[..limit.min(names.len())],
        None => names,
    }
}

/// Each of `names` must be in `outputs` with the master's bytes; nothing else may be (no temp
/// file left behind).
fn verify(
    variant: &str,
    names: &[String],
    outputs: &BTreeMap<String, PathBuf>,
    pg_wal: &Path,
) -> Result<(), VerifyError> {
    let missing: Vec<&String> = names.iter().filter(|n| !outputs.contains_key(*n)).collect();
    if let Some(first) = missing.first() {
        return Err(VerifyError(format!(
            "{variant}: {} segments missing, e.g. {first}",
            missing.len()
        )));
    }
    // A segment newer than the N may have been finished and archived after them (see
    // reset_ready); anything else (a temp file, a stray name) is an error.
    let last = names.last().map(String::as_str).unwrap_or("");
    let extra: Vec<&String> = outputs
        .keys()
        .filter(|f| {
            let newer = is_segment(f) && f.as_str() > last;
            !names.contains(f) && !newer
        })
        .take(5)
        .collect();
    if !extra.is_empty() {
        return Err(VerifyError(format!(
            "{variant}: unexpected files {extra:?}"
        )));
    }
    for n in names {
        if !same_bytes(&pg_wal.join(n), &outputs[n]) {
            return Err(VerifyError(format!(
                "{variant}: {} differs from the master's {n}",
                outputs[n].display()
            )));
        }
    }
    Ok(())
}

fn same_bytes(a: &Path, b: &Path) -> bool {
    let open = |p: &Path| fs::File::open(p).unwrap_or_else(|e| panic!("open {}: {e}", p.display()));
    let (mut fa, mut fb) = (open(a), open(b));
    let len = |f: &fs::File, p: &Path| {
        f.metadata()
            .unwrap_or_else(|e| panic!("stat {}: {e}", p.display()))
            .len()
    };
    if len(&fa, a) != len(&fb, b) {
        return false;
    }
    let (mut ba, mut bb) = (vec![0u8; MIB as usize], vec![0u8; MIB as usize]);
    loop {
        let n = read_full(&mut fa, &mut ba, a);
        let m = read_full(&mut fb, &mut bb, b);
        if ba[..n] != bb[..m] {
            return false;
        }
        if n == 0 {
            return true;
        }
    }
}

fn read_full(f: &mut fs::File, buf: &mut [u8], path: &Path) -> usize {
    let mut filled = 0;
    while filled < buf.len() {
        match f.read(&mut buf[filled..]) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => panic!("read {}: {e}", path.display()),
        }
    }
    filled
}

/// Creates `path` with `mode`, owned by postgres (the archiver writes there).
pub fn mkdir_pg(path: &Path, mode: u32) {
    fs::DirBuilder::new()
        .mode(mode)
        .create(path)
        .unwrap_or_else(|e| panic!("mkdir {}: {e}", path.display()));
    // The umask may have taken bits away.
    fs::set_permissions(path, fs::Permissions::from_mode(mode))
        .unwrap_or_else(|e| panic!("chmod {mode:o} {}: {e}", path.display()));
    chown_to_postgres(path);
}

fn remove_dir_all(path: &Path) {
    match fs::remove_dir_all(path) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => panic!("remove {}: {e}", path.display()),
    }
}

fn remove_file_if_exists(path: &Path) {
    match fs::remove_file(path) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => panic!("remove {}: {e}", path.display()),
    }
}

fn subdirs(dir: &Path) -> Vec<PathBuf> {
    entries(dir).into_iter().filter(|p| p.is_dir()).collect()
}

fn files(dir: &Path) -> Vec<PathBuf> {
    entries(dir).into_iter().filter(|p| p.is_file()).collect()
}

fn entries(dir: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = fs::read_dir(dir)
        .map(|d| d.filter_map(Result::ok).map(|e| e.path()).collect())
        .unwrap_or_default();
    v.sort();
    v
}
