//! Rendered workspace lists, kept while the database's list generations say they are current.
//!
//! `coder_list_workspaces` over 100 workspaces spends most of its CPU writing its 73 KB answer,
//! and that is near its floor (docs/benchmarks.md, issue 19); agents ask for the same list again
//! and again while nothing in it changes. Migration 0012 gives each owner's lists, and the
//! templates they show, a generation that the database bumps in the same transaction as any
//! change such a list shows. A list is kept with the generations read *before* the query that
//! produced it, and served again only while freshly read generations are equal: a change that
//! commits between the two reads makes the kept copy look older than it is (one extra
//! recompute), never newer, so no request is answered with a list that misses a change
//! committed before it, on any replica.

use std::any::{Any, TypeId};
use std::sync::{Arc, Mutex};

use crate::domain::Page;
use crate::store::{WorkspaceFilter, WorkspaceListGenerations};

/// A rendering of a workspace list that may be kept and sent again: a pure function of the
/// list's rows and count (nothing of the viewer, nothing of the time).
pub trait ListRendering: Any + Send + Sync {
    /// The bytes it holds, which the cache's budget counts.
    fn size(&self) -> usize;
}

/// At most this many bytes of renderings are kept: about 24 lists of 100 workspaces, in a
/// server whose peak RSS target is 64 MiB (issue 19).
const MAX_BYTES: usize = 4 << 20;
/// At most this many lists, so that a lookup's scan stays short whatever their sizes.
const MAX_ENTRIES: usize = 64;
/// What an entry costs besides its rendering (its key and bookkeeping), for the budget.
const ENTRY_OVERHEAD: usize = 256;

/// The kept renderings, least recently used evicted first.
#[derive(Default)]
pub(super) struct ListCache {
    inner: Mutex<Inner>,
}

#[derive(Default)]
struct Inner {
    entries: Vec<Entry>,
    bytes: usize,
    /// A use counter: an entry's `used` is the tick of its last hit or insertion.
    tick: u64,
}

struct Entry {
    /// The rendering's type: two renderings of the same list are different bytes.
    kind: TypeId,
    filter: WorkspaceFilter,
    page: Page,
    generations: WorkspaceListGenerations,
    value: Arc<dyn Any + Send + Sync>,
    size: usize,
    used: u64,
}

impl Entry {
    fn is(&self, kind: TypeId, filter: &WorkspaceFilter, page: Page) -> bool {
        self.kind == kind && self.page == page && self.filter == *filter
    }
}

impl std::fmt::Debug for ListCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let (entries, bytes) = self
            .inner
            .lock()
            .map(|i| (i.entries.len(), i.bytes))
            .unwrap_or_default();
        f.debug_struct("ListCache")
            .field("entries", &entries)
            .field("bytes", &bytes)
            .finish()
    }
}

impl ListCache {
    /// The rendering kept for this list if it was made at exactly `generations`; a kept one
    /// made at others is dropped, as it can never be served again (generations only grow).
    pub(super) fn get<R: ListRendering>(
        &self,
        filter: &WorkspaceFilter,
        page: Page,
        generations: WorkspaceListGenerations,
    ) -> Option<Arc<R>> {
        let kind = TypeId::of::<R>();
        let mut inner = self.inner.lock().ok()?;
        let at = inner
            .entries
            .iter()
            .position(|e| e.is(kind, filter, page))?;
        if inner.entries[at].generations != generations {
            let stale = inner.entries.swap_remove(at);
            inner.bytes -= stale.size;
            return None;
        }
        inner.tick += 1;
        let tick = inner.tick;
        let entry = &mut inner.entries[at];
        entry.used = tick;
        Arc::clone(&entry.value).downcast::<R>().ok()
    }

