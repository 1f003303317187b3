//! Backend-independent store tests.

use std::collections::BTreeMap;
use std::time::Duration;

use chrono::{DateTime, TimeDelta, Utc};
use tessera_core::audit::audit_time;
use tessera_core::upstream::{Fault, FaultKind, Injection, RotationHook, SecretConfig, SecretVersion, Upstream};
use tessera_core::Run;
use tessera_core::{
    AuditEvent, ChainVerifier, Client, EnvPolicy, Environment, MasterKey, NewToken, ScopeSet, SecretHasher, Token,
    TokenFormat, TokenHash,
};
use tessera_store::{
    Change, ChangeKind, GatewayUse, Resealed, StoreError, StoredKey, StoredSecretVersion, TokenFilter, UsageUpdate,
    WriteUnit,
};

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

pub async fn usage_updates_add_uses_and_never_move_last_use_back(b: Backend) {
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
    let u = |new_uses, at| UsageUpdate { token_id: "tok_a".into(), new_uses, last_used_at: at };
    // Two replicas' observations add up; the older last use does not move the stored one back.
    s.record_usage(vec![u(5, t1)]).await.unwrap();
    s.record_usage(vec![u(3, t0)]).await.unwrap();
    let t = s.token("tok_a").await.unwrap().unwrap();
    assert_eq!((t.uses, t.last_used_at), (8, Some(t1)));
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

fn key(kid: &str, env: &str, state: &str) -> StoredKey {
    StoredKey {
        kid: kid.into(),
        env: env.into(),
        alg: "EdDSA".into(),
        state: state.into(),
        sealed_key: vec![1, 2, 3, kid.len() as u8],
        public_jwk: format!(r#"{{"kid":"{kid}"}}"#),
        created_at: now(),
        activated_at: (state == "current").then(now),
        retired_at: None,
        publish_until: None,
    }
}

fn secret_version(env: &str, name: &str, version: u32) -> StoredSecretVersion {
    StoredSecretVersion {
        meta: SecretVersion {
            env: env.into(),
            name: name.into(),
            version,
            fingerprint: format!("fp{version}"),
            created_at: now(),
            created_by: "tok_root".into(),
            expires_at: Some(now() + TimeDelta::days(90)),
            state: "current".into(),
            valid_until: None,
        },
        sealed_dek: vec![version as u8; 40],
        ciphertext: vec![0xAB; 60],
    }
}

fn run(id: &str, timeout_s: u64, heartbeat_age_s: i64) -> Run {
    Run {
        id: id.into(),
        env: "qa".into(),
        label: Some("nightly".into()),
        started_at: now() - TimeDelta::seconds(heartbeat_age_s),
        heartbeat_at: now() - TimeDelta::seconds(heartbeat_age_s),
        heartbeat_timeout: Duration::from_secs(timeout_s),
        finished_at: None,
        exit_code: None,
        status: "running".into(),
        tokens_minted: 2,
        tokens_revoked: 0,
        created_by: "tok_root".into(),
    }
}

async fn commit(b: &Backend, change: Change, action: &str) {
    b.store.commit(WriteUnit::new(change, event(action, action))).await.unwrap();
}

pub async fn environment_and_client_updates_round_trip(b: Backend) {
    seed(&b).await;
    let s = &b.store;
    let mut qa = env("qa");
    qa.protected = true;
    qa.policy.max_uses = None;
    commit(&b, Change::UpdateEnvironment(qa.clone()), "environment.update").await;
    let stored = s.environment("qa").await.unwrap().unwrap();
    assert_eq!((stored.protected, stored.policy), (true, qa.policy));
    let mut svc = s.client("svc").await.unwrap().unwrap();
    svc.description = None;
    svc.token_format = TokenFormat::Jwt;
    svc.alg = "ES256".into();
    commit(&b, Change::UpdateClient(svc.clone()), "client.update").await;
    commit(&b, Change::SetClientDisabled { id: "svc".into(), disabled: true }, "client.disable").await;
    svc.disabled = true;
    assert_eq!(s.client("svc").await.unwrap().unwrap(), svc);
    assert_eq!(s.clients().await.unwrap().len(), 1);
    let missing = s
        .commit(WriteUnit::new(Change::SetClientDisabled { id: "nobody".into(), disabled: true }, event("x", "y")))
        .await;
    assert!(matches!(missing, Err(StoreError::NotFound { kind: "client", .. })), "{missing:?}");
    let missing_env = s.commit(WriteUnit::new(Change::UpdateEnvironment(env("nowhere")), event("x", "y"))).await;
    assert!(matches!(missing_env, Err(StoreError::NotFound { kind: "environment", .. })));
    assert_eq!(verify_chain(&b).await, 3 + 3);
}

pub async fn token_renewal_and_rotation_round_trip(b: Backend) {
    seed(&b).await;
    let s = &b.store;
    commit(&b, Change::CreateToken(token("tok_a", "staging", "svc", 600)), "token.create").await;
    let later = now() + TimeDelta::hours(2);
    commit(&b, Change::RenewToken { id: "tok_a".into(), expires_at: later }, "token.renew").await;
    assert_eq!(s.token("tok_a").await.unwrap().unwrap().expires_at, later);
    let grace = now() + TimeDelta::minutes(5);
    let mut next = token("tok_b", "staging", "svc", 600);
    next.token.rotated_from = Some("tok_a".into());
    commit(&b, Change::RotateToken { old_id: "tok_a".into(), grace_until: grace, new: next.clone() }, "token.rotate")
        .await;
    let old = s.token("tok_a").await.unwrap().unwrap();
    assert_eq!((old.superseded_by.as_deref(), old.grace_until), (Some("tok_b"), Some(grace)));
    assert_eq!(s.token("tok_b").await.unwrap().unwrap(), next.token);
    // A second rotation of the same token conflicts, and so does renewing it.
    let again =
        Change::RotateToken { old_id: "tok_a".into(), grace_until: grace, new: token("tok_c", "staging", "svc", 60) };
    assert!(matches!(s.commit(WriteUnit::new(again, event("r", "a"))).await, Err(StoreError::Conflict(_))));
    let renew = Change::RenewToken { id: "tok_a".into(), expires_at: later };
    assert!(matches!(s.commit(WriteUnit::new(renew, event("r", "a"))).await, Err(StoreError::Conflict(_))));
}

pub async fn signing_keys_rotate_and_drop(b: Backend) {
    seed(&b).await;
    let s = &b.store;
    commit(&b, Change::AddSigningKey(key("k1", "qa", "current")), "key.create").await;
    commit(&b, Change::AddSigningKey(key("k2", "qa", "next")), "key.create").await;
    let until = now() + TimeDelta::hours(1);
    let at = now();
    let rotate = |next: &str| Change::RotateSigningKeys {
        promote: "k2".into(),
        retire: Some("k1".into()),
        publish_until: until,
        next: key(next, "qa", "next"),
        at,
    };
    commit(&b, rotate("k3"), "key.rotate").await;
    let keys = s.signing_keys().await.unwrap();
    let state = |kid: &str| keys.iter().find(|k| k.kid == kid).map(|k| (k.state.clone(), k.publish_until));
    assert_eq!(state("k1"), Some(("retired".into(), Some(until))));
    assert_eq!(state("k2").unwrap().0, "current");
    assert_eq!(state("k3").unwrap().0, "next");
    let k3 = keys.iter().find(|k| k.kid == "k3").unwrap();
    assert_eq!(
        (&k3.sealed_key, &k3.public_jwk),
        (&key("k3", "qa", "next").sealed_key, &key("k3", "qa", "next").public_jwk)
    );
    // Replaying the same rotation conflicts: k1 is no longer current.
    assert!(matches!(s.commit(WriteUnit::new(rotate("k4"), event("r", "k"))).await, Err(StoreError::Conflict(_))));
    commit(&b, Change::DropSigningKey { kid: "k1".into() }, "key.drop").await;
    commit(&b, Change::DropSigningKey { kid: "k2".into() }, "key.drop").await;
    let kids: Vec<String> = s.signing_keys().await.unwrap().into_iter().map(|k| k.kid).collect();
    assert_eq!(kids.len(), 2, "only retired keys are dropped: {kids:?}");
}

pub async fn secrets_version_and_rewrap(b: Backend) {
    seed(&b).await;
    let s = &b.store;
    let config = SecretConfig {
        env: "qa".into(),
        name: "stripe".into(),
        hook: Some(RotationHook {
            argv: vec!["/bin/new-key".into(), "--json".into()],
            timeout: Duration::from_secs(7),
        }),
        rotation_period: Some(Duration::from_secs(86_400)),
        overlap: Duration::from_secs(600),
        created_at: now(),
    };
    commit(&b, Change::PutSecretConfig(config.clone()), "secret.config").await;
    assert_eq!(s.secret_config("qa", "stripe").await.unwrap().unwrap(), config);
    let until = now() + TimeDelta::minutes(10);
    for v in 1..=3 {
        let change =
            Change::PutSecretVersion { version: secret_version("qa", "stripe", v), previous_valid_until: until };
        commit(&b, change, "secret.set").await;
    }
    let versions = s.secret_versions(Some("qa"), Some("stripe")).await.unwrap();
    let states: Vec<(u32, &str)> = versions.iter().map(|v| (v.meta.version, v.meta.state.as_str())).collect();
    assert_eq!(states, [(3, "current"), (2, "previous"), (1, "retired")]);
    assert_eq!(versions[1].meta.valid_until, Some(until));
    assert_eq!(versions[0].ciphertext, secret_version("qa", "stripe", 3).ciphertext);
    let dup = Change::PutSecretVersion { version: secret_version("qa", "stripe", 3), previous_valid_until: until };
    assert!(matches!(s.commit(WriteUnit::new(dup, event("s", "s"))).await, Err(StoreError::AlreadyExists { .. })));
    assert_eq!(s.secret_configs(None).await.unwrap().len(), 1);
    assert!(s.secret_configs(Some("staging")).await.unwrap().is_empty());

    commit(
        &b,
        Change::SetSystemKey { purpose: "hash".into(), sealed: vec![9; 48], master_fingerprint: "old".into() },
        "system_key.create",
    )
    .await;
    commit(&b, Change::AddSigningKey(key("k1", "qa", "current")), "key.create").await;
    let rewrap = Resealed {
        system: vec![("hash".into(), vec![7; 48])],
        signing: vec![("k1".into(), vec![7; 20])],
        deks: (1..=3).map(|v| ("qa".to_owned(), "stripe".to_owned(), v, vec![7; 40])).collect(),
        master_fingerprint: "new".into(),
    };
    commit(&b, Change::Rewrap(rewrap), "master_key.rewrap").await;
    assert_eq!(s.system_key("hash").await.unwrap(), Some((vec![7; 48], "new".to_owned())));
    assert_eq!(s.signing_keys().await.unwrap()[0].sealed_key, vec![7; 20]);
    assert!(s.secret_versions(None, None).await.unwrap().iter().all(|v| v.sealed_dek == vec![7; 40]));
    assert!(s.system_key("other").await.unwrap().is_none());
}

pub async fn upstreams_faults_and_gateway_uses_round_trip(b: Backend) {
    seed(&b).await;
    let s = &b.store;
    let mut up = Upstream {
        env: "qa".into(),
        name: "payments".into(),
        url: "http://127.0.0.1:9/v1".into(),
        secret: "stripe".into(),
        inject: Injection::Header { name: "Authorization".into(), template: "Bearer {secret}".into() },
        allow_paths: vec!["/charges".into()],
        allow_methods: vec!["GET".into(), "POST".into()],
        timeout: Duration::from_millis(1500),
        created_at: now(),
    };
    commit(&b, Change::PutUpstream(up.clone()), "upstream.put").await;
    up.inject = Injection::Query { name: "api_key".into() };
    commit(&b, Change::PutUpstream(up.clone()), "upstream.put").await;
    let stored = s.upstreams().await.unwrap();
    assert_eq!(stored.len(), 1);
    assert_eq!(stored[0].inject, up.inject);
    let fault = |id: &str, upstream: &str, kind| Fault {
        id: id.into(),
        env: "qa".into(),
        upstream: upstream.into(),
        token_id: Some("tok_a".into()),
        kind,
        created_at: now(),
        created_by: "tok_root".into(),
    };
    commit(&b, Change::AddFault(fault("f1", "payments", FaultKind::FailAfter { n: 3, status: 401 })), "f").await;
    commit(&b, Change::AddFault(fault("f2", "mail", FaultKind::Latency { delay: Duration::from_millis(250) })), "f")
        .await;
    commit(&b, Change::AddFault(fault("f3", "payments", FaultKind::RevokeAfter { n: 2 })), "f").await;
    commit(
        &b,
        Change::AddFault(fault("f4", "payments", FaultKind::RotateAfter { after: Duration::from_secs(9) })),
        "f",
    )
    .await;
    let kinds: Vec<FaultKind> = s.faults().await.unwrap().into_iter().map(|f| f.kind).collect();
    assert_eq!(kinds.len(), 4);
    assert!(kinds.contains(&FaultKind::Latency { delay: Duration::from_millis(250) }));
    commit(&b, Change::ClearFaults { env: Some("qa".into()), upstream: Some("payments".into()) }, "faults.clear").await;
    let left: Vec<String> = s.faults().await.unwrap().into_iter().map(|f| f.id).collect();
    assert_eq!(left, ["f2"]);
    commit(&b, Change::ClearFaults { env: None, upstream: None }, "faults.clear").await;
    assert!(s.faults().await.unwrap().is_empty());

    let use_row = |i: u64, run: Option<&str>| GatewayUse {
        at: now(),
        env: "qa".into(),
        upstream: "payments".into(),
        token_id: "tok_a".into(),
        run_id: run.map(Into::into),
        method: "GET".into(),
        path: format!("/charges/{i}"),
        status: 200,
        latency_us: 1000 + i,
    };
    let rows: Vec<GatewayUse> = (0..1200).map(|i| use_row(i, (i % 2 == 0).then_some("run_1"))).collect();
    let head = s.audit_head().await.unwrap();
    s.commit(WriteUnit { changes: vec![Change::RecordGatewayUse(rows)], audit: vec![] }).await.unwrap();
    assert_eq!(s.audit_head().await.unwrap(), head, "usage is not audited");
    let newest = s.gateway_uses(None, 5).await.unwrap();
    assert_eq!(newest.len(), 5);
    assert_eq!(newest[0].path, "/charges/1199");
    assert_eq!(s.gateway_uses(Some("run_1"), 10_000).await.unwrap().len(), 600);
}

pub async fn runs_heartbeat_end_and_go_stale(b: Backend) {
    seed(&b).await;
    let s = &b.store;
    commit(&b, Change::CreateRun(run("run_fresh", 60, 0)), "run.start").await;
    commit(&b, Change::CreateRun(run("run_silent", 5, 30)), "run.start").await;
    let stale: Vec<String> = s.stale_runs(now()).await.unwrap().into_iter().map(|r| r.id).collect();
    assert_eq!(stale, ["run_silent"]);
    commit(&b, Change::RunHeartbeat { id: "run_silent".into(), at: now() }, "run.heartbeat").await;
    assert!(s.stale_runs(now()).await.unwrap().is_empty());
    commit(&b, Change::AddRunTokens { id: "run_fresh".into(), count: 3 }, "run.tokens").await;
    let end = |status: &str| Change::EndRun {
        id: "run_fresh".into(),
        at: now(),
        exit_code: Some(-2),
        status: status.into(),
        tokens_revoked: 5,
    };
    commit(&b, end("finished"), "run.end").await;
    assert!(matches!(s.commit(WriteUnit::new(end("reaped"), event("r", "r"))).await, Err(StoreError::Conflict(_))));
    let r = s.run("run_fresh").await.unwrap().unwrap();
    assert_eq!((r.status.as_str(), r.exit_code, r.tokens_minted, r.tokens_revoked), ("finished", Some(-2), 5, 5));
    let heartbeat = Change::RunHeartbeat { id: "run_fresh".into(), at: now() };
    assert!(matches!(s.commit(WriteUnit::new(heartbeat, event("r", "r"))).await, Err(StoreError::Conflict(_))));
    assert_eq!(s.runs(Some("qa"), Some("nightly"), 10).await.unwrap().len(), 2);
    assert_eq!(s.runs(None, Some("other"), 10).await.unwrap().len(), 0);
    assert!(s.run("run_none").await.unwrap().is_none());
}

/// A second process on the same (shared) store: a replica.
async fn replica(b: &Backend) -> std::sync::Arc<dyn tessera_store::Store> {
    assert!(b.store.is_shared(), "only a shared store has replicas");
    tessera_store::open(&b.url).await.unwrap()
}

pub async fn a_store_that_is_not_shared_has_no_feed_and_always_leads(b: Backend) {
    seed(&b).await;
    if b.store.is_shared() {
        assert!(b.store.change_notifications().is_some());
        assert!(!b.store.changes_after(0, 10).await.unwrap().is_empty(), "the seed is in the feed");
        return;
    }
    assert!(b.store.changes_after(0, 10).await.unwrap().is_empty());
    assert_eq!(b.store.change_seq().await.unwrap(), 0);
    assert_eq!(b.store.prune_changes(0).await.unwrap(), 0);
    assert!(b.store.change_notifications().is_none());
    assert!(b.store.try_lead().await.unwrap(), "an unshared store always leads");
}

pub async fn replicas_append_to_one_chain(b: Backend) {
    seed(&b).await;
    let other = replica(&b).await;
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..300 {
        let store = if i % 2 == 0 { b.store.clone() } else { other.clone() };
        tasks.spawn(async move {
            let change = Change::CreateToken(token(&format!("tok_{i}"), "staging", "svc", 600));
            store.commit(WriteUnit::new(change, event("token.create", &format!("tok_{i}")))).await.unwrap();
        });
    }
    while let Some(r) = tasks.join_next().await {
        r.unwrap();
    }
    assert_eq!(verify_chain(&b).await, 3 + 300);
}

pub async fn replicas_see_each_others_changes(b: Backend) {
    seed(&b).await;
    let other = replica(&b).await;
    let mut announced = other.change_notifications().unwrap();
    let start = other.change_seq().await.unwrap();
    commit(&b, Change::CreateToken(token("tok_a", "staging", "svc", 600)), "token.create").await;
    let revoke = Change::RevokeTokens { ids: vec!["tok_a".into()], at: now(), reason: None };
    commit(&b, revoke, "token.revoke").await;
    tokio::time::timeout(Duration::from_secs(5), announced.wait_for(|seq| *seq >= start + 2))
        .await
        .expect("the commit is announced")
        .unwrap();
    let changes = other.changes_after(start, 100).await.unwrap();
    let seen: Vec<(u64, ChangeKind, &str)> = changes.iter().map(|c| (c.seq, c.kind, c.key.as_str())).collect();
    assert_eq!(seen, [(start + 1, ChangeKind::Token, "tok_a"), (start + 2, ChangeKind::Token, "tok_a")]);
    assert!(changes.iter().all(|c| c.origin == b.store.origin() && c.origin != other.origin()));
    assert!(other.token("tok_a").await.unwrap().unwrap().revoked_at.is_some());
    // Pruning keeps the newest records; a reader further behind sees the gap.
    assert_eq!(b.store.prune_changes(1).await.unwrap(), start + 1);
    let left = other.changes_after(0, 100).await.unwrap();
    assert_eq!(left.iter().map(|c| c.seq).collect::<Vec<_>>(), [start + 2]);
}

pub async fn one_replica_leads_until_it_goes_away(b: Backend) {
    let other = replica(&b).await;
    assert!(b.store.try_lead().await.unwrap());
    assert!(b.store.try_lead().await.unwrap(), "the leader keeps leading");
    assert!(!other.try_lead().await.unwrap(), "one leader at a time");
    drop(b.store);
    // The leader's lock connection closes with it; the other takes over.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while !other.try_lead().await.unwrap() {
        assert!(std::time::Instant::now() < deadline, "no takeover");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
