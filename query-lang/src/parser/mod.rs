//! The nom parser: text → [`Statement`]s.
//!
//! One module per part of the grammar:
//! - [`lexical`]: whitespace, comments, keywords, names, literals, durations.
//! - [`expr`]: expressions and conditions, with precedence.
//! - [`select`]: `SELECT … FROM … WHERE … GROUP BY … HAVING … LIMIT …`.
//! - [`statement`]: CREATE / DROP / SHOW, the seed shorthands, and statement lists.
//!
//! Every token parser skips the whitespace and comments *after* the token, so a parser always
//! starts on the first character of its token and errors point exactly at it. Failures that
//! should stop parsing go through [`expect`], which turns a recoverable nom error into a fixed
//! human message at the position where the expected thing should have started.

use std::borrow::Cow;

use nom::error::{ErrorKind as NomKind, ParseError};
use nom::{IResult, Parser};
use nom_locate::LocatedSpan;

use crate::ast::{Span, Statement};
use crate::error::{ErrorKind, QueryError};

pub(crate) mod expr;
pub(crate) mod lexical;
pub(crate) mod select;
pub(crate) mod statement;

/// Parser input: the rest of the text, knowing its offset, line and column.
pub(crate) type Input<'a> = LocatedSpan<&'a str>;

/// Result of one parser.
pub(crate) type PResult<'a, T> = IResult<Input<'a>, T, PError<'a>>;

/// The parser's error: where, and (once known) the human message.
#[derive(Debug)]
pub(crate) struct PError<'a> {
    /// Where the offending text starts.
    pub input: Input<'a>,
    /// The message; `None` for a bare nom error that no [`expect`] has named yet.
    pub message: Option<Cow<'static, str>>,
}

impl<'a> ParseError<Input<'a>> for PError<'a> {
    fn from_error_kind(input: Input<'a>, _: NomKind) -> Self {
        Self {
            input,
            message: None,
        }
    }

    fn append(_: Input<'a>, _: NomKind, other: Self) -> Self {
        other
    }

    /// Of two failed alternatives keep the one that got further (a named one on a tie).
    fn or(self, other: Self) -> Self {
        let (a, b) = (self.input.location_offset(), other.input.location_offset());
        if a > b || (a == b && self.message.is_some()) {
            self
        } else {
            other
        }
    }
}

/// A fatal error with a message at `input`.
pub(crate) fn failure<'a>(
    input: Input<'a>,
    message: impl Into<Cow<'static, str>>,
) -> nom::Err<PError<'a>> {
    nom::Err::Failure(PError {
        input,
        message: Some(message.into()),
    })
}

/// A recoverable error at `input` (lets `alt` and `opt` try something else).
pub(crate) fn backtrack<'a>(input: Input<'a>) -> nom::Err<PError<'a>> {
    nom::Err::Error(PError {
        input,
        message: None,
    })
}

/// Run `p`; if it does not match, fail for good with `message` where `p` should have started.
pub(crate) fn expect<'a, O, P>(
    message: &'static str,
    mut p: P,
) -> impl FnMut(Input<'a>) -> PResult<'a, O>
where
    P: Parser<Input<'a>, Output = O, Error = PError<'a>>,
{
    move |i: Input<'a>| match p.parse(i) {
        Err(nom::Err::Error(_)) => Err(failure(i, message)),
        other => other,
    }
}

/// Run `p`: `Some` if it matched, `None` if it did not apply, and a failure passed on.
pub(crate) fn attempt<'a, O>(
    mut p: impl Parser<Input<'a>, Output = O, Error = PError<'a>>,
    i: Input<'a>,
) -> Result<Option<(Input<'a>, O)>, nom::Err<PError<'a>>> {
    match p.parse(i) {
        Ok(r) => Ok(Some(r)),
        Err(nom::Err::Error(_)) => Ok(None),
        Err(e) => Err(e),
    }
}

/// Most levels of nesting (parentheses, calls, `NOT`, unary `-`) in one statement.
pub(crate) const MAX_NESTING: u32 = 64;

/// Most operators and calls in one statement, which bounds how deep its tree can be (the
/// printer, analyzer and `Drop` all recurse).
pub(crate) const MAX_OPERATORS: u32 = 1000;

thread_local! {
    /// (current nesting, operators so far) of the statement being parsed.
    static BUDGET: std::cell::Cell<(u32, u32)> = const { std::cell::Cell::new((0, 0)) };
}

/// Start the budget of a new statement.
pub(crate) fn reset_budget() {
    BUDGET.with(|b| b.set((0, 0)));
}

/// Run `f` one nesting level deeper, failing at `i` past [`MAX_NESTING`].
pub(crate) fn nested<'a, T>(
    i: Input<'a>,
    f: impl FnOnce(Input<'a>) -> PResult<'a, T>,
) -> PResult<'a, T> {
    let (depth, ops) = BUDGET.with(|b| b.get());
    if depth >= MAX_NESTING {
        return Err(failure(
            i,
            format!("expression nested too deeply (more than {MAX_NESTING} levels)"),
        ));
    }
    BUDGET.with(|b| b.set((depth + 1, ops)));
    let r = f(i);
    BUDGET.with(|b| {
        let (d, o) = b.get();
        b.set((d.saturating_sub(1), o));
    });
    r
}

/// Count one operator or call at `i`, failing past [`MAX_OPERATORS`].
pub(crate) fn count_operator(i: Input<'_>) -> Result<(), nom::Err<PError<'_>>> {
    let (depth, ops) = BUDGET.with(|b| b.get());
    if ops >= MAX_OPERATORS {
        return Err(failure(
            i,
            format!("statement too complex (more than {MAX_OPERATORS} operators)"),
        ));
    }
    BUDGET.with(|b| b.set((depth, ops + 1)));
    Ok(())
}

/// The span of the token that starts `i`.
pub(crate) fn span_of(i: &Input<'_>) -> Span {
    Span {
        line: i.location_line(),
        column: i.get_utf8_column() as u32,
        offset: i.location_offset(),
    }
}

/// Parse a text of one or more statements (`;`-separated; a final `;` is optional; a
/// statement may also start on a new line without a `;` before it, as in the seed notes).
pub fn parse(text: &str) -> Result<Vec<Statement>, QueryError> {
    match statement::statements(Input::new(text)) {
        Ok((_, stmts)) => Ok(stmts),
        Err(nom::Err::Error(e)) | Err(nom::Err::Failure(e)) => Err(to_query_error(text, e)),
        Err(nom::Err::Incomplete(_)) => Err(QueryError::at_offset(
            text,
            text.len(),
            ErrorKind::Syntax,
            "unexpected end of input",
        )),
    }
}

fn to_query_error(text: &str, e: PError<'_>) -> QueryError {
    let message = match e.message {
        Some(m) => m.into_owned(),
        None => unexpected(e.input.fragment()),
    };
    QueryError::at_offset(text, e.input.location_offset(), ErrorKind::Syntax, message)
}

/// `unexpected 'x'` naming the token at the start of `rest`, or the end of input.
pub(crate) fn unexpected(rest: &str) -> String {
    let tok: String = rest
        .chars()
        .take_while(|c| !c.is_whitespace())
        .take(20)
        .collect();
    if tok.is_empty() {
        "unexpected end of input".to_string()
    } else {
        format!("unexpected '{tok}'")
    }
}
