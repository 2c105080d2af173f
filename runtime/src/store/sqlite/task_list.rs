//! Listing tasks: the filters of the FC list and the console, turned
//! into queries that an index answers in order (see
//! `docs/architecture.md`, Store).

use super::super::{Result, TaskFilter, TaskPage, TaskRow};
use super::SqliteStore;
use super::tasks::{row_from, select};
use crate::tasks::TaskState;

impl SqliteStore {
    /// One page of a function's stateful tasks (or every function's).
    ///
    /// A function's tasks in given states are read one state at a time,
    /// each from the index that has it in order (finished ones by state,
    /// unfinished ones from the few not yet ended), and merged here: as
    /// one query SQLite would walk every task of the function.
    pub async fn list_tasks(&self, f: TaskFilter) -> Result<TaskPage> {
        self.read(move |c| {
            let mut tasks = if f.function.is_some() && !f.statuses.is_empty() {
                let mut all = Vec::new();
                for state in &f.statuses {
                    all.extend(page_query(c, &f, Some(*state))?);
                }
                all.sort_by_key(|t| (t.created_ms, t.seq));
                if f.descending {
                    all.reverse();
                }
                all.truncate(f.limit + 1);
                all
            } else {
                page_query(c, &f, None)?
            };
            let next = if tasks.len() > f.limit {
                tasks.truncate(f.limit);
                tasks.last().map(|t| (t.created_ms, t.seq))
            } else {
                None
            };
            Ok(TaskPage { tasks, next })
        })
        .await
    }
}

/// The least string above every string that starts with `prefix` (its last
/// character bumped), or `None` when there is none to bump to.
fn prefix_end(prefix: &str) -> Option<String> {
    let mut chars: Vec<char> = prefix.chars().collect();
    while let Some(last) = chars.pop() {
        if let Some(next) = char::from_u32(last as u32 + 1) {
            chars.push(next);
            return Some(chars.into_iter().collect());
        }
    }
    None
}

/// Up to `f.limit + 1` tasks `f` matches, in the page's order: a
/// function's tasks in `state` when given, else `f`'s states (any when
/// empty).
fn page_query(c: &rusqlite::Connection, f: &TaskFilter, state: Option<TaskState>) -> rusqlite::Result<Vec<TaskRow>> {
    // An id prefix of a function in any state: pick the page's rows from
    // the (service, function, invocation_id, created_ms, stateful) index
    // alone, then read just those, not every task the prefix matches.
    let by_id = f.id_prefix.is_some() && f.function.is_some() && state.is_none() && f.statuses.is_empty();
    let mut sql = if by_id {
        "SELECT seq FROM tasks INDEXED BY tasks_by_id_time".to_string()
    } else {
        select(f.include_payload)
    };
    // Not ended yet: few rows, and SQLite would rather walk tasks_by_time.
    if state.is_some_and(|s| !s.is_terminal()) {
        sql.push_str(" INDEXED BY tasks_unfinished");
    }
    sql.push_str(" WHERE stateful = 1");
    let mut args: Vec<rusqlite::types::Value> = Vec::new();
    if let Some((service, function)) = &f.function {
        sql.push_str(" AND service = ? AND function = ?");
        args.push(service.clone().into());
        args.push(function.clone().into());
    }
    if let Some(q) = &f.qualifier {
        sql.push_str(" AND qualifier = ?");
        args.push(q.clone().into());
    }
    if let Some(p) = &f.id_prefix {
        // substr, not LIKE: `_` is legal in ids and a LIKE wildcard.
        sql.push_str(" AND substr(invocation_id, 1, ?) = ?");
        args.push((p.len() as i64).into());
        args.push(p.clone().into());
        // The same as a range, which the (service, function,
        // invocation_id) index can answer.
        if let Some(end) = prefix_end(p) {
            sql.push_str(" AND invocation_id >= ? AND invocation_id < ?");
            args.push(p.clone().into());
            args.push(end.into());
        }
    }
    match state {
        // end_ms is implied by the state; said so that the partial
        // indexes apply.
        Some(s) => {
            sql.push_str(if s.is_terminal() {
                " AND status = ? AND end_ms > 0"
            } else {
                " AND status = ? AND end_ms = 0"
            });
            args.push(s.as_str().to_string().into());
        }
        None if !f.statuses.is_empty() => {
            let marks = vec!["?"; f.statuses.len()].join(", ");
            sql.push_str(&format!(" AND status IN ({marks})"));
            args.extend(f.statuses.iter().map(|s| s.as_str().to_string().into()));
        }
        None => {}
    }
    if let Some(b) = f.started_begin_ms {
        sql.push_str(" AND created_ms >= ?");
        args.push(b.into());
    }
    if let Some(e) = f.started_end_ms {
        sql.push_str(" AND created_ms <= ?");
        args.push(e.into());
    }
    // One function's tasks come in `tasks_by_time` order; across
    // functions in seq (rowid) order, which is submission order too and
    // needs no index of its own.
    let (cmp, dir) = if f.descending { ("<", "DESC") } else { (">", "ASC") };
    if let Some((t, s)) = f.after {
        if f.function.is_some() {
            sql.push_str(&format!(" AND (created_ms, seq) {cmp} (?, ?)"));
            args.push(t.into());
        } else {
            sql.push_str(&format!(" AND seq {cmp} ?"));
        }
        args.push(s.into());
    }
    let order = if f.function.is_some() {
        format!(" ORDER BY created_ms {dir}, seq {dir}")
    } else {
        format!(" ORDER BY seq {dir}")
    };
    sql.push_str(&order);
    sql.push_str(" LIMIT ?");
    args.push(((f.limit + 1) as i64).into());
    if by_id {
        sql = format!("{} WHERE seq IN ({sql}){order}", select(f.include_payload));
    }
    let mut stmt = c.prepare(&sql)?;
    stmt.query_map(rusqlite::params_from_iter(args), |r| row_from(r, f.include_payload))?
        .collect()
}

#[cfg(test)]
mod prefix_tests {
    use super::prefix_end;

    #[test]
    fn the_end_of_a_prefix_is_above_every_id_it_starts() {
        assert_eq!(prefix_end("video-").as_deref(), Some("video."));
        assert_eq!(prefix_end("a\u{10FFFF}").as_deref(), Some("b"));
        assert_eq!(prefix_end(""), None);
        let end = prefix_end("t-05").unwrap();
        assert!("t-05" <= "t-0599999" && "t-0599999" < end.as_str() && end.as_str() <= "t-06");
    }
}
