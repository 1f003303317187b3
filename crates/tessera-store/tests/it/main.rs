//! The store test suite. Every case is written against `Arc<dyn Store>` and instantiated per
//! backend by `store_suite!`, so a new backend runs the same tests.

mod suite;

use std::sync::Arc;

use tessera_store::{SqlStore, SqliteOptions, Store};

/// A backend under test: the store, the URL that reopens it, and what keeps its data alive.
pub struct Backend {
    pub store: Arc<dyn Store>,
    pub url: String,
    pub _dir: tempfile::TempDir,
}

async fn sqlite() -> Backend {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("test.db");
    let store: Arc<dyn Store> = Arc::new(SqlStore::open_sqlite(SqliteOptions::new(&path)).await.unwrap());
    Backend { store, url: format!("sqlite://{}", path.display()), _dir: dir }
}

/// A fresh database on `TESSERA_TEST_POSTGRES`; `None` skips the test (see tessera-testpg).
async fn postgres(test: &str) -> Option<Backend> {
    let url = tessera_testpg::database(test).await?;
    let store = tessera_store::open(&url).await.unwrap();
    Some(Backend { store, url, _dir: tempfile::tempdir().unwrap() })
}

/// Instantiates every case for both backends, and the `shared:` cases (several processes on one
/// store) for PostgreSQL only.
macro_rules! store_suite {
    ($($case:ident),* $(,)?; shared: $($shared:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $case() {
                    crate::suite::$case(crate::sqlite().await).await;
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $case() {
                    let Some(backend) = crate::postgres(concat!("postgres::", stringify!($case))).await else { return };
                    crate::suite::$case(backend).await;
                }
            )*
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $shared() {
                    let Some(backend) = crate::postgres(concat!("postgres::", stringify!($shared))).await else { return };
                    crate::suite::$shared(backend).await;
                }
            )*
        }
    };
}

store_suite!(
    records_round_trip,
    a_failing_change_rolls_back_its_whole_unit_and_audit,
    duplicates_are_refused_by_kind,
    concurrent_units_commit_independently_into_one_chain,
    revocation_is_idempotent,
    usage_updates_add_uses_and_never_move_last_use_back,
    live_tokens_exclude_finished_ones,
    token_filters_combine,
    data_and_chain_survive_reopening,
    environment_and_client_updates_round_trip,
    token_renewal_and_rotation_round_trip,
    signing_keys_rotate_and_drop,
    secrets_version_and_rewrap,
    upstreams_faults_and_gateway_uses_round_trip,
    runs_heartbeat_end_and_go_stale,
    a_store_that_is_not_shared_has_no_feed_and_always_leads;
    shared:
    replicas_append_to_one_chain,
    replicas_see_each_others_changes,
    one_replica_leads_until_it_goes_away,
);
