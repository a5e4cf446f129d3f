//! One task per (subscription, probe): runs every interval at a stable offset
//! derived from the names, so thousands of tenants do not fire together, and
//! never overlaps itself.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tokio::task::JoinHandle;
use tokio::time::Instant;

use crate::config::Config;
use crate::probe::{FailureReason, Outcome, Workload};
use crate::runner::{Mode, Runner};

/// FNV-1a: a stable hash (std's is randomised per process).
fn fnv1a(parts: &[&str]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for p in parts {
        for b in p.bytes().chain(std::iter::once(0)) {
            h ^= u64::from(b);
            h = h.wrapping_mul(0x0100_0000_01b3);
        }
    }
    h
}

/// The probe's phase within its interval, from its names.
pub fn offset(sub: &str, probe: &str, interval: Duration) -> Duration {
    let ms = millis(interval).max(1);
    Duration::from_millis(fnv1a(&[sub, probe]) % ms)
}

/// Time from `now_unix_ms` to the next instant whose phase (Unix time modulo
/// the interval) equals the offset: stable across restarts and replicas.
pub fn delay_to_phase(now_unix_ms: u64, offset: Duration, interval: Duration) -> Duration {
    let i = millis(interval).max(1);
    let o = millis(offset) % i;
    let n = now_unix_ms % i;
    // Both below `i`: no sum that could overflow for huge intervals.
    Duration::from_millis(if o >= n { o - n } else { i - (n - o) })
}

/// Whole milliseconds, saturating at `u64::MAX`.
fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

/// Farther than any wait that matters; tokio caps timers at about two years anyway.
const FAR: Duration = Duration::from_secs(2 * 365 * 24 * 3600);

/// `t + d`, or [`FAR`] from `t` where that would overflow.
fn later(t: Instant, d: Duration) -> Instant {
    t.checked_add(d).unwrap_or_else(|| t + FAR)
}

struct Task {
    interval: Duration,
    handle: JoinHandle<()>,
}

/// Owns the probe tasks.
pub struct Scheduler {
    runner: Runner,
    tasks: Mutex<HashMap<(String, String), Task>>,
}

impl Scheduler {
    /// A scheduler with no tasks; call [`Scheduler::apply`].
    pub fn new(runner: Runner) -> Self {
        Scheduler { runner, tasks: Mutex::new(HashMap::new()) }
    }

    /// Starts tasks for new probes, stops those of removed probes and
    /// restarts those whose interval changed. Others keep their rhythm.
    pub fn apply(&self, config: &Config) {
        let now_unix_ms = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default().as_millis() as u64;
        let mut tasks = self.tasks.lock().unwrap_or_else(|e| e.into_inner());
        let mut wanted = HashMap::new();
        for sub in &config.subscriptions {
            for p in &sub.probes {
                wanted.insert((sub.name.clone(), p.name.clone()), (p.interval, Workload::of(&p.kind)));
            }
        }
        tasks.retain(|key, task| {
            let keep = wanted.get(key).is_some_and(|(interval, _)| *interval == task.interval);
            if !keep {
                task.handle.abort();
            }
            keep
        });
        for (key, (interval, workload)) in wanted {
            if tasks.contains_key(&key) {
                continue;
            }
            let first = delay_to_phase(now_unix_ms, offset(&key.0, &key.1, interval), interval);
            let runner = self.runner.clone();
            let (sub, probe) = key.clone();
            let handle = tokio::spawn(probe_loop(runner, sub, probe, interval, workload, first));
            tasks.insert(key, Task { interval, handle });
        }
    }

    /// The number of running probe tasks.
    pub fn task_count(&self) -> usize {
        self.tasks.lock().unwrap_or_else(|e| e.into_inner()).len()
    }

    /// Stops every task.
    pub fn shutdown(&self) {
        let mut tasks = self.tasks.lock().unwrap_or_else(|e| e.into_inner());
        for (_, t) in tasks.drain() {
            t.handle.abort();
        }
    }
}

impl Drop for Scheduler {
    fn drop(&mut self) {
        self.shutdown();
    }
}

