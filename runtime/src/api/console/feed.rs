//! The live feed: server-sent events from the store's task change feed,
//! narrowed to one function (or one task) when the page asks. A page does
//! not apply the events itself; it re-reads its own view (at most a few
//! times a second), so what it shows is always what a reload would show.
//! A listener that fell behind gets `resync` instead of the changes it
//! missed.

use std::convert::Infallible;
use std::time::Duration;

use axum::extract::{Query, State};
use axum::response::sse::{Event, KeepAlive, Sse};
use futures::Stream;
use serde::Deserialize;
use tokio::sync::broadcast::error::RecvError;

use crate::api::SharedState;
use crate::store::TaskChange;

#[derive(Deserialize, Default)]
pub struct FeedScope {
    service: Option<String>,
    function: Option<String>,
    id: Option<String>,
}

impl FeedScope {
    fn wants(&self, c: &TaskChange) -> bool {
        c.stateful
            && self.service.as_ref().is_none_or(|s| *s == c.service)
            && self.function.as_ref().is_none_or(|f| *f == c.function)
            && self.id.as_ref().is_none_or(|i| *i == c.invocation_id)
    }
}

fn event_of(c: &TaskChange) -> Event {
    Event::default().event("task").data(
        serde_json::json!({
            "service": c.service,
            "function": c.function,
            "invocationId": c.invocation_id,
            "status": c.status.as_str(),
        })
        .to_string(),
    )
}

pub async fn stream(
    State(app): State<SharedState>,
    Query(scope): Query<FeedScope>,
) -> Sse<impl Stream<Item = Result<Event, Infallible>>> {
    let rx = app.scheduler.store().task_changes();
    let events = futures::stream::unfold((rx, scope), |(mut rx, scope)| async move {
        loop {
            match rx.recv().await {
                Ok(c) if scope.wants(&c) => return Some((Ok(event_of(&c)), (rx, scope))),
                Ok(_) => continue,
                Err(RecvError::Lagged(_)) => {
                    return Some((Ok(Event::default().event("resync").data("lagged")), (rx, scope)));
                }
                Err(RecvError::Closed) => return None,
            }
        }
    });
    Sse::new(events).keep_alive(KeepAlive::new().interval(Duration::from_secs(15)))
}
