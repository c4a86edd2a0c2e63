//! libpq's conventions on walmgr's own connections, against real servers: a master that
//! accepts only TLS (`hostssl`) with a certificate from a CA made here, and one that asks
//! for a scram-sha-256 password that only a password file or a service holds. Every server
//! listens on 127.0.0.1 (a free high port) besides its private socket, which stays `trust`
//! for the harness.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Output;

use walmgr_tests::shipping::{path, Shipping};
use walmgr_tests::{chown_to_postgres, Pg, TestCommand};

/// The walmgr Cargo built for this test run.
const WALMGR: &str = env!("CARGO_BIN_EXE_walmgr");

/// The master's password; never to appear in anything walmgr prints.
const PASSWORD: &str = "Tr0ub4dor-pgpass";

/// A master set up for archiving through walmgr, then reconfigured the way a DBA locks a
/// server down: TCP on 127.0.0.1 with `hba` (pg_hba.conf lines for it), `conf` appended to
/// postgresql.conf, restarted. Local socket connections stay `trust`.
/// `before_restart` adds what the new settings need (certificate files).
fn locked_down_master(
    label: &str,
    hba: &str,
    conf: &str,
    before_restart: impl FnOnce(&Shipping),
) -> Shipping {
    let s = Shipping::new(WALMGR, &Pg::major(15), label, &["--wal-segsize=1"]);
    s.setup();
    s.master.set(&format!(
        "listen_addresses = '127.0.0.1'\nlog_connections = on\n{conf}"
    ));
    let hba_file = s.master.data.join("pg_hba.conf");
    fs::write(&hba_file, format!("local all all trust\n{hba}\n")).unwrap();
    before_restart(&s);
    s.master.restart();
    s
}

/// Points master_db at `conninfo`.
fn set_master_db(s: &Shipping, conninfo: &str) {
    let text = fs::read_to_string(&s.master_config).unwrap();
    let start = text
        .find("master_db = ")
        .expect("master.toml has master_db");
    let end = start + text[start..].find('\n').unwrap();
    let text = format!(
        "{}master_db = \"{}\"{}",
        &text[..start],
        conninfo.replace('\\', "\\\\").replace('"', "\\\""),
        &text[end..]
    );
    fs::write(&s.master_config, text).unwrap();
}

