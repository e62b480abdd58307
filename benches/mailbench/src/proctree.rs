//! What a server process tree costs: CPU time and memory summed over a process and all its
//! descendants, read from /proc. Dovecot is a master with many children (one imap process
//! per session), sealpost is one process; summing over the tree measures both alike.

use std::collections::HashMap;
use std::fs;
use std::time::Duration;

use anyhow::{Context, bail};

/// Linux reports CPU times in USER_HZ ticks, which is 100 on every architecture it
/// exports to user space (the kernel's HZ is hidden behind it).
const TICKS_PER_SECOND: u64 = 100;

/// Every live process whose ancestry includes `root` (and `root` itself).
pub fn tree(root: u32) -> anyhow::Result<Vec<u32>> {
    let mut children: HashMap<u32, Vec<u32>> = HashMap::new();
    let mut root_alive = false;
    for entry in fs::read_dir("/proc").context("cannot read /proc")? {
        let Ok(pid) = entry?.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        // A process may exit between readdir and read: skip it.
        let Ok(stat) = fs::read_to_string(format!("/proc/{pid}/stat")) else {
            continue;
        };
        if pid == root {
            root_alive = true;
        }
        if let Some(ppid) = stat_fields(&stat).and_then(|f| f.get(1)?.parse().ok()) {
            children.entry(ppid).or_default().push(pid);
        }
    }
    if !root_alive {
        bail!("server process {root} is not running");
    }
    let mut pids = vec![root];
    let mut next = 0;
    while next < pids.len() {
        if let Some(kids) = children.get(&pids[next]) {
            pids.extend(kids);
        }
        next += 1;
    }
    Ok(pids)
}

/// CPU time split by where it was spent.
#[derive(Debug, Clone, Copy, Default)]
pub struct CpuTimes {
    pub user: Duration,
    pub system: Duration,
}

impl CpuTimes {
    pub fn total(&self) -> Duration {
        self.user + self.system
    }

    pub fn since(&self, earlier: &CpuTimes) -> CpuTimes {
        CpuTimes {
            user: self.user.saturating_sub(earlier.user),
            system: self.system.saturating_sub(earlier.system),
        }
    }
}

/// The CPU time the tree has used, including the children it has already reaped: a
/// reaped child's time is in its parent's cutime/cstime, so summing
/// utime+stime+cutime+cstime over the live tree counts every process that ever ran in
/// it exactly once (Dovecot's login processes come and go with each connection).
pub fn cpu(root: u32) -> anyhow::Result<CpuTimes> {
    let (mut user, mut system) = (0, 0);
    for pid in tree(root)? {
        let Ok(stat) = fs::read_to_string(format!("/proc/{pid}/stat")) else {
            continue;
        };
        if let Some(fields) = stat_fields(&stat) {
            // utime, stime, cutime, cstime: fields 14 to 17 of proc(5).
            let tick = |i: usize| fields[i].parse::<u64>().unwrap_or(0);
            user += tick(11) + tick(13);
            system += tick(12) + tick(14);
        }
    }
    Ok(CpuTimes {
        user: ticks_to_duration(user),
        system: ticks_to_duration(system),
    })
}

/// CPU time the whole machine has spent busy (everything but idle and iowait), from
/// /proc/stat: with the server's and the client's own time taken out, what is left is
/// other work competing for the same cores during a measurement.
pub fn machine_busy() -> Duration {
    let Ok(stat) = fs::read_to_string("/proc/stat") else {
        return Duration::ZERO;
    };
    let Some(cpu) = stat.lines().next().and_then(|l| l.strip_prefix("cpu ")) else {
        return Duration::ZERO;
    };
    let ticks: Vec<u64> = cpu
        .split_whitespace()
        .map(|t| t.parse().unwrap_or(0))
        .collect();
    // user nice system idle iowait irq softirq steal (guest time is already in user).
    let busy: u64 = ticks
        .iter()
        .take(8)
        .enumerate()
        .filter(|(i, _)| *i != 3 && *i != 4)
        .map(|(_, t)| t)
        .sum();
    ticks_to_duration(busy)
}

