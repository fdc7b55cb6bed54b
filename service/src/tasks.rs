//! The one way a Cairn service runs background work: every loop gets the
//! service's cancellation token, every task is owned by one [`TaskSet`], and
//! shutdown cancels the token and awaits the tasks up to a drain deadline.
//! A task still running past the deadline is aborted and reported, so no
//! task outlives its service.
//!
//! Loops wait with [`pause`] (or `select!` on [`CancellationToken::cancelled`])
//! instead of a bare `sleep`, so a cancelled loop stops at its next wait;
//! work that must finish once started (a durable commit) is not raced
//! against the token, only the waits between units of work are.

use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::task::JoinSet;
pub use tokio_util::sync::CancellationToken;
use tracing::Instrument;

/// How long a service waits for its background tasks on shutdown.
pub const DRAIN_DEADLINE: Duration = Duration::from_secs(5);

/// Background tasks of one service. Cloning gives another handle to the
/// same set (tasks may spawn helpers of their own).
#[derive(Debug, Clone, Default)]
pub struct TaskSet {
    token: CancellationToken,
    set: Arc<Mutex<JoinSet<()>>>,
}

/// What a shutdown found.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Drained {
    /// Tasks that returned by themselves after cancellation.
    pub finished: usize,
    /// Tasks aborted at the deadline.
    pub aborted: usize,
}

impl TaskSet {
    pub fn new() -> Self {
        Self::default()
    }

    /// The token every task of this set watches.
    pub fn token(&self) -> CancellationToken {
        self.token.clone()
    }

    /// Runs `task` in the set, inside a span named `name`. After shutdown
    /// has begun nothing new starts.
    pub fn spawn(&self, name: &'static str, task: impl Future<Output = ()> + Send + 'static) {
        if self.token.is_cancelled() {
            tracing::debug!(task = name, "not started: shutting down");
            return;
        }
        let span = tracing::info_span!("task", name);
        self.set
            .lock()
            .expect("task set lock")
            .spawn(task.instrument(span));
    }

    /// Tasks not yet finished (finished ones are reaped first).
    pub fn running(&self) -> usize {
        let mut set = self.set.lock().expect("task set lock");
        while set.try_join_next().is_some() {}
        set.len()
    }

    /// Cancels the token and waits for every task up to `deadline`; tasks
    /// still running then are aborted.
    pub async fn shutdown(&self, deadline: Duration) -> Drained {
        self.token.cancel();
        let mut set = std::mem::take(&mut *self.set.lock().expect("task set lock"));
        let mut drained = Drained::default();
        let until = tokio::time::Instant::now() + deadline;
        loop {
            match tokio::time::timeout_at(until, set.join_next()).await {
                Ok(None) => break,
                Ok(Some(joined)) => {
                    drained.finished += 1;
                    if let Err(err) = joined
                        && err.is_panic()
                    {
                        tracing::error!(%err, "a background task panicked");
                    }
                }
                Err(_elapsed) => {
                    drained.aborted = set.len();
                    tracing::warn!(
                        tasks = drained.aborted,
                        ?deadline,
                        "background tasks did not stop in time; aborting them"
                    );
                    set.abort_all();
                    while set.join_next().await.is_some() {}
                    break;
                }
            }
        }
        drained
    }
}

/// Waits `duration` unless `token` is cancelled first; `false` means
/// cancelled (the loop should return).
pub async fn pause(token: &CancellationToken, duration: Duration) -> bool {
    tokio::select! {
        () = token.cancelled() => false,
        () = tokio::time::sleep(duration) => true,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn loops_stop_at_their_next_wait_and_stragglers_are_aborted() {
        let tasks = TaskSet::new();
        let iterations = Arc::new(std::sync::atomic::AtomicU64::new(0));
        let counted = iterations.clone();
        let token = tasks.token();
        tasks.spawn("polite", async move {
            while pause(&token, Duration::from_millis(100)).await {
                counted.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            }
        });
        // A task that ignores the token.
        tasks.spawn("stubborn", async {
            tokio::time::sleep(Duration::from_secs(3600)).await;
        });
        tokio::time::sleep(Duration::from_millis(350)).await;
        assert_eq!(iterations.load(std::sync::atomic::Ordering::Relaxed), 3);
        assert_eq!(tasks.running(), 2);
        let drained = tasks.shutdown(Duration::from_secs(1)).await;
        assert_eq!(
            drained,
            Drained {
                finished: 1,
                aborted: 1
            }
        );
        assert_eq!(tasks.running(), 0);
        tasks.spawn("late", async {});
        assert_eq!(tasks.running(), 0, "nothing starts after shutdown");
    }
}
