//! The runtimes the allowlist knows: recognising one by its file name ([`Runtime::of`]) and
//! each one's syntax (which flags are harmless, which take a value, how its code is chosen), plus
//! the launchers and the python modules that run code they are given.
//!
//! Owns: the tables, in one place, so that adding a runtime is adding rows.
//! Never: judges a command (`runtime.rs` walks the arguments with these tables).

use std::path::Path;

/// How a runtime's arguments are written, and what may follow a template.
pub(super) struct Syntax {
    /// Short flags that take no value and do not change which code runs (`-u`, `-B`).
    pub(super) short_flags: &'static str,
    /// Short flags that take a value (joined or the next word), whether harmless or not: needed
    /// to walk past options the template names.
    pub(super) short_with_value: &'static str,
    /// The short flag whose value chooses the code: python's `-m MODULE`.
    pub(super) short_selector: Option<char>,
    /// Long flags (or single-dash words, for java) that take no value and are harmless.
    pub(super) long_flags: &'static [&'static str],
    /// Harmless long flags that take a value (`--max-old-space-size=4096`).
    pub(super) long_with_value: &'static [&'static str],
    /// A word flag whose value is the code to run as a file: java's `-jar FILE`, php's `-f FILE`.
    pub(super) file_selector: &'static [&'static str],
    /// Whether short flags combine (`-uB`); java's are whole words.
    pub(super) clusters: bool,
    /// Subcommands that come before the script (`deno run`); `required` when one must.
    pub(super) subcommands: &'static [&'static str],
    pub(super) subcommand_required: bool,
    /// First positionals that are not scripts (`node inspect` starts a debugger).
    pub(super) not_scripts: &'static [&'static str],
    /// What a script must be beyond "not special".
    pub(super) script: ScriptRule,
    /// The short flag whose value is the script file: php's `-f FILE`.
    pub(super) short_file: Option<char>,
    /// Values of value-taking short flags that are harmless (python's `-X utf8`, `-W ignore`).
    pub(super) harmless_value: fn(char, &str) -> bool,
}

fn no_value_is_harmless(_: char, _: &str) -> bool {
    false
}

/// python's `-X` options that change no code path, and `-W` filters that import nothing (a
/// dotted category such as `mod.Class` imports `mod`).
fn python_value(letter: char, value: &str) -> bool {
    const X: &[&str] = &[
        "utf8",
        "utf8=0",
        "utf8=1",
        "dev",
        "faulthandler",
        "importtime",
        "tracemalloc",
        "warn_default_encoding",
        "no_debug_ranges",
        "frozen_modules=on",
        "frozen_modules=off",
    ];
    match letter {
        'X' => {
            X.contains(&value)
                || value.strip_prefix("tracemalloc=").is_some_and(is_number)
                || value
                    .strip_prefix("int_max_str_digits=")
                    .is_some_and(is_number)
        }
        'W' => !value.contains('.') && !value.is_empty(),
        _ => false,
    }
}

fn is_number(text: &str) -> bool {
    !text.is_empty() && text.chars().all(|c| c.is_ascii_digit())
}

