//! Captured guest output: stdout and stderr of one invocation.
//!
//! Guests write into host memory, so every buffer here is bounded:
//! - the *log* (stdout and stderr interleaved, as FC's log tail) keeps the
//!   last `log_limit` bytes and counts what it dropped — a guest printing
//!   forever costs a fixed amount of memory and keeps running until its
//!   deadline;
//! - a command module's *result* (its stdout) is capped at the response
//!   limit; writing past it traps, failing only that invocation with
//!   `OutputLimitExceeded`.

use std::collections::VecDeque;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use parking_lot::Mutex;
use tokio::io::AsyncWrite;
use wasmtime_wasi::cli::{IsTerminal, StdoutStream};
use wasmtime_wasi::p2::{OutputStream, Pollable, StreamError, StreamResult};

#[derive(Debug)]
struct Buffers {
    log: VecDeque<u8>,
    log_limit: usize,
    log_dropped: u64,
    /// `Some` when stdout is also the invocation's result (command modules).
    result: Option<Vec<u8>>,
    result_limit: usize,
    result_overflowed: bool,
}

/// Shared capture state of one store. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Capture {
    inner: Arc<Mutex<Buffers>>,
}

/// What an invocation wrote.
#[derive(Debug, Default, Clone)]
pub struct Captured {
    /// The log, with a marker in front if older output was dropped.
    pub log: Bytes,
    /// A command's stdout (its result).
    pub result: Option<Bytes>,
    pub result_overflowed: bool,
}

impl Capture {
    /// A capture whose stdout only feeds the log (event components).
    pub fn log_only(log_limit: usize) -> Capture {
        Capture::new(log_limit, None)
    }

    /// A capture whose stdout is also the result (command modules).
    pub fn with_result(log_limit: usize, result_limit: usize) -> Capture {
        Capture::new(log_limit, Some(result_limit))
    }

    fn new(log_limit: usize, result_limit: Option<usize>) -> Capture {
        Capture {
            inner: Arc::new(Mutex::new(Buffers {
                log: VecDeque::new(),
                log_limit,
                log_dropped: 0,
                result: result_limit.map(|_| Vec::new()),
                result_limit: result_limit.unwrap_or(0),
                result_overflowed: false,
            })),
        }
    }

    pub fn stdout(&self) -> CaptureStream {
        CaptureStream {
            capture: self.clone(),
            is_stdout: true,
        }
    }

    pub fn stderr(&self) -> CaptureStream {
        CaptureStream {
            capture: self.clone(),
            is_stdout: false,
        }
    }

    /// Takes everything written so far, leaving the buffers empty for the
    /// next invocation of a reused instance.
    pub fn take(&self) -> Captured {
        let mut b = self.inner.lock();
        if b.log.is_empty() && b.log_dropped == 0 && b.result.as_ref().is_none_or(Vec::is_empty) {
            // Nothing written (most invocations of a quiet guest): no
            // buffers to allocate.
            let result_overflowed = std::mem::take(&mut b.result_overflowed);
            return Captured {
                log: Bytes::new(),
                result: b.result.as_ref().map(|_| Bytes::new()),
                result_overflowed,
            };
        }
        let mut log = Vec::with_capacity(b.log.len() + 64);
        if b.log_dropped > 0 {
            log.extend_from_slice(format!("[wasmfc: {} earlier bytes of output dropped]\n", b.log_dropped).as_bytes());
        }
        // Slice by slice: extending from `drain(..)` moved the bytes one
        // at a time.
        let (front, back) = b.log.as_slices();
        log.extend_from_slice(front);
        log.extend_from_slice(back);
        b.log.clear();
        b.log_dropped = 0;
        let result = b.result.as_mut().map(|r| Bytes::from(std::mem::take(r)));
        let result_overflowed = std::mem::take(&mut b.result_overflowed);
        Captured {
            log: Bytes::from(log),
            result,
            result_overflowed,
        }
    }

