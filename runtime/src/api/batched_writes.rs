//! Batched writes: a serving thread sends the answers of one round of
//! ready connections together, after it has run them all.
//!
//! Why: on a loopback or same-host client (a load generator, a sidecar, a
//! gateway on the same machine) each write of an answer wakes the client's
//! thread, and the woken thread usually preempts the server at once, reads
//! that one answer, sends its next request and sleeps again. Every answer
//! then costs a context-switch round trip on both sides, and the more a
//! request costs the server, the more answers find the client asleep
//! (docs/benchmarks.md, "what the generator's wake-ups cost": a warm `hello` invoke was preempted
//! 0.63–0.81 times per request, the axum hello-world 0.12–0.20). Held back
//! until the thread has served every connection that was ready, the answers
//! of a round leave in a burst: the client wakes once, finds several
//! answers, and sends several requests, which the server finds together.
//! This is the pattern of Netty's `FlushConsolidationHandler` and of Redis,
//! which writes its replies just before it waits for events again.
//!
//! How: [`BatchedIo`] wraps a connection's socket. The first write after a
//! read is held: the connection's task is parked on this thread's [`Round`]
//! and the thread's [`round_releaser`] task is woken. A current-thread
//! runtime runs tasks in the order they were woken, so the releaser runs
//! after every connection task that was already queued; it ends the round
//! and wakes the held connections, which then write. A round therefore
//! lasts one pass over the run queue, never longer: a guest that runs for
//! seconds and yields every epoch tick delays its neighbours' answers by one
//! pass, not until it finishes (which is why this is a task and not
//! tokio's `on_thread_park` hook, which a busy thread never reaches). The
//! rest of a response, and any write not preceded by a read, is not held.
//! A thread without a releaser (any runtime but a serving thread's) writes
//! at once.

use std::cell::RefCell;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll, Waker};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

thread_local! {
    static ROUND: RefCell<Round> = const { RefCell::new(Round::new()) };
}

/// One serving thread's current round of held writes.
struct Round {
    /// Counts ended rounds; a connection held in round `n` may write once
    /// this has moved past `n`.
    number: u64,
    /// The connection tasks held in this round; the first one pushed
    /// wakes the releaser.
    held: Vec<Waker>,
    /// The thread's releaser task; `None` on threads without one.
    releaser: Option<Waker>,
}

impl Round {
    const fn new() -> Self {
        Round {
            number: 0,
            held: Vec::new(),
            releaser: None,
        }
    }
}

/// Runs for as long as the thread serves connections: ends each round the
/// first held write starts. Spawn it once on each serving thread's
/// current-thread runtime, before the connections.
pub async fn round_releaser() {
    /// Leaves the thread as it found it when the runtime drops the task, so
    /// later writes on this thread are not held for a releaser that is gone.
    struct Registered;
    impl Drop for Registered {
        fn drop(&mut self) {
            ROUND.with(|round| {
                let mut round = round.borrow_mut();
                round.releaser = None;
                round.number += 1;
                let held = std::mem::take(&mut round.held);
                drop(round);
                held.into_iter().for_each(Waker::wake);
            });
        }
    }
    let _registered = Registered;
    std::future::poll_fn(|cx| {
        let held = ROUND.with(|round| {
            let mut round = round.borrow_mut();
            if !round.releaser.as_ref().is_some_and(|w| w.will_wake(cx.waker())) {
                round.releaser = Some(cx.waker().clone());
            }
            if round.held.is_empty() {
                return Vec::new();
            }
            round.number += 1;
            std::mem::take(&mut round.held)
        });
        // Woken outside the borrow: waking only queues the tasks.
        held.into_iter().for_each(Waker::wake);
        Poll::<()>::Pending
    })
    .await;
}

/// Where a connection is in its exchange.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Gate {
    /// Writes go straight to the socket.
    Open,
    /// A request has been read: the next write waits for the round's end.
    AfterRead,
    /// Held in the given round.
    Held(u64),
}

/// A connection's socket whose first write after each read waits for the
/// end of the serving thread's round (see the module docs).
pub struct BatchedIo<S> {
    inner: S,
    gate: Gate,
}

impl<S> BatchedIo<S> {
    pub fn new(inner: S) -> Self {
        BatchedIo {
            inner,
            gate: Gate::Open,
        }
    }

