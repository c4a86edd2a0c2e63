//! The conversation between the master's walmgr and the standby's `walmgr xserve`, over any
//! byte stream (an SSH channel in production, a pipe in tests).
//!
//! One process on the standby serves many files: each file costs one request and one
//! reply, never a new process. A request is a text line, then (for PUT) exactly the
//! announced number of bytes; a reply is one text line.
//!
//! ```text
//! > PUT 000000010000000000000003 16777216\n<16777216 bytes>
//! < OK written\n            (or OK present\n, or ERR <message>\n)
//! ```
//! The standby checks every name against the WAL grammar and writes through the same
//! [`ArchiveStore`] as the local transport, so a reply of OK means the file is durable.

use std::io::{self, BufRead, Read, Write};

use crate::error::{Error, Result};
use crate::store::{ArchiveStore, Stored};
use crate::wal_name::WalFileName;

/// Larger than any WAL segment (1 GB) or history file; anything bigger is a broken peer.
const MAX_FILE: u64 = (1 << 30) + (1 << 20);
const MAX_LINE: usize = 4096;

/// Serves requests from `input` until it ends or says BYE. Errors of one file are replies,
/// not the end of the session; only a broken stream ends it.
pub fn serve(store: &ArchiveStore, input: impl BufRead, mut output: impl Write) -> Result<u64> {
    let mut input = input;
    let mut served = 0;
    loop {
        let Some(line) = read_line(&mut input)? else {
            return Ok(served);
        };
        let reply = match line.split(' ').collect::<Vec<_>>().as_slice() {
            ["BYE"] => return Ok(served),
            ["PUT", name, len] => {
                let len: u64 = len
                    .parse()
                    .ok()
                    .filter(|l| *l <= MAX_FILE)
                    .ok_or_else(|| Error::Usage(format!("bad length in {line:?}")))?;
                served += 1;
                put(store, name, len, &mut input)
            }
            _ => return Err(Error::Usage(format!("unknown request {line:?}"))),
        };
        output
            .write_all(reply.as_bytes())
            .and_then(|_| output.flush())
            .map_err(|e| Error::io("reply on", "the connection", e))?;
    }
}

fn put(store: &ArchiveStore, name: &str, len: u64, input: &mut impl BufRead) -> String {
    let mut body = input.take(len);
    let result = WalFileName::parse(name).and_then(|n| store.archive_stream(&n, &mut body, len));
    // Whatever happened, the announced bytes are consumed so the next request lines up.
    if let Err(e) = io::copy(&mut body, &mut io::sink()) {
        return format!("ERR reading {name}: {e}\n");
    }
    match result {
        Ok(Stored::Written) => "OK written\n".into(),
        Ok(Stored::AlreadyPresent) => "OK present\n".into(),
        Err(e) => format!("ERR {}\n", e.to_string().replace('\n', " ")),
    }
}

fn read_line(input: &mut impl BufRead) -> Result<Option<String>> {
    let mut line = Vec::new();
    let n = input
        .take(MAX_LINE as u64)
        .read_until(b'\n', &mut line)
        .map_err(|e| Error::io("read from", "the connection", e))?;
    if n == 0 {
        return Ok(None);
    }
    if line.last() != Some(&b'\n') {
        return Err(Error::Usage("request line too long or cut off".into()));
    }
    line.pop();
    String::from_utf8(line)
        .map(Some)
        .map_err(|_| Error::Usage("request line is not UTF-8".into()))
}

/// The master's side: sends files and reads each reply before the next.
pub struct Client<R, W> {
    replies: R,
    requests: W,
}

impl<R: BufRead, W: Write> Client<R, W> {
    pub fn new(replies: R, requests: W) -> Self {
        Client { replies, requests }
    }

    /// Sends `len` bytes of `data` as `name`; Ok once the standby says they are durable.
    pub fn put(&mut self, name: &WalFileName, data: impl Read, len: u64) -> Result<Stored> {
        let io_err = |e| Error::io("send to", "the standby", e);
        writeln!(self.requests, "PUT {name} {len}").map_err(io_err)?;
        let sent = io::copy(&mut data.take(len), &mut self.requests).map_err(io_err)?;
        if sent != len {
            // The stream is now out of step: the caller must drop this connection.
            return Err(Error::Usage(format!(
                "{name}: source gave {sent} of {len} bytes"
            )));
        }
        self.requests.flush().map_err(io_err)?;
        match read_line(&mut self.replies)?.as_deref() {
            Some("OK written") => Ok(Stored::Written),
            Some("OK present") => Ok(Stored::AlreadyPresent),
            Some(other) => Err(Error::Usage(format!(
                "standby refused {name}: {}",
                other.strip_prefix("ERR ").unwrap_or(other)
            ))),
            None => Err(Error::Usage(format!(
                "standby closed the connection during {name}"
            ))),
        }
    }

