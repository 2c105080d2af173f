//! Where CPU-bound guests run: on guest threads, not on the threads that
//! serve HTTP.
//!
//! A synchronous invocation starts on the serving thread that read its
//! request (a warm call then costs no thread hand-off, the point of the
//! serving threads). A guest that is still running after a whole epoch tick
//! has shown it burns CPU: it is then moved, between two polls, to the
//! *guest threads* — a multi-thread runtime with a thread per core at a
//! lower scheduling priority (nice +10) — and its caller awaits it there.
//! The serving thread goes back to its connections, and when a request
//! arrives while guests spin, the kernel runs the serving thread first, so
//! short requests are not queued behind long guests (eight spinning guests
//! on two cores added tens of milliseconds to `hello` while they shared
//! the serving threads; docs/benchmarks.md has the figures). The guests
//! themselves lose little: nothing else wants those cores most of the time.
//!
//! The move is a plain `spawn` of the boxed call future: wasmtime's async
//! calls are `Send` and may be polled from another thread between polls.
//! Dropping the caller aborts the moved call, so a client that goes away
//! still ends its guest, as it did inline. `--no-guest-offload` keeps every
//! guest on the thread it started on (for A/B runs).

use std::future::Future;
use std::pin::Pin;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::task::Poll;

use super::interrupt::StopHandle;

/// Whether CPU-bound guests move to the guest threads (`--no-guest-offload`
/// clears it). Process-wide, like the guest threads themselves.
static ENABLED: AtomicBool = AtomicBool::new(true);

/// The scheduling niceness of the guest threads: a serving thread woken by
/// a request preempts a spinning guest at once.
const GUEST_NICE: i32 = 10;

/// Calls moved to the guest threads so far (`wasmfc_guest_offloads_total`).
static MOVED: AtomicU64 = AtomicU64::new(0);

pub fn moved() -> u64 {
    MOVED.load(Ordering::Relaxed)
}

pub fn set_enabled(enabled: bool) {
    ENABLED.store(enabled, Ordering::Relaxed);
}

thread_local! {
    /// Set on the guest threads: a guest already there is not moved again.
    static ON_GUEST_THREAD: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// The guest threads (started on first use, never stopped: a runtime may not
/// be dropped from inside another, and they are the process's for its life).
fn guest_runtime() -> &'static tokio::runtime::Runtime {
    static RUNTIME: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    RUNTIME.get_or_init(|| {
        let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(threads)
            .thread_name("wasmfc-guest")
            .enable_all()
            .on_thread_start(|| {
                ON_GUEST_THREAD.with(|on| on.set(true));
                run_anywhere();
                lower_priority();
            })
            .build()
            .expect("starting the guest threads")
    })
}

/// Starts the guest threads now, from the calling thread (the server calls
/// it at start, from its main thread).
pub fn start() {
    let _ = guest_runtime();
}

/// Lets the calling thread run on every CPU the process may use. A thread
/// inherits the affinity of the thread that started it, and the guest
/// threads may be started from a serving thread pinned to one core.
fn run_anywhere() {
    #[cfg(target_os = "linux")]
    {
        // SAFETY: the set is a plain bitmask owned here; getpid names the
        // main thread, whose affinity is the process's own; 0 names this one.
        let done = unsafe {
            let mut set: libc::cpu_set_t = std::mem::zeroed();
            let size = std::mem::size_of::<libc::cpu_set_t>();
            libc::sched_getaffinity(libc::getpid(), size, &mut set) == 0 && libc::sched_setaffinity(0, size, &set) == 0
        };
        if !done {
            tracing::debug!("could not widen the affinity of a guest thread");
        }
    }
}

/// Lowers the calling thread's scheduling priority (Linux: a thread's nice
/// value is its own).
fn lower_priority() {
    #[cfg(target_os = "linux")]
    {
        // SAFETY: gettid has no preconditions; setpriority on our own tid
        // only changes this thread's niceness (raising it needs no privilege).
        let done = unsafe {
            let tid = libc::gettid();
            libc::setpriority(libc::PRIO_PROCESS, tid as libc::id_t, GUEST_NICE)
        };
        if done != 0 {
            tracing::debug!("could not lower the priority of a guest thread");
        }
    }
}

/// Aborts a moved call when its caller is dropped.
struct AbortOnDrop<T>(tokio::task::JoinHandle<T>);

impl<T> Drop for AbortOnDrop<T> {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Runs `call` (one guest call, whose epoch callback reports through
/// `stop`) here until the guest proves CPU-bound, then on the guest threads.
///
/// The call comes boxed: its state is kilobytes (wasmtime's call futures
/// within), and boxed it is moved as a pointer — into this future, into a
/// spawned task — rather than copied by value at each step.
pub async fn run<F>(mut call: Pin<Box<F>>, stop: StopHandle) -> F::Output
where
    F: Future + Send + 'static,
    F::Output: Send + 'static,
{
    if !ENABLED.load(Ordering::Relaxed) || ON_GUEST_THREAD.with(|on| on.get()) {
        return call.await;
    }
    let here = std::future::poll_fn(|cx| match call.as_mut().poll(cx) {
        Poll::Ready(out) => Poll::Ready(Some(out)),
        Poll::Pending if stop.is_cpu_bound() => Poll::Ready(None),
        Poll::Pending => Poll::Pending,
    })
    .await;
    if let Some(out) = here {
        return out;
    }
    MOVED.fetch_add(1, Ordering::Relaxed);
    let mut moved = AbortOnDrop(guest_runtime().spawn(call));
    match (&mut moved.0).await {
        Ok(out) => out,
        Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
        Err(e) => unreachable!("a moved guest call is only aborted by dropping its caller: {e}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A call that yields a few times; on its second poll it reports itself
    /// CPU-bound, as the epoch callback would.
    async fn busy(stop: StopHandle) -> std::thread::ThreadId {
        for i in 0..5 {
            if i == 1 {
                stop.mark_cpu_bound();
            }
            tokio::task::yield_now().await;
        }
        std::thread::current().id()
    }

    #[test]
    fn a_cpu_bound_call_finishes_on_a_guest_thread_and_a_short_one_here() {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let here = std::thread::current().id();
        rt.block_on(async {
            let quick = run(Box::pin(async { std::thread::current().id() }), StopHandle::new()).await;
            assert_eq!(quick, here);
            let moved = run(Box::pin(busy(StopHandle::new())), StopHandle::new()).await;
            assert_eq!(moved, here, "not marked through the handle it was given: stays");
            let stop = StopHandle::new();
            let moved = run(Box::pin(busy(stop.clone())), stop).await;
            assert_ne!(moved, here);
        });
    }

    #[test]
    fn dropping_the_caller_ends_a_moved_call() {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let ended = std::sync::Arc::new(AtomicBool::new(false));
        rt.block_on(async {
            let stop = StopHandle::new();
            let flag = stop.clone();
            struct SetOnDrop(std::sync::Arc<AtomicBool>);
            impl Drop for SetOnDrop {
                fn drop(&mut self) {
                    self.0.store(true, Ordering::SeqCst);
                }
            }
            let guard = SetOnDrop(ended.clone());
            let call = async move {
                let _guard = guard;
                flag.mark_cpu_bound();
                std::future::pending::<()>().await
            };
            let caller = tokio::time::timeout(std::time::Duration::from_millis(50), run(Box::pin(call), stop));
            assert!(caller.await.is_err(), "the call never ends by itself");
        });
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while !ended.load(Ordering::SeqCst) {
            assert!(std::time::Instant::now() < deadline, "the moved call was not dropped");
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
    }
}
