//! The conversation between the master's walmgr and the standby's `walmgr xserve`, over any
//! byte stream (an SSH channel in production, a pipe in tests).
//!
//! One process on the standby serves many files: each file costs one request and one
//! reply, never a new process. A request is a text line, then (for PUT) the file's bytes;
//! a reply is one text line.
//!
//! ```text
//! > HELLO 1 plain                       (or zstd: PUT bodies come compressed)
//! < OK walmgr 1 plain
//! > PUT 000000010000000000000003 16777216\n<16777216 bytes, or compressed chunks>
//! < OK written                          (or OK present, or ERR <message>)
//! > PARTIAL 000000010000000000000004 8192 1200\n<1200 bytes, or compressed chunks>
//! < OK held 9392                        (durable in partial_wals; or ERR <message>)
//! > DIRS check                          (or DIRS create)
//! < OK ["/srv/walshipping/logs.partial"]   (missing, or just created)
//! > DIRS inspect                        (`check`: owner and mode, judged on the standby)
//! < OK [{"key":"completed_wals","path":"/srv/walshipping/logs.complete",
//!        "found":"owner postgres, mode 0700","problem":null}, ...]
//! > STAT 000000010000000000000003       (`check`: has the archive got it?)
//! < OK 16777216                         (its length; or OK absent)
//! > BYE
//! ```
//! DIRS inspect and STAT only read. A standby too old to know them answers ERR and ends
//! the session, which `check` reports as such.
//! The standby checks every name against the WAL grammar and writes through the same
//! [`ArchiveStore`] and [`PartialStore`] as the local transport, so a reply of OK means the
//! bytes are durable.
//! Directories come from the standby's own config, never from the request: the master's
//! key can add WAL files and create walmgr's directories, nothing else.

mod compressed;

use std::io::{self, BufRead, Read, Write};
use std::path::PathBuf;

use crate::archive::partial::{PartialStore, MAX_CHUNK};
use crate::archive::store::{ArchiveStore, Stored};
use crate::config::Config;
use crate::error::{Error, Result};
use crate::os::files::create_private_dir;
use crate::remote::backup::Receiving;
use crate::remote::dirs::{self, DirState};
use crate::wal::name::{SegmentName, WalFileName};

use compressed::{Packer, Unpacker};

/// Who sends requests, as the standby's errors name it.
const MASTER: &str = "the master";

const VERSION: &str = "1";
/// Larger than any WAL segment (1 GB) or history file; anything bigger is a broken peer.
const MAX_FILE: u64 = (1 << 30) + (1 << 20);
const MAX_LINE: usize = 4096;
/// Replies may list what a backup did on the standby (every WAL file its purge removed).
const MAX_REPLY: usize = 16 << 20;

/// How PUT bodies travel.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Encoding {
    Plain,
    Zstd,
}

impl Encoding {
    fn as_str(self) -> &'static str {
        match self {
            Encoding::Plain => "plain",
            Encoding::Zstd => "zstd",
        }
    }

    fn parse(s: &str) -> Option<Self> {
        match s {
            "plain" => Some(Encoding::Plain),
            "zstd" => Some(Encoding::Zstd),
            _ => None,
        }
    }
}

/// What the standby's side serves: its archive store, the partial copies of in-progress
/// segments, and the directories `setup` may create.
pub struct Receiver {
    pub store: ArchiveStore,
    pub partials: PartialStore,
    pub dirs: Vec<PathBuf>,
    /// The standby's own config: a backup the master sends goes where it says.
    pub standby: Option<Config>,
}