    pub fn bye(mut self) -> Result<()> {
        self.requests
            .write_all(b"BYE\n")
            .and_then(|_| self.requests.flush())
            .map_err(|e| Error::io("send to", "the standby", e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wal_name::SegmentName;
    use crate::wal_segment::tests::fake_segment;
    use std::io::{BufReader, Cursor};

    /// Runs a whole session: the client's requests are served, then its replies read back.
    fn session(store: &ArchiveStore, files: &[(WalFileName, Vec<u8>)]) -> Vec<Result<Stored>> {
        // Requests are built up front (the server's replies do not change them).
        let mut requests = Vec::new();
        for (name, data) in files {
            requests.extend_from_slice(format!("PUT {name} {}\n", data.len()).as_bytes());
            requests.extend_from_slice(data);
        }
        requests.extend_from_slice(b"BYE\n");
        let mut replies = Vec::new();
        serve(store, BufReader::new(Cursor::new(requests)), &mut replies).unwrap();
        let mut reader = BufReader::new(Cursor::new(replies));
        files
            .iter()
            .map(
                |(name, _)| match read_line(&mut reader).unwrap().as_deref() {
                    Some("OK written") => Ok(Stored::Written),
                    Some("OK present") => Ok(Stored::AlreadyPresent),
                    other => Err(Error::Usage(format!("{name}: {other:?}"))),
                },
            )
            .collect()
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
        let dir = tempfile::tempdir().unwrap();
        let store = ArchiveStore::new(dir.path());
        let files: Vec<_> = (1..=3).map(segment).collect();
        let replies = session(&store, &files);
        assert!(
            replies.iter().all(|r| matches!(r, Ok(Stored::Written))),
            "{replies:?}"
        );
        for (name, data) in &files {
            assert_eq!(&std::fs::read(store.path_of(name)).unwrap(), data);
        }
    }

    #[test]
    fn a_refused_file_does_not_derail_the_files_after_it() {
        let dir = tempfile::tempdir().unwrap();
        let store = ArchiveStore::new(dir.path());
        let (name, data) = segment(4);
        let mut forged = data.clone();
        forged[1000] ^= 1;
        let next = segment(5);
        let replies = session(
            &store,
            &[
                (name, data.clone()),
                (name, data.clone()),
                (name, forged),
                next.clone(),
            ],
        );
        assert!(matches!(replies[0], Ok(Stored::Written)));
        assert!(matches!(replies[1], Ok(Stored::AlreadyPresent)));
        let refused = replies[2].as_ref().unwrap_err().to_string();
        assert!(refused.contains("ERR"), "{refused}");
        assert!(matches!(replies[3], Ok(Stored::Written)));
        assert_eq!(std::fs::read(store.path_of(&name)).unwrap(), data);
        assert_eq!(std::fs::read(store.path_of(&next.0)).unwrap(), next.1);
    }

    #[test]
    fn names_outside_the_wal_grammar_are_refused_and_write_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let store = ArchiveStore::new(dir.path());
        let mut replies = Vec::new();
        let input = b"PUT ../../etc/passwd 5\nroot\nBYE\n".to_vec();
        serve(&store, BufReader::new(Cursor::new(input)), &mut replies).unwrap();
        let reply = String::from_utf8(replies).unwrap();
        assert!(
            reply.starts_with("ERR") && reply.contains("not a WAL file name"),
            "{reply}"
        );
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
    }

    #[test]
    fn a_connection_cut_mid_file_leaves_nothing_under_the_final_name() {
        let dir = tempfile::tempdir().unwrap();
        let store = ArchiveStore::new(dir.path());
        let (name, data) = segment(6);
        let mut input = format!("PUT {name} {}\n", data.len()).into_bytes();
        input.extend_from_slice(&data[..data.len() / 2]);
        let mut replies = Vec::new();
        let _ = serve(&store, BufReader::new(Cursor::new(input)), &mut replies);
        assert!(!store.path_of(&name).exists());
    }

    #[test]
    fn the_client_reads_each_reply() {
        let dir = tempfile::tempdir().unwrap();
        let store = ArchiveStore::new(dir.path());
        let (name, data) = segment(7);
        // Serve what the client sends, then replay the server's replies to the client.
        let mut requests = Vec::new();
        {
            let mut client = Client::new(
                BufReader::new(Cursor::new(b"OK written\n".to_vec())),
                &mut requests,
            );
            assert_eq!(
                client.put(&name, &data[..], data.len() as u64).unwrap(),
                Stored::Written
            );
            client.bye().unwrap();
        }
        let mut replies = Vec::new();
        assert_eq!(
            serve(&store, BufReader::new(Cursor::new(requests)), &mut replies).unwrap(),
            1
        );
        assert_eq!(replies, b"OK written\n");
        assert_eq!(std::fs::read(store.path_of(&name)).unwrap(), data);
    }
}
