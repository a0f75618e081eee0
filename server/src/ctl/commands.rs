//! The command table: every detcdctl command with its usage line, its short and long
//! descriptions and its flags (with their defaults and descriptions). Parsing, the help
//! texts (`help`) and the shell completion (`completion`) are all made from it. The texts
//! are etcdctl 3.4's where etcdctl has the command, so a help reads the same; commands and
//! flags etcdctl 3.4 lacks have etcd 3.5's or 3.6's words, or detcdctl's own.

use super::args::{bool_flag, value_flag, FlagSpec};
use super::{check, kv, mirror, restore, watch};

/// One command: `path` from the root (`["member", "add"]`). A command that has
/// subcommands is a group: it runs nothing and prints its help.
#[derive(Debug, Clone, Copy)]
pub struct Command {
    pub path: &'static [&'static str],
    /// The usage line after the program name, without cobra's trailing ` [flags]`.
    pub usage: &'static str,
    pub short: &'static str,
    /// The longer description (its lines), or "".
    pub long: &'static str,
    pub flags: &'static [FlagSpec],
    /// Whether `flags` also hold for the subcommands (cobra's persistent flags).
    pub persistent: bool,
}

const fn cmd(
    path: &'static [&'static str],
    usage: &'static str,
    short: &'static str,
    flags: &'static [FlagSpec],
) -> Command {
    Command {
        path,
        usage,
        short,
        long: "",
        flags,
        persistent: false,
    }
}

impl Command {
    const fn long(self, long: &'static str) -> Self {
        Self { long, ..self }
    }

    const fn persistent(self) -> Self {
        Self {
            persistent: true,
            ..self
        }
    }

    /// The command's own name (the last word of its path).
    pub fn name(&self) -> &'static str {
        self.path[self.path.len() - 1]
    }
}

/// The flags every command takes.
pub const GLOBAL_FLAGS: &[FlagSpec] = &[
    value_flag("endpoints")
        .default_plain("[127.0.0.1:2379]")
        .about("gRPC endpoints"),
    value_flag("dial-timeout")
        .default_plain("2s")
        .about("dial timeout for client connections"),
    value_flag("command-timeout")
        .default_plain("5s")
        .about("timeout for short running command (excluding dial timeout)"),
    value_flag("keepalive-time")
        .default_plain("2s")
        .about("keepalive time for client connections"),
    value_flag("keepalive-timeout")
        .default_plain("6s")
        .about("keepalive timeout for client connections"),
    value_flag("write-out")
        .shorthand('w')
        .default_str("simple")
        .about("set the output format (fields, json, protobuf, simple, table)"),
    bool_flag("hex").about("print byte strings as hex encoded strings"),
    bool_flag("debug").about("enable client-side debug logging"),
    bool_flag("insecure-transport")
        .default_true()
        .about("disable transport security for client connections"),
    bool_flag("insecure-skip-tls-verify").about(
        "skip server certificate verification (CAUTION: this option should be enabled only for testing purposes)",
    ),
    bool_flag("insecure-discovery")
        .default_true()
        .about("accept insecure SRV records describing cluster endpoints"),
    value_flag("cert").about("identify secure client using this TLS certificate file"),
    value_flag("key").about("identify secure client using this TLS key file"),
    value_flag("cacert").about("verify certificates of TLS-enabled secure servers using this CA bundle"),
    value_flag("user").about("username[:password] for authentication (prompt if password is not supplied)"),
    value_flag("password").about(
        "password for authentication (if this option is used, --user option shouldn't include password)",
    ),
    value_flag("discovery-srv")
        .shorthand('d')
        .about("domain name to query for SRV records describing cluster endpoints"),
    value_flag("discovery-srv-name").about("service name to query when using DNS discovery"),
    HELP_FLAG,
];

/// cobra's `-h/--help`; its description names the command (`help for get`).
pub const HELP_FLAG: FlagSpec = bool_flag("help").shorthand('h');

/// The root command's name line and usage.
pub const ROOT_SHORT: &str = "A simple command line client for etcd3.";

