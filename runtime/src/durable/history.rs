//! An orchestration's history (its journal) and the replay that answers an
//! orchestrator's host calls from it. Plain data, no I/O.
//!
//! Every durable host call an orchestrator makes is a numbered *step*
//! (0, 1, 2, ... in the order the code makes them): an activity, a timer, a
//! wait for an event, a clock read. The history records, per step, what was
//! asked (`TaskScheduled`, `TimerCreated`, `ClockRead`) and what came back
//! (`TaskCompleted`, `TaskFailed`, `TimerFired`), plus the events raised to
//! the instance (`EventRaised`) in arrival order. A re-run walks the steps
//! again: a step the history holds must ask for the same thing (else the
//! code is not deterministic and the instance fails, naming the step); a
//! step it does not hold is new, and is recorded by the run's commit.
//!
//! Which event a wait receives is decided by history order alone, so every
//! re-run decides the same way: the oldest `EventRaised` of that name not
//! taken by an earlier wait, provided it precedes the wait's `TimerFired`
//! (if the wait had a timeout and the timer has fired).

use std::collections::{HashMap, HashSet};

use crate::engine::{ActivityCall, Interrupt, Journal, RetryPolicy};

pub use crate::journal::{HistoryEvent, Recorded, StoredRetry};

impl From<RetryPolicy> for StoredRetry {
    fn from(r: RetryPolicy) -> Self {
        StoredRetry {
            max_attempts: r.max_attempts,
            first_retry_interval_ms: r.first_retry_interval_ms,
            backoff_coefficient: r.backoff_coefficient,
            max_retry_interval_ms: r.max_retry_interval_ms,
        }
    }
}

/// Something a run asked for that the history did not hold: recorded by
/// the run's commit, then acted on (an activity task started, a timer set).
#[derive(Debug, Clone, PartialEq)]
pub enum NewAction {
    Activity {
        step: u32,
        name: String,
        input: String,
        retry: Option<StoredRetry>,
    },
    Timer {
        step: u32,
        fire_at_ms: i64,
        wait_for: Option<String>,
    },
    WaitStarted {
        step: u32,
        name: String,
    },
    ClockRead {
        step: u32,
        value_ms: u64,
    },
}

impl NewAction {
    pub fn event(&self, task_id: impl FnOnce(u32) -> String) -> HistoryEvent {
        match self {
            NewAction::Activity {
                step,
                name,
                input,
                retry,
            } => HistoryEvent::TaskScheduled {
                step: *step,
                name: name.clone(),
                input: input.clone(),
                task_id: task_id(*step),
                attempt: 0,
                retry: *retry,
            },
            NewAction::Timer {
                step,
                fire_at_ms,
                wait_for,
            } => HistoryEvent::TimerCreated {
                step: *step,
                fire_at_ms: *fire_at_ms,
                wait_for: wait_for.clone(),
            },
            NewAction::WaitStarted { step, name } => HistoryEvent::EventWaitStarted {
                step: *step,
                name: name.clone(),
            },
            NewAction::ClockRead { step, value_ms } => HistoryEvent::ClockRead {
                step: *step,
                value_ms: *value_ms,
            },
        }
    }
}

/// What a step was, as recorded.
#[derive(Debug, Clone)]
enum Asked {
    Activity { name: String },
    Timer { wait_for: Option<String> },
    Wait { name: String },
    Clock { value_ms: u64 },
}

impl Asked {
    fn describe(&self) -> String {
        match self {
            Asked::Activity { name } => format!("a call of activity '{name}'"),
            Asked::Timer { wait_for: None } => "a timer".into(),
            Asked::Timer { wait_for: Some(n) } | Asked::Wait { name: n } => format!("a wait for event '{n}'"),
            Asked::Clock { .. } => "a clock read".into(),
        }
    }
}

