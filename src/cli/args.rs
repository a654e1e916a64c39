// The one definition of stalld's command line: every option and subcommand, with the help
// texts that the usage screen (`cli::usage`, at run time), the man page and the bash, zsh and
// fish completions (build.rs, at build time, which `include!`s this file) are made from.
// Nothing here may refer to the rest of the crate, and there are no inner doc comments:
// build.rs compiles this file on its own.
//
// Adding an option: one field below (short, long, help_heading, help, value_name); read it
// in `cli::parse`. Adding a subcommand: one variant of `Action` (its doc comment is its help,
// its fields its arguments); the compiler then asks for its handler in main.rs. The usage
// screen, the man page, the completions and the tests that keep them in agreement follow.

/// `-h`/`--help` groups, in the order the usage screen shows them.
pub const LOGGING: &str = "logging options";
pub const STARTUP: &str = "startup options";
pub const MODES: &str = "modes (the last one given wins)";
pub const BACKEND: &str = "backend options";
pub const BOOSTING: &str = "boosting options";
pub const MONITORING: &str = "monitoring options";

/// Said once under the option list.
pub const UNITS_NOTE: &str = "numbers may carry a unit: ns, us, ms, s, min (e.g. -t 1500ms, -p 1s)";

const ABOUT: &str = "boost threads that starve on a CPU run queue";

const LONG_ABOUT: &str = "On real-time and CPU-isolated systems a busy-looping high-priority \
task can keep the kernel threads that must still run on its CPU (kworkers, ksoftirqd, RCU) \
waiting until the system stalls. stalld watches the run queues of the monitored CPUs. When a \
task has been runnable without running for the starving threshold, it switches the task to \
SCHED_DEADLINE (runtime every period) for duration seconds, then restores the task's own \
scheduling policy.

The queue_track backend (the default) runs a BPF task iterator at each check that reads the \
enqueue time the kernel keeps in every task (sched_info.last_queued, CONFIG_SCHED_INFO): \
waits are exact, stalld wakes only when a task can reach the threshold, and nothing is \
attached to the scheduler's hot path. On a kernel without that field it attaches its own \
programs to the scheduler tracepoints instead (see ENVIRONMENT). It needs BTF \
(/sys/kernel/btf/vmlinux) and no debugfs. The \
sched_debug backend parses /sys/kernel/debug/sched/debug (or /proc/sched_debug) every \
granularity seconds; stalld falls back to it when BPF cannot load.

Any option may be given more than once: the last one wins, except -i and -I, which \
accumulate. Numbers may carry a unit (ns, us, ms, s, min); a bare number keeps the C \
stalld's unit. Command-line errors exit with status 22.";

