//! Structured logs with `tracing`: human-readable text, or JSON with `--log-format json`.
//! The level comes from `RUST_LOG` (default `info`).

use std::io::Write;
use std::sync::Mutex;

use indicatif::ProgressBar;
use tracing_subscriber::EnvFilter;

/// The progress bar on the terminal, if one is shown (`idm-sync recon`'s): log lines are
/// written around it, so neither breaks the other.
static PROGRESS: Mutex<Option<ProgressBar>> = Mutex::new(None);

/// Shows `bar` (or none) as the progress bar log lines are written around.
pub fn set_progress_bar(bar: Option<ProgressBar>) {
    if let Ok(mut shown) = PROGRESS.lock() {
        *shown = bar;
    }
}

/// Standard error, suspending the progress bar (if any) while a log line is written.
struct LogWriter;

impl Write for LogWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let bar = PROGRESS.lock().ok().and_then(|b| b.clone());
        match bar {
            Some(bar) => bar.suspend(|| std::io::stderr().write(buf)),
            None => std::io::stderr().write(buf),
        }
    }

    fn flush(&mut self) -> std::io::Result<()> {
        std::io::stderr().flush()
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

pub fn init(format: LogFormat) {
    init_with_default(format, "info");
}

/// As [`init`], with another level when `RUST_LOG` is unset (the demo's own output is the
/// point there, so it logs warnings only).
pub fn init_with_default(format: LogFormat, default_filter: &str) {
    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default_filter));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(|| LogWriter);
    let result = match format {
        LogFormat::Text => builder.try_init(),
        LogFormat::Json => builder.json().flatten_event(true).try_init(),
    };
    if let Err(e) = result {
        eprintln!("logging already initialised: {e}");
    }
}

/// `error: cause: cause…`, for logs: the whole chain, which `Display` alone does not show.
pub fn error_chain(error: &(dyn std::error::Error + 'static)) -> String {
    let mut out = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        out.push_str(": ");
        out.push_str(&cause.to_string());
        source = cause.source();
    }
    out
}
