//! Serving HTTP connections: one single-threaded runtime per core.
//!
//! A connection is served start to finish on one thread. The acceptor (a
//! task on the main runtime) hands each accepted socket to the serving
//! thread with the fewest open connections; that thread registers it with
//! its own reactor and runs hyper on it, and a synchronous invocation's
//! guest runs there too.
//!
//! Why not the main multi-thread runtime, as `axum::serve` does: on a warm
//! invoke the server's own work is small (tens of microseconds), and on the
//! work-stealing scheduler a good part of the rest went to moving the
//! connection between cores. hyper wakes the connection task from inside
//! its own poll when the handler takes the request body; tokio treats that
//! self-wake as a yield and wakes another worker to steal the task, so a
//! request crossed cores (a futex wake and cold caches) on every exchange.
//! On a current-thread runtime a self-wake just re-queues the task on the
//! same thread. Background work (the task scheduler, orchestrations, the
//! autoscaler, the pool's reaper) stays on the main runtime: it is started
//! there, and orchestrations, which API requests wake, are spawned on the
//! handle the orchestration engine was started on.

use std::io;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use axum::body::Body;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::TcpListener;
use tokio::sync::{mpsc, oneshot};

use super::front::Front;

/// One serving thread as the acceptor sees it.
struct Worker {
    connections: mpsc::UnboundedSender<std::net::TcpStream>,
    /// Connections open on this thread, for least-loaded placement.
    open: Arc<AtomicUsize>,
}

/// Serves `service` on `listener` until `shutdown` resolves, then lets open
/// connections finish (graceful shutdown) and returns once every serving
/// thread has stopped.
pub async fn serve(
    listener: TcpListener,
    service: Front,
    threads: usize,
    shutdown: impl Future<Output = ()>,
) -> io::Result<()> {
    let mut workers = Vec::with_capacity(threads);
    let mut stopped = Vec::with_capacity(threads);
    for index in 0..threads.max(1) {
        let (tx, rx) = mpsc::unbounded_channel();
        let open = Arc::new(AtomicUsize::new(0));
        let (done_tx, done_rx) = oneshot::channel::<()>();
        let service = service.clone();
        let counter = open.clone();
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
        std::thread::Builder::new()
            .name(format!("wasmfc-http-{index}"))
            .spawn(move || {
                runtime.block_on(serve_connections(rx, service, counter));
                drop(done_tx);
            })?;
        workers.push(Worker { connections: tx, open });
        stopped.push(done_rx);
    }

    let mut shutdown = std::pin::pin!(shutdown);
    let mut outcome = Ok(());
    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            () = &mut shutdown => break,
        };
        let stream = match accepted {
            Ok((stream, _peer)) => stream,
            Err(e) => {
                // Out of file descriptors and the like: back off rather than
                // spin; the listener itself stays usable.
                tracing::warn!(error = %e, "accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        if let Err(e) = stream.set_nodelay(true) {
            tracing::debug!(error = %e, "could not set TCP_NODELAY");
        }
        let stream = match stream.into_std() {
            Ok(stream) => stream,
            Err(e) => {
                tracing::warn!(error = %e, "could not detach an accepted connection");
                continue;
            }
        };
        let Some(worker) = workers.iter().min_by_key(|w| w.open.load(Ordering::Relaxed)) else {
            break;
        };
        worker.open.fetch_add(1, Ordering::Relaxed);
        if worker.connections.send(stream).is_err() {
            // Only a panic ends a serving thread before shutdown.
            outcome = Err(io::Error::other("an HTTP serving thread has stopped"));
            break;
        }
    }
    drop(listener);
    // Closing the channels tells each thread to stop taking connections and
    // to let the open ones finish.
    drop(workers);
    for done in stopped {
        let _ = done.await;
    }
    outcome
}

/// One serving thread: takes connections from the acceptor and serves each
/// as a task on this thread, until the acceptor closes the channel; then
/// waits for open connections to finish their requests.
async fn serve_connections(
    mut incoming: mpsc::UnboundedReceiver<std::net::TcpStream>,
    service: Front,
    open: Arc<AtomicUsize>,
) {
    let graceful = GracefulShutdown::new();
    let builder = auto::Builder::new(TokioExecutor::new());
    while let Some(stream) = incoming.recv().await {
        let stream = match tokio::net::TcpStream::from_std(stream) {
            Ok(stream) => stream,
            Err(e) => {
                open.fetch_sub(1, Ordering::Relaxed);
                tracing::warn!(error = %e, "could not register a connection");
                continue;
            }
        };
        let service = service.clone();
        let hyper_service = hyper::service::service_fn(move |req: hyper::Request<hyper::body::Incoming>| {
            service.handle(req.map(Body::new))
        });
        let connection = builder.serve_connection_with_upgrades(TokioIo::new(stream), hyper_service);
        let connection = graceful.watch(connection.into_owned());
        let open = open.clone();
        tokio::spawn(async move {
            if let Err(e) = connection.await {
                tracing::debug!(error = %e, "connection ended with an error");
            }
            open.fetch_sub(1, Ordering::Relaxed);
        });
    }
    graceful.shutdown().await;
}
