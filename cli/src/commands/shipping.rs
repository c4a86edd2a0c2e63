//! In-progress WAL on the master: `sync` (once), `syncdaemon` (core's shipping loop, for a
//! master that does not preload the extension), `periodic`, and the `-r`/`-s`/`-k`
//! signals to a running daemon.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use walmgr_core::config::{Config, Role};
use walmgr_core::os::pidfile::{self, Pidfile, Signal};
use walmgr_core::os::process::daemonize;
use walmgr_core::server::{Master, WalSource};
use walmgr_core::shipping::driver::{self, Host, Status, Wake};
use walmgr_core::shipping::periodic::Periodic;
use walmgr_core::shipping::reader::Cluster;
use walmgr_core::shipping::{Round, Shipper};
use walmgr_core::Error;

use super::Context;
use crate::error::Result;
use crate::server::{Connection, SqlWal};
use walmgr_core::conninfo::Conninfo;

fn master_parts(ctx: &Context, command: &str) -> Result<(Conninfo, PathBuf)> {
    ctx.config.require_role(Role::Master, command)?;
    let conninfo = ctx
        .config
        .required(&ctx.config.master_db, "master_db", command)?
        .clone();
    let data = ctx
        .config
        .required(&ctx.config.master_data, "master_data", command)?
        .clone();
    Ok((conninfo, data))
}

/// `sync`: through the extension when it is installed (`walmgr.sync()`), else one round
/// of the loop from here.
pub fn sync(ctx: &mut Context) -> Result<()> {
    let (conninfo, data) = master_parts(ctx, "sync")?;
    let mut master = Connection::master(&conninfo)?;
    if ctx.changes.is_dry_run() {
        ctx.changes
            .record("ship in-progress WAL up to the flush position (walmgr.sync())");
        return Ok(());
    }
    if master.extension_installed()? {
        let lsn = master.sync()?;
        println!("{lsn}");
        return Ok(());
    }
    let mut source = SqlWal::new(&conninfo);
    let mut shipper = Shipper::new(source.cluster(&data)?);
    let mut transport = walmgr_core::remote::for_master(&ctx.config)?;
    let target = source.flush()?.lsn;
    loop {
        match shipper.round(&mut source, transport.as_mut())? {
            Round::Shipped { to, .. } if to < target => continue,
            _ => break,
        }
    }
    println!("{}", shipper.acknowledged().unwrap_or(target));
    Ok(())
}

/// `periodic`: periodic_command now.
pub fn periodic(ctx: &mut Context) -> Result<()> {
    ctx.config.require_role(Role::Master, "periodic")?;
    let Some(cmd) = ctx.config.periodic_command.clone() else {
        println!("periodic_command is not set: nothing to run");
        return Ok(());
    };
    ctx.changes
        .apply(format!("run periodic_command: {cmd}"), || {
            Periodic::run_now(&ctx.config).map(|_| ())
        })?;
    Ok(())
}

/// `-r`, `-s`, `-k`: a signal to the daemon that holds the config's pidfile.
pub fn signal_daemon(ctx: &mut Context, reload: bool, stop: bool) -> Result<()> {
    let path = pidfile_of(&ctx.config)?;
    let (signal, what) = match (reload, stop) {
        (true, _) => (Signal::SIGHUP, "reload its config"),
        (_, true) => (Signal::SIGINT, "ship what is flushed and stop"),
        _ => (Signal::SIGTERM, "stop at once"),
    };
    let description = format!("signal the daemon of {} to {what}", path.display());
    let pid = ctx
        .changes
        .apply(description, || pidfile::signal(&path, signal))?;
    if let Some(pid) = pid {
        println!("told syncdaemon (pid {pid}) to {what}");
    }
    Ok(())
}

fn pidfile_of(config: &Config) -> Result<PathBuf> {
    Ok(config
        .required(&config.pidfile, "pidfile", "syncdaemon -d, -r, -s, -k")?
        .clone())
}