    /// The last `n` bytes of the log so far, leaving it in place (for a
    /// log tail taken while the guest may still be writing).
    pub fn log_tail(&self, n: usize) -> Bytes {
        let b = self.inner.lock();
        let skip = b.log.len().saturating_sub(n);
        Bytes::from(b.log.iter().skip(skip).copied().collect::<Vec<u8>>())
    }

    fn write(&self, is_stdout: bool, bytes: &[u8]) -> Result<(), ()> {
        let mut b = self.inner.lock();
        if is_stdout && let Some(limit) = b.result.as_ref().map(|_| b.result_limit) {
            let len = b.result.as_ref().map_or(0, Vec::len);
            if len + bytes.len() > limit {
                b.result_overflowed = true;
                return Err(());
            }
            if let Some(r) = b.result.as_mut() {
                r.extend_from_slice(bytes);
            }
        }
        let limit = b.log_limit;
        if bytes.len() >= limit {
            b.log_dropped += (b.log.len() + bytes.len() - limit) as u64;
            b.log.clear();
            b.log.extend(&bytes[bytes.len() - limit..]);
        } else {
            let overflow = (b.log.len() + bytes.len()).saturating_sub(limit);
            if overflow > 0 {
                b.log.drain(..overflow);
                b.log_dropped += overflow as u64;
            }
            b.log.extend(bytes);
        }
        Ok(())
    }
}

/// One of a store's output streams (stdout or stderr).
#[derive(Debug, Clone)]
pub struct CaptureStream {
    capture: Capture,
    is_stdout: bool,
}

impl IsTerminal for CaptureStream {
    fn is_terminal(&self) -> bool {
        false
    }
}

impl StdoutStream for CaptureStream {
    fn async_stream(&self) -> Box<dyn AsyncWrite + Send + Sync> {
        Box::new(self.clone())
    }

    fn p2_stream(&self) -> Box<dyn OutputStream> {
        Box::new(self.clone())
    }
}

const OUTPUT_LIMIT_MESSAGE: &str =
    "output limit exceeded: the result written to stdout is larger than the response limit";

#[wasmtime_wasi::async_trait]
impl Pollable for CaptureStream {
    async fn ready(&mut self) {}
}

#[wasmtime_wasi::async_trait]
impl OutputStream for CaptureStream {
    fn write(&mut self, bytes: Bytes) -> StreamResult<()> {
        self.capture
            .write(self.is_stdout, &bytes)
            .map_err(|()| StreamError::trap(OUTPUT_LIMIT_MESSAGE))
    }

    fn flush(&mut self) -> StreamResult<()> {
        Ok(())
    }

    fn check_write(&mut self) -> StreamResult<usize> {
        Ok(64 * 1024)
    }
}

impl AsyncWrite for CaptureStream {
    fn poll_write(self: Pin<&mut Self>, _cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        match self.capture.write(self.is_stdout, buf) {
            Ok(()) => Poll::Ready(Ok(buf.len())),
            Err(()) => Poll::Ready(Err(io::Error::other(OUTPUT_LIMIT_MESSAGE))),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn log_keeps_the_tail_and_counts_drops() {
        let c = Capture::log_only(8);
        c.write(true, b"0123456789").unwrap();
        c.write(false, b"ab").unwrap();
        let got = c.take();
        assert!(got.log.ends_with(b"456789ab"));
        assert!(String::from_utf8_lossy(&got.log).contains("4 earlier bytes"));
        assert!(c.take().log.is_empty(), "take leaves the buffers empty");
        c.write(true, b"abcdef").unwrap();
        assert_eq!(&c.log_tail(3)[..], b"def");
        assert_eq!(&c.log_tail(100)[..], b"abcdef", "log_tail leaves the log in place");
    }

    #[test]
    fn result_overflow_is_refused_and_flagged() {
        let c = Capture::with_result(1024, 4);
        c.write(true, b"abc").unwrap();
        assert!(c.write(true, b"de").is_err());
        c.write(false, b"err").unwrap();
        let got = c.take();
        assert_eq!(got.result.as_deref(), Some(&b"abc"[..]));
        assert!(got.result_overflowed);
        assert_eq!(&got.log[..], b"abcerr");
    }
}