/// Sections of the man page after the generated ones (roff).
pub const MAN_EXTRA: &str = r#".SH VERBOSE OUTPUT
With \fB\-v\fR, stalld prints at every check, as the C stalld does:
.TP
\fBchecking cpu\fR \fIN\fR \fB\- rt:\fR \fIR\fR \fB\- starving:\fR \fIS\fR
power mode: \fIR\fR real-time tasks on CPU \fIN\fR, \fIS\fR tasks waiting there;
.TP
\fBCPU\fR \fIN\fR \fBhas\fR \fIM\fR \fBwaiting tasks\fR
\fB\-M\fR and \fB\-A\fR (on standard output), followed by one line per waiting task: name, pid,
priority, context switches, seconds waited;
.TP
\fBall CPUs had idle time, skipping parse\fR, \fBcpu\fR \fIN\fR \fBhad idle time! skipping next phase\fR, \fBsome cpus ran, so run-queues should be parsed\fR
idle detection (off with \fB\-N\fR).
.PP
The first check is made at start.
.SH ENVIRONMENT
.TP
.B STALLD_QUEUE_TRACK_STAMPS
\fBsched_info\fR, \fBtracepoints\fR or \fBauto\fR (the default, also when unset): where
queue_track takes enqueue times from. \fBauto\fR takes the kernel's where its BTF has the
field, and stalld's tracepoint programs if those do not load (saying why). \fBtracepoints\fR
forces stalld's own tracepoint programs (for tests and benchmarks); \fBsched_info\fR fails
where the kernel lacks the field or its program does not load.
\fB\-v\fR names the source in use (\fBqueue_track: enqueue times from the kernel's
sched_info\fR, or \fB... from stalld's tracepoints\fR). Any other value is an error.
.SH LOG LINES
\fIcomm\fR\-\fIpid\fR starved on CPU \fIn\fR for \fIs\fR seconds (\fIexact\fR s)
.br
\fIcomm\fR\-\fIpid\fR might starve on CPU \fIn\fR (waiting for \fIs\fR seconds)
.br
boosted pid \fIpid\fR (\fIprocess\fR) (cpu \fIn\fR) using SCHED_DEADLINE
.br
restored pid \fIpid\fR to \fIpolicy\fR (it ran \fIms\fR ms boosted)
.PP
With \fB\-l\fR in power mode, each check reports per CPU the task that has waited longest.
Every boost is verified by the CPU time its task received (\fI/proc/PID/task/TID/schedstat\fR);
a SCHED_FIFO phase lasts until the task has run its runtime, at most 160 ms for a task that
cannot get the CPU.
.SH CRASH SAFETY
Before a boost is applied, and before RT throttling is turned off, stalld writes it down in a
ledger in \fI/run/stalld\fR (a root-only directory); a record goes once the change is undone.
A guardian process (\fBstalld\-guardian\fR, the same program under another name, so that
\fBpidof stalld\fR names the daemon alone) restores everything the moment the daemon dies. If
both are killed together, the next \fBstalld\fR, \fBstalld restore\fR (the unit runs it when it
stops, before \fBthrottlectl on\fR) or \fBthrottlectl on\fR does it, checking that each pid
still names the same task and still holds the boost; running stalld instances are not
touched. A policy the boosted task switched itself to, a change it could make without
privilege (SCHED_FIFO 98 to 97, SCHED_DEADLINE to SCHED_OTHER), is undone with the boost; only
a change that takes CAP_SYS_NICE is kept. A restore that fails is retried, with pauses of up to
10 s, for as long as stalld runs (after five failures the task is reported held); what still
fails at exit stays in the ledger. SIGHUP is ignored.
.PP
\fBthrottlectl off\fR saves the \fIsched_rt_runtime_us\fR it finds, whatever it is (\-1 too, on
a host that keeps RT throttling off), and \fBthrottlectl on\fR writes exactly that back, or
nothing when nothing was saved; stalld itself saves and restores the value only when it turns
RT throttling off.
.SH OTHER INSTANCES
A stalld that boosts refuses to start, before it changes anything, when another stalld boosts
on the host (ours or the C one, found by its process or by \fI/run/stalld/stalld.pid\fR or
\fI/run/stalld.pid\fR): the first to exit would put RT throttling back under the other, and
both would boost and restore the same tasks. It names the other and exits with status 16.
\fB\-l\fR instances, the subcommands and \fBthrottlectl\fR do not count.
\fB\-\-allow_other_instances\fR starts it anyway (give the instances disjoint \fB\-c\fR lists
and leave RT throttling to the unit, \fB\-S\fR). \fB\-\-stand_aside\fR (a Kubernetes pod beside
the host's stalld) neither exits nor boosts: it changes nothing, says what it found (the
\fBstanding_aside\fR event), answers \fBGET /ready\fR on the \fB\-\-metrics\fR address with 503
and that reason (200 once a daemon boosts), and waits to be stopped; it does not take over when
the other stops. \fBstalld check\fR names them (\fBother_instances\fR).
.SH SAFE PATHS AND NAMES
A pid file (\fB\-P\fR) and an events file (\fB\-\-events\fR) are never opened through a
symbolic link; a new one is created with O_EXCL. In a directory others can write (/tmp), what
another user put at the pid file's path (a file of theirs, locked or not, a link) is replaced by
a locked file of stalld's, and such a directory without the sticky bit is refused. Thread and
process names are escaped in every sink: control characters, backslashes, bytes that are not
UTF\-8, the Unicode line and paragraph separators and the invisible format characters
(bidirectional marks, embeddings, overrides and isolates, zero\-width characters) become
\fB\\x\fR\fINN\fR, one per byte.
.SH FILES
.I /etc/sysconfig/stalld
or
.I /etc/default/stalld
(variables CLIST AGGR BP BR BD IT IP THRESH LOGGING FG PF BE, read by the systemd unit),
.I /run/stalld/sched_rt_runtime_us
(the RT runtime saved by \fBthrottlectl off\fR or by stalld),
.I /run/stalld/instance.*/
(the boosts of each stalld),
.I /run/stalld/stalld.sock
(\fBstalld status\fR),
.I /usr/bin/stalld\-guardian
(a hard link to \fBstalld\fR that the guardian process runs from).
.SH EXIT STATUS
0 on a normal end, 1 on an error while running, 16 (EBUSY) when another stalld is in the way
(one that boosts, or one that holds the pid file), 22 (EINVAL) on a command-line error.
"#;

/// The man page's EXAMPLES, in the order an operator meets them: a command line and what it
/// does. Each must parse with the current definition (tests/readme.rs checks them as it
/// checks the README's).
pub const MAN_EXAMPLES: &[(&str, &str)] = &[
    (
        "stalld check -c 2-15 -t 10",
        "Say whether this machine can run stalld with these options, changing nothing (exit 0 \
         all ok, 1 a warning, 2 a failure).",
    ),
    (
        "stalld -l -f -v",
        "Report starving tasks in the foreground, every line on stderr, without boosting \
         anything or touching RT throttling.",
    ),
    (
        "stalld -f -v -c 2-15 -t 10",
        "Boost tasks that waited 10 s on CPUs 2 to 15, with RT throttling off while stalld \
         runs (put back when it stops).",
    ),
    (
        "stalld -f --events - --metrics 127.0.0.1:9772",
        "Every event as a JSON line on standard output, Prometheus metrics at \
         http://127.0.0.1:9772/metrics.",
    ),
    (
        "stalld status",
        "What the running daemon is doing: its boosts, held tasks, last events.",
    ),
    (
        "stalld restore",
        "Give back what a stalld that was killed left boosted, and the RT throttling it \
         turned off.",
    ),
    (
        "throttlectl show",
        "Whether RT throttling is on, and the value saved for it.",
    ),
];

/// The man page's last sections, after OBSERVABILITY, EXAMPLES and VERSION (roff).
pub const MAN_CLOSING: &str = r#".SH LICENSE
GPL-2.0-or-later.
.SH SEE ALSO
.BR chrt (1),
.BR sched (7),
.BR sched_setattr (2),
.BR systemd.exec (5),
.BR journalctl (1),
.BR tuned (8);
.I /usr/share/doc/stalld/README.md
(installing, a first run, troubleshooting, the design and its tests).
"#;

#[derive(Debug, clap::Parser)]
#[command(
    name = "stalld",
    version,
    about = ABOUT,
    long_about = LONG_ABOUT,
    disable_help_flag = true,
    disable_version_flag = true,
    disable_help_subcommand = true,
    no_binary_name = true,
    // getopt_long: an option given again replaces the earlier one (harnesses prepend defaults).
    args_override_self = true,
    args_conflicts_with_subcommands = true,
    subcommand_value_name = "command",
    subcommand_help_heading = "subcommands",
    // -O, -M, -A: shown as one choice; which one wins is their overrides_with.
    group = clap::ArgGroup::new("mode").multiple(true)
)]
pub struct Args {
    #[arg(short = 'l', long = "log_only", help_heading = LOGGING,
          help = "only log information (do not boost)")]
    pub log_only: bool,
    #[arg(short = 'v', long = "verbose", help_heading = LOGGING,
          help = "print info to stderr (implies -f)")]
    pub verbose: bool,
    #[arg(short = 'k', long = "log_kmsg", help_heading = LOGGING,
          help = "print log to the kernel buffer (/dev/kmsg)")]
    pub log_kmsg: bool,
    #[arg(short = 's', long = "log_syslog", help_heading = LOGGING,
          help = "print log to syslog")]
    pub log_syslog: bool,

    #[arg(long = "events", value_name = "file|-", allow_hyphen_values = true,
          help_heading = LOGGING,
          help = "also write every event as a JSON line to this file (- = stdout, fifo:PATH = that named pipe)")]
    pub events: Option<String>,
    #[arg(long = "metrics", value_name = "host:port|unix:path", help_heading = LOGGING,
          help = "serve Prometheus metrics at http://ADDR/metrics (host:port or unix:path)")]
    pub metrics: Option<String>,

    #[arg(short = 'f', long = "foreground", help_heading = STARTUP,
          help = "run in foreground [implied with -v]")]
    pub foreground: bool,
    #[arg(short = 'P', long = "pidfile", value_name = "file", help_heading = STARTUP,
          help = "write daemon pid to specified file (locked, removed at exit; a second instance exits 16)")]
    pub pidfile: Option<String>,
    #[arg(long = "allow_other_instances", help_heading = STARTUP,
          help = "boost even when another stalld (ours or the C one) boosts on this host")]
    pub allow_other_instances: bool,
    #[arg(long = "stand_aside", help_heading = STARTUP, conflicts_with = "allow_other_instances",
          help = "when another stalld boosts on this host, boost nothing and wait to be stopped (metrics /ready: 503) instead of exiting 16")]
    pub stand_aside: bool,
    #[arg(short = 'S', long = "systemd", help_heading = STARTUP,
          help = "started by systemd: RT throttling must already be off")]
    pub systemd: bool,
    #[arg(short = 'a', long = "affinity", value_name = "cpu-list", allow_hyphen_values = true,
          help_heading = STARTUP, help = "list of CPUs stalld itself may run on")]
    pub affinity: Option<String>,
    #[arg(short = 'R', long = "reservation", value_name = "percent", allow_hyphen_values = true,
          help_heading = STARTUP,
          help = "run stalld itself as SCHED_DEADLINE with this percent of a CPU")]
    pub reservation: Option<String>,

    #[arg(short = 'O', long = "power_mode", group = "mode", help_heading = MODES,
          overrides_with_all = ["aggressive_mode", "adaptive_mode"],
          help = "report tasks at the threshold [default]")]
    pub power_mode: bool,
    #[arg(short = 'M', long = "adaptive_mode", group = "mode", help_heading = MODES,
          overrides_with_all = ["aggressive_mode", "power_mode"],
          help = "also warn when a task has waited half the threshold")]
    pub adaptive_mode: bool,
    #[arg(short = 'A', long = "aggressive_mode", group = "mode", help_heading = MODES,
          overrides_with_all = ["power_mode", "adaptive_mode"],
          help = "the same as -M (the C stalld's per-CPU threads; one loop serves every mode here)")]
    pub aggressive_mode: bool,
    #[arg(short = 'N', long = "no_idle_detect", help_heading = MODES,
          help = "do not skip CPUs that had idle time since the last check")]
    pub no_idle_detect: bool,

    #[arg(short = 'b', long = "backend", value_name = "backend", help_heading = BACKEND,
          help = "queue_track (Q, the default where BPF loads) or sched_debug (S)")]
    pub backend: Option<String>,

    #[arg(short = 'p', long = "boost_period", value_name = "period", allow_hyphen_values = true,
          help_heading = BOOSTING, help = "SCHED_DEADLINE period [ns] (default 1000000000)")]
    pub boost_period: Option<String>,
    #[arg(short = 'r', long = "boost_runtime", value_name = "runtime", allow_hyphen_values = true,
          help_heading = BOOSTING, help = "SCHED_DEADLINE runtime [ns] (default 20000)")]
    pub boost_runtime: Option<String>,
    #[arg(short = 'd', long = "boost_duration", value_name = "duration",
          allow_hyphen_values = true, help_heading = BOOSTING,
          help = "how long the task is boosted [s] (default 3)")]
    pub boost_duration: Option<String>,
    #[arg(short = 'F', long = "force_fifo", help_heading = BOOSTING,
          help = "boost with SCHED_FIFO 98 for runtime every period instead")]
    pub force_fifo: bool,

    #[arg(short = 't', long = "starving_threshold", value_name = "threshold",
          allow_hyphen_values = true, help_heading = MONITORING,
          help = "how long a task may wait before it is boosted [s] (default 20)")]
    pub starving_threshold: Option<String>,
    #[arg(short = 'g', long = "granularity", value_name = "granularity",
          allow_hyphen_values = true, help_heading = MONITORING,
          help = "sched_debug polling interval [s] (default 5)")]
    pub granularity: Option<String>,
    #[arg(short = 'c', long = "cpu", value_name = "cpu-list", allow_hyphen_values = true,
          help_heading = MONITORING, help = "list of CPUs to monitor (default: all)")]
    pub cpu: Option<String>,
    #[arg(short = 'i', long = "ignore_threads", value_name = "regex,...",
          action = clap::ArgAction::Append, help_heading = MONITORING,
          help = "regexes of thread names never to boost (comma-separated; repeatable)")]
    pub ignore_threads: Vec<String>,
    #[arg(short = 'I', long = "ignore_processes", value_name = "regex,...",
          action = clap::ArgAction::Append, help_heading = MONITORING,
          help = "regexes of process names never to boost (comma-separated; repeatable)")]
    pub ignore_processes: Vec<String>,

    #[arg(short = 'h', long = "help", help = "print this menu")]
    pub help: bool,
    #[arg(short = 'V', long = "version", help = "print the version")]
    pub version: bool,

    #[command(subcommand)]
    pub action: Option<Action>,
}

