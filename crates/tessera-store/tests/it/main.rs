//! The store test suite. Every case is written against `Arc<dyn Store>` and instantiated per
//! backend by `store_suite!`, so a new backend runs the same tests.

mod suite;

use std::sync::Arc;

use tessera_store::{SqliteOptions, SqliteStore, Store};

/// A backend under test: the store, the URL that reopens it, and what keeps its data alive.
pub struct Backend {
    pub store: Arc<dyn Store>,
    pub url: String,
    pub _dir: tempfile::TempDir,
}

async fn sqlite() -> Backend {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("test.db");
    let store: Arc<dyn Store> = Arc::new(SqliteStore::open(SqliteOptions::new(&path)).await.unwrap());
    Backend { store, url: format!("sqlite://{}", path.display()), _dir: dir }
}

macro_rules! store_suite {
    ($backend:ident: $($case:ident),* $(,)?) => {
        mod $backend {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $case() {
                    crate::suite::$case(crate::$backend().await).await;
                }
            )*
        }
    };
}

store_suite!(sqlite:
    records_round_trip,
    a_failing_change_rolls_back_its_whole_unit_and_audit,
    duplicates_are_refused_by_kind,
    concurrent_units_commit_independently_into_one_chain,
    revocation_is_idempotent,
    usage_updates_never_lower_stored_values,
    live_tokens_exclude_finished_ones,
    token_filters_combine,
    data_and_chain_survive_reopening,
);
