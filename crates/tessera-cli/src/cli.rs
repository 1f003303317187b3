//! Command-line definitions (clap). Names follow DESIGN.md exactly.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

#[derive(Debug, Parser)]
#[command(name = "tessera", version, about = "API-token lifecycle management and token-aware API testing")]
pub struct Cli {
    /// Tessera server URL. (Not `--url`/`--token`: commands such as `upstream create` and
    /// `authtest` have their own flags of those names.)
    #[arg(long = "tessera-url", global = true, env = "TESSERA_URL", default_value = "http://127.0.0.1:7340")]
    pub tessera_url: String,
    /// Credential for the server API (default: DATA_DIR/root-token when that file exists).
    #[arg(long = "tessera-token", global = true, env = "TESSERA_TOKEN", hide_env_values = true)]
    pub tessera_token: Option<String>,
    /// Output format.
    #[arg(long, short = 'o', global = true, value_enum, default_value_t = Output::Text)]
    pub output: Output,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Output {
    Text,
    Json,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the Tessera server.
    Server(ServerArgs),
    /// Manage environments.
    #[command(subcommand)]
    Env(EnvCommand),
    /// Manage clients (service accounts).
    #[command(subcommand)]
    Client(ClientCommand),
    /// Create, list, rotate, renew and revoke tokens.
    #[command(subcommand)]
    Token(TokenCommand),
    /// Read and verify the audit log.
    #[command(subcommand)]
    Audit(AuditCommand),
    /// List and rotate JWT signing keys; re-seal data keys under a new master key.
    #[command(subcommand)]
    Keys(KeysCommand),
    /// Upstream (third-party) secrets: set, list, versions, rotate, reveal.
    #[command(subcommand)]
    Secret(SecretCommand),
    /// Upstreams the gateway forwards to.
    #[command(subcommand)]
    Upstream(UpstreamCommand),
    /// Gateway auth-fault injection.
    #[command(subcommand)]
    Gateway(GatewayCommand),
    /// Compare credentials across environments; exit 1 when there are problems.
    Drift,
    /// Show how the server differs from tessera.toml.
    Plan {
        #[arg(long)]
        config: Option<std::path::PathBuf>,
        /// Exit 1 when there are changes (for CI).
        #[arg(long)]
        detailed_exitcode: bool,
    },
    /// Make the server match tessera.toml (idempotent, audited).
    Apply {
        #[arg(long)]
        config: Option<std::path::PathBuf>,
        /// Print the secrets of newly created clients (shown once).
        #[arg(long)]
        show_secrets: bool,
    },
    /// Check every need of tessera.toml in an environment before a run; exit 1 on any failure.
    Preflight {
        #[arg(long)]
        env: String,
        /// Compare token lifetimes with past runs with this label.
        #[arg(long)]
        label: Option<String>,
        #[arg(long)]
        config: Option<std::path::PathBuf>,
    },
    /// Run a command with fresh tokens injected as environment variables, revoked afterwards.
    Run {
        #[arg(long)]
        env: String,
        #[arg(long)]
        label: Option<String>,
        #[arg(long)]
        config: Option<std::path::PathBuf>,
        /// Do not mask injected values in the command's output.
        #[arg(long)]
        no_mask: bool,
        /// Also write the variables to a 0600 file named by TESSERA_ENV_FILE (removed after).
        #[arg(long)]
        env_file: bool,
        /// Revoke the run's tokens when no heartbeat came for this long (default 30s).
        #[arg(long)]
        heartbeat_timeout: Option<String>,
        /// The command and its arguments (after --).
        #[arg(last = true, required = true, value_name = "CMD")]
        command: Vec<String>,
    },
    /// Run history.
    #[command(subcommand)]
    Runs(RunsCommand),
    /// Test how an API rejects every kind of bad token (the auth-fault matrix).
    Authtest(AuthtestArgs),
    /// Find plaintext tokens and keys in files, git history or the staging area.
    Scan(ScanArgs),
}

#[derive(Debug, Args)]
pub struct ScanArgs {
    /// Files or directories (default: .); `-` reads stdin.
    pub paths: Vec<std::path::PathBuf>,
    /// Scan every blob reachable from any ref of the git repository at PATH (default: .).
    #[arg(long, conflicts_with = "staged")]
    pub git: bool,
    /// Scan what is staged in git (for a pre-commit hook).
    #[arg(long)]
    pub staged: bool,
    #[arg(long, value_parser = ["text", "json", "sarif"], default_value = "text")]
    pub format: String,
    /// Suppress the findings listed in this baseline.
    #[arg(long)]
    pub baseline: Option<std::path::PathBuf>,
    /// Write the current findings as a baseline and exit 0.
    #[arg(long)]
    pub write_baseline: Option<std::path::PathBuf>,
    /// Extra rule files (TOML) adding or overriding rules by id.
    #[arg(long = "rules")]
    pub rules: Vec<std::path::PathBuf>,
    /// Ask the Tessera server whether each Tessera token found is live.
    #[arg(long)]
    pub verify: bool,
    /// Revoke the live Tessera tokens found (implies --verify); audited with where they leaked.
    #[arg(long)]
    pub revoke: bool,
}

#[derive(Debug, Args)]
pub struct AuthtestArgs {
    /// OpenAPI 3.0/3.1 document (YAML or JSON): a file or an http(s) URL.
    #[arg(long)]
    pub spec: String,
    /// Where the API under test listens.
    #[arg(long)]
    pub base_url: String,
    /// Environment whose Tessera issues the tokens (with --client).
    #[arg(long, requires = "client", conflicts_with = "token")]
    pub env: Option<String>,
    /// Client whose tokens the API accepts (with --env).
    #[arg(long, requires = "env")]
    pub client: Option<String>,
    /// A valid token, without a Tessera server: only the cases that need no issuer run.
    #[arg(long)]
    pub token: Option<String>,
    #[arg(long)]
    pub audience: Option<String>,
    /// Only these cases (comma-separated).
    #[arg(long, value_delimiter = ',')]
    pub only: Vec<String>,
    /// Not these cases (comma-separated).
    #[arg(long, value_delimiter = ',')]
    pub skip: Vec<String>,
    /// Only operations matching a tag, an operationId, or a path glob (repeatable).
    #[arg(long)]
    pub include: Vec<String>,
    /// Leave out operations matching a tag, an operationId, or a path glob (repeatable).
    #[arg(long)]
    pub exclude: Vec<String>,
    /// Extra header on every request, `NAME: VALUE` (repeatable).
    #[arg(long)]
    pub header: Vec<String>,
    /// Parameter value by name, `NAME=VALUE` (repeatable).
    #[arg(long)]
    pub var: Vec<String>,
    /// Expectation overrides (TOML: [cases.NAME] and [operations."GET /x".cases.NAME]).
    #[arg(long)]
    pub config: Option<std::path::PathBuf>,
    /// Write a JUnit XML report here.
    #[arg(long)]
    pub junit: Option<std::path::PathBuf>,
    #[arg(long, default_value_t = 8)]
    pub concurrency: usize,
    /// Per-request timeout.
    #[arg(long, default_value = "10s")]
    pub timeout: String,
    /// Stop starting new cases after the first failure.
    #[arg(long)]
    pub fail_fast: bool,
}

#[derive(Debug, Subcommand)]
pub enum RunsCommand {
    /// List runs: label, environment, start, duration, exit code, tokens.
    List {
        #[arg(long)]
        env: Option<String>,
        #[arg(long)]
        label: Option<String>,
    },
}

#[derive(Debug, Subcommand)]
pub enum SecretCommand {
    /// Store a new version; the value is read from stdin (or --from-file), never an argument.
    Set {
        env: String,
        name: String,
        #[arg(long, value_name = "FILE")]
        from_file: Option<std::path::PathBuf>,
        /// Rotation hook: the command to run, then its arguments (repeat --hook for each).
        #[arg(long = "hook", value_name = "ARG")]
        hook: Vec<String>,
        #[arg(long)]
        hook_timeout: Option<String>,
        #[arg(long)]
        rotation_period: Option<String>,
        /// How long the previous version stays valid after a new one (default 1h).
        #[arg(long)]
        overlap: Option<String>,
        #[arg(long)]
        expires_in: Option<String>,
    },
    /// List secrets (metadata only).
    List {
        #[arg(long)]
        env: Option<String>,
    },
    /// List the versions of a secret (metadata only).
    Versions { env: String, name: String },
    /// Run the secret's rotation hook now.
    Rotate { env: String, name: String },
    /// Print the current value (needs tessera:env:ENV:reveal; audited).
    Reveal { env: String, name: String },
}

#[derive(Debug, Subcommand)]
pub enum UpstreamCommand {
    /// Create or replace an upstream.
    Create {
        name: String,
        #[arg(long)]
        env: String,
        #[arg(long)]
        url: String,
        #[arg(long)]
        secret: String,
        /// header:NAME=TEMPLATE (TEMPLATE such as 'Bearer {secret}') or query:NAME.
        #[arg(long)]
        inject: Option<String>,
        #[arg(long = "allow-path", value_name = "PREFIX")]
        allow_paths: Vec<String>,
        #[arg(long = "allow-method", value_name = "METHOD")]
        allow_methods: Vec<String>,
        #[arg(long)]
        timeout: Option<String>,
    },
    /// List upstreams.
    List {
        #[arg(long)]
        env: Option<String>,
    },
    /// Show one upstream.
    Show {
        name: String,
        #[arg(long)]
        env: String,
    },
}

#[derive(Debug, Subcommand)]
pub enum GatewayCommand {
    /// Auth faults the gateway injects (test environments only).
    #[command(subcommand)]
    Faults(FaultsCommand),
}

#[derive(Debug, Subcommand)]
pub enum FaultsCommand {
    /// Add a fault rule.
    Add {
        #[arg(long)]
        env: String,
        #[arg(long)]
        upstream: String,
        /// Only this token (tok_…).
        #[arg(long)]
        token: Option<String>,
        /// From the Nth request on, answer --status (401) as if the token had expired.
        #[arg(long, group = "fault")]
        fail_after: Option<u64>,
        #[arg(long, requires = "fail_after")]
        status: Option<u16>,
        /// Revoke the caller's token after N requests.
        #[arg(long, group = "fault")]
        revoke_after: Option<u64>,
        /// Rotate the caller's token (no grace) once this long has passed.
        #[arg(long, group = "fault")]
        rotate_after: Option<String>,
        /// Delay every request.
        #[arg(long, group = "fault")]
        latency: Option<String>,
    },
    /// List fault rules.
    List,
    /// Remove fault rules.
    Clear {
        #[arg(long)]
        env: Option<String>,
        #[arg(long)]
        upstream: Option<String>,
    },
}

#[derive(Debug, Subcommand)]
pub enum KeysCommand {
    /// List signing keys (public facts only).
    List {
        #[arg(long)]
        env: Option<String>,
    },
    /// Rotate an environment's signing keys: the pre-published next key starts signing.
    Rotate {
        #[arg(long)]
        env: String,
        #[arg(long, value_parser = ["EdDSA", "ES256", "RS256"])]
        alg: Option<String>,
    },
    /// Re-seal every data key under a new master key, without downtime.
    Rewrap {
        /// File holding the new master key (64 hex characters). Without it the server
        /// generates one and writes it to its key file.
        #[arg(long, value_name = "FILE")]
        new_key_file: Option<std::path::PathBuf>,
    },
}

#[derive(Debug, Args)]
pub struct ServerArgs {
    /// Address to listen on.
    #[arg(long, env = "TESSERA_LISTEN", default_value = "127.0.0.1:7340")]
    pub listen: SocketAddr,
    /// Database URL (default: sqlite://DATA_DIR/tessera.db).
    #[arg(long, env = "TESSERA_DB")]
    pub db: Option<String>,
    /// Directory for the database, the master key file and the root token file.
    #[arg(long, env = "TESSERA_DATA_DIR", default_value = "./.tessera")]
    pub data_dir: PathBuf,
    /// Public base URL, when clients reach the server under another address.
    #[arg(long, env = "TESSERA_PUBLIC_URL")]
    pub public_url: Option<String>,
    /// PostgreSQL: most pooled connections of this server.
    #[arg(long, env = "TESSERA_DB_MAX_CONNECTIONS", default_value_t = 16, value_parser = clap::value_parser!(u32).range(2..=1000))]
    pub db_max_connections: u32,
    /// PostgreSQL: how long a request waits for a connection before answering 503.
    #[arg(long, env = "TESSERA_DB_ACQUIRE_TIMEOUT", default_value = "5s", value_parser = duration_arg)]
    pub db_acquire_timeout: std::time::Duration,
    /// PostgreSQL: server-side limit on one statement.
    #[arg(long, env = "TESSERA_DB_STATEMENT_TIMEOUT", default_value = "30s", value_parser = duration_arg)]
    pub db_statement_timeout: std::time::Duration,
    /// PostgreSQL: how often a replica polls for other replicas' changes besides listening for
    /// notifications (the bound on propagation when a notification is lost).
    #[arg(long, env = "TESSERA_CHANGE_POLL_INTERVAL", default_value = "1s", value_parser = duration_arg)]
    pub change_poll_interval: std::time::Duration,
}

/// A duration flag such as `5s`, `2m` or `500ms`.
fn duration_arg(s: &str) -> Result<std::time::Duration, String> {
    let d = match s.trim().strip_suffix("ms") {
        Some(ms) => std::time::Duration::from_millis(
            ms.parse().map_err(|_| format!("invalid duration {s:?} (use e.g. 500ms, 5s, 2m)"))?,
        ),
        None => tessera_core::duration::parse_duration(s).map_err(|e| e.to_string())?,
    };
    if d.is_zero() {
        return Err("must be more than zero".into());
    }
    Ok(d)
}

#[derive(Debug, Subcommand)]
pub enum EnvCommand {
    /// Create an environment with its token policy.
    Create {
        name: String,
        #[arg(long)]
        default_ttl: Option<String>,
        #[arg(long)]
        max_ttl: Option<String>,
        #[arg(long)]
        idle_ttl: Option<String>,
        #[arg(long)]
        rotation_period: Option<String>,
        #[arg(long)]
        max_uses: Option<u64>,
        /// Production-like: refuse test-only operations (forged tokens, fault injection).
        #[arg(long)]
        protected: bool,
    },
    /// List environments.
    List,
    /// Show one environment.
    Show { name: String },
}

#[derive(Debug, Subcommand)]
pub enum ClientCommand {
    /// Create a client; its secret is printed once.
    Create {
        id: String,
        /// ENV=SCOPE[,SCOPE…], repeatable: the scopes the client may hold per environment.
        #[arg(long = "scopes", required = true, num_args = 1.., value_name = "ENV=SCOPE[,SCOPE…]")]
        scopes: Vec<String>,
        #[arg(long, value_parser = ["opaque", "jwt"])]
        token_format: Option<String>,
        #[arg(long, value_parser = ["EdDSA", "ES256", "RS256"])]
        alg: Option<String>,
        #[arg(long)]
        description: Option<String>,
    },
    /// List clients.
    List,
    /// Show one client.
    Show { id: String },
    /// Stop a client from authenticating and getting tokens.
    Disable { id: String },
    /// Allow a disabled client again.
    Enable { id: String },
}

#[derive(Debug, Subcommand)]
pub enum TokenCommand {
    /// Mint a token; it is printed once (alone on stdout when piped).
    Create {
        #[arg(long)]
        env: String,
        #[arg(long)]
        client: String,
        /// Repeatable; default: every scope the client may hold in the environment.
        #[arg(long = "scope")]
        scopes: Vec<String>,
        #[arg(long)]
        audience: Option<String>,
        #[arg(long)]
        ttl: Option<String>,
        #[arg(long)]
        idle_ttl: Option<String>,
        #[arg(long)]
        max_uses: Option<u64>,
        #[arg(long, value_parser = ["opaque", "jwt"])]
        format: Option<String>,
        /// KEY=VALUE, repeatable.
        #[arg(long = "label")]
        labels: Vec<String>,
    },
    /// List tokens.
    List {
        #[arg(long)]
        env: Option<String>,
        #[arg(long)]
        client: Option<String>,
        #[arg(long, value_parser = ["active", "inactive", "all"], default_value = "all")]
        state: String,
        /// KEY=VALUE.
        #[arg(long)]
        label: Option<String>,
        #[arg(long)]
        run: Option<String>,
    },
    /// Show one token, with the rule that makes it inactive if it is.
    Show { id: String },
    /// Introspect a token given as text (or `-` to read it from stdin): active, or why not.
    Inspect {
        #[arg(value_name = "TOKEN")]
        text: String,
    },
    /// Replace a token by a new one; the old one stays valid for the grace period.
    Rotate {
        id: String,
        /// How long the old token stays valid (default 10m).
        #[arg(long)]
        grace: Option<String>,
    },
    /// Extend a token's expiry (up to the environment's max TTL from creation).
    Renew {
        id: String,
        #[arg(long)]
        ttl: Option<String>,
    },
    /// Revoke one token by id, or every active token matching a selector.
    Revoke {
        id: Option<String>,
        #[arg(long)]
        reason: Option<String>,
        #[arg(long, conflicts_with = "id")]
        env: Option<String>,
        #[arg(long, conflicts_with = "id")]
        client: Option<String>,
        /// KEY=VALUE, repeatable.
        #[arg(long = "label", conflicts_with = "id")]
        labels: Vec<String>,
        #[arg(long, conflicts_with = "id")]
        run: Option<String>,
        /// Do not ask for confirmation.
        #[arg(long, short = 'y')]
        yes: bool,
    },
}

#[derive(Debug, Subcommand)]
pub enum AuditCommand {
    /// List audit entries, oldest first.
    List {
        #[arg(long, default_value_t = 50)]
        limit: u32,
        /// Start after this sequence number.
        #[arg(long, default_value_t = 0)]
        after: u64,
    },
    /// Recompute the hash chain; exit 1 and name the first bad entry when it does not verify.
    Verify,
    /// Print the whole log as JSON lines.
    Export,
}
