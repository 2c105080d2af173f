//! Listing tasks on PostgreSQL: the filters of the FC list and the console
//! as one query (PostgreSQL's planner reads a `status = ANY(...)` filter
//! from the partial indexes itself, where SQLite needs a query per state).

use tokio_postgres::types::ToSql;

use super::super::{Result, TaskFilter, TaskPage};
use super::PgStore;
use super::tasks::{row_from, select};

type Param = Box<dyn ToSql + Sync + Send>;

/// The query for up to `f.limit + 1` tasks of `f`, in the page's order.
fn page_query(f: &TaskFilter) -> (String, Vec<Param>) {
    let mut sql = format!("{} WHERE stateful", select(f.include_payload));
    let mut args: Vec<Param> = Vec::new();
    let mut arg = |sql: &mut String, text: &str, value: Param| {
        args.push(value);
        sql.push_str(&text.replace('?', &format!("${}", args.len())));
    };
    if let Some((service, function)) = &f.function {
        arg(&mut sql, " AND service = ?", Box::new(service.clone()));
        arg(&mut sql, " AND function = ?", Box::new(function.clone()));
    }
    if let Some(q) = &f.qualifier {
        arg(&mut sql, " AND qualifier = ?", Box::new(q.clone()));
    }
    if let Some(p) = &f.id_prefix {
        // starts_with, not LIKE: `_` is legal in ids and a LIKE wildcard.
        arg(&mut sql, " AND starts_with(invocation_id, ?)", Box::new(p.clone()));
    }
    if !f.statuses.is_empty() {
        let states: Vec<String> = f.statuses.iter().map(|s| s.as_str().to_string()).collect();
        arg(&mut sql, " AND status = ANY(?)", Box::new(states));
    }
    if let Some(b) = f.started_begin_ms {
        arg(&mut sql, " AND created_ms >= ?", Box::new(b));
    }
    if let Some(e) = f.started_end_ms {
        arg(&mut sql, " AND created_ms <= ?", Box::new(e));
    }
    // One function's tasks in (created_ms, seq) order, as tasks_by_time
    // has them; across functions in seq order (submission order).
    let (cmp, dir) = if f.descending { ("<", "DESC") } else { (">", "ASC") };
    if let Some((t, s)) = f.after {
        if f.function.is_some() {
            arg(&mut sql, &format!(" AND (created_ms, seq) {cmp} (?, "), Box::new(t));
            arg(&mut sql, "?)", Box::new(s));
        } else {
            arg(&mut sql, &format!(" AND seq {cmp} ?"), Box::new(s));
        }
    }
    if f.function.is_some() {
        sql.push_str(&format!(" ORDER BY created_ms {dir}, seq {dir}"));
    } else {
        sql.push_str(&format!(" ORDER BY seq {dir}"));
    }
    arg(&mut sql, " LIMIT ?", Box::new((f.limit + 1) as i64));
    (sql, args)
}

impl PgStore {
    /// One page of a function's stateful tasks (or every function's).
    pub async fn list_tasks(&self, f: TaskFilter) -> Result<TaskPage> {
        let (sql, args) = page_query(&f);
        let params: Vec<&(dyn ToSql + Sync)> = args.iter().map(|a| a.as_ref() as &(dyn ToSql + Sync)).collect();
        let rows = self.client().await?.query(&sql, &params).await?;
        let mut tasks: Vec<_> = rows.iter().map(|r| row_from(r, f.include_payload).0).collect();
        let next = if tasks.len() > f.limit {
            tasks.truncate(f.limit);
            tasks.last().map(|t| (t.created_ms, t.seq))
        } else {
            None
        };
        Ok(TaskPage { tasks, next })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tasks::TaskState;

    #[test]
    fn parameters_are_numbered_in_order() {
        let f = TaskFilter {
            function: Some(("s".into(), "f".into())),
            statuses: vec![TaskState::Failed, TaskState::Running],
            id_prefix: Some("t_".into()),
            after: Some((5, 9)),
            descending: true,
            limit: 10,
            ..TaskFilter::default()
        };
        let (sql, args) = page_query(&f);
        assert_eq!(args.len(), 7, "{sql}");
        for n in 1..=7 {
            assert!(sql.contains(&format!("${n}")), "{sql}");
        }
        assert!(sql.contains("(created_ms, seq) < ($5, $6)"), "{sql}");
        assert!(sql.ends_with("ORDER BY created_ms DESC, seq DESC LIMIT $7"), "{sql}");
    }
}
