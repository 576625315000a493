//! `chatbox`: parse the command, load the configuration, run the server, and map every
//! outcome to an exit code (0 done, 1 runtime failure, 2 bad configuration or usage,
//! 128+N after a second signal N).

use std::process::ExitCode;
use std::time::Instant;

use chatbox::cli::{self, Command, TokenRequest};
use chatbox::config::{self, Config, ConfigError};
use chatbox::net::reactor::Exit;
use chatbox::server::Server;
use chatbox::{auth, time};

const EXIT_RUNTIME: u8 = 1;
const EXIT_CONFIG: u8 = 2;

fn main() -> ExitCode {
    let started = Instant::now();
    let args: Vec<String> = std::env::args().skip(1).collect();
    let command = match cli::parse(&args) {
        Ok(command) => command,
        Err(message) => {
            eprintln!("chatbox: {message} (see `chatbox --help`)");
            return ExitCode::from(EXIT_CONFIG);
        }
    };
    match command {
        Command::Help => {
            print!("{}", config::help_text());
            ExitCode::SUCCESS
        }
        Command::CheckConfig => match load() {
            Ok(_) => {
                println!("configuration OK");
                ExitCode::SUCCESS
            }
            Err(error) => config_failure(&error),
        },
        Command::Token(request) => match load() {
            Ok(config) => print_token(&config, &request),
            Err(error) => config_failure(&error),
        },
        Command::Serve { dev: false } => match load() {
            Ok(config) => serve(&config, None, started),
            Err(error) => config_failure(&error),
        },
        Command::Serve { dev: true } => dev(false, started),
        Command::DevWithRealSecret => dev(true, started),
    }
}

/// Where `--dev`'s signing secret came from; its links say which.
#[derive(Clone, Copy)]
enum DevSecret {
    Throwaway,
    Configured,
}

/// `--dev` fills in what a first try lacks: a loopback bind and a throw-away signing
/// secret (tokens die with the process). It prints day-long admin tokens, so a secret
/// that is set (a real deployment's, most likely) is used only when `real_secret_ok`.
fn dev(real_secret_ok: bool, started: Instant) -> ExitCode {
    let mut vars = match config::environment() {
        Ok(vars) => vars,
        Err(error) => return config_failure(&error),
    };
    vars.entry("SERVER_HOST".into())
        .or_insert_with(|| "127.0.0.1".into());
    // Empty counts as unset, as everywhere in the configuration.
    let configured = vars.get("JWT_SECRET").is_some_and(|s| !s.is_empty());
    let signer = if !configured {
        vars.insert("JWT_SECRET".into(), random_secret());
        DevSecret::Throwaway
    } else if real_secret_ok {
        DevSecret::Configured
    } else {
        return config_failure(&ConfigError {
            variable: "JWT_SECRET".into(),
            problem: "is set, and --dev would print 24 h admin tokens signed with it".into(),
            expected: "it unset for --dev, or --dev-with-real-secret".into(),
        });
    };
    match Config::load(&vars) {
        Ok(config) => serve(&config, Some(signer), started),
        Err(error) => config_failure(&error),
    }
}

/// Reads the environment.
fn load() -> Result<Config, ConfigError> {
    Config::load(&config::environment()?)
}

fn random_secret() -> String {
    let mut bytes = [0u8; 32];
    // Without an OS random source nothing here is safe to run; failing loudly is right.
    getrandom::fill(&mut bytes).expect("the OS random source is unavailable");
    // Base64url would risk spelling one of the rejected weak words; hex cannot spell
    // any of them except a digit run, which is checked for.
    let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    if hex.contains("12345") {
        return random_secret();
    }
    hex
}

fn config_failure(error: &ConfigError) -> ExitCode {
    eprintln!("chatbox: configuration error: {error}");
    ExitCode::from(EXIT_CONFIG)
}

fn print_token(config: &Config, request: &TokenRequest) -> ExitCode {
    let minted = auth::mint(
        config.auth.jwt_secret.expose(),
        &request.user,
        request.name.as_deref(),
        &request.roles,
        time::unix_now(),
        Some(request.ttl.as_secs()),
    );
    match minted {
        Ok(token) => {
            println!("{token}");
            ExitCode::SUCCESS
        }
        Err(error) => {
            eprintln!("chatbox: cannot mint a token: {error}");
            ExitCode::from(EXIT_RUNTIME)
        }
    }
}

fn init_logging(config: &Config) {
    let log_config = simplelog::ConfigBuilder::new()
        .set_target_level(simplelog::LevelFilter::Off)
        .set_thread_level(simplelog::LevelFilter::Off)
        .set_time_format_rfc3339()
        .build();
    // Containers collect stdout; a logger that is already set (never, here) is harmless.
    let _ = simplelog::WriteLogger::init(config.log_level, log_config, std::io::stdout());
}

fn serve(config: &Config, dev: Option<DevSecret>, started: Instant) -> ExitCode {
    init_logging(config);
    for name in &config.ignored_legacy {
        log::info!("{name} is a setting of the previous service and has no effect here");
    }
    let server = match Server::bind(config) {
        Ok(server) => server,
        Err(error) => {
            log::error!("{error}");
            eprintln!("chatbox: {error}");
            return ExitCode::from(EXIT_RUNTIME);
        }
    };
    let addr = server.local_addr();
    log::info!(
        "listening on http://{addr}{} ({} connection slots); ready in {:.1} ms",
        config.server.path_prefix,
        config.server.max_connections,
        started.elapsed().as_secs_f64() * 1000.0
    );
    if let Some(internal) = server.internal_addr() {
        log::info!("probes and metrics on http://{internal}/ (internal port)");
    }
    if let Some(signer) = dev {
        print_dev_links(config, addr, signer);
    }
    match server.run() {
        Ok(Exit::Drained) => {
            log::info!("shutdown complete");
            ExitCode::SUCCESS
        }
        Ok(Exit::DeadlineReached { open }) => {
            log::warn!("shutdown complete; {open} connection(s) were cut at the deadline");
            ExitCode::SUCCESS
        }
        Ok(Exit::Interrupted(signal)) => {
            ExitCode::from(u8::try_from(signal.exit_code()).unwrap_or(EXIT_RUNTIME))
        }
        Err(error) => {
            log::error!("event loop failed: {error}");
            ExitCode::from(EXIT_RUNTIME)
        }
    }
}

fn print_dev_links(config: &Config, addr: std::net::SocketAddr, signer: DevSecret) {
    let now = time::unix_now();
    let secret = config.auth.jwt_secret.expose();
    let day = Some(24 * 3600);
    let user = auth::mint(secret, "dev-user", Some("Dev User"), &[], now, day);
    let admin = auth::mint(
        secret,
        "dev-admin",
        Some("Dev Admin"),
        &["admin".to_owned()],
        now,
        day,
    );
    let (Ok(user), Ok(admin)) = (user, admin) else {
        log::warn!("--dev: could not mint tokens");
        return;
    };
    let base = format!("http://{addr}{}", config.server.path_prefix);
    let signer = match signer {
        DevSecret::Throwaway => "a throw-away secret",
        DevSecret::Configured => "JWT_SECRET (--dev-with-real-secret)",
    };
    println!(
        "\nchatbox --dev: tokens are valid for 24 h and signed with {signer}\n\
         \x20 chat page, logged in as dev-user:        {base}/chat?token={user}\n\
         \x20 sessions page, logged in as dev-user:    {base}/?token={user}\n\
         \x20 admin desk, logged in as dev-admin:      {base}/admin?token={admin}\n\
         \x20 health:                                  {base}/healthz\n"
    );
}