impl Receiver {
    /// Serves requests from `input` until it ends or says BYE; returns the files received.
    /// Errors of one file are replies, not the end of the session; only a broken stream
    /// or a request outside the protocol ends it.
    pub fn serve(&self, input: impl BufRead, mut output: impl Write) -> Result<u64> {
        let mut backup = Receiving::new(self.standby.clone());
        let mut input = input;
        let mut reply = |text: String| {
            output
                .write_all(text.as_bytes())
                .and_then(|_| output.write_all(b"\n"))
                .and_then(|_| output.flush())
                .map_err(|e| Error::io("reply on", "the connection", e))
        };
        let encoding = match read_line(&mut input)?.as_deref() {
            None => return Ok(0),
            Some(line) => match line.split(' ').collect::<Vec<_>>().as_slice() {
                ["HELLO", VERSION, enc] if Encoding::parse(enc).is_some() => {
                    Encoding::parse(enc).unwrap()
                }
                _ => {
                    let message = format!(
                        "expected HELLO {VERSION} plain|zstd, got {line:?} \
                         (master and standby must run compatible walmgr versions)"
                    );
                    reply(format!("ERR {message}"))?;
                    return Err(Error::protocol(MASTER, message));
                }
            },
        };
        reply(format!("OK walmgr {VERSION} {}", encoding.as_str()))?;

        let mut served = 0;
        loop {
            let line = match read_line(&mut input) {
                Ok(Some(line)) => line,
                Ok(None) => return Ok(served),
                // Idle between files, a session holds nothing: closing it is routine, and
                // the master opens a new one for its next file.
                Err(e) if e.is_timed_out() && !backup.in_progress() => {
                    tracing::debug!("xserve: {e}");
                    return Ok(served);
                }
                Err(e) => return Err(e),
            };
            let answer = match line.split(' ').collect::<Vec<_>>().as_slice() {
                ["BYE"] => return Ok(served),
                ["PUT", name, len] => {
                    let len: u64 =
                        len.parse().ok().filter(|l| *l <= MAX_FILE).ok_or_else(|| {
                            Error::protocol(MASTER, format!("bad length in {line:?}"))
                        })?;
                    served += 1;
                    self.put(name, len, encoding, &mut input)?
                }
                ["PARTIAL", name, offset, len] => {
                    // No segment is larger than MAX_FILE: an offset beyond it is a broken
                    // peer (and offset + len could not even be computed).
                    let (Some(offset), Some(len)) = (
                        offset.parse::<u64>().ok().filter(|o| *o <= MAX_FILE),
                        len.parse().ok().filter(|l| *l <= MAX_CHUNK),
                    ) else {
                        return Err(Error::protocol(
                            MASTER,
                            format!("bad offset or length in {line:?}"),
                        ));
                    };
                    self.partial(name, offset, len, encoding, &mut input)?
                }
                ["DIRS", mode @ ("check" | "create")] => self.dirs(*mode == "create"),
                ["DIRS", "inspect"] => self.inspect_dirs(),
                ["STAT", name] => self.stat(name),
                ["BACKUP", ..] => {
                    let op = line.strip_prefix("BACKUP ").unwrap_or_default();
                    match backup.request(op, encoding, &mut input)? {
                        Some(answer) => answer,
                        // Pipelined: the answer comes with the next answered request.
                        None => continue,
                    }
                }
                _ => {
                    // Not ours: say so, then end the session (the stream cannot be trusted).
                    let message = format!("unknown request {line:?}");
                    reply(format!("ERR {message}"))?;
                    return Err(Error::protocol(MASTER, message));
                }
            };
            reply(answer)?;
        }
    }

    /// Receives one file. Err only when the stream itself broke.
    fn put(
        &self,
        name: &str,
        len: u64,
        encoding: Encoding,
        input: &mut impl BufRead,
    ) -> Result<String> {
        let result = with_body(input, len, encoding, |body| {
            let name = WalFileName::parse(name)?;
            let stored = self.store.archive_stream(&name, body, len)?;
            if let WalFileName::Segment(segment) = name {
                retire_partial(&self.partials, &segment);
            }
            Ok(stored)
        })?;
        Ok(match result {
            Ok(Stored::Written) => "OK written".into(),
            Ok(Stored::AlreadyPresent) => "OK present".into(),
            Err(e) => format!("ERR {}", one_line(&e.to_string())),
        })
    }

    /// Receives in-progress WAL of one segment. Err only when the stream itself broke.
    fn partial(
        &self,
        name: &str,
        offset: u64,
        len: u64,
        encoding: Encoding,
        input: &mut impl BufRead,
    ) -> Result<String> {
        let result = with_body(input, len, encoding, |body| {
            match WalFileName::parse(name)? {
                WalFileName::Segment(segment) => {
                    write_partial(&self.store, &self.partials, &segment, offset, body, len)
                }
                other => Err(Error::refused(format!(
                    "{other} is not a segment: only segments have partial copies"
                ))),
            }
        })?;
        Ok(match result {
            Ok(()) => format!("OK held {}", offset + len),
            Err(e) => format!("ERR {}", one_line(&e.to_string())),
        })
    }

