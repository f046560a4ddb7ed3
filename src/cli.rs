//! Command-line parsing, by hand (clap would cost hundreds of KiB).
//!
//! Grammar: `cloudeye-agent [--config FILE] <command> [options]`. Global options may also
//! follow the command. Errors are [`UsageError`]s: one line plus usage, exit status 2.

use std::path::PathBuf;

/// The command to run, with its own options.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    Run,
    Once,
    Print {
        interval_secs: u64,
        format: PrintFormat,
    },
    Check {
        json: bool,
    },
    Version,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PrintFormat {
    Json,
    Table,
}

/// A parsed command line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cli {
    pub config: Option<PathBuf>,
    pub command: Command,
}

/// What `parse` found: a command to run, or a help text to print.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Parsed {
    Cli(Cli),
    Help(String),
}

/// A command-line mistake. `usage` is the help of the command concerned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UsageError {
    pub message: String,
    pub usage: &'static str,
}

pub const USAGE: &str = "\
Usage: cloudeye-agent [--config FILE] <COMMAND> [OPTIONS]

Collects host metrics from /proc and /sys and reports them to Huawei Cloud Eye.

Commands:
  run       Run as a service: collect every collect_interval, report every report_interval
  once      Collect and report one interval, then exit (for cron)
  print     Collect one interval and print the request body; no credentials, no network
  check     Test every step a report needs and print what to fix
  version   Print version, git commit, target and build date

Options:
  -c, --config FILE  Configuration file (default: $CLOUDEYE_AGENT_CONFIG,
                     else /etc/cloudeye-agent/config.json)
  -h, --help         Print help (also: cloudeye-agent <COMMAND> --help)

Logging goes to stderr; set the level with log_level in the config or RUST_LOG.
";

const RUN_USAGE: &str = "\
Usage: cloudeye-agent [--config FILE] run

Collect every collect_interval and report every report_interval until SIGTERM or SIGINT.
Undelivered batches are spooled under state_dir and sent when Cloud Eye answers again.
SIGHUP reloads the configuration (an invalid one is reported and the old one kept).
";

const ONCE_USAGE: &str = "\
Usage: cloudeye-agent [--config FILE] once

Collect one interval, report it together with any spooled batches, save state and exit.
Meant for cron, e.g. every minute. Rates cover the time since the previous run.
";

const PRINT_USAGE: &str = "\
Usage: cloudeye-agent [--config FILE] print [--interval SECS] [--format json|table]

Collect one interval of this machine's metrics and print what would be sent to Cloud Eye.
Needs no credentials and no network.

Options:
  --interval SECS        Seconds between the two samples rates are computed from (default 1)
  --format json|table    json: the request body (default); table: aligned, for humans
";

const CHECK_USAGE: &str = "\
Usage: cloudeye-agent [--config FILE] check [--json]

Run every step a report needs (config, /proc, metadata service, agency, credentials,
identity, endpoint and TLS, a signed request, clock offset, spool) and print one line per
step with the fix for any failure. Exit status 0 only when every step passes.

Options:
  --json    Print the results as JSON
";

const VERSION_USAGE: &str = "\
Usage: cloudeye-agent version

Print version, git commit, target triple and build date.
";

fn usage_of(command: Option<&str>) -> &'static str {
    match command {
        Some("run") => RUN_USAGE,
        Some("once") => ONCE_USAGE,
        Some("print") => PRINT_USAGE,
        Some("check") => CHECK_USAGE,
        Some("version") => VERSION_USAGE,
        _ => USAGE,
    }
}

fn error(message: String, command: Option<&str>) -> UsageError {
    UsageError {
        message,
        usage: usage_of(command),
    }
}

/// Parse the arguments after the program name.
pub fn parse<I, S>(args: I) -> Result<Parsed, UsageError>
where
    I: IntoIterator<Item = S>,
    S: Into<String>,
{
    let args: Vec<String> = args.into_iter().map(Into::into).collect();
    let mut config: Option<PathBuf> = None;
    let mut command: Option<String> = None;
    let mut options: Vec<String> = Vec::new();
    let mut help = false;
    let mut i = 0;
    while i < args.len() {
        let arg = args[i].as_str();
        match arg {
            "-h" | "--help" => help = true,
            "-c" | "--config" => {
                i += 1;
                let value = args.get(i).ok_or_else(|| {
                    error(format!("{arg} needs a FILE argument"), command.as_deref())
                })?;
                config = Some(PathBuf::from(value));
            }
            _ if arg.starts_with("--config=") => {
                config = Some(PathBuf::from(&arg["--config=".len()..]));
            }
            _ if command.is_none() && !arg.starts_with('-') => command = Some(arg.to_string()),
            _ if command.is_none() => {
                return Err(error(format!("unknown option '{arg}'"), None));
            }
            _ => options.push(arg.to_string()),
        }
        i += 1;
    }
    if help {
        return Ok(Parsed::Help(usage_of(command.as_deref()).to_string()));
    }
    let Some(name) = command else {
        return Err(error("no command given".to_string(), None));
    };
    let command = parse_command(&name, &options)?;
    Ok(Parsed::Cli(Cli { config, command }))
}

