//! Backend-independent store tests.

use std::collections::BTreeMap;
use std::time::Duration;

use chrono::{DateTime, TimeDelta, Utc};
use tessera_core::audit::audit_time;
use tessera_core::{
    AuditEvent, ChainVerifier, Client, EnvPolicy, Environment, MasterKey, NewToken, ScopeSet, SecretHasher, Token,
    TokenFormat, TokenHash,
};
use tessera_store::{Change, StoreError, TokenFilter, UsageUpdate, WriteUnit};

use crate::Backend;

fn now() -> DateTime<Utc> {
    audit_time(Utc::now())
}

fn env(name: &str) -> Environment {
    Environment {
        name: name.into(),
        policy: EnvPolicy::from_parts(
            None,
            None,
            Some(Duration::from_secs(900)),
            Some(Duration::from_secs(86_400)),
            Some(5),
        )
        .unwrap(),
        protected: name == "prod",
        created_at: now(),
    }
}

fn client(id: &str, envs: &[&str]) -> Client {
    let hasher = SecretHasher::new(&MasterKey::generate());
    Client {
        id: id.into(),
        description: Some("test client".into()),
        allowed_scopes: envs
            .iter()
            .map(|e| (e.to_string(), ScopeSet::parse_space_separated("orders:read orders:write").unwrap()))
            .collect(),
        token_format: TokenFormat::Opaque,
        alg: "EdDSA".into(),
        secret_hash: hasher.hash("secret"),
        disabled: false,
        created_at: now(),
    }
}

fn token(id: &str, env: &str, client: &str, ttl_s: i64) -> NewToken {
    let at = now();
    NewToken {
        token: Token {
            id: id.into(),
            env: env.into(),
            client_id: client.into(),
            scopes: ScopeSet::parse_space_separated("orders:read").unwrap(),
            audience: Some("orders-api".into()),
            format: TokenFormat::Opaque,
            labels: BTreeMap::from([("suite".into(), "smoke".into())]),
            run_id: None,
            created_by: "tok_root".into(),
            created_at: at,
            not_before: None,
            expires_at: at + TimeDelta::seconds(ttl_s),
            idle_ttl: Some(Duration::from_secs(60)),
            last_used_at: None,
            max_uses: Some(10),
            uses: 0,
            revoked_at: None,
            revoke_reason: None,
            rotated_from: None,
            superseded_by: None,
            grace_until: None,
        },
        hash: TokenHash(*blake(id)),
    }
}

/// A distinct 32-byte "hash" per id.
fn blake(id: &str) -> Box<[u8; 32]> {
    let mut h = [0u8; 32];
    for (i, b) in id.bytes().enumerate() {
        h[i % 32] ^= b.wrapping_mul(31).wrapping_add(i as u8);
    }
    h[31] = id.len() as u8;
    Box::new(h)
}

fn event(action: &str, target: &str) -> AuditEvent {
    AuditEvent::new(action, "tok_root").target(target)
}

async fn seed(b: &Backend) {
    let unit = WriteUnit {
        changes: vec![
            Change::CreateEnvironment(env("staging")),
            Change::CreateEnvironment(env("qa")),
            Change::CreateClient(client("svc", &["staging", "qa"])),
        ],
        audit: vec![
            event("environment.create", "staging"),
            event("environment.create", "qa"),
            event("client.create", "svc"),
        ],
    };
    b.store.commit(unit).await.unwrap();
}

async fn verify_chain(b: &Backend) -> u64 {
    let head = b.store.audit_head().await.unwrap();
    let mut v = ChainVerifier::new();
    let mut after = 0;
    loop {
        let batch = b.store.audit_entries(after, 500).await.unwrap();
        let Some(last) = batch.last() else { break };
        after = last.seq;
        for e in &batch {
            v.push(e).unwrap();
        }
    }
    v.finish(&head).unwrap()
}

pub async fn records_round_trip(b: Backend) {
    seed(&b).await;
    let s = &b.store;
    assert_eq!(s.environment("staging").await.unwrap().unwrap().policy, env("staging").policy);
    assert_eq!(s.environments().await.unwrap().len(), 2);
    let c = s.client("svc").await.unwrap().unwrap();
    let mut expected = client("svc", &["staging", "qa"]);
    expected.secret_hash = c.secret_hash;
    expected.created_at = c.created_at;
    assert_eq!(c, expected);
    let t = token("tok_a", "staging", "svc", 3_600);
    s.commit(WriteUnit::new(Change::CreateToken(t.clone()), event("token.create", "tok_a"))).await.unwrap();
    assert_eq!(s.token("tok_a").await.unwrap().unwrap(), t.token);
    assert_eq!(s.token_by_hash(&t.hash).await.unwrap().unwrap(), t.token);
    assert!(s.token("tok_missing").await.unwrap().is_none());
    assert!(!s.is_empty().await.unwrap());
    s.ping().await.unwrap();
}

