//! Versioned SQL (sql/): a database that installed a released version of the extension and
//! then ran `ALTER EXTENSION walmgr UPDATE` must end up with exactly what a fresh
//! `CREATE EXTENSION walmgr` of the current version makes: the same functions (signature,
//! defaults, volatility, strictness, parallel safety, body, owner, ACL, comment), the same
//! view, schema, types and grants, the same initial privileges pg_dump relies on, and the
//! same extension membership and dependencies in pg_depend.
//!
//! Runs against a private copy of the PostgreSQL installation (the machine's are shared
//! with other test runs), into which it installs walmgr's library, control file and every
//! script in sql/.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use postgres::{Client, NoTls};
use walmgr_tests::{pg_error, Cluster, Pg, TestDir};

/// The version this checkout builds: the control file's default_version.
const CURRENT: &str = env!("CARGO_PKG_VERSION");

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ lives in the repository")
        .to_path_buf()
}

/// Every version with an install script in sql/ other than the current one: each was
/// released, and users may run any of them.
fn released_versions() -> Vec<String> {
    let sql = repo().join("sql");
    let mut versions: Vec<String> = std::fs::read_dir(&sql)
        .unwrap_or_else(|e| panic!("cannot list {}: {e}", sql.display()))
        .flatten()
        .filter_map(|e| {
            let name = e.file_name().to_string_lossy().into_owned();
            let version = name.strip_prefix("walmgr--")?.strip_suffix(".sql")?;
            // walmgr--A--B.sql is an upgrade script, not an install script.
            (!version.contains("--")).then(|| version.to_string())
        })
        .filter(|v| v != CURRENT)
        .collect();
    versions.sort();
    versions
}

/// The walmgr library built from this checkout for `major`: what `scripts/lib.sh
/// install_extension` builds (target/pgrx-NN), the newest of debug and release; else the
/// one installed in that PostgreSQL (scripts/test installs this checkout's before it runs
/// the tests).
fn built_library(pg: &Pg) -> PathBuf {
    let target = repo().join("target").join(format!("pgrx-{}", pg.major));
    let built = ["debug", "release"]
        .iter()
        .map(|profile| target.join(profile).join("libwalmgr.so"))
        .filter_map(|p| Some((p.metadata().ok()?.modified().ok()?, p)))
        .max()
        .map(|(_, p)| p);
    let lib = built.unwrap_or_else(|| PathBuf::from(pg.config("--pkglibdir")).join("walmgr.so"));
    assert!(
        lib.is_file(),
        "no walmgr library for PostgreSQL {} in {} nor installed: build it first \
         (source scripts/lib.sh; install_extension {})",
        pg.major,
        target.display(),
        pg.major
    );
    eprintln!(
        "PostgreSQL {}: testing the library {}",
        pg.major,
        lib.display()
    );
    lib
}

/// extension/walmgr.control as cargo-pgrx installs it: the version filled in.
fn control_file(dir: &TestDir) -> PathBuf {
    let src = repo().join("extension").join("walmgr.control");
    let text =
        std::fs::read_to_string(&src).unwrap_or_else(|e| panic!("read {}: {e}", src.display()));
    dir.write("walmgr.control", text.replace("@CARGO_VERSION@", CURRENT))
}

fn connect(c: &Cluster, db: &str) -> Client {
    Client::connect(&format!("{} dbname={db}", c.conninfo()), NoTls)
        .unwrap_or_else(|e| c.fail(&format!("connect to database {db}: {}", pg_error(&e))))
}

