//! The subcommands behind `src/main.rs`: each returns the process exit
//! code (0 ok, 1 invalid input or a refused call, 2 runtime failure).
//!
//! - `server`: the commands that run signpost here (`serve`, `check`,
//!   `demo`), with the signal handling and the demo's files and help.
//! - `client`: the commands that ask a running server through its admin
//!   API (`ctl`, `explain`).
//! - `render`: the API's JSON replies as text for people.

mod client;
mod render;
mod server;

use std::net::IpAddr;

use clap::{Args, Subcommand, ValueEnum};

pub use client::{ExplainArgs, ctl, explain};
pub use render::{render_audit, render_explain, render_reload, render_status};
pub use server::{check, demo, serve};

/// Where the admin API is.
#[derive(Args, Debug, Clone)]
pub struct Admin {
    /// Admin API base URL.
    #[arg(
        id = "admin",
        long = "admin",
        global = true,
        default_value = "http://127.0.0.1:9053"
    )]
    pub url: String,
    /// Bearer token for mutating calls.
    #[arg(
        long,
        global = true,
        env = "SIGNPOST_ADMIN_TOKEN",
        hide_env_values = true
    )]
    pub token: Option<String>,
}

/// A or AAAA.
#[derive(ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum QType {
    /// IPv4.
    #[value(name = "a", alias = "A")]
    A,
    /// IPv6.
    #[value(name = "aaaa", alias = "AAAA")]
    Aaaa,
}

/// `signpost ctl ...`.
#[derive(Subcommand, Debug, Clone)]
pub enum CtlCommand {
    /// Regions, endpoints, health and drains.
    Status,
    /// Take a region (or with --endpoint, one address) out of answers.
    Drain {
        /// Region name.
        #[arg(required_unless_present = "endpoint")]
        region: Option<String>,
        /// Drain one endpoint address everywhere instead.
        #[arg(long, conflicts_with = "region")]
        endpoint: Option<IpAddr>,
        /// Undrain automatically after this long (e.g. 10m).
        #[arg(long = "for")]
        duration: Option<String>,
        /// Drain even if it breaks a service's min_healthy_regions.
        #[arg(long)]
        force: bool,
        /// Schedule the drain: start it at this time (RFC 3339, e.g.
        /// 2026-12-08T03:00:00Z, or +30m from now); needs --for.
        #[arg(long, requires = "duration")]
        at: Option<String>,
    },
    /// Keep only a share of a region's clients (0 to 1), sending the
    /// rest to the next region in their order; 1 undoes it.
    Dial {
        /// Region name.
        region: String,
        /// The share of its clients it keeps (e.g. 0.25).
        value: f64,
        /// Undo the dial automatically after this long (e.g. 30m).
        #[arg(long = "for")]
        duration: Option<String>,
    },
    /// Undo a region's dial.
    Undial {
        /// Region name.
        region: String,
    },
    /// Put a region (or endpoint) back, or cancel its scheduled drain.
    Undrain {
        /// Region name.
        #[arg(required_unless_present = "endpoint")]
        region: Option<String>,
        /// Undrain one endpoint address.
        #[arg(long, conflicts_with = "region")]
        endpoint: Option<IpAddr>,
    },
    /// Demo lab only: make a region's simulated load balancer fail (503).
    Fail {
        /// Region name.
        region: String,
    },
    /// Demo lab only: make it healthy again.
    Recover {
        /// Region name.
        region: String,
    },
    /// Demo lab only: the load a region's simulated load balancers report
    /// (their X-Load header; capacity is 100).
    Load {
        /// Region name.
        region: String,
        /// The load (a number >= 0).
        value: f64,
    },
    /// Demo lab only: slow a region's simulated load balancers down
    /// (e.g. 50ms; 0 to undo).
    Slow {
        /// Region name.
        region: String,
        /// Added delay per answer.
        delay: String,
    },
    /// Reload the configuration of the running server; waits as long as
    /// the reload takes.
    Reload,
    /// The operator actions (drain, undrain, reload, lab), newest first.
    Audit,
}

/// How log lines are written.
#[derive(ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    /// One line of text per event.
    Text,
    /// One JSON object per event (timestamp, level, fields).
    Json,
}

/// Logs to stderr; `SIGNPOST_LOG` sets the filter (default `info`).
/// Colours only on a terminal, and never with `NO_COLOR` set
/// (<https://no-color.org>).
pub fn init_logging(format: LogFormat) {
    use std::io::IsTerminal;
    let filter = tracing_subscriber::EnvFilter::try_from_env("SIGNPOST_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let colour = std::io::stderr().is_terminal()
        && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty());
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_target(false)
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Text => builder.with_ansi(colour).init(),
        LogFormat::Json => builder
            .json()
            .flatten_event(true)
            .with_current_span(false)
            .init(),
    }
}