/// The CPU time the tree's live threads have used, in nanoseconds from the scheduler
/// (`/proc/PID/task/TID/schedstat`) rather than 10 ms ticks: precise enough for a run of
/// a tenth of a second, but blind to processes and threads that exit, so only for runs
/// over which the tree stays the same (one long session).
pub fn cpu_precise(root: u32) -> anyhow::Result<Duration> {
    let mut nanos = 0;
    for pid in tree(root)? {
        let Ok(tasks) = fs::read_dir(format!("/proc/{pid}/task")) else {
            continue;
        };
        for task in tasks.flatten() {
            let Ok(schedstat) = fs::read_to_string(task.path().join("schedstat")) else {
                continue;
            };
            nanos += schedstat
                .split_whitespace()
                .next()
                .and_then(|ns| ns.parse::<u64>().ok())
                .unwrap_or(0);
        }
    }
    Ok(Duration::from_nanos(nanos))
}

/// CPU time the calling thread has used, in nanoseconds from the scheduler.
pub fn thread_cpu() -> Duration {
    fs::read_to_string("/proc/thread-self/schedstat")
        .ok()
        .and_then(|s| s.split_whitespace().next()?.parse().ok())
        .map(Duration::from_nanos)
        .unwrap_or_default()
}

/// CPU time this process (the load generator) has used.
pub fn own_cpu() -> Duration {
    fs::read_to_string("/proc/self/stat")
        .ok()
        .as_deref()
        .and_then(stat_fields)
        .map(|fields| {
            ticks_to_duration(
                fields[11..13]
                    .iter()
                    .map(|f| f.parse::<u64>().unwrap_or(0))
                    .sum(),
            )
        })
        .unwrap_or_default()
}

/// Memory of a process tree, in KiB.
#[derive(Debug, Clone, Copy, Default)]
pub struct Memory {
    pub processes: usize,
    /// Resident pages summed per process: shared pages count once per process.
    pub rss_kib: u64,
    /// Proportional set size: each shared page split among its sharers, so the sum over a
    /// tree is what the tree really occupies.
    pub pss_kib: u64,
    /// The anonymous part of the PSS (heap, stacks): memory the processes allocated, as
    /// opposed to mapped files such as libraries.
    pub pss_anon_kib: u64,
}

pub fn memory(root: u32) -> anyhow::Result<Memory> {
    let mut total = Memory::default();
    for pid in tree(root)? {
        let Ok(rollup) = fs::read_to_string(format!("/proc/{pid}/smaps_rollup")) else {
            continue;
        };
        total.processes += 1;
        total.rss_kib += rollup_field(&rollup, "Rss:");
        total.pss_kib += rollup_field(&rollup, "Pss:");
        total.pss_anon_kib += rollup_field(&rollup, "Pss_Anon:");
    }
    Ok(total)
}

/// The kernel's slab memory, machine-wide, in KiB (`/proc/meminfo`): where socket
/// structures live (about 4 KiB for each end of a TCP connection). Not part of any
/// process's RSS or PSS, so reported on its own; other activity on the machine moves it.
pub fn kernel_slab_kib() -> u64 {
    let Ok(meminfo) = fs::read_to_string("/proc/meminfo") else {
        return 0;
    };
    rollup_field(&meminfo, "Slab:")
}

fn ticks_to_duration(ticks: u64) -> Duration {
    Duration::from_millis(ticks * 1000 / TICKS_PER_SECOND)
}

/// The fields of /proc/PID/stat after the parenthesised command name (which may itself
/// contain spaces and parentheses): index 0 is the state (field 3 of proc(5)), 1 the
/// ppid, 11..=14 utime, stime, cutime and cstime.
fn stat_fields(stat: &str) -> Option<Vec<&str>> {
    let after_name = &stat[stat.rfind(')')? + 1..];
    let fields: Vec<&str> = after_name.split_whitespace().collect();
    (fields.len() > 14).then_some(fields)
}

fn rollup_field(rollup: &str, name: &str) -> u64 {
    rollup
        .lines()
        .find_map(|line| line.strip_prefix(name))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|kib| kib.parse().ok())
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_fields_survive_a_command_name_with_spaces_and_parentheses() {
        let stat = "42 (imap (a) b) S 7 42 42 0 -1 4194560 1 0 0 0 15 5 3 2 20 0 1 0";
        let fields = stat_fields(stat).unwrap();
        assert_eq!(fields[0], "S");
        assert_eq!(fields[1], "7");
        assert_eq!(&fields[11..15], ["15", "5", "3", "2"]);
    }

    #[test]
    fn own_process_is_its_own_tree_and_has_memory() {
        let me = std::process::id();
        assert_eq!(tree(me).unwrap()[0], me);
        let memory = memory(me).unwrap();
        assert!(memory.rss_kib > 0 && memory.pss_kib > 0);
    }
}