pub async fn a_failing_change_rolls_back_its_whole_unit_and_audit(b: Backend) {
    seed(&b).await;
    let s = &b.store;
    let head = s.audit_head().await.unwrap();
    // Second change fails (unknown token to rotate): the first must not stick either.
    let unit = WriteUnit {
        changes: vec![
            Change::CreateToken(token("tok_new", "staging", "svc", 60)),
            Change::RenewToken { id: "tok_ghost".into(), expires_at: now() },
        ],
        audit: vec![event("token.create", "tok_new")],
    };
    assert!(matches!(s.commit(unit).await, Err(StoreError::Conflict(_))));
    assert!(s.token("tok_new").await.unwrap().is_none());
    assert_eq!(s.audit_head().await.unwrap(), head);
    // A token for an unknown environment violates a foreign key.
    let bad = WriteUnit::new(Change::CreateToken(token("tok_x", "nowhere", "svc", 60)), event("token.create", "tok_x"));
    assert!(matches!(s.commit(bad).await, Err(StoreError::Conflict(_))));
    assert_eq!(s.audit_head().await.unwrap(), head);
    // The next good unit continues the chain.
    s.commit(WriteUnit::new(
        Change::CreateToken(token("tok_ok", "staging", "svc", 60)),
        event("token.create", "tok_ok"),
    ))
    .await
    .unwrap();
    assert_eq!(verify_chain(&b).await, head.seq + 1);
}

pub async fn duplicates_are_refused_by_kind(b: Backend) {
    seed(&b).await;
    let s = &b.store;
    let dup_env =
        s.commit(WriteUnit::new(Change::CreateEnvironment(env("qa")), event("environment.create", "qa"))).await;
    assert!(matches!(dup_env, Err(StoreError::AlreadyExists { kind: "environment", .. })), "{dup_env:?}");
    let dup_client =
        s.commit(WriteUnit::new(Change::CreateClient(client("svc", &["qa"])), event("client.create", "svc"))).await;
    assert!(matches!(dup_client, Err(StoreError::AlreadyExists { kind: "client", .. })));
    s.commit(WriteUnit::new(Change::CreateToken(token("tok_a", "qa", "svc", 60)), event("token.create", "a")))
        .await
        .unwrap();
    let dup_token = s
        .commit(WriteUnit::new(Change::CreateToken(token("tok_a", "qa", "svc", 60)), event("token.create", "a")))
        .await;
    assert!(matches!(dup_token, Err(StoreError::AlreadyExists { kind: "token", .. })));
    assert_eq!(verify_chain(&b).await, 4);
}

pub async fn concurrent_units_commit_independently_into_one_chain(b: Backend) {
    seed(&b).await;
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..200 {
        let store = b.store.clone();
        tasks.spawn(async move {
            // Every fifth unit fails; it must roll back alone.
            let change = if i % 5 == 0 {
                Change::RenewToken { id: format!("tok_ghost{i}"), expires_at: now() }
            } else {
                Change::CreateToken(token(&format!("tok_{i}"), "staging", "svc", 600))
            };
            store.commit(WriteUnit::new(change, event("token.create", &format!("tok_{i}")))).await.is_ok()
        });
    }
    let mut ok = 0;
    while let Some(r) = tasks.join_next().await {
        ok += u64::from(r.unwrap());
    }
    assert_eq!(ok, 160);
    assert_eq!(verify_chain(&b).await, 3 + 160);
    let all = b.store.tokens(&TokenFilter::default()).await.unwrap();
    assert_eq!(all.len(), 160);
}

pub async fn revocation_is_idempotent(b: Backend) {
    seed(&b).await;
    let s = &b.store;
    for id in ["tok_a", "tok_b"] {
        s.commit(WriteUnit::new(Change::CreateToken(token(id, "staging", "svc", 600)), event("token.create", id)))
            .await
            .unwrap();
    }
    let revoke = |ids: &[&str]| WriteUnit {
        changes: vec![Change::RevokeTokens {
            ids: ids.iter().map(|s| s.to_string()).collect(),
            at: now(),
            reason: Some("test".into()),
        }],
        audit: vec![],
    };
    assert_eq!(s.commit(revoke(&["tok_a"])).await.unwrap().revoked, ["tok_a"]);
    let first = s.token("tok_a").await.unwrap().unwrap().revoked_at;
    assert_eq!(s.commit(revoke(&["tok_a", "tok_b"])).await.unwrap().revoked, ["tok_b"]);
    assert_eq!(s.token("tok_a").await.unwrap().unwrap().revoked_at, first, "a second revoke changes nothing");
    // Rotating or renewing a revoked token conflicts.
    let rotate =
        Change::RotateToken { old_id: "tok_a".into(), grace_until: now(), new: token("tok_c", "staging", "svc", 60) };
    assert!(matches!(
        s.commit(WriteUnit::new(rotate, event("token.rotate", "tok_a"))).await,
        Err(StoreError::Conflict(_))
    ));
    assert!(s.token("tok_c").await.unwrap().is_none());
}

