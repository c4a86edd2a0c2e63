//! libpq's conventions for the connections walmgr opens itself (`master_db`, and the local
//! server of a data directory). walmgr3 connected through libpq and got them for free;
//! walmgr's CLI speaks the protocol through the `postgres` crate, so they are rebuilt here,
//! the way libpq 15-18 applies them, so that a `master_db` that works for psql works for
//! walmgr and one that psql refuses is refused:
//!
//! 1. the connection string (keyword form or URI) sets what it names; a keyword libpq does
//!    not know is an error;
//! 2. `service=` (else `PGSERVICE`) adds the service's settings where the string set none
//!    ([`service`]);
//! 3. the `PG*` environment variables fill what is still unset (`PGHOST`, `PGPORT`, `PGUSER`,
//!    `PGDATABASE`, `PGPASSWORD`, `PGSSLMODE`, ...: [`keywords::KEYWORDS`]);
//! 4. libpq's defaults: the Unix socket in `/var/run/postgresql` (Debian's libpq), port 5432,
//!    the OS user, a database named like the user, `sslmode=prefer`, the client certificate
//!    and root certificates under `~/.postgresql/`;
//! 5. with no password set, each host's password is looked up in the password file
//!    (`passfile`, `PGPASSFILE`, `~/.pgpass`: [`pgpass`]).
//!
//! "~" is the effective user's home from the password database, as libpq 15-17 have it.
//! What this module cannot honour through the `postgres` crate (requirepeer, require_auth,
//! GSSAPI encryption, replication connections, OAuth) is refused with a message rather than
//! ignored: each of them exists to make a connection safer or different.
//!
//! Everything here is pure but for reading the service and password files and checking
//! whether certificate files exist; the TLS handshake itself is the CLI's.

pub mod keywords;
pub mod pgpass;
pub mod service;

use std::collections::BTreeMap;
use std::fmt;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::conninfo;
use crate::error::{Error, Result};
use crate::os::users;

/// Debian's libpq: `DEFAULT_PGSOCKET_DIR`.
pub const DEFAULT_SOCKET_DIR: &str = "/var/run/postgresql";
/// What the password file calls a connection to the default socket directory.
pub const DEFAULT_HOST: &str = "localhost";
pub const DEFAULT_PORT: &str = "5432";
/// Debian's libpq: `pg_config --sysconfdir`, where `pg_service.conf` is looked for when
/// `PGSYSCONFDIR` is not set.
pub const DEFAULT_SYSCONFDIR: &str = "/etc/postgresql-common";

/// A password (or key passphrase), which neither Debug nor Display shows; bytes, because a
/// password file need not be UTF-8.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(Vec<u8>);

impl Secret {
    pub fn from_bytes(bytes: Vec<u8>) -> Secret {
        Secret(bytes)
    }

    /// The password itself: for the server's authentication exchange only.
    pub fn expose(&self) -> &[u8] {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(***)")
    }
}

/// What libpq would read from outside the connection string: the `PG*` variables, the
/// effective user's home and name.
#[derive(Debug, Clone, Default)]
pub struct Environment {
    vars: BTreeMap<String, String>,
    pub home: Option<PathBuf>,
    pub os_user: Option<String>,
}

impl Environment {
    /// This process's environment and effective user.
    pub fn of_process() -> Environment {
        Environment {
            // vars_os: a variable that is not UTF-8 (anyone's, not only PG*) must not
            // panic; a PG* one that is not is left out, as if unset.
            vars: std::env::vars_os()
                .filter_map(|(name, value)| {
                    Some((name.into_string().ok()?, value.into_string().ok()?))
                })
                .filter(|(name, _)| name.starts_with("PG"))
                .collect(),
            home: users::effective_user_home(),
            os_user: users::effective_user_name(),
        }
    }

    /// An environment with no variables, for tests and for callers that want none.
    pub fn new(home: Option<PathBuf>, os_user: Option<&str>) -> Environment {
        Environment {
            vars: BTreeMap::new(),
            home,
            os_user: os_user.map(str::to_owned),
        }
    }

    pub fn with_var(mut self, name: &str, value: &str) -> Environment {
        self.vars.insert(name.to_owned(), value.to_owned());
        self
    }

    pub fn var(&self, name: &str) -> Option<&str> {
        self.vars.get(name).map(String::as_str)
    }

