//! The last hour, minute by minute: starts by kind (count, total and
//! longest time) per function, and provisioned target vs current per
//! config. The console draws its charts from this; a small ring in memory
//! is enough for that, so no time-series database is needed (and the
//! figures start over with the process, as `/metrics` counters do).

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// How many minutes the ring keeps.
pub const MINUTES: usize = 60;

/// The start kinds, in the order [`StartsMinute::by_kind`] holds them.
pub const START_KINDS: [&str; 3] = ["cold", "warm", "provisioned"];

/// One start kind's invocations in one minute.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct StartAggregate {
    pub count: u64,
    pub total_us: u64,
    pub max_us: u64,
}

impl StartAggregate {
    fn add(&mut self, d: Duration) {
        let us = u64::try_from(d.as_micros()).unwrap_or(u64::MAX);
        self.count += 1;
        self.total_us = self.total_us.saturating_add(us);
        self.max_us = self.max_us.max(us);
    }

    /// The mean time, in microseconds (0 without invocations).
    pub fn mean_us(&self) -> u64 {
        self.total_us.checked_div(self.count).unwrap_or(0)
    }
}

/// A function's starts in one minute.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct StartsMinute {
    /// Unix time of the minute's start, in minutes.
    pub minute: i64,
    pub by_kind: [StartAggregate; 3],
}

/// A provision config's last target and current in one minute.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ProvisionMinute {
    pub minute: i64,
    pub target: u64,
    pub current: u64,
}

#[derive(Default)]
struct Minute {
    minute: i64,
    starts: HashMap<String, [StartAggregate; 3]>,
    provision: HashMap<String, (u64, u64)>,
}

/// The ring. Recording takes one uncontended lock and, for a function's
/// first invocation of a minute, one allocation.
#[derive(Default)]
pub struct MinuteRing {
    minutes: Mutex<VecDeque<Minute>>,
}

fn now_minute() -> i64 {
    let secs = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
    i64::try_from(secs / 60).unwrap_or(i64::MAX)
}

impl MinuteRing {
    /// Runs `f` on the bucket of `minute`, opening it (and dropping the
    /// oldest beyond [`MINUTES`]) when it is new.
    fn with_minute(&self, minute: i64, f: impl FnOnce(&mut Minute)) {
        let mut ring = self.minutes.lock().unwrap_or_else(|p| p.into_inner());
        if ring.back().is_none_or(|m| m.minute < minute) {
            ring.push_back(Minute {
                minute,
                ..Minute::default()
            });
            while ring.len() > MINUTES {
                ring.pop_front();
            }
        }
        // A clock that stepped back lands in the newest minute.
        if let Some(m) = ring.back_mut() {
            f(m);
        }
    }

    /// One invocation of `function` that started as `start` and took `d`.
    pub fn record_start(&self, function: &str, start: &str, d: Duration) {
        self.record_start_at(now_minute(), function, start, d);
    }

    fn record_start_at(&self, minute: i64, function: &str, start: &str, d: Duration) {
        let Some(kind) = START_KINDS.iter().position(|k| *k == start) else {
            return;
        };
        self.with_minute(minute, |m| match m.starts.get_mut(function) {
            Some(kinds) => kinds[kind].add(d),
            None => {
                let mut kinds = [StartAggregate::default(); 3];
                kinds[kind].add(d);
                m.starts.insert(function.to_string(), kinds);
            }
        });
    }

    /// The autoscaler's latest target and current for `config`
    /// (`service/function/qualifier`); the minute keeps the last one.
    pub fn record_provision(&self, config: &str, target: u64, current: u64) {
        self.record_provision_at(now_minute(), config, target, current);
    }

    fn record_provision_at(&self, minute: i64, config: &str, target: u64, current: u64) {
        self.with_minute(minute, |m| match m.provision.get_mut(config) {
            Some(v) => *v = (target, current),
            None => {
                m.provision.insert(config.to_string(), (target, current));
            }
        });
    }

    /// `function`'s starts over the last hour, one entry per minute up to
    /// now, oldest first (minutes without invocations are zeros).
    pub fn starts(&self, function: &str) -> Vec<StartsMinute> {
        let ring = self.minutes.lock().unwrap_or_else(|p| p.into_inner());
        hour_until(now_minute())
            .map(|minute| StartsMinute {
                minute,
                by_kind: ring
                    .iter()
                    .find(|m| m.minute == minute)
                    .and_then(|m| m.starts.get(function).copied())
                    .unwrap_or_default(),
            })
            .collect()
    }

    /// `config`'s target and current over the last hour: only the minutes
    /// the autoscaler saw it in, oldest first.
    pub fn provision(&self, config: &str) -> Vec<ProvisionMinute> {
        let ring = self.minutes.lock().unwrap_or_else(|p| p.into_inner());
        ring.iter()
            .filter_map(|m| {
                let (target, current) = *m.provision.get(config)?;
                Some(ProvisionMinute {
                    minute: m.minute,
                    target,
                    current,
                })
            })
            .collect()
    }
}

/// The [`MINUTES`] minutes that end with `now`.
fn hour_until(now: i64) -> impl Iterator<Item = i64> {
    (now - MINUTES as i64 + 1)..=now
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn starts_add_up_per_minute_and_kind() {
        let ring = MinuteRing::default();
        let now = now_minute();
        ring.record_start_at(now - 1, "s/f", "cold", Duration::from_millis(4));
        ring.record_start_at(now, "s/f", "warm", Duration::from_micros(10));
        ring.record_start_at(now, "s/f", "warm", Duration::from_micros(30));
        ring.record_start_at(now, "s/other", "cold", Duration::from_millis(1));
        let starts = ring.starts("s/f");
        assert_eq!(starts.len(), MINUTES);
        let last = starts[MINUTES - 1];
        assert_eq!(last.minute, now);
        assert_eq!(
            last.by_kind[1],
            StartAggregate {
                count: 2,
                total_us: 40,
                max_us: 30
            }
        );
        assert_eq!(last.by_kind[1].mean_us(), 20);
        assert_eq!(starts[MINUTES - 2].by_kind[0].count, 1);
        assert_eq!(starts[0].by_kind, [StartAggregate::default(); 3]);
    }

    #[test]
    fn the_ring_keeps_an_hour_and_the_last_provision_sample() {
        let ring = MinuteRing::default();
        let now = now_minute();
        for m in (now - 90)..=now {
            ring.record_provision_at(m, "s/f/prod", 2, 1);
        }
        ring.record_provision_at(now, "s/f/prod", 3, 3);
        let history = ring.provision("s/f/prod");
        assert_eq!(history.len(), MINUTES);
        assert_eq!(history[0].minute, now - MINUTES as i64 + 1);
        assert_eq!(
            history[MINUTES - 1],
            ProvisionMinute {
                minute: now,
                target: 3,
                current: 3
            }
        );
        assert!(ring.provision("s/f/other").is_empty());
    }
}
