//! `natrix --signal <cmd>[=<pid or pid file>]`: signal a running server, as
//! `nats-server --signal` does. Without a pid the one running `natrix` process
//! is found with `pgrep`; the signal is sent with `kill` (the workspace
//! forbids `unsafe`, so no direct system call).

use std::process::Command;

/// The process name `pgrep` looks for.
const PROCESS_NAME: &str = "natrix";

/// The signal each `--signal` command sends.
pub fn signal_for(command: &str) -> Option<&'static str> {
    Some(match command {
        "stop" => "KILL",
        "quit" => "INT",
        "term" => "TERM",
        "reopen" => "USR1",
        "reload" => "HUP",
        "ldm" => "USR2",
        _ => return None,
    })
}

/// Parses `<cmd>[=<pid or pid file>]` and sends the signal.
pub fn send(arg: &str) -> Result<(), String> {
    let mut parts = arg.split('=');
    let command = parts.next().unwrap_or_default();
    let target = parts.next();
    let rest: Vec<&str> = parts.collect();
    if !rest.is_empty() {
        return Err(format!("invalid signal parameters: [{}]", rest.join(" ")));
    }
    let Some(sig) = signal_for(command) else {
        return Err(format!("unknown signal {command:?}"));
    };
    let pid = match target {
        // A pid file if one is there, else the pid itself.
        Some(t) => {
            let text = std::fs::read_to_string(t).unwrap_or_else(|_| t.to_string());
            text.trim()
                .parse::<u32>()
                .map_err(|_| format!("invalid pid: {}", text.trim()))?
        }
        None => resolve_pid()?,
    };
    let status = Command::new("kill")
        .args(["-s", sig, &pid.to_string()])
        .status()
        .map_err(|e| format!("cannot run kill: {e}"))?;
    if status.success() {
        Ok(())
    } else {
        Err(format!("cannot signal process {pid}"))
    }
}

/// The pid of the one other running natrix process.
fn resolve_pid() -> Result<u32, String> {
    let out = Command::new("pgrep")
        .arg("-x")
        .arg(PROCESS_NAME)
        .output()
        .map_err(|_| "unable to resolve pid, try providing one".to_string())?;
    let me = std::process::id();
    let mut pids = Vec::new();
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        let pid: u32 = line
            .trim()
            .parse()
            .map_err(|_| "unable to resolve pid, try providing one".to_string())?;
        if pid != me {
            pids.push(pid);
        }
    }
    match pids.as_slice() {
        [] => Err(format!("no {PROCESS_NAME} processes running")),
        [one] => Ok(*one),
        many => Err(format!(
            "multiple {PROCESS_NAME} processes running:\n{}",
            many.iter()
                .map(u32::to_string)
                .collect::<Vec<_>>()
                .join("\n")
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commands_and_refusals() {
        assert_eq!(signal_for("ldm"), Some("USR2"));
        assert_eq!(signal_for("reload"), Some("HUP"));
        assert_eq!(signal_for("reopen"), Some("USR1"));
        assert_eq!(signal_for("stop"), Some("KILL"));
        assert_eq!(signal_for("quit"), Some("INT"));
        assert_eq!(signal_for("term"), Some("TERM"));
        assert_eq!(send("nap=1").unwrap_err(), "unknown signal \"nap\"");
        assert_eq!(
            send("ldm=1=2=3").unwrap_err(),
            "invalid signal parameters: [2 3]"
        );
        assert_eq!(
            send("ldm=/nonexistent/natrix.pid").unwrap_err(),
            "invalid pid: /nonexistent/natrix.pid"
        );
    }
}