/// The replay state one run works against (the [`Journal`] the engine
/// calls).
#[derive(Debug)]
pub struct Replay {
    instance_id: String,
    generation: u32,
    /// Time a new step is stamped with (the run's start).
    now_ms: i64,
    asked: HashMap<u32, Asked>,
    /// Activity outcomes by step (the latest attempt's).
    outcomes: HashMap<u32, Result<String, String>>,
    /// History position of each fired timer, by step.
    fired: HashMap<u32, i64>,
    /// Raised events in arrival order: (position, name, data).
    events: Vec<(i64, String, String)>,
    taken: HashSet<usize>,
    next_step: u32,
    /// Steps the history already holds: past the last one, nothing is replay.
    recorded_steps: u32,
    guid_counter: u32,
    pub custom_status: Option<String>,
    pub new_actions: Vec<NewAction>,
    /// The activity steps the run ended waiting for, when it ended in a
    /// `call-functions` whose results are not all in: the instance need not
    /// run again before the last of them arrives.
    pub waiting_for_steps: Option<HashSet<u32>>,
}

impl Replay {
    pub fn new(instance_id: &str, generation: u32, history: &[Recorded], now_ms: i64) -> Replay {
        let mut r = Replay {
            instance_id: instance_id.to_string(),
            generation,
            now_ms,
            asked: HashMap::new(),
            outcomes: HashMap::new(),
            fired: HashMap::new(),
            events: Vec::new(),
            taken: HashSet::new(),
            next_step: 0,
            recorded_steps: 0,
            guid_counter: 0,
            custom_status: None,
            new_actions: Vec::new(),
            waiting_for_steps: None,
        };
        for rec in history {
            let step = match &rec.event {
                HistoryEvent::TaskScheduled { step, name, .. } => {
                    r.asked.insert(*step, Asked::Activity { name: name.clone() });
                    // A new attempt (retry, rewind) supersedes an outcome.
                    r.outcomes.remove(step);
                    Some(*step)
                }
                HistoryEvent::TaskCompleted { step, result } => {
                    r.outcomes.insert(*step, Ok(result.clone()));
                    None
                }
                HistoryEvent::TaskFailed { step, reason } => {
                    r.outcomes.insert(*step, Err(reason.clone()));
                    None
                }
                HistoryEvent::TimerCreated { step, wait_for, .. } => {
                    r.asked.insert(
                        *step,
                        Asked::Timer {
                            wait_for: wait_for.clone(),
                        },
                    );
                    Some(*step)
                }
                HistoryEvent::TimerFired { step, .. } => {
                    r.fired.entry(*step).or_insert(rec.seq);
                    None
                }
                HistoryEvent::EventWaitStarted { step, name } => {
                    r.asked.insert(*step, Asked::Wait { name: name.clone() });
                    Some(*step)
                }
                HistoryEvent::ClockRead { step, value_ms } => {
                    r.asked.insert(*step, Asked::Clock { value_ms: *value_ms });
                    Some(*step)
                }
                HistoryEvent::EventRaised { name, input } => {
                    r.events.push((rec.seq, name.clone(), input.clone()));
                    None
                }
                _ => None,
            };
            if let Some(step) = step {
                r.recorded_steps = r.recorded_steps.max(step + 1);
            }
        }
        r
    }

    fn take_step(&mut self) -> u32 {
        let s = self.next_step;
        self.next_step += 1;
        s
    }

    fn diverged(&self, step: u32, wanted: &str, asked: &Asked) -> Interrupt {
        Interrupt::NonDeterminism(format!(
            "non-deterministic orchestrator: step {step} asked for {wanted}, but the history records {} \
             for that step (the code must make the same durable calls in the same order on every run)",
            asked.describe()
        ))
    }

    /// The oldest untaken event named `name` raised before position
    /// `before` (if any).
    fn take_event(&mut self, name: &str, before: Option<i64>) -> Option<String> {
        let at = self
            .events
            .iter()
            .enumerate()
            .find(|(i, (seq, n, _))| n == name && !self.taken.contains(i) && before.is_none_or(|b| *seq < b))
            .map(|(i, _)| i)?;
        self.taken.insert(at);
        Some(self.events[at].2.clone())
    }
}