    fn home_file(&self, name: &str) -> Option<PathBuf> {
        self.home.as_ref().map(|h| h.join(name))
    }
}

/// Where a setting came from, so that an error about it says where to fix it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    /// The connection string (`master_db`, say).
    Conninfo,
    Service {
        file: PathBuf,
        line: usize,
    },
    Env(&'static str),
}

#[derive(Debug, Clone)]
struct Setting {
    value: String,
    source: Source,
}

/// How to reach one server of a (possibly multi-host) connection string.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Host {
    /// A host name or address, as written: TLS checks the certificate against it.
    Tcp(String),
    /// A Unix socket directory (libpq: a value starting with `/`).
    Unix(PathBuf),
}

/// One server to try, in the order libpq tries them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    /// None: only `hostaddr` was given (no name to check a certificate against).
    pub host: Option<Host>,
    pub hostaddr: Option<IpAddr>,
    pub port: u16,
    pub password: Option<Secret>,
    /// The password file line the password came from, for the hint on a failed login.
    pub password_from: Option<(PathBuf, usize)>,
}

impl fmt::Display for Target {
    /// As libpq names a server in its errors.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (&self.host, &self.hostaddr) {
            (Some(Host::Unix(dir)), _) => {
                write!(f, "socket \"{}/.s.PGSQL.{}\"", dir.display(), self.port)
            }
            (Some(Host::Tcp(name)), Some(addr)) => {
                write!(f, "server at \"{name}\" ({addr}), port {}", self.port)
            }
            (Some(Host::Tcp(name)), None) => write!(f, "server at \"{name}\", port {}", self.port),
            (None, Some(addr)) => write!(f, "server at {addr}, port {}", self.port),
            (None, None) => write!(f, "server on port {}", self.port),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SslMode {
    Disable,
    Allow,
    Prefer,
    Require,
    VerifyCa,
    VerifyFull,
}

impl SslMode {
    fn parse(value: &str) -> Option<SslMode> {
        Some(match value {
            "disable" => SslMode::Disable,
            "allow" => SslMode::Allow,
            "prefer" => SslMode::Prefer,
            "require" => SslMode::Require,
            "verify-ca" => SslMode::VerifyCa,
            "verify-full" => SslMode::VerifyFull,
            _ => return None,
        })
    }

    pub fn name(self) -> &'static str {
        match self {
            SslMode::Disable => "disable",
            SslMode::Allow => "allow",
            SslMode::Prefer => "prefer",
            SslMode::Require => "require",
            SslMode::VerifyCa => "verify-ca",
            SslMode::VerifyFull => "verify-full",
        }
    }

    /// Must the connection be encrypted (no plain fallback)?
    pub fn requires_tls(self) -> bool {
        matches!(
            self,
            SslMode::Require | SslMode::VerifyCa | SslMode::VerifyFull
        )
    }
}

/// The certificates a server's chain must lead to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RootCerts {
    /// These (PEM) and no others: libpq does not add the system's store to a file.
    File(PathBuf),
    /// `sslrootcert=system` (PostgreSQL 16+): OpenSSL's default trust store.
    System,
}

/// Revocation lists checked against the server's chain.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Crl {
    pub file: Option<PathBuf>,
    pub dir: Option<PathBuf>,
}

/// A client certificate and its key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientCert {
    pub cert: PathBuf,
    pub key: PathBuf,
    /// `sslpassword`: the passphrase of an encrypted key.
    pub key_password: Option<Secret>,
}

/// How TCP connections use TLS (Unix sockets never do, as in libpq).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tls {
    pub mode: SslMode,
    /// None: the server's certificate is not checked (libpq's `require` without a root
    /// certificate file).
    pub roots: Option<RootCerts>,
    /// Checked only with `roots`.
    pub crl: Crl,
    /// `verify-full`: the certificate must name the host connected to.
    pub verify_host: bool,
    pub client: Option<ClientCert>,
    /// `ssl_min_protocol_version` (libpq's default TLSv1.2) and `ssl_max_protocol_version`.
    pub min_version: String,
    pub max_version: Option<String>,
    /// `sslsni`: send the host name in the handshake.
    pub sni: bool,
    /// `sslnegotiation=direct` (PostgreSQL 17+): TLS from the first byte.
    pub direct: bool,
}

