//! The man page and the shell completions, generated from the clap definition in `args.rs`
//! and from the config key table the parser reads (`walmgr_core::config::keys()`): a new
//! option, command or key shows up in `man walmgr` and in tab completion without anyone
//! remembering to write it down twice.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use clap::{Arg, CommandFactory};
use clap_complete::{Generator, Shell};
use roff::{bold, italic, roman, Inline, Roff};
use walmgr_core::config::{keys, Key};

use crate::args::Cli;

/// The shells completions are generated for, and the file each one's loader looks for.
pub const SHELLS: [Shell; 3] = [Shell::Bash, Shell::Zsh, Shell::Fish];

/// The command line as `walmgr` parses it, with clap's derived parts (help, version,
/// propagated global options) filled in.
pub fn command() -> clap::Command {
    let mut cmd = Cli::command();
    cmd.build();
    cmd
}

/// Writes OUTDIR/walmgr.1 and OUTDIR/completions/{walmgr.bash,_walmgr,walmgr.fish}; returns
/// the paths written.
pub fn write_all(outdir: &Path) -> io::Result<Vec<PathBuf>> {
    let completions = outdir.join("completions");
    fs::create_dir_all(&completions)
        .map_err(|e| io::Error::new(e.kind(), format!("create {}: {e}", completions.display())))?;
    let mut written = Vec::new();
    let man = outdir.join("walmgr.1");
    write(&man, &man_page())?;
    written.push(man);
    for shell in SHELLS {
        let path = completions.join(shell.file_name("walmgr"));
        write(&path, &completion(shell))?;
        written.push(path);
    }
    Ok(written)
}

fn write(path: &Path, bytes: &[u8]) -> io::Result<()> {
    fs::write(path, bytes)
        .map_err(|e| io::Error::new(e.kind(), format!("write {}: {e}", path.display())))
}

/// The completion script for one shell.
pub fn completion(shell: Shell) -> Vec<u8> {
    let mut cmd = command();
    let mut out = Vec::new();
    clap_complete::generate(shell, &mut cmd, "walmgr", &mut out);
    out
}

/// walmgr(1): clap_mangen's title, name, synopsis and options, then what clap cannot know:
/// the commands grouped by the host they run on, every config key, the files on the
/// standby, exit status, environment and the quick start.
pub fn man_page() -> Vec<u8> {
    let cmd = command();
    let version = cmd.get_version().unwrap_or_default().to_owned();
    let man = clap_mangen::Man::new(cmd.clone())
        .title("WALMGR")
        .section("1")
        .source(format!("walmgr {version}"))
        .manual("walmgr manual");
    let mut out = Vec::new();
    // Writing into a Vec cannot fail.
    let _ = man.render_title(&mut out);
    let _ = man.render_name_section(&mut out);
    let mut roff = Roff::new();
    synopsis(&mut roff);
    description(&mut roff);
    out.extend(roff.render().into_bytes());
    let _ = man.render_options_section(&mut out);
    let mut roff = Roff::new();
    commands(&mut roff, &cmd);
    configuration(&mut roff);
    files(&mut roff);
    exit_status(&mut roff);
    environment(&mut roff);
    examples(&mut roff);
    see_also(&mut roff);
    out.extend(roff.render().into_bytes());
    let _ = man.render_version_section(&mut out);
    out
}

fn paragraph(roff: &mut Roff, text: &str) {
    roff.control("PP", []).text([roman(text)]);
}

/// Help text as a man page sentence: clap drops a one-line help's final period, and the
/// Markdown backquotes of doc comments mean nothing to man.
fn sentence(text: &str) -> String {
    let text = text.trim().replace('`', "");
    if text.is_empty() || text.ends_with(['.', '!', '?']) {
        text
    } else {
        format!("{text}.")
    }
}

