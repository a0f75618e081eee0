//! `completion bash|zsh`: a shell completion script for detcdctl's commands and flags,
//! made from the command table (etcdctl 3.4's `completion` prints cobra's generated
//! scripts; this one is detcdctl's own and completes the same words: commands, their
//! subcommands, their flags and the global flags). zsh loads it through bashcompinit.
//! `fish` and `powershell` (which etcdctl also offers) are refused by name.

use super::args::FlagSpec;
use super::commands::Command;
use super::error::CtlError;
use super::out;

/// The script for `shell`, from `commands` (every command path and its own flags) and
/// the global flags.
pub fn script(shell: &str, commands: &[Command], globals: &[FlagSpec]) -> Result<String, CtlError> {
    let body = bash(commands, globals);
    match shell {
        "bash" => Ok(body),
        "zsh" => Ok(format!(
            "#compdef detcdctl\nautoload -U +X bashcompinit && bashcompinit\n{body}"
        )),
        "fish" | "powershell" => Err(CtlError::bad_args(format!(
            "completion for {shell} is not offered by detcdctl (bash and zsh are)"
        ))),
        other => Err(CtlError::bad_args(format!(
            "unknown shell {other:?}: completion takes bash or zsh"
        ))),
    }
}

fn flag_words(flags: &[FlagSpec]) -> String {
    let mut words: Vec<String> = flags.iter().map(|f| format!("--{}", f.long)).collect();
    words.extend(flags.iter().filter_map(|f| f.short).map(|c| format!("-{c}")));
    words.join(" ")
}

fn bash(commands: &[Command], globals: &[FlagSpec]) -> String {
    let mut top: Vec<&str> = commands.iter().map(|c| c.path[0]).collect();
    top.dedup();
    let mut cases = String::new();
    for c in commands {
        let path = c.path;
        let subs: Vec<&str> = commands
            .iter()
            .filter(|s| s.path.len() == path.len() + 1 && s.path.starts_with(path))
            .map(|s| s.path[path.len()])
            .collect();
        // Its own flags and those its parents share with it (`endpoint --cluster`).
        let mut flags = c.flags.to_vec();
        for parent in commands
            .iter()
            .filter(|p| p.persistent && p.path.len() < path.len() && path.starts_with(p.path))
        {
            flags.extend_from_slice(parent.flags);
        }
        let words = [subs.join(" "), flag_words(&flags)].join(" ");
        cases.push_str(&format!(
            "        \"{}\") words=\"{}\" ;;\n",
            path.join(" "),
            words.trim()
        ));
    }
    format!(
        r#"# detcdctl completion (bash). Load it with: source <(detcdctl completion bash)
_detcdctl() {{
    local cur="${{COMP_WORDS[COMP_CWORD]}}"
    local path="" word i
    for ((i = 1; i < COMP_CWORD; i++)); do
        word="${{COMP_WORDS[i]}}"
        case "$word" in -*) continue ;; esac
        if [ -z "$path" ]; then path="$word"; else path="$path $word"; fi
    done
    local words=""
    case "$path" in
        "") words="{top}" ;;
{cases}    esac
    words="$words {global}"
    COMPREPLY=($(compgen -W "$words" -- "$cur"))
}}
complete -F _detcdctl detcdctl
"#,
        top = top.join(" "),
        global = flag_words(globals),
    )
}

/// `detcdctl completion <shell>`.
pub fn run(args: &[String], commands: &[Command], globals: &[FlagSpec]) -> Result<(), CtlError> {
    let [shell] = args else {
        return Err(CtlError::bad_args("completion takes one argument: bash or zsh"));
    };
    out(&script(shell, commands, globals)?);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::super::args::{bool_flag, value_flag};
    use super::super::commands::COMMANDS;
    use super::*;

    /// Sources the script in bash and completes `words` (the last one being typed).
    fn complete(script: &str, words: &[&str]) -> String {
        let quoted: Vec<String> = words.iter().map(|w| format!("'{w}'")).collect();
        let program = format!(
            "{script}\nCOMP_WORDS=({}); COMP_CWORD={}; _detcdctl; echo \"${{COMPREPLY[@]}}\"",
            quoted.join(" "),
            words.len() - 1
        );
        let out = std::process::Command::new("bash")
            .args(["-c", &program])
            .output()
            .expect("bash");
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    }

    #[test]
    fn bash_completes_commands_subcommands_and_flags() {
        let only = |names: &[&[&str]]| -> Vec<Command> {
            COMMANDS
                .iter()
                .filter(|c| names.contains(&c.path))
                .copied()
                .collect()
        };
        let mut commands = only(&[
            &["member"],
            &["member", "add"],
            &["member", "list"],
            &["endpoint"],
            &["endpoint", "health"],
            &["completion"],
            &["completion", "bash"],
            &["completion", "zsh"],
        ]);
        const GET: &[FlagSpec] = &[bool_flag("prefix")];
        let get = Command {
            flags: GET,
            ..COMMANDS[0]
        };
        commands.insert(0, get);
        let commands = commands.as_slice();
        let bash = script("bash", commands, &[value_flag("endpoints")]).expect("bash");
        assert_eq!(complete(&bash, &["detcdctl", "me"]), "member");
        assert_eq!(complete(&bash, &["detcdctl", "co"]), "completion");
        assert_eq!(
            complete(&bash, &["detcdctl", "member", ""]),
            "add list --endpoints"
        );
        assert_eq!(
            complete(&bash, &["detcdctl", "member", "add", "--pe"]),
            "--peer-urls"
        );
        assert_eq!(
            complete(&bash, &["detcdctl", "get", "--"]),
            "--prefix --endpoints"
        );
        assert_eq!(complete(&bash, &["detcdctl", "completion", "z"]), "zsh");
        assert_eq!(
            complete(&bash, &["detcdctl", "endpoint", "health", "--c"]),
            "--cluster",
            "a group's shared flag completes on its subcommands"
        );
        assert!(script("zsh", commands, &[])
            .expect("zsh")
            .starts_with("#compdef detcdctl\n"));
        assert_eq!(
            script("fish", commands, &[]).unwrap_err().message,
            "completion for fish is not offered by detcdctl (bash and zsh are)"
        );
    }
}
