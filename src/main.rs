//! The `slotgate` binary: parse the command line, load the config, start logging, run.

use std::process::ExitCode;
use std::sync::Arc;

use clap::Parser;
use slotgate::config::{Cli, Config, LogFormat};
use slotgate::reload::LogFilterHandle;
use slotgate::server::RunOptions;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, Layer, reload};

fn main() -> ExitCode {
    let mut cli = Cli::parse();
    cli.rust_log = std::env::var("RUST_LOG").ok();
    let config = match Config::load(&cli) {
        Ok(config) => config,
        Err(e) => {
            eprintln!("slotgate: {e}");
            return ExitCode::from(2);
        }
    };
    let log_filter = init_logging(&config);
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("slotgate: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let options = RunOptions {
        cli: Some(cli),
        log_filter: Some(log_filter),
    };
    match runtime.block_on(slotgate::server::run(config, options)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!("{e}");
            eprintln!("slotgate: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Logs to stderr in the configured format, through a filter a reload can replace.
fn init_logging(config: &Config) -> LogFilterHandle {
    let (filter, handle) = reload::Layer::new(EnvFilter::new(&config.log_level));
    // Colour codes only for a terminal: a log redirected to a file or collected by
    // Kubernetes must stay plain text.
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let format = tracing_subscriber::fmt::layer()
        .with_writer(std::io::stderr)
        .with_ansi(ansi);
    let format = match config.log_format {
        LogFormat::Json => format.json().boxed(),
        LogFormat::Human => format.boxed(),
    };
    tracing_subscriber::registry()
        .with(filter)
        .with(format)
        .init();
    Arc::new(move |level: &str| {
        handle
            .reload(EnvFilter::new(level))
            .map_err(|e| e.to_string())
    })
}

/// mimalloc: fast thread-local allocation for the per-connection and per-batch buffers,
/// and memory returned to the system after bursts.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;
