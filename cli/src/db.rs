//! Connections to PostgreSQL: to the master with `master_db`, and to a local data
//! directory's server through the socket its postmaster.pid names. Both follow libpq's
//! conventions (core's [`libpq`]: the PG* variables, services, .pgpass, sslmode), so that a
//! connection that works for psql works for walmgr; this file only carries the plan out
//! over the `postgres` crate, TLS through OpenSSL ([`crate::tls`]).

use std::path::Path;
use std::sync::mpsc;
use std::time::{SystemTime, UNIX_EPOCH};

use postgres::config::{ChannelBinding, SslMode, SslNegotiation, TargetSessionAttrs};
use postgres::{Client, Config, NoTls};
use walmgr_core::conninfo::{quoted, Conninfo};
use walmgr_core::libpq::{self, Environment, Host, Params, Target};
use walmgr_core::{cluster, Error};

/// The program name the server shows when the connection string names none.
const APPLICATION_NAME: &str = "walmgr";

pub fn connect(conninfo: &Conninfo) -> Result<Client, Error> {
    // Displayed, a Conninfo hides its password.
    let shown = conninfo.to_string();
    let params = libpq::resolve(
        conninfo.expose(),
        "master_db",
        &Environment::of_process(),
        APPLICATION_NAME,
    )?;
    connect_to(&params, &format!("cannot connect to the master ({shown})"))
}

/// Connects to the server of the local data directory `data` as the directory's owner,
/// through the socket its postmaster.pid names (a path, spaces and all, never parsed).
pub fn connect_local(data: &Path) -> Result<Client, Error> {
    let found = cluster::running(data).ok_or_else(|| {
        Error::refused(format!(
            "no PostgreSQL server is running on {} (start it, or check slave_data)",
            data.display()
        ))
    })?;
    let socket = found
        .socket
        .unwrap_or_else(|| libpq::DEFAULT_SOCKET_DIR.into());
    let user = cluster::owner_name(data).unwrap_or_else(|| "postgres".into());
    // As psql -h SOCKET -p PORT -U OWNER -d postgres would: a server whose pg_hba.conf asks
    // for a password gets the one .pgpass holds for that socket.
    let conninfo = format!(
        "host={} port={} user={} dbname=postgres",
        quoted(&socket.to_string_lossy()),
        found.port,
        quoted(&user)
    );
    let label = format!("the server on {}", data.display());
    let params = libpq::resolve(
        &conninfo,
        &label,
        &Environment::of_process(),
        APPLICATION_NAME,
    )?;
    connect_to(&params, &format!("cannot connect to {label}"))
}

/// Tries each server of `params` in turn (as libpq does with a host list); the error lists
/// every attempt.
fn connect_to(params: &Params, context: &str) -> Result<Client, Error> {
    let mut targets: Vec<&Target> = params.targets.iter().collect();
    if params.random_order {
        shuffle(&mut targets);
    }
    let mut failures = Vec::new();
    for target in targets {
        match connect_target(params, target) {
            Ok(client) => return Ok(client),
            Err(e) => failures.push(e),
        }
    }
    // The server's SQLSTATE is kept when there was one server to ask.
    let sqlstate = match failures.as_slice() {
        [Error::Server { sqlstate, .. }] => sqlstate.clone(),
        _ => None,
    };
    Err(Error::Server {
        context: context.to_string(),
        message: failures
            .iter()
            .map(|e| e.to_string())
            .collect::<Vec<_>>()
            .join("; "),
        sqlstate,
    })
}

/// One server, with sslmode's fallbacks: `allow` tries without TLS first, `prefer` with TLS
/// first; each tries the other way once if the first is refused (libpq does the same, so a
/// pg_hba.conf with only `hostssl` or only `hostnossl` lines works with either).
fn connect_target(params: &Params, target: &Target) -> Result<Client, Error> {
    let tcp = matches!(target.host, Some(Host::Tcp(_)) | None);
    let mode = params.tls.mode;
    // TLS is never used over a Unix socket: libpq ignores sslmode there.
    if !tcp || mode == libpq::SslMode::Disable {
        return attempt(params, target, Encryption::Plain);
    }
    match mode {
        libpq::SslMode::Allow => match attempt(params, target, Encryption::Plain) {
            Err(plain) if encryption_may_matter(&plain) => {
                attempt(params, target, Encryption::Tls).map_err(|tls| both(plain, tls))
            }
            other => other,
        },
        // A server without TLS answers the request with "no" and the same connection goes
        // on in plain text; only a failed handshake or a refusal that may be about
        // encryption tries plain text anew.
        libpq::SslMode::Prefer => match attempt(params, target, Encryption::TlsIfOffered) {
            Err(tls) if encryption_may_matter(&tls) => {
                attempt(params, target, Encryption::Plain).map_err(|plain| both(tls, plain))
            }
            other => other,
        },
        _ => attempt(params, target, Encryption::Tls),
    }
}