/// clap_mangen's synopsis lists every flag in one run-on line; walmgr has two forms.
fn synopsis(roff: &mut Roff) {
    roff.control("SH", ["SYNOPSIS"]);
    roff.text([
        bold("walmgr"),
        roman(" ["),
        italic("options"),
        roman("] "),
        italic("CONFIG"),
        roman(" "),
        italic("COMMAND"),
        roman(" ["),
        italic("arguments"),
        roman("]"),
    ]);
    roff.control("br", []);
    roff.text([
        bold("walmgr"),
        roman(" ["),
        italic("options"),
        roman("] "),
        bold("--ini"),
        roman(" | "),
        bold("--init-master --slave"),
        roman(" "),
        italic("HOST"),
        roman(" | "),
        bold("--init-slave"),
        roman(" | "),
        bold("--ssh-keygen"),
        roman(" | "),
        bold("--ssh-add-key"),
        roman("="),
        italic("FILE"),
        roman(" | "),
        bold("--synch-standby"),
        roman("="),
        italic("NAMES"),
        roman(" | ..."),
    ]);
}

fn description(roff: &mut Roff) {
    roff.control("SH", ["DESCRIPTION"]);
    roff.text([roman(
        "walmgr ships a PostgreSQL master's WAL to a standby's archive and keeps base backups \
         there, for a warm or streaming standby and for point-in-time recovery. It is a \
         reimplementation of SkyTools' walmgr3 for PostgreSQL 15 and later: the same commands, \
         options and config keys, with archiving done by the walmgr extension (an archive \
         module, archive_library = 'walmgr') rather than by archive_command.",
    )]);
    paragraph(
        roff,
        "Each host has one config file: a master config (it sets master_data) or a slave \
         config. The command follows it: walmgr CONFIG COMMAND. A few options need no config \
         (--ini, --init-master, --init-slave, --ssh-keygen, --ssh-add-key, --ssh-remove-key, \
         --add-password, --remove-password, --synch-standby).",
    );
    paragraph(
        roff,
        "Every command takes -n (--not-really): it prints each change it would make (files, \
         SQL, commands, on both hosts) and makes none.",
    );
}

/// Which part of the COMMANDS section a command belongs in, from the host its help names.
fn group(sub: &clap::Command) -> usize {
    let about = sub.get_about().map(|a| a.to_string()).unwrap_or_default();
    if about.starts_with("Master") {
        0
    } else if about.starts_with("Slave") || about.starts_with("Standby") {
        1
    } else if about.starts_with("Internal") {
        3
    } else {
        2
    }
}

const GROUPS: [&str; 4] = [
    "Master commands",
    "Slave commands",
    "Commands for either host",
    "Internal commands",
];

fn commands(roff: &mut Roff, cmd: &clap::Command) {
    roff.control("SH", ["COMMANDS"]);
    roff.text([roman(
        "The command follows the config file. Options that only one command takes are listed \
         under it; the options above apply to all.",
    )]);
    for (index, heading) in GROUPS.iter().enumerate() {
        roff.control("SS", [*heading]);
        for sub in cmd.get_subcommands().filter(|s| group(s) == index) {
            command_entry(roff, sub);
        }
    }
}

/// Only the arguments this command has of its own: the global options clap propagated into
/// it are documented once, under OPTIONS.
fn own_args(sub: &clap::Command) -> impl Iterator<Item = &Arg> {
    sub.get_arguments()
        .filter(|a| !a.is_global_set() && !a.is_hide_set() && a.get_id() != "help")
}

fn command_entry(roff: &mut Roff, sub: &clap::Command) {
    let mut usage: Vec<Inline> = vec![bold(sub.get_name())];
    for arg in own_args(sub).filter(|a| a.is_positional()) {
        let name = value_name(arg);
        usage.push(roman(" "));
        if arg.is_required_set() {
            usage.push(italic(name));
        } else {
            usage.push(roman("["));
            usage.push(italic(name));
            usage.push(roman("]"));
        }
    }
    if own_args(sub).any(|a| !a.is_positional()) {
        usage.push(roman(" [options]"));
    }
    roff.control("TP", []).text(usage);
    let help = sub
        .get_long_about()
        .or(sub.get_about())
        .map(|h| h.to_string())
        .unwrap_or_default();
    let pieces: Vec<String> = help
        .split("\n\n")
        .map(|p| sentence(&p.replace('\n', " ")))
        .collect();
    roff.text([roman(pieces.join(" "))]);
    let args: Vec<&Arg> = own_args(sub).collect();
    if args.is_empty() {
        return;
    }
    roff.control("RS", []);
    for arg in args {
        let mut head: Vec<Inline> = Vec::new();
        if let Some(long) = arg.get_long() {
            head.push(bold(format!("--{long}")));
            if arg.get_action().takes_values() {
                head.push(roman(" "));
                head.push(italic(value_name(arg)));
            }
        } else {
            head.push(italic(value_name(arg)));
        }
        roff.control("TP", []).text(head);
        let mut text = sentence(
            &arg.get_long_help()
                .or(arg.get_help())
                .map(|h| h.to_string())
                .unwrap_or_default(),
        );
        let defaults: Vec<String> = arg
            .get_default_values()
            .iter()
            .map(|v| v.to_string_lossy().into_owned())
            .collect();
        if !defaults.is_empty() && arg.get_action().takes_values() {
            text.push_str(&format!(" Default: {}.", defaults.join(", ")));
        }
        roff.text([roman(text)]);
    }
    roff.control("RE", []);
}

