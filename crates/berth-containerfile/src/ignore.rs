//! `.containerignore` / `.dockerignore`: which context paths a build may not see,
//! matched as moby/patternmatcher does after BuildKit's `dockerignore.ReadAll`.
//!
//! Unlike `.gitignore`, a pattern is anchored at the context root (`foo` is only
//! `./foo`), `*` never crosses `/`, `**` does, an exception (`!pattern`) can re-include
//! a path under an excluded directory, and the last matching rule wins. A pattern that
//! matches a directory matches everything under it, because a path also matches when
//! one of its parent directories does.

/// A malformed pattern (`[` without `]`, a lone `!`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("ignore file line {line}: {message}: {pattern:?}")]
pub struct IgnoreError {
    pub line: usize,
    pub pattern: String,
    pub message: String,
}

/// Parsed ignore rules.
#[derive(Debug, Clone, Default)]
pub struct Ignore {
    rules: Vec<Rule>,
}

#[derive(Debug, Clone)]
struct Rule {
    exception: bool,
    /// The cleaned pattern, for messages and callers that want it.
    pattern: String,
    tokens: Vec<Token>,
}

#[derive(Debug, Clone, PartialEq)]
enum Token {
    Char(char),
    /// `*`: any run of characters without `/`.
    Star,
    /// `?`: one character other than `/`.
    Any,
    /// `[...]`: ranges, `^` negation; never matches `/`.
    Class {
        negated: bool,
        ranges: Vec<(char, char)>,
    },
    /// `**` followed by more pattern (`**/` included): `(.*/)?`, zero or more whole
    /// directories.
    Dirs,
    /// `**` at the end: anything, `/` included.
    Rest,
}

impl Ignore {
    /// Parses the file. Malformed patterns never match (docker would refuse the build;
    /// use [`Ignore::try_parse`] to report them).
    pub fn parse(text: &str) -> Ignore {
        let mut ignore = Ignore::default();
        for (line, pattern) in patterns(text) {
            if let Ok(rule) = Rule::new(&pattern, line) {
                ignore.rules.push(rule);
            }
        }
        ignore
    }

    /// Parses the file, failing on the first malformed pattern as docker and podman do.
    pub fn try_parse(text: &str) -> Result<Ignore, IgnoreError> {
        let mut ignore = Ignore::default();
        for (line, pattern) in patterns(text) {
            ignore.rules.push(Rule::new(&pattern, line)?);
        }
        Ok(ignore)
    }

    /// The cleaned patterns, `!` kept on exceptions.
    pub fn patterns(&self) -> Vec<String> {
        self.rules
            .iter()
            .map(|r| {
                if r.exception {
                    format!("!{}", r.pattern)
                } else {
                    r.pattern.clone()
                }
            })
            .collect()
    }

    /// Whether any rule is an exception: a walker may skip an excluded directory only
    /// when there is none (otherwise something under it may be re-included).
    pub fn has_exceptions(&self) -> bool {
        self.rules.iter().any(|r| r.exception)
    }

    /// Whether `rel_path` (relative to the context, `/`-separated; a leading `/` or `./`
    /// is cleaned away) is excluded. `is_dir` does not change the answer: patterns are
    /// cleaned, so `foo/` and `foo` are the same rule in docker too. It is accepted so
    /// callers need not know that.
    pub fn is_ignored(&self, rel_path: &str, is_dir: bool) -> bool {
        let _ = is_dir;
        let path = clean(rel_path);
        let path = path.strip_prefix('/').unwrap_or(&path);
        if path.is_empty() || path == "." {
            return false;
        }
        let path: Vec<char> = path.chars().collect();
        let mut matched = false;
        for rule in &self.rules {
            // An exception only matters for a matched path, an exclusion only for an
            // unmatched one (patternmatcher's shortcut, which also fixes the semantics).
            if rule.exception != matched {
                continue;
            }
            if rule.matches_path_or_parent(&path) {
                matched = !rule.exception;
            }
        }
        matched
    }
}

