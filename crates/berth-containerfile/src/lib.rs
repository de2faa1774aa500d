//! Containerfiles (Dockerfiles) and `.containerignore` (`.dockerignore`) files, read the
//! way BuildKit's dockerfile frontend and buildah (through openshift/imagebuilder, which
//! carries the same parser) read them.
//!
//! Text in, structures out: nothing here touches the file system, so the build executor
//! decides where files come from and the parser can be tested on strings alone.
//!
//! Reading happens in the same two passes as in BuildKit, because the order in which
//! errors surface is part of the behaviour users see:
//!
//! 1. [`lines`] turns physical lines into logical ones (parser directives, the escape
//!    character, continuations, comments), [`node`] splits each into instruction name,
//!    `--flags` and arguments and reads heredoc bodies ([`heredoc`]). Errors of this pass
//!    (an unterminated heredoc, a JSON array holding a number, …) win over those of the
//!    second pass, wherever they are in the file.
//! 2. [`instructions`] gives each node its meaning ([`Kind`]) and checks its arguments and
//!    flags; [`parse`] then groups instructions into stages.
//!
//! Words are kept **as written** (quotes and escapes intact) wherever BuildKit expands
//! them at build time, because only expansion knows what a quote means: `'$HOME'` stays
//! literal, `"$HOME"` does not. The executor passes such words through [`expand`] with
//! the stage's ARG and ENV values; each [`Kind`] variant says which fields those are.

mod expand;
mod flags;
mod heredoc;
mod ignore;
mod instructions;
mod lines;
mod node;
mod words;

pub use expand::expand;
pub use heredoc::is_single_heredoc;
pub use ignore::{glob_match, has_glob, Ignore, IgnoreError};

use std::collections::HashSet;

/// A whole Containerfile.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Containerfile {
    /// The escape character: `\` unless a `# escape=` directive chose `` ` ``. The
    /// executor needs it to expand words exactly as they were escaped.
    pub escape: char,
    /// The `# syntax=` directive, if any (kept so a caller can warn that a custom frontend
    /// is not honoured).
    pub syntax: Option<String>,
    /// ARGs before the first FROM: they may be used in FROM lines only, unless a stage
    /// declares them again.
    pub global_args: Vec<Arg>,
    pub stages: Vec<Stage>,
}

/// One `FROM` and the instructions up to the next one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stage {
    pub index: usize,
    /// `FROM x AS name`, lowercased as BuildKit does, so `--from=Name` finds it after
    /// the executor lowercases too.
    pub name: Option<String>,
    /// The image as written: may hold `$ARG`s from [`Containerfile::global_args`] (expand).
    pub base: String,
    /// `--platform=…` as written (expand).
    pub platform: Option<String>,
    /// 1-based line of the FROM.
    pub line: usize,
    /// The FROM itself as written, for messages.
    pub text: String,
    pub instructions: Vec<Instruction>,
}

/// One instruction after FROM (or inside ONBUILD).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Instruction {
    /// 1-based line where it starts.
    pub line: usize,
    /// The instruction as written with continuations joined (BuildKit's `Original`):
    /// what goes into history `created_by`. Heredoc bodies are not part of it.
    pub text: String,
    pub kind: Kind,
}

/// `ARG name[=default]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Arg {
    /// As written.
    pub name: String,
    /// As written, quotes included (expand with the values known at that point).
    pub default: Option<String>,
}

/// Exec form (a JSON array, run without a shell) or shell form (one string, given to the
/// stage's SHELL).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Form {
    Exec(Vec<String>),
    Shell(String),
}

/// A here-document (`<<EOF` … `EOF`) attached to RUN, COPY or ADD.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Heredoc {
    /// The delimiter with quotes removed; for COPY/ADD also the file name.
    pub name: String,
    /// Every line between the instruction and the delimiter, each with its line ending,
    /// exactly as in the file. Tabs are *not* stripped here even for `<<-`: BuildKit
    /// strips them when it uses the content, and keeping the raw text lets the executor
    /// decide (see [`Heredoc::effective_content`]).
    pub content: String,
    /// False when any part of the delimiter was quoted (`<<"EOF"`, `<<'EOF'`, `<<E"O"F`):
    /// then `$` in the content stays literal.
    pub expand: bool,
    /// `<<-`: leading tabs are removed from every content line and from the delimiter line.
    pub strip_tabs: bool,
    /// The file descriptor in `3<<EOF` (0 when none was written).
    pub fd: u32,
}

impl Heredoc {
    /// The content with leading tabs removed from each line when `<<-` was used.
    pub fn effective_content(&self) -> String {
        if !self.strip_tabs {
            return self.content.clone();
        }
        self.content
            .split_inclusive('\n')
            .map(|line| line.trim_start_matches('\t'))
            .collect()
    }
}

