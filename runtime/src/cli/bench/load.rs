//! A closed-loop HTTP load generator, in the manner of `wrk`: a number of
//! HTTP/1.1 keep-alive connections, each sending its next request as soon as
//! the previous answer has been read. Latencies go into an HDR histogram.
//!
//! It speaks raw hyper connections rather than a pooled client so that the
//! generator costs as little as possible: the server and the generator share
//! the machine, and what the generator burns is not available to the server.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::Context;
use bytes::Bytes;
use hdrhistogram::Histogram;
use http::Request;
use http_body_util::{BodyExt, Full};
use hyper_util::rt::TokioIo;

/// When a load run ends.
#[derive(Debug, Clone, Copy)]
pub enum Until {
    /// After this long.
    Elapsed(Duration),
    /// After this many requests in total.
    Count(u64),
}

/// What a load run measured.
#[derive(Debug)]
pub struct LoadResult {
    /// Requests answered with a 2xx status.
    pub ok: u64,
    /// Requests answered otherwise, or that failed in transport.
    pub errors: u64,
    /// The first error seen, to tell the user what went wrong.
    pub first_error: Option<String>,
    pub elapsed: Duration,
    /// Latency of the successful requests, in microseconds.
    pub latency_us: Histogram<u64>,
}

impl LoadResult {
    /// Nothing measured yet.
    pub fn empty() -> LoadResult {
        LoadResult {
            ok: 0,
            errors: 0,
            first_error: None,
            elapsed: Duration::ZERO,
            latency_us: new_histogram(),
        }
    }

    pub fn per_second(&self) -> f64 {
        self.ok as f64 / self.elapsed.as_secs_f64().max(f64::EPSILON)
    }

    /// Adds another measurement of the same target (rounds of an
    /// alternating comparison).
    pub fn merge(&mut self, other: LoadResult) {
        self.ok += other.ok;
        self.errors += other.errors;
        self.first_error = self.first_error.take().or(other.first_error);
        self.elapsed += other.elapsed;
        let _ = self.latency_us.add(&other.latency_us);
    }

    /// The result, or an error if any request failed: figures from a run
    /// with failures would mislead.
    pub fn checked(self, what: &str) -> anyhow::Result<LoadResult> {
        match &self.first_error {
            Some(e) => anyhow::bail!("{what}: {} requests failed, first: {e}", self.errors),
            None => Ok(self),
        }
    }
}

/// Makes the request with the given sequence number.
pub type MakeRequest = dyn Fn(u64) -> Request<Full<Bytes>> + Send + Sync;

/// Runs `connections` closed loops against `addr` until `until`.
///
/// Like `wrk`, the loops run on one thread per core (at most one per
/// connection), each a single-threaded runtime, and each loop drives its own
/// connection in the same task. A request then costs the generator no
/// hand-off between tasks or threads: on a work-stealing runtime each
/// exchange woke the connection task from the request's task, often on the
/// other core, and that wake (tens of microseconds on a VM) was measured as
/// server latency — for the baseline and for wasmfc alike.
pub async fn run(
    addr: SocketAddr,
    connections: usize,
    until: Until,
    make: Arc<MakeRequest>,
) -> anyhow::Result<LoadResult> {
    run_paced(addr, connections, until, make, None).await
}

/// Like [`run`], but each loop waits `pause` after every answer before it
/// sends its next request: a client that sends now and then, whose
/// requests must not wait behind the server's other work.
pub async fn run_paced(
    addr: SocketAddr,
    connections: usize,
    until: Until,
    make: Arc<MakeRequest>,
    pause: Option<Duration>,
) -> anyhow::Result<LoadResult> {
    let connections = connections.max(1);
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let threads = connections.min(cores);
    let shared = Arc::new(Shared {
        sequence: AtomicU64::new(0),
        limit: match until {
            Until::Count(n) => n,
            Until::Elapsed(_) => u64::MAX,
        },
        deadline: match until {
            Until::Elapsed(d) => Some(Instant::now() + d),
            Until::Count(_) => None,
        },
        make,
        pause,
    });
    let started = Instant::now();
    let mut finished = Vec::with_capacity(threads);
    let cores = core_affinity::get_core_ids().unwrap_or_default();
    for thread in 0..threads {
        let core = cores.get(thread).copied();
        // Spread the connections evenly: the first `connections % threads`
        // threads take one more.
        let mine = connections / threads + usize::from(thread < connections % threads);
        let shared = shared.clone();
        let (done, result) = tokio::sync::oneshot::channel();
        std::thread::Builder::new()
            .name(format!("bench-load-{thread}"))
            .spawn(move || {
                // Pinned, as `wrk` is run under `taskset`: a loop thread that
                // stays on its core lets the server answer on that core.
                if let Some(core) = core {
                    core_affinity::set_for_current(core);
                }
                let outcome = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .map_err(anyhow::Error::from)
                    .and_then(|runtime| {
                        runtime.block_on(async {
                            let loops = (0..mine).map(|_| closed_loop(addr, &shared));
                            futures::future::try_join_all(loops).await
                        })
                    });
                let _ = done.send(outcome);
            })
            .context("starting a load thread")?;
        finished.push(result);
    }
    let mut result = LoadResult::empty();
    for thread in finished {
        for one in thread.await.context("a load thread panicked")?? {
            result.merge(one);
        }
    }
    // The loops ran side by side: the run took as long as it took, not the
    // sum of their (zero) `elapsed`.
    result.elapsed = started.elapsed();
    Ok(result)
}

