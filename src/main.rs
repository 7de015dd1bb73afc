//! The `signpost` command line; each subcommand lives in `signpost::cli`.

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;

use clap::{Parser, Subcommand};
use signpost::cli::{self, Admin, CtlCommand, QType};

/// An authoritative DNS server that answers with the nearest healthy
/// regional load balancer.
#[derive(Parser)]
#[command(name = "signpost", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the server.
    Serve {
        /// Configuration file.
        #[arg(long, short, default_value = "signpost.toml")]
        config: PathBuf,
    },
    /// Validate the configuration, zone files and GeoIP database.
    Check {
        /// Configuration file.
        #[arg(long, short, default_value = "signpost.toml")]
        config: PathBuf,
    },
    /// The built-in lab: example zone, demo GeoIP database and simulated
    /// regional load balancers on loopback.
    Demo {
        /// DNS address (UDP and TCP).
        #[arg(long, default_value = "127.0.0.1:5353")]
        dns: SocketAddr,
        /// Admin API address.
        #[arg(long, default_value = "127.0.0.1:9053")]
        admin: SocketAddr,
    },
    /// Show how an answer is chosen for a client.
    Explain {
        /// Service name.
        name: String,
        /// Client address (as if sent in EDNS Client Subnet).
        #[arg(long)]
        client: IpAddr,
        /// A or AAAA.
        #[arg(long = "type", value_enum, default_value = "a")]
        qtype: QType,
        /// Decide from this configuration file (all endpoints up) instead
        /// of asking the running server.
        #[arg(long, conflicts_with = "admin")]
        config: Option<PathBuf>,
        #[command(flatten)]
        admin: Admin,
    },
    /// Operate a running server through its admin API.
    Ctl {
        #[command(subcommand)]
        command: CtlCommand,
        #[command(flatten)]
        admin: Admin,
    },
}

fn main() {
    let cli = Cli::parse();
    cli::init_logging();
    let code = match cli.command {
        Command::Serve { config } => cli::serve(config),
        Command::Check { config } => cli::check(&config),
        Command::Demo { dns, admin } => cli::demo(dns, admin),
        Command::Explain {
            name,
            client,
            qtype,
            config,
            admin,
        } => cli::explain(&name, client, qtype, config.as_deref(), &admin),
        Command::Ctl { command, admin } => cli::ctl(command, &admin),
    };
    std::process::exit(code);
}