    /// Judges the directories here, for the user this process runs as: the one the
    /// master's key logs in as, who writes every file the master sends.
    fn inspect_dirs(&self) -> String {
        let Some(standby) = &self.standby else {
            return "ERR this receiver has no standby config to name its directories".into();
        };
        let states = dirs::inspect_all(standby, nix::unistd::geteuid().as_raw());
        format!(
            "OK {}",
            serde_json::to_string(&states).expect("directory states serialize")
        )
    }

    /// The length of an archived file, or `absent`. Only WAL names are looked up.
    fn stat(&self, name: &str) -> String {
        let found = WalFileName::parse(name).and_then(|name| self.store.archived_len(&name));
        match found {
            Ok(Some(len)) => format!("OK {len}"),
            Ok(None) => "OK absent".into(),
            Err(e) => format!("ERR {}", one_line(&e.to_string())),
        }
    }

    fn dirs(&self, create: bool) -> String {
        let missing: Vec<&PathBuf> = self.dirs.iter().filter(|d| !d.is_dir()).collect();
        if create {
            if let Some(e) = missing.iter().find_map(|d| create_private_dir(d).err()) {
                return format!("ERR {}", one_line(&e.to_string()));
            }
        }
        let names: Vec<String> = missing
            .iter()
            .map(|d| d.to_string_lossy().into_owned())
            .collect();
        format!(
            "OK {}",
            serde_json::to_string(&names).expect("strings serialize")
        )
    }
}

/// Hands `work` the `len`-byte body of a request (decompressed as the session agreed), then
/// consumes whatever it left so that the next request lines up. The outer Err is a broken
/// stream, the inner one `work`'s answer.
pub(crate) fn with_body<T>(
    input: &mut impl BufRead,
    len: u64,
    encoding: Encoding,
    work: impl FnOnce(&mut dyn Read) -> Result<T>,
) -> Result<Result<T>> {
    let stream_err = |e| Error::io("read a file from", "the connection", e);
    match encoding {
        Encoding::Plain => {
            let mut body = input.take(len);
            let result = work(&mut body);
            io::copy(&mut body, &mut io::sink()).map_err(stream_err)?;
            if body.limit() > 0 {
                return Err(stream_err(io::ErrorKind::UnexpectedEof.into()));
            }
            Ok(result)
        }
        Encoding::Zstd => {
            let mut body = Unpacker::new(input, len).map_err(stream_err)?;
            let result = work(&mut body);
            body.drain().map_err(stream_err)?;
            Ok(result)
        }
    }
}

/// Writes in-progress WAL of `segment` into its partial copy, unless the complete segment
/// is already archived: then the archive has every byte of it (the archiver may overtake
/// the shipping loop at a segment switch), and there is nothing to keep.
pub fn write_partial(
    store: &ArchiveStore,
    partials: &PartialStore,
    segment: &SegmentName,
    offset: u64,
    data: impl Read,
    len: u64,
) -> Result<()> {
    if store.path_of(&WalFileName::Segment(*segment)).exists() {
        return Ok(());
    }
    partials.write(segment, offset, data, len)
}

/// The complete segment is durable in completed_wals: its partial copy has served. A copy
/// that cannot be removed is left for the purge; the archived segment counts.
pub fn retire_partial(partials: &PartialStore, segment: &SegmentName) {
    if let Err(e) = partials.retire(segment) {
        tracing::warn!("{segment} is archived, but its partial copy stays: {e}");
    }
}

pub(crate) fn one_line(s: &str) -> String {
    s.replace('\n', " ")
}

fn read_line(input: &mut impl BufRead) -> Result<Option<String>> {
    read_line_of(input, MAX_LINE)
}

fn read_line_of(input: &mut impl BufRead, max: usize) -> Result<Option<String>> {
    let mut line = Vec::new();
    let n = input
        .take(max as u64)
        .read_until(b'\n', &mut line)
        .map_err(|e| Error::io("read from", "the connection", e))?;
    if n == 0 {
        return Ok(None);
    }
    if line.last() != Some(&b'\n') {
        return Err(Error::protocol(MASTER, "request line too long or cut off"));
    }
    line.pop();
    String::from_utf8(line)
        .map(Some)
        .map_err(|_| Error::protocol(MASTER, "request line is not UTF-8"))
}

