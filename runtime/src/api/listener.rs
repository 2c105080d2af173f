//! Serving HTTP connections: one single-threaded runtime per core.
//!
//! A connection is served start to finish on one thread. The threads are
//! pinned one per core (unless `--no-http-pinning`), and the acceptor (a
//! task on the main runtime) hands each accepted socket to the thread of
//! the core its packets arrive on, or, when that thread is already much
//! busier than the others, to the least-loaded one (see [`place`]); that
//! thread registers it with
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
//!
//! Each thread also batches its writes (unless `--no-write-batching`): the
//! answers of one pass over its ready connections leave together, so a
//! client on the same host wakes once per burst (see [`super::batched_writes`]).
//!
//! Every connection is bounded: its request heads must arrive within
//! `--header-read-timeout-secs` (which also closes a keep-alive connection
//! idle that long), its bodies must keep arriving ([`super::timed_body`]),
//! and one client address holds at most `--max-connections-per-ip` at once
//! ([`super::connection_slots`]). hyper's own answers to unparseable
//! requests get FC error bodies ([`super::parse_errors`]); with
//! `--tls-cert`/`--tls-key` the connection is TLS ([`super::tls`]).

use std::io;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use axum::body::Body;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::TcpListener;
use tokio::sync::{mpsc, oneshot};

use super::batched_writes::{BatchedIo, round_releaser};
use super::connection_slots::{ConnectionSlots, Slot};
use super::front::Front;
use super::parse_errors::FcParseErrors;
use super::timed_body::{BodyTimeouts, TimedBody};

/// An accepted connection on its way to a serving thread.
type Accepted = (std::net::TcpStream, Slot);

/// One serving thread as the acceptor sees it.
struct Worker {
    connections: mpsc::UnboundedSender<Accepted>,
    /// Connections open on this thread, for least-loaded placement.
    open: Arc<AtomicUsize>,
    /// The CPU this thread is pinned to, if pinned.
    cpu: Option<usize>,
}

/// How connections are served: how many serving threads, whether they
/// are pinned to cores, and the bounds every connection is held to.
#[derive(Clone)]
pub struct Placement {
    pub threads: usize,
    /// Pin thread `i` to the `i`-th core this process may run on (only when
    /// there are no more threads than cores).
    pub pin: bool,
    /// Send the answers of one round of ready connections together (see
    /// [`super::batched_writes`]).
    pub batch_writes: bool,
    /// A request head must arrive within this (and an idle keep-alive
    /// connection is closed after it).
    pub header_read_timeout: Duration,
    pub body_timeouts: BodyTimeouts,
    pub max_connections_per_ip: usize,
    /// Serve TLS on every connection.
    pub tls: Option<tokio_rustls::TlsAcceptor>,
}