fn value_name(arg: &Arg) -> String {
    arg.get_value_names()
        .and_then(|names| names.first())
        .map(|n| n.to_string())
        .unwrap_or_else(|| arg.get_id().as_str().to_uppercase())
}

fn configuration(roff: &mut Roff) {
    roff.control("SH", ["CONFIGURATION"]);
    roff.text([roman(
        "A config is a TOML file with one table, [walmgr]; walmgr3's .ini files (section \
         [walmgr], %(name)s references) are read unchanged. A TOML value may use another \
         key's value as ${name}, and a path starting with ~ is under the home directory of \
         the user running walmgr. An empty value means the same as leaving the key out. \
         --set key=val,... overrides keys after loading. Unknown keys, wrong types and \
         missing required keys are errors that name the key, the file and the line. \
         walmgr --ini prints a commented sample master and slave config for this host.",
    )]);
    paragraph(
        roff,
        "A config path ending in .ini that does not exist is read from the .toml file \
         beside it, as --init-master and --init-slave write them (walmgr says so on \
         stderr), so the commands of walmgr3's quick start work as written.",
    );
    let (live, inert): (Vec<&Key>, Vec<&Key>) =
        keys().iter().partition(|k| k.does_nothing.is_none());
    roff.control("SS", ["Keys"]);
    for key in live {
        key_entry(roff, key);
        roff.text([roman(sentence(&key.description()))]);
    }
    roff.control("SS", ["walmgr3 keys that do nothing in walmgr"]);
    roff.text([roman(
        "These keys are accepted, so that walmgr3 configs load unchanged, but change nothing:",
    )]);
    for key in inert {
        key_entry(roff, key);
        let why = key.does_nothing.unwrap_or_default();
        roff.text([roman(format!(
            "{} In walmgr: {}",
            sentence(&key.description()),
            sentence(why)
        ))]);
    }
}

fn key_entry(roff: &mut Roff, key: &Key) {
    roff.control("TP", [])
        .text([bold(key.name), roman(", "), italic(key.value_kind())]);
}

fn files(roff: &mut Roff) {
    roff.control("SH", ["FILES"]);
    roff.text([roman(
        "On the standby, under walmgr_data unless the keys say otherwise:",
    )]);
    for (name, what) in [
        (
            "logs.complete",
            "completed_wals: archived WAL segments, .history and .backup files, \
             byte-identical to the master's, mode 0600; and the control files BACKUPLOCK \
             (a backup runs), PAUSE (replay held by pause) and STOP (boot ends recovery).",
        ),
        (
            "logs.partial",
            "partial_wals: the segment the master is still writing, padded to the segment \
             size.",
        ),
        (
            "data.master, data.master.0, data.master.1, ...",
            "full_backup: base backups, newest first, each with its backup_label.",
        ),
        (
            "config.backup",
            "config_backup: the master's postgresql.conf, pg_hba.conf and pg_ident.conf.",
        ),
        (
            "~/conf/wal-master.toml, ~/conf/wal-slave.toml",
            "The configs --init-master and --init-slave write (see --config-dir).",
        ),
    ] {
        roff.control("TP", []).text([bold(name)]);
        roff.text([roman(what)]);
    }
}

