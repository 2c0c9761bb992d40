//! How many MCP requests the endpoint works on at once.
//!
//! A request that rmcp serves holds a few hundred KB while it is in flight: rmcp's service for
//! the request with its tasks and channels, the handler's state, the answer, and the allocator
//! pages they touch. Served as they arrive, 1,000 clients calling at once held about 150 MiB
//! (docs/benchmarks.md, issue 19), memory that scales with the clients and not with the work
//! the cores can do. So requests take a slot first: past the slots they wait their turn (first
//! come, first served: tokio's semaphore is fair) holding only their connection and body, and
//! the memory in flight is bounded by the slots.
//!
//! Calls that wait on a workspace (`ToolDef::waits_on_workspace`: its agent running a command
//! or touching files, or the wait for it to become ready) take no slot: they spend their time
//! waiting, not working, and a few long commands must not hold up everyone else's calls. What
//! bounds them is the workspace's own limits.

use tokio::sync::{Semaphore, SemaphorePermit};

/// Slots per core: more than one, because a request also waits on the database (a statement on
/// SQLite's worker threads, a round trip to PostgreSQL), and the cores should stay busy
/// meanwhile.
const SLOTS_PER_CORE: usize = 32;
/// Never fewer, whatever the machine says about its cores.
const MIN_SLOTS: usize = 16;

#[derive(Debug)]
pub struct Admission {
    slots: Semaphore,
}

impl Admission {
    pub fn new(slots: usize) -> Self {
        Self {
            slots: Semaphore::new(slots.max(1)),
        }
    }

    /// `SLOTS_PER_CORE` for each core this process may run on.
    pub fn for_this_machine() -> Self {
        let cores = std::thread::available_parallelism().map_or(1, usize::from);
        Self::new((cores * SLOTS_PER_CORE).max(MIN_SLOTS))
    }

    /// Waits for a slot; the request is worked on while the returned permit lives. A request
    /// whose client goes away while it waits simply leaves the queue.
    pub async fn enter(&self) -> Option<SemaphorePermit<'_>> {
        // The semaphore is never closed, so this is never `None` in practice; if it were, the
        // request would go ahead rather than fail.
        self.slots.acquire().await.ok()
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::Admission;

    #[tokio::test]
    async fn a_request_past_the_slots_waits_until_one_is_free() {
        let admission = Admission::new(2);
        let first = admission.enter().await;
        let second = admission.enter().await;
        assert!(first.is_some() && second.is_some());
        let third = tokio::time::timeout(Duration::from_millis(50), admission.enter()).await;
        assert!(
            third.is_err(),
            "a third request must wait while two are in flight"
        );
        drop(first);
        let third = tokio::time::timeout(Duration::from_secs(5), admission.enter()).await;
        assert!(
            matches!(third, Ok(Some(_))),
            "a freed slot must go to the waiting request"
        );
    }
}