    /// Ready when this connection may write now; otherwise holds it in the
    /// thread's round and arranges for the task to be woken at its end.
    fn poll_gate(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        match self.gate {
            Gate::Open => Poll::Ready(()),
            Gate::AfterRead | Gate::Held(_) => ROUND.with(|round| {
                let mut round = round.borrow_mut();
                if round.releaser.is_none() {
                    self.gate = Gate::Open;
                    return Poll::Ready(());
                }
                match self.gate {
                    Gate::Held(number) if number != round.number => {
                        self.gate = Gate::Open;
                        return Poll::Ready(());
                    }
                    // Polled again within its round (the read side woke
                    // it): its waker is still held.
                    Gate::Held(_) => return Poll::Pending,
                    _ => {}
                }
                let first = round.held.is_empty();
                round.held.push(cx.waker().clone());
                self.gate = Gate::Held(round.number);
                if first && let Some(releaser) = round.releaser.clone() {
                    drop(round);
                    releaser.wake();
                }
                Poll::Pending
            }),
        }
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for BatchedIo<S> {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let read = Pin::new(&mut self.inner).poll_read(cx, buf);
        if matches!(read, Poll::Ready(Ok(()))) && buf.filled().len() > before {
            self.gate = Gate::AfterRead;
        }
        read
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for BatchedIo<S> {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        std::task::ready!(self.poll_gate(cx));
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        std::task::ready!(self.poll_gate(cx));
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        // A close after a read waits for the round like a write, so it
        // does not overtake the answers held with it.
        std::task::ready!(self.poll_gate(cx));
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::time::Duration;

    use tokio::io::{AsyncReadExt, AsyncWriteExt, DuplexStream, duplex};

    use super::*;

    fn serving_thread() -> tokio::runtime::Runtime {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime")
    }

    /// A connection's server side: reads one byte, answers it.
    async fn echo_once(mut io: BatchedIo<DuplexStream>) -> BatchedIo<DuplexStream> {
        let mut byte = [0u8; 1];
        io.read_exact(&mut byte).await.expect("read");
        io.write_all(&byte).await.expect("write");
        io
    }

    #[test]
    fn without_a_releaser_writes_go_out_at_once() {
        serving_thread().block_on(async {
            let (mut client, server) = duplex(64);
            client.write_all(b"a").await.expect("send");
            let _server = echo_once(BatchedIo::new(server)).await;
            let mut answer = [0u8; 1];
            client.read_exact(&mut answer).await.expect("answer");
            assert_eq!(&answer, b"a");
        });
    }

    #[test]
    fn answers_of_one_round_are_written_after_every_ready_connection_ran() {
        serving_thread().block_on(async {
            let releaser = tokio::spawn(round_releaser());
            let mut clients = Vec::new();
            let mut servers = Vec::new();
            for byte in [b'a', b'b', b'c'] {
                let (mut client, server) = duplex(64);
                client.write_all(&[byte]).await.expect("send");
                clients.push(client);
                servers.push(tokio::spawn(echo_once(BatchedIo::new(server))));
            }
            // A task queued behind the connections sees whether any answer
            // left before the last connection had read its request.
            let mut first = clients.remove(0);
            let probe = tokio::spawn(async move {
                let mut answer = [0u8; 1];
                let early = futures::FutureExt::now_or_never(first.read_exact(&mut answer)).is_some();
                (early, first)
            });
            let (early, mut first) = probe.await.expect("probe");
            assert!(!early, "an answer left before the round ended");
            // Then the round ends and every answer arrives (bounded, so a
            // write held for good fails the test instead of hanging it).
            let answers = async {
                for server in servers {
                    server.await.expect("server task");
                }
                let mut answer = [0u8; 1];
                first.read_exact(&mut answer).await.expect("answer a");
                assert_eq!(&answer, b"a");
                for (client, want) in clients.iter_mut().zip([b'b', b'c']) {
                    client.read_exact(&mut answer).await.expect("answer");
                    assert_eq!(answer[0], want);
                }
            };
            let finished = tokio::time::timeout(Duration::from_secs(10), answers).await;
            assert!(finished.is_ok(), "held answers were never written");
            releaser.abort();
        });
    }

    #[test]
    fn a_task_that_never_idles_delays_an_answer_by_one_pass_only() {
        serving_thread().block_on(async {
            let _releaser = tokio::spawn(round_releaser());
            // Like a long guest call yielding every epoch tick: always
            // runnable, so the thread never parks.
            let stop = Arc::new(AtomicBool::new(false));
            let spinning = stop.clone();
            let busy = tokio::spawn(std::future::poll_fn(move |cx| {
                if spinning.load(Ordering::Relaxed) {
                    return Poll::Ready(());
                }
                cx.waker().wake_by_ref();
                Poll::Pending
            }));
            let (mut client, server) = duplex(64);
            client.write_all(b"z").await.expect("send");
            let _server = tokio::spawn(echo_once(BatchedIo::new(server)));
            let mut answer = [0u8; 1];
            let answered = tokio::time::timeout(Duration::from_secs(10), client.read_exact(&mut answer)).await;
            stop.store(true, Ordering::Relaxed);
            busy.await.expect("busy task");
            assert!(answered.is_ok(), "the answer waited for the busy task");
            assert_eq!(&answer, b"z");
        });
    }

    #[test]
    fn a_stopped_releaser_opens_held_writes() {
        serving_thread().block_on(async {
            let releaser = tokio::spawn(round_releaser());
            tokio::task::yield_now().await;
            releaser.abort();
            let _ = releaser.await;
            let (mut client, server) = duplex(64);
            client.write_all(b"q").await.expect("send");
            let _server = echo_once(BatchedIo::new(server)).await;
            let mut answer = [0u8; 1];
            client.read_exact(&mut answer).await.expect("answer");
            assert_eq!(&answer, b"q");
        });
    }
}