impl Journal for Replay {
    fn call_functions(&mut self, calls: Vec<ActivityCall>) -> Result<Vec<Result<String, String>>, Interrupt> {
        let mut results = Vec::with_capacity(calls.len());
        let mut waiting = HashSet::new();
        for call in calls {
            let step = self.take_step();
            match self.asked.get(&step) {
                Some(Asked::Activity { name }) if *name == call.name => match self.outcomes.get(&step) {
                    Some(outcome) => results.push(outcome.clone()),
                    None => {
                        waiting.insert(step);
                    }
                },
                Some(other) => {
                    return Err(self.diverged(step, &format!("a call of activity '{}'", call.name), other));
                }
                None => {
                    self.new_actions.push(NewAction::Activity {
                        step,
                        name: call.name,
                        input: call.input,
                        retry: call.retry.map(StoredRetry::from),
                    });
                    waiting.insert(step);
                }
            }
        }
        if waiting.is_empty() {
            Ok(results)
        } else {
            self.waiting_for_steps = Some(waiting);
            Err(Interrupt::Suspend)
        }
    }

    fn wait_for_event(&mut self, name: String, timeout_ms: Option<u64>) -> Result<Option<String>, Interrupt> {
        let step = self.take_step();
        match self.asked.get(&step).cloned() {
            Some(Asked::Timer { wait_for: Some(n) }) if n == name && timeout_ms.is_some() => {
                let fired_at = self.fired.get(&step).copied();
                if let Some(data) = self.take_event(&name, fired_at) {
                    return Ok(Some(data));
                }
                if fired_at.is_some() {
                    Ok(None)
                } else {
                    Err(Interrupt::Suspend)
                }
            }
            // A wait answered at once by a buffered event records no timer.
            Some(Asked::Wait { name: n }) if n == name => {
                self.take_event(&name, None).map(Some).ok_or(Interrupt::Suspend)
            }
            Some(other) => Err(self.diverged(step, &format!("a wait for event '{name}'"), &other)),
            None => {
                // New. Recorded either way so re-runs see the same step; a
                // buffered event answers at once and needs no timer.
                if let Some(data) = self.take_event(&name, None) {
                    self.new_actions.push(NewAction::WaitStarted { step, name });
                    return Ok(Some(data));
                }
                match timeout_ms {
                    Some(t) => self.new_actions.push(NewAction::Timer {
                        step,
                        fire_at_ms: self.now_ms.saturating_add(t as i64),
                        wait_for: Some(name),
                    }),
                    None => self.new_actions.push(NewAction::WaitStarted { step, name }),
                }
                Err(Interrupt::Suspend)
            }
        }
    }

    fn create_timer(&mut self, delay_ms: u64) -> Result<(), Interrupt> {
        let step = self.take_step();
        match self.asked.get(&step) {
            Some(Asked::Timer { wait_for: None }) => {
                if self.fired.contains_key(&step) {
                    Ok(())
                } else {
                    Err(Interrupt::Suspend)
                }
            }
            Some(other) => Err(self.diverged(step, "a timer", other)),
            None => {
                self.new_actions.push(NewAction::Timer {
                    step,
                    fire_at_ms: self.now_ms.saturating_add(delay_ms as i64),
                    wait_for: None,
                });
                Err(Interrupt::Suspend)
            }
        }
    }

    fn set_custom_status(&mut self, status: String) {
        self.custom_status = Some(status);
    }

    fn continue_as_new(&mut self, input: String) -> Interrupt {
        Interrupt::ContinueAsNew(input)
    }

    fn now(&mut self) -> Result<u64, Interrupt> {
        let step = self.take_step();
        match self.asked.get(&step) {
            Some(Asked::Clock { value_ms }) => Ok(*value_ms),
            Some(other) => Err(self.diverged(step, "a clock read", other)),
            None => {
                let value_ms = self.now_ms.max(0) as u64;
                self.new_actions.push(NewAction::ClockRead { step, value_ms });
                Ok(value_ms)
            }
        }
    }

    fn new_guid(&mut self) -> String {
        self.guid_counter += 1;
        let name = format!("{}/{}/{}", self.instance_id, self.generation, self.guid_counter);
        uuid::Uuid::new_v5(&uuid::Uuid::NAMESPACE_URL, name.as_bytes()).to_string()
    }

    fn instance_id(&self) -> String {
        self.instance_id.clone()
    }