/// `walmgr master.toml ARGS` as postgres, with `env`.
fn walmgr(s: &Shipping, args: &[&str], env: &[(&str, &Path)]) -> TestCommand {
    let mut command = s
        .walmgr()
        .arg(path(&s.master_config))
        .args(args)
        .as_postgres();
    for (key, value) in env {
        command = command.env(key, value);
    }
    command
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn failed(out: &Output) -> String {
    assert!(
        !out.status.success(),
        "expected a failure, got success: {}",
        String::from_utf8_lossy(&out.stdout)
    );
    let err = stderr(out);
    // Shown with --nocapture: what a DBA reads.
    eprintln!("walmgr said: {err}");
    err
}

fn openssl(dir: &Path, args: &[&str]) {
    let out = TestCommand::new("openssl").args(args).run();
    assert!(
        out.status.success(),
        "openssl {args:?} in {}: {}",
        dir.display(),
        stderr(&out)
    );
}

/// A CA (`NAME.crt`, `NAME.key`) in `dir`.
fn make_ca(dir: &Path, name: &str) -> PathBuf {
    let crt = dir.join(format!("{name}.crt"));
    let key = dir.join(format!("{name}.key"));
    openssl(
        dir,
        &[
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-days",
            "2",
            "-subj",
            &format!("/CN=walmgr test {name}"),
            "-addext",
            "basicConstraints=critical,CA:TRUE",
            "-addext",
            "keyUsage=critical,keyCertSign,cRLSign",
            "-keyout",
            key.to_str().unwrap(),
            "-out",
            crt.to_str().unwrap(),
        ],
    );
    chown_to_postgres(&crt);
    crt
}

/// A certificate for `cn` (with `san`, e.g. "DNS:localhost", if given) signed by the CA
/// `ca` made by [`make_ca`]: `key` and `crt` written, owned by postgres, mode 0600.
fn issue_cert(ca: &Path, cn: &str, san: Option<&str>, key: &Path, crt: &Path) {
    let dir = ca.parent().unwrap();
    let ca_key = ca.with_extension("key");
    let csr = crt.with_extension("csr");
    let ext = crt.with_extension("ext");
    fs::write(
        &ext,
        san.map(|s| format!("subjectAltName={s}\n"))
            .unwrap_or_default(),
    )
    .unwrap();
    openssl(
        dir,
        &[
            "req",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-subj",
            &format!("/CN={cn}"),
            "-keyout",
            key.to_str().unwrap(),
            "-out",
            csr.to_str().unwrap(),
        ],
    );
    openssl(
        dir,
        &[
            "x509",
            "-req",
            "-in",
            csr.to_str().unwrap(),
            "-CA",
            ca.to_str().unwrap(),
            "-CAkey",
            ca_key.to_str().unwrap(),
            "-CAcreateserial",
            "-days",
            "2",
            "-extfile",
            ext.to_str().unwrap(),
            "-out",
            crt.to_str().unwrap(),
        ],
    );
    for file in [key, crt] {
        chown_to_postgres(file);
        fs::set_permissions(file, fs::Permissions::from_mode(0o600)).unwrap();
    }
}

/// A server certificate for DNS name `host` from `ca`, installed in the master's data
/// directory as server.crt / server.key.
fn install_server_cert(s: &Shipping, ca: &Path, host: &str) {
    issue_cert(
        ca,
        host,
        Some(&format!("DNS:{host}")),
        &s.master.data.join("server.key"),
        &s.master.data.join("server.crt"),
    );
}

/// A master that accepts TCP connections only over TLS (`hostssl`), with a certificate
/// for "localhost" from a CA made for the test: verify-full with that CA connects; another
/// CA, another host name, or no TLS at all is refused with a message that says which.
#[test]
fn master_db_with_sslmode_verify_full_checks_the_ca_and_the_host_name() {
    let mut cas = None;
    let s = locked_down_master(
        "tls",
        "hostssl all all 127.0.0.1/32 trust",
        "ssl = on\nssl_cert_file = 'server.crt'\nssl_key_file = 'server.key'",
        |s| {
            let certs = s.dir.mkdir("certs");
            let ca = make_ca(&certs, "ca");
            install_server_cert(s, &ca, "localhost");
            cas = Some((ca, make_ca(&certs, "other-ca"), certs));
        },
    );
    let (ca, other_ca, certs) = cas.unwrap();
    let port = s.master.port;
    let tcp = |extra: &str| {
        format!(
            "host=localhost hostaddr=127.0.0.1 port={port} user=postgres dbname=postgres {extra}"
        )
    };

    // The right CA and host name: connected, and over TLS.
    set_master_db(
        &s,
        &tcp(&format!("sslmode=verify-full sslrootcert={}", ca.display())),
    );
    let out = walmgr(&s, &["status", "--json"], &[]).ok();
    assert!(out.contains("\"role\":\"master\""), "{out}");
    let log = fs::read_to_string(&s.master.log).unwrap();
    assert!(
        log.lines()
            .any(|l| l.contains("application_name=walmgr") && l.contains("SSL enabled")),
        "no TLS connection from walmgr in the server log:\n{log}"
    );

    // A CA that did not sign the server's certificate.
    set_master_db(
        &s,
        &tcp(&format!(
            "sslmode=verify-full sslrootcert={}",
            other_ca.display()
        )),
    );
    let err = failed(&walmgr(&s, &["status"], &[]).run());
    assert!(err.contains("certificate verify failed"), "{err}");
    assert!(
        err.contains(&format!("not signed by the CA in {}", other_ca.display())),
        "{err}"
    );
    // verify-ca checks the chain as well.
    set_master_db(
        &s,
        &tcp(&format!(
            "sslmode=verify-ca sslrootcert={}",
            other_ca.display()
        )),
    );
    let err = failed(&walmgr(&s, &["status"], &[]).run());
    assert!(err.contains("certificate verify failed"), "{err}");

    // The right CA, but the certificate does not name the host connected to.
    set_master_db(
        &s,
        &format!(
            "host=wrong.example hostaddr=127.0.0.1 port={port} user=postgres dbname=postgres \
             sslmode=verify-full sslrootcert={}",
            ca.display()
        ),
    );
    let err = failed(&walmgr(&s, &["status"], &[]).run());
    assert!(err.contains("certificate verify failed"), "{err}");
    assert!(err.to_lowercase().contains("hostname mismatch"), "{err}");
    assert!(
        err.contains("does not name the host \"wrong.example\""),
        "{err}"
    );
    // ... which verify-ca does not check.
    set_master_db(
        &s,
        &format!(
            "host=wrong.example hostaddr=127.0.0.1 port={port} user=postgres dbname=postgres \
             sslmode=verify-ca sslrootcert={}",
            ca.display()
        ),
    );
    walmgr(&s, &["status"], &[]).ok();

    // Without TLS the server refuses: pg_hba.conf has no line for it.
    set_master_db(&s, &tcp("sslmode=disable"));
    let err = failed(&walmgr(&s, &["status"], &[]).run());
    assert!(err.contains("no encryption"), "{err}");

    // libpq's default, prefer, encrypts without checking; so does PGSSLMODE=require.
    set_master_db(&s, &tcp(""));
    walmgr(&s, &["status"], &[]).ok();
    let out = walmgr(&s, &["status"], &[])
        .env("PGSSLMODE", "disable")
        .run();
    assert!(failed(&out).contains("no encryption"));
    // A root certificate named by PGSSLROOTCERT with PGSSLMODE=verify-full is checked too.
    let out = walmgr(&s, &["status"], &[])
        .env("PGSSLMODE", "verify-full")
        .env("PGSSLROOTCERT", &other_ca)
        .run();
    assert!(failed(&out).contains("certificate verify failed"));

    // A revocation list from the CA: one that revokes nothing changes nothing; once the
    // server's certificate is on it, the server is refused.
    let crl = certs.join("ca.crl");
    let verify_with_crl = format!(
        "sslmode=verify-full sslrootcert={} sslcrl={}",
        ca.display(),
        crl.display()
    );
    set_master_db(&s, &tcp(&verify_with_crl));
    certificate_authority(&certs, &["-gencrl", "-out", crl.to_str().unwrap()]);
    walmgr(&s, &["status"], &[]).ok();
    let server_crt = s.master.data.join("server.crt");
    certificate_authority(&certs, &["-revoke", server_crt.to_str().unwrap()]);
    certificate_authority(&certs, &["-gencrl", "-out", crl.to_str().unwrap()]);
    let err = failed(&walmgr(&s, &["status"], &[]).run());
    assert!(err.contains("certificate revoked"), "{err}");
    assert!(
        err.contains(&format!("revoked by sslcrl {}", crl.display())),
        "{err}"
    );
}

/// `openssl ca` for the CA `certs/ca.crt` with `args` (revoke a certificate, write the
/// revocation list), with the least configuration it needs.
fn certificate_authority(certs: &Path, args: &[&str]) {
    let config = certs.join("ca.cnf");
    if !config.exists() {
        fs::write(certs.join("index.txt"), "").unwrap();
        fs::write(certs.join("crlnumber"), "1000\n").unwrap();
        fs::write(
            &config,
            format!(
                "[ca]\ndefault_ca = test\n[test]\ndatabase = {dir}/index.txt\n\
                 crlnumber = {dir}/crlnumber\ndefault_md = sha256\ndefault_crl_days = 2\n",
                dir = certs.display()
            ),
        )
        .unwrap();
    }
    let mut all = vec![
        "ca".to_string(),
        "-config".to_string(),
        config.display().to_string(),
        "-keyfile".to_string(),
        certs.join("ca.key").display().to_string(),
        "-cert".to_string(),
        certs.join("ca.crt").display().to_string(),
    ];
    all.extend(args.iter().map(|a| a.to_string()));
    let all: Vec<&str> = all.iter().map(String::as_str).collect();
    openssl(certs, &all);
    for file in fs::read_dir(certs).unwrap() {
        chown_to_postgres(&file.unwrap().path());
    }
}

/// The master asks for a scram-sha-256 password over TCP; master_db names none. With the
/// password in a private password file named by PGPASSFILE, backup works; the password is
/// never printed; a file others may read is ignored with libpq's warning; a wrong password
/// says where it came from.
#[test]
fn backup_with_the_master_password_only_in_a_password_file() {
    let s = locked_down_master(
        "pgpass",
        "host all all 127.0.0.1/32 scram-sha-256",
        "",
        |_| {},
    );
    s.master.execute(&format!(
        "SET password_encryption = 'scram-sha-256'; ALTER ROLE postgres PASSWORD '{PASSWORD}'"
    ));
    let port = s.master.port;
    set_master_db(
        &s,
        &format!("host=127.0.0.1 port={port} user=postgres dbname=postgres"),
    );
    let pgpass = s.dir.write(
        "secrets/pgpass",
        format!("# the master\n127.0.0.1:{port}:postgres:postgres:{PASSWORD}\n"),
    );
    fs::set_permissions(&pgpass, fs::Permissions::from_mode(0o600)).unwrap();
    let env = [("PGPASSFILE", pgpass.as_path())];

    // Without the file, the server's question goes unanswered.
    let err = failed(&walmgr(&s, &["status"], &[]).run());
    assert!(err.contains("password"), "{err}");

    let out = walmgr(&s, &["-v", "backup"], &env).ok_output();
    let all = format!("{}{}", String::from_utf8_lossy(&out.stdout), stderr(&out));
    assert!(all.contains("backup from the master done"), "{all}");
    assert!(!all.contains(PASSWORD), "the password was printed:\n{all}");
    let log = fs::read_to_string(&s.master.log).unwrap();
    assert!(
        log.contains("method=scram-sha-256"),
        "walmgr did not authenticate with scram-sha-256:\n{log}"
    );

    // A password file others may read is ignored, as libpq ignores it, with its warning.
    fs::set_permissions(&pgpass, fs::Permissions::from_mode(0o644)).unwrap();
    let err = failed(&walmgr(&s, &["status"], &env).run());
    assert!(
        err.contains("has group or world access") && err.contains(&pgpass.display().to_string()),
        "{err}"
    );
    fs::set_permissions(&pgpass, fs::Permissions::from_mode(0o600)).unwrap();

    // A wrong password: the server's refusal, and which line of which file it came from.
    fs::write(
        &pgpass,
        format!("# the master\n127.0.0.1:{port}:postgres:postgres:wrong-{PASSWORD}\n"),
    )
    .unwrap();
    let err = failed(&walmgr(&s, &["status"], &env).run());
    assert!(err.contains("password authentication failed"), "{err}");
    assert!(
        err.contains(&format!(
            "password retrieved from file \"{}\" line 2",
            pgpass.display()
        )),
        "{err}"
    );
    assert!(!err.contains(PASSWORD), "{err}");
}

/// master_db = "service=NAME": host, port, user and database come from a service file (the
/// one PGSERVICEFILE names), the password from the password file; a setting of the
/// connection string wins over the service's, and a broken service file is reported with
/// its line.
#[test]
fn master_db_names_a_service_from_the_service_file() {
    let s = locked_down_master(
        "service",
        "host all all 127.0.0.1/32 scram-sha-256",
        "",
        |_| {},
    );
    s.master.execute(&format!(
        "SET password_encryption = 'scram-sha-256'; ALTER ROLE postgres PASSWORD '{PASSWORD}'"
    ));
    let port = s.master.port;
    let services = s.dir.write(
        "conf/pg_service.conf",
        format!(
            "# services of this test\n\
             [elsewhere]\nhost=127.0.0.2\n\n\
             [walmgr_master]\nhost=127.0.0.1\nport={port}\nuser=postgres\ndbname=postgres\n\
             connect_timeout=10\n"
        ),
    );
    let pgpass = s.dir.write(
        "secrets/pgpass",
        format!("127.0.0.1:{port}:*:postgres:{PASSWORD}\n"),
    );
    fs::set_permissions(&pgpass, fs::Permissions::from_mode(0o600)).unwrap();
    let env = [
        ("PGSERVICEFILE", services.as_path()),
        ("PGPASSFILE", pgpass.as_path()),
    ];
    set_master_db(&s, "service=walmgr_master");
    let out = walmgr(&s, &["status", "--json"], &env).ok();
    assert!(out.contains("\"role\":\"master\""), "{out}");

    // The connection string's port wins over the service's: nothing listens on port 1.
    set_master_db(&s, "service=walmgr_master port=1");
    let err = failed(&walmgr(&s, &["status"], &env).run());
    assert!(err.contains("server at \"127.0.0.1\", port 1"), "{err}");

    // PGSERVICE names the service when master_db does not; PGHOST loses to the service.
    set_master_db(&s, "dbname=postgres");
    let out = walmgr(&s, &["status"], &env)
        .env("PGSERVICE", "walmgr_master")
        .env("PGHOST", "/nonexistent")
        .run();
    assert!(out.status.success(), "{}", stderr(&out));

    // An unknown service, and a broken line, are errors that say where to look.
    set_master_db(&s, "service=nosuch");
    let err = failed(&walmgr(&s, &["status"], &env).run());
    assert!(
        err.contains("definition of service \"nosuch\" not found"),
        "{err}"
    );
    fs::write(
        &services,
        format!("[walmgr_master]\nhost=127.0.0.1\nport {port}\n"),
    )
    .unwrap();
    set_master_db(&s, "service=walmgr_master");
    let err = failed(&walmgr(&s, &["status"], &env).run());
    assert!(err.contains(&format!("{}:3:", services.display())), "{err}");
}

/// primary_conninfo goes to the standby's own libpq (and pg_basebackup's), so walmgr only
/// checks it: a value libpq would refuse is refused when the config loads, naming the file,
/// the line and the key, and as `--primary-conninfo` before anything is written; never
/// showing the password.
#[test]
fn a_primary_conninfo_libpq_would_refuse_is_refused_where_it_is_written() {
    let dir = tempfile::tempdir().unwrap();
    let slave = dir.path().join("slave.toml");
    fs::write(
        &slave,
        format!(
            "[walmgr]\nslave_data = \"{}/data\"\nwalmgr_data = \"{}/wal\"\n\
             primary_conninfo = \"host=m user=rep password=s3cret sslmode=verify_full\"\n",
            dir.path().display(),
            dir.path().display()
        ),
    )
    .unwrap();
    let out = std::process::Command::new(WALMGR)
        .args([slave.to_str().unwrap(), "listbackups"])
        .output()
        .unwrap();
    let err = failed(&out);
    assert!(
        err.contains(&format!(
            "{}:4: key 'primary_conninfo': invalid sslmode value: \"verify_full\"",
            slave.display()
        )),
        "{err}"
    );
    assert!(!err.contains("s3cret"), "{err}");

    let password = dir.path().join("password");
    fs::write(&password, "s3cret\n").unwrap();
    let out = std::process::Command::new(WALMGR)
        .arg(format!("--add-password={}", password.display()))
        .args([
            "--primary-conninfo",
            "host=m user=rep hots=typo password=s3cret",
        ])
        .env("HOME", dir.path())
        .output()
        .unwrap();
    let err = failed(&out);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.contains("--primary-conninfo: invalid connection option \"hots\""),
        "{err}"
    );
    assert!(!dir.path().join(".pgpass").exists());
    assert!(!err.contains("s3cret"), "{err}");
}

