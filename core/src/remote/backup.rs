//! A base backup sent to a standby on another host: the master walks its data directory
//! into a [`RemoteArea`], which sends every directory, file and symlink over the walmgr
//! wire to the standby's `walmgr xserve`, where [`Receiving`] writes them through the same
//! [`LocalArea`] a local backup uses: staged, synced, renamed only when complete, rotated
//! and purged under the standby's BACKUPLOCK.
//!
//! Requests are `BACKUP <json>` lines, a body after those that carry one (compressed when
//! the session is). Directories, files and symlinks are pipelined: no reply each, the first
//! failure is kept and given as the answer to the next answered request (`check`), and
//! whatever follows it is read and dropped, so the stream stays in step.

use std::fs::{self, File};
use std::io::{self, BufRead, Read};
use std::path::{Path, PathBuf};

use serde_json::{json, Value};

use crate::backup::area::{BackupArea, LocalArea};
use crate::backup::catalog;
use crate::backup::datadir::{Owner, TreeSink};
use crate::changes::Changes;
use crate::config::Config;
use crate::error::{Error, Result};
use crate::remote::wire::{one_line, with_body, Encoding};
use crate::remote::Ssh;

/// The largest single file a backup carries (PostgreSQL's segments are 1 GB).
const MAX_BACKUP_FILE: u64 = 4 << 30;

/// The standby's side: one backup per session at most, held from `begin` to `finish`.
pub struct Receiving {
    standby: Option<Config>,
    area: Option<LocalArea>,
    /// The first failure of a pipelined request, until an answered one reports it.
    failed: Option<String>,
}

impl Receiving {
    pub fn new(standby: Option<Config>) -> Receiving {
        Receiving {
            standby,
            area: None,
            failed: None,
        }
    }

    /// True between `begin` and `finish`: the session holds the backup lock.
    pub fn in_progress(&self) -> bool {
        self.area.is_some()
    }

    /// Serves one request; Some(reply line) for those that are answered. Err only when the
    /// stream broke or does not follow the protocol.
    pub fn request(
        &mut self,
        op: &str,
        encoding: Encoding,
        input: &mut impl BufRead,
    ) -> Result<Option<String>> {
        let request: Value = serde_json::from_str(op).map_err(|e| {
            Error::protocol("the master", format!("bad BACKUP request {op:?}: {e}"))
        })?;
        let field = |name: &str| {
            request
                .get(name)
                .and_then(Value::as_str)
                .unwrap_or_default()
        };
        let number = |name: &str| request.get(name).and_then(Value::as_u64).unwrap_or(0);
        let dry = request.get("dry").and_then(Value::as_bool).unwrap_or(false);
        let len = number("len");
        if len > MAX_BACKUP_FILE {
            return Err(Error::protocol(
                "the master",
                format!("a file of {len} bytes"),
            ));
        }
        match field("op") {
            "begin" => Ok(Some(self.answer(|r| r.begin(field("what"), dry)))),
            "dir" | "link" => {
                if self.failed.is_none() {
                    let result =
                        self.tree(field("op"), field("rel"), number("mode"), field("target"));
                    self.keep_failure(result);
                }
                Ok(None)
            }
            "file" => {
                let result = with_body(input, len, encoding, |body| {
                    if self.failed.is_some() {
                        return Ok(());
                    }
                    let rel = PathBuf::from(field("rel"));
                    let mode = number("mode") as u32 & 0o777; // no setuid, setgid or sticky bit from a master
                    self.area_mut()?
                        .sink_dir()
                        .write(&rel, mode, body, len)
                        .map(|_| ())
                })?;
                self.keep_failure(result);
                Ok(None)
            }
            "check" => Ok(Some(self.answer(|_| Ok(json!(null))))),
            // The master waits on its server (a checkpoint, the archiving of the last
            // segment): this keeps the session from looking silent. A kept failure waits
            // for the next real answer.
            "alive" => Ok(Some("OK null".to_owned())),
            "put" => {
                let result = with_body(input, len, encoding, |body| {
                    let mut contents = Vec::new();
                    body.read_to_end(&mut contents)
                        .map_err(|e| Error::io("read from", "the connection", e))?;
                    Ok(contents)
                })?;
                Ok(Some(self.answer(|r| {
                    let contents = result?;
                    r.area_mut()?.put_file(field("rel"), &contents)?;
                    Ok(json!(null))
                })))
            }
            "finish" => Ok(Some(self.answer(|r| {
                let mut changes = Changes::new(dry);
                let set = r.area_mut()?.finish(&mut changes)?;
                r.area = None;
                Ok(json!({"set": set, "plan": changes.described()}))
            }))),
            "config" => {
                let result = with_body(input, len, encoding, |body| {
                    let mut contents = Vec::new();
                    body.read_to_end(&mut contents)
                        .map_err(|e| Error::io("read from", "the connection", e))?;
                    Ok(contents)
                })?;
                Ok(Some(self.answer(|r| {
                    let contents = result?;
                    let mut changes = Changes::new(dry);
                    let mut area = LocalArea::new(r.config()?);
                    area.put_config(field("name"), &contents, &mut changes)?;
                    Ok(json!({"plan": changes.described()}))
                })))
            }
            "abort" => {
                if let Some(mut area) = self.area.take() {
                    area.abort();
                }
                self.failed = None;
                Ok(Some("OK null".into()))
            }
            "list" => Ok(Some(self.answer(|r| {
                let sets = catalog::list(&r.config()?.full_backup)?;
                Ok(Value::Array(
                    sets.iter().map(crate::status::set_json).collect(),
                ))
            }))),
            other => Err(Error::protocol(
                "the master",
                format!("unknown BACKUP operation {other:?}"),
            )),
        }
    }