/// Everything needed to connect, libpq's conventions applied.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Params {
    pub targets: Vec<Target>,
    pub user: String,
    pub dbname: String,
    pub application_name: String,
    pub options: Option<String>,
    pub connect_timeout: Option<Duration>,
    pub keepalives: bool,
    pub keepalives_idle: Option<Duration>,
    pub keepalives_interval: Option<Duration>,
    pub keepalives_count: Option<u32>,
    pub tcp_user_timeout: Option<Duration>,
    /// `any`, `read-write` or `read-only`.
    pub target_session_attrs: String,
    /// `disable`, `prefer` or `require`.
    pub channel_binding: String,
    /// `load_balance_hosts=random`: try the targets in random order.
    pub random_order: bool,
    pub tls: Tls,
    /// The service used and the file it came from.
    pub service: Option<(String, PathBuf)>,
    /// The password file read for the targets without a password (for messages).
    pub passfile: Option<PathBuf>,
}

/// Checks a connection string walmgr does not open itself (primary_conninfo, which the
/// standby's own libpq reads): it parses, names only keywords libpq knows, and fixed-set
/// values (sslmode, ...) and numbers are valid. Err says what is wrong, never a value that
/// could be a password.
pub fn validate(conninfo: &str) -> std::result::Result<(), String> {
    for (key, value) in conninfo::keywords(conninfo)? {
        let keyword =
            keywords::find(&key).ok_or_else(|| format!("invalid connection option \"{key}\""))?;
        keywords::check_value(keyword, &value)?;
    }
    Ok(())
}

/// Resolves `conninfo` (called `label` in errors, e.g. "master_db") the way libpq would in
/// `env`: see the module's documentation. `fallback_application_name` names the program
/// when nothing sets application_name.
pub fn resolve(
    conninfo: &str,
    label: &str,
    env: &Environment,
    fallback_application_name: &str,
) -> Result<Params> {
    Resolver {
        label,
        env,
        settings: BTreeMap::new(),
    }
    .resolve(conninfo, fallback_application_name)
}

struct Resolver<'a> {
    label: &'a str,
    env: &'a Environment,
    settings: BTreeMap<&'static str, Setting>,
}