    fn is_replaying(&self) -> bool {
        self.next_step < self.recorded_steps
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(history: Vec<HistoryEvent>) -> Vec<Recorded> {
        history
            .into_iter()
            .enumerate()
            .map(|(i, event)| Recorded {
                seq: i as i64,
                ts_ms: 0,
                event,
            })
            .collect()
    }

    fn call(name: &str) -> Vec<ActivityCall> {
        vec![ActivityCall {
            name: name.into(),
            input: "1".into(),
            retry: None,
        }]
    }

    fn scheduled(step: u32, name: &str) -> HistoryEvent {
        HistoryEvent::TaskScheduled {
            step,
            name: name.into(),
            input: "1".into(),
            task_id: format!("t{step}"),
            attempt: 0,
            retry: None,
        }
    }

    #[test]
    fn new_calls_are_recorded_and_suspend() {
        let mut r = Replay::new("i", 0, &[], 1000);
        assert_eq!(r.call_functions(call("a")), Err(Interrupt::Suspend));
        assert_eq!(r.new_actions.len(), 1);
        assert!(!r.is_replaying());
    }

    #[test]
    fn recorded_results_replay_in_order_and_divergence_names_the_step() {
        let h = rec(vec![
            scheduled(0, "a"),
            HistoryEvent::TaskCompleted {
                step: 0,
                result: "\"x\"".into(),
            },
        ]);
        let mut r = Replay::new("i", 0, &h, 1000);
        assert!(r.is_replaying());
        assert_eq!(r.call_functions(call("a")), Ok(vec![Ok("\"x\"".into())]));
        let mut r = Replay::new("i", 0, &h, 1000);
        match r.call_functions(call("b")) {
            Err(Interrupt::NonDeterminism(m)) => assert!(m.contains("step 0") && m.contains("'a'"), "{m}"),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn events_are_buffered_and_race_their_timeout_by_history_order() {
        // Raised before the wait: taken at once, oldest first.
        let h = rec(vec![
            HistoryEvent::EventRaised {
                name: "E".into(),
                input: "1".into(),
            },
            HistoryEvent::EventRaised {
                name: "E".into(),
                input: "2".into(),
            },
        ]);
        let mut r = Replay::new("i", 0, &h, 0);
        assert_eq!(r.wait_for_event("E".into(), None), Ok(Some("1".into())));
        assert_eq!(r.wait_for_event("E".into(), Some(5)), Ok(Some("2".into())));
        assert_eq!(r.wait_for_event("E".into(), Some(5)), Err(Interrupt::Suspend));

        // The timer fired before the event arrived: the wait timed out, and
        // the late event stays for a later wait.
        let h = rec(vec![
            HistoryEvent::TimerCreated {
                step: 0,
                fire_at_ms: 5,
                wait_for: Some("E".into()),
            },
            HistoryEvent::TimerFired { step: 0, fire_at_ms: 5 },
            HistoryEvent::EventRaised {
                name: "E".into(),
                input: "late".into(),
            },
        ]);
        let mut r = Replay::new("i", 0, &h, 0);
        assert_eq!(r.wait_for_event("E".into(), Some(5)), Ok(None));
        assert_eq!(r.wait_for_event("E".into(), None), Ok(Some("late".into())));
    }

    #[test]
    fn clock_and_guids_are_the_same_on_every_run() {
        let mut first = Replay::new("i", 0, &[], 1234);
        assert_eq!(first.now(), Ok(1234));
        let g = first.new_guid();
        let h = rec(vec![first.new_actions[0].event(|_| String::new())]);
        let mut again = Replay::new("i", 0, &h, 9999);
        assert_eq!(again.now(), Ok(1234));
        assert_eq!(again.new_guid(), g);
    }

    #[test]
    fn retry_delays_back_off_and_stop() {
        let p = StoredRetry {
            max_attempts: 3,
            first_retry_interval_ms: 100,
            backoff_coefficient: 2.0,
            max_retry_interval_ms: 150,
        };
        assert_eq!(p.delay_before(1), Some(100));
        assert_eq!(p.delay_before(2), Some(150));
        assert_eq!(p.delay_before(3), None);
    }
}
