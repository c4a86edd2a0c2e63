//! Peak memory and CPU time of the processes one backup run starts on either host, and how
//! busy the machine was meanwhile.
//!
//! The far end of every variant (the standby's `walmgr xserve`, the `rsync --server` sshd
//! runs, sshd's own session processes) is started by sshd, not by the bench, so no wait4
//! rusage reaches us. Instead a thread polls /proc every [`POLL`] while the run lasts and
//! keeps, for every process that was not there when the run began and lives in one of the
//! two hosts' network namespaces, the highest `VmHWM` (the kernel's own high-water mark of
//! the resident set, so a peak between two polls is not missed; only growth in the last
//! poll interval before a process exits could be).
//!
//! A process that execs gets a new address space and a new high-water mark: `ip netns exec`
//! becoming `runuser` becoming `walmgr` is three entries, one per name. PostgreSQL backends
//! (`postgres`) also count the shared buffers they touched in `VmHWM`; for them the peak of
//! `RssAnon + RssFile` (their private part) is kept too, and reported instead.
//!
//! CPU time is each process's utime + stime (all its threads) as last seen, summed per
//! kind; the machine's share comes from /proc/stat at the start and the end of the run
//! (both hosts share this machine's CPUs: a transfer can be CPU-bound on the two together).

use std::collections::{BTreeMap, HashMap, HashSet};
use std::os::unix::fs::MetadataExt;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use walmgr_tests::TwoHosts;

/// Often enough to see every process of a run (the shortest, `ssh ... sync`, lives tens of
/// milliseconds); cheap, as only processes new since the run began are read.
const POLL: Duration = Duration::from_millis(20);

/// Names of processes that only wrap the one that works (`ip netns exec`, `runuser`).
pub const WRAPPERS: &[&str] = &["ip", "runuser"];
pub const SSHD: &str = "sshd";
pub const BACKEND: &str = "postgres backend";

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Side {
    Master,
    Standby,
}

impl Side {
    pub fn name(self) -> &'static str {
        match self {
            Side::Master => "master",
            Side::Standby => "standby",
        }
    }
}

/// The largest of one kind of process, in KiB.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Peak {
    /// VmHWM: everything resident, shared memory included.
    pub hwm_kb: u64,
    /// The largest RssAnon + RssFile seen (without shared memory), polled.
    pub private_kb: u64,
}

impl Peak {
    /// What the tables show: the private part for a PostgreSQL backend (its shared buffers
    /// are the server's), the high-water mark for everything else.
    pub fn shown_kb(&self, label: &str) -> u64 {
        if label == BACKEND {
            self.private_kb
        } else {
            self.hwm_kb
        }
    }

    fn merge(&mut self, other: Peak) {
        self.hwm_kb = self.hwm_kb.max(other.hwm_kb);
        self.private_kb = self.private_kb.max(other.private_kb);
    }
}

/// (host, kind of process) -> its peak. Kinds are process names, with walmgr split into
/// `walmgr backup` and `walmgr xserve` and every PostgreSQL process a `postgres backend`.
pub type Peaks = BTreeMap<(Side, String), Peak>;

/// Merges `more` into `into`, keeping the larger of each.
pub fn merge(into: &mut Peaks, more: &Peaks) {
    for (key, peak) in more {
        into.entry(key.clone()).or_default().merge(*peak);
    }
}

/// The largest process of `side` that does the transfer (not a wrapper, not sshd, not a
/// server backend): its kind and KiB.
pub fn tool(peaks: &Peaks, side: Side) -> Option<(String, u64)> {
    peaks
        .iter()
        .filter(|((s, label), _)| {
            *s == side && label != SSHD && label != BACKEND && !WRAPPERS.contains(&label.as_str())
        })
        .map(|((_, label), peak)| (label.clone(), peak.hwm_kb))
        .max_by_key(|(_, kb)| *kb)
}

/// (host, kind of process) -> CPU seconds its processes used.
pub type CpuTimes = BTreeMap<(Side, String), f64>;

/// What the whole machine did during a run, in CPUs (busy seconds / wall seconds).
#[derive(Debug, Clone, Copy, Default)]
pub struct MachineCpu {
    pub busy: f64,
    pub iowait: f64,
}