    fn begin(&mut self, what: &str, dry: bool) -> Result<Value> {
        if self.area.is_some() {
            return Err(Error::refused(
                "a backup is already being received in this session",
            ));
        }
        let mut changes = Changes::new(dry);
        let mut area = LocalArea::new(self.config()?);
        area.begin(&format!("{what} (received from the master)"), &mut changes)?;
        self.area = Some(area);
        self.failed = None;
        Ok(json!({"plan": changes.described(), "staging": self.area_mut()?.staging()}))
    }

    fn tree(&mut self, op: &str, rel: &str, mode: u64, target: &str) -> Result<()> {
        let rel = Path::new(rel);
        // Whatever uid the master's files had, they belong to this host's owner.
        let owner = Owner { uid: 0, gid: 0 };
        let sink = self.area_mut()?.sink();
        match op {
            "dir" => sink.dir(rel, mode as u32 & 0o777, owner),
            _ => sink.symlink(rel, Path::new(target), owner),
        }
    }

    fn keep_failure(&mut self, result: Result<()>) {
        if let (Err(e), None) = (result, &self.failed) {
            self.failed = Some(e.to_string());
        }
    }

    /// The reply line: a failure kept from a pipelined request comes first.
    fn answer(&mut self, work: impl FnOnce(&mut Self) -> Result<Value>) -> String {
        if let Some(failed) = self.failed.take() {
            return format!("ERR {}", one_line(&failed));
        }
        match work(self) {
            Ok(value) => format!("OK {value}"),
            Err(e) => format!("ERR {}", one_line(&e.to_string())),
        }
    }

    fn config(&self) -> Result<Config> {
        self.standby.clone().ok_or_else(|| {
            Error::refused("this xserve has no standby config to receive a backup with")
        })
    }

    fn area_mut(&mut self) -> Result<&mut LocalArea> {
        self.area
            .as_mut()
            .ok_or_else(|| Error::refused("no backup was begun in this session"))
    }
}

