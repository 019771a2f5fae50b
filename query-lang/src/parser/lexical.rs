//! Tokens: whitespace and `--` comments, keywords (any case), names, literals, durations.
//!
//! Each parser here consumes its token and the whitespace after it.

use nom::Input as _;

use super::{backtrack, failure, span_of, Input, PResult};
use crate::ast::{Ident, Millis};

/// Words that cannot be used as bare names (write them in double quotes instead).
pub const RESERVED: &[&str] = &[
    "select", "from", "where", "group", "by", "having", "limit", "as", "and", "or", "not", "in",
    "is", "null", "true", "false", "distinct",
];

/// Whether `s` can be written as a bare name (else it must be double-quoted).
pub fn is_plain_name(s: &str) -> bool {
    let mut chars = s.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
        && chars.all(is_word_char)
        && !RESERVED.iter().any(|r| r.eq_ignore_ascii_case(s))
}

fn is_word_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_'
}

/// Split `i` after `n` bytes: (rest, taken).
fn split(i: Input<'_>, n: usize) -> (Input<'_>, Input<'_>) {
    i.take_split(n)
}

/// Skip whitespace and `--` comments (which run to the end of the line).
pub fn ws(i: Input<'_>) -> PResult<'_, ()> {
    let s = *i.fragment();
    let mut pos = 0;
    loop {
        let rest = &s[pos..];
        let trimmed = rest.trim_start();
        pos += rest.len() - trimmed.len();
        if trimmed.starts_with("--") {
            pos += trimmed.find('\n').map_or(trimmed.len(), |n| n + 1);
        } else {
            break;
        }
    }
    Ok((split(i, pos).0, ()))
}

/// The run of word characters at the start of `i` (possibly empty).
fn word(i: &Input<'_>) -> usize {
    i.fragment()
        .find(|c: char| !is_word_char(c))
        .unwrap_or(i.fragment().len())
}

/// A keyword, in any letter case, not followed by a word character.
pub fn kw<'a>(word_: &'static str) -> impl Fn(Input<'a>) -> PResult<'a, Input<'a>> {
    move |i: Input<'a>| {
        let n = word(&i);
        if n == 0 || !i.fragment()[..n].eq_ignore_ascii_case(word_) {
            return Err(backtrack(i));
        }
        let (rest, taken) = split(i, n);
        let (rest, ()) = ws(rest)?;
        Ok((rest, taken))
    }
}

/// Whether `i` starts with the keyword `word_` (consumes nothing).
pub fn peek_kw(i: &Input<'_>, word_: &str) -> bool {
    let n = word(i);
    n > 0 && i.fragment()[..n].eq_ignore_ascii_case(word_)
}

/// A punctuation symbol such as `(`, `<=` or `=~`.
pub fn sym<'a>(s: &'static str) -> impl Fn(Input<'a>) -> PResult<'a, Input<'a>> {
    move |i: Input<'a>| {
        if !i.fragment().starts_with(s) {
            return Err(backtrack(i));
        }
        let (rest, taken) = split(i, s.len());
        let (rest, ()) = ws(rest)?;
        Ok((rest, taken))
    }
}

/// A name: `[A-Za-z_][A-Za-z0-9_]*` that is not a reserved word, or any text in double quotes
/// (`""` inside stands for one `"`).
pub fn ident(i: Input<'_>) -> PResult<'_, Ident> {
    let span = span_of(&i);
    let s = *i.fragment();
    if s.starts_with('"') {
        let mut name = String::new();
        let mut chars = s.char_indices().skip(1).peekable();
        while let Some((pos, c)) = chars.next() {
            if c == '"' {
                if matches!(chars.peek(), Some((_, '"'))) {
                    chars.next();
                    name.push('"');
                    continue;
                }
                if name.is_empty() {
                    return Err(failure(i, "a quoted name cannot be empty"));
                }
                let (rest, _) = split(i, pos + 1);
                let (rest, ()) = ws(rest)?;
                return Ok((rest, Ident { name, span }));
            }
            name.push(c);
        }
        return Err(failure(
            i,
            "unterminated quoted name: expected a closing '\"'",
        ));
    }
    let n = word(&i);
    let w = &s[..n];
    if n == 0 || w.starts_with(|c: char| c.is_ascii_digit()) || !is_plain_name(w) {
        return Err(backtrack(i));
    }
    let (rest, _) = split(i, n);
    let (rest, ()) = ws(rest)?;
    Ok((
        rest,
        Ident {
            name: w.to_string(),
            span,
        },
    ))
}

/// A plain (unquoted) word whatever it is, without consuming it: used to look ahead.
pub fn peek_word<'a>(i: &Input<'a>) -> &'a str {
    let n = word(i);
    &i.fragment()[..n]
}

