//! The in-process single-flight table: at most one load per (value type, stored key) runs at a
//! time in a policy; later callers wait on its shared outcome.
//!
//! Each load runs in its own spawned task, not in the caller's future: a caller that is
//! cancelled (a dropped request) only stops waiting, the load goes on and the others still get
//! its outcome. The task removes its own table entry when it ends — finished, panicked or
//! dropped with the runtime — so an entry never outlives its load. Outcomes are type-erased
//! because one policy serves any value type; the type is part of the table's key, so a waiter
//! always finds the outcome type it expects.

use std::{
    any::{Any, TypeId},
    collections::HashMap,
    fmt,
    sync::{
        Arc, Mutex, PoisonError,
        atomic::{AtomicU64, Ordering},
    },
};

use futures::{
    FutureExt,
    future::{BoxFuture, Shared},
};

use super::LoadPolicy;

/// (the value and error types of the caller, the stored key).
pub(super) type FlightKey = (TypeId, String);

/// A load's outcome as every waiter sees it; `None` when its task stopped before finishing
/// (it panicked, or the runtime shut down).
pub(super) type ErasedOutcome = Option<Arc<dyn Any + Send + Sync>>;

pub(super) type Flight = Shared<BoxFuture<'static, ErasedOutcome>>;

/// The running loads of one policy. A std mutex, never held across an `.await`.
#[derive(Default)]
pub(super) struct Flights {
    running: Mutex<HashMap<FlightKey, (u64, Flight)>>,
    next_id: AtomicU64,
}

impl fmt::Debug for Flights {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let running = self.running.lock().unwrap_or_else(PoisonError::into_inner).len();
        f.debug_struct("Flights").field("running", &running).finish()
    }
}

impl Flights {
    /// The load running for `key`, if any.
    pub(super) fn running(&self, key: &FlightKey) -> Option<Flight> {
        let running = self.running.lock().unwrap_or_else(PoisonError::into_inner);
        running.get(key).map(|(_, flight)| flight.clone())
    }

    /// Spawns `work` as the load for `key` unless one is already running (then `work` is
    /// dropped unpolled). Returns the running load and whether it was started here.
    pub(super) fn start_or_join<W>(&self, policy: &LoadPolicy, key: FlightKey, work: W) -> (Flight, bool)
    where
        W: Future<Output = Arc<dyn Any + Send + Sync>> + Send + 'static,
    {
        // The entry is inserted while the lock is held, and the task removes it under the same
        // lock, so a load that ends at once still finds (and removes) its own entry.
        let mut running = self.running.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some((_, flight)) = running.get(&key) {
            return (flight.clone(), false);
        }
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let end = EndOfFlight { policy: policy.clone(), key: key.clone(), id };
        let task = tokio::spawn(async move {
            let _end = end;
            work.await
        });
        let flight = async move { task.await.ok() }.boxed().shared();
        running.insert(key, (id, flight.clone()));
        (flight, true)
    }

    fn finish(&self, key: &FlightKey, id: u64) {
        let mut running = self.running.lock().unwrap_or_else(PoisonError::into_inner);
        if running.get(key).is_some_and(|(running_id, _)| *running_id == id) {
            running.remove(key);
        }
    }
}

/// Removes a load's table entry when its task ends, however it ends.
struct EndOfFlight {
    policy: LoadPolicy,
    key: FlightKey,
    id: u64,
}

impl Drop for EndOfFlight {
    fn drop(&mut self) {
        self.policy.inner.flights.finish(&self.key, self.id);
    }
}
