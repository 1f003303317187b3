//! Domain records → API views. Serialization happens only here, at the boundary.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use tessera_api::{AuditEntryView, ClientView, EnvironmentView, TokenView};
use tessera_core::{format_duration, AuditEntry, Client, Environment, Token};

pub fn environment(e: &Environment) -> EnvironmentView {
    let p = &e.policy;
    EnvironmentView {
        name: e.name.clone(),
        default_ttl: format_duration(p.default_ttl),
        max_ttl: format_duration(p.max_ttl),
        idle_ttl: p.idle_ttl.map(format_duration),
        rotation_period: p.rotation_period.map(format_duration),
        max_uses: p.max_uses,
        protected: e.protected,
        created_at: e.created_at,
    }
}

pub fn client(c: &Client) -> ClientView {
    ClientView {
        id: c.id.clone(),
        description: c.description.clone(),
        scopes: c.allowed_scopes.iter().map(|(env, s)| (env.clone(), s.to_vec())).collect::<BTreeMap<_, _>>(),
        token_format: c.token_format.as_str().to_owned(),
        alg: c.alg.clone(),
        disabled: c.disabled,
        created_at: c.created_at,
    }
}

pub fn token(t: &Token, now: DateTime<Utc>) -> TokenView {
    let check = t.check(now);
    TokenView {
        id: t.id.clone(),
        env: t.env.clone(),
        client: t.client_id.clone(),
        scopes: t.scopes.to_vec(),
        audience: t.audience.clone(),
        format: t.format.as_str().to_owned(),
        labels: t.labels.clone(),
        run_id: t.run_id.clone(),
        created_by: t.created_by.clone(),
        created_at: t.created_at,
        not_before: t.not_before,
        expires_at: t.expires_at,
        idle_ttl: t.idle_ttl.map(format_duration),
        last_used_at: t.last_used_at,
        max_uses: t.max_uses,
        uses: t.uses,
        revoked_at: t.revoked_at,
        revoke_reason: t.revoke_reason.clone(),
        rotated_from: t.rotated_from.clone(),
        superseded_by: t.superseded_by.clone(),
        grace_until: t.grace_until,
        state: if check.is_ok() { "active" } else { "inactive" }.to_owned(),
        inactive_reason: check.err().map(|r| r.as_str().to_owned()),
        remaining_s: if check.is_ok() { t.life().remaining(now).as_secs() } else { 0 },
    }
}

pub fn audit(e: &AuditEntry) -> AuditEntryView {
    AuditEntryView {
        seq: e.seq,
        at: e.at,
        action: e.event.action.clone(),
        actor: e.event.actor.clone(),
        env: e.event.env.clone(),
        target: e.event.target.clone(),
        details: e.event.details.clone(),
        prev_hash: hex_encode(&e.prev_hash),
        hash: hex_encode(&e.hash),
    }
}

pub fn hex_encode(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
