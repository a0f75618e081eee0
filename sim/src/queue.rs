//! The event queue: what happens next, in virtual time.
//!
//! Events are ordered by `(at_us, seq)`: time first, then the order in which they
//! were scheduled. The sequence number makes ties deterministic without relying on
//! any property of the payload, and it is what lets a delay fault reorder messages:
//! two messages on one link with different delays come out in delay order.

use std::cmp::Reverse;
use std::collections::BinaryHeap;

/// A min-heap of `T` keyed by `(time, sequence)`.
#[derive(Debug)]
pub struct EventQueue<T> {
    heap: BinaryHeap<Reverse<Slot<T>>>,
    seq: u64,
    len_max: usize,
}

#[derive(Debug)]
struct Slot<T> {
    at_us: u64,
    seq: u64,
    item: T,
}

impl<T> PartialEq for Slot<T> {
    fn eq(&self, other: &Self) -> bool {
        (self.at_us, self.seq) == (other.at_us, other.seq)
    }
}
impl<T> Eq for Slot<T> {}
impl<T> PartialOrd for Slot<T> {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}
impl<T> Ord for Slot<T> {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        (self.at_us, self.seq).cmp(&(other.at_us, other.seq))
    }
}

impl<T> EventQueue<T> {
    /// A queue that panics if it ever holds more than `len_max` events: an
    /// unbounded queue in a simulation is a bug (a message storm or a timer leak).
    pub fn new(len_max: usize) -> Self {
        EventQueue {
            heap: BinaryHeap::new(),
            seq: 0,
            len_max,
        }
    }

    pub fn push(&mut self, at_us: u64, item: T) {
        self.seq += 1;
        self.heap.push(Reverse(Slot {
            at_us,
            seq: self.seq,
            item,
        }));
        assert!(
            self.heap.len() <= self.len_max,
            "event queue over {} events",
            self.len_max
        );
    }

    /// The earliest event, if it is due at or before `until_us`.
    pub fn pop_until(&mut self, until_us: u64) -> Option<(u64, T)> {
        if self.heap.peek()?.0.at_us > until_us {
            return None;
        }
        self.heap.pop().map(|Reverse(slot)| (slot.at_us, slot.item))
    }

    pub fn len(&self) -> usize {
        self.heap.len()
    }

    pub fn is_empty(&self) -> bool {
        self.heap.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ties_break_by_scheduling_order() {
        let mut q = EventQueue::new(16);
        q.push(5, "b");
        q.push(3, "a");
        q.push(5, "c");
        q.push(9, "d");
        assert_eq!(q.pop_until(100), Some((3, "a")));
        assert_eq!(q.pop_until(100), Some((5, "b")));
        assert_eq!(q.pop_until(100), Some((5, "c")));
        assert_eq!(q.pop_until(8), None);
        assert_eq!(q.pop_until(9), Some((9, "d")));
        assert!(q.is_empty());
    }
}