/// Everything the extension put into database `db`, one line per fact, with object names
/// instead of OIDs so that two databases compare.
const SNAPSHOT: &str = r#"
WITH ext AS (SELECT * FROM pg_extension WHERE extname = 'walmgr'),
members AS (
    SELECT d.classid, d.objid FROM pg_depend d, ext
    WHERE d.refclassid = 'pg_extension'::regclass AND d.refobjid = ext.oid AND d.deptype = 'e'
),
-- What belongs to a member without being one itself: a view's rewrite rule, a row type,
-- an array type.
owned AS (
    SELECT classid, objid FROM members
    UNION
    SELECT d.classid, d.objid FROM pg_depend d JOIN members m
        ON d.refclassid = m.classid AND d.refobjid = m.objid AND d.deptype IN ('i', 'a')
),
facts(fact) AS (
    SELECT format('extension: version %s, schema %s, relocatable %s, config %s %s, owner %s',
                  extversion, extnamespace::regnamespace, extrelocatable, extconfig,
                  extcondition, extowner::regrole)
    FROM ext
    UNION ALL
    SELECT 'member: ' || pg_describe_object(classid, objid, 0) FROM members
    UNION ALL
    SELECT format('depend: %s -> %s (%s)', pg_describe_object(d.classid, d.objid, d.objsubid),
                  pg_describe_object(d.refclassid, d.refobjid, d.refobjsubid), d.deptype)
    FROM pg_depend d
    WHERE (d.classid, d.objid) IN (SELECT classid, objid FROM owned)
       OR (d.refclassid, d.refobjid) IN (SELECT classid, objid FROM owned)
    UNION ALL
    SELECT format('schema %s: owner %s, acl %s, comment %L', n.nspname, n.nspowner::regrole,
                  n.nspacl, obj_description(n.oid, 'pg_namespace'))
    FROM pg_namespace n WHERE n.nspname = 'walmgr'
    UNION ALL
    -- pg_get_functiondef: arguments with names and defaults, result, language, volatility,
    -- strictness, parallel safety, security, cost, rows, settings and body.
    SELECT format('function %s: owner %s, acl %s, comment %L, symbol %s in %s, definition %s',
                  p.oid::regprocedure, p.proowner::regrole, p.proacl,
                  obj_description(p.oid, 'pg_proc'),
                  CASE WHEN l.lanname = 'c' THEN p.prosrc END, p.probin,
                  pg_get_functiondef(p.oid))
    FROM pg_proc p JOIN pg_language l ON l.oid = p.prolang
    WHERE p.pronamespace = 'walmgr'::regnamespace
    UNION ALL
    SELECT format('relation %s (%s): owner %s, acl %s, comment %L, definition %s',
                  c.oid::regclass, c.relkind, c.relowner::regrole, c.relacl,
                  obj_description(c.oid, 'pg_class'),
                  CASE WHEN c.relkind = 'v' THEN pg_get_viewdef(c.oid) END)
    FROM pg_class c WHERE c.relnamespace = 'walmgr'::regnamespace
    UNION ALL
    SELECT format('column %s.%s #%s: %s, acl %s, comment %L', a.attrelid::regclass, a.attname,
                  a.attnum, format_type(a.atttypid, a.atttypmod), a.attacl,
                  col_description(a.attrelid, a.attnum))
    FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid
    WHERE c.relnamespace = 'walmgr'::regnamespace AND a.attnum > 0 AND NOT a.attisdropped
    UNION ALL
    SELECT format('type %s (%s): owner %s, acl %s', t.oid::regtype, t.typtype,
                  t.typowner::regrole, t.typacl)
    FROM pg_type t WHERE t.typnamespace = 'walmgr'::regnamespace
    UNION ALL
    -- The privileges the extension's scripts set: pg_dump dumps grants relative to these.
    SELECT format('initial privileges of %s (%s): %s',
                  pg_describe_object(i.classoid, i.objoid, i.objsubid), i.privtype, i.initprivs)
    FROM pg_init_privs i
    WHERE (i.classoid, i.objoid) IN (SELECT classid, objid FROM owned)
       OR (i.classoid = 'pg_namespace'::regclass AND i.objoid = 'walmgr'::regnamespace)
)
SELECT fact FROM facts ORDER BY fact
"#;

fn snapshot(client: &mut Client, c: &Cluster, db: &str) -> BTreeSet<String> {
    let rows = client.query(SNAPSHOT, &[]).unwrap_or_else(|e| {
        c.fail(&format!(
            "catalog snapshot of database {db}: {}",
            pg_error(&e)
        ))
    });
    let facts: BTreeSet<String> = rows.iter().map(|r| r.get::<_, String>(0)).collect();
    assert_eq!(
        facts.len(),
        rows.len(),
        "database {db}: the snapshot has duplicate lines, so a set would hide a difference"
    );
    facts
}