// Shared by the usage screen and the man page.

/// `[-l]`, `[-O|-M|-A]` (an argument group), `[-c cpu-list]`, in definition order, flags
/// first as upstream's synopsis has them.
pub fn synopsis_words(command: &clap::Command) -> Vec<String> {
    let mut flags = Vec::new();
    let mut valued = Vec::new();
    let mut groups_done = Vec::new();
    for arg in command.get_arguments().filter(|arg| !arg.is_positional()) {
        // The derive adds a group of all fields named after the struct; only real ones count.
        let group = command
            .get_groups()
            .filter(|group| group.get_id() != "Args")
            .find(|group| group.get_args().any(|id| id == arg.get_id()));
        if let Some(group) = group {
            if !groups_done.contains(&group.get_id()) {
                groups_done.push(group.get_id());
                let members: Vec<String> = group
                    .get_args()
                    .filter_map(|id| command.get_arguments().find(|a| a.get_id() == id))
                    .map(option_name)
                    .collect();
                flags.push(format!("[{}]", members.join("|")));
            }
            continue;
        }
        match arg.get_value_names() {
            Some(names) if takes_value(arg) => {
                valued.push(format!("[{} {}]", option_name(arg), names[0]));
            }
            _ => flags.push(format!("[{}]", option_name(arg))),
        }
    }
    flags.extend(valued);
    flags
}

