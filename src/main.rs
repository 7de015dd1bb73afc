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
    /// Log format on stderr: text (coloured only on a terminal without
    /// NO_COLOR) or json (one object per line).
    #[arg(long, global = true, value_enum, default_value = "text")]
    log_format: cli::LogFormat,
}

#[derive(Subcommand)]
enum Command {
    /// Run the server.
    Serve {
        /// Configuration file.
        #[arg(long, short, default_value = "signpost.toml")]
        config: PathBuf,
        /// Start although the `[server] state` file exists but cannot be
        /// used, without its drains (the file is rewritten at the next
        /// drain).
        #[arg(long)]
        discard_state: bool,
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
        /// What-if: answer as if these regions were down (comma-separated);
        /// the live state is not touched.
        #[arg(long, value_delimiter = ',', value_name = "REGION,...")]
        down: Vec<String>,
        /// Decide from this configuration file (all endpoints up) instead
        /// of asking the running server.
        #[arg(long, conflicts_with = "admin")]
        config: Option<PathBuf>,
        /// Print the raw JSON.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        admin: Admin,
    },
    /// Print shell completions for signpost (bash, zsh, fish, elvish,
    /// powershell), e.g. `signpost completions bash > /etc/bash_completion.d/signpost`.
    Completions {
        /// The shell.
        shell: clap_complete::Shell,
    },
    /// Operate a running server through its admin API.
    Ctl {
        #[command(subcommand)]
        command: CtlCommand,
        /// Print the admin API's JSON reply as it is (for scripts).
        #[arg(long, global = true)]
        json: bool,
        #[command(flatten)]
        admin: Admin,
    },
}

fn main() {
    // SPEC §2: 1 for invalid input, usage errors included (clap's own
    // code for them is 2, which here means a runtime failure)
    let cli = match Cli::try_parse() {
        Ok(c) => c,
        Err(e) => {
            let code = if e.use_stderr() { 1 } else { 0 };
            // printing to a closed pipe is no reason to panic
            let _ = e.print();
            std::process::exit(code);
        }
    };
    cli::init_logging(cli.log_format);
    if !matches!(cli.command, Command::Serve { .. } | Command::Demo { .. }) {
        // a command whose output is piped into `head` ends quietly when the
        // pipe closes, as other command-line tools do, instead of panicking
        // in println!; the server keeps ignoring SIGPIPE (it writes to
        // sockets whose peers may be gone)
        // SAFETY: setting a signal disposition before any thread starts
        unsafe {
            libc::signal(libc::SIGPIPE, libc::SIG_DFL);
        }
    }
    let code = match cli.command {
        Command::Serve {
            config,
            discard_state,
        } => cli::serve(config, discard_state),
        Command::Check { config } => cli::check(&config),
        Command::Demo { dns, admin } => cli::demo(dns, admin),
        Command::Explain {
            name,
            client,
            qtype,
            down,
            config,
            json,
            admin,
        } => cli::explain(
            &cli::ExplainArgs {
                name: &name,
                client,
                qtype,
                down: &down,
                config: config.as_deref(),
                json,
            },
            &admin,
        ),
        Command::Ctl {
            command,
            json,
            admin,
        } => cli::ctl(command, json, &admin),
        Command::Completions { shell } => {
            use clap::CommandFactory;
            let mut cmd = Cli::command();
            clap_complete::generate(shell, &mut cmd, "signpost", &mut std::io::stdout());
            0
        }
    };
    std::process::exit(code);
}
