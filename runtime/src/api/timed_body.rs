//! Request bodies that must keep arriving.
//!
//! hyper bounds how long a request head may take (`--header-read-timeout-secs`)
//! but not its body: a client sending one byte a second would hold a
//! connection, and for a buffered route a task slot of the serving thread,
//! for as long as it likes. [`TimedBody`] fails a body that goes
//! `--body-idle-timeout-secs` without a byte, or that is not complete
//! `--body-read-timeout-secs` after it started to wait for data; the route
//! answers 408 and the connection closes (its unread body cannot be
//! skipped).
//!
//! The clocks start at the first time the body has to wait: a body that
//! arrives with its request head — almost every invocation — never reads
//! the clock or arms a timer.

use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use hyper::body::{Body, Frame, SizeHint};
use tokio::time::{Instant, Sleep};

/// How long a body may take.
#[derive(Debug, Clone, Copy)]
pub struct BodyTimeouts {
    /// Without any data.
    pub idle: Duration,
    /// In all, from its first wait.
    pub total: Duration,
}

/// The error a [`TimedBody`] fails with.
#[derive(Debug, thiserror::Error)]
#[error("the request body {0}")]
pub struct BodyTimeout(&'static str);

/// A body that fails when it stops arriving (see the module docs).
pub struct TimedBody<B> {
    inner: B,
    timeouts: BodyTimeouts,
    /// Armed at the first wait: (the whole body's deadline, the timer).
    clock: Option<(Instant, Pin<Box<Sleep>>)>,
}

impl<B> TimedBody<B> {
    pub fn new(inner: B, timeouts: BodyTimeouts) -> TimedBody<B> {
        TimedBody {
            inner,
            timeouts,
            clock: None,
        }
    }
}

impl<B> Body for TimedBody<B>
where
    B: Body<Data = Bytes> + Unpin,
    B::Error: Into<axum::BoxError>,
{
    type Data = Bytes;
    type Error = axum::BoxError;

    fn poll_frame(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        let this = &mut *self;
        match Pin::new(&mut this.inner).poll_frame(cx) {
            Poll::Ready(frame) => {
                if let Some((whole, sleep)) = &mut this.clock {
                    // Data came: the idle clock starts over, within the
                    // whole body's deadline.
                    let next = (Instant::now() + this.timeouts.idle).min(*whole);
                    sleep.as_mut().reset(next);
                }
                Poll::Ready(frame.map(|f| f.map_err(Into::into)))
            }
            Poll::Pending => {
                let timeouts = this.timeouts;
                let (whole, sleep) = this.clock.get_or_insert_with(|| {
                    let now = Instant::now();
                    let whole = now + timeouts.total;
                    (
                        whole,
                        Box::pin(tokio::time::sleep_until((now + timeouts.idle).min(whole))),
                    )
                });
                match sleep.as_mut().poll(cx) {
                    Poll::Ready(()) => {
                        let why = if Instant::now() >= *whole {
                            "did not arrive in time (--body-read-timeout-secs)"
                        } else {
                            "stopped arriving (--body-idle-timeout-secs)"
                        };
                        Poll::Ready(Some(Err(Box::new(BodyTimeout(why)))))
                    }
                    Poll::Pending => Poll::Pending,
                }
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// Whether a body error (boxed somewhere below) is a [`BodyTimeout`].
pub fn is_timeout(e: &(dyn std::error::Error + 'static)) -> bool {
    let mut cause: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(e) = cause {
        if e.is::<BodyTimeout>() {
            return true;
        }
        cause = e.source();
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::BodyExt;

    /// A body that sends one byte every `every`, `n` times.
    fn dripping(
        every: Duration,
        n: usize,
    ) -> http_body_util::StreamBody<impl futures::Stream<Item = Result<Frame<Bytes>, std::io::Error>> + Unpin> {
        let s = futures::stream::unfold(0, move |i| async move {
            if i == n {
                return None;
            }
            tokio::time::sleep(every).await;
            Some((Ok(Frame::data(Bytes::from_static(b"x"))), i + 1))
        });
        http_body_util::StreamBody::new(Box::pin(s))
    }

    const T: BodyTimeouts = BodyTimeouts {
        idle: Duration::from_secs(10),
        total: Duration::from_secs(60),
    };

    #[tokio::test(start_paused = true)]
    async fn a_steady_body_arrives_whole() {
        let body = TimedBody::new(dripping(Duration::from_secs(1), 30), T);
        assert_eq!(body.collect().await.unwrap().to_bytes().len(), 30);
    }

    #[tokio::test(start_paused = true)]
    async fn a_body_that_stalls_fails_on_the_idle_timeout() {
        let body = TimedBody::new(dripping(Duration::from_secs(11), 3), T);
        let err = body.collect().await.unwrap_err();
        assert!(is_timeout(&*err), "{err}");
        assert!(err.to_string().contains("stopped arriving"), "{err}");
    }

    #[tokio::test(start_paused = true)]
    async fn a_body_that_drips_fails_on_the_whole_timeout() {
        let started = Instant::now();
        let body = TimedBody::new(dripping(Duration::from_secs(5), 1000), T);
        let err = body.collect().await.unwrap_err();
        assert!(err.to_string().contains("did not arrive in time"), "{err}");
        assert!(started.elapsed() <= Duration::from_secs(61), "{:?}", started.elapsed());
    }
}