const ENDPOINT_STATUS_LONG: &str = "When --write-out is set to simple, this command prints out comma-separated status lists for each endpoint.
The items in the lists are endpoint, ID, version, db size, is leader, is learner, raft term, raft index, raft applied index, errors.";

const PUT_LONG: &str = "Puts the given key into the store.

When <value> begins with '-', <value> is interpreted as a flag.
Insert '--' for workaround:

$ put <key> -- <value>
$ put -- <key> <value>

If <value> isn't given as a command line argument and '--ignore-value' is not specified,
this command tries to read the value from standard input.

If <lease> isn't given as a command line argument and '--ignore-lease' is not specified,
this command tries to read the value from standard input.

For example,
$ cat file | put <key>
will store the content of the file to <key>.";

/// Every command, groups before their subcommands.
pub const COMMANDS: &[Command] = &[
    cmd(&["get"], "get [options] <key> [range_end]", "Gets the key or a range of keys", kv::GET_FLAGS),
    cmd(
        &["put"],
        "put [options] <key> <value> (<value> can also be given from stdin)",
        "Puts the given key into the store",
        kv::PUT_FLAGS,
    )
    .long(PUT_LONG),
    cmd(
        &["del"],
        "del [options] <key> [range_end]",
        "Removes the specified key or range of keys [key, range_end)",
        kv::DEL_FLAGS,
    ),
    cmd(
        &["txn"],
        "txn [options]",
        "Txn processes all the requests in one transaction",
        &[bool_flag("interactive")
            .shorthand('i')
            .about("Input transaction in interactive mode")],
    ),
    cmd(
        &["compaction"],
        "compaction [options] <revision>",
        "Compacts the event history in etcd",
        &[bool_flag("physical").about("'true' to wait for compaction to physically remove all old revisions")],
    ),
    cmd(&["alarm"], "alarm <subcommand>", "Alarm related commands", &[]),
    cmd(&["alarm", "disarm"], "alarm disarm", "Disarms all alarms", &[]),
    cmd(&["alarm", "list"], "alarm list", "Lists all alarms", &[]),
    cmd(
        &["defrag"],
        "defrag",
        "Defragments the storage of the etcd members with given endpoints",
        &[
            bool_flag("cluster").about("use all endpoints from the cluster member list"),
            value_flag("data-dir")
                .about("Optional. If present, defragments a data directory not in use by etcd."),
        ],
    ),
    cmd(
        &["endpoint"],
        "endpoint <subcommand>",
        "Endpoint related commands",
        &[bool_flag("cluster").about("use all endpoints from the cluster member list")],
    )
    .persistent(),
    cmd(
        &["endpoint", "health"],
        "endpoint health",
        "Checks the healthiness of endpoints specified in `--endpoints` flag",
        &[],
    ),
    cmd(
        &["endpoint", "status"],
        "endpoint status",
        "Prints out the status of endpoints specified in `--endpoints` flag",
        &[],
    )
    .long(ENDPOINT_STATUS_LONG),
    cmd(
        &["endpoint", "hashkv"],
        "endpoint hashkv",
        "Prints the KV history hash for each endpoint in --endpoints",
        &[value_flag("rev")
            .default_plain("0")
            .about("maximum revision to hash (default: all revisions)")],
    ),
    cmd(
        &["move-leader"],
        "move-leader <transferee-member-id>",
        "Transfers leadership to another etcd cluster member.",
        &[],
    ),
    cmd(
        &["watch"],
        "watch [options] [key or prefix] [range_end] [--] [exec-command arg1 arg2 ...]",
        "Watches events stream on keys or prefixes",
        watch::WATCH_FLAGS,
    ),
    cmd(&["version"], "version", "Prints the version of detcdctl", &[]),
    cmd(&["lease"], "lease <subcommand>", "Lease related commands", &[]),
    cmd(&["lease", "grant"], "lease grant <ttl>", "Creates leases", &[]),
    cmd(&["lease", "revoke"], "lease revoke <leaseID>", "Revokes leases", &[]),
    cmd(
        &["lease", "timetolive"],
        "lease timetolive <leaseID> [options]",
        "Get lease information",
        &[bool_flag("keys").about("Get keys attached to this lease")],
    ),
    cmd(&["lease", "list"], "lease list", "List all active leases", &[]),
    cmd(
        &["lease", "keep-alive"],
        "lease keep-alive [options] <leaseID>",
        "Keeps leases alive (renew)",
        &[bool_flag("once").about("Resets the keep-alive time to its original value and exits immediately")],
    ),
    cmd(&["member"], "member <subcommand>", "Membership related commands", &[]),
    cmd(
        &["member", "add"],
        "member add <memberName> [options]",
        "Adds a member into the cluster",
        &[
            value_flag("peer-urls").about("comma separated peer URLs for the new member."),
            bool_flag("learner").about("indicates if the new member is raft learner"),
        ],
    ),
    cmd(
        &["member", "remove"],
        "member remove <memberID>",
        "Removes a member from the cluster",
        &[],
    ),
    cmd(
        &["member", "update"],
        "member update <memberID> [options]",
        "Updates a member in the cluster",
        &[value_flag("peer-urls").about("comma separated peer URLs for the updated member.")],
    ),
    cmd(
        &["member", "list"],
        "member list",
        "Lists all members in the cluster",
        &[value_flag("consistency")
            .default_str("l")
            .about("Linearizable(l) or Serializable(s)")],
    )
    .long(
        "When --write-out is set to simple, this command prints out comma-separated member lists for each endpoint.
The items in the lists are ID, Status, Name, Peer Addrs, Client Addrs, Is Learner.",
    ),
    cmd(
        &["member", "promote"],
        "member promote <memberID>",
        "Promotes a non-voting member in the cluster",
        &[],
    )
    .long("Promotes a non-voting learner member to a voting one in the cluster."),
    cmd(&["snapshot"], "snapshot <subcommand>", "Manages etcd node snapshots", &[]),
    cmd(
        &["snapshot", "save"],
        "snapshot save <filename>",
        "Stores an etcd node backend snapshot to a given file",
        &[],
    ),
    cmd(
        &["snapshot", "restore"],
        "snapshot restore <filename> [options]",
        "Restores an etcd member snapshot to an etcd directory",
        restore::RESTORE_FLAGS,
    ),
    cmd(
        &["snapshot", "status"],
        "snapshot status <filename>",
        "Gets backend snapshot status of a given file",
        &[],
    )
    .long(
        "When --write-out is set to simple, this command prints out comma-separated status lists for each endpoint.
The items in the lists are hash, revision, total keys, total size.",
    ),
    cmd(
        &["make-mirror"],
        "make-mirror [options] <destination>",
        "Makes a mirror at the destination etcd cluster",
        mirror::MIRROR_FLAGS,
    ),
    cmd(
        &["lock"],
        "lock <lockname> [exec-command arg1 arg2 ...]",
        "Acquires a named lock",
        &[value_flag("ttl").default_plain("10").about("timeout for session")],
    ),
    cmd(
        &["elect"],
        "elect <election-name> [proposal]",
        "Observes and participates in leader election",
        &[bool_flag("listen").shorthand('l').about("observation mode")],
    ),
    cmd(&["auth"], "auth <enable or disable>", "Enable or disable authentication", &[]),
    cmd(&["auth", "enable"], "auth enable", "Enables authentication", &[]),
    cmd(&["auth", "disable"], "auth disable", "Disables authentication", &[]),
    cmd(&["auth", "status"], "auth status", "Returns authentication status", &[]),
    cmd(&["user"], "user <subcommand>", "User related commands", &[]),
    cmd(
        &["user", "add"],
        "user add <user name or user:password> [options]",
        "Adds a new user",
        &[
            bool_flag("interactive")
                .default_true()
                .about("Read password from stdin instead of interactive terminal"),
            value_flag("new-user-password").about("Supply password from the command line flag"),
            bool_flag("no-password").about("Create a user without password (CN based auth only)"),
        ],
    ),
    cmd(&["user", "delete"], "user delete <user name>", "Deletes a user", &[]),
    cmd(
        &["user", "get"],
        "user get <user name> [options]",
        "Gets detailed information of a user",
        &[bool_flag("detail").about("Show permissions of roles granted to the user")],
    ),
    cmd(&["user", "list"], "user list", "Lists all users", &[]),
    cmd(
        &["user", "passwd"],
        "user passwd <user name> [options]",
        "Changes password of user",
        &[bool_flag("interactive")
            .default_true()
            .about("If true, read password from stdin instead of interactive terminal")],
    ),
    cmd(
        &["user", "grant-role"],
        "user grant-role <user name> <role name>",
        "Grants a role to a user",
        &[],
    ),
    cmd(
        &["user", "revoke-role"],
        "user revoke-role <user name> <role name>",
        "Revokes a role from a user",
        &[],
    ),
    cmd(&["role"], "role <subcommand>", "Role related commands", &[]),
    cmd(&["role", "add"], "role add <role name>", "Adds a new role", &[]),
    cmd(&["role", "delete"], "role delete <role name>", "Deletes a role", &[]),
    cmd(
        &["role", "get"],
        "role get <role name>",
        "Gets detailed information of a role",
        &[],
    ),
    cmd(&["role", "list"], "role list", "Lists all roles", &[]),
    cmd(
        &["role", "grant-permission"],
        "role grant-permission [options] <role name> <permission type> <key> [endkey]",
        "Grants a key to a role",
        &[
            bool_flag("prefix").about("grant a prefix permission"),
            bool_flag("from-key").about(
                "grant a permission of keys that are greater than or equal to the given key using byte compare",
            ),
        ],
    ),
    cmd(
        &["role", "revoke-permission"],
        "role revoke-permission <role name> <key> [endkey]",
        "Revokes a key from a role",
        &[
            bool_flag("prefix").about("revoke a prefix permission"),
            bool_flag("from-key").about(
                "revoke a permission of keys that are greater than or equal to the given key using byte compare",
            ),
        ],
    ),
    cmd(
        &["check"],
        "check <subcommand>",
        "commands for checking properties of the etcd cluster",
        &[],
    ),
    cmd(
        &["check", "perf"],
        "check perf [options]",
        "Check the performance of the etcd cluster",
        check::PERF_FLAGS,
    ),
    cmd(
        &["check", "datascale"],
        "check datascale [options]",
        "Check the memory usage of holding data for different workloads on a given server endpoint.",
        check::DATASCALE_FLAGS,
    )
    .long("If no endpoint is provided, localhost will be used. If multiple endpoints are provided, first endpoint will be used."),
    cmd(
        &["completion"],
        "completion",
        "Generate the autocompletion script for the specified shell",
        &[],
    )
    .long("Generate the autocompletion script for detcdctl for the specified shell (bash or zsh).
See each sub-command's help for details on how to use the generated script."),
    cmd(
        &["completion", "bash"],
        "completion bash",
        "Generate the autocompletion script for bash",
        &[],
    )
    .long("Generate the autocompletion script for the bash shell.

To load completions in your current shell session:

\tsource <(detcdctl completion bash)"),
    cmd(
        &["completion", "zsh"],
        "completion zsh",
        "Generate the autocompletion script for zsh",
        &[],
    )
    .long("Generate the autocompletion script for the zsh shell (it loads bash's through bashcompinit).

To load completions in your current shell session:

\tsource <(detcdctl completion zsh)"),
    cmd(&["help"], "help [command]", "Help about any command", &[]).long(
        "Help provides help for any command in the application.
Simply type detcdctl help [path to command] for full details.",
    ),
];

/// The command at `path`, if there is one.
pub fn find(path: &[&str]) -> Option<&'static Command> {
    COMMANDS.iter().find(|c| c.path == path)
}

/// The commands directly under `path`, sorted by name as cobra lists them.
pub fn children(path: &[&str]) -> Vec<&'static Command> {
    let mut found: Vec<&'static Command> = COMMANDS
        .iter()
        .filter(|c| c.path.len() == path.len() + 1 && c.path.starts_with(path))
        .collect();
    found.sort_by_key(|c| c.name());
    found
}