/// `throttle off|on|show`, `check [--json] [options]`: the name, its options, then its
/// positional arguments (optional ones in brackets).
pub fn subcommand_synopsis(sub: &clap::Command) -> String {
    let mut words = vec![sub.get_name().to_string()];
    let (positional, options): (Vec<&clap::Arg>, Vec<&clap::Arg>) =
        sub.get_arguments().partition(|arg| arg.is_positional());
    words.extend(
        options
            .into_iter()
            .map(|arg| format!("[{}]", option_name(arg))),
    );
    words.extend(positional.into_iter().filter_map(|arg| {
        let name = arg.get_value_names()?.first()?.to_string();
        Some(if arg.is_required_set() {
            name
        } else {
            format!("[{name}]")
        })
    }));
    words.join(" ")
}

/// `-l` (or `--long` for an option without a short name).
fn option_name(arg: &clap::Arg) -> String {
    match (arg.get_short(), arg.get_long()) {
        (Some(short), _) => format!("-{short}"),
        (None, Some(long)) => format!("--{long}"),
        (None, None) => arg.get_id().to_string(),
    }
}

/// Whether the option takes a value (`-t 5`), as opposed to a flag (`-l`).
pub fn takes_value(arg: &clap::Arg) -> bool {
    matches!(
        arg.get_action(),
        clap::ArgAction::Set | clap::ArgAction::Append
    )
}