/// `SELECT * FROM walmgr.status` answers its one row.
fn status_rows(client: &mut Client, c: &Cluster, when: &str) {
    let rows = client
        .query("SELECT * FROM walmgr.status", &[])
        .unwrap_or_else(|e| c.fail(&format!("walmgr.status, {when}: {}", pg_error(&e))));
    assert_eq!(rows.len(), 1, "walmgr.status, {when}");
}

/// For each released version: install it, update, and compare with a fresh install.
fn update_from_every_release_equals_a_fresh_install(major: u32) {
    let released = released_versions();
    assert!(
        !released.is_empty(),
        "sql/ holds no released version's install script besides {CURRENT}"
    );
    let dir = TestDir::new(&format!("upgrade{major}"));
    let pg = Pg::major(major).private_copy(&dir, "pg");
    pg.install_extension(
        &built_library(&pg),
        &control_file(&dir),
        &repo().join("sql"),
    );
    let c = Cluster::init(&pg, &dir, "db", &[]);
    c.start();

    c.execute("CREATE DATABASE fresh");
    let mut fresh = connect(&c, "fresh");
    fresh
        .batch_execute("CREATE EXTENSION walmgr")
        .unwrap_or_else(|e| {
            c.fail(&format!(
                "CREATE EXTENSION walmgr ({CURRENT}): {}",
                pg_error(&e)
            ))
        });
    let want = snapshot(&mut fresh, &c, "fresh");
    assert!(
        want.iter()
            .any(|f| f.starts_with(&format!("extension: version {CURRENT}, schema walmgr,"))),
        "fresh install is not version {CURRENT}: {want:#?}"
    );

    for from in &released {
        let db = format!("from_{}", from.replace('.', "_"));
        c.execute(&format!("CREATE DATABASE {db}"));
        let mut updated = connect(&c, &db);
        updated
            .batch_execute(&format!("CREATE EXTENSION walmgr VERSION '{from}'"))
            .unwrap_or_else(|e| {
                c.fail(&format!(
                    "CREATE EXTENSION walmgr VERSION '{from}': {}",
                    pg_error(&e)
                ))
            });
        let before = snapshot(&mut updated, &c, &db);
        assert_ne!(before, want, "version {from} installs what {CURRENT} does");
        // Between installing the new package and ALTER EXTENSION UPDATE, the old SQL runs
        // on the new library: the status view must still answer (with the old columns).
        status_rows(
            &mut updated,
            &c,
            &format!("{from}'s SQL on the {CURRENT} library"),
        );
        updated
            .batch_execute("ALTER EXTENSION walmgr UPDATE")
            .unwrap_or_else(|e| {
                c.fail(&format!(
                    "ALTER EXTENSION walmgr UPDATE from {from}: {}",
                    pg_error(&e)
                ))
            });
        let got = snapshot(&mut updated, &c, &db);
        let missing: Vec<&String> = want.difference(&got).collect();
        let extra: Vec<&String> = got.difference(&want).collect();
        assert!(
            missing.is_empty() && extra.is_empty(),
            "PostgreSQL {major}: {from} updated to {CURRENT} differs from a fresh install of \
             {CURRENT} (fix sql/walmgr--{from}--{CURRENT}.sql)\n\
             only in the fresh install:\n  {}\nonly after the update:\n  {}",
            missing
                .iter()
                .map(|s| s.as_str())
                .collect::<Vec<_>>()
                .join("\n  "),
            extra
                .iter()
                .map(|s| s.as_str())
                .collect::<Vec<_>>()
                .join("\n  ")
        );
        // The updated objects work, not only look the same: the view runs its function.
        status_rows(&mut updated, &c, &format!("updated from {from}"));
    }
}

#[test]
fn update_from_every_release_equals_a_fresh_install_on_postgresql_15() {
    update_from_every_release_equals_a_fresh_install(15);
}

#[test]
fn update_from_every_release_equals_a_fresh_install_on_postgresql_18() {
    update_from_every_release_equals_a_fresh_install(18);
}
