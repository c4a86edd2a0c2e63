//! `periodic_command` every `command_interval` seconds, evaluated at segment switches as
//! walmgr3's manual says. The command runs in the background so that shipping never waits
//! for it; a failure is logged and the command runs again at the next interval.

use std::process::{Child, Command};
use std::time::{Duration, Instant};

use crate::config::Config;
use crate::error::{Error, Result};
use crate::wal::SegmentName;

pub struct Periodic {
    command: Option<String>,
    interval: Duration,
    last_started: Option<Instant>,
    last_segment: Option<SegmentName>,
    running: Option<Child>,
}

impl Periodic {
    pub fn new(config: &Config) -> Periodic {
        Periodic {
            command: config.periodic_command.clone(),
            interval: Duration::from_secs_f64(config.command_interval.unwrap_or(0.0).max(0.0)),
            last_started: None,
            last_segment: None,
            running: None,
        }
    }

    /// Called every round with the segment being written. Starts the command when a segment
    /// switch happened and the interval has passed since it last started; reaps it when done.
    pub fn tick(&mut self, current: Option<SegmentName>) {
        self.reap();
        let switched = match (self.last_segment, current) {
            (Some(last), Some(now)) => last != now,
            _ => false,
        };
        if current.is_some() {
            self.last_segment = current;
        }
        let due = self
            .last_started
            .is_none_or(|t| t.elapsed() >= self.interval);
        if switched && due && self.running.is_none() {
            if let Err(e) = self.start() {
                tracing::warn!("{e}");
            }
        }
    }

    /// Runs the command now and waits for it (`walmgr periodic`, `walmgr.periodic()`).
    /// False when no command is configured.
    pub fn run_now(config: &Config) -> Result<bool> {
        let Some(cmd) = &config.periodic_command else {
            return Ok(false);
        };
        crate::os::shell::run("periodic_command", cmd)?;
        Ok(true)
    }

    fn start(&mut self) -> Result<()> {
        let Some(cmd) = &self.command else {
            return Ok(());
        };
        self.last_started = Some(Instant::now());
        let child = Command::new("/bin/sh")
            .arg("-c")
            .arg(cmd)
            .spawn()
            .map_err(|e| Error::io("run periodic_command", "/bin/sh", e))?;
        tracing::debug!("periodic_command started (pid {})", child.id());
        self.running = Some(child);
        Ok(())
    }

    fn reap(&mut self) {
        let Some(child) = self.running.as_mut() else {
            return;
        };
        match child.try_wait() {
            Ok(None) => {}
            Ok(Some(status)) if status.success() => self.running = None,
            Ok(Some(status)) => {
                tracing::warn!(
                    "periodic_command failed with {status}; it runs again in {} s",
                    self.interval.as_secs()
                );
                self.running = None;
            }
            Err(e) => {
                tracing::warn!("periodic_command: {e}");
                self.running = None;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;

    fn config(dir: &std::path::Path, command: &str, interval: f64) -> Config {
        let path = dir.join("master.toml");
        fs::write(
            &path,
            format!(
                "[walmgr]\nmaster_data = \"/x\"\nwalmgr_data = \"/y\"\n\
                 periodic_command = \"{command}\"\ncommand_interval = {interval}\n"
            ),
        )
        .unwrap();
        Config::load(&path, &[]).unwrap()
    }

    fn wait_for(path: &std::path::Path, lines: usize) -> usize {
        for _ in 0..200 {
            let n = fs::read_to_string(path)
                .map(|t| t.lines().count())
                .unwrap_or(0);
            if n >= lines {
                return n;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        fs::read_to_string(path)
            .map(|t| t.lines().count())
            .unwrap_or(0)
    }

    #[test]
    fn the_command_runs_at_segment_switches_once_the_interval_passed() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("ran");
        let cfg = config(dir.path(), &format!("echo x >> {}", out.display()), 0.2);
        let mut p = Periodic::new(&cfg);
        let seg = |n| SegmentName::from_segno(1, n, 1 << 20);
        p.tick(Some(seg(1)));
        p.tick(Some(seg(1)));
        assert_eq!(wait_for(&out, 1), 0, "ran without a segment switch");
        p.tick(Some(seg(2)));
        assert_eq!(wait_for(&out, 1), 1);
        p.tick(Some(seg(3)));
        assert_eq!(wait_for(&out, 2), 1, "ran again before the interval passed");
        std::thread::sleep(Duration::from_millis(250));
        p.tick(Some(seg(4)));
        assert_eq!(wait_for(&out, 2), 2);
    }

    #[test]
    fn a_failing_command_is_reported_and_runs_again_next_interval() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("ran");
        let cfg = config(
            dir.path(),
            &format!("echo x >> {}; false", out.display()),
            0.05,
        );
        let mut p = Periodic::new(&cfg);
        for n in 1..=3 {
            p.tick(Some(SegmentName::from_segno(1, n, 1 << 20)));
            wait_for(&out, n as usize - 1);
            std::thread::sleep(Duration::from_millis(80));
        }
        p.tick(None);
        assert_eq!(wait_for(&out, 2), 2);
        assert!(Periodic::run_now(&cfg).is_err());
    }
}
