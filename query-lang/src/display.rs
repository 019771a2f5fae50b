//! Printing the syntax tree back as canonical text.
//!
//! Keywords are upper case, functions lower case, parentheses only where precedence needs
//! them. The printed text of an expression is also its default column name
//! (`count(*)`, `sum(price * qty)`), so this format is part of the result API.

use std::fmt::{self, Display, Formatter, Write};

use weir_core::format_duration;

use crate::ast::*;
use crate::parser::lexical::is_plain_name;

/// Binding strength of an operator; higher binds tighter.
fn precedence(kind: &ExprKind) -> u8 {
    match kind {
        ExprKind::Binary { op, .. } => binary_precedence(*op),
        ExprKind::Unary {
            op: UnaryOp::Not, ..
        } => 3,
        ExprKind::Regex { .. } | ExprKind::In { .. } | ExprKind::IsNull { .. } => 4,
        ExprKind::Unary {
            op: UnaryOp::Neg, ..
        } => 7,
        _ => 8,
    }
}

/// Binding strength of a binary operator.
pub fn binary_precedence(op: BinaryOp) -> u8 {
    use BinaryOp::*;
    match op {
        Or => 1,
        And => 2,
        Eq | NotEq | Lt | LtEq | Gt | GtEq => 4,
        Add | Sub => 5,
        Mul | Div => 6,
    }
}

impl BinaryOp {
    /// The operator as written.
    pub fn symbol(self) -> &'static str {
        use BinaryOp::*;
        match self {
            Or => "OR",
            And => "AND",
            Eq => "=",
            NotEq => "!=",
            Lt => "<",
            LtEq => "<=",
            Gt => ">",
            GtEq => ">=",
            Add => "+",
            Sub => "-",
            Mul => "*",
            Div => "/",
        }
    }
}

fn child(f: &mut Formatter<'_>, e: &Expr, min: u8) -> fmt::Result {
    if precedence(&e.kind) < min {
        write!(f, "({e})")
    } else {
        write!(f, "{e}")
    }
}

impl Display for Expr {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        match &self.kind {
            ExprKind::Field(r) => write!(f, "{r}"),
            ExprKind::Literal(l) => write!(f, "{l}"),
            ExprKind::Aggregate(a) => write!(f, "{a}"),
            ExprKind::Start => f.write_str("start(time)"),
            ExprKind::End => f.write_str("end(time)"),
            ExprKind::Binary { op, left, right } => {
                let p = binary_precedence(*op);
                // Comparisons do not chain; arithmetic and logic are left-associative.
                let left_min = if p == 4 { p + 1 } else { p };
                child(f, left, left_min)?;
                write!(f, " {} ", op.symbol())?;
                child(f, right, p + 1)
            }
            ExprKind::Unary {
                op: UnaryOp::Not,
                expr,
            } => {
                f.write_str("NOT ")?;
                child(f, expr, 3)
            }
            ExprKind::Unary {
                op: UnaryOp::Neg,
                expr,
            } => {
                // `-1` would read back as the literal -1, and `--` starts a comment.
                if matches!(expr.kind, ExprKind::Literal(Literal::Number(_))) {
                    write!(f, "-({expr})")
                } else {
                    f.write_str("-")?;
                    child(f, expr, 8)
                }
            }
            ExprKind::Regex { expr, pattern } => {
                child(f, expr, 5)?;
                write!(f, " =~ {}", quote(pattern))
            }
            ExprKind::In {
                expr,
                list,
                negated,
            } => {
                child(f, expr, 5)?;
                f.write_str(if *negated { " NOT IN (" } else { " IN (" })?;
                for (i, e) in list.iter().enumerate() {
                    if i > 0 {
                        f.write_str(", ")?;
                    }
                    write!(f, "{e}")?;
                }
                f.write_char(')')
            }
            ExprKind::IsNull { expr, negated } => {
                child(f, expr, 5)?;
                f.write_str(if *negated { " IS NOT NULL" } else { " IS NULL" })
            }
        }
    }
}

