//! The stores' background threads, one chassis for all: a thread that runs
//! its work when woken or when its interval has passed, backs off after a
//! failure (without hammering a failing disk however often it is woken),
//! and on shutdown runs the work a last time, told that it is the last, and
//! ends. The span store's flush and maintenance, the log store's commits
//! and the metric store's blocks each run on one.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use parking_lot::{Condvar, Mutex};

use crate::StorageError;

/// Whether this run of the work is the last (the store is shutting down).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Run {
    Regular,
    Last,
}

#[derive(Default)]
struct Signal {
    woken: Mutex<bool>,
    condvar: Condvar,
    stopping: AtomicBool,
}

impl Signal {
    fn stopping(&self) -> bool {
        self.stopping.load(Ordering::Acquire)
    }

    /// Waits until woken, stopping, or `interval` has passed.
    fn wait(&self, interval: Duration) {
        let mut woken = self.woken.lock();
        if !*woken && !self.stopping() {
            self.condvar.wait_for(&mut woken, interval);
        }
        *woken = false;
    }

    /// Waits `pause` whatever wakes it, unless the store is stopping.
    fn pause(&self, pause: Duration) {
        let until = Instant::now() + pause;
        let mut woken = self.woken.lock();
        while !self.stopping() && Instant::now() < until {
            self.condvar.wait_until(&mut woken, until);
        }
    }
}

/// A running background thread of a store. Dropping it leaves the thread
/// running (a store is stopped by its `shutdown_blocking`, which calls
/// [`Worker::shutdown`]).
pub struct Worker {
    signal: Arc<Signal>,
    thread: Mutex<Option<JoinHandle<()>>>,
}

/// The pause after the `failures`-th failure in a row: 100 ms more each
/// time, at most 5 s.
fn backoff(failures: u32) -> Duration {
    Duration::from_millis(100 * u64::from(failures.min(50)))
}

impl Worker {
    /// Starts thread `name` running `work` every `interval` (or sooner when
    /// woken); each failure is given to `failed` with the count of failures
    /// in a row, and the next run waits a growing pause.
    pub fn spawn(
        name: &str,
        interval: Duration,
        mut work: impl FnMut(Run) -> Result<(), StorageError> + Send + 'static,
        failed: impl Fn(&StorageError, u32) + Send + 'static,
    ) -> Result<Worker, StorageError> {
        let signal = Arc::new(Signal::default());
        let shared = signal.clone();
        let thread = std::thread::Builder::new()
            .name(name.into())
            .spawn(move || {
                let mut failures = 0u32;
                loop {
                    shared.wait(interval);
                    let run = if shared.stopping() { Run::Last } else { Run::Regular };
                    match work(run) {
                        Ok(()) => failures = 0,
                        Err(e) => {
                            failures += 1;
                            failed(&e, failures);
                            if run == Run::Regular {
                                shared.pause(backoff(failures));
                            }
                        }
                    }
                    if run == Run::Last {
                        return;
                    }
                }
            })
            .map_err(|source| StorageError::Thread { name: name.to_owned(), source })?;
        Ok(Worker { signal, thread: Mutex::new(Some(thread)) })
    }

    /// Runs the work now rather than at the end of the interval.
    pub fn wake(&self) {
        *self.signal.woken.lock() = true;
        self.signal.condvar.notify_all();
    }

    /// Lets the work run a last time, then waits for the thread to end.
    /// Later calls return at once.
    pub fn shutdown(&self) {
        self.signal.stopping.store(true, Ordering::Release);
        {
            // Under the lock, so that a thread about to wait sees the flag.
            let _held = self.signal.woken.lock();
            self.signal.condvar.notify_all();
        }
        if let Some(thread) = self.thread.lock().take() {
            let _ = thread.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::AtomicU32;

    use super::*;

    #[test]
    fn runs_on_wake_and_interval_backs_off_and_runs_last_on_shutdown() {
        let runs = Arc::new(Mutex::new(Vec::new()));
        let failures = Arc::new(AtomicU32::new(0));
        let (seen, failed) = (runs.clone(), failures.clone());
        let worker = Worker::spawn(
            "test-worker",
            Duration::from_secs(3600),
            move |run| {
                let mut seen = seen.lock();
                seen.push(run);
                if seen.len() == 2 { Err(StorageError::Part("disk".into())) } else { Ok(()) }
            },
            move |_, n| failed.store(n, Ordering::Relaxed),
        )
        .expect("spawn");
        for expected in 1..=2 {
            worker.wake();
            let until = Instant::now() + Duration::from_secs(10);
            while runs.lock().len() < expected {
                assert!(Instant::now() < until, "woken work runs");
                std::thread::sleep(Duration::from_millis(5));
            }
        }
        assert_eq!(failures.load(Ordering::Relaxed), 1, "the failure was reported");
        // Shutdown interrupts the backoff pause and the hour-long interval.
        let started = Instant::now();
        worker.shutdown();
        assert!(started.elapsed() < Duration::from_secs(60));
        assert_eq!(*runs.lock(), [Run::Regular, Run::Regular, Run::Last]);
        worker.shutdown();
    }
}