async fn probe_loop(
    runner: Runner,
    sub: String,
    probe: String,
    interval: Duration,
    workload: Workload,
    first: Duration,
) {
    let mut next = later(Instant::now(), first);
    loop {
        tokio::time::sleep_until(next).await;
        // Throttled by Graph: this subscription's next request to the workload waits.
        if let Some(until) = runner.throttled_until(&sub, workload) {
            tokio::time::sleep_until(until).await;
        }
        match run_once(&runner, &sub, &probe).await {
            RunResult::Ran => {}
            // Removed by a reload that has not stopped this task yet.
            RunResult::Gone => return,
        }
        next = later(next, interval);
        let now = Instant::now();
        if next <= now {
            // The run (or a throttling wait) overran: skip the missed ticks, keep the phase.
            let behind = now - next;
            let skip = behind.as_nanos() / interval.as_nanos().max(1) + 1;
            let skipped = u32::try_from(skip).ok().and_then(|n| interval.checked_mul(n)).unwrap_or(FAR);
            next = later(next, skipped);
        }
    }
}

enum RunResult {
    Ran,
    Gone,
}

/// Aborts the task when dropped, so stopping the probe's loop stops its run too.
struct AbortOnDrop(JoinHandle<bool>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// One scheduled run in a task of its own: a panic in it (a bug) fails that
/// run, recorded as `invalid_response` and logged, instead of ending the
/// probe's loop until a restart.
async fn run_once(runner: &Runner, sub: &str, probe: &str) -> RunResult {
    let started = Instant::now();
    let mut task = {
        let (runner, sub, probe) = (runner.clone(), sub.to_string(), probe.to_string());
        AbortOnDrop(tokio::spawn(async move { runner.run(&sub, &probe, Mode::Scheduled).await.is_some() }))
    };
    match (&mut task.0).await {
        Ok(true) => RunResult::Ran,
        Ok(false) => RunResult::Gone,
        Err(e) if e.is_panic() => {
            // The panic message is not repeated: it may quote text from a peer.
            tracing::error!(
                subscription = sub,
                probe,
                "probe run panicked (a bug in m365mon, please report it); recorded as invalid_response, next run on schedule"
            );
            let failed = Outcome::Failure(FailureReason::InvalidResponse);
            runner.store().record(sub, probe, &failed, started.elapsed(), None);
            RunResult::Ran
        }
        // Only `AbortOnDrop` aborts it, and then this future is gone too.
        Err(_) => RunResult::Gone,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn offsets_are_stable_and_within_interval() {
        let i = Duration::from_secs(60);
        let a = offset("contoso", "exchange", i);
        assert_eq!(a, offset("contoso", "exchange", i));
        assert!(a < i);
        assert_ne!(offset("contoso", "exchange", i), offset("contoso", "teams", i));
        // ("ab","c") and ("a","bc") must not collide by concatenation.
        assert_ne!(fnv1a(&["ab", "c"]), fnv1a(&["a", "bc"]));
    }

    #[test]
    fn offsets_spread_over_the_interval() {
        let i = Duration::from_secs(60);
        let mut buckets = [0u32; 6];
        for n in 0..600 {
            let o = offset(&format!("tenant{n}"), "organization", i);
            buckets[(o.as_secs() / 10) as usize] += 1;
        }
        // 600 names over six 10 s slots: each slot gets a fair share.
        for b in buckets {
            assert!((60..=140).contains(&b), "uneven spread: {buckets:?}");
        }
    }

    #[test]
    fn phase_delay() {
        let i = Duration::from_secs(60);
        assert_eq!(delay_to_phase(120_000, Duration::from_secs(10), i), Duration::from_secs(10));
        assert_eq!(delay_to_phase(125_000, Duration::from_secs(10), i), Duration::from_secs(5));
        assert_eq!(delay_to_phase(131_000, Duration::from_secs(10), i), Duration::from_secs(59));
        assert_eq!(delay_to_phase(130_000, Duration::from_secs(10), i), Duration::ZERO);
    }

    #[test]
    fn huge_intervals_do_not_overflow() {
        for i in [Duration::MAX, Duration::from_millis(u64::MAX), Duration::from_millis(u64::MAX / 2 + 7)] {
            let now = 1_750_000_000_000;
            let o = offset("contoso", "exchange", i);
            let d = delay_to_phase(now, o, i);
            assert!(d <= i, "{d:?}");
            // The phase is reached: (now + d) mod i == o mod i.
            let i_ms = millis(i);
            assert_eq!((u128::from(now) + d.as_millis()) % u128::from(i_ms), u128::from(millis(o) % i_ms));
        }
        assert_eq!(
            delay_to_phase(5, Duration::from_millis(u64::MAX - 1), Duration::MAX),
            Duration::from_millis(u64::MAX - 6)
        );
    }
}