pub async fn usage_updates_never_lower_stored_values(b: Backend) {
    seed(&b).await;
    let s = &b.store;
    s.commit(WriteUnit::new(
        Change::CreateToken(token("tok_a", "staging", "svc", 600)),
        event("token.create", "tok_a"),
    ))
    .await
    .unwrap();
    let t1 = now();
    let t0 = t1 - TimeDelta::seconds(30);
    let u = |uses, at| UsageUpdate { token_id: "tok_a".into(), uses, last_used_at: at };
    s.record_usage(vec![u(5, t1)]).await.unwrap();
    s.record_usage(vec![u(3, t0)]).await.unwrap();
    let t = s.token("tok_a").await.unwrap().unwrap();
    assert_eq!((t.uses, t.last_used_at), (5, Some(t1)));
    s.record_usage(vec![]).await.unwrap();
}

pub async fn live_tokens_exclude_finished_ones(b: Backend) {
    seed(&b).await;
    let s = &b.store;
    for (id, ttl) in [("tok_live", 600), ("tok_expired", -1), ("tok_revoked", 600), ("tok_rotated", 600)] {
        s.commit(WriteUnit::new(Change::CreateToken(token(id, "staging", "svc", ttl)), event("token.create", id)))
            .await
            .unwrap();
    }
    s.commit(WriteUnit {
        changes: vec![Change::RevokeTokens { ids: vec!["tok_revoked".into()], at: now(), reason: None }],
        audit: vec![],
    })
    .await
    .unwrap();
    let rotate = Change::RotateToken {
        old_id: "tok_rotated".into(),
        grace_until: now() - TimeDelta::seconds(1),
        new: token("tok_next", "staging", "svc", 600),
    };
    s.commit(WriteUnit::new(rotate, event("token.rotate", "tok_rotated"))).await.unwrap();
    let mut live: Vec<String> = s
        .live_tokens(now())
        .await
        .unwrap()
        .into_iter()
        .map(|(h, t)| {
            assert!(h.is_some());
            t.id
        })
        .collect();
    live.sort();
    assert_eq!(live, ["tok_live", "tok_next"]);
    let rotated = s.token("tok_rotated").await.unwrap().unwrap();
    assert_eq!(rotated.superseded_by.as_deref(), Some("tok_next"));
    assert_eq!(s.token("tok_next").await.unwrap().unwrap().rotated_from, None, "the caller sets rotated_from");
}

pub async fn token_filters_combine(b: Backend) {
    seed(&b).await;
    let s = &b.store;
    for (id, env) in [("tok_1", "staging"), ("tok_2", "staging"), ("tok_3", "qa")] {
        s.commit(WriteUnit::new(Change::CreateToken(token(id, env, "svc", 600)), event("token.create", id)))
            .await
            .unwrap();
    }
    let ids = |f: TokenFilter| async move {
        let mut v: Vec<String> = s.tokens(&f).await.unwrap().into_iter().map(|t| t.id).collect();
        v.sort();
        v
    };
    assert_eq!(ids(TokenFilter { env: Some("staging".into()), ..Default::default() }).await, ["tok_1", "tok_2"]);
    assert_eq!(
        ids(TokenFilter { env: Some("qa".into()), client_id: Some("svc".into()), ..Default::default() }).await,
        ["tok_3"]
    );
    assert_eq!(ids(TokenFilter { client_id: Some("other".into()), ..Default::default() }).await, Vec::<String>::new());
    assert_eq!(s.tokens(&TokenFilter { limit: Some(2), ..Default::default() }).await.unwrap().len(), 2);
}

pub async fn data_and_chain_survive_reopening(b: Backend) {
    seed(&b).await;
    b.store
        .commit(WriteUnit::new(
            Change::CreateToken(token("tok_a", "staging", "svc", 600)),
            event("token.create", "tok_a"),
        ))
        .await
        .unwrap();
    let head = b.store.audit_head().await.unwrap();
    let reopened = tessera_store::open(&b.url).await.unwrap();
    assert_eq!(reopened.audit_head().await.unwrap(), head);
    reopened
        .commit(WriteUnit::new(
            Change::CreateToken(token("tok_b", "staging", "svc", 600)),
            event("token.create", "tok_b"),
        ))
        .await
        .unwrap();
    assert!(reopened.token("tok_a").await.unwrap().is_some());
    let b2 = Backend { store: reopened, url: b.url, _dir: b._dir };
    assert_eq!(verify_chain(&b2).await, head.seq + 1);
}
