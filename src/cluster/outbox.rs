//! The outage queue: messages numbered and not yet written to Redis.

use std::collections::VecDeque;

/// One message on its way to Redis.
#[derive(Debug, Clone)]
pub(crate) struct Outgoing {
    pub(crate) channel: String,
    pub(crate) body: String,
}

/// A bounded first-in first-out queue that drops its oldest message to make
/// room for a new one.
#[derive(Debug)]
pub(crate) struct Outbox {
    items: VecDeque<Outgoing>,
    capacity: usize,
}

impl Outbox {
    pub(crate) fn new(capacity: usize) -> Outbox {
        Outbox {
            items: VecDeque::new(),
            capacity: capacity.max(1),
        }
    }

    /// Queues `item`; returns the oldest message if it had to go.
    pub(crate) fn push(&mut self, item: Outgoing) -> Option<Outgoing> {
        let dropped = if self.items.len() >= self.capacity {
            self.items.pop_front()
        } else {
            None
        };
        self.items.push_back(item);
        dropped
    }

    /// Takes up to `max` messages from the front.
    pub(crate) fn take(&mut self, max: usize) -> Vec<Outgoing> {
        let count = self.items.len().min(max);
        self.items.drain(..count).collect()
    }

    /// Drops every waiting message.
    pub(crate) fn clear(&mut self) {
        self.items.clear();
    }

    pub(crate) fn len(&self) -> usize {
        self.items.len()
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.items.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn item(n: u32) -> Outgoing {
        Outgoing {
            channel: "c".into(),
            body: n.to_string(),
        }
    }

    #[test]
    fn a_full_queue_drops_its_oldest() {
        let mut outbox = Outbox::new(2);
        assert!(outbox.push(item(1)).is_none());
        assert!(outbox.push(item(2)).is_none());
        assert_eq!(outbox.push(item(3)).map(|gone| gone.body), Some("1".into()));
        let left: Vec<String> = outbox.take(10).into_iter().map(|i| i.body).collect();
        assert_eq!(left, ["2", "3"]);
        assert!(outbox.is_empty());
    }
}
