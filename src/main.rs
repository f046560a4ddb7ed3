//! Entry point: parse the command line and dispatch. Nothing else lives here.

use cloudeye_agent::cli::{self, Command, Parsed};
use cloudeye_agent::config::{Config, ConfigSource};
use cloudeye_agent::error::Error;
use cloudeye_agent::{agent, check, logging, print, version};
use std::process::ExitCode;

fn main() -> ExitCode {
    let cli = match cli::parse(std::env::args().skip(1)) {
        Ok(Parsed::Cli(cli)) => cli,
        Ok(Parsed::Help(text)) => {
            print!("{text}");
            return ExitCode::SUCCESS;
        }
        Err(e) => {
            eprintln!("cloudeye-agent: error: {}\n\n{}", e.message, e.usage);
            return ExitCode::from(2);
        }
    };
    let source = ConfigSource::locate(cli.config.as_deref());
    let result = match cli.command {
        Command::Version => {
            print!("{}", version::long_version());
            Ok(true)
        }
        Command::Check { json } => {
            let config = Config::load(&source);
            logging::init(config.as_ref().ok());
            check::check(&source, config, json)
        }
        command => Config::load(&source).and_then(|config| {
            logging::init(Some(&config));
            dispatch(command, config, &source).map(|()| true)
        }),
    };
    match result {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(e) => fail(&e),
    }
}

fn dispatch(command: Command, config: Config, source: &ConfigSource) -> Result<(), Error> {
    match command {
        Command::Run => agent::run(config, source),
        Command::Once => agent::once(config),
        Command::Print {
            interval_secs,
            format,
        } => print::print(&config, interval_secs, format),
        Command::Version | Command::Check { .. } => Ok(()),
    }
}

fn fail(e: &Error) -> ExitCode {
    eprintln!("cloudeye-agent: error: {e}");
    ExitCode::FAILURE
}
