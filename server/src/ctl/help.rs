//! Help texts in etcdctl's layout (NAME, USAGE, VERSION, API VERSION, COMMANDS,
//! DESCRIPTION, OPTIONS, GLOBAL OPTIONS), made from the command table and lined up by
//! [`tabwriter`] as Go's `text/tabwriter` lines them up for etcdctl (tab-padded columns,
//! eight wide, one cell of padding).

use super::args::{FlagSpec, Shown};
use super::commands::{self, Command, GLOBAL_FLAGS, HELP_FLAG, ROOT_SHORT};
use super::format::go_quote;

/// The program name the texts use.
const PROGRAM: &str = "detcdctl";

/// The help of the command at `path` (the root when empty); `help_flag` is false for the
/// root's usage that `help <unknown>` prints, which lacks the `--help` line as etcdctl's
/// does.
pub fn help(path: &[&str], help_flag: bool) -> String {
    let mut text = String::new();
    let command = commands::find(path);
    let (name, short) = match command {
        Some(c) => (c.path.join(" "), c.short),
        None => (PROGRAM.to_string(), ROOT_SHORT),
    };
    text.push_str(&format!("NAME:\n\t{name} - {short}\n\nUSAGE:\n"));
    match command {
        Some(c) => text.push_str(&format!("\t{PROGRAM} {} [flags]\n", c.usage)),
        None => text.push_str(&format!("\t{PROGRAM} [flags]\n")),
    }
    if command.is_none() {
        text.push_str(&format!("\nVERSION:\n\t{}\n", env!("CARGO_PKG_VERSION")));
    }
    let children = commands::children(path);
    if !children.is_empty() {
        text.push_str(&format!(
            "\nAPI VERSION:\n\t{}\n\n\nCOMMANDS:\n",
            super::API_VERSION
        ));
        for c in runnable_under(path) {
            let shown = &c.path[path.len()..];
            text.push_str(&format!("\t{}\t{}\n", shown.join(" "), c.short));
        }
    }
    if let Some(c) = command.filter(|c| !c.long.is_empty()) {
        text.push_str("\nDESCRIPTION:\n");
        for line in c.long.trim_matches(['\n', '\t', ' ']).split('\n') {
            text.push_str(&format!("\t{line}\n"));
        }
    }
    let own_name = command.map(Command::name).unwrap_or(PROGRAM);
    let mut local: Vec<FlagSpec> = Vec::new();
    let mut inherited: Vec<FlagSpec> = Vec::new();
    match command {
        None => local.extend(GLOBAL_FLAGS.iter().filter(|f| help_flag || f.long != "help")),
        Some(c) => {
            local.extend_from_slice(c.flags);
            inherited.extend(GLOBAL_FLAGS.iter().filter(|f| f.long != "help"));
            for depth in 1..c.path.len() {
                if let Some(parent) = commands::find(&c.path[..depth]).filter(|p| p.persistent) {
                    inherited.extend_from_slice(parent.flags);
                }
            }
        }
    }
    let help_about = format!("help for {own_name}");
    if command.is_some() {
        local.push(HELP_FLAG);
    }
    text.push_str("\nOPTIONS:\n");
    text.push_str(&flag_lines(&mut local, &help_about));
    if !inherited.is_empty() {
        text.push_str("\nGLOBAL OPTIONS:\n");
        text.push_str(&flag_lines(&mut inherited, &help_about));
    }
    text.push('\n');
    tabwriter(&text)
}

/// The runnable commands under `path`, depth first in name order (the root lists
/// `member add`, not `member`).
fn runnable_under(path: &[&str]) -> Vec<&'static Command> {
    let mut found = Vec::new();
    for c in commands::children(path) {
        if commands::children(c.path).is_empty() {
            found.push(c);
        } else {
            found.extend(runnable_under(c.path));
        }
    }
    found
}