/// Length of the number at the start of `s` (`12`, `1.5`, `2e-3`), 0 if none.
fn number_len(s: &str) -> usize {
    let b = s.as_bytes();
    let digits = |from: usize| b[from..].iter().take_while(|c| c.is_ascii_digit()).count();
    let mut n = digits(0);
    if n == 0 {
        return 0;
    }
    if b.get(n) == Some(&b'.') && b.get(n + 1).is_some_and(u8::is_ascii_digit) {
        n += 1 + digits(n + 1);
    }
    if matches!(b.get(n), Some(b'e' | b'E')) {
        let sign = usize::from(matches!(b.get(n + 1), Some(b'+' | b'-')));
        let d = digits(n + 1 + sign);
        if d > 0 {
            n += 1 + sign + d;
        }
    }
    n
}

/// A number literal, with an optional `-` directly before it (`-1` is one literal).
pub fn number(i: Input<'_>) -> PResult<'_, f64> {
    let s = *i.fragment();
    let sign = usize::from(s.starts_with('-'));
    let n = number_len(&s[sign..]);
    if n == 0 {
        return Err(backtrack(i));
    }
    let end = sign + n;
    let (rest, taken) = split(i, end);
    if rest.fragment().starts_with(is_word_char) {
        return Err(failure(
            rest,
            format!(
                "unexpected '{}' after the number {}",
                peek_word(&rest),
                taken.fragment()
            ),
        ));
    }
    let v: f64 = taken
        .fragment()
        .parse()
        .map_err(|_| failure(i, "invalid number"))?;
    if !v.is_finite() {
        return Err(failure(i, "number too large"));
    }
    let (rest, ()) = ws(rest)?;
    Ok((rest, v))
}

/// A whole number (`LIMIT 10`).
pub fn whole_number(i: Input<'_>) -> PResult<'_, u64> {
    let n = i.fragment().bytes().take_while(u8::is_ascii_digit).count();
    if n == 0 {
        return Err(backtrack(i));
    }
    let (rest, taken) = split(i, n);
    if rest
        .fragment()
        .starts_with(|c: char| is_word_char(c) || c == '.')
    {
        return Err(failure(i, "expected a whole number"));
    }
    let v = taken
        .fragment()
        .parse()
        .map_err(|_| failure(i, "number too large"))?;
    let (rest, ()) = ws(rest)?;
    Ok((rest, v))
}

/// A single-quoted string. `''` is a quote; `\\`, `\'`, `\n`, `\t`, `\r` are escapes; any other
/// backslash is kept as written (so `'\d+'` is the regex `\d+`).
pub fn string(i: Input<'_>) -> PResult<'_, String> {
    let s = *i.fragment();
    if !s.starts_with('\'') {
        return Err(backtrack(i));
    }
    let mut out = String::new();
    let mut chars = s.char_indices().skip(1).peekable();
    while let Some((pos, c)) = chars.next() {
        match c {
            '\'' if matches!(chars.peek(), Some((_, '\''))) => {
                chars.next();
                out.push('\'');
            }
            '\'' => {
                let (rest, _) = split(i, pos + 1);
                let (rest, ()) = ws(rest)?;
                return Ok((rest, out));
            }
            '\\' => match chars.peek().map(|&(_, c)| c) {
                Some('\\') => {
                    chars.next();
                    out.push('\\');
                }
                Some('\'') => {
                    chars.next();
                    out.push('\'');
                }
                Some('n') => {
                    chars.next();
                    out.push('\n');
                }
                Some('t') => {
                    chars.next();
                    out.push('\t');
                }
                Some('r') => {
                    chars.next();
                    out.push('\r');
                }
                _ => out.push('\\'),
            },
            c => out.push(c),
        }
    }
    Err(failure(i, "unterminated string: expected a closing '"))
}

/// A duration such as `500ms`, `10s`, `5min`, `1h`, `1d`, `1w` (also `sec`, `m`, `hour`,
/// `day`), the unit written directly after the number.
pub fn duration(i: Input<'_>) -> PResult<'_, Millis> {
    let n = i.fragment().bytes().take_while(u8::is_ascii_digit).count();
    if n == 0 {
        return Err(backtrack(i));
    }
    let (after_num, num) = split(i, n);
    let u = word(&after_num);
    if u == 0 {
        return Err(failure(
            after_num,
            format!(
                "expected a duration unit after {} (ms, s, min, h, d, w)",
                num.fragment()
            ),
        ));
    }
    let (rest, unit) = split(after_num, u);
    let Some(unit_ms) = weir_core::time::unit_ms(unit.fragment()) else {
        return Err(failure(
            after_num,
            format!("unknown duration unit '{}'", unit.fragment()),
        ));
    };
    let ms = num
        .fragment()
        .parse::<Millis>()
        .ok()
        .and_then(|v| v.checked_mul(unit_ms))
        .ok_or_else(|| failure(i, "duration too large"))?;
    let (rest, ()) = ws(rest)?;
    Ok((rest, ms))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run<T>(p: impl Fn(Input<'_>) -> PResult<'_, T>, s: &str) -> Option<(T, String)> {
        p(Input::new(s))
            .ok()
            .map(|(r, v)| (v, r.fragment().to_string()))
    }

    #[test]
    fn whitespace_and_comments_are_skipped() {
        let (rest, ()) = ws(Input::new("  -- note\n\t-- more\n  x")).unwrap();
        assert_eq!(*rest.fragment(), "x");
        assert_eq!((rest.location_line(), rest.get_utf8_column()), (3, 3));
    }

    #[test]
    fn keywords_ignore_case_and_need_a_word_boundary() {
        assert!(kw("select")(Input::new("SeLeCt x")).is_ok());
        assert!(kw("select")(Input::new("selection")).is_err());
    }

    #[test]
    fn names_plain_quoted_and_reserved() {
        assert_eq!(run(ident, "user_id, x").unwrap().0.name, "user_id");
        assert_eq!(run(ident, "\"user-agent\" x").unwrap().0.name, "user-agent");
        assert_eq!(run(ident, "\"a\"\"b\"").unwrap().0.name, "a\"b");
        assert!(run(ident, "FROM x").is_none());
        assert!(run(ident, "9lives").is_none());
    }

    #[test]
    fn numbers_and_negative_literals() {
        assert_eq!(run(number, "12 ").unwrap().0, 12.0);
        assert_eq!(run(number, "-1.5").unwrap().0, -1.5);
        assert_eq!(run(number, "2e3").unwrap().0, 2000.0);
        assert!(number(Input::new("5min")).is_err());
    }

    #[test]
    fn strings_and_escapes() {
        assert_eq!(run(string, "'it''s'").unwrap().0, "it's");
        assert_eq!(run(string, r"'a\\b\n'").unwrap().0, "a\\b\n");
        assert_eq!(run(string, r"'\d+'").unwrap().0, r"\d+");
        assert!(string(Input::new("'open")).is_err());
    }

    #[test]
    fn durations_in_every_unit() {
        assert_eq!(run(duration, "500ms").unwrap().0, 500);
        assert_eq!(run(duration, "5MIN").unwrap().0, 300_000);
        assert_eq!(run(duration, "2hour").unwrap().0, 7_200_000);
        assert_eq!(run(duration, "1w").unwrap().0, 604_800_000);
        assert!(duration(Input::new("5 parsecs")).is_err());
        assert!(duration(Input::new("99999999999999999999d")).is_err());
    }
}
