//! The arbiter the default broker and notifier share.

use std::collections::HashMap;
use std::sync::{Mutex, OnceLock};

use actix::{Arbiter, ArbiterHandle, System};

/// The arbiter of the default instances of the current actix system,
/// started on first use.
///
/// The default broker and notifier run on a thread of their own so that a
/// subscriber which blocks or panics on another arbiter cannot stall them.
pub(crate) fn service_arbiter() -> ArbiterHandle {
    static ARBITERS: OnceLock<Mutex<HashMap<usize, ArbiterHandle>>> = OnceLock::new();

    let system = System::current();
    let mut arbiters = ARBITERS
        .get_or_init(Default::default)
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    arbiters
        .entry(system.id())
        .or_insert_with(|| {
            log::debug!(
                "starting the pub/sub arbiter of actix system {}",
                system.id()
            );
            Arbiter::new().handle()
        })
        .clone()
}
