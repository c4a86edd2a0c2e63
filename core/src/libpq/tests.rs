//! Resolution of whole connection strings: the order libpq applies its sources in, the
//! defaults, multi-host lists, the password file per host, TLS plans, and refusals.

use std::fs;
use std::os::unix::fs::PermissionsExt;

use super::*;

/// A home directory of its own (for ~/.pgpass, ~/.pg_service.conf, ~/.postgresql) and an
/// environment with no PG* variables, running as OS user "osuser".
struct Home {
    dir: tempfile::TempDir,
}

impl Home {
    fn new() -> Home {
        Home {
            dir: tempfile::tempdir().unwrap(),
        }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn env(&self) -> Environment {
        Environment::new(Some(self.dir.path().to_path_buf()), Some("osuser"))
            // No system service file unless a test writes one.
            .with_var("PGSYSCONFDIR", self.path("etc").to_str().unwrap())
    }

    fn write(&self, name: &str, text: &str, mode: u32) -> PathBuf {
        let path = self.path(name);
        fs::create_dir_all(path.parent().unwrap()).unwrap();
        fs::write(&path, text).unwrap();
        fs::set_permissions(&path, fs::Permissions::from_mode(mode)).unwrap();
        path
    }

    fn pgpass(&self, text: &str) -> PathBuf {
        self.write(".pgpass", text, 0o600)
    }
}

fn resolve_in(conninfo: &str, env: &Environment) -> Params {
    resolve(conninfo, "master_db", env, "walmgr")
        .unwrap_or_else(|e| panic!("{conninfo:?} does not resolve: {e}"))
}

fn error_in(conninfo: &str, env: &Environment) -> String {
    match resolve(conninfo, "master_db", env, "walmgr") {
        Ok(p) => panic!("{conninfo:?} resolves, to {p:?}"),
        Err(e) => e.to_string(),
    }
}

fn password_of(target: &Target) -> Option<String> {
    target
        .password
        .as_ref()
        .map(|s| String::from_utf8(s.expose().to_vec()).unwrap())
}

fn tcp(name: &str) -> Option<Host> {
    Some(Host::Tcp(name.to_string()))
}

#[test]
fn an_empty_conninfo_gets_libpqs_defaults() {
    let home = Home::new();
    let p = resolve_in("", &home.env());
    assert_eq!(p.targets.len(), 1);
    let t = &p.targets[0];
    assert_eq!(t.host, Some(Host::Unix(DEFAULT_SOCKET_DIR.into())));
    assert_eq!(
        (t.hostaddr, t.port, t.password.is_none()),
        (None, 5432, true)
    );
    assert_eq!((p.user.as_str(), p.dbname.as_str()), ("osuser", "osuser"));
    assert_eq!(p.application_name, "walmgr");
    assert_eq!(p.tls.mode, SslMode::Prefer);
    assert_eq!(p.tls.roots, None);
    assert_eq!(p.tls.client, None);
    assert_eq!(p.tls.min_version, "TLSv1.2");
    assert_eq!(p.connect_timeout, None);
    assert_eq!(p.target_session_attrs, "any");
    assert!(p.keepalives && p.tls.sni && !p.random_order);
}

#[test]
fn the_conninfo_wins_over_the_service_which_wins_over_the_environment() {
    let home = Home::new();
    home.write(
        ".pg_service.conf",
        "[master]\nhost=from-service\nport=6001\nuser=svcuser\n",
        0o644,
    );
    let env = home
        .env()
        .with_var("PGHOST", "from-env")
        .with_var("PGPORT", "7001")
        .with_var("PGUSER", "envuser")
        .with_var("PGDATABASE", "envdb");
    let p = resolve_in("service=master port=5999", &env);
    let t = &p.targets[0];
    assert_eq!((t.host.clone(), t.port), (tcp("from-service"), 5999));
    assert_eq!(p.user, "svcuser");
    assert_eq!(p.dbname, "envdb");
    assert_eq!(
        p.service,
        Some(("master".into(), home.path(".pg_service.conf")))
    );
    // Without the service, the environment fills in.
    let p = resolve_in("port=5999", &env);
    assert_eq!(p.targets[0].host, tcp("from-env"));
    assert_eq!(p.user, "envuser");
    // A later duplicate in the conninfo wins.
    assert_eq!(resolve_in("port=1 port=2", &env).targets[0].port, 2);
}

#[test]
fn pgservice_names_the_service_when_the_conninfo_does_not() {
    let home = Home::new();
    home.write("etc/pg_service.conf", "[sys]\nhost=system-host\n", 0o644);
    let env = home.env().with_var("PGSERVICE", "sys");
    assert_eq!(resolve_in("", &env).targets[0].host, tcp("system-host"));
    // service= in the conninfo overrides PGSERVICE.
    home.write(".pg_service.conf", "[mine]\nhost=my-host\n", 0o600);
    assert_eq!(
        resolve_in("service=mine", &env).targets[0].host,
        tcp("my-host")
    );
}

#[test]
fn the_service_file_comes_from_servicefile_pgservicefile_or_home() {
    let home = Home::new();
    home.write(".pg_service.conf", "[s]\nhost=home\n", 0o600);
    let other = home.write("other.conf", "[s]\nhost=other\n", 0o600);
    let third = home.write("third.conf", "[s]\nhost=third\n", 0o600);
    let env = home.env();
    assert_eq!(resolve_in("service=s", &env).targets[0].host, tcp("home"));
    let env = env.with_var("PGSERVICEFILE", other.to_str().unwrap());
    assert_eq!(resolve_in("service=s", &env).targets[0].host, tcp("other"));
    let conninfo = format!("service=s servicefile={}", third.display());
    assert_eq!(resolve_in(&conninfo, &env).targets[0].host, tcp("third"));
}

#[test]
fn the_system_service_file_is_read_only_when_the_users_lacks_the_service() {
    let home = Home::new();
    home.write(".pg_service.conf", "[a]\nhost=user-a\n", 0o600);
    home.write(
        "etc/pg_service.conf",
        "[a]\nhost=sys-a\nport=1111\n[b]\nhost=sys-b\n",
        0o644,
    );
    let p = resolve_in("service=a", &home.env());
    // Not merged: the user's section replaces the system's whole.
    assert_eq!(
        (p.targets[0].host.clone(), p.targets[0].port),
        (tcp("user-a"), 5432)
    );
    assert_eq!(
        resolve_in("service=b", &home.env()).targets[0].host,
        tcp("sys-b")
    );
    let err = error_in("service=c", &home.env());
    assert!(
        err.contains("definition of service \"c\" not found"),
        "{err}"
    );
}

#[test]
fn errors_in_a_service_file_name_its_line() {
    let home = Home::new();
    home.write(
        ".pg_service.conf",
        "[s]\nhost=h\nsslmode=verify_full\n",
        0o600,
    );
    let err = error_in("service=s", &home.env());
    let file = home.path(".pg_service.conf");
    assert!(
        err.starts_with(&format!("{}:3: invalid sslmode value", file.display())),
        "{err}"
    );
    home.write(".pg_service.conf", "[s]\nhots=h\n", 0o600);
    let err = error_in("service=s", &home.env());
    assert!(err.contains(".pg_service.conf:2: "), "{err}");
}

#[test]
fn errors_name_the_environment_variable_that_set_the_value() {
    let home = Home::new();
    let env = home.env().with_var("PGSSLMODE", "verify-fool");
    let err = error_in("host=h", &env);
    assert!(
        err.starts_with("PGSSLMODE: invalid sslmode value: \"verify-fool\""),
        "{err}"
    );
    let env = home.env().with_var("PGPORT", "x");
    assert!(error_in("", &env).starts_with("PGPORT: "));
    let err = error_in("sslmode=nope", &home.env());
    assert!(err.starts_with("master_db: invalid sslmode value"), "{err}");
}

#[test]
fn unknown_keywords_are_refused_without_showing_values() {
    let home = Home::new();
    let err = error_in("host=h pasword=s3cret", &home.env());
    assert_eq!(err, "master_db: invalid connection option \"pasword\"");
    let err = error_in("host=h s3cret", &home.env());
    assert!(!err.contains("s3cret"), "{err}");
}

#[test]
fn the_password_comes_from_the_conninfo_pgpassword_or_the_password_file() {
    let home = Home::new();
    home.pgpass("h:5432:db:u:from-file\n");
    let env = home.env();
    let p = resolve_in("host=h dbname=db user=u", &env);
    assert_eq!(password_of(&p.targets[0]).as_deref(), Some("from-file"));
    assert_eq!(p.targets[0].password_from, Some((home.path(".pgpass"), 1)));
    let env_pw = env.clone().with_var("PGPASSWORD", "from-env");
    let p = resolve_in("host=h dbname=db user=u", &env_pw);
    assert_eq!(password_of(&p.targets[0]).as_deref(), Some("from-env"));
    assert_eq!(p.targets[0].password_from, None);
    let p = resolve_in("host=h dbname=db user=u password=inline", &env_pw);
    assert_eq!(password_of(&p.targets[0]).as_deref(), Some("inline"));
    // An empty password means "none given": the file is read, as libpq does.
    let p = resolve_in("host=h dbname=db user=u password=''", &env);
    assert_eq!(password_of(&p.targets[0]).as_deref(), Some("from-file"));
    // Debug output never shows it.
    let debug = format!("{p:?}");
    assert!(!debug.contains("from-file"), "{debug}");
}

#[test]
fn the_password_file_is_matched_against_the_resolved_defaults() {
    let home = Home::new();
    home.pgpass(
        "localhost:5432:osuser:osuser:default-socket\n\
         /tmp/sock:6000:postgres:postgres:custom-socket\n\
         10.0.0.1:5432:postgres:postgres:by-address\n",
    );
    let env = home.env();
    // No host, no port, no user, no dbname: localhost, 5432, the OS user, dbname = user.
    assert_eq!(
        password_of(&resolve_in("", &env).targets[0]).as_deref(),
        Some("default-socket")
    );
    let explicit = format!("host={DEFAULT_SOCKET_DIR}");
    assert_eq!(
        password_of(&resolve_in(&explicit, &env).targets[0]).as_deref(),
        Some("default-socket")
    );
    let p = resolve_in(
        "host=/tmp/sock port=6000 user=postgres dbname=postgres",
        &env,
    );
    assert_eq!(password_of(&p.targets[0]).as_deref(), Some("custom-socket"));
    // Only hostaddr: the password file is searched by the address.
    let p = resolve_in("hostaddr=10.0.0.1 user=postgres dbname=postgres", &env);
    assert_eq!(p.targets[0].host, None);
    assert_eq!(password_of(&p.targets[0]).as_deref(), Some("by-address"));
    // host and hostaddr: by the host name.
    let p = resolve_in(
        "host=db.example hostaddr=10.0.0.1 user=postgres dbname=postgres",
        &env,
    );
    assert_eq!(password_of(&p.targets[0]), None);
}

#[test]
fn passfile_and_pgpassfile_replace_the_home_password_file() {
    let home = Home::new();
    home.pgpass("*:*:*:*:home\n");
    let elsewhere = home.write("secrets/pass", "*:*:*:*:elsewhere\n", 0o600);
    let third = home.write("secrets/third", "*:*:*:*:third\n", 0o600);
    let env = home
        .env()
        .with_var("PGPASSFILE", elsewhere.to_str().unwrap());
    assert_eq!(
        password_of(&resolve_in("", &env).targets[0]).as_deref(),
        Some("elsewhere")
    );
    let conninfo = format!("passfile={}", third.display());
    assert_eq!(
        password_of(&resolve_in(&conninfo, &env).targets[0]).as_deref(),
        Some("third")
    );
    // A password file others may read is ignored, not an error.
    fs::set_permissions(&third, fs::Permissions::from_mode(0o644)).unwrap();
    assert_eq!(password_of(&resolve_in(&conninfo, &env).targets[0]), None);
}

#[test]
fn each_host_of_a_list_gets_its_port_and_its_own_password() {
    let home = Home::new();
    home.pgpass("a:5432:db:u:pw-a\nb:6000:db:u:pw-b\n");
    let p = resolve_in("host=a,b port=5432,6000 dbname=db user=u", &home.env());
    let got: Vec<_> = p
        .targets
        .iter()
        .map(|t| (t.host.clone(), t.port, password_of(t)))
        .collect();
    assert_eq!(
        got,
        [
            (tcp("a"), 5432, Some("pw-a".to_string())),
            (tcp("b"), 6000, Some("pw-b".to_string())),
        ]
    );
    // One port for every host; an empty entry is 5432.
    let p = resolve_in("host=a,b,/sock port=7000", &home.env());
    assert!(p.targets.iter().all(|t| t.port == 7000));
    assert_eq!(p.targets[2].host, Some(Host::Unix("/sock".into())));
    let p = resolve_in("host=a,b port=,7000", &home.env());
    assert_eq!((p.targets[0].port, p.targets[1].port), (5432, 7000));
    // A URI's host list is the same thing.
    let p = resolve_in("postgresql://a:1,b:2/db", &home.env());
    assert_eq!(
        (p.targets[1].host.clone(), p.targets[1].port),
        (tcp("b"), 2)
    );
    let err = error_in("host=a,b,c port=1,2", &home.env());
    assert!(
        err.contains("could not match 2 port numbers to 3 hosts"),
        "{err}"
    );
    let err = error_in("host=a,b hostaddr=10.0.0.1", &home.env());
    assert!(
        err.contains("could not match 2 host names to 1 hostaddr values"),
        "{err}"
    );
    let err = error_in("hostaddr=not-an-ip", &home.env());
    assert!(err.contains("could not parse network address"), "{err}");
    assert!(error_in("port=0", &home.env()).contains("invalid port number"));
}

#[test]
fn sslmode_verify_modes_need_a_root_certificate() {
    let home = Home::new();
    let env = home.env();
    let err = error_in("host=h sslmode=verify-full", &env);
    assert!(err.contains("root certificate file"), "{err}");
    assert!(
        err.contains(".postgresql/root.crt\" does not exist"),
        "{err}"
    );
    let err = error_in("host=h sslmode=verify-ca sslrootcert=/no/such/ca.pem", &env);
    assert!(err.contains("\"/no/such/ca.pem\" does not exist"), "{err}");
    let ca = home.write("ca.pem", "PEM", 0o644);
    let p = resolve_in(
        &format!("host=h sslmode=verify-full sslrootcert={}", ca.display()),
        &env,
    );
    assert_eq!(p.tls.mode, SslMode::VerifyFull);
    assert_eq!(p.tls.roots, Some(RootCerts::File(ca.clone())));
    assert!(p.tls.verify_host);
    let p = resolve_in(
        &format!("host=h sslmode=verify-ca sslrootcert={}", ca.display()),
        &env,
    );
    assert!(!p.tls.verify_host);
    // The default root.crt is used when present.
    let default = home.write(".postgresql/root.crt", "PEM", 0o644);
    let p = resolve_in("host=h sslmode=verify-full", &env);
    assert_eq!(p.tls.roots, Some(RootCerts::File(default)));
}

#[test]
fn require_and_prefer_check_the_chain_only_when_a_root_file_exists() {
    let home = Home::new();
    let env = home.env();
    for mode in ["allow", "prefer", "require"] {
        let p = resolve_in(&format!("host=h sslmode={mode}"), &env);
        assert_eq!(
            (p.tls.roots.clone(), p.tls.verify_host),
            (None, false),
            "{mode}"
        );
    }
    // libpq's legacy rule: with a root certificate file, require checks the chain (not the
    // host name).
    let ca = home.write(".postgresql/root.crt", "PEM", 0o644);
    let p = resolve_in("host=h sslmode=require", &env);
    assert_eq!(
        (p.tls.roots, p.tls.verify_host),
        (Some(RootCerts::File(ca)), false)
    );
    let p = resolve_in("host=h sslmode=disable", &env);
    assert_eq!(p.tls.roots, None);
}

#[test]
fn sslrootcert_system_means_verify_full() {
    let home = Home::new();
    let p = resolve_in("host=h sslrootcert=system", &home.env());
    assert_eq!(
        (p.tls.mode, p.tls.roots),
        (SslMode::VerifyFull, Some(RootCerts::System))
    );
    let err = error_in("host=h sslrootcert=system sslmode=require", &home.env());
    assert!(
        err.contains("weak sslmode \"require\" may not be used with sslrootcert=system"),
        "{err}"
    );
}

#[test]
fn verify_full_needs_a_host_name_to_check() {
    let home = Home::new();
    let ca = home.write("ca.pem", "PEM", 0o644);
    let err = error_in(
        &format!(
            "hostaddr=127.0.0.1 sslmode=verify-full sslrootcert={}",
            ca.display()
        ),
        &home.env(),
    );
    assert!(err.contains("host name must be specified"), "{err}");
    resolve_in(
        &format!(
            "host=db.example hostaddr=127.0.0.1 sslmode=verify-full sslrootcert={}",
            ca.display()
        ),
        &home.env(),
    );
}

#[test]
fn a_client_certificate_is_used_when_present_and_its_key_must_be_private() {
    let home = Home::new();
    let env = home.env();
    assert_eq!(resolve_in("host=h", &env).tls.client, None);
    let cert = home.write(".postgresql/postgresql.crt", "PEM", 0o644);
    let err = error_in("host=h", &env);
    assert!(
        err.contains("certificate present, but not private key file"),
        "{err}"
    );
    // World-readable is refused whoever owns it (0640 is allowed for a key root owns).
    let key = home.write(".postgresql/postgresql.key", "KEY", 0o644);
    let err = error_in("host=h", &env);
    assert!(err.contains("has group or world access"), "{err}");
    fs::set_permissions(&key, fs::Permissions::from_mode(0o600)).unwrap();
    let client = resolve_in("host=h", &env).tls.client.unwrap();
    assert_eq!((client.cert, client.key), (cert, key));
    // sslmode=disable loads nothing; sslcertmode=disable neither.
    assert_eq!(resolve_in("host=h sslmode=disable", &env).tls.client, None);
    assert_eq!(
        resolve_in("host=h sslcertmode=disable", &env).tls.client,
        None
    );
    // Explicit files, a passphrase that never shows.
    let c2 = home.write("c2.crt", "PEM", 0o644);
    let k2 = home.write("c2.key", "KEY", 0o400);
    let p = resolve_in(
        &format!(
            "host=h sslcert={} sslkey={} sslpassword=s3cret",
            c2.display(),
            k2.display()
        ),
        &env,
    );
    let client = p.tls.client.clone().unwrap();
    assert_eq!((client.cert, client.key), (c2, k2));
    assert!(!format!("{p:?}").contains("s3cret"));
    let empty = Home::new();
    let err = error_in("host=h sslcertmode=require", &empty.env());
    assert!(err.contains("sslcertmode=require"), "{err}");
}

#[test]
fn connect_timeout_follows_libpq() {
    let home = Home::new();
    let timeout = |c: &str| resolve_in(c, &home.env()).connect_timeout;
    assert_eq!(timeout("connect_timeout=10"), Some(Duration::from_secs(10)));
    // 1 s is raised to 2; 0 and negative values wait for ever.
    assert_eq!(timeout("connect_timeout=1"), Some(Duration::from_secs(2)));
    assert_eq!(timeout("connect_timeout=0"), None);
    assert_eq!(timeout("connect_timeout=-5"), None);
    let env = home.env().with_var("PGCONNECT_TIMEOUT", "7");
    assert_eq!(
        resolve_in("", &env).connect_timeout,
        Some(Duration::from_secs(7))
    );
    assert!(error_in("connect_timeout=ten", &home.env()).contains("invalid integer value"));
}

#[test]
fn application_name_comes_from_the_conninfo_pgappname_or_the_fallback() {
    let home = Home::new();
    assert_eq!(
        resolve_in("application_name=mine", &home.env()).application_name,
        "mine"
    );
    let env = home.env().with_var("PGAPPNAME", "from-env");
    assert_eq!(resolve_in("", &env).application_name, "from-env");
    assert_eq!(
        resolve_in("fallback_application_name=fb", &home.env()).application_name,
        "fb"
    );
}

#[test]
fn what_walmgr_cannot_honour_is_refused_not_ignored() {
    let home = Home::new();
    for (conninfo, says) in [
        ("requirepeer=postgres", "cannot honour requirepeer"),
        ("require_auth=scram-sha-256", "cannot honour require_auth"),
        ("gssencmode=require", "GSSAPI"),
        ("replication=true", "replication connections"),
        ("target_session_attrs=standby", "target_session_attrs"),
        ("oauth_issuer=https://x", "OAuth"),
        ("min_protocol_version=3.2", "protocol 3.0 only"),
        ("sslnegotiation=direct", "weak sslmode \"prefer\""),
    ] {
        let err = error_in(conninfo, &home.env());
        assert!(err.contains(says), "{conninfo}: {err}");
    }
    // What only loosens or does not apply is accepted.
    for conninfo in [
        "gssencmode=prefer",
        "gssencmode=disable",
        "krbsrvname=postgres",
        "sslcompression=0",
        "replication=false",
        "client_encoding=UTF8",
        "target_session_attrs=read-write",
        "sslnegotiation=direct sslmode=require",
    ] {
        resolve_in(conninfo, &home.env());
    }
}

#[test]
fn primary_conninfo_is_validated_without_being_resolved() {
    for ok in [
        "host=master port=5433 user=rep application_name=s1 sslmode=verify-full",
        "postgresql://rep@master/postgres?sslmode=require",
        "service=primary",
        "",
    ] {
        assert_eq!(validate(ok), Ok(()), "{ok}");
    }
    for (bad, says) in [
        ("host=m sslmode=verify", "invalid sslmode value"),
        ("host=m hots=x", "invalid connection option \"hots\""),
        ("host=m port=x", "invalid port number"),
        ("host=m connect_timeout=5s", "invalid integer value"),
        ("host=m password='open", "unterminated"),
    ] {
        let err = validate(bad).unwrap_err();
        assert!(err.contains(says), "{bad}: {err}");
    }
}

#[test]
fn targets_are_named_as_libpq_names_them() {
    let t = |host: Option<Host>, addr: Option<&str>| Target {
        host,
        hostaddr: addr.map(|a| a.parse().unwrap()),
        port: 5433,
        password: None,
        password_from: None,
    };
    assert_eq!(
        t(Some(Host::Unix("/tmp".into())), None).to_string(),
        "socket \"/tmp/.s.PGSQL.5433\""
    );
    assert_eq!(t(tcp("m"), None).to_string(), "server at \"m\", port 5433");
    assert_eq!(
        t(tcp("m"), Some("10.0.0.1")).to_string(),
        "server at \"m\" (10.0.0.1), port 5433"
    );
    assert_eq!(t(None, Some("::1")).to_string(), "server at ::1, port 5433");
}

#[test]
fn certificate_files_are_not_looked_for_on_a_unix_socket() {
    // libpq never starts TLS over a socket, so it never misses a root certificate there.
    let home = Home::new();
    let env = home.env().with_var("PGSSLMODE", "verify-full");
    let p = resolve_in("host=/tmp port=5433", &env);
    assert_eq!((p.tls.mode, p.tls.roots), (SslMode::VerifyFull, None));
    assert!(error_in("host=db.example", &env).contains("root certificate file"));
    // A wrong value is still wrong, wherever it would be used.
    assert!(error_in("host=/tmp sslmode=nope", &home.env()).contains("invalid sslmode"));
}

#[test]
fn hostaddr_wins_over_a_socket_directory_as_in_libpq() {
    let home = Home::new();
    home.pgpass("/tmp:5432:db:u:by-host-text\n");
    let p = resolve_in("host=/tmp hostaddr=127.0.0.1 dbname=db user=u", &home.env());
    let t = &p.targets[0];
    assert_eq!(
        (t.host.clone(), t.hostaddr),
        (None, Some("127.0.0.1".parse().unwrap()))
    );
    // The password file still matches the host as written.
    assert_eq!(password_of(t).as_deref(), Some("by-host-text"));
    assert_eq!(
        resolve_in("host=@abstract", &home.env()).targets[0].host,
        Some(Host::Unix("@abstract".into()))
    );
}