/// The subcommands. Each variant's doc comment is its help line.
#[derive(Debug, clap::Subcommand)]
pub enum Action {
    /// turn RT throttling off (saving sched_rt_runtime_us, whatever it is), put back exactly
    /// what off saved, or show it (also installed as throttlectl, which the unit runs)
    Throttle {
        #[arg(value_parser = ["off", "on", "show"], value_name = "off|on|show")]
        command: String,
    },
    /// restore every task a stalld that is gone left boosted, and the RT throttling it turned
    /// off, from the ledger in /run/stalld (the unit runs it when the service stops)
    Restore,
    /// print what the parser reads in a saved sched/debug file (- for stdin) as JSON
    #[command(name = "parse-sched-debug")]
    ParseSchedDebug {
        #[arg(value_name = "FILE|-")]
        file: std::path::PathBuf,
    },
    /// ask the running daemon what it is doing (over /run/stalld/stalld.sock)
    Status {
        #[arg(long, help = "print JSON")]
        json: bool,
    },
    /// say whether this machine can run stalld with these stalld options, and what is missing
    Check {
        #[arg(long, help = "print JSON")]
        json: bool,
        #[arg(
            trailing_var_arg = true,
            allow_hyphen_values = true,
            value_name = "options"
        )]
        options: Vec<std::ffi::OsString>,
    },
}
