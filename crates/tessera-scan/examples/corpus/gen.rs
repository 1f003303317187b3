//! A labelled corpus of synthetic secrets (right formats, never real) and realistic decoys
//! (hashes, UUIDs, base64 assets, lockfile integrity strings, placeholders). Shared by the
//! recall test and the benchmark's corpus generator.

use std::fmt::Write as _;
use std::path::Path;

/// A tiny deterministic PRNG (xorshift64*), so corpora are reproducible.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed.max(1))
    }

    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    pub fn pick(&mut self, alphabet: &[u8], n: usize) -> String {
        (0..n).map(|_| alphabet[(self.next() % alphabet.len() as u64) as usize] as char).collect()
    }
}

const UPPER_DIGITS: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
const ALNUM: &[u8] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
const HEX: &[u8] = b"0123456789abcdef";
const B64: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
const B64URL: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

/// A planted secret: the rule that must find it, and the line that carries it.
pub fn planted(rng: &mut Rng) -> Vec<(&'static str, String)> {
    vec![
        ("tessera-token", format!("export ORDERS_TOKEN={}", tessera_core::TokenSecret::generate().expose())),
        ("tessera-client-secret", format!("client_secret: {}", tessera_core::ClientSecret::generate().expose())),
        ("aws-access-key-id", format!("aws_access_key_id = AKIA{}", rng.pick(UPPER_DIGITS, 16))),
        ("aws-secret-access-key", format!("aws_secret_access_key = {}", rng.pick(B64, 40))),
        ("github-token", format!("GITHUB_TOKEN=ghp_{}", rng.pick(ALNUM, 36))),
        ("github-fine-grained-token", format!("token: github_pat_{}", rng.pick(ALNUM, 82))),
        ("gitlab-token", format!("GITLAB_TOKEN=glpat-{}", rng.pick(ALNUM, 20))),
        ("slack-token", format!("SLACK_BOT_TOKEN=xoxb-{}-{}", rng.pick(b"0123456789", 12), rng.pick(ALNUM, 24))),
        (
            "slack-webhook",
            format!(
                "webhook: https://hooks.slack.com/services/T{}/B{}/{}",
                rng.pick(UPPER_DIGITS, 8),
                rng.pick(UPPER_DIGITS, 8),
                rng.pick(ALNUM, 24)
            ),
        ),
        ("stripe-key", format!("STRIPE_SECRET_KEY=sk_live_{}", rng.pick(ALNUM, 24))),
        ("twilio-api-key", format!("TWILIO_KEY=SK{}", rng.pick(HEX, 32))),
        ("sendgrid-api-key", format!("SENDGRID=SG.{}.{}", rng.pick(B64URL, 22), rng.pick(B64URL, 43))),
        ("google-api-key", format!("maps_key: AIza{}", rng.pick(B64URL, 35))),
        // Assembled at run time so this source file is not itself a finding.
        ("private-key", format!("-----BEGIN {} PRIVATE KEY-----", "OPENSSH")),
        ("jwt", format!("auth = \"eyJhbGciOiJIUzI1NiJ9.eyJ{}.{}\"", rng.pick(B64URL, 40), rng.pick(B64URL, 43))),
        ("url-credentials", format!("DATABASE_URL=postgres://app:{}@db.internal:5432/app", rng.pick(ALNUM, 18))),
        ("generic-assignment", format!("db_password = \"{}\"", rng.pick(ALNUM, 20))),
    ]
}

/// Realistic non-secrets that a careless scanner reports.
pub fn decoys(rng: &mut Rng) -> Vec<String> {
    vec![
        format!("sha256: {}", rng.pick(HEX, 64)),
        format!("commit {}", rng.pick(HEX, 40)),
        format!(
            "id: {}-{}-4{}-a{}-{}",
            rng.pick(HEX, 8),
            rng.pick(HEX, 4),
            rng.pick(HEX, 3),
            rng.pick(HEX, 3),
            rng.pick(HEX, 12)
        ),
        format!("  \"integrity\": \"sha512-{}==\",", rng.pick(B64, 86)),
        format!("icon: data:image/png;base64,{}", rng.pick(B64, 120)),
        "password: changeme".to_owned(),
        "api_key: ${API_KEY}".to_owned(),
        "token = <token>".to_owned(),
        "secret: {{ vault_secret }}".to_owned(),
        "password = os.environ[\"DB_PASSWORD\"]".to_owned(),
        "const token = getToken(req);".to_owned(),
        "AWS_SECRET_ACCESS_KEY=xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx".to_owned(),
        format!("version = \"{}.{}.{}\"", rng.next() % 10, rng.next() % 30, rng.next() % 100),
        "# tessera:allow example: TOKEN=tsr_0000000000000000000000000000000000000".to_owned(),
        format!("checksum = \"{}\"", rng.pick(HEX, 32)),
        "password_min_length = 12".to_owned(),
    ]
}

/// Ordinary source and config text that carries neither.
pub fn filler(rng: &mut Rng, lines: usize) -> String {
    let templates = [
        "fn handle_{}(req: Request) -> Response {{ respond(req.id, {}) }}",
        "    timeout_ms: {}  # retry budget {}",
        "const LIMIT_{} = {};",
        "- name: step-{}\n  run: make test-{}",
        "SELECT id, status FROM orders WHERE id = {} AND shard = {};",
        "logger.info(\"processed batch {} in {} ms\")",
        "<div class=\"row-{}\">{}</div>",
    ];
    let mut out = String::new();
    for _ in 0..lines {
        let t = templates[(rng.next() % templates.len() as u64) as usize];
        let mut parts = t.split("{}");
        let mut line = parts.next().unwrap_or_default().to_owned();
        for p in parts {
            let _ = write!(line, "{}", rng.next() % 100_000);
            line.push_str(p);
        }
        out.push_str(&line);
        out.push('\n');
    }
    out
}

/// File names of the kinds secrets hide in.
pub const KINDS: [&str; 10] = [
    "app.env",
    "config.yaml",
    "settings.json",
    "Cargo.toml",
    "deploy.sh",
    "Dockerfile",
    "app.py",
    "index.js",
    "db.properties",
    "ci.ini",
];

/// Writes `files` files under `dir`, each with filler; every `plant_every`-th file carries
/// every planted secret, the others a set of decoys. Returns (path, rule) for every secret.
pub fn write(
    dir: &Path,
    files: usize,
    lines: usize,
    plant_every: usize,
    seed: u64,
) -> std::io::Result<Vec<(String, &'static str)>> {
    let mut rng = Rng::new(seed);
    let mut expected = Vec::new();
    for i in 0..files {
        let kind = KINDS[i % KINDS.len()];
        let sub = dir.join(format!("svc{:03}", i % 97));
        std::fs::create_dir_all(&sub)?;
        let name = format!("{i:06}-{kind}");
        let mut text = filler(&mut rng, lines / 2);
        if plant_every > 0 && i % plant_every == 0 {
            for (rule, line) in planted(&mut rng) {
                text.push_str(&line);
                text.push('\n');
                expected.push((format!("svc{:03}/{name}", i % 97), rule));
            }
        } else {
            for d in decoys(&mut rng) {
                text.push_str(&d);
                text.push('\n');
            }
        }
        text.push_str(&filler(&mut rng, lines - lines / 2));
        std::fs::write(sub.join(&name), text)?;
    }
    Ok(expected)
}