/// Go's `filepath.Match` of one path component (a COPY source's glob, as buildah
/// expands it): `*` and `?` never match `/`, `[…]` classes with `^` negation, `\`
/// escapes; `**` is two stars. A malformed pattern is `Err` with Go's words.
pub fn glob_match(pattern: &str, name: &str) -> Result<bool, String> {
    let tokens = compile(pattern).ok_or_else(|| format!("{pattern}: syntax error in pattern"))?;
    let tokens: Vec<Token> = tokens
        .into_iter()
        .map(|t| match t {
            Token::Dirs | Token::Rest => Token::Star,
            t => t,
        })
        .collect();
    let name: Vec<char> = name.chars().collect();
    Ok(reach(&tokens, &name)[name.len()])
}

/// Whether a path component holds glob syntax (`*`, `?`, `[`), as Go's `hasMeta`.
pub fn has_glob(component: &str) -> bool {
    component.contains(['*', '?', '['])
}

/// `dockerignore.ReadAll`: lines starting with `#` are comments (only at column 0),
/// blanks trimmed, `!` exceptions, each pattern cleaned with a leading `/` removed.
fn patterns(text: &str) -> Vec<(usize, String)> {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let mut out = Vec::new();
    for (i, raw) in text.lines().enumerate() {
        if raw.starts_with('#') {
            continue;
        }
        let mut pattern = raw.trim();
        if pattern.is_empty() {
            continue;
        }
        let invert = pattern.starts_with('!');
        if invert {
            pattern = pattern[1..].trim();
        }
        let mut cleaned = String::new();
        if !pattern.is_empty() {
            cleaned = clean(pattern);
            if cleaned.len() > 1 && cleaned.starts_with('/') {
                cleaned.remove(0);
            }
        }
        if invert {
            cleaned.insert(0, '!');
        }
        out.push((i + 1, cleaned));
    }
    out
}

/// Go's `filepath.Clean` for `/`-separated paths.
fn clean(path: &str) -> String {
    if path.is_empty() {
        return ".".into();
    }
    let rooted = path.starts_with('/');
    let mut parts: Vec<&str> = Vec::new();
    for part in path.split('/') {
        match part {
            "" | "." => {}
            ".." => match parts.last() {
                Some(&last) if last != ".." => {
                    parts.pop();
                }
                _ if rooted => {}
                _ => parts.push(".."),
            },
            p => parts.push(p),
        }
    }
    let joined = parts.join("/");
    match (rooted, joined.is_empty()) {
        (true, _) => format!("/{joined}"),
        (false, true) => ".".into(),
        (false, false) => joined,
    }
}

impl Rule {
    fn new(pattern: &str, line: usize) -> Result<Rule, IgnoreError> {
        let err = |message: &str| IgnoreError {
            line,
            pattern: pattern.to_string(),
            message: message.to_string(),
        };
        let (exception, body) = match pattern.strip_prefix('!') {
            Some("") => return Err(err("illegal exclusion pattern")),
            Some(rest) => (true, rest),
            None => (false, pattern),
        };
        let tokens = compile(body).ok_or_else(|| err("syntax error in pattern"))?;
        Ok(Rule {
            exception,
            pattern: body.to_string(),
            tokens,
        })
    }

    /// Whether the rule matches `path` (cleaned, relative) or one of its parent
    /// directories: one pass gives every prefix, and a parent is `path` up to a `/`.
    fn matches_path_or_parent(&self, path: &[char]) -> bool {
        let reach = reach(&self.tokens, path);
        reach[path.len()] || path.iter().enumerate().any(|(i, &c)| c == '/' && reach[i])
    }
}

/// Turns a pattern into tokens; `None` when Go's `filepath.Match` would report
/// `ErrBadPattern` (an unclosed or empty class, a trailing `\` in a class).
fn compile(pattern: &str) -> Option<Vec<Token>> {
    let chars: Vec<char> = pattern.chars().collect();
    let mut tokens = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let ch = chars[i];
        i += 1;
        match ch {
            '*' if chars.get(i) == Some(&'*') => {
                i += 1;
                if chars.get(i) == Some(&'/') {
                    i += 1;
                }
                tokens.push(if i == chars.len() {
                    Token::Rest
                } else {
                    Token::Dirs
                });
            }
            '*' => tokens.push(Token::Star),
            '?' => tokens.push(Token::Any),
            '\\' => tokens.push(Token::Char(
                chars.get(i).copied().inspect(|_| i += 1).unwrap_or('\\'),
            )),
            '[' => {
                let (token, next) = class(&chars, i)?;
                tokens.push(token);
                i = next;
            }
            c => tokens.push(Token::Char(c)),
        }
    }
    Some(tokens)
}

