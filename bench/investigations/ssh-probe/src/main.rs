//! The raw speed of one libssh2 channel, for bench/investigations/ssh-limits.sh: a file
//! written into `cat > /dev/null` on the server through the same calls walmgr's SSH
//! transport makes (core/src/remote/ssh.rs): a blocking session, TCP_NODELAY, a 1 MiB
//! BufReader on the file copied into a 1 MiB BufWriter over `Channel::stream(0)`. Nothing is
//! written on the server and no reply is awaited per file, so what is left is libssh2, its
//! cipher and sshd: the ceiling of any protocol on top of them.
//!
//!   walmgr-ssh-probe HOST PORT USER KEY KNOWN_HOSTS CIPHER FILE
//!   walmgr-ssh-probe --version        (the libssh2 version it, and walmgr, are built with)
//!
//! Prints one line of key=value pairs: the negotiated cipher, the seconds from the first
//! byte written to the channel's close (session set-up excluded), MiB/s, and this process's
//! CPU seconds (user, system) over the same span. The host key must be in KNOWN_HOSTS.

use std::fs::File;
use std::io::{self, BufReader, BufWriter, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::ExitCode;
use std::time::Instant;

use ssh2::{CheckResult, MethodType, Session};

const BUFFER: usize = 1 << 20;

extern "C" {
    /// Part of libssh2's public API (in the library libssh2-sys builds), not bound by it.
    fn libssh2_version(required: libc::c_int) -> *const libc::c_char;
}

/// Writes to the channel's stdin; flush does nothing (libssh2's flush discards incoming
/// data), exactly as walmgr's ChannelWriter.
struct ChannelWriter(ssh2::Stream);

impl Write for ChannelWriter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0.write(buf)
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// (user, system) CPU seconds of this process so far, from /proc/self/stat.
fn cpu_seconds() -> (f64, f64) {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    // Fields after the command name, which is in parentheses and may hold spaces.
    let rest = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or("");
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // utime and stime are fields 14 and 15 of stat(5), i.e. 11 and 12 after the name.
    let tick = |i: usize| {
        fields
            .get(i)
            .and_then(|f| f.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    // SAFETY: plain sysconf.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as f64;
    (tick(11) / hz, tick(12) / hz)
}

fn run(args: &[String]) -> Result<String, String> {
    let [host, port, user, key, known_hosts, cipher, file] = args else {
        return Err("usage: walmgr-ssh-probe HOST PORT USER KEY KNOWN_HOSTS CIPHER FILE".into());
    };
    let port: u16 = port.parse().map_err(|_| format!("bad port {port:?}"))?;
    let tcp = TcpStream::connect((host.as_str(), port)).map_err(|e| format!("connect: {e}"))?;
    tcp.set_nodelay(true).map_err(|e| format!("nodelay: {e}"))?;
    let mut session = Session::new().map_err(|e| format!("libssh2: {e}"))?;
    session.set_tcp_stream(tcp);
    session
        .method_pref(MethodType::CryptCs, cipher)
        .and_then(|_| session.method_pref(MethodType::CryptSc, cipher))
        .map_err(|e| format!("cipher {cipher}: {e}"))?;
    session.handshake().map_err(|e| format!("handshake: {e}"))?;

    let (host_key, _) = session.host_key().ok_or("no host key")?;
    let mut known = session.known_hosts().map_err(|e| e.to_string())?;
    known
        .read_file(Path::new(known_hosts), ssh2::KnownHostFileKind::OpenSSH)
        .map_err(|e| format!("read {known_hosts}: {e}"))?;
    match known.check_port(host, port, host_key) {
        CheckResult::Match => {}
        other => return Err(format!("host key not trusted by {known_hosts}: {other:?}")),
    }
    session
        .userauth_pubkey_file(user, None, Path::new(key), None)
        .map_err(|e| format!("authentication: {e}"))?;
    let negotiated = session
        .methods(MethodType::CryptCs)
        .unwrap_or("?")
        .to_owned();

    let mut channel = session.channel_session().map_err(|e| e.to_string())?;
    channel
        .exec("cat > /dev/null")
        .map_err(|e| format!("exec: {e}"))?;
    let source = File::open(file).map_err(|e| format!("open {file}: {e}"))?;
    let mut source = BufReader::with_capacity(BUFFER, source);
    let mut sink = BufWriter::with_capacity(BUFFER, ChannelWriter(channel.stream(0)));

    let (user0, sys0) = cpu_seconds();
    let started = Instant::now();
    let bytes = io::copy(&mut source, &mut sink).map_err(|e| format!("write: {e}"))?;
    sink.flush().map_err(|e| format!("write: {e}"))?;
    drop(sink);
    channel.send_eof().map_err(|e| format!("eof: {e}"))?;
    channel.wait_eof().map_err(|e| format!("wait eof: {e}"))?;
    channel.wait_close().map_err(|e| format!("close: {e}"))?;
    let seconds = started.elapsed().as_secs_f64();
    let (user1, sys1) = cpu_seconds();
    let status = channel.exit_status().map_err(|e| e.to_string())?;
    if status != 0 {
        return Err(format!("`cat > /dev/null` exited with {status}"));
    }
    let mib = bytes as f64 / (1 << 20) as f64;
    Ok(format!(
        "cipher={negotiated} bytes={bytes} seconds={seconds:.3} mib_per_s={:.1} \
         cpu_user={:.2} cpu_sys={:.2}",
        mib / seconds,
        user1 - user0,
        sys1 - sys0
    ))
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args == ["--version"] {
        // SAFETY: libssh2_version(0) returns a static NUL-terminated string.
        let version = unsafe { std::ffi::CStr::from_ptr(libssh2_version(0)) };
        println!("libssh2 {}", version.to_string_lossy());
        return ExitCode::SUCCESS;
    }
    match run(&args) {
        Ok(line) => {
            println!("{line}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("walmgr-ssh-probe: {e}");
            ExitCode::FAILURE
        }
    }
}
