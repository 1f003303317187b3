//! Server configuration, as resolved from flags and `TESSERA_*` variables by the CLI.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

/// Everything `tessera server` needs to start. No `Default`: every caller says where the
/// data lives and where to listen.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// Address to listen on, e.g. `127.0.0.1:7340` (`:0` picks a free port).
    pub listen: SocketAddr,
    /// Directory for the SQLite database, the master key file and the root token file.
    pub data_dir: PathBuf,
    /// `sqlite://PATH` or `postgres://…`; `None` means `sqlite://DATA_DIR/tessera.db`.
    pub db_url: Option<String>,
    /// PostgreSQL connection pool limits and timeouts.
    pub pool: tessera_store::PoolSettings,
    /// How often a replica polls the change feed besides listening for notifications
    /// (PostgreSQL only): the bound on propagation when a notification is lost.
    pub change_poll_interval: Duration,
    /// Hex master key (`TESSERA_MASTER_KEY`); `None` means the key file in the data dir.
    pub master_key: Option<String>,
    /// Public base URL (`TESSERA_PUBLIC_URL`); `None` means `http://{listen}`.
    pub public_url: Option<String>,
    /// How often in-memory use counts are written to the store.
    pub usage_flush_interval: Duration,
    /// Signing keys older than this are rotated automatically.
    pub key_rotation_period: Duration,
}

impl ServerConfig {
    pub fn new(listen: SocketAddr, data_dir: impl Into<PathBuf>) -> Self {
        Self {
            listen,
            data_dir: data_dir.into(),
            db_url: None,
            pool: tessera_store::PoolSettings::default(),
            change_poll_interval: Duration::from_secs(1),
            master_key: None,
            public_url: None,
            usage_flush_interval: Duration::from_secs(1),
            key_rotation_period: Duration::from_secs(30 * 86_400),
        }
    }

    /// The database URL in effect.
    pub fn db_url(&self) -> String {
        self.db_url.clone().unwrap_or_else(|| format!("sqlite://{}", self.data_dir.join("tessera.db").display()))
    }

    /// The database URL without its password, for messages.
    pub fn redacted_db_url(&self) -> String {
        tessera_store::redact_password(&self.db_url())
    }
}