/// The master's side: sends requests and reads each reply before the next.
pub struct Client<R, W> {
    peer: String,
    replies: R,
    requests: W,
    encoding: Encoding,
    packer: Option<Packer>,
    /// Set when the stream may be out of step; the caller must then drop the connection.
    broken: bool,
}

impl<R: BufRead, W: Write> Client<R, W> {
    /// Greets the standby and agrees on the encoding. `peer` names the standby in errors.
    pub fn start(peer: &str, replies: R, requests: W, encoding: Encoding) -> Result<Self> {
        let mut client = Client {
            peer: peer.to_owned(),
            replies,
            requests,
            encoding,
            packer: None,
            broken: false,
        };
        let greeting = format!("HELLO {VERSION} {}\n", encoding.as_str());
        client.send(|w| w.write_all(greeting.as_bytes()))?;
        let expected = format!("walmgr {VERSION} {}", encoding.as_str());
        match client.reply("the greeting")? {
            Ok(text) if text == expected => Ok(client),
            Ok(text) => Err(client.fail(format!("unexpected greeting {text:?}"))),
            Err(refusal) => Err(client.fail(format!("refused the session: {refusal}"))),
        }
    }

    pub fn is_broken(&self) -> bool {
        self.broken
    }

    /// Sends `len` bytes of `data` as `name`; Ok once the standby says they are durable.
    pub fn put(&mut self, name: &WalFileName, data: impl Read, len: u64) -> Result<Stored> {
        self.send_put(name, data, len)?;
        self.receive_put(name)
    }

    /// Sends a PUT without waiting for its reply: the standby works on it (writes, fsyncs)
    /// while the caller sends more. Replies come in request order, one [`Client::receive_put`]
    /// each.
    fn send_put(&mut self, name: &WalFileName, mut data: impl Read, len: u64) -> Result<()> {
        let encoding = self.encoding;
        if encoding == Encoding::Zstd && self.packer.is_none() {
            self.packer = Some(Packer::new().map_err(|e| self.io_fail(e))?);
        }
        let mut packer = self.packer.take();
        let sent = self.send(|w| {
            writeln!(w, "PUT {name} {len}")?;
            match packer.as_mut() {
                Some(p) => p.send(&mut data, len, w),
                None => io::copy(&mut (&mut data).take(len), w),
            }
        });
        self.packer = packer;
        let sent = sent?;
        if sent != len {
            return Err(self.fail(format!("{name}: the source gave {sent} of {len} bytes")));
        }
        Ok(())
    }

    /// The reply to the oldest PUT not yet answered, which was for `name`.
    fn receive_put(&mut self, name: &WalFileName) -> Result<Stored> {
        match self.reply(&name.to_string())? {
            Ok(text) if text == "written" => Ok(Stored::Written),
            Ok(text) if text == "present" => Ok(Stored::AlreadyPresent),
            Ok(text) => Err(self.fail(format!("unexpected reply {text:?} for {name}"))),
            Err(refusal) => Err(Error::remote(
                &self.peer,
                format!("refused {name}: {refusal}"),
            )),
        }
    }

    /// Sends in-progress WAL: `bytes` of `segment` from `offset` on. Ok once the standby
    /// says they are durable in its partial copy.
    pub fn partial(&mut self, segment: &SegmentName, offset: u64, bytes: &[u8]) -> Result<()> {
        let len = bytes.len() as u64;
        let encoding = self.encoding;
        if encoding == Encoding::Zstd && self.packer.is_none() {
            self.packer = Some(Packer::new().map_err(|e| self.io_fail(e))?);
        }
        let mut packer = self.packer.take();
        let sent = self.send(|w| {
            writeln!(w, "PARTIAL {segment} {offset} {len}")?;
            match packer.as_mut() {
                Some(p) => p.send(&mut &bytes[..], len, w).map(|_| ()),
                None => w.write_all(bytes),
            }
        });
        self.packer = packer;
        sent?;
        let expected = format!("held {}", offset + len);
        match self.reply(&format!("{segment} from {offset}"))? {
            Ok(text) if text == expected => Ok(()),
            Ok(text) => Err(self.fail(format!("unexpected reply {text:?} for {segment}"))),
            Err(refusal) => Err(Error::remote(
                &self.peer,
                format!("refused in-progress WAL of {segment} from {offset}: {refusal}"),
            )),
        }
    }