/// Serves `service` on `listener` until `shutdown` resolves, then lets open
/// connections finish (graceful shutdown) and returns once every serving
/// thread has stopped.
pub async fn serve(
    listener: TcpListener,
    service: Front,
    placement: Placement,
    shutdown: impl Future<Output = ()>,
) -> io::Result<()> {
    let slots = ConnectionSlots::new(placement.max_connections_per_ip);
    let mut workers = Vec::with_capacity(placement.threads);
    let mut stopped = Vec::with_capacity(placement.threads);
    let threads = placement.threads.max(1);
    let cores = if placement.pin {
        core_affinity::get_core_ids().unwrap_or_default()
    } else {
        Vec::new()
    };
    // Pinning only makes sense with a thread per core at most: two threads
    // pinned to one core would take turns while another core idles.
    let pin = threads <= cores.len();
    for index in 0..threads {
        let core = if pin { cores.get(index).copied() } else { None };
        let (tx, rx) = mpsc::unbounded_channel();
        let open = Arc::new(AtomicUsize::new(0));
        let (done_tx, done_rx) = oneshot::channel::<()>();
        let service = service.clone();
        let counter = open.clone();
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
        let options = placement.clone();
        std::thread::Builder::new()
            .name(format!("wasmfc-http-{index}"))
            .spawn(move || {
                if let Some(core) = core
                    && !core_affinity::set_for_current(core)
                {
                    tracing::debug!(cpu = core.id, "could not pin a serving thread");
                }
                runtime.block_on(serve_connections(rx, service, counter, options));
                drop(done_tx);
            })?;
        workers.push(Worker {
            connections: tx,
            open,
            cpu: core.map(|c| c.id),
        });
        stopped.push(done_rx);
    }

    let mut shutdown = std::pin::pin!(shutdown);
    let mut outcome = Ok(());
    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            () = &mut shutdown => break,
        };
        let (stream, peer) = match accepted {
            Ok(accepted) => accepted,
            Err(e) => {
                // Out of file descriptors and the like: back off rather than
                // spin; the listener itself stays usable.
                tracing::warn!(error = %e, "accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let Some(slot) = slots.take(peer.ip()) else {
            tracing::warn!(%peer, limit = slots.per_ip(), "refused a connection: too many open from this address");
            // Best effort: the socket's send buffer is empty, so the short
            // answer fits; the connection is closed either way.
            let _ = stream.try_write(&super::connection_slots::refusal(slots.per_ip()));
            continue;
        };
        // No Nagle: a streamed (chunked) response ends with a small final
        // write that would otherwise wait for the client's delayed ACK
        // (~40 ms), which was the p99 of HTTP-trigger responses.
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
        let incoming = socket2::SockRef::from(&stream).cpu_affinity().ok();
        let Some(worker) = place(&workers, incoming) else {
            break;
        };
        worker.open.fetch_add(1, Ordering::Relaxed);
        if worker.connections.send((stream, slot)).is_err() {
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

/// Chooses the serving thread for a connection whose packets arrive on
/// core `incoming` (`SO_INCOMING_CPU`: on loopback the client's core, on a
/// NIC its receive queue's).
///
/// The thread pinned to that core is preferred: a client that stays on its
/// core then hands each request to a thread on the same core and gets the
/// answer back there, with no wake-up of another core between (on this
/// project's VMs such a wake-up costs ~100 µs, more than a warm invoke).
/// Locality gives way to balance when the local thread already has more
/// than twice the least-loaded thread's connections (plus a little slack
/// for the first few): a client that opens many connections from one core
/// must still get both cores' worth of serving.
fn place(workers: &[Worker], incoming: Option<usize>) -> Option<&Worker> {
    let open = |w: &Worker| w.open.load(Ordering::Relaxed);
    let least = workers.iter().min_by_key(|w| open(w))?;
    let local = incoming.and_then(|cpu| workers.iter().find(|w| w.cpu == Some(cpu)));
    match local {
        Some(w) if open(w) <= 2 * open(least) + LOCALITY_SLACK => Some(w),
        _ => Some(least),
    }
}

/// Connections a core's own thread may take beyond twice the least-loaded
/// thread's before placement falls back to balance.
const LOCALITY_SLACK: usize = 4;

/// One serving thread: takes connections from the acceptor and serves each
/// as a task on this thread, until the acceptor closes the channel; then
/// waits for open connections to finish their requests.
async fn serve_connections(
    mut incoming: mpsc::UnboundedReceiver<Accepted>,
    service: Front,
    open: Arc<AtomicUsize>,
    options: Placement,
) {
    let releaser = options.batch_writes.then(|| tokio::spawn(round_releaser()));
    let near_wake = tokio::spawn(keep_timer_wake_near());
    let graceful = GracefulShutdown::new();
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(options.header_read_timeout);
    let builder = Arc::new(builder);
    while let Some((stream, slot)) = incoming.recv().await {
        let stream = match tokio::net::TcpStream::from_std(stream) {
            Ok(stream) => stream,
            Err(e) => {
                open.fetch_sub(1, Ordering::Relaxed);
                tracing::warn!(error = %e, "could not register a connection");
                continue;
            }
        };
        let served = Served {
            service: service.clone(),
            builder: builder.clone(),
            graceful: graceful.watcher(),
            body_timeouts: options.body_timeouts,
        };
        let tls = options.tls.clone();
        let handshake_timeout = options.header_read_timeout;
        let open = open.clone();
        tokio::spawn(async move {
            let io = BatchedIo::new(stream);
            match tls {
                None => served.run(io).await,
                Some(acceptor) => match tokio::time::timeout(handshake_timeout, acceptor.accept(io)).await {
                    Ok(Ok(tls)) => served.run(tls).await,
                    Ok(Err(e)) => tracing::debug!(error = %e, "TLS handshake failed"),
                    Err(_) => tracing::debug!("TLS handshake timed out"),
                },
            }
            drop(slot);
            open.fetch_sub(1, Ordering::Relaxed);
        });
    }
    graceful.shutdown().await;
    near_wake.abort();
    if let Some(releaser) = releaser {
        releaser.abort();
    }
}

/// How far ahead a serving thread's timer driver plans its next wake at
/// most: less than any per-request timer (a guest's timeout is a second
/// at least, the header and body timeouts are seconds).
const NEAR_WAKE: Duration = Duration::from_millis(500);

/// Keeps a timer of this thread's runtime due within [`NEAR_WAKE`].
///
/// Every request arms timers (hyper's header-read timeout, the guest's
/// deadline). Tokio's time driver wakes its I/O driver — an `eventfd`
/// write and an extra `epoll_wait` — whenever a timer is armed that is due
/// before the wake it planned when it last parked, even from its own
/// thread while that thread is busy (tokio-rs/tokio#5207). With no timer
/// pending at the park, every first timer after it did so: about one wake
/// per two requests under load. A timer always due within half a second
/// keeps the planned wake earlier than any request's timer, for two
/// wake-ups a second.
async fn keep_timer_wake_near() {
    loop {
        tokio::time::sleep(NEAR_WAKE).await;
    }
}

/// What serving one connection needs, whatever its transport.
struct Served {
    service: Front,
    builder: Arc<auto::Builder<TokioExecutor>>,
    graceful: hyper_util::server::graceful::Watcher,
    body_timeouts: BodyTimeouts,
}

impl Served {
    async fn run<IO>(self, io: IO)
    where
        IO: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
    {
        let Served {
            service,
            builder,
            graceful,
            body_timeouts,
        } = self;
        let hyper_service = hyper::service::service_fn(move |req: hyper::Request<hyper::body::Incoming>| {
            service.handle(req.map(|body| Body::new(TimedBody::new(body, body_timeouts))))
        });
        let connection = builder.serve_connection_with_upgrades(TokioIo::new(FcParseErrors::new(io)), hyper_service);
        let connection = graceful.watch(connection.into_owned());
        if let Err(e) = connection.await {
            tracing::debug!(error = %e, "connection ended with an error");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn worker(cpu: Option<usize>, open: usize) -> Worker {
        Worker {
            connections: mpsc::unbounded_channel().0,
            open: Arc::new(AtomicUsize::new(open)),
            cpu,
        }
    }

    fn chosen(workers: &[Worker], incoming: Option<usize>) -> Option<usize> {
        place(workers, incoming).and_then(|w| w.cpu)
    }

    #[test]
    fn a_connection_goes_to_the_thread_of_its_core() {
        let workers = [worker(Some(0), 3), worker(Some(1), 0)];
        assert_eq!(chosen(&workers, Some(0)), Some(0), "local although busier");
        assert_eq!(chosen(&workers, Some(1)), Some(1));
    }

    #[test]
    fn balance_wins_over_locality_when_the_local_thread_is_much_busier() {
        let workers = [worker(Some(0), 2 * 3 + LOCALITY_SLACK + 1), worker(Some(1), 3)];
        assert_eq!(chosen(&workers, Some(0)), Some(1));
        let workers = [worker(Some(0), 2 * 3 + LOCALITY_SLACK), worker(Some(1), 3)];
        assert_eq!(chosen(&workers, Some(0)), Some(0), "at the limit locality still holds");
    }

    #[test]
    fn unknown_or_unpinned_cores_go_to_the_least_loaded_thread() {
        let workers = [worker(Some(0), 2), worker(Some(1), 1)];
        assert_eq!(chosen(&workers, None), Some(1));
        assert_eq!(chosen(&workers, Some(7)), Some(1), "a core without a serving thread");
        let unpinned = [worker(None, 2), worker(None, 1)];
        let least = place(&unpinned, Some(0)).map(|w| w.open.load(Ordering::Relaxed));
        assert_eq!(least, Some(1));
        assert!(place(&[], Some(0)).is_none());
    }
}
