//! Tampering with the audit log in the SQLite file is detected and the first bad entry named.

use sqlx::{Connection, SqliteConnection};

use crate::harness::Server;

async fn tamper(dir: &std::path::Path, sql: &str) {
    let url = format!("sqlite://{}", dir.join("tessera.db").display());
    let mut conn = SqliteConnection::connect(&url).await.unwrap();
    let done = sqlx::query(sql).execute(&mut conn).await.unwrap();
    assert_eq!(done.rows_affected(), 1, "{sql}");
}

#[tokio::test]
async fn editing_or_deleting_any_audit_row_fails_verification_at_that_entry() {
    // 5 entries at first start, then env (with its 2 signing keys), client and 3 tokens: 12.
    let cases: &[(&str, &str, &str)] = &[
        ("edit a field", "UPDATE audit_log SET actor = 'tok_mallory' WHERE seq = 5", "first bad entry #5"),
        (
            "edit details",
            "UPDATE audit_log SET details = '{\"scopes\":\"everything\"}' WHERE seq = 7",
            "first bad entry #7",
        ),
        ("break details", "UPDATE audit_log SET details = 'not json' WHERE seq = 6", "first bad entry #6"),
        ("move in time", "UPDATE audit_log SET at = at + 1 WHERE seq = 2", "first bad entry #2"),
        ("delete a row", "DELETE FROM audit_log WHERE seq = 7", "expected sequence number 7"),
        ("delete the first row", "DELETE FROM audit_log WHERE seq = 1", "expected sequence number 1"),
        ("delete the last row", "DELETE FROM audit_log WHERE seq = 12", "first bad entry #12"),
        (
            "rewrite a hash to match",
            "UPDATE audit_log SET hash = (SELECT hash FROM audit_log WHERE seq = 3) WHERE seq = 4",
            "first bad entry #4",
        ),
    ];
    for (name, sql, expected) in cases {
        let dir = tempfile::tempdir().unwrap();
        let s = Server::start(dir.path());
        s.ok(&["env", "create", "staging"]);
        s.ok(&["client", "create", "svc", "--scopes", "staging=a"]);
        for _ in 0..3 {
            s.ok(&["token", "create", "--env", "staging", "--client", "svc"]);
        }
        assert!(s.ok(&["audit", "verify"]).contains("verified: 12 entries"), "{name}");
        tamper(dir.path(), sql).await;
        let out = s.cli(&["audit", "verify"]);
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert_eq!(out.status.code(), Some(1), "{name}: {stdout}");
        assert!(stdout.contains("does NOT verify") && stdout.contains(expected), "{name}: {stdout}");
        let json = s.json_status(&["audit", "verify"]);
        assert_eq!(json["ok"], false, "{name}");
    }
}