fn exit_status(roff: &mut Roff) {
    roff.control("SH", ["EXIT STATUS"]);
    for (code, what) in [
        ("0", "Success."),
        (
            "1",
            "Failure, with a one-line reason on stderr (more with -v); for xrestore also \
             \"not (yet) in the archive\".",
        ),
        ("2", "A wrong command line (usage)."),
    ] {
        roff.control("TP", []).text([bold(code)]);
        roff.text([roman(what)]);
    }
    paragraph(
        roff,
        "Nothing exits above 125, which PostgreSQL would read from restore_command as \
         \"stop recovery\".",
    );
}

fn environment(roff: &mut Roff) {
    roff.control("SH", ["ENVIRONMENT"]);
    for (name, what) in [
        (
            "PGDATA",
            "The data directory --init-master, --init-slave and --synch-standby use when \
             --pgdata is not given (else the running server's).",
        ),
        (
            "HOME",
            "~ in config paths, ~/conf for --init-*, ~/.ssh for keys and known_hosts, \
             ~/.pgpass.",
        ),
        (
            "PGHOST, PGPORT, PGUSER, ...",
            "libpq's environment, for what master_db and primary_conninfo leave out.",
        ),
    ] {
        roff.control("TP", []).text([bold(name)]);
        roff.text([roman(what)]);
    }
}

fn examples(roff: &mut Roff) {
    roff.control("SH", ["EXAMPLES"]);
    roff.text([roman(
        "walmgr3's quick start, with walmgr: keys and configs on both hosts, archiving and a \
         base backup, the standby restored and replaying, in-progress WAL shipped, the \
         standby opened.",
    )]);
    roff.control("PP", []).control("nf", []).control("RS", []);
    for line in [
        "master$ walmgr --ssh-keygen --init-master --slave standby",
        "standby$ walmgr --init-slave --ssh-add-key=/tmp/id_ed25519.pub",
        "master$ ssh-keyscan -t ed25519 standby >> ~/.ssh/known_hosts",
        "master$ walmgr ~/conf/wal-master.toml setup",
        "master$ walmgr ~/conf/wal-master.toml backup",
        "standby$ walmgr ~/conf/wal-slave.toml restore",
        "master$ walmgr ~/conf/wal-master.toml sync",
        "standby$ walmgr ~/conf/wal-slave.toml boot",
    ] {
        roff.text([roman(line)]);
    }
    roff.control("RE", []).control("fi", []);
    paragraph(
        roff,
        "setup says when PostgreSQL must be restarted (archive_mode and \
         shared_preload_libraries need one), unless master_restart_cmd does it.",
    );
}

fn see_also(roff: &mut Roff) {
    roff.control("SH", ["SEE ALSO"]);
    roff.text([roman(
        "pg_ctl(1), pg_basebackup(1), pg_ctlcluster(1), postgres(1), ssh-keygen(1), sshd(8)",
    )]);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn page() -> String {
        String::from_utf8(man_page()).unwrap()
    }

    #[test]
    fn the_man_page_names_every_command_option_and_key() {
        let page = page();
        let cmd = command();
        for sub in cmd.get_subcommands() {
            assert!(
                page.contains(&format!("\\fB{}\\fR", sub.get_name().replace('-', "\\-"))),
                "command {} missing",
                sub.get_name()
            );
            for arg in own_args(sub).filter_map(|a| a.get_long()) {
                assert!(
                    page.contains(&format!("\\-\\-{}", arg.replace('-', "\\-"))),
                    "{} --{arg} missing",
                    sub.get_name()
                );
            }
        }
        for arg in cmd.get_arguments().filter_map(|a| a.get_long()) {
            assert!(
                page.contains(&format!("\\-\\-{}", arg.replace('-', "\\-"))),
                "--{arg} missing"
            );
        }
        for key in keys() {
            assert!(
                page.contains(&format!("\\fB{}\\fR", key.name.replace('-', "\\-"))),
                "key {} missing",
                key.name
            );
        }
    }

    #[test]
    fn every_command_is_in_one_group() {
        let cmd = command();
        let in_groups: usize = (0..GROUPS.len())
            .map(|g| cmd.get_subcommands().filter(|s| group(s) == g).count())
            .sum();
        assert_eq!(in_groups, cmd.get_subcommands().count());
        let master: Vec<&str> = cmd
            .get_subcommands()
            .filter(|s| group(s) == 0)
            .map(|s| s.get_name())
            .collect();
        assert!(master.contains(&"setup") && master.contains(&"synch-standby"));
    }
}
