//! `sightline`: receives OpenTelemetry logs, spans and metrics, keeps them
//! durably, and answers questions about them.

use std::path::PathBuf;

use anyhow::Context;
use clap::{Parser, Subcommand};
use sightline::auth::{KeyEntry, Role};
use sightline::config::Config;
use sightline::server::Server;

/// See Cargo.toml: freed memory goes back to the system, so resident
/// memory tracks what is in use.
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

#[derive(Parser)]
#[command(name = "sightline", version, about)]
struct Cli {
    /// TOML configuration file (every key is optional).
    #[arg(long, global = true, env = "SIGHTLINE_CONFIG")]
    config: Option<PathBuf>,
    /// Directory for the WAL and the stores [default: ./sightline-data].
    #[arg(long, global = true)]
    data_dir: Option<PathBuf>,
    /// OTLP/gRPC address [default: 0.0.0.0:4317].
    #[arg(long, global = true)]
    grpc_listen: Option<std::net::SocketAddr>,
    /// OTLP/HTTP address [default: 0.0.0.0:4318].
    #[arg(long, global = true)]
    http_listen: Option<std::net::SocketAddr>,
    /// API, UI and /metrics address [default: 0.0.0.0:7070].
    #[arg(long, global = true)]
    api_listen: Option<std::net::SocketAddr>,
    /// Zipkin span API address [default: 0.0.0.0:9411].
    #[arg(long, global = true)]
    zipkin_listen: Option<std::net::SocketAddr>,
    /// Syslog (TCP and UDP) address [default: off].
    #[arg(long, global = true)]
    syslog_listen: Option<std::net::SocketAddr>,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Run the server (the default).
    Serve,
    /// Print the effective configuration as TOML and exit.
    Config,
    /// Check rule files (Prometheus's format) and exit: prints each file's
    /// groups and rules, or the first error of each file (exit status 1).
    Rules {
        #[command(subcommand)]
        action: RulesAction,
    },
    /// Make a new API key: prints the token (give it to the client) and the
    /// `[[keys]]` entry with its SHA-256 (put it in the keys file).
    Token {
        #[arg(long)]
        tenant: String,
        #[arg(long, value_enum)]
        role: RoleArg,
        /// A label for the operator.
        #[arg(long, default_value = "")]
        name: String,
    },
}

#[derive(Subcommand)]
enum RulesAction {
    /// Check rule files: `sightline rules check rules/*.yml`.
    Check {
        #[arg(required = true)]
        files: Vec<PathBuf>,
    },
}

#[derive(Clone, Copy, clap::ValueEnum)]
enum RoleArg {
    Ingest,
    Read,
    Admin,
}

impl Cli {
    fn load(&self) -> anyhow::Result<Config> {
        let mut config = Config::load(self.config.as_deref(), std::env::vars())?;
        if let Some(d) = &self.data_dir {
            config.data_dir = d.clone();
        }
        if let Some(a) = self.grpc_listen {
            config.listen.grpc = a;
        }
        if let Some(a) = self.http_listen {
            config.listen.http = a;
        }
        if let Some(a) = self.api_listen {
            config.listen.api = a;
        }
        if let Some(a) = self.zipkin_listen {
            config.listen.zipkin = a;
        }
        if let Some(a) = self.syslog_listen {
            config.listen.syslog = Some(a);
        }
        Ok(config)
    }
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let config = cli.load()?;
    match cli.command.unwrap_or(Command::Serve) {
        Command::Config => {
            print!("{}", config.to_toml()?);
            Ok(())
        }
        Command::Serve => serve(config),
        Command::Rules { action: RulesAction::Check { files } } => check_rules(&files),
        Command::Token { tenant, role, name } => {
            let role = match role {
                RoleArg::Ingest => Role::Ingest,
                RoleArg::Read => Role::Read,
                RoleArg::Admin => Role::Admin,
            };
            print!("{}", new_key(&tenant, role, &name)?);
            Ok(())
        }
    }
}

/// `sightline rules check`: every file read and checked as at start-up.
fn check_rules(files: &[PathBuf]) -> anyhow::Result<()> {
    let mut failed = 0;
    for path in files {
        match sightline_rules::file::load(path) {
            Ok(groups) => {
                let rules: usize = groups.iter().map(|g| g.rules.len()).sum();
                println!(
                    "Checking {}
  SUCCESS: {} groups, {rules} rules found",
                    path.display(),
                    groups.len()
                );
            }
            Err(e) => {
                failed += 1;
                println!(
                    "Checking {}
  FAILED:
{e}",
                    path.display()
                );
            }
        }
    }
    if failed > 0 {
        anyhow::bail!("{failed} of {} rule files have errors", files.len());
    }
    Ok(())
}

/// A random token and the keys-file entry that admits it.
fn new_key(tenant: &str, role: Role, name: &str) -> anyhow::Result<String> {
    use std::io::Read;
    sightline_storage::model::Tenant::new(tenant)?;
    let mut random = [0u8; 24];
    std::fs::File::open("/dev/urandom")?.read_exact(&mut random).context("cannot read /dev/urandom")?;
    let token = format!("sl_{}", hex::encode(random));
    let entry = KeyEntry {
        name: name.to_owned(),
        tenant: tenant.to_owned(),
        role,
        token: None,
        token_sha256: Some(hex::encode(sightline::auth::keys::digest(token.as_bytes()))),
    };
    let toml = toml::to_string(&serde_json::json!({ "keys": [entry] }))?;
    Ok(format!("# token (give it to the client; it is not stored): {token}\n{toml}"))
}

fn serve(config: Config) -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stdout()))
        .with_env_filter(tracing_subscriber::EnvFilter::try_new(&config.log.level).context("invalid log.level")?)
        .init();
    // Purge freed pages in the background rather than on the next allocation.
    if let Err(e) = tikv_jemalloc_ctl::background_thread::write(true) {
        tracing::warn!(error = %e, "cannot start jemalloc's background purging");
    }
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    runtime.block_on(async {
        let server = Server::start(&config).await?;
        tracing::info!("OTLP/gRPC listening on {}", server.grpc_addr);
        tracing::info!("OTLP/HTTP listening on {}", server.http_addr);
        tracing::info!("API and /metrics listening on {}", server.api_addr);
        tracing::info!("Zipkin listening on {}", server.zipkin_addr);
        if let Some(addr) = server.syslog_addr {
            tracing::info!("Syslog listening on {addr} (TCP and UDP)");
        }
        let ui_host = if server.api_addr.ip().is_unspecified() {
            "localhost".to_owned()
        } else {
            server.api_addr.ip().to_string()
        };
        let scheme = if config.tls.cert_file.is_some() { "https" } else { "http" };
        tracing::info!("Sightline is ready: open {scheme}://{}:{}/", ui_host, server.api_addr.port());
        wait_for_signal(&server.rules).await?;
        tracing::info!("shutting down: draining in-flight requests");
        server.shutdown().await?;
        tracing::info!("stopped cleanly");
        Ok(())
    })
}

/// Waits for SIGTERM or Ctrl-C; SIGHUP reloads the rule files.
async fn wait_for_signal(rules: &sightline_rules::Rules) -> anyhow::Result<()> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate())?;
    let mut hup = signal(SignalKind::hangup())?;
    loop {
        tokio::select! {
            _ = term.recv() => return Ok(()),
            r = tokio::signal::ctrl_c() => return Ok(r?),
            _ = hup.recv() => {
                let rules = rules.clone();
                // A failed reload keeps the previous rules and logs why.
                let _ = tokio::task::spawn_blocking(move || rules.reload()).await;
            }
        }
    }
}