impl Drop for Receiving {
    /// A session that ends without `finish` (the master died, the connection was cut)
    /// leaves nothing under a final name: the staged copy goes, the lock with it.
    fn drop(&mut self) {
        if let Some(mut area) = self.area.take() {
            area.abort();
        }
    }
}

/// The master's side: the standby's backup area, reached through its own SSH session.
pub struct RemoteArea {
    ssh: Ssh,
    staging: String,
    dry: bool,
}

impl RemoteArea {
    pub fn new(ssh: Ssh) -> RemoteArea {
        RemoteArea {
            ssh,
            staging: String::new(),
            dry: false,
        }
    }

    fn ask(&mut self, op: Value, body: Option<(&mut dyn Read, u64)>) -> Result<Value> {
        let reply = self
            .ssh
            .backup_request(&op.to_string(), body, true)?
            .unwrap_or_default();
        serde_json::from_str(&reply)
            .map_err(|_| Error::protocol(self.ssh.peer(), format!("unexpected reply {reply:?}")))
    }

    fn pipeline(&mut self, op: Value, body: Option<(&mut dyn Read, u64)>) -> Result<()> {
        self.ssh.backup_request(&op.to_string(), body, false)?;
        Ok(())
    }

    /// Records what the standby did (or would do) as changes of this run, by host.
    fn record(&self, plan: &Value, changes: &mut Changes) {
        for line in plan
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
        {
            changes.record(format!("on {}: {line}", self.ssh.peer()));
        }
    }

    /// The standby's backup sets (for `listbackups` on the master).
    pub fn list(&mut self) -> Result<Vec<Value>> {
        match self.ask(json!({"op": "list"}), None)? {
            Value::Array(sets) => Ok(sets),
            other => Err(Error::protocol(
                self.ssh.peer(),
                format!("unexpected sets {other}"),
            )),
        }
    }
}

fn rel_text(rel: &Path) -> Result<&str> {
    rel.to_str()
        .ok_or_else(|| Error::refused(format!("{} is not a UTF-8 path", rel.display())))
}

impl TreeSink for RemoteArea {
    fn dir(&mut self, rel: &Path, mode: u32, _owner: Owner) -> Result<()> {
        let op = json!({"op": "dir", "rel": rel_text(rel)?, "mode": mode});
        self.pipeline(op, None)
    }

    fn file(&mut self, rel: &Path, src: &Path, meta: &fs::Metadata) -> Result<Option<u64>> {
        let file = match File::open(src) {
            Ok(f) => f,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(Error::io("open", src, e)),
        };
        let len = meta.len();
        // Exactly `len` bytes, as announced: a file that shrank while it was read is padded
        // with zeros (replay of the backup's WAL truncates it again), one that grew is cut.
        let mut body = file.take(len).chain(io::repeat(0)).take(len);
        let op = json!({"op": "file", "rel": rel_text(rel)?, "mode": meta_mode(meta), "len": len});
        self.pipeline(op, Some((&mut body, len)))?;
        Ok(Some(len))
    }

    fn symlink(&mut self, rel: &Path, target: &Path, _owner: Owner) -> Result<()> {
        let op = json!({"op": "link", "rel": rel_text(rel)?, "target": rel_text(target)?});
        self.pipeline(op, None)
    }
}

fn meta_mode(meta: &fs::Metadata) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    meta.permissions().mode() & 0o7777
}

impl BackupArea for RemoteArea {
    fn describe(&self) -> String {
        format!("{} on {}", self.staging, self.ssh.peer())
    }

    fn begin(&mut self, what: &str, changes: &mut Changes) -> Result<()> {
        self.dry = changes.is_dry_run();
        let reply = self.ask(json!({"op": "begin", "what": what, "dry": self.dry}), None)?;
        self.staging = reply["staging"]
            .as_str()
            .unwrap_or("the staging directory")
            .to_string();
        self.record(&reply["plan"], changes);
        Ok(())
    }

