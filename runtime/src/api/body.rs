//! Buffering a request body within a limit.
//!
//! An oversized body is refused with a 413, but only after reading (and
//! throwing away) a bounded amount more of it: a server that answers and
//! closes while the client is still sending leaves unread bytes in its
//! socket, the kernel resets the connection, and the client sees a reset
//! instead of the 413 (reqwest and the SDKs report "connection reset", not
//! `EntityTooLarge`). Draining is bounded in bytes and in time, so an
//! endless body still costs little.

use std::time::Duration;

use axum::body::{Body, Bytes};
use http_body_util::BodyExt;

/// Most of an oversized body read past its limit before answering.
const DRAIN_BYTES: usize = 16 << 20;
/// Longest spent reading past the limit.
const DRAIN_TIME: Duration = Duration::from_secs(2);

/// The body was larger than its limit.
#[derive(Debug, thiserror::Error)]
#[error("the request body is larger than its {0}-byte limit")]
pub struct TooLarge(pub usize);

/// A body's bytes, refused beyond `limit` ([`TooLarge`]). A body that
/// arrives in one frame (an event sent with its request head, the usual
/// case) is returned as that frame; `collect()` would first queue it in a
/// `Collected`, an allocation per request (~400 instructions of a warm
/// invoke's ~40k).
pub(super) async fn collect_within(mut body: Body, limit: usize) -> Result<Bytes, axum::BoxError> {
    let mut only: Option<Bytes> = None;
    let mut joined = bytes::BytesMut::new();
    let mut seen = 0usize;
    while let Some(frame) = body.frame().await {
        let Ok(data) = frame?.into_data() else {
            continue; // trailers: not part of an event
        };
        seen += data.len();
        if seen > limit {
            drain(body).await;
            return Err(Box::new(TooLarge(limit)));
        }
        if only.is_none() && joined.is_empty() {
            only = Some(data);
        } else {
            joined.extend_from_slice(&only.take().unwrap_or_default());
            joined.extend_from_slice(&data);
        }
    }
    Ok(only.unwrap_or_else(|| joined.freeze()))
}

/// Reads and drops up to [`DRAIN_BYTES`] more of `body`, for at most
/// [`DRAIN_TIME`].
async fn drain(mut body: Body) {
    let read = async {
        let mut drained = 0usize;
        while drained <= DRAIN_BYTES {
            match body.frame().await {
                Some(Ok(frame)) => drained += frame.data_ref().map_or(0, Bytes::len),
                _ => break,
            }
        }
    };
    let _ = tokio::time::timeout(DRAIN_TIME, read).await;
}

#[cfg(test)]
mod tests {
    use super::*;

    fn body_of(frames: &[&'static str]) -> Body {
        let frames: Vec<Result<Bytes, std::convert::Infallible>> =
            frames.iter().map(|f| Ok(Bytes::from_static(f.as_bytes()))).collect();
        Body::from_stream(futures::stream::iter(frames))
    }

    #[tokio::test]
    async fn a_body_is_collected_whole_within_its_limit() {
        let cases: [&[&'static str]; 4] = [&[], &["event"], &["ev", "ent"], &["e", "v", "", "ent"]];
        for frames in cases {
            let got = collect_within(body_of(frames), 16).await.expect("within the limit");
            assert_eq!(got, frames.concat(), "{frames:?}");
        }
        let too_long = collect_within(body_of(&["0123456789", "0123456789", "more"]), 16).await;
        let err = too_long.expect_err("beyond the limit");
        assert!(err.downcast_ref::<TooLarge>().is_some());
    }

    #[tokio::test]
    async fn an_endless_oversized_body_is_refused_within_the_drain_bounds() {
        let endless =
            futures::stream::repeat_with(|| Ok::<_, std::convert::Infallible>(Bytes::from(vec![b'x'; 1 << 16])));
        let started = std::time::Instant::now();
        let err = collect_within(Body::from_stream(endless), 1024)
            .await
            .expect_err("too large");
        assert!(err.downcast_ref::<TooLarge>().is_some());
        assert!(started.elapsed() < DRAIN_TIME * 5, "{:?}", started.elapsed());
    }
}
