//! Reading a pipe or socket with a limit on silence.
//!
//! A peer that vanished without closing its connection (a master that lost power, a
//! firewall that dropped the session) leaves a plain `read()` blocked until TCP keepalive
//! gives up, about two hours by default, holding whatever lock the reader took. Each read
//! here waits at most `limit` for the first byte.

use std::fs::File;
use std::io::{self, Read};
use std::os::fd::AsFd;
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::poll::{poll, PollFd, PollFlags, PollTimeout};

pub struct TimedRead {
    file: File,
    limit: Duration,
    /// Says who fell silent, for the error.
    peer: String,
    /// Once the peer was silent too long, every later read fails at once: whoever drains
    /// the rest of a request must not wait a second `limit` for nothing.
    gave_up: bool,
}

impl TimedRead {
    /// Reads `fd` (duplicated, so no buffer of std's stdin sits between poll and read).
    pub fn new(fd: impl AsFd, limit: Duration, peer: &str) -> io::Result<TimedRead> {
        let file = File::from(fd.as_fd().try_clone_to_owned()?);
        Ok(TimedRead {
            file,
            limit,
            peer: peer.to_owned(),
            gave_up: false,
        })
    }

    fn silent(&mut self) -> io::Error {
        self.gave_up = true;
        io::Error::new(
            io::ErrorKind::TimedOut,
            format!(
                "{} sent nothing for {} s (network_timeout); the session is given up",
                self.peer,
                self.limit.as_secs_f64().round()
            ),
        )
    }
}

impl Read for TimedRead {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let deadline = Instant::now() + self.limit;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            if self.gave_up || left.is_zero() {
                return Err(self.silent());
            }
            let millis = u16::try_from(left.as_millis()).unwrap_or(u16::MAX);
            let mut fds = [PollFd::new(self.file.as_fd(), PollFlags::POLLIN)];
            match poll(&mut fds, PollTimeout::from(millis)) {
                // Readable, closed or failed: read() itself says which.
                Ok(n) if n > 0 => return self.file.read(buf),
                Ok(_) | Err(Errno::EINTR) => continue,
                Err(e) => return Err(e.into()),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;
    use std::os::unix::net::UnixStream;

    #[test]
    fn bytes_that_arrive_in_time_are_read() {
        let (mut writer, reader) = UnixStream::pair().unwrap();
        let mut timed = TimedRead::new(&reader, Duration::from_secs(5), "the master").unwrap();
        writer.write_all(b"PUT").unwrap();
        let mut buf = [0u8; 8];
        assert_eq!(timed.read(&mut buf).unwrap(), 3);
        drop(writer);
        assert_eq!(
            timed.read(&mut buf).unwrap(),
            0,
            "a closed peer reads as the end"
        );
    }

    #[test]
    fn a_silent_peer_that_keeps_its_end_open_times_out() {
        let (_writer, reader) = UnixStream::pair().unwrap();
        let mut timed = TimedRead::new(&reader, Duration::from_secs(1), "the master").unwrap();
        let started = Instant::now();
        let err = timed.read(&mut [0u8; 8]).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::TimedOut);
        assert!(
            err.to_string().starts_with("the master sent nothing"),
            "{err}"
        );
        assert!(started.elapsed() >= Duration::from_secs(1));

        let again = Instant::now();
        let err = timed.read(&mut [0u8; 8]).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::TimedOut);
        assert!(
            again.elapsed() < Duration::from_millis(500),
            "draining after a timeout must not wait a second time"
        );
    }
}
