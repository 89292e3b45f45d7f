//! One computation per key at a time: the first caller that misses a key computes it, callers
//! that miss the same key meanwhile wait for that result instead of computing it again.
//!
//! The gateway uses it for download bodies (hardening issue, low items): without it, a new
//! batch that every member state downloads at the same moment is read and encoded once per
//! request until the first encoding lands in the cache. Runtime-agnostic (plain `std` locks
//! and wakers), as everything in efgs-core.

use std::collections::HashMap;
use std::future::Future;
use std::hash::Hash;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Waker};

/// The computations in flight, by key.
#[derive(Debug)]
pub(crate) struct SingleFlight<K, V> {
    flights: Mutex<HashMap<K, Arc<Flight<V>>>>,
}

#[derive(Debug)]
struct Flight<V> {
    state: Mutex<State<V>>,
}

#[derive(Debug)]
enum State<V> {
    Running(Vec<Waker>),
    /// `None`: the leader failed or was dropped; each waiter computes for itself.
    Done(Option<V>),
}

/// What a caller that missed a key does.
pub(crate) enum Turn<'a, K: Eq + Hash + Clone, V: Clone> {
    /// Compute the value, then [`Leader::finish`].
    Lead(Leader<'a, K, V>),
    /// Another caller is computing it: await its result.
    Wait(Wait<V>),
}

impl<K: Eq + Hash + Clone, V: Clone> Default for SingleFlight<K, V> {
    fn default() -> Self {
        SingleFlight {
            flights: Mutex::new(HashMap::new()),
        }
    }
}

impl<K: Eq + Hash + Clone, V: Clone> SingleFlight<K, V> {
    /// Joins the computation of `key` in flight, or starts one.
    pub(crate) fn turn(&self, key: &K) -> Turn<'_, K, V> {
        let Ok(mut flights) = self.flights.lock() else {
            // A poisoned map: compute without sharing.
            return Turn::Lead(Leader {
                owner: self,
                key: None,
                flight: Arc::new(Flight::running()),
            });
        };
        if let Some(flight) = flights.get(key) {
            return Turn::Wait(Wait {
                flight: Arc::clone(flight),
            });
        }
        let flight = Arc::new(Flight::running());
        flights.insert(key.clone(), Arc::clone(&flight));
        Turn::Lead(Leader {
            owner: self,
            key: Some(key.clone()),
            flight,
        })
    }

    #[cfg(test)]
    fn in_flight(&self) -> usize {
        self.flights.lock().map(|f| f.len()).unwrap_or(0)
    }
}

impl<V> Flight<V> {
    fn running() -> Self {
        Flight {
            state: Mutex::new(State::Running(Vec::new())),
        }
    }
}

/// The caller that computes. Dropping it without [`Leader::finish`] (an error, a cancelled
/// request) releases the waiters with `None`.
pub(crate) struct Leader<'a, K: Eq + Hash + Clone, V: Clone> {
    owner: &'a SingleFlight<K, V>,
    key: Option<K>,
    flight: Arc<Flight<V>>,
}

impl<K: Eq + Hash + Clone, V: Clone> Leader<'_, K, V> {
    /// Hands `value` to every waiter; the next miss of the key starts a new computation.
    pub(crate) fn finish(mut self, value: V) {
        self.complete(Some(value));
    }

    fn complete(&mut self, value: Option<V>) {
        if let Some(key) = self.key.take()
            && let Ok(mut flights) = self.owner.flights.lock()
        {
            flights.remove(&key);
        }
        let wakers = match self.flight.state.lock() {
            Ok(mut state) => match std::mem::replace(&mut *state, State::Done(value)) {
                State::Running(wakers) => wakers,
                State::Done(_) => Vec::new(),
            },
            Err(_) => Vec::new(),
        };
        wakers.into_iter().for_each(Waker::wake);
    }
}

impl<K: Eq + Hash + Clone, V: Clone> Drop for Leader<'_, K, V> {
    fn drop(&mut self) {
        if matches!(self.flight.state.lock().as_deref(), Ok(State::Running(_))) {
            self.complete(None);
        }
    }
}

/// The result of another caller's computation: `Some` value, or `None` when it failed.
pub(crate) struct Wait<V> {
    flight: Arc<Flight<V>>,
}

impl<V: Clone> Future for Wait<V> {
    type Output = Option<V>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<V>> {
        let Ok(mut state) = self.flight.state.lock() else {
            return Poll::Ready(None);
        };
        match &mut *state {
            State::Done(value) => Poll::Ready(value.clone()),
            State::Running(wakers) => {
                if !wakers.iter().any(|w| w.will_wake(cx.waker())) {
                    wakers.push(cx.waker().clone());
                }
                Poll::Pending
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::task::Wake;

    #[derive(Default)]
    struct CountingWaker(AtomicUsize);

    impl Wake for CountingWaker {
        fn wake(self: Arc<Self>) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }

    fn poll<V: Clone>(w: &mut Wait<V>, waker: &Arc<CountingWaker>) -> Poll<Option<V>> {
        let waker = Waker::from(Arc::clone(waker));
        Pin::new(w).poll(&mut Context::from_waker(&waker))
    }

    #[test]
    fn misses_of_one_key_wait_for_the_first() {
        let sf = SingleFlight::<&str, u32>::default();
        let Turn::Lead(lead) = sf.turn(&"a") else {
            panic!("the first miss leads");
        };
        let Turn::Wait(mut w1) = sf.turn(&"a") else {
            panic!("a second miss waits");
        };
        let Turn::Wait(mut w2) = sf.turn(&"a") else {
            panic!("a third miss waits");
        };
        // Another key is independent.
        assert!(matches!(sf.turn(&"b"), Turn::Lead(_)));
        let (task1, task2) = (Arc::default(), Arc::default());
        assert!(poll(&mut w1, &task1).is_pending());
        assert!(poll(&mut w1, &task1).is_pending());
        assert!(poll(&mut w2, &task2).is_pending());
        lead.finish(7);
        // Each waiting task is woken once.
        assert_eq!(task1.0.load(Ordering::SeqCst), 1);
        assert_eq!(task2.0.load(Ordering::SeqCst), 1);
        assert_eq!(poll(&mut w1, &task1), Poll::Ready(Some(7)));
        assert_eq!(poll(&mut w2, &task2), Poll::Ready(Some(7)));
        // Finished: the next miss computes again.
        assert_eq!(sf.in_flight(), 0);
        assert!(matches!(sf.turn(&"a"), Turn::Lead(_)));
    }

    #[test]
    fn a_dropped_leader_releases_its_waiters_empty_handed() {
        let sf = SingleFlight::<&str, u32>::default();
        let lead = sf.turn(&"a");
        let Turn::Wait(mut w) = sf.turn(&"a") else {
            panic!("a second miss waits");
        };
        let waker = Arc::new(CountingWaker::default());
        assert!(poll(&mut w, &waker).is_pending());
        drop(lead);
        assert_eq!(waker.0.load(Ordering::SeqCst), 1);
        assert_eq!(poll(&mut w, &waker), Poll::Ready(None));
        assert_eq!(sf.in_flight(), 0);
    }
}