/// What an instruction does. Fields marked *(expand)* are kept as written and must go
/// through [`expand`] with the stage's ARG/ENV values before use, as BuildKit does.
/// RUN, CMD, ENTRYPOINT, SHELL and HEALTHCHECK are never expanded by the builder: the
/// shell in the container does it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Kind {
    /// `flags` are the `--mount=…`, `--network=…`, `--security=…` words, quotes removed,
    /// otherwise raw (BuildKit expands mount values; the executor parses them).
    Run {
        cmd: Form,
        heredocs: Vec<Heredoc>,
        flags: Vec<String>,
    },
    /// `from`, `chown`, `chmod`, `sources`, `dest` *(expand)*. Heredoc sources are in
    /// `heredocs`, not in `sources`.
    Copy {
        from: Option<String>,
        chown: Option<String>,
        chmod: Option<String>,
        sources: Vec<String>,
        dest: String,
        heredocs: Vec<Heredoc>,
        link: bool,
    },
    /// As [`Kind::Copy`]; `checksum` *(expand)* is `--checksum=sha256:…`.
    Add {
        chown: Option<String>,
        chmod: Option<String>,
        sources: Vec<String>,
        dest: String,
        heredocs: Vec<Heredoc>,
        link: bool,
        checksum: Option<String>,
        keep_git_dir: bool,
    },
    /// Keys and values *(expand)*; `ENV a=b c=d` and the legacy `ENV a b c` (= `a` set
    /// to `b c`).
    Env(Vec<(String, String)>),
    /// Defaults *(expand)*.
    Arg(Vec<Arg>),
    /// Keys and values *(expand)*: `LABEL "a b"="c d"` gives `("\"a b\"", "\"c d\"")`,
    /// which expands to `a b` = `c d`.
    Label(Vec<(String, String)>),
    /// `80/tcp`, `443` *(expand)*.
    Expose(Vec<String>),
    /// *(expand)*
    User(String),
    /// *(expand)*
    Workdir(String),
    Entrypoint(Form),
    Cmd(Form),
    /// Paths *(expand)*, from a JSON array or a space-separated list.
    Volume(Vec<String>),
    /// *(expand)*
    StopSignal(String),
    Shell(Vec<String>),
    /// `None` is `HEALTHCHECK NONE`.
    Healthcheck(Option<Healthcheck>),
    /// The trigger, parsed; its `text` is the trigger without `ONBUILD`, which is what
    /// goes into the image config's `OnBuild` list.
    Onbuild(Box<Instruction>),
    Maintainer(String),
}

/// `HEALTHCHECK [flags] CMD …`. Durations are Go duration strings, checked to be valid
/// and not under 1ms (BuildKit's rule) but kept as written for the executor to convert.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Healthcheck {
    /// Exec form becomes `["CMD", …]` in the image config, shell form `["CMD-SHELL", s]`.
    pub test: Form,
    pub interval: Option<String>,
    pub timeout: Option<String>,
    pub start_period: Option<String>,
    pub start_interval: Option<String>,
    pub retries: Option<u32>,
}

/// A parse error: where, and what. `Display` gives `file:line: INSTRUCTION: message`,
/// the message already carrying the instruction name where there is one.
///
/// [`expand`] cannot know where its word came from, so its errors have an empty `file`
/// and line 0; the caller places them with [`ParseError::at`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{file}:{line}: {message}")]
pub struct ParseError {
    pub file: String,
    pub line: usize,
    pub message: String,
}

impl ParseError {
    pub(crate) fn new(file: &str, line: usize, message: impl Into<String>) -> Self {
        ParseError {
            file: file.to_string(),
            line,
            message: message.into(),
        }
    }

    /// The same error placed in `file` at `line` (for errors from [`expand`]).
    pub fn at(mut self, file: &str, line: usize) -> Self {
        self.file = file.to_string();
        self.line = line;
        self
    }
}

/// Parses a Containerfile. `file_name` is only used in errors.
pub fn parse(text: &str, file_name: &str) -> Result<Containerfile, ParseError> {
    // Pass 1: logical lines and nodes, as BuildKit's parser package.
    let mut lines = lines::Lines::new(text);
    let mut nodes = Vec::new();
    while let Some(logical) = lines.next_logical() {
        let logical = logical.map_err(|e| ParseError::new(file_name, e.line, e.message))?;
        let mut parsed = node::Node::parse(&logical.text, logical.line, lines.escape())
            .map_err(|m| ParseError::new(file_name, logical.line, m))?;
        if let Some(target) = parsed.heredoc_target() {
            for doc in target.heredocs.iter_mut() {
                doc.content = lines
                    .read_heredoc(&doc.name, doc.strip_tabs)
                    .ok_or_else(|| {
                        ParseError::new(file_name, logical.line, "unterminated heredoc")
                    })?;
            }
        }
        nodes.push(parsed);
    }
    if nodes.is_empty() {
        return Err(ParseError::new(
            file_name,
            lines.line_count().max(1),
            "file with no instructions",
        ));
    }

    // Pass 2: instructions and stages, as BuildKit's instructions package.
    let mut file = Containerfile {
        escape: lines.escape(),
        syntax: lines.syntax().map(str::to_string),
        global_args: Vec::new(),
        stages: Vec::new(),
    };
    let mut names = HashSet::new();
    for n in &nodes {
        let at = |message: String| ParseError::new(file_name, n.line, message);
        match instructions::build(n).map_err(at)? {
            instructions::Built::From {
                base,
                name,
                platform,
            } => {
                if let Some(name) = &name {
                    if !names.insert(name.clone()) {
                        return Err(at(format!("FROM: duplicate stage name {name:?}")));
                    }
                }
                file.stages.push(Stage {
                    index: file.stages.len(),
                    name,
                    base,
                    platform,
                    line: n.line,
                    text: n.original.clone(),
                    instructions: Vec::new(),
                });
            }
            instructions::Built::Instruction(instruction) => match file.stages.last_mut() {
                Some(stage) => stage.instructions.push(instruction),
                None => match instruction.kind {
                    Kind::Arg(args) => file.global_args.extend(args),
                    _ => {
                        return Err(at(format!(
                            "{}: no build stage in current context (only ARG may come before the first FROM)",
                            n.cmd.to_uppercase()
                        )))
                    }
                },
            },
        }
    }
    if file.stages.is_empty() {
        let last = nodes.last().map_or(1, |n| n.line);
        return Err(ParseError::new(
            file_name,
            last,
            "dockerfile contains no stages to build (no FROM)",
        ));
    }
    Ok(file)
}

#[cfg(test)]
mod tests;
