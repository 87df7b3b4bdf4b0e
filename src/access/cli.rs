//! `kengate keys ...`: create, list, revoke and rotate access keys in the store file, which a
//! running kengate shares (it picks the change up within a second). `main.rs` only dispatches
//! here; output goes to a writer so tests can read it.

use std::io::Write;
use std::path::Path;
use std::sync::Arc;

use clap::{Args, Subcommand};
use thiserror::Error;

use super::{Access, AccessError, CreatedKey, KeyInfo, NewKey};
use crate::config::{Config, KeyScope};
use crate::store::{SqliteStore, StoreError};

/// The `keys` subcommands.
#[derive(Debug, Clone, Subcommand)]
pub enum KeysCommand {
    /// Create a key and print its secret (shown this once only).
    Create(CreateArgs),
    /// List the keys (never their secrets).
    List {
        /// JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Revoke a key: refused from now on, for good.
    Revoke {
        /// Key id.
        id: String,
    },
    /// Give a key a new secret (printed once); the old one stops working.
    Rotate {
        /// Key id.
        id: String,
    },
}

/// `keys create` options.
#[derive(Debug, Clone, Default, Args)]
pub struct CreateArgs {
    /// Free text describing the key's holder or purpose.
    #[arg(long, default_value = "")]
    pub label: String,
    /// A network it may use (repeat); none: all.
    #[arg(long = "network", value_name = "NAME")]
    pub networks: Vec<String>,
    /// `read`, `write` or a method name it may call (repeat); none: all.
    #[arg(long = "method", value_name = "METHOD")]
    pub methods: Vec<String>,
    /// A client CIDR or IP it may be used from (repeat); none: any.
    #[arg(long = "ip", value_name = "CIDR")]
    pub ip_allow: Vec<String>,
    /// Calls per second (0: unlimited); default: throttle.per_key.
    #[arg(long)]
    pub rps: Option<u32>,
    /// Bucket size; default: throttle.per_key.
    #[arg(long)]
    pub burst: Option<u32>,
    /// Lifetime: seconds, or a number with s, m, h, d or w (e.g. 30d, 12h, 3600).
    #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
    pub expires_in: Option<u64>,
}

/// Why a key command failed.
#[derive(Debug, Error)]
pub enum CliError {
    /// Validation or store failure.
    #[error(transparent)]
    Access(#[from] AccessError),
    /// The store file is missing (for commands that only read or change existing keys).
    #[error("no store at {0} (give --data-dir DIR or --config FILE with store.path)")]
    NoStore(String),
    /// Writing the output failed.
    #[error("output: {0}")]
    Io(#[from] std::io::Error),
}

/// `30d`, `12h`, `15m`, `90s`, `2w`, `3600` → seconds.
pub fn parse_duration(s: &str) -> Result<u64, String> {
    let s = s.trim();
    let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (num, unit) = s.split_at(split);
    let n: u64 = num
        .parse()
        .map_err(|_| format!("{s:?}: expected a number with an optional s, m, h, d or w"))?;
    let mult = match unit {
        "" | "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        "w" => 604_800,
        _ => return Err(format!("{s:?}: unknown unit {unit:?} (s, m, h, d or w)")),
    };
    match n.checked_mul(mult) {
        Some(0) => Err("must be > 0".into()),
        Some(secs) => Ok(secs),
        None => Err(format!("{s:?}: too large")),
    }
}

/// Runs `command` against the store of `config` (`store.path`, already overridden by
/// `--data-dir`), printing to stdout. The config need not have nodes; its `auth` keys are
/// listed and its network names check `--network`.
pub fn run(command: &KeysCommand, config: &Config) -> Result<(), CliError> {
    let path = &config.store.path;
    if !matches!(command, KeysCommand::Create(_)) && !path.exists() {
        return Err(CliError::NoStore(path.display().to_string()));
    }
    let store = SqliteStore::open(path).map_err(|e| store_error(path, e))?;
    let networks: Vec<String> = config.networks().into_iter().map(|n| n.name).collect();
    let access = Access::new(&config.auth, &config.throttle, &networks, Arc::new(store))?;
    let stdout = std::io::stdout();
    execute(command, &access, &mut stdout.lock())
}

fn store_error(path: &Path, e: StoreError) -> CliError {
    CliError::Access(AccessError::Store(StoreError::Engine(format!(
        "{}: {e}",
        path.display()
    ))))
}

/// Runs `command` against `access`, writing what the user sees to `out`.
pub fn execute(command: &KeysCommand, access: &Access, out: &mut dyn Write) -> Result<(), CliError> {
    match command {
        KeysCommand::Create(a) => {
            let created = access.create_key(NewKey {
                scope: KeyScope {
                    label: a.label.clone(),
                    networks: a.networks.clone(),
                    methods: a.methods.clone(),
                    ip_allow: a.ip_allow.clone(),
                    rps: a.rps,
                    burst: a.burst,
                },
                expires_at: None,
                expires_in: a.expires_in,
            })?;
            print_created(out, "Created", &created)?;
        }
        KeysCommand::List { json: true } => {
            let keys = access.list_keys()?;
            let text = serde_json::to_string_pretty(&keys).map_err(std::io::Error::other)?;
            writeln!(out, "{text}")?;
        }
        KeysCommand::List { json: false } => print_table(out, &access.list_keys()?)?,
        KeysCommand::Revoke { id } => {
            let info = access.revoke_key(id)?;
            writeln!(
                out,
                "Revoked access key {} (at {}).",
                info.id,
                utc(info.revoked_at.unwrap_or(0))
            )?;
        }
        KeysCommand::Rotate { id } => print_created(out, "Rotated", &access.rotate_key(id)?)?,
    }
    Ok(())
}

fn print_created(out: &mut dyn Write, what: &str, c: &CreatedKey) -> std::io::Result<()> {
    writeln!(out, "{what} access key {}", c.id)?;
    writeln!(out, "  id:     {}", c.id)?;
    writeln!(out, "  secret: {}", c.secret)?;
    writeln!(out, "  token:  {}", c.token)?;
    writeln!(
        out,
        "Save the secret now: it will not be shown again (kengate keeps only its hash)."
    )?;
    writeln!(
        out,
        "Clients send `Authorization: Bearer <token>`, or Basic auth with the id as user and the secret as password."
    )
}

fn list_or_all(v: &[String], all: &str) -> String {
    if v.is_empty() {
        all.to_owned()
    } else {
        v.join(",")
    }
}

fn print_table(out: &mut dyn Write, keys: &[KeyInfo]) -> std::io::Result<()> {
    if keys.is_empty() {
        return writeln!(out, "No access keys.");
    }
    let header = [
        "ID",
        "STATUS",
        "SOURCE",
        "NETWORKS",
        "METHODS",
        "IP_ALLOW",
        "RPS/BURST",
        "EXPIRES",
        "LABEL",
    ];
    let rows: Vec<[String; 9]> = keys
        .iter()
        .map(|k| {
            let rate = |v: Option<u32>| v.map_or_else(|| "default".to_owned(), |v| v.to_string());
            [
                k.id.clone(),
                k.status.to_owned(),
                format!("{:?}", k.source).to_lowercase(),
                list_or_all(&k.scope.networks, "all"),
                list_or_all(&k.scope.methods, "all"),
                list_or_all(&k.scope.ip_allow, "any"),
                format!("{}/{}", rate(k.scope.rps), rate(k.scope.burst)),
                k.expires_at.map_or_else(|| "never".to_owned(), utc),
                k.scope.label.clone(),
            ]
        })
        .collect();
    let mut widths = header.map(str::len);
    for r in &rows {
        for (w, cell) in widths.iter_mut().zip(r) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let line = |cells: &[&str]| {
        let mut s = String::new();
        for (i, (cell, w)) in cells.iter().zip(widths).enumerate() {
            if i + 1 == cells.len() {
                s.push_str(cell);
            } else {
                s.push_str(&format!("{cell:<w$}  "));
            }
        }
        s
    };
    writeln!(out, "{}", line(&header))?;
    for r in &rows {
        writeln!(out, "{}", line(&r.each_ref().map(String::as_str)))?;
    }
    Ok(())
}

/// Unix seconds → `YYYY-MM-DD HH:MM UTC` (civil-from-days, proleptic Gregorian).
fn utc(ts: i64) -> String {
    let days = ts.div_euclid(86_400);
    let secs = ts.rem_euclid(86_400);
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02} {:02}:{:02} UTC",
        secs / 3600,
        secs % 3600 / 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{AuthConfig, ThrottleConfig};

    #[test]
    fn durations() {
        assert_eq!(parse_duration("3600"), Ok(3600));
        assert_eq!(parse_duration("90s"), Ok(90));
        assert_eq!(parse_duration("15m"), Ok(900));
        assert_eq!(parse_duration("12h"), Ok(43_200));
        assert_eq!(parse_duration("30d"), Ok(2_592_000));
        assert_eq!(parse_duration("2w"), Ok(1_209_600));
        for bad in [
            "",
            "d",
            "3x",
            "-1",
            "1.5h",
            "0",
            "99999999999999999999",
            "18446744073709551615w",
        ] {
            assert!(parse_duration(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn dates() {
        assert_eq!(utc(0), "1970-01-01 00:00 UTC");
        assert_eq!(utc(951_782_400), "2000-02-29 00:00 UTC");
        assert_eq!(utc(1_735_689_600 + 3_660), "2025-01-01 01:01 UTC");
    }

    #[test]
    fn create_list_rotate_revoke() {
        let store = Arc::new(SqliteStore::in_memory().unwrap());
        let access = Access::build(
            &AuthConfig {
                enabled: true,
                ..AuthConfig::default()
            },
            &ThrottleConfig::default(),
            &["cypress".to_string()],
            store,
            None,
        )
        .unwrap();
        let run = |c: KeysCommand| {
            let mut out = Vec::new();
            execute(&c, &access, &mut out).map(|()| String::from_utf8(out).unwrap())
        };
        let created = run(KeysCommand::Create(CreateArgs {
            label: "ci runner".into(),
            networks: vec!["cypress".into()],
            expires_in: Some(3600),
            ..CreateArgs::default()
        }))
        .unwrap();
        assert!(
            created.contains("secret: ") && created.contains("not be shown again"),
            "{created}"
        );
        let token = created.lines().find_map(|l| l.trim().strip_prefix("token:  ")).unwrap();
        let id = token.split('.').next().unwrap().to_owned();

        let table = run(KeysCommand::List { json: false }).unwrap();
        assert!(
            table.contains(&id) && table.contains("ci runner") && table.contains("active"),
            "{table}"
        );
        assert!(!table.contains(token.split('.').nth(1).unwrap()));
        let json: serde_json::Value = serde_json::from_str(&run(KeysCommand::List { json: true }).unwrap()).unwrap();
        assert_eq!(json[0]["id"], id.as_str());
        assert!(json[0].get("secret").is_none() && json[0].get("secret_sha256").is_none());

        let rotated = run(KeysCommand::Rotate { id: id.clone() }).unwrap();
        assert!(rotated.contains("Rotated") && !rotated.contains(token));
        assert!(run(KeysCommand::Revoke { id: id.clone() }).unwrap().contains("Revoked"));
        assert!(run(KeysCommand::List { json: false }).unwrap().contains("revoked"));
        let err = run(KeysCommand::Rotate { id }).unwrap_err().to_string();
        assert!(err.contains("revoked"), "{err}");
        let err = run(KeysCommand::Revoke { id: "KGNOPE".into() })
            .unwrap_err()
            .to_string();
        assert!(err.contains("no access key"), "{err}");
        let err = run(KeysCommand::Create(CreateArgs {
            networks: vec!["baobab".into()],
            ..CreateArgs::default()
        }))
        .unwrap_err()
        .to_string();
        assert!(err.contains("no network named \"baobab\""), "{err}");
    }
}
