//! CPU time, from /proc: of the processes that ship (the worker, a walsender), of those that
//! receive (the standby's sshd sessions and `walmgr xserve`, pg_receivewal), and of the whole
//! machine (how busy it was while a variant ran).

use std::collections::BTreeMap;
use std::fs;

use walmgr_tests::children_of;

/// Clock ticks per second, the unit of /proc/PID/stat's CPU times.
fn ticks_per_second() -> f64 {
    // SAFETY: plain libc call.
    let t = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if t > 0 {
        t as f64
    } else {
        100.0
    }
}

/// utime + stime of `pid` in clock ticks: fields 14 and 15 of /proc/PID/stat (core's
/// `os::process::stat` reads the same file for liveness and start time, not these).
pub fn ticks(pid: i32) -> Option<u64> {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) may hold spaces and parentheses: count after the last ')',
    // where field 3 (state) starts; utime is field 14.
    let rest = stat.get(stat.rfind(')')? + 2..)?;
    let mut fields = rest.split_whitespace().skip(11);
    let utime: u64 = fields.next()?.parse().ok()?;
    let stime: u64 = fields.next()?.parse().ok()?;
    Some(utime + stime)
}

/// Time `pid` spent on a CPU in nanoseconds (first field of /proc/PID/schedstat): finer than
/// the 10 ms ticks, for the idle measurement where a few ticks are all there is.
pub fn on_cpu_ns(pid: i32) -> Option<u64> {
    fs::read_to_string(format!("/proc/{pid}/schedstat"))
        .ok()?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

pub fn ticks_to_seconds(ticks: u64) -> f64 {
    ticks as f64 / ticks_per_second()
}

/// CPU ticks of a set of processes at one moment.
#[derive(Debug, Clone, Default)]
pub struct Snapshot(BTreeMap<i32, u64>);

impl Snapshot {
    pub fn of(pids: &[i32]) -> Snapshot {
        Snapshot(pids.iter().filter_map(|&p| Some((p, ticks(p)?))).collect())
    }

    /// Seconds these processes used since `before`; one that was not there before counts
    /// in full (a new session). One that has gone since is lost: the caller checks the
    /// shipping process is the same one.
    pub fn seconds_since(&self, before: &Snapshot) -> f64 {
        let t: u64 = self
            .0
            .iter()
            .map(|(pid, now)| now.saturating_sub(*before.0.get(pid).unwrap_or(&0)))
            .sum();
        ticks_to_seconds(t)
    }
}

/// `pid` and all its descendants (the standby's sshd listener: its sessions, their
/// privilege-separated children and the `walmgr xserve` they run).
pub fn descendants(pid: i32) -> Vec<i32> {
    let mut all = Vec::new();
    let mut todo = vec![pid];
    while let Some(p) = todo.pop() {
        for (kid, _) in children_of(p) {
            all.push(kid);
            todo.push(kid);
        }
    }
    all
}

/// The machine's CPU counters (/proc/stat, first line): busy and total jiffies.
#[derive(Debug, Clone, Copy)]
pub struct Host {
    busy: u64,
    total: u64,
}

impl Host {
    pub fn now() -> Host {
        let text = fs::read_to_string("/proc/stat").unwrap_or_default();
        let fields: Vec<u64> = text
            .lines()
            .next()
            .unwrap_or("")
            .split_whitespace()
            .skip(1)
            .filter_map(|f| f.parse().ok())
            .collect();
        // user nice system idle iowait irq softirq steal (guest is inside user already).
        let total: u64 = fields.iter().take(8).sum();
        let idle = fields.get(3).copied().unwrap_or(0) + fields.get(4).copied().unwrap_or(0);
        Host {
            busy: total.saturating_sub(idle),
            total,
        }
    }

    /// Percent of all CPUs busy since `before`.
    pub fn busy_since(&self, before: &Host) -> f64 {
        let total = self.total.saturating_sub(before.total);
        if total == 0 {
            return f64::NAN;
        }
        100.0 * self.busy.saturating_sub(before.busy) as f64 / total as f64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn this_process_has_cpu_ticks_and_on_cpu_time() {
        let me = std::process::id() as i32;
        let mut x = 0u64;
        for i in 0..5_000_000u64 {
            x = x.wrapping_mul(31).wrapping_add(i);
        }
        assert!(x != 1);
        assert!(ticks(me).is_some());
        assert!(on_cpu_ns(me).is_some_and(|n| n > 0));
    }
}