impl Display for FieldRef {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        for (i, seg) in self.path.iter().enumerate() {
            if i > 0 {
                f.write_char('.')?;
            }
            write!(f, "{}", Name(seg))?;
        }
        Ok(())
    }
}

/// A name as it must be written: bare when it can be, else in double quotes (`"user-agent"`,
/// `"from"`).
pub struct Name<'a>(pub &'a str);

impl Display for Name<'_> {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        if is_plain_name(self.0) {
            f.write_str(self.0)
        } else {
            f.write_char('"')?;
            f.write_str(&self.0.replace('"', "\"\""))?;
            f.write_char('"')
        }
    }
}

/// A name in a position where a keyword would be read instead (`events` as a source, `create`
/// at the start of a statement): quoted whenever it is one of `words`.
struct NameNot<'a>(&'a str, &'a [&'a str]);

impl Display for NameNot<'_> {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        if self.1.iter().any(|w| w.eq_ignore_ascii_case(self.0)) {
            write!(f, "\"{}\"", self.0)
        } else {
            write!(f, "{}", Name(self.0))
        }
    }
}

impl Display for Literal {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        match self {
            Literal::Number(n) => write!(f, "{n}"),
            Literal::String(s) => f.write_str(&quote(s)),
            Literal::Bool(b) => f.write_str(if *b { "true" } else { "false" }),
            Literal::Null => f.write_str("null"),
        }
    }
}

/// A string literal in single quotes, with `'` doubled and `\` escaped.
pub fn quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('\'');
    for c in s.chars() {
        match c {
            '\'' => out.push_str("''"),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            '\r' => out.push_str("\\r"),
            c => out.push(c),
        }
    }
    out.push('\'');
    out
}

impl AggFunc {
    /// The function's name as written.
    pub fn name(self) -> &'static str {
        match self {
            AggFunc::Count | AggFunc::CountDistinct => "count",
            AggFunc::ApproxCountDistinct => "approx_count_distinct",
            AggFunc::Sum => "sum",
            AggFunc::Avg => "avg",
            AggFunc::Min => "min",
            AggFunc::Max => "max",
            AggFunc::First => "first",
            AggFunc::Last => "last",
            AggFunc::Percentile(_) => "percentile",
        }
    }
}

impl Display for Aggregate {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        f.write_str(self.func.name())?;
        f.write_char('(')?;
        if self.func == AggFunc::CountDistinct {
            f.write_str("distinct ")?;
        }
        match &self.arg {
            Some(a) => write!(f, "{a}")?,
            None => f.write_char('*')?,
        }
        if let AggFunc::Percentile(q) = self.func {
            write!(f, ", {q}")?;
        }
        f.write_char(')')
    }
}

impl Display for SelectItem {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        match self {
            SelectItem::Wildcard(_) => f.write_char('*'),
            SelectItem::Expr {
                expr,
                alias: Some(a),
            } => write!(f, "{expr} AS {}", Name(&a.name)),
            SelectItem::Expr { expr, alias: None } => write!(f, "{expr}"),
        }
    }
}

impl SelectItem {
    /// The column name of this item in results: its alias, else its printed expression (a
    /// bare field: its dotted path, unquoted). `None` for `*`.
    pub fn column_name(&self) -> Option<String> {
        match self {
            SelectItem::Wildcard(_) => None,
            SelectItem::Expr { alias: Some(a), .. } => Some(a.name.clone()),
            SelectItem::Expr {
                expr:
                    Expr {
                        kind: ExprKind::Field(f),
                        ..
                    },
                alias: None,
            } => Some(f.dotted()),
            SelectItem::Expr { expr, alias: None } => Some(expr.to_string()),
        }
    }
}

