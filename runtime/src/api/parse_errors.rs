//! FC error bodies for the answers hyper writes on its own.
//!
//! When a request head cannot be parsed (a bad method or header, a URI
//! over 64 KB, headers over the buffer), hyper answers 400, 414 or 431 with
//! an empty body and closes the connection; no service of ours ever sees
//! the request, and hyper has no hook to shape that answer. Every error a
//! client gets from wasmfc must still be FC's `{"ErrorCode","ErrorMessage"}`
//! with an `X-Fc-Request-Id`, so [`FcParseErrors`] sits between hyper and
//! the socket and recognises those answers — a `4xx` status line whose head
//! has no `x-fc-request-id`, which every answer of ours carries (the request
//! id is set around every route) — and writes an FC error in their place.
//! Everything else passes through untouched; the check is a prefix
//! comparison per write.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// A connection's socket, with hyper's own error answers rewritten.
pub struct FcParseErrors<S> {
    inner: S,
    /// A rewritten answer still to be written, and how much of it was.
    pending: Option<(Vec<u8>, usize)>,
}

impl<S> FcParseErrors<S> {
    pub fn new(inner: S) -> FcParseErrors<S> {
        FcParseErrors { inner, pending: None }
    }
}

/// The FC answer for hyper's answer `head`, if `head` is one of hyper's own
/// error answers.
fn rewrite(head: &[u8]) -> Option<Vec<u8>> {
    let status = head
        .strip_prefix(b"HTTP/1.1 4")
        .or_else(|| head.strip_prefix(b"HTTP/1.0 4"))?;
    let end = head.windows(4).position(|w| w == b"\r\n\r\n")?;
    let head_text = String::from_utf8_lossy(&head[..end]).to_ascii_lowercase();
    if head_text.contains("\r\nx-fc-request-id:") {
        return None;
    }
    let code: u16 = std::str::from_utf8(status.get(..2)?).ok()?.parse::<u16>().ok()? + 400;
    let (error_code, message) = match code {
        414 => (
            "URITooLong",
            "the request URI is longer than this server accepts (64 KB)",
        ),
        431 => (
            "RequestHeaderFieldsTooLarge",
            "the request's headers are larger than this server accepts (too many, or too long)",
        ),
        _ => (
            "InvalidArgument",
            "the request is not valid HTTP: its method, URI or a header could not be parsed",
        ),
    };
    let status = http::StatusCode::from_u16(code).ok()?;
    Some(super::error::raw_error_answer(status, error_code, message))
}

impl<S: AsyncWrite + Unpin> FcParseErrors<S> {
    /// Writes what is left of a rewritten answer.
    fn poll_pending(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        while let Some((bytes, written)) = &mut self.pending {
            if *written == bytes.len() {
                self.pending = None;
                break;
            }
            let n = std::task::ready!(Pin::new(&mut self.inner).poll_write(cx, &bytes[*written..]))?;
            if n == 0 {
                return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
            }
            *written += n;
        }
        Poll::Ready(Ok(()))
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for FcParseErrors<S> {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for FcParseErrors<S> {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        std::task::ready!(self.poll_pending(cx))?;
        if let Some(answer) = rewrite(buf) {
            self.pending = Some((answer, 0));
            // hyper's bytes count as written: ours go in their place.
            let _ = self.poll_pending(cx)?;
            return Poll::Ready(Ok(buf.len()));
        }
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        std::task::ready!(self.poll_pending(cx))?;
        // hyper writes its own answers as one head without a body.
        if let [head] = bufs
            && let Some(answer) = rewrite(head)
        {
            self.pending = Some((answer, 0));
            let _ = self.poll_pending(cx)?;
            return Poll::Ready(Ok(head.len()));
        }
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        std::task::ready!(self.poll_pending(cx))?;
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        std::task::ready!(self.poll_pending(cx))?;
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_hypers_own_error_answers_are_rewritten() {
        let hyper_400 = b"HTTP/1.1 400 Bad Request\r\ncontent-length: 0\r\ndate: x\r\n\r\n";
        let answer = String::from_utf8(rewrite(hyper_400).unwrap()).unwrap();
        assert!(answer.starts_with("HTTP/1.1 400 Bad Request\r\n"), "{answer}");
        let (head, body) = answer.split_once("\r\n\r\n").unwrap();
        assert!(head.contains("x-fc-request-id: "), "{head}");
        let body: serde_json::Value = serde_json::from_str(body).unwrap();
        assert_eq!(body["ErrorCode"], "InvalidArgument");
        let too_long = rewrite(b"HTTP/1.1 414 URI Too Long\r\ncontent-length: 0\r\n\r\n").unwrap();
        assert!(String::from_utf8(too_long).unwrap().contains("\"URITooLong\""));
        let big = rewrite(b"HTTP/1.1 431 Request Header Fields Too Large\r\n\r\n").unwrap();
        assert!(String::from_utf8(big).unwrap().starts_with("HTTP/1.1 431 "));
        // Ours carry a request id; successes and bodies are not heads.
        assert!(rewrite(b"HTTP/1.1 404 Not Found\r\nx-fc-request-id: r\r\n\r\n").is_none());
        assert!(rewrite(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n").is_none());
        assert!(rewrite(b"HTTP/1.1 4").is_none());
        assert!(rewrite(b"{\"a\": 1}").is_none());
    }
}