/// What the first positional must be.
#[derive(Clone, Copy)]
pub(super) enum ScriptRule {
    /// Any path that is not a special file.
    Path,
    /// A file that exists: for `bun`, whose `run NAME` otherwise runs a package.json script.
    ExistingFile,
    /// A path ending in this suffix: `java Main` would load a class from the class path.
    Suffix(&'static str),
}

/// A program that runs code it is told to run.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Runtime {
    /// An interpreter or shell: a script path (or module) may be chosen after harmless flags.
    Interpreter(&'static str),
    /// A program that runs another program or package its arguments name: nothing may be chosen
    /// past its template.
    Launcher,
    /// The gate's own binary: only `example-server` (its other subcommands start servers of
    /// their own or reach other hosts).
    Gate,
}

/// What a runtime accepts unless its table says otherwise: no flag, a script path.
const NOTHING: Syntax = Syntax {
    short_flags: "",
    short_with_value: "",
    short_selector: None,
    long_flags: &[],
    long_with_value: &[],
    file_selector: &[],
    clusters: true,
    subcommands: &[],
    subcommand_required: false,
    not_scripts: &[],
    script: ScriptRule::Path,
    short_file: None,
    harmless_value: no_value_is_harmless,
};

const PYTHON: Syntax = Syntax {
    short_flags: "bBdEhIOPqRsSuvVx",
    short_with_value: "cmWX",
    short_selector: Some('m'),
    long_flags: &["--version", "--help"],
    harmless_value: python_value,
    ..NOTHING
};

const NODE: Syntax = Syntax {
    short_with_value: "erp",
    long_flags: &[
        "--no-warnings",
        "--no-deprecation",
        "--enable-source-maps",
        "--trace-warnings",
        "--trace-deprecation",
        "--trace-uncaught",
        "--abort-on-uncaught-exception",
        "--preserve-symlinks",
        "--preserve-symlinks-main",
        "--use-openssl-ca",
        "--use-bundled-ca",
        "--experimental-vm-modules",
        "--no-experimental-fetch",
        "--trace-exit",
        "--version",
        "--help",
    ],
    long_with_value: &[
        "--max-old-space-size",
        "--max-semi-space-size",
        "--stack-size",
        "--unhandled-rejections",
        "--title",
        "--dns-result-order",
    ],
    not_scripts: &["inspect"],
    ..NOTHING
};

const DENO: Syntax = Syntax {
    short_flags: "Aq",
    long_flags: &[
        "--allow-all",
        "--allow-read",
        "--allow-write",
        "--allow-net",
        "--allow-env",
        "--allow-sys",
        "--no-prompt",
        "--quiet",
        "--no-check",
        "--cached-only",
    ],
    subcommands: &["run"],
    subcommand_required: true,
    ..NOTHING
};

const BUN: Syntax = Syntax {
    short_with_value: "epr",
    long_flags: &["--smol", "--silent", "--bun", "--no-install"],
    subcommands: &["run"],
    not_scripts: &[
        "x", "repl", "exec", "install", "add", "create", "upgrade", "pm", "build", "test", "init",
        "link",
    ],
    script: ScriptRule::ExistingFile,
    ..NOTHING
};

const SHELL: Syntax = Syntax {
    short_flags: "aefhnuvx",
    short_with_value: "cCo",
    long_flags: &[
        "--norc",
        "--noprofile",
        "--posix",
        "--no-config",
        "--no-execute",
    ],
    ..NOTHING
};

const PERL: Syntax = Syntax {
    short_flags: "wWXTtU",
    short_with_value: "eEIMmx",
    long_flags: &["--version", "--help"],
    ..NOTHING
};

const RUBY: Syntax = Syntax {
    short_flags: "wWv",
    short_with_value: "eIrCx",
    long_flags: &["--disable-gems", "--version", "--help"],
    ..NOTHING
};

const PHP: Syntax = Syntax {
    short_flags: "nqH",
    short_with_value: "rdcBREFSftz",
    long_flags: &["--version", "--help"],
    short_file: Some('f'),
    ..NOTHING
};

const JAVA: Syntax = Syntax {
    long_flags: &["-server", "-client", "-version", "--version"],
    file_selector: &["-jar"],
    clusters: false,
    script: ScriptRule::Suffix(".java"),
    ..NOTHING
};

/// Script-only interpreters: any flag is refused, a script path is accepted.
const SCRIPT_ONLY: Syntax = Syntax {
    short_with_value: "eElL",
    long_flags: &["--version", "--help"],
    ..NOTHING
};

/// Programs that run what their arguments name: another program, a package, an image, a
/// program text (`awk`), or a read-eval-print loop on stdin.
const LAUNCHERS: &[&str] = &[
    "env",
    "sudo",
    "doas",
    "su",
    "runuser",
    "pkexec",
    "nice",
    "ionice",
    "nohup",
    "setsid",
    "timeout",
    "stdbuf",
    "chroot",
    "unshare",
    "nsenter",
    "chrt",
    "taskset",
    "xargs",
    "flock",
    "strace",
    "ltrace",
    "gdb",
    "valgrind",
    "time",
    "watch",
    "script",
    "expect",
    "busybox",
    "toybox",
    "awk",
    "gawk",
    "mawk",
    "nawk",
    "sed",
    "find",
    "npx",
    "npm",
    "pnpm",
    "pnpx",
    "yarn",
    "bunx",
    "uvx",
    "uv",
    "pipx",
    "pip",
    "pip3",
    "poetry",
    "pipenv",
    "conda",
    "mamba",
    "docker",
    "podman",
    "nerdctl",
    "ssh",
    "make",
    "git",
    "pwsh",
    "powershell",
    "cmd",
    "R",
    "irb",
    "jshell",
    "osascript",
    "tclsh",
    "wish",
    "dotnet",
    "cargo",
    "go",
];

/// Python modules that run code they are given or fetch and install code: `-m timeit -s CODE`,
/// `-m pip install`, a debugger or interpreter on stdin, unpickling a file.
pub(super) const CODE_MODULES: &[&str] = &[
    "timeit",
    "runpy",
    "code",
    "codeop",
    "pdb",
    "profile",
    "cProfile",
    "trace",
    "pip",
    "ensurepip",
    "venv",
    "idlelib",
    "idle",
    "pydoc",
    "doctest",
    "unittest",
    "http",
    "webbrowser",
    "antigravity",
    "compileall",
    "py_compile",
    "zipapp",
    "site",
    "asyncio",
    "tkinter",
    "turtledemo",
    "pickle",
    "pickletools",
    "cgi",
    "xmlrpc",
    "smtpd",
    "pty",
    "subprocess",
    "IPython",
    "mailcap",
    "zipfile",
    "tarfile",
    "json",
    "lib2to3",
    "sqlite3",
    "pstats",
    "gzip",
    "fire",
    "ipykernel",
    "jupyter",
    "debugpy",
    "pytest",
    "setuptools",
    "pipx",
    "uv",
];

impl Runtime {
    /// The runtime `program` is, by its file name (either the name it is called by or the file
    /// it resolves to); `None` for any other program.
    pub(crate) fn of(
        program: &Path,
        resolved: Option<&Path>,
        gate: Option<&Path>,
    ) -> Option<Runtime> {
        if gate.is_some() && resolved.is_some() && gate == resolved {
            return Some(Runtime::Gate);
        }
        let names = [Some(program), resolved]
            .into_iter()
            .flatten()
            .filter_map(|p| p.file_name()?.to_str());
        let mut found = None;
        for name in names {
            match kind_of(name) {
                // The stricter reading wins: a launcher under an interpreter's name is a launcher.
                Some(Runtime::Launcher) => return Some(Runtime::Launcher),
                Some(kind) => found = found.or(Some(kind)),
                None => {}
            }
        }
        found
    }
}

fn kind_of(name: &str) -> Option<Runtime> {
    let name = name.strip_suffix(".exe").unwrap_or(name);
    let interpreter = |id| Some(Runtime::Interpreter(id));
    if LAUNCHERS.contains(&name) {
        return Some(Runtime::Launcher);
    }
    match name {
        "node" | "nodejs" => interpreter("node"),
        "deno" => interpreter("deno"),
        "bun" => interpreter("bun"),
        "java" => interpreter("java"),
        "sh" | "bash" | "dash" | "zsh" | "ksh" | "mksh" | "ash" | "yash" | "fish" | "csh"
        | "tcsh" | "posh" | "rbash" => interpreter("shell"),
        "lua" | "luajit" | "Rscript" | "julia" => interpreter("script"),
        _ if versioned(name, "python") || versioned(name, "pypy") || name == "pythonw" => {
            interpreter("python")
        }
        _ if versioned(name, "perl") => interpreter("perl"),
        _ if versioned(name, "ruby") => interpreter("ruby"),
        _ if versioned(name, "php") || name == "php-cgi" => interpreter("php"),
        _ if versioned(name, "lua") => interpreter("script"),
        _ => None,
    }
}

/// `base`, or `base` and a version: `python3`, `python3.12`, `perl5.36` (not `php-cs-fixer`).
fn versioned(name: &str, base: &str) -> bool {
    name.strip_prefix(base)
        .is_some_and(|v| v.chars().all(|c| c.is_ascii_digit() || c == '.'))
}

pub(super) fn syntax(id: &str) -> &'static Syntax {
    match id {
        "python" => &PYTHON,
        "node" => &NODE,
        "deno" => &DENO,
        "bun" => &BUN,
        "shell" => &SHELL,
        "perl" => &PERL,
        "ruby" => &RUBY,
        "php" => &PHP,
        "java" => &JAVA,
        _ => &SCRIPT_ONLY,
    }
}