/// A master that lets in only clients with a certificate from its CA (`hostssl ... cert`):
/// walmgr logs in with sslcert/sslkey, also with a key encrypted under sslpassword (which is
/// never shown); a key others may read is refused before connecting, as libpq does.
#[test]
fn master_db_logs_in_with_a_client_certificate() {
    let mut files = None;
    let s = locked_down_master(
        "clientcert",
        "hostssl all all 127.0.0.1/32 cert",
        "ssl = on\nssl_cert_file = 'server.crt'\nssl_key_file = 'server.key'\n\
         ssl_ca_file = 'root.crt'",
        |s| {
            let certs = s.dir.mkdir("certs");
            let ca = make_ca(&certs, "ca");
            install_server_cert(s, &ca, "localhost");
            let root = s.master.data.join("root.crt");
            fs::copy(&ca, &root).unwrap();
            chown_to_postgres(&root);
            let (key, crt) = (certs.join("client.key"), certs.join("client.crt"));
            issue_cert(&ca, "postgres", None, &key, &crt);
            files = Some((ca, key, crt));
        },
    );
    let (ca, key, crt) = files.unwrap();
    let master_db = |extra: &str| {
        format!(
            "host=localhost hostaddr=127.0.0.1 port={} user=postgres dbname=postgres \
             sslmode=verify-full sslrootcert={} {extra}",
            s.master.port,
            ca.display()
        )
    };

    set_master_db(
        &s,
        &master_db(&format!(
            "sslcert={} sslkey={}",
            crt.display(),
            key.display()
        )),
    );
    walmgr(&s, &["status"], &[]).ok();
    let log = fs::read_to_string(&s.master.log).unwrap();
    assert!(log.contains("method=cert"), "no certificate login:\n{log}");

    // The same key encrypted: sslpassword opens it, and no output shows it.
    let encrypted = key.with_file_name("client-encrypted.key");
    openssl(
        key.parent().unwrap(),
        &[
            "pkey",
            "-in",
            key.to_str().unwrap(),
            "-aes256",
            "-passout",
            &format!("pass:{PASSWORD}"),
            "-out",
            encrypted.to_str().unwrap(),
        ],
    );
    chown_to_postgres(&encrypted);
    fs::set_permissions(&encrypted, fs::Permissions::from_mode(0o600)).unwrap();
    set_master_db(
        &s,
        &master_db(&format!(
            "sslcert={} sslkey={} sslpassword={PASSWORD}",
            crt.display(),
            encrypted.display()
        )),
    );
    let out = walmgr(&s, &["-v", "status"], &[]).ok_output();
    let all = format!("{}{}", String::from_utf8_lossy(&out.stdout), stderr(&out));
    assert!(
        !all.contains(PASSWORD),
        "the key's passphrase was printed:\n{all}"
    );
    set_master_db(
        &s,
        &master_db(&format!(
            "sslcert={} sslkey={} sslpassword=wrong",
            crt.display(),
            encrypted.display()
        )),
    );
    let err = failed(&walmgr(&s, &["status"], &[]).run());
    assert!(
        err.contains("could not decrypt the key with sslpassword"),
        "{err}"
    );

    // A key others may read: refused before any connection, as libpq refuses it.
    fs::set_permissions(&key, fs::Permissions::from_mode(0o644)).unwrap();
    set_master_db(
        &s,
        &master_db(&format!(
            "sslcert={} sslkey={}",
            crt.display(),
            key.display()
        )),
    );
    let err = failed(&walmgr(&s, &["status"], &[]).run());
    assert!(err.contains("has group or world access"), "{err}");

    // No certificate at all: the server's refusal.
    set_master_db(&s, &master_db(""));
    let err = failed(&walmgr(&s, &["status"], &[]).run());
    assert!(err.contains("certificate"), "{err}");
}

