//! Running the host's networking tools. Arguments are passed as a vector, never through a shell.

use std::io::Write;
use std::process::{Command, Stdio};

use crate::error::{Error, Result};

fn render(program: &str, args: &[&str]) -> String {
    let mut s = program.to_string();
    for a in args {
        s.push(' ');
        s.push_str(a);
    }
    s
}

/// Runs `program args...`, returns stdout; a non-zero exit is an error with the stderr.
pub fn run(program: &str, args: &[&str]) -> Result<String> {
    run_with_input(program, args, None)
}

/// Like [`run`], feeding `input` on stdin (for `nft -f -`).
pub fn run_with_input(program: &str, args: &[&str], input: Option<&str>) -> Result<String> {
    let command = render(program, args);
    let mut child = Command::new(program)
        .args(args)
        .stdin(if input.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| Error::Command {
            command: command.clone(),
            detail: format!("cannot start: {e}"),
        })?;
    if let (Some(text), Some(mut stdin)) = (input, child.stdin.take()) {
        stdin
            .write_all(text.as_bytes())
            .map_err(|e| Error::Command {
                command: command.clone(),
                detail: format!("writing stdin: {e}"),
            })?;
    }
    let out = child.wait_with_output().map_err(|e| Error::Command {
        command: command.clone(),
        detail: e.to_string(),
    })?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        Err(Error::Command {
            command,
            detail: format!(
                "{}: {}",
                out.status,
                String::from_utf8_lossy(&out.stderr).trim()
            ),
        })
    }
}

/// `ip` in the root namespace or, with `netns`, inside that namespace.
pub fn ip(netns: Option<&str>, args: &[&str]) -> Result<String> {
    match netns {
        None => run("ip", args),
        Some(ns) => {
            let mut full = vec!["-n", ns];
            full.extend_from_slice(args);
            run("ip", &full)
        }
    }
}

/// Runs a program inside a named namespace (`ip netns exec`).
pub fn in_netns(netns: &str, program: &str, args: &[&str]) -> Result<String> {
    let mut full = vec!["netns", "exec", netns, program];
    full.extend_from_slice(args);
    run("ip", &full)
}