/// Would the other way (with TLS, or without) possibly succeed? After a failed handshake,
/// or when the server refused the connection as pg_hba.conf decides (SQLSTATE 28000: a
/// `hostssl` or `hostnossl` line may be why); not after a refused password or a server
/// that is not there.
fn encryption_may_matter(e: &Error) -> bool {
    match e {
        Error::Server {
            message, sqlstate, ..
        } => sqlstate.as_deref() == Some("28000") || message.contains("TLS handshake"),
        _ => false,
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Encryption {
    Plain,
    TlsIfOffered,
    Tls,
}

fn both(first: Error, second: Error) -> Error {
    Error::server(
        "cannot connect with or without TLS",
        format!("{first}; then {second}"),
    )
}

/// One connection attempt to `target`, with TLS (as `params.tls` says) or without.
fn attempt(params: &Params, target: &Target, encryption: Encryption) -> Result<Client, Error> {
    let mut config = Config::new();
    config
        .user(&params.user)
        .dbname(&params.dbname)
        .application_name(&params.application_name)
        .port(target.port)
        .keepalives(params.keepalives);
    match (&target.host, target.hostaddr) {
        (Some(Host::Unix(dir)), _) => {
            config.host_path(dir);
        }
        (Some(Host::Tcp(name)), addr) => {
            config.host(name);
            if let Some(addr) = addr {
                config.hostaddr(addr);
            }
        }
        // Only hostaddr: the address stands in for the name the TLS layer wants (core
        // refuses verify-full here, so no certificate is checked against it).
        (None, Some(addr)) => {
            config.host(&addr.to_string()).hostaddr(addr);
        }
        (None, None) => unreachable!("core gives every target a host or an address"),
    }
    if let Some(password) = &target.password {
        config.password(password.expose());
    }
    if let Some(options) = &params.options {
        config.options(options);
    }
    if let Some(t) = params.connect_timeout {
        config.connect_timeout(t);
    }
    if let Some(t) = params.keepalives_idle {
        config.keepalives_idle(t);
    }
    if let Some(t) = params.keepalives_interval {
        config.keepalives_interval(t);
    }
    if let Some(n) = params.keepalives_count {
        config.keepalives_retries(n);
    }
    if let Some(t) = params.tcp_user_timeout {
        config.tcp_user_timeout(t);
    }
    config.target_session_attrs(match params.target_session_attrs.as_str() {
        "read-write" => TargetSessionAttrs::ReadWrite,
        "read-only" => TargetSessionAttrs::ReadOnly,
        _ => TargetSessionAttrs::Any,
    });
    config.channel_binding(match params.channel_binding.as_str() {
        "disable" => ChannelBinding::Disable,
        "require" => ChannelBinding::Require,
        _ => ChannelBinding::Prefer,
    });
    let connector = match encryption {
        Encryption::Plain => {
            config.ssl_mode(SslMode::Disable);
            None
        }
        Encryption::TlsIfOffered | Encryption::Tls => {
            config.ssl_mode(if encryption == Encryption::Tls {
                SslMode::Require
            } else {
                SslMode::Prefer
            });
            if params.tls.direct {
                config.ssl_negotiation(SslNegotiation::Direct);
            }
            Some(crate::tls::connector(&params.tls)?)
        }
    };
    let open = move || match connector {
        Some(tls) => config.connect(tls),
        None => config.connect(NoTls),
    };
    let connected = match params.connect_timeout {
        None => open(),
        // libpq's connect_timeout bounds the whole attempt: TCP, TLS and the login. The
        // driver's own bounds only the TCP connect, so a server (or a tunnel) that accepts
        // and then says nothing would hold walmgr for ever; the attempt runs on a thread
        // that is left behind, to end with its socket, if the limit passes.
        Some(limit) => {
            let (sender, receiver) = mpsc::channel();
            std::thread::spawn(move || {
                // The receiver is gone only after a timeout: nothing waits for this.
                let _ = sender.send(open());
            });
            match receiver.recv_timeout(limit) {
                Ok(result) => result,
                Err(_) => {
                    let tls = match encryption {
                        Encryption::Plain => " (without TLS)",
                        Encryption::TlsIfOffered => "",
                        Encryption::Tls => " (TLS)",
                    };
                    return Err(Error::server(
                        format!("connection to {target}{tls} failed"),
                        format!(
                            "timeout expired: no answer within connect_timeout={} s \
                             (connection, TLS and login together)",
                            limit.as_secs()
                        ),
                    ));
                }
            }
        }
    };
    connected.map_err(|e| attempt_error(params, target, encryption, &e))
}

/// What went wrong with one attempt, named as libpq names the server, with what a DBA
/// checks next: the certificate files for a TLS failure, the password file a refused
/// password came from.
fn attempt_error(
    params: &Params,
    target: &Target,
    encryption: Encryption,
    e: &postgres::Error,
) -> Error {
    let tls = match encryption {
        Encryption::Plain => " (without TLS)",
        Encryption::TlsIfOffered => "",
        Encryption::Tls => " (TLS)",
    };
    let context = format!("connection to {target}{tls} failed");
    let mut error = server_error(context, e);
    if let Error::Server {
        message, sqlstate, ..
    } = &mut error
    {
        if message.contains("certificate verify failed") {
            let mode = params.tls.mode.name();
            let hint = match &target.host {
                Some(Host::Tcp(name)) if message.contains("mismatch") => format!(
                    "sslmode={mode}: the server's certificate does not name the host \"{name}\"; \
                     connect by a name the certificate has, or give the server a certificate \
                     for \"{name}\""
                ),
                _ if message.contains("certificate revoked") => format!(
                    "sslmode={mode}: the server's certificate is revoked by {}",
                    crl_files(params)
                ),
                _ if message.contains("unable to get certificate CRL") => format!(
                    "sslmode={mode}: {} holds no revocation list from the CA that signed the \
                     server's certificate",
                    crl_files(params)
                ),
                _ => {
                    let roots = match &params.tls.roots {
                        Some(libpq::RootCerts::File(f)) => format!("the CA in {}", f.display()),
                        Some(libpq::RootCerts::System) => "the system's trusted CAs".to_string(),
                        None => "a trusted CA".to_string(),
                    };
                    format!(
                        "sslmode={mode}: the server's certificate is not signed by {roots}; \
                         check sslrootcert and the server's ssl_cert_file"
                    )
                }
            };
            message.push_str(&format!(" ({hint})"));
        }
        if message.contains("password missing") {
            let file = match &params.passfile {
                Some(f) => format!("the password file {}", f.display()),
                None => "a password file (passfile=FILE)".to_string(),
            };
            message.push_str(&format!(
                " (the server asks for a password and none was given: put a line \
                 host:port:database:user:password in {file} (mode 0600), or set PGPASSWORD)"
            ));
        }
        if sqlstate.as_deref() == Some("28P01") {
            if let Some((file, line)) = &target.password_from {
                message.push_str(&format!(
                    " (password retrieved from file \"{}\" line {line})",
                    file.display()
                ));
            }
        }
    }
    error
}

/// The revocation lists in use, as a DBA would look for them.
fn crl_files(params: &Params) -> String {
    let crl = &params.tls.crl;
    let mut files = Vec::new();
    if let Some(f) = &crl.file {
        files.push(format!("sslcrl {}", f.display()));
    }
    if let Some(d) = &crl.dir {
        files.push(format!("sslcrldir {}", d.display()));
    }
    files.join(" and ")
}

/// Fisher-Yates with a clock-seeded xorshift: `load_balance_hosts=random` spreads
/// connections, it needs no cryptographic randomness.
fn shuffle<T>(items: &mut [T]) {
    let mut state = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(1)
        | 1;
    for i in (1..items.len()).rev() {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        items.swap(i, (state % (i as u64 + 1)) as usize);
    }
}

/// What the server said (message, detail, hint and SQLSTATE) rather than the driver's
/// generic text.
pub fn server_error(context: impl Into<String>, e: &postgres::Error) -> Error {
    match e.as_db_error() {
        Some(db) => {
            let mut message = db.message().to_string();
            if let Some(d) = db.detail() {
                message.push_str(&format!(" ({d})"));
            }
            if let Some(h) = db.hint() {
                message.push_str(&format!(" hint: {h}"));
            }
            Error::Server {
                context: context.into(),
                message,
                sqlstate: Some(db.code().code().to_string()),
            }
        }
        None => Error::server(context, with_causes(e)),
    }
}

/// The driver's error with the causes it wraps ("invalid configuration: password
/// missing", "error performing TLS handshake: ... certificate verify failed"), each once.
fn with_causes(e: &postgres::Error) -> String {
    let mut text = e.to_string();
    let mut source = std::error::Error::source(e);
    while let Some(cause) = source {
        let more = cause.to_string();
        if !text.contains(&more) {
            text.push_str(": ");
            text.push_str(&more);
        }
        source = cause.source();
    }
    text
}