/// Everything one run's watch saw.
#[derive(Debug, Clone, Default)]
pub struct Seen {
    pub peaks: Peaks,
    pub cpu: CpuTimes,
    pub machine: MachineCpu,
}

/// Polls while a run lasts; [`Watch::finish`] returns what it saw.
pub struct Watch {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<(Peaks, CpuTimes)>>,
    stat_before: Option<CpuStat>,
    started: std::time::Instant,
}

impl Watch {
    /// Starts watching both hosts. Everything alive now (servers, the archiver's SSH
    /// session and its xserve, other people's work) is left out.
    pub fn start(hosts: &TwoHosts) -> Watch {
        let namespaces = [
            (netns_inode(&hosts.master.netns), Side::Master),
            (netns_inode(&hosts.standby.netns), Side::Standby),
        ];
        let baseline: HashSet<i32> = pids().collect();
        let stop = Arc::new(AtomicBool::new(false));
        let flag = Arc::clone(&stop);
        let thread = std::thread::spawn(move || poll(namespaces, baseline, &flag));
        Watch {
            stop,
            thread: Some(thread),
            stat_before: CpuStat::read(),
            started: std::time::Instant::now(),
        }
    }

    /// Stops polling (after one last round) and returns what it saw.
    pub fn finish(mut self) -> Seen {
        let wall = self.started.elapsed().as_secs_f64();
        let machine = match (self.stat_before, CpuStat::read()) {
            (Some(a), Some(b)) if wall > 0.0 => MachineCpu {
                busy: b.busy.saturating_sub(a.busy) as f64 / ticks_per_second() / wall,
                iowait: b.iowait.saturating_sub(a.iowait) as f64 / ticks_per_second() / wall,
            },
            _ => MachineCpu::default(),
        };
        self.stop.store(true, Ordering::SeqCst);
        let (peaks, cpu) = self
            .thread
            .take()
            .map(|t| t.join().unwrap_or_default())
            .unwrap_or_default();
        Seen {
            peaks,
            cpu,
            machine,
        }
    }
}

impl Drop for Watch {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
    }
}

fn poll(
    namespaces: [(u64, Side); 2],
    baseline: HashSet<i32>,
    stop: &AtomicBool,
) -> (Peaks, CpuTimes) {
    let mut sides: HashMap<i32, Side> = HashMap::new();
    // pid -> (host, kind, CPU ticks) as last seen.
    let mut cpu: HashMap<i32, (Side, String, u64)> = HashMap::new();
    // pid -> (name, kind) of its current program, so that walmgr's command line is read
    // once per exec, not every poll.
    let mut kinds: HashMap<i32, (String, String)> = HashMap::new();
    let mut peaks = Peaks::new();
    loop {
        let last_round = stop.load(Ordering::SeqCst);
        for pid in pids().filter(|p| !baseline.contains(p)) {
            // Not cached until found in a host: `ip netns exec` starts in the machine's own
            // namespace and enters the host's only before it execs the program.
            let side = match sides.get(&pid) {
                Some(side) => *side,
                None => match side_of(pid, &namespaces) {
                    Some(side) => *sides.entry(pid).or_insert(side),
                    None => continue,
                },
            };
            let Some(status) = Status::read(pid) else {
                continue;
            };
            let kind = match kinds.get(&pid) {
                Some((name, kind)) if *name == status.name => kind.clone(),
                _ => {
                    // Right after an exec the new name shows before the new command line:
                    // the next round tells (VmHWM only grows, so nothing is lost).
                    let Some(kind) = kind_of(pid, &status.name) else {
                        continue;
                    };
                    kinds.insert(pid, (status.name.clone(), kind.clone()));
                    kind
                }
            };
            if let Some(ticks) = cpu_ticks(pid) {
                cpu.insert(pid, (side, kind.clone(), ticks));
            }
            peaks.entry((side, kind)).or_default().merge(Peak {
                hwm_kb: status.hwm_kb,
                private_kb: status.anon_kb + status.file_kb,
            });
        }
        if last_round {
            let mut times = CpuTimes::new();
            for (side, kind, ticks) in cpu.into_values() {
                *times.entry((side, kind)).or_default() += ticks as f64 / ticks_per_second();
            }
            return (peaks, times);
        }
        std::thread::sleep(POLL);
    }
}