fn parse_command(name: &str, options: &[String]) -> Result<Command, UsageError> {
    let here = Some(name);
    match name {
        "run" | "once" | "version" => {
            if let Some(extra) = options.first() {
                return Err(error(
                    format!("unexpected argument '{extra}' for '{name}'"),
                    here,
                ));
            }
            Ok(match name {
                "run" => Command::Run,
                "once" => Command::Once,
                _ => Command::Version,
            })
        }
        "print" => parse_print(options),
        "check" => {
            let mut json = false;
            for option in options {
                match option.as_str() {
                    "--json" => json = true,
                    other => {
                        return Err(error(format!("unknown option '{other}' for 'check'"), here))
                    }
                }
            }
            Ok(Command::Check { json })
        }
        _ => Err(error(format!("unknown command '{name}'"), None)),
    }
}

fn parse_print(options: &[String]) -> Result<Command, UsageError> {
    let here = Some("print");
    let mut interval_secs = 1;
    let mut format = PrintFormat::Json;
    let mut i = 0;
    while i < options.len() {
        let (flag, inline) = match options[i].split_once('=') {
            Some((f, v)) if f.starts_with("--") => (f.to_string(), Some(v.to_string())),
            _ => (options[i].clone(), None),
        };
        let mut value = || -> Result<String, UsageError> {
            if let Some(v) = inline.clone() {
                return Ok(v);
            }
            i += 1;
            options
                .get(i)
                .cloned()
                .ok_or_else(|| error(format!("{flag} needs a value"), here))
        };
        match flag.as_str() {
            "--interval" => {
                let v = value()?;
                interval_secs = v
                    .parse::<u64>()
                    .ok()
                    .filter(|s| (1..=3600).contains(s))
                    .ok_or_else(|| {
                        error(
                            format!("--interval must be 1 to 3600 seconds, got '{v}'"),
                            here,
                        )
                    })?;
            }
            "--format" => {
                let v = value()?;
                format = match v.as_str() {
                    "json" => PrintFormat::Json,
                    "table" => PrintFormat::Table,
                    _ => {
                        return Err(error(
                            format!("--format must be json or table, got '{v}'"),
                            here,
                        ))
                    }
                };
            }
            other => return Err(error(format!("unknown option '{other}' for 'print'"), here)),
        }
        i += 1;
    }
    Ok(Command::Print {
        interval_secs,
        format,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cli(args: &[&str]) -> Cli {
        match parse(args.iter().copied()).unwrap() {
            Parsed::Cli(c) => c,
            Parsed::Help(h) => panic!("unexpected help {h}"),
        }
    }

    #[test]
    fn commands() {
        assert_eq!(cli(&["run"]).command, Command::Run);
        assert_eq!(cli(&["once"]).command, Command::Once);
        assert_eq!(cli(&["version"]).command, Command::Version);
        assert_eq!(
            cli(&["check", "--json"]).command,
            Command::Check { json: true }
        );
        assert_eq!(
            cli(&["print", "--interval", "3", "--format=table"]).command,
            Command::Print {
                interval_secs: 3,
                format: PrintFormat::Table
            }
        );
    }

    #[test]
    fn config_before_or_after_command() {
        assert_eq!(
            cli(&["--config", "/x.json", "once"]).config,
            Some("/x.json".into())
        );
        assert_eq!(
            cli(&["once", "-c", "/y.json"]).config,
            Some("/y.json".into())
        );
        assert_eq!(cli(&["--config=/z", "run"]).config, Some("/z".into()));
    }

    #[test]
    fn help() {
        assert!(matches!(parse(["--help"]), Ok(Parsed::Help(h)) if h == USAGE));
        assert!(matches!(parse(["print", "-h"]), Ok(Parsed::Help(h)) if h == PRINT_USAGE));
    }

    #[test]
    fn errors() {
        assert!(parse(Vec::<String>::new()).is_err());
        assert_eq!(
            parse(["bogus"]).unwrap_err().message,
            "unknown command 'bogus'"
        );
        assert_eq!(
            parse(["--frob", "run"]).unwrap_err().message,
            "unknown option '--frob'"
        );
        assert_eq!(
            parse(["run", "--frob"]).unwrap_err().message,
            "unexpected argument '--frob' for 'run'"
        );
        assert!(parse(["print", "--interval", "0"]).is_err());
        assert!(parse(["print", "--interval"]).is_err());
        assert!(parse(["print", "--format", "xml"]).is_err());
        assert!(parse(["--config"]).is_err());
        assert!(parse(["check", "--yaml"]).is_err());
    }
}