    /// Keeps `value`, the rendering of this list as read after `generations` were.
    pub(super) fn put<R: ListRendering>(
        &self,
        filter: WorkspaceFilter,
        page: Page,
        generations: WorkspaceListGenerations,
        value: Arc<R>,
    ) {
        let size = value.size() + ENTRY_OVERHEAD;
        // One list that would push out a quarter of the others is not worth keeping.
        if size > MAX_BYTES / 4 {
            return;
        }
        let kind = TypeId::of::<R>();
        let Ok(mut inner) = self.inner.lock() else {
            return;
        };
        if let Some(at) = inner.entries.iter().position(|e| e.is(kind, &filter, page)) {
            let replaced = inner.entries.swap_remove(at);
            inner.bytes -= replaced.size;
        }
        while !inner.entries.is_empty()
            && (inner.entries.len() >= MAX_ENTRIES || inner.bytes + size > MAX_BYTES)
        {
            let oldest = inner
                .entries
                .iter()
                .enumerate()
                .min_by_key(|(_, e)| e.used)
                .map_or(0, |(at, _)| at);
            let evicted = inner.entries.swap_remove(oldest);
            inner.bytes -= evicted.size;
        }
        inner.tick += 1;
        let used = inner.tick;
        inner.bytes += size;
        inner.entries.push(Entry {
            kind,
            filter,
            page,
            generations,
            value,
            size,
            used,
        });
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::domain::UserId;

    struct Bytes(Vec<u8>);

    impl ListRendering for Bytes {
        fn size(&self) -> usize {
            self.0.len()
        }
    }

    struct Other;

    impl ListRendering for Other {
        fn size(&self) -> usize {
            0
        }
    }

    fn owner(id: UserId) -> WorkspaceFilter {
        WorkspaceFilter {
            owner_id: Some(id),
            ..WorkspaceFilter::default()
        }
    }

    const PAGE: Page = Page {
        limit: 1000,
        offset: 0,
    };

    fn at(owner: i64, templates: i64) -> WorkspaceListGenerations {
        WorkspaceListGenerations { owner, templates }
    }

    #[test]
    fn a_list_is_served_only_at_the_generations_it_was_read_after() {
        let cache = ListCache::default();
        let alice = owner(UserId::new());
        cache.put(
            alice.clone(),
            PAGE,
            at(3, 1),
            Arc::new(Bytes(b"v3".to_vec())),
        );
        assert_eq!(cache.get::<Bytes>(&alice, PAGE, at(3, 1)).unwrap().0, b"v3");
        assert!(cache.get::<Bytes>(&alice, PAGE, at(4, 1)).is_none());
        // The stale entry is gone: not even its own generations bring it back.
        assert!(cache.get::<Bytes>(&alice, PAGE, at(3, 1)).is_none());
        cache.put(
            alice.clone(),
            PAGE,
            at(4, 1),
            Arc::new(Bytes(b"v4".to_vec())),
        );
        assert!(cache.get::<Bytes>(&alice, PAGE, at(4, 2)).is_none());
    }

    #[test]
    fn lists_differ_by_filter_page_and_rendering() {
        let cache = ListCache::default();
        let alice = owner(UserId::new());
        let bob = owner(UserId::new());
        cache.put(
            alice.clone(),
            PAGE,
            at(1, 1),
            Arc::new(Bytes(b"a".to_vec())),
        );
        assert!(cache.get::<Bytes>(&bob, PAGE, at(1, 1)).is_none());
        let second = Page {
            limit: 1000,
            offset: 1,
        };
        assert!(cache.get::<Bytes>(&alice, second, at(1, 1)).is_none());
        assert!(cache.get::<Other>(&alice, PAGE, at(1, 1)).is_none());
        let named = WorkspaceFilter {
            name: Some("dev".into()),
            ..alice.clone()
        };
        assert!(cache.get::<Bytes>(&named, PAGE, at(1, 1)).is_none());
        assert_eq!(cache.get::<Bytes>(&alice, PAGE, at(1, 1)).unwrap().0, b"a");
    }

    #[test]
    fn the_budget_evicts_the_least_recently_used() {
        let cache = ListCache::default();
        let owners: Vec<WorkspaceFilter> = (0..5).map(|_| owner(UserId::new())).collect();
        let big = || Arc::new(Bytes(vec![0; MAX_BYTES / 4 - ENTRY_OVERHEAD]));
        for o in &owners[..4] {
            cache.put(o.clone(), PAGE, at(1, 1), big());
        }
        // The first is used again, so the second is the least recently used.
        assert!(cache.get::<Bytes>(&owners[0], PAGE, at(1, 1)).is_some());
        cache.put(owners[4].clone(), PAGE, at(1, 1), big());
        assert!(cache.get::<Bytes>(&owners[1], PAGE, at(1, 1)).is_none());
        for o in [&owners[0], &owners[2], &owners[3], &owners[4]] {
            assert!(cache.get::<Bytes>(o, PAGE, at(1, 1)).is_some());
        }
        assert!(cache.inner.lock().unwrap().bytes <= MAX_BYTES);

        let too_big = Arc::new(Bytes(vec![0; MAX_BYTES / 4]));
        cache.put(owners[1].clone(), PAGE, at(1, 1), too_big);
        assert!(cache.get::<Bytes>(&owners[1], PAGE, at(1, 1)).is_none());

        for _ in 0..MAX_ENTRIES * 2 {
            cache.put(
                owner(UserId::new()),
                PAGE,
                at(1, 1),
                Arc::new(Bytes(vec![1])),
            );
        }
        assert_eq!(cache.inner.lock().unwrap().entries.len(), MAX_ENTRIES);
    }
}