impl Resolver<'_> {
    fn err_at(&self, source: &Source, message: impl Into<String>) -> Error {
        let origin = match source {
            Source::Conninfo => self.label.to_string(),
            Source::Service { file, line } => format!("{}:{line}", file.display()),
            Source::Env(var) => (*var).to_string(),
        };
        Error::Connection {
            origin,
            message: message.into(),
        }
    }

    /// An error about `keyword`'s setting, naming where it was set.
    fn err(&self, keyword: &str, message: impl Into<String>) -> Error {
        match self.settings.get(keyword) {
            Some(s) => self.err_at(&s.source, message),
            None => self.err_at(&Source::Conninfo, message),
        }
    }

    /// The value of `keyword`, None when unset or empty (libpq treats both as the default).
    fn get(&self, keyword: &str) -> Option<&str> {
        self.settings
            .get(keyword)
            .map(|s| s.value.as_str())
            .filter(|v| !v.is_empty())
    }

    fn set_if_unset(&mut self, keyword: &'static str, value: String, source: Source) {
        self.settings
            .entry(keyword)
            .or_insert(Setting { value, source });
    }

    fn resolve(mut self, conninfo: &str, fallback_application_name: &str) -> Result<Params> {
        // 1. The connection string: a later duplicate wins, as in libpq.
        let pairs = conninfo::keywords(conninfo).map_err(|m| self.err_at(&Source::Conninfo, m))?;
        for (key, value) in pairs {
            let keyword = keywords::find(&key).ok_or_else(|| {
                self.err_at(
                    &Source::Conninfo,
                    format!("invalid connection option \"{key}\""),
                )
            })?;
            self.settings.insert(
                keyword.name,
                Setting {
                    value,
                    source: Source::Conninfo,
                },
            );
        }
        // 2. The service, 3. the environment.
        let service = self.apply_service()?;
        for keyword in keywords::KEYWORDS {
            if let Some(var) = keyword.env {
                if let Some(value) = self.env.var(var) {
                    self.set_if_unset(keyword.name, value.to_owned(), Source::Env(var));
                }
            }
        }
        // Fixed-set values and numbers, wherever they came from.
        for (name, setting) in &self.settings {
            let keyword = keywords::find(name).expect("only known keywords are stored");
            keywords::check_value(keyword, &setting.value)
                .map_err(|m| self.err_at(&setting.source, m))?;
        }
        self.refuse_what_cannot_be_honoured()?;

        // 4. Defaults.
        let user = match self.get("user") {
            Some(u) => u.to_owned(),
            None => self.env.os_user.clone().ok_or_else(|| {
                self.err_at(
                    &Source::Conninfo,
                    "cannot tell the running user's name: set user= (or PGUSER)",
                )
            })?,
        };
        let dbname = self.get("dbname").unwrap_or(&user).to_owned();
        let application_name = self
            .get("application_name")
            .or(self.get("fallback_application_name"))
            .unwrap_or(fallback_application_name)
            .to_owned();
        let passfile = self.passfile();
        let targets = self.targets(&user, &dbname, passfile.as_deref())?;
        // libpq looks for certificate files only when it starts TLS, which it never does
        // over a Unix socket: a PGSSLMODE=verify-full meant for remote servers must not
        // break a connection to the local socket.
        let over_tcp = targets
            .iter()
            .any(|t| !matches!(t.host, Some(Host::Unix(_))));
        let tls = self.tls(over_tcp)?;
        if tls.verify_host {
            if let Some(t) = targets.iter().find(|t| t.host.is_none()) {
                return Err(self.err(
                    "sslmode",
                    format!(
                        "host name must be specified for a verified SSL connection \
                         (sslmode=verify-full): {t} has only hostaddr; add host=NAME as the \
                         certificate names it"
                    ),
                ));
            }
        }
        let seconds = |keyword: &str| -> Result<Option<Duration>> {
            match self.get(keyword) {
                None => Ok(None),
                Some(v) => {
                    let n = keywords::integer(keyword, v).map_err(|m| self.err(keyword, m))?;
                    Ok((n > 0).then(|| Duration::from_secs(n as u64)))
                }
            }
        };
        // libpq: a timeout of 1 s is raised to 2 (1 would fail on a slow clock tick); 0 or
        // less waits for ever.
        let connect_timeout = seconds("connect_timeout")?.map(|d| d.max(Duration::from_secs(2)));
        let keepalives = match self.get("keepalives") {
            Some(v) => {
                keywords::integer("keepalives", v).map_err(|m| self.err("keepalives", m))? != 0
            }
            None => true,
        };
        let keepalives_count = match self.get("keepalives_count") {
            Some(v) => Some(
                keywords::integer("keepalives_count", v)
                    .map_err(|m| self.err("keepalives_count", m))?
                    .max(0) as u32,
            ),
            None => None,
        };
        let tcp_user_timeout = match self.get("tcp_user_timeout") {
            Some(v) => {
                let ms = keywords::integer("tcp_user_timeout", v)
                    .map_err(|m| self.err("tcp_user_timeout", m))?;
                (ms > 0).then(|| Duration::from_millis(ms as u64))
            }
            None => None,
        };
        Ok(Params {
            targets,
            user,
            dbname,
            application_name,
            options: self.get("options").map(str::to_owned),
            connect_timeout,
            keepalives,
            keepalives_idle: seconds("keepalives_idle")?,
            keepalives_interval: seconds("keepalives_interval")?,
            keepalives_count,
            tcp_user_timeout,
            target_session_attrs: self.get("target_session_attrs").unwrap_or("any").to_owned(),
            channel_binding: self.get("channel_binding").unwrap_or("prefer").to_owned(),
            random_order: self.get("load_balance_hosts") == Some("random"),
            tls,
            service,
            passfile,
        })
    }

    /// Adds the settings of `service=` (or PGSERVICE), if one is named.
    fn apply_service(&mut self) -> Result<Option<(String, PathBuf)>> {
        // libpq takes the service keyword even when empty (and then finds no "[]").
        let name = match self.settings.get("service") {
            Some(s) => s.value.clone(),
            None => match self.env.var("PGSERVICE") {
                Some(v) => v.to_owned(),
                None => return Ok(None),
            },
        };
        let user_file = match self.get("servicefile") {
            Some(f) => Some(PathBuf::from(f)),
            None => match self.env.var("PGSERVICEFILE") {
                Some(f) => Some(PathBuf::from(f)),
                None => self.env.home_file(".pg_service.conf"),
            },
        };
        let sysconfdir = self.env.var("PGSYSCONFDIR").unwrap_or(DEFAULT_SYSCONFDIR);
        let system_file = Path::new(sysconfdir).join("pg_service.conf");
        let found = service::lookup(&name, user_file.as_deref(), &system_file)?;
        for setting in found.settings {
            let keyword = keywords::find(&setting.keyword).expect("service checks keywords");
            self.set_if_unset(
                keyword.name,
                setting.value,
                Source::Service {
                    file: found.file.clone(),
                    line: setting.line,
                },
            );
        }
        Ok(Some((name, found.file)))
    }

    /// Keywords whose purpose is to make a connection safer or different in ways the
    /// `postgres` crate cannot: ignoring them would connect with less than was asked for.
    fn refuse_what_cannot_be_honoured(&self) -> Result<()> {
        let refuse = |keyword: &str, why: &str| -> Result<()> {
            if self.get(keyword).is_some() {
                return Err(self.err(keyword, format!("walmgr cannot honour {keyword}: {why}")));
            }
            Ok(())
        };
        refuse(
            "requirepeer",
            "its connections do not go through libpq; use pg_hba.conf's peer method instead",
        )?;
        refuse(
            "require_auth",
            "its connections do not go through libpq; restrict the methods in pg_hba.conf",
        )?;
        for oauth in [
            "oauth_issuer",
            "oauth_client_id",
            "oauth_client_secret",
            "oauth_scope",
        ] {
            refuse(
                oauth,
                "OAuth is not supported; use a password or a client certificate",
            )?;
        }
        for key in ["scram_client_key", "scram_server_key"] {
            refuse(key, "SCRAM pass-through keys are not supported")?;
        }
        if self.get("gssencmode") == Some("require") {
            return Err(self.err(
                "gssencmode",
                "gssencmode value \"require\" invalid when GSSAPI support is not compiled in \
                 (walmgr has none): use sslmode for encryption",
            ));
        }
        if let Some(r) = self.get("replication") {
            if !matches!(r, "false" | "off" | "no" | "0") {
                return Err(self.err(
                    "replication",
                    "walmgr's connections run SQL and cannot be replication connections: \
                     remove replication= from this connection string",
                ));
            }
        }
        match self.get("target_session_attrs") {
            None | Some("any" | "read-write" | "read-only") => {}
            Some(other) => {
                return Err(self.err(
                    "target_session_attrs",
                    format!(
                        "walmgr supports target_session_attrs any, read-write and read-only, \
                         not \"{other}\""
                    ),
                ))
            }
        }
        if let Some(v) = self.get("min_protocol_version") {
            if v != "3.0" {
                return Err(self.err(
                    "min_protocol_version",
                    format!("walmgr speaks protocol 3.0 only, not min_protocol_version={v}"),
                ));
            }
        }
        if let Some(v) = self.get("max_protocol_version") {
            if v != "3.0" && v != "latest" {
                return Err(self.err(
                    "max_protocol_version",
                    format!("walmgr speaks protocol 3.0 only, not max_protocol_version={v}"),
                ));
            }
        }
        for ignored in ["krbsrvname", "gsslib", "gssdelegation", "sslcompression"] {
            if self.get(ignored).is_some() {
                tracing::debug!(
                    "{ignored} has no effect on walmgr's connections (no GSSAPI, no TLS \
                     compression)"
                );
            }
        }
        if let Some(encoding) = self.get("client_encoding") {
            if !matches!(
                encoding.to_ascii_lowercase().as_str(),
                "utf8" | "utf-8" | "unicode" | "auto"
            ) {
                tracing::debug!(
                    "client_encoding {encoding:?} is not used: walmgr's connections speak UTF8"
                );
            }
        }
        Ok(())
    }

    /// The TLS plan: sslmode, what the server's certificate is checked against, the client
    /// certificate; as libpq's `initialize_SSL()` decides it.
    fn tls(&self, over_tcp: bool) -> Result<Tls> {
        let rootcert = self.get("sslrootcert");
        let system = rootcert == Some("system");
        let mode = match self.get("sslmode") {
            Some(v) => SslMode::parse(v).expect("sslmode was checked"),
            // PostgreSQL 16+: sslrootcert=system makes the default verify-full.
            None if system => SslMode::VerifyFull,
            None => SslMode::Prefer,
        };
        if system && mode != SslMode::VerifyFull {
            return Err(self.err(
                "sslmode",
                format!(
                    "weak sslmode \"{}\" may not be used with sslrootcert=system (use \
                     \"verify-full\")",
                    mode.name()
                ),
            ));
        }
        let direct = self.get("sslnegotiation") == Some("direct");
        if direct && !mode.requires_tls() {
            return Err(self.err(
                "sslnegotiation",
                format!(
                    "weak sslmode \"{}\" may not be used with sslnegotiation=direct (use \
                     \"require\", \"verify-ca\", or \"verify-full\")",
                    mode.name()
                ),
            ));
        }
        let verify = matches!(mode, SslMode::VerifyCa | SslMode::VerifyFull);
        let default_file = |name: &str| self.env.home_file(&format!(".postgresql/{name}"));
        let roots = if mode == SslMode::Disable || !over_tcp {
            None
        } else if system {
            Some(RootCerts::System)
        } else {
            let file = rootcert
                .map(PathBuf::from)
                .or_else(|| default_file("root.crt"));
            match file {
                // libpq checks a chain whenever the file is there, even for require.
                Some(f) if f.exists() => Some(RootCerts::File(f)),
                Some(f) if verify => {
                    return Err(self.err(
                        "sslmode",
                        format!(
                            "root certificate file \"{}\" does not exist: either provide the \
                             file (sslrootcert=FILE), use the system's trusted roots with \
                             sslrootcert=system, or change sslmode to disable server \
                             certificate verification",
                            f.display()
                        ),
                    ))
                }
                None if verify => {
                    return Err(self.err(
                        "sslmode",
                        "could not get home directory to locate root certificate file: \
                         either provide the file (sslrootcert=FILE) or change sslmode to \
                         disable server certificate verification",
                    ))
                }
                _ => None,
            }
        };
        let crl = match (self.get("sslcrl"), self.get("sslcrldir")) {
            (None, None) => Crl {
                file: default_file("root.crl").filter(|f| over_tcp && f.exists()),
                dir: None,
            },
            (file, dir) => Crl {
                file: file.map(PathBuf::from),
                dir: dir.map(PathBuf::from),
            },
        };
        let client = if mode == SslMode::Disable || !over_tcp {
            None
        } else {
            self.client_cert()?
        };
        let sni = self.get("sslsni") != Some("0");
        Ok(Tls {
            mode,
            roots,
            crl,
            verify_host: mode == SslMode::VerifyFull,
            client,
            min_version: self
                .get("ssl_min_protocol_version")
                .unwrap_or("TLSv1.2")
                .to_owned(),
            max_version: self.get("ssl_max_protocol_version").map(str::to_owned),
            sni,
            direct,
        })
    }

    /// The client certificate, if there is one: `sslcert` (else ~/.postgresql/postgresql.crt)
    /// when the file exists; its key must then exist and be private, as libpq requires.
    fn client_cert(&self) -> Result<Option<ClientCert>> {
        let certmode = self.get("sslcertmode").unwrap_or("allow");
        let cert = self
            .get("sslcert")
            .map(PathBuf::from)
            .or_else(|| self.env.home_file(".postgresql/postgresql.crt"));
        let cert = match cert {
            Some(c) if certmode != "disable" && c.exists() => c,
            _ => {
                if certmode == "require" {
                    return Err(self.err(
                        "sslcertmode",
                        "sslcertmode=require but there is no client certificate (set sslcert \
                         to its file)",
                    ));
                }
                return Ok(None);
            }
        };
        let key = self
            .get("sslkey")
            .map(PathBuf::from)
            .or_else(|| self.env.home_file(".postgresql/postgresql.key"))
            .ok_or_else(|| {
                self.err(
                    "sslcert",
                    "could not get home directory to locate the client key file: set sslkey",
                )
            })?;
        let meta = std::fs::metadata(&key).map_err(|_| {
            self.err(
                "sslcert",
                format!(
                    "certificate present, but not private key file \"{}\" (set sslkey to \
                     the key of {})",
                    key.display(),
                    cert.display()
                ),
            )
        })?;
        use std::os::unix::fs::MetadataExt;
        // libpq: 0600 or less for a key of the user's own, 0640 or less for one root owns
        // (a key shared through a group, as Debian's ssl-cert group does).
        let mode = meta.mode() & 0o777;
        let allowed = if meta.uid() == 0 { 0o640 } else { 0o600 };
        if !meta.is_file() || mode & !allowed != 0 {
            return Err(self.err(
                "sslkey",
                format!(
                    "private key file \"{}\" has group or world access; file must have \
                     permissions u=rw (0600) or less if owned by the current user, or \
                     permissions u=rw,g=r (0640) or less if owned by root",
                    key.display()
                ),
            ));
        }
        Ok(Some(ClientCert {
            cert,
            key,
            key_password: self
                .settings
                .get("sslpassword")
                .filter(|s| !s.value.is_empty())
                .map(|s| Secret::from_bytes(s.value.clone().into_bytes())),
        }))
    }

    /// The servers to try: host, hostaddr and port lists matched up as libpq does, each with
    /// its password.
    /// `passfile`, else PGPASSFILE (already among the settings), else ~/.pgpass.
    fn passfile(&self) -> Option<PathBuf> {
        self.get("passfile")
            .map(PathBuf::from)
            .or_else(|| self.env.home_file(".pgpass"))
    }

    fn targets(&self, user: &str, dbname: &str, passfile: Option<&Path>) -> Result<Vec<Target>> {
        let split = |keyword: &str| -> Vec<String> {
            match self.settings.get(keyword) {
                Some(s) if !s.value.is_empty() => s.value.split(',').map(str::to_owned).collect(),
                _ => Vec::new(),
            }
        };
        let hosts = split("host");
        let addrs = split("hostaddr");
        let ports = split("port");
        if !hosts.is_empty() && !addrs.is_empty() && hosts.len() != addrs.len() {
            return Err(self.err(
                "hostaddr",
                format!(
                    "could not match {} host names to {} hostaddr values",
                    hosts.len(),
                    addrs.len()
                ),
            ));
        }
        let count = hosts.len().max(addrs.len()).max(1);
        if ports.len() > 1 && ports.len() != count {
            return Err(self.err(
                "port",
                format!(
                    "could not match {} port numbers to {count} hosts",
                    ports.len()
                ),
            ));
        }
        let password = self
            .settings
            .get("password")
            .filter(|s| !s.value.is_empty());
        let mut targets = Vec::with_capacity(count);
        for i in 0..count {
            let host = hosts.get(i).map(String::as_str).unwrap_or("");
            let addr_text = addrs.get(i).map(String::as_str).unwrap_or("");
            let port_text = match ports.len() {
                0 => "",
                1 => ports[0].as_str(),
                _ => ports[i].as_str(),
            };
            let port = keywords::port_number(port_text).map_err(|m| self.err("port", m))?;
            let hostaddr = match addr_text {
                "" => None,
                a => Some(a.parse::<IpAddr>().map_err(|_| {
                    self.err(
                        "hostaddr",
                        format!("could not parse network address \"{a}\""),
                    )
                })?),
            };
            // libpq: an address wins over the host (which is then only the name TLS and
            // the password file use), even over a socket directory.
            let host_kind = match host {
                _ if hostaddr.is_some() && (host.is_empty() || is_socket_path(host)) => None,
                "" => Some(Host::Unix(PathBuf::from(DEFAULT_SOCKET_DIR))),
                h if is_socket_path(h) => Some(Host::Unix(PathBuf::from(h))),
                h => Some(Host::Tcp(h.to_owned())),
            };
            let (password, password_from) = match password {
                Some(p) => (Some(Secret::from_bytes(p.value.clone().into_bytes())), None),
                None => {
                    // libpq: the host as written, else hostaddr, else the default socket.
                    let pw_host = if !host.is_empty() {
                        host
                    } else if !addr_text.is_empty() {
                        addr_text
                    } else {
                        DEFAULT_SOCKET_DIR
                    };
                    let wanted = pgpass::Wanted {
                        host: pw_host,
                        port: if port_text.is_empty() {
                            DEFAULT_PORT
                        } else {
                            port_text
                        },
                        dbname,
                        user,
                    };
                    match passfile.and_then(|f| pgpass::lookup(f, &wanted)) {
                        Some(found) => (Some(found.password), Some((found.file, found.line))),
                        None => (None, None),
                    }
                }
            };
            targets.push(Target {
                host: host_kind,
                hostaddr,
                port,
                password,
                password_from,
            });
        }
        Ok(targets)
    }
}

/// libpq's `is_unixsock_path()`: a directory, or a Linux abstract socket (`@name`).
fn is_socket_path(host: &str) -> bool {
    host.starts_with('/') || host.starts_with('@')
}

#[cfg(test)]
mod tests;
