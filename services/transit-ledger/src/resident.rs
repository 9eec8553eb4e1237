//! Threads that live as long as the process, for the work that allocates the views.
//!
//! The allocator (mimalloc) gives each thread its own heap. When a thread exits, its heap is
//! walked and its pages abandoned, and the threads still running reclaim those pages as they
//! allocate and free. For a thread that built the views (gigabytes with a million movements)
//! that is seconds of CPU, landing on the runtime's workers while they serve queries: with a
//! tokio blocking-pool thread, which exits 10 s after its last task, it stalled GraphQL
//! requests for hundreds of milliseconds (`bench graphql`, docs/benchmarks.md). So a rebuild's
//! lanes and the snapshot reader and writer run here instead: a job goes to an idle resident
//! thread, or to a new one when none is idle, and no resident thread ever exits. Their number
//! is the largest number of such jobs ever run at once (two per rebuild, one per snapshot).

use std::panic::AssertUnwindSafe;
use std::sync::mpsc;

use parking_lot::Mutex;

type Job = Box<dyn FnOnce() + Send>;

/// The idle resident threads, each waiting on its job channel.
static IDLE: Mutex<Vec<mpsc::Sender<Job>>> = Mutex::new(Vec::new());

/// Why a resident job gave no result.
#[derive(Debug, thiserror::Error)]
pub enum ResidentError {
    /// No idle thread, and a new one could not be started.
    #[error("could not start a resident thread: {0}")]
    Spawn(#[source] std::io::Error),
    /// The job panicked (the thread survives it).
    #[error("a resident job panicked: {0}")]
    Panicked(String),
}

impl From<ResidentError> for std::io::Error {
    fn from(e: ResidentError) -> Self {
        std::io::Error::other(e)
    }
}

/// Runs `job` on a resident thread; the returned future resolves to its result. The job
/// starts at once (an idle thread takes it, or a new thread is started), whether or not the
/// future is awaited.
pub fn spawn<T: Send + 'static>(
    job: impl FnOnce() -> T + Send + 'static,
) -> impl std::future::Future<Output = Result<T, ResidentError>> {
    let (tx, rx) = tokio::sync::oneshot::channel();
    let job: Job = Box::new(move || {
        let result = std::panic::catch_unwind(AssertUnwindSafe(job)).map_err(|panic| {
            panic
                .downcast_ref::<&str>()
                .map(|s| (*s).to_owned())
                .or_else(|| panic.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "(no message)".to_owned())
        });
        let _ = tx.send(result);
    });
    let started = hand_over(job);
    async move {
        started?;
        match rx.await {
            Ok(Ok(value)) => Ok(value),
            Ok(Err(message)) => Err(ResidentError::Panicked(message)),
            // The job is dropped unrun only if the thread died, which catch_unwind prevents.
            Err(_) => Err(ResidentError::Panicked("the job was dropped".to_owned())),
        }
    }
}

/// Gives `job` to an idle resident thread, or to a new one.
fn hand_over(mut job: Job) -> Result<(), ResidentError> {
    loop {
        let idle = IDLE.lock().pop();
        match idle {
            Some(thread) => match thread.send(job) {
                Ok(()) => return Ok(()),
                // Unreachable (resident threads never exit); try another.
                Err(mpsc::SendError(back)) => job = back,
            },
            None => return start(job),
        }
    }
}

fn start(first: Job) -> Result<(), ResidentError> {
    static STARTED: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let n = STARTED.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let (tx, rx) = mpsc::channel::<Job>();
    std::thread::Builder::new()
        .name(format!("views-{n}"))
        .spawn(move || {
            first();
            loop {
                IDLE.lock().push(tx.clone());
                match rx.recv() {
                    Ok(job) => job(),
                    // Unreachable: `tx` is held here.
                    Err(_) => return,
                }
            }
        })
        .map(drop)
        .map_err(ResidentError::Spawn)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn thread_id() -> std::thread::ThreadId {
        std::thread::current().id()
    }

    #[tokio::test]
    async fn a_job_runs_on_a_thread_that_outlives_it_and_takes_the_next_job() {
        let first = spawn(thread_id).await.unwrap();
        // Give the thread a moment to mark itself idle, then see it reused rather than a new
        // thread started (other tests may run jobs concurrently, so allow a few threads).
        let mut seen = std::collections::HashSet::from([first]);
        let mut reused = false;
        for _ in 0..50 {
            tokio::time::sleep(std::time::Duration::from_millis(5)).await;
            let id = spawn(thread_id).await.unwrap();
            reused |= id == first || !seen.insert(id);
        }
        assert!(reused, "resident threads are reused, not one per job");
        assert!(seen.len() < 50);
    }

    #[tokio::test]
    async fn jobs_run_concurrently_on_distinct_threads() {
        // Two jobs that each wait for the other: they finish only if they run at once.
        let (a_tx, a_rx) = std::sync::mpsc::channel::<()>();
        let (b_tx, b_rx) = std::sync::mpsc::channel::<()>();
        let a = spawn(move || {
            a_tx.send(()).unwrap();
            b_rx.recv_timeout(std::time::Duration::from_secs(10))
                .is_ok()
        });
        let b = spawn(move || {
            b_tx.send(()).unwrap();
            a_rx.recv_timeout(std::time::Duration::from_secs(10))
                .is_ok()
        });
        let (a, b) = tokio::join!(a, b);
        assert!(a.unwrap() && b.unwrap());
    }

    #[tokio::test]
    async fn a_panicking_job_reports_its_message_and_its_thread_survives() {
        let err = spawn(|| -> u8 { panic!("view corrupted") })
            .await
            .unwrap_err();
        assert!(
            matches!(&err, ResidentError::Panicked(m) if m == "view corrupted"),
            "{err}"
        );
        assert_eq!(spawn(|| 7).await.unwrap(), 7);
    }
}
