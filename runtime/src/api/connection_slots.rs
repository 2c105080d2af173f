//! Open connections per client address, capped (`--max-connections-per-ip`).
//!
//! Timeouts bound how long one slow connection lives; the cap bounds how
//! many one client can hold at once, so a single address cannot take every
//! file descriptor or serving slot with idle or trickling connections.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Arc;

use parking_lot::Mutex;

/// The open connections of every client address.
#[derive(Debug, Clone)]
pub struct ConnectionSlots {
    open: Arc<Mutex<HashMap<IpAddr, usize>>>,
    per_ip: usize,
}

/// One open connection; its address's count goes down when it is dropped.
#[derive(Debug)]
pub struct Slot {
    open: Arc<Mutex<HashMap<IpAddr, usize>>>,
    ip: IpAddr,
}

impl ConnectionSlots {
    pub fn new(per_ip: usize) -> ConnectionSlots {
        ConnectionSlots {
            open: Arc::default(),
            per_ip: per_ip.max(1),
        }
    }

    /// A slot for a new connection from `ip`, or `None` when that address
    /// already holds its share.
    pub fn take(&self, ip: IpAddr) -> Option<Slot> {
        let mut open = self.open.lock();
        let count = open.entry(ip).or_insert(0);
        if *count >= self.per_ip {
            return None;
        }
        *count += 1;
        Some(Slot {
            open: self.open.clone(),
            ip,
        })
    }

    pub fn per_ip(&self) -> usize {
        self.per_ip
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut open = self.open.lock();
        if let Some(count) = open.get_mut(&self.ip) {
            *count -= 1;
            if *count == 0 {
                open.remove(&self.ip);
            }
        }
    }
}

/// What a refused connection is told before it is closed: an FC error, as
/// every other refusal.
pub fn refusal(per_ip: usize) -> Vec<u8> {
    super::error::raw_error_answer(
        http::StatusCode::TOO_MANY_REQUESTS,
        "ResourceThrottled",
        &format!("too many open connections from this address (at most {per_ip}; --max-connections-per-ip)"),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_address_gets_its_share_and_a_closed_connection_gives_it_back() {
        let slots = ConnectionSlots::new(2);
        let a: IpAddr = "10.0.0.1".parse().unwrap();
        let b: IpAddr = "10.0.0.2".parse().unwrap();
        let first = slots.take(a).unwrap();
        let _second = slots.take(a).unwrap();
        assert!(slots.take(a).is_none());
        assert!(slots.take(b).is_some(), "other addresses are not affected");
        drop(first);
        assert!(slots.take(a).is_some());
    }
}
