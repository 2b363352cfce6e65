//! A small Rust lexer for the tidy checks: enough to tell code from comments and string
//! literals, follow paths and balance brackets, so a rule reads tokens rather than lines
//! (a string that mentions `format!` or a comment that says `Result<(), String>` is not
//! code, and a call split over lines is still one call).

/// One token and the line it starts on.
#[derive(Debug, Clone, PartialEq)]
pub struct Token {
    pub kind: Kind,
    pub line: usize,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Kind {
    Ident(String),
    /// A string literal's text as written between its quotes (escapes not decoded).
    Str(String),
    /// A number, a char or byte literal, or a lifetime.
    Literal,
    /// One punctuation character; `->` and `=>` are `→` and `⇒`.
    Punct(char),
}

impl Token {
    pub fn is_ident(&self, name: &str) -> bool {
        matches!(&self.kind, Kind::Ident(i) if i == name)
    }

    pub fn is_punct(&self, c: char) -> bool {
        self.kind == Kind::Punct(c)
    }

    pub fn ident(&self) -> Option<&str> {
        match &self.kind {
            Kind::Ident(i) => Some(i),
            _ => None,
        }
    }

    pub fn str(&self) -> Option<&str> {
        match &self.kind {
            Kind::Str(s) => Some(s),
            _ => None,
        }
    }
}

/// The tokens of `source`, comments dropped.
pub fn tokens(source: &str) -> Vec<Token> {
    let chars: Vec<char> = source.chars().collect();
    let mut out = Vec::new();
    let (mut i, mut line) = (0, 1);
    let at = |i: usize| chars.get(i).copied().unwrap_or('\0');
    while i < chars.len() {
        let c = chars[i];
        let start_line = line;
        let push = |out: &mut Vec<Token>, kind| {
            out.push(Token {
                kind,
                line: start_line,
            })
        };
        if c == '\n' {
            line += 1;
            i += 1;
        } else if c.is_whitespace() {
            i += 1;
        } else if c == '/' && at(i + 1) == '/' {
            while i < chars.len() && chars[i] != '\n' {
                i += 1;
            }
        } else if c == '/' && at(i + 1) == '*' {
            let mut depth = 0;
            while i < chars.len() {
                if chars[i] == '/' && at(i + 1) == '*' {
                    depth += 1;
                    i += 2;
                } else if chars[i] == '*' && at(i + 1) == '/' {
                    depth -= 1;
                    i += 2;
                    if depth == 0 {
                        break;
                    }
                } else {
                    line += usize::from(chars[i] == '\n');
                    i += 1;
                }
            }
        } else if c == '"' {
            let (text, next) = string(&chars, i + 1, &mut line);
            push(&mut out, Kind::Str(text));
            i = next;
        } else if c == '\'' {
            // A char literal (`'x'`, `'\n'`, `'"'`) or a lifetime (`'a`, `'static`).
            if at(i + 1) == '\\' {
                i += 3; // The quote, the backslash and the escaped character.
                while i < chars.len() && chars[i] != '\'' {
                    i += 1;
                }
                i += 1;
            } else if at(i + 2) == '\'' {
                i += 3;
            } else {
                i += 1;
                while at(i).is_alphanumeric() || at(i) == '_' {
                    i += 1;
                }
            }
            push(&mut out, Kind::Literal);
        } else if c.is_ascii_digit() {
            while at(i).is_alphanumeric()
                || at(i) == '_'
                || (at(i) == '.' && at(i + 1).is_ascii_digit())
            {
                i += 1;
            }
            push(&mut out, Kind::Literal);
        } else if c.is_alphabetic() || c == '_' {
            let begin = i;
            while at(i).is_alphanumeric() || at(i) == '_' {
                i += 1;
            }
            let word: String = chars[begin..i].iter().collect();
            let raw = matches!(word.as_str(), "r" | "br" | "cr");
            if raw && (at(i) == '#' || at(i) == '"') {
                let mut hashes = 0;
                while at(i) == '#' {
                    hashes += 1;
                    i += 1;
                }
                if at(i) != '"' {
                    // `r#ident`, a raw identifier.
                    push(&mut out, Kind::Ident(word));
                    continue;
                }
                i += 1;
                let begin = i;
                loop {
                    if i >= chars.len() {
                        break;
                    }
                    if chars[i] == '"' && (1..=hashes).all(|h| at(i + h) == '#') {
                        break;
                    }
                    line += usize::from(chars[i] == '\n');
                    i += 1;
                }
                push(&mut out, Kind::Str(chars[begin..i].iter().collect()));
                i += 1 + hashes;
            } else if matches!(word.as_str(), "b" | "c") && at(i) == '"' {
                let (text, next) = string(&chars, i + 1, &mut line);
                push(&mut out, Kind::Str(text));
                i = next;
            } else if word == "b" && at(i) == '\'' {
                i += 1;
                while i < chars.len() && chars[i] != '\'' {
                    i += 1 + usize::from(chars[i] == '\\');
                }
                i += 1;
                push(&mut out, Kind::Literal);
            } else {
                push(&mut out, Kind::Ident(word));
            }
        } else if c == '-' && at(i + 1) == '>' {
            push(&mut out, Kind::Punct('→'));
            i += 2;
        } else if c == '=' && at(i + 1) == '>' {
            push(&mut out, Kind::Punct('⇒'));
            i += 2;
        } else {
            push(&mut out, Kind::Punct(c));
            i += 1;
        }
    }
    out
}

/// A string's text from just after its opening quote, and the index after its closing one.
fn string(chars: &[char], mut i: usize, line: &mut usize) -> (String, usize) {
    let begin = i;
    while i < chars.len() && chars[i] != '"' {
        if chars[i] == '\\' {
            i += 1;
        }
        if chars.get(i) == Some(&'\n') {
            *line += 1;
        }
        i += 1;
    }
    (chars[begin..i.min(chars.len())].iter().collect(), i + 1)
}

/// The index just after the bracket that closes the one at `open` (`(`, `[`, `{` or `<`;
/// for `<`, only other angle brackets count).
pub fn close(tokens: &[Token], open: usize) -> usize {
    let (o, c) = match tokens[open].kind {
        Kind::Punct('(') => ('(', ')'),
        Kind::Punct('[') => ('[', ']'),
        Kind::Punct('{') => ('{', '}'),
        Kind::Punct('<') => ('<', '>'),
        _ => return open + 1,
    };
    let mut depth = 0usize;
    for (i, t) in tokens.iter().enumerate().skip(open) {
        if t.is_punct(o) {
            depth += 1;
        } else if t.is_punct(c) {
            depth -= 1;
            if depth == 0 {
                return i + 1;
            }
        }
    }
    tokens.len()
}

/// `tokens` without the items under `#[cfg(test)]` (test modules and test helpers).
pub fn without_tests(tokens: &[Token]) -> Vec<Token> {
    let mut out = Vec::with_capacity(tokens.len());
    let mut i = 0;
    while i < tokens.len() {
        let is_cfg_test = tokens[i].is_punct('#')
            && tokens.get(i + 1).is_some_and(|t| t.is_punct('['))
            && tokens.get(i + 2).is_some_and(|t| t.is_ident("cfg"))
            && tokens.get(i + 3).is_some_and(|t| t.is_punct('('))
            && tokens.get(i + 4).is_some_and(|t| t.is_ident("test"))
            && tokens.get(i + 5).is_some_and(|t| t.is_punct(')'));
        if !is_cfg_test {
            out.push(tokens[i].clone());
            i += 1;
            continue;
        }
        // Skip the attribute, then the item: up to its `;` or through its `{ ... }`.
        let mut j = close(tokens, i + 1);
        while j < tokens.len() && !tokens[j].is_punct(';') && !tokens[j].is_punct('{') {
            j += 1;
        }
        i = if tokens.get(j).is_some_and(|t| t.is_punct('{')) {
            close(tokens, j)
        } else {
            j + 1
        };
    }
    out
}

/// Every path that starts with the identifier `root` (`root::a::b`, and each leaf of a
/// `use root::{a, b::{c, d}}` tree), as the segments after `root` joined by `::`; a
/// glob is the segment `*`. Each comes with its line.
pub fn paths_under(tokens: &[Token], root: &str) -> Vec<(String, usize)> {
    let mut out = Vec::new();
    for (i, t) in tokens.iter().enumerate() {
        let preceded_by_path = i >= 1 && tokens[i - 1].is_punct(':');
        if t.is_ident(root) && !preceded_by_path && is_sep(tokens, i + 1) {
            tree(tokens, i + 3, String::new(), &mut out);
        }
    }
    out
}

fn is_sep(tokens: &[Token], i: usize) -> bool {
    tokens.get(i).is_some_and(|t| t.is_punct(':'))
        && tokens.get(i + 1).is_some_and(|t| t.is_punct(':'))
}

/// Reads a path or use tree from `i`, with `prefix` the segments before it.
fn tree(tokens: &[Token], mut i: usize, prefix: String, out: &mut Vec<(String, usize)>) {
    let join = |prefix: &str, seg: &str| {
        if prefix.is_empty() {
            seg.to_owned()
        } else {
            format!("{prefix}::{seg}")
        }
    };
    let mut path = prefix;
    loop {
        let Some(t) = tokens.get(i) else {
            out.push((path, tokens.last().map_or(0, |t| t.line)));
            return;
        };
        if t.is_punct('*') {
            out.push((join(&path, "*"), t.line));
            return;
        }
        if t.is_punct('{') {
            let end = close(tokens, i) - 1;
            let mut j = i + 1;
            while j < end {
                let before = out.len();
                tree(tokens, j, path.clone(), out);
                // Skip to the comma that ends this branch at this depth.
                let mut depth = 0;
                while j < end {
                    let t = &tokens[j];
                    if t.is_punct('{') {
                        depth += 1;
                    } else if t.is_punct('}') {
                        depth -= 1;
                    } else if t.is_punct(',') && depth == 0 {
                        break;
                    }
                    j += 1;
                }
                j += 1;
                debug_assert!(out.len() > before);
            }
            return;
        }
        match t.ident() {
            Some(seg) => {
                path = join(&path, seg);
                if is_sep(tokens, i + 1) {
                    i += 3;
                } else {
                    out.push((path, t.line));
                    return;
                }
            }
            None => {
                out.push((path, t.line));
                return;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kinds(source: &str) -> Vec<Kind> {
        tokens(source).into_iter().map(|t| t.kind).collect()
    }

    #[test]
    fn comments_strings_chars_and_lifetimes() {
        use Kind::*;
        let got = kinds(
            "// format!(\"x\")\nlet a: &'static str = r#\"SELECT \"1\"\"#; /* Result<(), String> */ \
             let q = '\"'; let e = '\\''; x -> y => b\"z\"",
        );
        assert_eq!(
            got,
            vec![
                Ident("let".into()),
                Ident("a".into()),
                Punct(':'),
                Punct('&'),
                Literal,
                Ident("str".into()),
                Punct('='),
                Str("SELECT \"1\"".into()),
                Punct(';'),
                Ident("let".into()),
                Ident("q".into()),
                Punct('='),
                Literal,
                Punct(';'),
                Ident("let".into()),
                Ident("e".into()),
                Punct('='),
                Literal,
                Punct(';'),
                Ident("x".into()),
                Punct('→'),
                Ident("y".into()),
                Punct('⇒'),
                Str("z".into()),
            ]
        );
        let lines: Vec<usize> = tokens("a\n\"b\nc\"\nd").iter().map(|t| t.line).collect();
        assert_eq!(lines, [1, 2, 4]);
    }

    #[test]
    fn test_items_are_left_out() {
        let source = "fn a() {} #[cfg(test)] mod tests { fn b() {} } #[cfg(test)] use x; fn c() {}";
        let names: Vec<String> = without_tests(&tokens(source))
            .iter()
            .filter_map(|t| t.ident().map(str::to_owned))
            .collect();
        assert_eq!(names, ["fn", "a", "fn", "c"]);
    }

    #[test]
    fn paths_expand_use_trees() {
        let source = "use s::{A, b::{C, D}, e::*}; use t::x; fn f() { s::d1::Store::new(s::G) }";
        let paths: Vec<String> = paths_under(&tokens(source), "s")
            .into_iter()
            .map(|(p, _)| p)
            .collect();
        assert_eq!(paths, ["A", "b::C", "b::D", "e::*", "d1::Store::new", "G"]);
    }
}