/// `syncdaemon [-d]`: core's shipping loop until SIGINT (after a last ship) or SIGTERM.
pub fn syncdaemon(ctx: &mut Context, background: bool) -> Result<()> {
    let (conninfo, data) = master_parts(ctx, "syncdaemon")?;
    if ctx.changes.is_dry_run() {
        ctx.changes
            .record("ship in-progress WAL to the standby every loop_delay, until stopped");
        return Ok(());
    }
    // The config is read again on reload, from wherever we are then.
    let config_path = ctx
        .config
        .source
        .canonicalize()
        .map_err(|e| Error::io("resolve", &ctx.config.source, e))?;
    let _pidfile = if background {
        let path = pidfile_of(&ctx.config)?;
        if ctx.config.logfile.is_none() {
            tracing::warn!("logfile is not set: the daemon's log lines go nowhere");
        }
        daemonize()?;
        Some(Pidfile::take(&path)?)
    } else {
        match &ctx.config.pidfile {
            Some(path) => Some(Pidfile::take(path)?),
            None => None,
        }
    };
    let signals = Signals::install()?;
    tracing::info!("syncdaemon started (pid {})", std::process::id());
    let mut host = DaemonHost {
        config_path,
        overrides: Vec::new(),
        conninfo,
        data,
        source: None,
        signals,
        last_state: "",
    };
    driver::run(&mut host)?;
    tracing::info!("syncdaemon stopped");
    Ok(())
}

/// SIGHUP and SIGINT, as flags the loop looks at between short sleeps.
struct Signals {
    reload: Arc<AtomicBool>,
    stop: Arc<AtomicBool>,
}

impl Signals {
    fn install() -> Result<Signals> {
        let reload = Arc::new(AtomicBool::new(false));
        let stop = Arc::new(AtomicBool::new(false));
        let register = |signal, flag: &Arc<AtomicBool>| {
            signal_hook::flag::register(signal, Arc::clone(flag))
                .map_err(|e| Error::io("install a signal handler", "syncdaemon", e))
        };
        register(signal_hook::consts::SIGHUP, &reload)?;
        register(signal_hook::consts::SIGINT, &stop)?;
        // Asked to stop, the last ship does not wait network_timeout on a silent standby.
        let _ = STOP_ASKED.set(Arc::clone(&stop));
        walmgr_core::remote::when_stopping(|| {
            STOP_ASKED
                .get()
                .is_some_and(|stop| stop.load(Ordering::Relaxed))
        });
        Ok(Signals { reload, stop })
    }
}

static STOP_ASKED: OnceLock<Arc<AtomicBool>> = OnceLock::new();

struct DaemonHost {
    config_path: PathBuf,
    overrides: Vec<(String, String)>,
    conninfo: Conninfo,
    data: PathBuf,
    source: Option<SqlWal>,
    signals: Signals,
    last_state: &'static str,
}

/// How long one sleep lasts at most: signals are looked at this often.
const SLICE: Duration = Duration::from_millis(50);

impl Host for DaemonHost {
    fn load_config(&mut self) -> walmgr_core::Result<Config> {
        let config = Config::load(&self.config_path, &self.overrides)?;
        if let Some(conninfo) = &config.master_db {
            self.conninfo = conninfo.clone();
        }
        if let Some(data) = &config.master_data {
            self.data = data.clone();
        }
        Ok(config)
    }

    fn cluster(&mut self) -> walmgr_core::Result<Cluster> {
        let mut source = SqlWal::new(&self.conninfo);
        let cluster = source.cluster(&self.data)?;
        self.source = Some(source);
        Ok(cluster)
    }

    fn source(&mut self) -> &mut dyn WalSource {
        self.source
            .get_or_insert_with(|| SqlWal::new(&self.conninfo))
    }

    fn wait(&mut self, timeout: Duration) -> Wake {
        let deadline = Instant::now() + timeout;
        loop {
            if self.signals.stop.swap(false, Ordering::SeqCst) {
                return Wake::Stop;
            }
            if self.signals.reload.swap(false, Ordering::SeqCst) {
                return Wake::Reload;
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Wake::Round;
            }
            std::thread::sleep(left.min(SLICE));
        }
    }

    fn report(&mut self, status: &Status) {
        if status.state != self.last_state {
            tracing::debug!(
                "syncdaemon {}: acknowledged {}",
                status.state,
                status
                    .acknowledged
                    .map_or("nothing yet".to_string(), |l| l.to_string())
            );
            self.last_state = status.state;
        }
    }
}
