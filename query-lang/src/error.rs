//! The crate's one error type: a message with the 1-based line and column it points at.

use std::fmt;

/// Whether an error was found while reading the text or while checking its meaning.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// The text does not follow the grammar.
    Syntax,
    /// The text parses but means something Weir rejects (unknown alias, bad window …).
    Semantic,
}

/// A parse or analysis error, positioned at the first offending character.
///
/// `line` and `column` are 1-based (columns count characters, not bytes), so the HTTP API
/// can return them as `{"error": message, "line": L, "column": C}`. `Display` shows
/// `line L, column C: message`, then the source line with a caret under the column.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct QueryError {
    /// What went wrong and what was expected, e.g. `expected ')' after count(*`.
    pub message: String,
    /// 1-based line of the offending character.
    pub line: u32,
    /// 1-based column (in characters) of the offending character.
    pub column: u32,
    /// Byte offset of the offending character in the text.
    pub offset: usize,
    /// Syntax or semantic.
    pub kind: ErrorKind,
    /// The source line the error is on, when the text is known.
    pub source_line: Option<String>,
}

/// The crate's result type.
pub type Result<T> = std::result::Result<T, QueryError>;

impl QueryError {
    /// An error at byte `offset` of `text`; line, column and source line are worked out.
    pub fn at_offset(
        text: &str,
        offset: usize,
        kind: ErrorKind,
        message: impl Into<String>,
    ) -> Self {
        let offset = floor_char_boundary(text, offset.min(text.len()));
        let before = &text[..offset];
        let line = before.matches('\n').count() as u32 + 1;
        let line_start = before.rfind('\n').map_or(0, |p| p + 1);
        let column = text[line_start..offset].chars().count() as u32 + 1;
        let mut e = Self {
            message: message.into(),
            line,
            column,
            offset,
            kind,
            source_line: None,
        };
        e.source_line = Some(source_line(text, line));
        e
    }

    /// An error at a node's span, without the source text (see [`QueryError::with_source`]).
    pub fn at_span(span: crate::ast::Span, kind: ErrorKind, message: impl Into<String>) -> Self {
        Self {
            message: message.into(),
            line: span.line.max(1),
            column: span.column.max(1),
            offset: span.offset,
            kind,
            source_line: None,
        }
    }

    /// Fill in the quoted source line from the text the error's position refers to.
    pub fn with_source(mut self, text: &str) -> Self {
        if self.source_line.is_none() {
            self.source_line = Some(source_line(text, self.line));
        }
        self
    }
}

fn floor_char_boundary(text: &str, mut i: usize) -> usize {
    while i > 0 && !text.is_char_boundary(i) {
        i -= 1;
    }
    i
}

/// The `line`th line (1-based) of `text`, without its line break; empty past the end.
fn source_line(text: &str, line: u32) -> String {
    text.split('\n')
        .nth(line.saturating_sub(1) as usize)
        .unwrap_or("")
        .trim_end_matches('\r')
        .to_string()
}

impl fmt::Display for QueryError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "line {}, column {}: {}",
            self.line, self.column, self.message
        )?;
        if let Some(src) = &self.source_line {
            // Keep tabs under tabs so the caret lines up whatever the tab width.
            let pad: String = src
                .chars()
                .take(self.column.saturating_sub(1) as usize)
                .map(|c| if c == '\t' { '\t' } else { ' ' })
                .collect();
            write!(f, "\n  | {src}\n  | {pad}^")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn positions_are_one_based_and_count_characters() {
        let text = "SELECT a\nFROM é b";
        let off = text.find('b').unwrap();
        let e = QueryError::at_offset(text, off, ErrorKind::Syntax, "boom");
        assert_eq!((e.line, e.column), (2, 8));
        assert_eq!(
            e.to_string(),
            "line 2, column 8: boom\n  | FROM é b\n  |        ^"
        );
    }

    #[test]
    fn offset_inside_a_character_is_moved_back() {
        let text = "é";
        let e = QueryError::at_offset(text, 1, ErrorKind::Syntax, "x");
        assert_eq!((e.line, e.column, e.offset), (1, 1, 0));
    }

    #[test]
    fn end_of_input_after_newline_is_next_line() {
        let e = QueryError::at_offset("a\n", 2, ErrorKind::Syntax, "x");
        assert_eq!((e.line, e.column), (2, 1));
        assert_eq!(e.source_line.as_deref(), Some(""));
    }
}