/// pflag's flag lines as etcdctl prints them, sorted by name.
fn flag_lines(flags: &mut [FlagSpec], help_about: &str) -> String {
    flags.sort_by_key(|f| f.long);
    let mut text = String::new();
    for f in flags.iter() {
        let lead = match f.short {
            Some(c) => format!("  -{c}, --{}", f.long),
            None => format!("      --{}", f.long),
        };
        let default = match f.default {
            Shown::Bool(b) => format!("[={b}]"),
            Shown::Str(s) => format!("={}", go_quote(s.as_bytes())),
            Shown::Plain(s) => format!("={s}"),
        };
        let about = if f.long == "help" { help_about } else { f.usage };
        text.push_str(&format!("{lead}{default}\t{about}\n"));
    }
    text
}

/// Go's `text/tabwriter` with minwidth 0, tabwidth 8, padding 1, tab padding and no
/// flags: a line's tab-terminated cells form columns with the cells at the same index on
/// the lines next to it; each column is as wide as its widest cell plus one, rounded up
/// to a multiple of eight, and filled with tabs. The text after a line's last tab is not
/// part of a column.
pub fn tabwriter(text: &str) -> String {
    let lines: Vec<Vec<&str>> = text.split('\n').map(|l| l.split('\t').collect()).collect();
    let mut out = String::new();
    let mut widths: Vec<usize> = Vec::new();
    format_block(&lines, 0, lines.len(), &mut widths, &mut out);
    // `split` gives one line after the final newline; it was written with a newline.
    out.truncate(out.len().saturating_sub(1));
    out
}

/// Lays out `lines[from..to]` whose columns left of `widths.len()` are known.
fn format_block(lines: &[Vec<&str>], from: usize, to: usize, widths: &mut Vec<usize>, out: &mut String) {
    let column = widths.len();
    let mut start = from;
    let mut this = from;
    while this < to {
        // Only cells before a line's last one belong to a column.
        if column + 1 >= lines[this].len() {
            this += 1;
            continue;
        }
        write_lines(lines, start, this, widths, out);
        let block_start = this;
        let mut width = 0;
        while this < to && column + 1 < lines[this].len() {
            width = width.max(lines[this][column].chars().count() + 1);
            this += 1;
        }
        widths.push(width);
        format_block(lines, block_start, this, widths, out);
        widths.pop();
        start = this;
    }
    write_lines(lines, start, to, widths, out);
}

fn write_lines(lines: &[Vec<&str>], from: usize, to: usize, widths: &[usize], out: &mut String) {
    for line in &lines[from..to] {
        for (j, cell) in line.iter().enumerate() {
            out.push_str(cell);
            if j < widths.len() {
                let cell_width = widths[j].div_ceil(8) * 8;
                let pad = cell_width - cell.chars().count();
                out.push_str(&"\t".repeat(pad.div_ceil(8)));
            }
        }
        out.push('\n');
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tabwriter_pads_each_column_block_to_its_widest_cell() {
        let text = "A:\n\tgrant\tCreates\n\tkeep-alive\tKeeps\n\nB:\n  -h, --help\thelp\n";
        assert_eq!(
            tabwriter(text),
            "A:\n\tgrant\t\tCreates\n\tkeep-alive\tKeeps\n\nB:\n  -h, --help\thelp\n"
        );
        // A cell exactly eight wide still gets a tab of padding (the width is 8 + 1).
        assert_eq!(tabwriter("12345678\tx\nab\ty\n"), "12345678\tx\nab\t\ty\n");
    }

    #[test]
    fn every_command_has_a_help_with_its_flags() {
        for c in commands::COMMANDS {
            let text = help(c.path, true);
            assert!(text.starts_with(&format!("NAME:\n\t{} - ", c.path.join(" "))));
            for f in c.flags {
                assert!(text.contains(&format!("--{}", f.long)), "{:?} {}", c.path, f.long);
                assert!(!f.usage.is_empty(), "{:?} --{} has a description", c.path, f.long);
            }
        }
        let root = help(&[], true);
        assert!(root.contains("\tmember add\t\tAdds a member into the cluster\n"));
        assert!(root.contains("  -h, --help[=false]\t\t\t\thelp for detcdctl\n"));
        assert!(!help(&[], false).contains("--help"));
        let health = help(&["endpoint", "health"], true);
        let global = &health[health.find("GLOBAL OPTIONS:").unwrap()..];
        assert!(
            global.contains("--cluster[=false]"),
            "a group's persistent flag is global"
        );
    }
}