/// What every loop of one run shares.
struct Shared {
    /// The next request's sequence number, across all loops.
    sequence: AtomicU64,
    /// Requests in all, for [`Until::Count`].
    limit: u64,
    deadline: Option<Instant>,
    make: Arc<MakeRequest>,
    /// Think time after each answer.
    pause: Option<Duration>,
}

/// One connection's closed loop; its `elapsed` is left zero.
async fn closed_loop(addr: SocketAddr, shared: &Shared) -> anyhow::Result<LoadResult> {
    let stream = tokio::net::TcpStream::connect(addr)
        .await
        .with_context(|| format!("connecting to {addr}"))?;
    stream.set_nodelay(true)?;
    let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
    let requests = async move {
        let mut result = LoadResult::empty();
        loop {
            if shared.deadline.is_some_and(|d| Instant::now() >= d) {
                break;
            }
            let n = shared.sequence.fetch_add(1, Ordering::Relaxed);
            if n >= shared.limit {
                break;
            }
            let request = (shared.make)(n);
            let sent = Instant::now();
            let outcome = match sender.send_request(request).await {
                Ok(response) => {
                    let status = response.status();
                    match response.into_body().collect().await {
                        Ok(_) if status.is_success() => Ok(()),
                        Ok(body) => Err(format!("{status}: {}", String::from_utf8_lossy(&body.to_bytes()))),
                        Err(e) => Err(format!("reading the body: {e}")),
                    }
                }
                Err(e) => Err(format!("sending: {e}")),
            };
            match outcome {
                Ok(()) => {
                    result.ok += 1;
                    result.latency_us.saturating_record(sent.elapsed().as_micros() as u64);
                }
                Err(e) => {
                    result.errors += 1;
                    result.first_error.get_or_insert(e);
                    if sender.ready().await.is_err() {
                        break;
                    }
                }
            }
            if let Some(pause) = shared.pause {
                tokio::time::sleep(pause).await;
            }
        }
        // Dropping the sender (moved in here) lets the connection finish.
        result
    };
    // The connection's own errors (the server closing it) show up as failed
    // requests above.
    let (_, result) = tokio::join!(connection, requests);
    Ok(result)
}

/// A histogram for microsecond latencies from 1 µs to an hour, 3 significant
/// digits.
pub fn new_histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 3_600_000_000, 3).unwrap_or_else(|_| Histogram::new(3).expect("sigfig 3 is valid"))
}

/// Closed loops that each POST the event `"bench"` (with `headers`) to
/// `path` on `addr`: an InvokeFunction, or the baseline's hello route.
pub async fn posts(
    addr: SocketAddr,
    path: &str,
    headers: Vec<(&'static str, String)>,
    connections: usize,
    until: Until,
) -> anyhow::Result<LoadResult> {
    let path = path.to_string();
    let make: Arc<MakeRequest> = Arc::new(move |_| post(addr, &path, &headers, Bytes::from_static(b"\"bench\"")));
    run(addr, connections, until, make).await
}

/// A POST with a body, as FC's InvokeFunction is.
pub fn post(addr: SocketAddr, path: &str, headers: &[(&str, String)], body: Bytes) -> Request<Full<Bytes>> {
    let mut builder = Request::post(path).header(http::header::HOST, addr.to_string());
    for (name, value) in headers {
        builder = builder.header(*name, value.as_str());
    }
    builder
        .body(Full::new(body))
        .unwrap_or_else(|_| Request::new(Full::new(Bytes::new())))
}

/// One target of an alternating comparison: a name for errors, a server
/// and the path to POST to.
pub type Target = (&'static str, SocketAddr, String);

/// Measures each target for `duration` with `connections` closed loops, in
/// `rounds` alternating rounds, and merges each target's rounds. On a noisy
/// machine a slow window then hits every target instead of deciding the
/// ratio. `warm_up`, when set, is run unmeasured before each measurement.
pub async fn alternating(
    targets: &[Target],
    connections: usize,
    rounds: u32,
    duration: Duration,
    warm_up: Option<Duration>,
) -> anyhow::Result<Vec<LoadResult>> {
    let mut merged: Vec<Option<LoadResult>> = targets.iter().map(|_| None).collect();
    for _round in 0..rounds {
        for ((name, addr, path), total) in targets.iter().zip(merged.iter_mut()) {
            if let Some(warm_up) = warm_up {
                posts(*addr, path, vec![], connections, Until::Elapsed(warm_up)).await?;
            }
            let result = posts(*addr, path, vec![], connections, Until::Elapsed(duration))
                .await?
                .checked(name)?;
            match total {
                Some(total) => total.merge(result),
                slot => *slot = Some(result),
            }
        }
    }
    merged
        .into_iter()
        .map(|r| r.context("no rounds were measured"))
        .collect()
}