/// What the tables call the program `pid` runs now; None while its command line is not
/// there yet.
fn kind_of(pid: i32, name: &str) -> Option<String> {
    Some(match name {
        "walmgr" => {
            let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).ok()?;
            let words: Vec<&[u8]> = cmdline.split(|b| *b == 0).collect();
            if words.contains(&&b"xserve"[..]) {
                "walmgr xserve".into()
            } else if words.contains(&&b"backup"[..]) {
                "walmgr backup".into()
            } else if cmdline.is_empty() {
                return None;
            } else {
                "walmgr".into()
            }
        }
        "postgres" => BACKEND.into(),
        other => other.into(),
    })
}

/// The inode of a named network namespace (what /proc/PID/ns/net links to).
fn netns_inode(name: &str) -> u64 {
    let path = format!("/run/netns/{name}");
    std::fs::metadata(&path)
        .unwrap_or_else(|e| panic!("stat {path}: {e}"))
        .ino()
}

fn side_of(pid: i32, namespaces: &[(u64, Side); 2]) -> Option<Side> {
    let link = std::fs::read_link(format!("/proc/{pid}/ns/net")).ok()?;
    // "net:[4026532281]"
    let inode: u64 = link
        .to_str()?
        .strip_prefix("net:[")?
        .strip_suffix(']')?
        .parse()
        .ok()?;
    namespaces
        .iter()
        .find(|(ino, _)| *ino == inode)
        .map(|(_, side)| *side)
}

fn pids() -> impl Iterator<Item = i32> {
    std::fs::read_dir("/proc")
        .into_iter()
        .flatten()
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok())
}

/// utime + stime of a process (all its threads), in clock ticks.
fn cpu_ticks(pid: i32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // After the command name, which may hold spaces, in parentheses: fields 3 on.
    let rest = &stat[stat.rfind(')')? + 2..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    Some(utime + stime)
}

fn ticks_per_second() -> f64 {
    // SAFETY: plain libc call.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if hz > 0 {
        hz as f64
    } else {
        100.0
    }
}

/// The machine's CPU ticks so far, from the `cpu` line of /proc/stat.
#[derive(Debug, Clone, Copy)]
struct CpuStat {
    busy: u64,
    iowait: u64,
}

impl CpuStat {
    fn read() -> Option<CpuStat> {
        let text = std::fs::read_to_string("/proc/stat").ok()?;
        let line = text.lines().find(|l| l.starts_with("cpu "))?;
        let v: Vec<u64> = line
            .split_whitespace()
            .skip(1)
            .filter_map(|f| f.parse().ok())
            .collect();
        // user nice system idle iowait irq softirq steal
        let at = |i: usize| v.get(i).copied().unwrap_or(0);
        Some(CpuStat {
            busy: at(0) + at(1) + at(2) + at(5) + at(6) + at(7),
            iowait: at(4),
        })
    }
}

/// The fields of /proc/PID/status the watch needs (sizes in KiB).
struct Status {
    name: String,
    hwm_kb: u64,
    anon_kb: u64,
    file_kb: u64,
}

impl Status {
    /// None for a process that is gone, or has no address space (a kernel thread, a zombie).
    fn read(pid: i32) -> Option<Status> {
        let text = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
        let mut status = Status {
            name: String::new(),
            hwm_kb: 0,
            anon_kb: 0,
            file_kb: 0,
        };
        let mut has_memory = false;
        for line in text.lines() {
            let Some((key, value)) = line.split_once(':') else {
                continue;
            };
            let kb = || {
                value
                    .split_whitespace()
                    .next()
                    .and_then(|v| v.parse().ok())
                    .unwrap_or(0)
            };
            match key {
                "Name" => status.name = value.trim().to_string(),
                "VmHWM" => {
                    status.hwm_kb = kb();
                    has_memory = true;
                }
                "RssAnon" => status.anon_kb = kb(),
                "RssFile" => status.file_kb = kb(),
                _ => {}
            }
        }
        has_memory.then_some(status)
    }
}