impl Display for Source {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        match self {
            Source::AllEvents(_) => f.write_str("events"),
            Source::Named { name, window } => {
                write!(f, "{}", NameNot(&name.name, &["events"]))?;
                match window {
                    Some(w) => write!(f, "({})", format_duration(*w)),
                    None => Ok(()),
                }
            }
        }
    }
}

impl Display for GroupItem {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        match self {
            GroupItem::Timeseries {
                time_field,
                granularity,
                window,
                ..
            } => {
                write!(
                    f,
                    "timeseries({}, {}",
                    Name(&time_field.name),
                    format_duration(*granularity)
                )?;
                if let Some(w) = window {
                    write!(f, ", {}", format_duration(*w))?;
                }
                f.write_char(')')
            }
            GroupItem::Field(r) => write!(f, "{r}"),
        }
    }
}

fn list<T: Display>(f: &mut Formatter<'_>, items: &[T]) -> fmt::Result {
    for (i, it) in items.iter().enumerate() {
        if i > 0 {
            f.write_str(", ")?;
        }
        write!(f, "{it}")?;
    }
    Ok(())
}

impl Display for Select {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        f.write_str("SELECT ")?;
        list(f, &self.items)?;
        write!(f, " FROM {}", self.from)?;
        if let Some(w) = &self.where_clause {
            write!(f, " WHERE {w}")?;
        }
        if !self.group_by.is_empty() {
            f.write_str(" GROUP BY ")?;
            list(f, &self.group_by)?;
        }
        if let Some(h) = &self.having {
            write!(f, " HAVING {h}")?;
        }
        if let Some(n) = self.limit {
            write!(f, " LIMIT {n}")?;
        }
        Ok(())
    }
}

impl Display for Backfill {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        match self {
            Backfill::Default => Ok(()),
            Backfill::For(d) => write!(f, " BACKFILL {}", format_duration(*d)),
            Backfill::None => f.write_str(" NO BACKFILL"),
        }
    }
}

/// Words that start a statement: a shorthand query of that name must be quoted.
const STATEMENT_WORDS: &[&str] = &["create", "drop", "show", "select"];

impl Display for Statement {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        match self {
            Statement::CreateQuery(q) => match q.form {
                QueryForm::Create { or_replace } => write!(
                    f,
                    "CREATE {}QUERY {} AS {}{}",
                    if or_replace { "OR REPLACE " } else { "" },
                    Name(&q.name.name),
                    q.select,
                    q.backfill
                ),
                QueryForm::Shorthand => write!(
                    f,
                    "{} = {}{}",
                    NameNot(&q.name.name, STATEMENT_WORDS),
                    q.select,
                    q.backfill
                ),
                QueryForm::ShorthandAt { at } => {
                    write!(
                        f,
                        "{}@{} = {}{}",
                        NameNot(&q.written_name.name, STATEMENT_WORDS),
                        format_duration(at),
                        q.select,
                        q.backfill
                    )
                }
            },
            Statement::DropQuery(d) => write!(
                f,
                "DROP QUERY {}{}",
                Name(&d.name.name),
                if d.cascade { " CASCADE" } else { "" }
            ),
            Statement::CreateRule(r) => {
                write!(
                    f,
                    "CREATE {}RULE {} ",
                    if r.or_replace { "OR REPLACE " } else { "" },
                    Name(&r.name.name)
                )?;
                match &r.source {
                    RuleSource::On(q) => write!(f, "ON {}", Name(&q.name))?,
                    RuleSource::As(s) => write!(f, "AS {s}")?,
                }
                write!(f, " DENY WHEN {}{}", r.deny_when, r.backfill)
            }
            Statement::DropRule(n) => write!(f, "DROP RULE {}", Name(&n.name)),
            Statement::ShowQueries => f.write_str("SHOW QUERIES"),
            Statement::ShowRules => f.write_str("SHOW RULES"),
            Statement::Select(s) => write!(f, "{s}"),
        }
    }
}