/// connect_timeout bounds the whole attempt, as in libpq: a port that accepts the
/// connection and then never answers (a stuck server, a tunnel to nowhere) fails after the
/// timeout instead of holding walmgr for ever.
#[test]
fn connect_timeout_gives_up_on_a_server_that_accepts_and_never_answers() {
    // Listening, never accepting: the kernel completes the handshake, nobody reads.
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = silent.local_addr().unwrap().port();
    let dir = tempfile::tempdir().unwrap();
    let master = dir.path().join("master.toml");
    fs::write(
        &master,
        format!(
            "[walmgr]\nmaster_data = \"{dir}/data\"\nwalmgr_data = \"{dir}/wal\"\n\
             master_db = \"host=127.0.0.1 port={port} user=postgres dbname=postgres \
             connect_timeout=2\"\n",
            dir = dir.path().display()
        ),
    )
    .unwrap();
    let started = std::time::Instant::now();
    let out = std::process::Command::new(WALMGR)
        .args([master.to_str().unwrap(), "status"])
        .output()
        .unwrap();
    let took = started.elapsed();
    let err = failed(&out);
    assert!(err.contains("timeout expired"), "{err}");
    assert!(err.contains("connect_timeout=2 s"), "{err}");
    assert!(took < std::time::Duration::from_secs(15), "took {took:?}");
    drop(silent);
}
