//! The man page and shell completions as a package installs them: `walmgr-docs OUTDIR`
//! writes them, `man -l` renders the page with every command, option and config key, and
//! bash loads the completion and completes a command.

use std::fs;
use std::path::Path;
use std::process::{Command, Output};

use walmgr_cli::docs;
use walmgr_core::config::keys;

/// Writes the docs into a fresh temp dir, as packaging does.
fn generated() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_walmgr-docs"))
        .arg(dir.path())
        .output()
        .expect("run walmgr-docs");
    assert!(out.status.success(), "walmgr-docs: {}", text(&out.stderr));
    dir
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn run(program: &str, args: &[&str], env: &[(&str, &str)]) -> Output {
    let out = Command::new(program)
        .args(args)
        .envs(env.iter().copied())
        .output()
        .unwrap_or_else(|e| panic!("run {program} (is it installed? scripts/lib.sh): {e}"));
    assert!(
        out.status.success(),
        "{program} {args:?} failed:\n{}{}",
        text(&out.stdout),
        text(&out.stderr)
    );
    out
}

#[test]
fn walmgr_docs_writes_the_files_packaging_installs() {
    let dir = generated();
    for file in [
        "walmgr.1",
        "completions/walmgr.bash",
        "completions/_walmgr",
        "completions/walmgr.fish",
    ] {
        let len = fs::metadata(dir.path().join(file)).map(|m| m.len());
        assert!(matches!(len, Ok(n) if n > 1000), "{file}: {len:?}");
    }
    let usage = Command::new(env!("CARGO_BIN_EXE_walmgr-docs"))
        .output()
        .unwrap();
    assert_eq!(usage.status.code(), Some(2), "no OUTDIR is a usage error");
}

#[test]
fn man_renders_the_page_with_every_command_option_and_key() {
    let dir = generated();
    let page = dir.path().join("walmgr.1");
    // ASCII output, no hyphenation, lines wide enough that no name is broken: each name
    // must appear whole in what a DBA reads.
    let out = run(
        "man",
        &["--nh", "--nj", "--warnings", "-l", page.to_str().unwrap()],
        &[("LC_ALL", "C"), ("MANWIDTH", "2000"), ("MANPAGER", "cat")],
    );
    let shown = text(&out.stdout);
    assert!(
        out.stderr.is_empty(),
        "groff warned about the page: {}",
        text(&out.stderr)
    );
    for section in [
        "NAME",
        "SYNOPSIS",
        "OPTIONS",
        "COMMANDS",
        "CONFIGURATION",
        "EXIT STATUS",
    ] {
        assert!(
            shown.lines().any(|l| l == section),
            "no {section} section:\n{shown}"
        );
    }
    let cmd = docs::command();
    for sub in cmd.get_subcommands() {
        let entry = format!("       {}", sub.get_name());
        assert!(
            shown.lines().any(|l| l.starts_with(&entry)),
            "command {} is not in the page:\n{shown}",
            sub.get_name()
        );
        for long in sub
            .get_arguments()
            .filter(|a| !a.is_global_set())
            .filter_map(|a| a.get_long())
        {
            assert!(
                shown.contains(&format!("--{long}")),
                "{} --{long} is not in the page",
                sub.get_name()
            );
        }
    }
    for arg in cmd.get_arguments() {
        if let Some(long) = arg.get_long() {
            assert!(shown.contains(&format!("--{long}")), "--{long} missing");
        }
        if let Some(short) = arg.get_short() {
            assert!(shown.contains(&format!("-{short}, --")), "-{short} missing");
        }
    }
    for key in keys() {
        let entry = format!("       {}, ", key.name);
        assert!(
            shown.lines().any(|l| l.starts_with(&entry)),
            "config key {} is not in the page",
            key.name
        );
    }
    // The keys walmgr only accepts for walmgr3's sake are listed as such.
    let inert = shown
        .split("walmgr3 keys that do nothing in walmgr")
        .nth(1)
        .expect("a section for the keys that do nothing");
    for key in keys().iter().filter(|k| k.does_nothing.is_some()) {
        assert!(inert.contains(&format!("{}, ", key.name)), "{}", key.name);
    }
}

/// What bash offers for the words of a command line, through the function the completion
/// file registers (as bash's programmable completion calls it on TAB).
fn bash_completes(file: &Path, words: &[&str]) -> String {
    let script = format!(
        "source {file}\n\
         complete -p walmgr\n\
         fn=$(complete -p walmgr | sed -n 's/.* -F \\([^ ]*\\) .*/\\1/p')\n\
         COMP_WORDS=({words})\n\
         COMP_CWORD={cword}\n\
         COMP_LINE=\"${{COMP_WORDS[*]}}\"\n\
         COMP_POINT=${{#COMP_LINE}}\n\
         \"$fn\" walmgr \"${{COMP_WORDS[COMP_CWORD]}}\" \"${{COMP_WORDS[COMP_CWORD-1]}}\"\n\
         printf 'offered: %s\\n' \"${{COMPREPLY[@]}}\"\n",
        file = file.display(),
        words = words
            .iter()
            .map(|w| format!("'{w}'"))
            .collect::<Vec<_>>()
            .join(" "),
        cword = words.len() - 1,
    );
    text(&run("bash", &["-c", &script], &[]).stdout)
}

#[test]
fn bash_loads_the_completion_and_completes_commands_and_options() {
    let dir = generated();
    let file = dir.path().join("completions/walmgr.bash");
    let out = bash_completes(&file, &["walmgr", "/etc/walmgr/wal-master.toml", "se"]);
    assert!(out.starts_with("complete "), "complete -p walmgr: {out}");
    assert!(out.contains("offered: setup\n"), "{out}");
    let out = bash_completes(&file, &["walmgr", "master.toml", "synch-"]);
    assert!(out.contains("offered: synch-standby\n"), "{out}");
    let out = bash_completes(&file, &["walmgr", "--init-"]);
    assert!(
        out.contains("offered: --init-master\n") && out.contains("offered: --init-slave\n"),
        "{out}"
    );
    let out = bash_completes(&file, &["walmgr", "slave.toml", "restore", "--target-t"]);
    assert!(out.contains("offered: --target-time\n"), "{out}");
}

#[test]
fn zsh_and_fish_completions_know_every_command() {
    let dir = generated();
    let cmd = docs::command();
    for (file, shell) in [("_walmgr", "zsh"), ("walmgr.fish", "fish")] {
        let path = dir.path().join("completions").join(file);
        let script = fs::read_to_string(&path).unwrap();
        for sub in cmd.get_subcommands() {
            assert!(
                script.contains(sub.get_name()),
                "{file}: no {}",
                sub.get_name()
            );
        }
        // Where the shell is installed, it must at least parse the file.
        if Command::new(shell).arg("--version").output().is_ok() {
            run(shell, &["-n", path.to_str().unwrap()], &[]);
        }
    }
}