/// Parses a class starting after `[`; returns it and the index after `]`.
fn class(chars: &[char], mut i: usize) -> Option<(Token, usize)> {
    let negated = chars.get(i) == Some(&'^');
    if negated {
        i += 1;
    }
    let mut ranges = Vec::new();
    let mut first = true;
    loop {
        let c = *chars.get(i)?;
        if c == ']' && !first {
            return Some((Token::Class { negated, ranges }, i + 1));
        }
        first = false;
        let lo = class_char(chars, &mut i)?;
        let hi = if chars.get(i) == Some(&'-') && chars.get(i + 1).is_some_and(|&c| c != ']') {
            i += 1;
            class_char(chars, &mut i)?
        } else {
            lo
        };
        if lo > hi {
            return None;
        }
        ranges.push((lo, hi));
    }
}

fn class_char(chars: &[char], i: &mut usize) -> Option<char> {
    let c = *chars.get(*i)?;
    *i += 1;
    if c == '\\' {
        let e = *chars.get(*i)?;
        *i += 1;
        return Some(e);
    }
    Some(c)
}

/// Which prefixes of `path` the `tokens` match: `reach[j]` is whether they match
/// `path[..j]`. Dynamic programming over positions, each token one linear pass (a `*`
/// or `**` carries reachability forward instead of scanning from every position), so
/// that matching costs tokens × path length whatever the pattern: no pattern can make
/// it slow (a fuzzed one took over a minute with a scan per position and per parent).
fn reach(tokens: &[Token], path: &[char]) -> Vec<bool> {
    let n = path.len();
    let mut reach = vec![false; n + 1];
    reach[0] = true;
    let mut next = vec![false; n + 1];
    for token in tokens {
        next.iter_mut().for_each(|r| *r = false);
        match token {
            Token::Char(c) => {
                for j in 0..n {
                    next[j + 1] = reach[j] && path[j] == *c;
                }
            }
            Token::Any => {
                for j in 0..n {
                    next[j + 1] = reach[j] && path[j] != '/';
                }
            }
            Token::Class { negated, ranges } => {
                for j in 0..n {
                    let c = path[j];
                    next[j + 1] = reach[j]
                        && c != '/'
                        && ranges.iter().any(|&(lo, hi)| lo <= c && c <= hi) != *negated;
                }
            }
            // Anything but `/`: from a reached position up to the next `/`.
            Token::Star => {
                let mut carry = false;
                for k in 0..=n {
                    carry |= reach[k];
                    next[k] = carry;
                    if k < n && path[k] == '/' {
                        carry = false;
                    }
                }
            }
            // Everything after a reached position.
            Token::Rest => {
                let mut carry = false;
                for k in 0..=n {
                    carry |= reach[k];
                    next[k] = carry;
                }
            }
            // (.*/)? : nothing, or anything ending with '/'.
            Token::Dirs => {
                let mut carry = false;
                for k in 0..=n {
                    if reach[k] {
                        carry = true;
                        next[k] = true;
                    }
                    if k < n && carry && path[k] == '/' {
                        next[k + 1] = true;
                    }
                }
            }
        }
        std::mem::swap(&mut reach, &mut next);
        if !reach.contains(&true) {
            break;
        }
    }
    reach
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ignored(rules: &str, path: &str) -> bool {
        Ignore::parse(rules).is_ignored(path, false)
    }

    /// Patterns of many stars against a long, deep path (what the fuzzer found slow:
    /// a scan from every position, again for every parent directory) are answered,
    /// and rightly: linear passes, not a search.
    #[test]
    fn many_stars_against_a_deep_path_stay_cheap() {
        let deep = vec!["ab"; 1500].join("/");
        let stars = vec!["*"; 1500].join("/");
        let rules = format!("{stars}/c\n{}\n**/ab/**/ab/**/c", "*a".repeat(800));
        assert!(!ignored(&rules, &deep));
        assert!(ignored(&rules, &format!("{deep}/c")));
        assert!(ignored(&stars, &format!("{deep}/x")), "a parent matches");
        assert!(!ignored(&format!("{stars}/*"), &deep));
    }

    #[test]
    fn anchored_at_root() {
        assert!(ignored("foo", "foo"));
        assert!(!ignored("foo", "a/foo"));
        assert!(ignored("/foo", "foo"));
        assert!(ignored("./foo", "foo"));
        assert!(ignored("foo", "./foo"));
        assert!(ignored("foo", "/foo"));
        assert!(ignored("foo/", "foo"));
    }

    #[test]
    fn directory_pattern_covers_contents() {
        assert!(ignored("node_modules", "node_modules/a/b.js"));
        assert!(ignored("a/b", "a/b/c/d"));
        assert!(!ignored("a/b", "a/bc"));
    }

    #[test]
    fn star_does_not_cross_slash() {
        assert!(ignored("*.md", "README.md"));
        assert!(!ignored("*.md", "docs/x.md"));
        assert!(ignored("*/*.md", "docs/x.md"));
        assert!(
            ignored("*", "anything/at/all"),
            "* matches the top directory"
        );
        assert!(ignored("a?c", "abc"));
        assert!(!ignored("a?c", "a/c"));
    }

    #[test]
    fn double_star() {
        assert!(ignored("**/*.go", "x.go"));
        assert!(ignored("**/*.go", "a/b/x.go"));
        assert!(ignored("**", "a/b"));
        assert!(ignored("a/**", "a/b/c"));
        assert!(ignored("a/**/b", "a/b"));
        assert!(ignored("a/**/b", "a/x/y/b"));
        assert!(!ignored("a/**/b", "a/xb"));
        assert!(ignored("**/temp", "x/y/temp/file"));
    }

    #[test]
    fn classes_and_escapes() {
        assert!(ignored("[abc].txt", "b.txt"));
        assert!(!ignored("[abc].txt", "d.txt"));
        assert!(ignored("[^abc].txt", "d.txt"));
        assert!(ignored("[a-c]x", "bx"));
        assert!(ignored(r"\*", "*"));
        assert!(!ignored(r"\*", "a"));
        assert!(!ignored("a.b", "axb"), "regex characters are literal");
    }

    #[test]
    fn exceptions_and_order() {
        let rules = "*.md\n!README.md\n";
        assert!(ignored(rules, "CHANGES.md"));
        assert!(!ignored(rules, "README.md"));
        let rules = "!README.md\n*.md\n";
        assert!(ignored(rules, "README.md"), "later rules win");
        let rules = "docs\n!docs/keep.txt\n";
        assert!(ignored(rules, "docs/other.txt"));
        assert!(!ignored(rules, "docs/keep.txt"));
        assert!(ignored(rules, "docs"));
        assert!(Ignore::parse(rules).has_exceptions());
    }

    #[test]
    fn comments_blanks_and_bad_patterns() {
        let text = "# comment\n\n   \n  tmp  \n #notcomment\n";
        let ig = Ignore::parse(text);
        assert_eq!(ig.patterns(), vec!["tmp", "#notcomment"]);
        assert!(ig.is_ignored("tmp", true));
        assert!(Ignore::try_parse("[abc\n").is_err());
        assert!(Ignore::try_parse("!\n").is_err());
        assert!(Ignore::try_parse("! a/../b\n").is_ok_and(|i| i.patterns() == vec!["!b"]));
        assert!(!ignored("[abc\n", "a"));
    }

    #[test]
    fn clean_like_go() {
        assert_eq!(clean("a//b/./c/.."), "a/b");
        assert_eq!(clean("./"), ".");
        assert_eq!(clean("../a"), "../a");
        assert_eq!(clean("/../a"), "/a");
        assert_eq!(clean("a/"), "a");
    }
}
