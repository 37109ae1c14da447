//! The environment rules: variables that make a runtime or the loader run other code.
//!
//! Owns: the one list of refused names and prefixes, each with the reason an operator reads, the
//! few harmless names a refused prefix would otherwise catch, and what makes a variable name or
//! value unusable (empty, `=`, NUL).
//! Never: looks at a value beyond its NUL bytes, or puts a value in a message (values are
//! secrets: only names are named).

/// Names refused outright, compared without regard to case (npm reads `npm_config_*` in any
/// case, and refusing `path` as well as `PATH` costs nothing).
const NAMES: &[(&str, &str)] = &[
    (
        "NODE_OPTIONS",
        "node reads options from it (--require, --import)",
    ),
    ("NODE_PATH", "node resolves modules from it"),
    (
        "NODE_REPL_EXTERNAL_MODULE",
        "node loads the module it names",
    ),
    ("PERLLIB", "perl loads modules from it"),
    ("RUBYOPT", "ruby reads options from it (-r loads code)"),
    ("RUBYLIB", "ruby loads libraries from it"),
    ("GEM_HOME", "ruby loads gems from it"),
    ("GEM_PATH", "ruby loads gems from it"),
    (
        "JAVA_TOOL_OPTIONS",
        "the JVM reads options from it (-javaagent runs code)",
    ),
    (
        "_JAVA_OPTIONS",
        "the JVM reads options from it (-javaagent runs code)",
    ),
    (
        "JDK_JAVA_OPTIONS",
        "the java launcher reads options from it",
    ),
    ("CLASSPATH", "java loads classes from it"),
    ("BASH_ENV", "bash runs the file it names"),
    ("ENV", "sh runs the file it names"),
    (
        "SHELLOPTS",
        "it sets bash options (xtrace with PS4 runs commands)",
    ),
    ("BASHOPTS", "it sets bash options"),
    (
        "PS4",
        "bash expands it, command substitutions included, when tracing",
    ),
    ("PROMPT_COMMAND", "bash runs it"),
    ("IFS", "it changes how shells split words"),
    ("BROWSER", "programs run the command it names to open a URL"),
    ("EDITOR", "programs run the command it names"),
    ("VISUAL", "programs run the command it names"),
    ("PAGER", "programs run the command it names"),
    ("MANPAGER", "man runs the command it names"),
    (
        "SELECTED_EDITOR",
        "sensible-editor runs the command it names",
    ),
    ("SUDO_EDITOR", "programs run the command it names"),
    ("SYSTEMD_PAGER", "systemd tools run the command it names"),
    ("SYSTEMD_EDITOR", "systemd tools run the command it names"),
    ("FCEDIT", "shells run the command it names"),
    ("TERMINAL", "programs run the command it names"),
    ("SHELL", "programs run the shell it names"),
    ("LESSOPEN", "less runs the command it names"),
    ("LESSCLOSE", "less runs the command it names"),
    ("LESSKEY", "less reads key bindings (and commands) from it"),
    (
        "MAILCAPS",
        "mailcap readers run the commands of the files it names",
    ),
    ("NLSPATH", "message catalogues are loaded from it"),
    ("LOCPATH", "locale data is loaded from it"),
    ("HOSTALIASES", "the resolver reads it"),
    (
        "PATH",
        "it chooses which programs run (the gate passes its own)",
    ),
    (
        "HOME",
        "it chooses which startup files are read (the gate passes its own)",
    ),
    ("XDG_CONFIG_HOME", "it chooses which startup files are read"),
    (
        "PHPRC",
        "php reads its ini from it (auto_prepend_file runs code)",
    ),
    ("PHP_INI_SCAN_DIR", "php reads ini files from it"),
    ("LUA_INIT", "lua runs it"),
    ("LUA_PATH", "lua loads modules from it"),
    ("LUA_CPATH", "lua loads native modules from it"),
    ("TCLLIBPATH", "tcl loads packages from it"),
    ("R_PROFILE", "R runs the file it names"),
    ("R_PROFILE_USER", "R runs the file it names"),
    ("R_ENVIRON", "R reads its environment from it"),
    ("R_ENVIRON_USER", "R reads its environment from it"),
    ("GCONV_PATH", "glibc loads conversion modules from it"),
    ("GLIBC_TUNABLES", "it tunes the dynamic loader"),
    ("OPENSSL_CONF", "OpenSSL loads the engines it names"),
    ("OPENSSL_ENGINES", "OpenSSL loads engines from it"),
    ("SSH_ASKPASS", "ssh runs the program it names"),
    ("SUDO_ASKPASS", "sudo runs the program it names"),
];

/// Prefixes refused, compared without regard to case.
const PREFIXES: &[(&str, &str)] = &[
    ("LD_", "the dynamic loader loads libraries and code from it"),
    ("DYLD_", "the dynamic loader loads libraries from it"),
    (
        "PYTHON",
        "python reads startup code, module paths and options from it",
    ),
    ("PERL5", "perl reads options and module paths from it"),
    ("GIT_", "git runs programs named in it"),
    (
        "NPM_CONFIG_",
        "npm and npx read their registry and scripts from it",
    ),
    ("YARN_", "yarn reads its registry and plugins from it"),
    ("PIP_", "pip reads the package index it installs from"),
    ("UV_", "uv and uvx read the package index they install from"),
    ("BASH_FUNC_", "bash imports functions from it"),
];

/// Names under a refused prefix that change no code path: common in MCP client configs.
const HARMLESS: &[&str] = &[
    "PYTHONUNBUFFERED",
    "PYTHONIOENCODING",
    "PYTHONDONTWRITEBYTECODE",
    "PYTHONUTF8",
    "PYTHONHASHSEED",
    "PYTHONFAULTHANDLER",
    "PYTHONNOUSERSITE",
    "PYTHONSAFEPATH",
    "PYTHONDEVMODE",
    "PYTHONTRACEMALLOC",
    "PYTHONNODEBUGRANGES",
    "UV_THREADPOOL_SIZE",
    "GIT_AUTHOR_NAME",
    "GIT_AUTHOR_EMAIL",
    "GIT_COMMITTER_NAME",
    "GIT_COMMITTER_EMAIL",
    "GIT_TERMINAL_PROMPT",
];

/// Why `name` may not be set for a child, or `None` when it may.
pub(crate) fn refused(name: &str) -> Option<&'static str> {
    let upper = name.to_ascii_uppercase();
    if HARMLESS.contains(&upper.as_str()) {
        return None;
    }
    NAMES
        .iter()
        .find(|(n, _)| *n == upper)
        .or_else(|| PREFIXES.iter().find(|(p, _)| upper.starts_with(p)))
        .map(|(_, why)| *why)
}

/// Why `name` cannot be a variable name at all, or `None`.
pub(crate) fn malformed_name(name: &str) -> Option<&'static str> {
    if name.is_empty() {
        Some("a variable name cannot be empty")
    } else if name.contains('=') {
        Some("a variable name cannot hold `=`")
    } else if name.contains('\0') {
        Some("a variable name cannot hold a NUL byte")
    } else {
        None
    }
}

/// Every refused name and prefix (a prefix ends in `_` or is `PYTHON`/`PERL5`), for the docs.
#[cfg(test)]
pub(crate) fn listed() -> impl Iterator<Item = &'static str> {
    NAMES.iter().chain(PREFIXES).map(|(n, _)| *n)
}