    fn sink(&mut self) -> &mut dyn TreeSink {
        self
    }

    fn check(&mut self) -> Result<()> {
        self.ask(json!({"op": "check"}), None).map(|_| ())
    }

    fn put_file(&mut self, name: &str, contents: &[u8]) -> Result<()> {
        let len = contents.len() as u64;
        self.ask(
            json!({"op": "put", "rel": name, "len": len}),
            Some((&mut &contents[..], len)),
        )
        .map(|_| ())
    }

    fn finish(&mut self, changes: &mut Changes) -> Result<PathBuf> {
        let reply = self.ask(json!({"op": "finish", "dry": self.dry}), None)?;
        self.record(&reply["plan"], changes);
        Ok(PathBuf::from(reply["set"].as_str().unwrap_or_default()))
    }

    fn put_config(&mut self, name: &str, contents: &[u8], changes: &mut Changes) -> Result<()> {
        let len = contents.len() as u64;
        let reply = self.ask(
            json!({"op": "config", "name": name, "len": len, "dry": self.dry}),
            Some((&mut &contents[..], len)),
        )?;
        self.record(&reply["plan"], changes);
        Ok(())
    }

    fn abort(&mut self) {
        let _ = self.ask(json!({"op": "abort"}), None);
    }

    fn has_session(&self) -> bool {
        true
    }

    fn keep_alive(&mut self) -> Result<()> {
        self.ask(json!({"op": "alive"}), None).map(|_| ())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Cursor;

    /// Bug: the standby's xserve followed symlinks the master had sent into the staged
    /// set, so a master's key (restricted to `xserve`) could create or overwrite any file
    /// the standby's user may write: `link l -> ~/.ssh`, then `file l/authorized_keys`.
    #[test]
    fn a_master_cannot_write_through_a_symlink_it_sent() {
        let root = tempfile::tempdir().unwrap();
        let outside = root.path().join("outside");
        fs::create_dir(&outside).unwrap();
        fs::write(outside.join("victim"), "kept").unwrap();
        let text = format!(
            "[walmgr]\nwalmgr_data = '{}'\n",
            root.path().join("walmgr").display()
        );
        let standby = Config::parse(
            &text,
            Path::new("slave.toml"),
            crate::config::Format::Toml,
            &[],
        )
        .unwrap();
        for dir in crate::remote::slave_dirs(&standby) {
            fs::create_dir_all(dir).unwrap();
        }
        let mut receiving = Receiving::new(Some(standby));
        let mut send = |op: Value, body: &[u8]| {
            let mut input = Cursor::new(body.to_vec());
            receiving
                .request(&op.to_string(), Encoding::Plain, &mut input)
                .unwrap()
        };
        let o = outside.display().to_string();
        let begun = send(json!({"op": "begin", "what": "test"}), b"");
        assert!(begun.unwrap().starts_with("OK"));
        send(json!({"op": "dir", "rel": "", "mode": 0o700}), b"");
        send(json!({"op": "link", "rel": "l", "target": o}), b"");
        send(
            json!({"op": "file", "rel": "l/x", "mode": 0o600, "len": 3}),
            b"abc",
        );
        let file = send(json!({"op": "check"}), b"").unwrap();
        send(json!({"op": "dir", "rel": "l/d", "mode": 0o700}), b"");
        let dir = send(json!({"op": "check"}), b"").unwrap();
        send(
            json!({"op": "link", "rel": "v", "target": format!("{o}/victim")}),
            b"",
        );
        let put = send(json!({"op": "put", "rel": "v", "len": 4}), b"gone").unwrap();

        for reply in [file, dir, put] {
            assert!(
                reply.starts_with("ERR") && reply.contains("through the symlink"),
                "{reply}"
            );
        }
        let left: Vec<_> = fs::read_dir(&outside)
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(left, ["victim"]);
        assert_eq!(fs::read_to_string(outside.join("victim")).unwrap(), "kept");
    }
}
