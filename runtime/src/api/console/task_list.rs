//! A task list's filters as the URL holds them, and one page of a
//! function's tasks (or every function's) under them, as the templates
//! show it.

use chrono::{NaiveDateTime, TimeZone, Utc};

use super::PageError;
use super::views::TaskLine;
use crate::api::SharedState;
use crate::store::TaskFilter;
use crate::tasks::TaskState;

/// Page sizes the list offers.
const PAGE_SIZES: [usize; 4] = [20, 50, 100, 200];

/// The list's filters, as the URL holds them (repeated `status`).
#[derive(Debug, Clone, Default)]
pub struct ListParams {
    pub statuses: Vec<TaskState>,
    pub prefix: String,
    pub qualifier: String,
    /// `datetime-local` text, in the zone `tz_offset_min` says.
    pub from: String,
    pub to: String,
    /// The viewer's `Date.getTimezoneOffset()` (minutes west of UTC).
    pub tz_offset_min: i64,
    pub ascending: bool,
    pub size: usize,
    pub next: Option<(i64, i64)>,
}

impl ListParams {
    pub fn parse(raw: Option<&str>) -> Result<ListParams, PageError> {
        let mut p = ListParams {
            size: PAGE_SIZES[0],
            ..Default::default()
        };
        for (k, v) in form_urlencoded::parse(raw.unwrap_or_default().as_bytes()) {
            let v = v.trim().to_string();
            match k.as_ref() {
                "status" if !v.is_empty() => p
                    .statuses
                    .push(TaskState::parse(&v).ok_or_else(|| PageError::invalid(format!("unknown status '{v}'")))?),
                "prefix" => p.prefix = v,
                "qualifier" => p.qualifier = v,
                "from" => p.from = v,
                "to" => p.to = v,
                "tz" => p.tz_offset_min = v.parse().unwrap_or(0),
                "order" => p.ascending = v == "asc",
                "size" => {
                    p.size = v
                        .parse()
                        .ok()
                        .filter(|n| PAGE_SIZES.contains(n))
                        .ok_or_else(|| PageError::invalid(format!("page size must be one of {PAGE_SIZES:?}")))?
                }
                "next" => {
                    p.next = Some(
                        v.split_once('.')
                            .and_then(|(t, s)| Some((t.parse().ok()?, s.parse().ok()?)))
                            .ok_or_else(|| PageError::invalid(format!("invalid page token '{v}'")))?,
                    )
                }
                _ => {}
            }
        }
        Ok(p)
    }

    fn time_ms(&self, text: &str) -> Result<Option<i64>, PageError> {
        if text.is_empty() {
            return Ok(None);
        }
        let local = NaiveDateTime::parse_from_str(text, "%Y-%m-%dT%H:%M")
            .or_else(|_| NaiveDateTime::parse_from_str(text, "%Y-%m-%dT%H:%M:%S"))
            .map_err(|_| PageError::invalid(format!("'{text}' is not a date and time")))?;
        Ok(Some(
            Utc.from_utc_datetime(&local).timestamp_millis() + self.tz_offset_min * 60_000,
        ))
    }

    /// The store filter these parameters mean.
    /// The store filter over `function`'s tasks, or every function's.
    pub fn filter_in(&self, function: Option<(String, String)>) -> Result<TaskFilter, PageError> {
        Ok(TaskFilter {
            function,
            qualifier: Some(self.qualifier.clone()).filter(|q| !q.is_empty()),
            id_prefix: Some(self.prefix.clone()).filter(|p| !p.is_empty()),
            statuses: self.statuses.clone(),
            started_begin_ms: self.time_ms(&self.from)?,
            started_end_ms: self.time_ms(&self.to)?,
            descending: !self.ascending,
            limit: self.size,
            after: self.next,
            include_payload: false,
        })
    }

    /// The query string of these filters (without the page token), for
    /// links that keep the view.
    pub fn query(&self) -> String {
        let mut q = form_urlencoded::Serializer::new(String::new());
        for s in &self.statuses {
            q.append_pair("status", s.as_str());
        }
        for (k, v) in [
            ("prefix", &self.prefix),
            ("qualifier", &self.qualifier),
            ("from", &self.from),
            ("to", &self.to),
        ] {
            if !v.is_empty() {
                q.append_pair(k, v);
            }
        }
        if !self.from.is_empty() || !self.to.is_empty() {
            q.append_pair("tz", &self.tz_offset_min.to_string());
        }
        if self.ascending {
            q.append_pair("order", "asc");
        }
        if self.size != PAGE_SIZES[0] {
            q.append_pair("size", &self.size.to_string());
        }
        q.finish()
    }
}

/// A status checkbox of the filter form.
pub struct StatusChoice {
    pub name: &'static str,
    pub checked: bool,
}

/// The task list part of a function's page.
pub struct TaskListView {
    pub lines: Vec<TaskLine>,
    pub params: ListParams,
    pub status_choices: Vec<StatusChoice>,
    pub sizes: Vec<(usize, bool)>,
    /// The view's own query string, for bulk links.
    pub query: String,
    pub next_href: Option<String>,
    pub first_href: Option<String>,
    /// A list across functions (it shows a Function column).
    pub all_functions: bool,
}

/// One page of `function`'s tasks (every function's for `None`) under
/// `params`; `href` is the page the links keep.
pub async fn list_view(
    app: &SharedState,
    function: Option<(&str, &str)>,
    href: &str,
    params: &ListParams,
) -> Result<TaskListView, PageError> {
    let filter = params.filter_in(function.map(|(s, f)| (s.to_string(), f.to_string())))?;
    let page = app.scheduler.store().list_tasks(filter).await?;
    let query = params.query();
    let join = |extra: &str| {
        let q = [query.as_str(), extra]
            .iter()
            .filter(|s| !s.is_empty())
            .copied()
            .collect::<Vec<_>>()
            .join("&");
        if q.is_empty() {
            href.to_string()
        } else {
            format!("{href}?{q}")
        }
    };
    Ok(TaskListView {
        lines: page.tasks.iter().map(TaskLine::of).collect(),
        status_choices: TaskState::ALL
            .iter()
            .map(|s| StatusChoice {
                name: s.as_str(),
                checked: params.statuses.contains(s),
            })
            .collect(),
        sizes: PAGE_SIZES.iter().map(|n| (*n, *n == params.size)).collect(),
        next_href: page.next.map(|(t, s)| join(&format!("next={t}.{s}"))),
        first_href: params.next.map(|_| join("")),
        all_functions: function.is_none(),
        query,
        params: params.clone(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn list_params_round_trip_through_the_url() {
        let p = ListParams::parse(Some("status=Running&status=Failed&prefix=job-&order=asc&size=50")).unwrap();
        assert_eq!(p.statuses, vec![TaskState::Running, TaskState::Failed]);
        assert_eq!(p.prefix, "job-");
        assert!(p.ascending);
        assert_eq!(ListParams::parse(Some(&p.query())).unwrap().query(), p.query());
        assert!(ListParams::parse(Some("status=Nope")).is_err());
        assert!(ListParams::parse(Some("size=7")).is_err());
    }

    #[test]
    fn local_times_are_read_in_the_viewers_zone() {
        let p = ListParams::parse(Some("from=2026-01-01T08:00&tz=-60")).unwrap();
        let f = p.filter_in(None).unwrap();
        // 08:00 at UTC+1 is 07:00 UTC.
        assert_eq!(f.started_begin_ms, Some(1_767_250_800_000));
    }
}