    /// One request of a backup: `op` is its JSON, `body` the bytes that follow it (sent
    /// compressed when the session is). With `reply`, waits for the answer (the text after
    /// OK); without, the request is pipelined and the standby keeps any failure for the
    /// next request that is answered.
    pub fn backup(
        &mut self,
        op: &str,
        body: Option<(&mut dyn Read, u64)>,
        reply: bool,
    ) -> Result<Option<String>> {
        let encoding = self.encoding;
        if encoding == Encoding::Zstd && body.is_some() && self.packer.is_none() {
            self.packer = Some(Packer::new().map_err(|e| self.io_fail(e))?);
        }
        let mut packer = self.packer.take();
        let sent = self.send(|w| {
            writeln!(w, "BACKUP {op}")?;
            if let Some((data, len)) = body {
                let sent = match packer.as_mut() {
                    Some(p) => p.send(data, len, w)?,
                    None => io::copy(&mut data.take(len), w)?,
                };
                if sent != len {
                    return Err(io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        format!("the source gave {sent} of {len} bytes"),
                    ));
                }
            }
            Ok(())
        });
        self.packer = packer;
        sent?;
        if !reply {
            return Ok(None);
        }
        match self.reply("a backup request")? {
            Ok(text) => Ok(Some(text)),
            Err(refusal) => Err(Error::remote(&self.peer, refusal)),
        }
    }

    /// The standby's walmgr directories that are missing; `create` creates them first and
    /// returns the ones it created.
    pub fn dirs(&mut self, create: bool) -> Result<Vec<PathBuf>> {
        let request = if create {
            "DIRS create\n"
        } else {
            "DIRS check\n"
        };
        self.send(|w| w.write_all(request.as_bytes()))?;
        match self.reply("DIRS")? {
            Ok(json) => match serde_json::from_str::<Vec<String>>(&json) {
                Ok(names) => Ok(names.into_iter().map(PathBuf::from).collect()),
                Err(_) => Err(self.fail(format!("unexpected reply {json:?} to DIRS"))),
            },
            Err(refusal) => Err(Error::remote(
                &self.peer,
                format!("could not create walmgr's directories: {refusal}"),
            )),
        }
    }

    /// The standby's directories, judged there (owner, mode).
    pub fn inspect_dirs(&mut self) -> Result<Vec<DirState>> {
        self.send(|w| w.write_all(b"DIRS inspect\n"))?;
        match self.reply("DIRS inspect")? {
            Ok(json) => serde_json::from_str(&json)
                .map_err(|_| self.fail(format!("unexpected reply {json:?} to DIRS inspect"))),
            Err(refusal) => Err(Error::remote(
                &self.peer,
                format!("could not inspect walmgr's directories: {refusal}"),
            )),
        }
    }

    /// The length of `name` in the standby's completed_wals, or None while it is not there.
    pub fn archived_len(&mut self, name: &WalFileName) -> Result<Option<u64>> {
        self.send(|w| writeln!(w, "STAT {name}"))?;
        match self.reply(&format!("STAT {name}"))? {
            Ok(text) if text == "absent" => Ok(None),
            Ok(text) => match text.parse() {
                Ok(len) => Ok(Some(len)),
                Err(_) => Err(self.fail(format!("unexpected reply {text:?} to STAT {name}"))),
            },
            Err(refusal) => Err(Error::remote(
                &self.peer,
                format!("could not look up {name}: {refusal}"),
            )),
        }
    }

    /// Ends the session politely; the standby's xserve exits.
    pub fn bye(mut self) -> Result<()> {
        self.send(|w| w.write_all(b"BYE\n"))
    }

    fn send<T>(&mut self, write: impl FnOnce(&mut W) -> io::Result<T>) -> Result<T> {
        match write(&mut self.requests).and_then(|t| self.requests.flush().map(|_| t)) {
            Ok(t) => Ok(t),
            Err(e) => Err(self.io_fail(e)),
        }
    }

    /// One reply line: Ok(text after "OK "), or Ok(Err(message after "ERR ")).
    fn reply(&mut self, what: &str) -> Result<std::result::Result<String, String>> {
        let line = match read_line_of(&mut self.replies, MAX_REPLY) {
            Ok(line) => line,
            Err(e) => {
                self.broken = true;
                return Err(Error::remote(&self.peer, format!("during {what}: {e}")));
            }
        };
        match line {
            Some(line) => match (line.strip_prefix("OK "), line.strip_prefix("ERR ")) {
                (Some(ok), _) => Ok(Ok(ok.to_owned())),
                (_, Some(err)) => Ok(Err(err.to_owned())),
                _ => Err(self.fail(format!("unexpected reply {line:?} during {what}"))),
            },
            None => Err(self.fail(format!("closed the connection during {what}"))),
        }
    }

    fn fail(&mut self, message: String) -> Error {
        self.broken = true;
        Error::remote(&self.peer, message)
    }

    fn io_fail(&mut self, e: io::Error) -> Error {
        self.fail(format!("connection failed: {e}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wal::segment::tests::fake_segment;
    use std::io::{BufReader, Cursor};
    use std::os::unix::net::UnixStream;
    use std::thread;

    fn receiver(dir: &std::path::Path) -> Receiver {
        Receiver {
            store: ArchiveStore::new(dir.join("logs.complete")),
            partials: PartialStore::new(dir.join("logs.partial")),
            dirs: vec![dir.join("logs.complete"), dir.join("logs.partial")],
            standby: None,
        }
    }

    /// Runs `talk` as the master against a standby serving `receiver` over a socket pair.
    fn session<T>(
        receiver: Receiver,
        encoding: Encoding,
        talk: impl FnOnce(&mut Client<BufReader<UnixStream>, UnixStream>) -> T,
    ) -> (T, Receiver) {
        let (master, standby) = UnixStream::pair().unwrap();
        let server = thread::spawn(move || {
            let input = BufReader::new(standby.try_clone().unwrap());
            receiver.serve(input, standby).unwrap();
            receiver
        });
        let mut client = Client::start(
            "test standby",
            BufReader::new(master.try_clone().unwrap()),
            master,
            encoding,
        )
        .unwrap();
        let out = talk(&mut client);
        client.bye().unwrap();
        (out, server.join().unwrap())
    }

    fn segment(seg: u32) -> (WalFileName, Vec<u8>) {
        let name = SegmentName {
            tli: 1,
            log: 0,
            seg,
        };
        (WalFileName::Segment(name), fake_segment(&name, 1 << 20))
    }

    #[test]
    fn many_files_in_one_session_each_acknowledged_once_durable() {
        for encoding in [Encoding::Plain, Encoding::Zstd] {
            let dir = tempfile::tempdir().unwrap();
            let files: Vec<_> = (1..=3).map(segment).collect();
            let (replies, receiver) = session(receiver(dir.path()), encoding, |c| {
                c.dirs(true).unwrap();
                files
                    .iter()
                    .map(|(n, d)| c.put(n, &d[..], d.len() as u64))
                    .collect::<Vec<_>>()
            });
            assert!(
                replies.iter().all(|r| matches!(r, Ok(Stored::Written))),
                "{encoding:?}: {replies:?}"
            );
            for (name, data) in &files {
                assert_eq!(&std::fs::read(receiver.store.path_of(name)).unwrap(), data);
            }
        }
    }

    #[test]
    fn in_progress_wal_arrives_in_pieces_and_its_copy_goes_once_the_segment_is_archived() {
        for encoding in [Encoding::Plain, Encoding::Zstd] {
            let dir = tempfile::tempdir().unwrap();
            let (name, data) = segment(6);
            let WalFileName::Segment(seg) = name else {
                unreachable!()
            };
            let (replies, receiver) = session(receiver(dir.path()), encoding, |c| {
                c.dirs(true).unwrap();
                let mut replies = vec![
                    c.partial(&seg, 0, &data[..9000]),
                    c.partial(&seg, 9000, &data[9000..30_000]),
                    // A gap: refused, and the session goes on.
                    c.partial(&seg, 40_000, &data[40_000..41_000]),
                ];
                assert!(!c.is_broken(), "a refusal keeps the session usable");
                replies.push(c.partial(&seg, 30_000, &data[30_000..31_000]));
                let archived = c.put(&name, &data[..], data.len() as u64);
                // The archiver overtook the shipping loop: the rest of the segment is
                // acknowledged, as the archive holds all of it.
                replies.push(c.partial(&seg, 31_000, &data[31_000..40_000]));
                (replies, archived)
            });
            let (partials, archived) = replies;
            assert!(partials[4].is_ok(), "{partials:?}");
            assert!(partials[0].is_ok() && partials[1].is_ok(), "{partials:?}");
            let gap = partials[2].as_ref().unwrap_err().to_string();
            assert!(gap.contains("gap"), "{gap}");
            assert!(partials[3].is_ok(), "{partials:?}");
            assert!(matches!(archived, Ok(Stored::Written)));
            assert!(
                !receiver.partials.path_of(&seg).exists(),
                "the partial copy outlived its archived segment"
            );
        }
    }

    #[test]
    fn a_refused_file_does_not_derail_the_files_after_it() {
        for encoding in [Encoding::Plain, Encoding::Zstd] {
            let dir = tempfile::tempdir().unwrap();
            let (name, data) = segment(4);
            let mut forged = data.clone();
            forged[1000] ^= 1;
            let next = segment(5);
            let (replies, receiver) = session(receiver(dir.path()), encoding, |c| {
                c.dirs(true).unwrap();
                let replies = [
                    c.put(&name, &data[..], data.len() as u64),
                    c.put(&name, &data[..], data.len() as u64),
                    c.put(&name, &forged[..], forged.len() as u64),
                    c.put(&next.0, &next.1[..], next.1.len() as u64),
                ];
                assert!(!c.is_broken(), "a refusal keeps the session usable");
                replies
            });
            assert!(matches!(replies[0], Ok(Stored::Written)));
            assert!(matches!(replies[1], Ok(Stored::AlreadyPresent)));
            let refused = replies[2].as_ref().unwrap_err().to_string();
            assert!(
                refused.contains("refused") && refused.contains("different content"),
                "{refused}"
            );
            assert!(matches!(replies[3], Ok(Stored::Written)));
            assert_eq!(std::fs::read(receiver.store.path_of(&name)).unwrap(), data);
            assert_eq!(
                std::fs::read(receiver.store.path_of(&next.0)).unwrap(),
                next.1
            );
        }
    }

    #[test]
    fn a_file_sent_ahead_is_answered_in_order() {
        let dir = tempfile::tempdir().unwrap();
        let (a, b) = (segment(8), segment(9));
        let (replies, receiver) = session(receiver(dir.path()), Encoding::Plain, |c| {
            c.dirs(true).unwrap();
            c.send_put(&a.0, &a.1[..], a.1.len() as u64).unwrap();
            c.send_put(&b.0, &b.1[..], b.1.len() as u64).unwrap();
            [c.receive_put(&a.0), c.receive_put(&b.0)]
        });
        assert!(
            replies.iter().all(|r| matches!(r, Ok(Stored::Written))),
            "{replies:?}"
        );
        for (name, data) in [a, b] {
            assert_eq!(std::fs::read(receiver.store.path_of(&name)).unwrap(), data);
        }
    }

    #[test]
    fn directories_come_from_the_standby_and_are_reported_before_and_after() {
        let dir = tempfile::tempdir().unwrap();
        let ((before, created, after), _) = session(receiver(dir.path()), Encoding::Plain, |c| {
            (
                c.dirs(false).unwrap(),
                c.dirs(true).unwrap(),
                c.dirs(false).unwrap(),
            )
        });
        let expected = vec![
            dir.path().join("logs.complete"),
            dir.path().join("logs.partial"),
        ];
        assert_eq!(before, expected);
        assert_eq!(created, expected);
        assert!(after.is_empty());
        assert!(expected.iter().all(|d| d.is_dir()));
    }

    #[test]
    fn check_asks_the_standby_to_judge_its_directories_and_to_find_a_segment() {
        let dir = tempfile::tempdir().unwrap();
        let text = format!(
            "[walmgr]\nwalmgr_data = '{}'\n",
            dir.path().join("walshipping").display()
        );
        let standby = Config::parse(
            &text,
            std::path::Path::new("slave.toml"),
            crate::config::Format::Toml,
            &[],
        )
        .unwrap();
        let receiver = Receiver {
            store: ArchiveStore::new(&standby.completed_wals),
            partials: PartialStore::new(&standby.partial_wals),
            dirs: dirs::slave_dirs(&standby),
            standby: Some(standby),
        };
        let (name, data) = segment(3);
        let ((before, after, absent, held), _) = session(receiver, Encoding::Plain, |c| {
            let before = c.inspect_dirs().unwrap();
            c.dirs(true).unwrap();
            let after = c.inspect_dirs().unwrap();
            let absent = c.archived_len(&name).unwrap();
            c.put(&name, &data[..], data.len() as u64).unwrap();
            (before, after, absent, c.archived_len(&name).unwrap())
        });
        let keys: Vec<&str> = before.iter().map(|d| d.key.as_str()).collect();
        assert_eq!(
            keys,
            [
                "completed_wals",
                "partial_wals",
                "full_backup",
                "config_backup"
            ]
        );
        assert!(before[0].problem.as_ref().unwrap().contains("missing"));
        assert!(after.iter().all(|d| d.problem.is_none()), "{after:?}");
        assert_eq!(absent, None);
        assert_eq!(held, Some(data.len() as u64));
    }

    /// The raw requests of a session: HELLO, then `body`.
    fn raw(body: &[u8]) -> Vec<u8> {
        let mut input = b"HELLO 1 plain\n".to_vec();
        input.extend_from_slice(body);
        input
    }

    #[test]
    fn names_outside_the_wal_grammar_are_refused_and_write_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let receiver = receiver(dir.path());
        std::fs::create_dir(receiver.store.dir()).unwrap();
        let mut replies = Vec::new();
        let input = raw(b"PUT ../../etc/passwd 5\nroot\nBYE\n");
        receiver
            .serve(BufReader::new(Cursor::new(input)), &mut replies)
            .unwrap();
        let reply = String::from_utf8(replies).unwrap();
        assert!(
            reply.contains("ERR") && reply.contains("not a WAL file name"),
            "{reply}"
        );
        assert_eq!(std::fs::read_dir(receiver.store.dir()).unwrap().count(), 0);
    }

    /// Bug: PARTIAL took any offset, and offset + len overflowed (a panic in a debug
    /// build) once part of the segment was held.
    #[test]
    fn an_offset_beyond_any_segment_ends_the_session_as_a_broken_peer() {
        let dir = tempfile::tempdir().unwrap();
        let receiver = receiver(dir.path());
        let (name, data) = segment(6);
        let mut input = raw(format!("DIRS create\nPARTIAL {name} 0 8192\n").as_bytes());
        input.extend_from_slice(&data[..8192]);
        input.extend_from_slice(format!("PARTIAL {name} {} 10\n", u64::MAX - 3).as_bytes());
        input.extend_from_slice(&[0; 10]);
        let mut replies = Vec::new();
        let err = receiver
            .serve(BufReader::new(Cursor::new(input)), &mut replies)
            .unwrap_err();
        assert!(err.to_string().contains("bad offset"), "{err}");
        let reply = String::from_utf8(replies).unwrap();
        assert!(
            reply.lines().last().unwrap().starts_with("OK held 8192"),
            "{reply}"
        );
        let WalFileName::Segment(seg) = name else {
            unreachable!()
        };
        assert_eq!(receiver.partials.held(&seg).unwrap().unwrap().len, 8192);
    }

    #[test]
    fn a_session_must_start_with_hello_and_unknown_requests_end_it() {
        let dir = tempfile::tempdir().unwrap();
        let receiver = receiver(dir.path());
        for input in [b"ls -la\n".to_vec(), raw(b"RM /\n")] {
            let mut replies = Vec::new();
            let err = receiver
                .serve(BufReader::new(Cursor::new(input)), &mut replies)
                .unwrap_err();
            let reply = String::from_utf8(replies).unwrap();
            assert!(reply.lines().last().unwrap().starts_with("ERR"), "{reply}");
            assert!(err.to_string().contains("HELLO") || err.to_string().contains("unknown"));
        }
    }

    #[test]
    fn a_connection_cut_mid_file_leaves_nothing_under_the_final_name() {
        let dir = tempfile::tempdir().unwrap();
        let receiver = receiver(dir.path());
        std::fs::create_dir(receiver.store.dir()).unwrap();
        let (name, data) = segment(6);
        let mut input = raw(format!("PUT {name} {}\n", data.len()).as_bytes());
        input.extend_from_slice(&data[..data.len() / 2]);
        let mut replies = Vec::new();
        let result = receiver.serve(BufReader::new(Cursor::new(input)), &mut replies);
        assert!(result.is_err(), "a cut stream ends the session");
        assert!(!receiver.store.path_of(&name).exists());
    }
}
