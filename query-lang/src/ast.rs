//! The typed syntax tree of Weir's query language (SPEC section 2).
//!
//! Every node that an error can point at carries a [`Span`]. Spans are ignored by equality,
//! so `parse(print(ast)) == ast` holds although printing moves things around.

use std::fmt;

/// Milliseconds; durations in the language (`5min`) are stored in this unit.
pub type Millis = i64;

/// Where a node starts in the source: 1-based line and column, and the byte offset.
#[derive(Debug, Clone, Copy, Default, Eq, PartialOrd, Ord)]
pub struct Span {
    /// 1-based line.
    pub line: u32,
    /// 1-based column, in characters.
    pub column: u32,
    /// Byte offset from the start of the text.
    pub offset: usize,
}

impl PartialEq for Span {
    /// Spans never make two trees differ.
    fn eq(&self, _: &Self) -> bool {
        true
    }
}

impl std::hash::Hash for Span {
    /// Consistent with equality: every span hashes alike.
    fn hash<H: std::hash::Hasher>(&self, _: &mut H) {}
}

/// A name (query, rule, alias, field, event type) with where it was written.
#[derive(Debug, Clone, Eq, PartialOrd, Ord)]
pub struct Ident {
    /// The name as written (case kept).
    pub name: String,
    /// Where it was written.
    pub span: Span,
}

impl PartialEq for Ident {
    fn eq(&self, other: &Self) -> bool {
        self.name == other.name
    }
}

impl std::hash::Hash for Ident {
    /// Consistent with equality: only the name counts.
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.name.hash(state);
    }
}

impl Ident {
    /// A name with a default span (for building trees in code).
    pub fn new(name: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            span: Span::default(),
        }
    }
}

impl fmt::Display for Ident {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.name)
    }
}

/// One statement of a DSL text.
#[derive(Debug, Clone, PartialEq)]
pub enum Statement {
    /// `CREATE [OR REPLACE] QUERY name AS select [BACKFILL d | NO BACKFILL]`, or the seed
    /// shorthands `name = select` / `name@5min = select`.
    CreateQuery(CreateQuery),
    /// `DROP QUERY name [CASCADE]`.
    DropQuery(DropQuery),
    /// `CREATE [OR REPLACE] RULE name (ON query | AS select) DENY WHEN condition`.
    CreateRule(CreateRule),
    /// `DROP RULE name`.
    DropRule(Ident),
    /// `SHOW QUERIES`.
    ShowQueries,
    /// `SHOW RULES`.
    ShowRules,
    /// A bare select: a one-shot query over stored events.
    Select(Select),
}

/// `DROP QUERY name [CASCADE]`.
#[derive(Debug, Clone, PartialEq)]
pub struct DropQuery {
    /// The query to drop.
    pub name: Ident,
    /// `CASCADE`: also drop every query and rule that reads it (else such a drop is refused).
    pub cascade: bool,
}

/// How a query was written: the full form or one of the seed shorthands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum QueryForm {
    /// `CREATE [OR REPLACE] QUERY name AS …`.
    Create {
        /// `OR REPLACE` was given.
        or_replace: bool,
    },
    /// `name = select` (means CREATE OR REPLACE).
    Shorthand,
    /// `name@5min = select`: the query is named `name_5min`; `at` is the suffix in ms.
    ShorthandAt {
        /// The `@` duration.
        at: Millis,
    },
}

/// A continuous query definition.
#[derive(Debug, Clone, PartialEq)]
pub struct CreateQuery {
    /// The name it is referred to by. For `series@5min` this is `series_5min`.
    pub name: Ident,
    /// The name as written before `@` (equal to `name` unless the `@` form was used).
    pub written_name: Ident,
    /// Which syntax was used.
    pub form: QueryForm,
    /// The query.
    pub select: Select,
    /// Backfill on create/replace.
    pub backfill: Backfill,
}

impl CreateQuery {
    /// Whether an existing query of this name may be replaced.
    pub fn or_replace(&self) -> bool {
        !matches!(self.form, QueryForm::Create { or_replace: false })
    }
}

/// How much history to replay when a query or rule is created or replaced (SPEC section 5).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Backfill {
    /// Nothing said: replay the largest window of the query.
    #[default]
    Default,
    /// `BACKFILL d`.
    For(Millis),
    /// `NO BACKFILL`.
    None,
}

/// A rule definition.
#[derive(Debug, Clone, PartialEq)]
pub struct CreateRule {
    /// Rule name.
    pub name: Ident,
    /// `OR REPLACE` given.
    pub or_replace: bool,
    /// What it watches.
    pub source: RuleSource,
    /// The condition under which events of a group key are denied.
    pub deny_when: Expr,
    /// Backfill (for `AS select` rules, which own a query).
    pub backfill: Backfill,
}

/// What a rule is built on.
#[derive(Debug, Clone, PartialEq)]
pub enum RuleSource {
    /// `ON query_name`: an existing query.
    On(Ident),
    /// `AS select`: a query owned by the rule.
    As(Box<Select>),
}

/// `SELECT items FROM source [WHERE c] [GROUP BY g, …] [HAVING c] [LIMIT n]`.
#[derive(Debug, Clone, PartialEq)]
pub struct Select {
    /// Where `SELECT` was written.
    pub span: Span,
    /// The select list.
    pub items: Vec<SelectItem>,
    /// `FROM`.
    pub from: Source,
    /// `WHERE`.
    pub where_clause: Option<Expr>,
    /// `GROUP BY`.
    pub group_by: Vec<GroupItem>,
    /// `HAVING`.
    pub having: Option<Expr>,
    /// `LIMIT`.
    pub limit: Option<u64>,
}

/// One entry of the select list.
#[derive(Debug, Clone, PartialEq)]
pub enum SelectItem {
    /// `*`: every field (for a query source: every column of that query).
    Wildcard(Span),
    /// `expr [AS alias]`.
    Expr {
        /// The expression.
        expr: Expr,
        /// `AS alias`, if given.
        alias: Option<Ident>,
    },
}

/// What a select reads from.
#[derive(Debug, Clone, PartialEq)]
pub enum Source {
    /// `events`: every event type.
    AllEvents(Span),
    /// A name: an event type, or a query when one of that name exists (the analyzer decides).
    /// `window` is the `(30min)` of `series_5min(30min)`, which only a query source may have.
    Named {
        /// The name.
        name: Ident,
        /// `(duration)` after the name.
        window: Option<Millis>,
    },
}

/// One `GROUP BY` entry.
#[derive(Debug, Clone, PartialEq)]
pub enum GroupItem {
    /// `timeseries(time, granularity [, window])`.
    Timeseries {
        /// Where it was written.
        span: Span,
        /// The time field (normally `time`).
        time_field: Ident,
        /// Bucket width g.
        granularity: Millis,
        /// Sliding-window width w (a whole multiple of g), if given.
        window: Option<Millis>,
    },
    /// A field to group by.
    Field(FieldRef),
}

/// A reference to an event field by dotted path (`user.id`).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct FieldRef {
    /// Path segments (`["user", "id"]`).
    pub path: Vec<String>,
    /// Where it was written.
    pub span: Span,
}

impl FieldRef {
    /// The dotted path as one string.
    pub fn dotted(&self) -> String {
        self.path.join(".")
    }
}

/// An expression, with where it starts.
#[derive(Debug, Clone, PartialEq)]
pub struct Expr {
    /// What it is.
    pub kind: ExprKind,
    /// Where it starts.
    pub span: Span,
}

/// The kinds of expression.
#[derive(Debug, Clone, PartialEq)]
pub enum ExprKind {
    /// A field, or in HAVING / DENY WHEN an alias of the select list.
    Field(FieldRef),
    /// A literal.
    Literal(Literal),
    /// An aggregate call.
    Aggregate(Aggregate),
    /// `start(time)`: the bucket or window start.
    Start,
    /// `end(time)`: the bucket or window end.
    End,
    /// `a op b` for arithmetic, comparison, AND, OR.
    Binary {
        /// The operator.
        op: BinaryOp,
        /// Left operand.
        left: Box<Expr>,
        /// Right operand.
        right: Box<Expr>,
    },
    /// `NOT c` or `-e`.
    Unary {
        /// The operator.
        op: UnaryOp,
        /// The operand.
        expr: Box<Expr>,
    },
    /// `e =~ 'regex'`.
    Regex {
        /// The tested expression.
        expr: Box<Expr>,
        /// The pattern as written (without quotes).
        pattern: String,
    },
    /// `e [NOT] IN (v, …)`.
    In {
        /// The tested expression.
        expr: Box<Expr>,
        /// The list.
        list: Vec<Expr>,
        /// `NOT IN`.
        negated: bool,
    },
    /// `e IS [NOT] NULL`.
    IsNull {
        /// The tested expression.
        expr: Box<Expr>,
        /// `IS NOT NULL`.
        negated: bool,
    },
}

/// A literal value.
#[derive(Debug, Clone, PartialEq)]
pub enum Literal {
    /// A number (integers and decimals alike).
    Number(f64),
    /// A quoted string.
    String(String),
    /// `true` / `false`.
    Bool(bool),
    /// `null`.
    Null,
}

/// Binary operators, lowest precedence first: OR; AND; comparisons; + -; * /.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum BinaryOp {
    /// `OR`
    Or,
    /// `AND`
    And,
    /// `=`
    Eq,
    /// `!=` or `<>`
    NotEq,
    /// `<`
    Lt,
    /// `<=`
    LtEq,
    /// `>`
    Gt,
    /// `>=`
    GtEq,
    /// `+`
    Add,
    /// `-`
    Sub,
    /// `*`
    Mul,
    /// `/`
    Div,
}

/// Unary operators.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum UnaryOp {
    /// `NOT`
    Not,
    /// `-`
    Neg,
}

/// An aggregate call.
#[derive(Debug, Clone, PartialEq)]
pub struct Aggregate {
    /// Which aggregate.
    pub func: AggFunc,
    /// Its argument; `None` only for `count(*)`.
    pub arg: Option<Box<Expr>>,
}

/// The aggregates of SPEC section 2.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum AggFunc {
    /// `count(*)` (arg None) or `count(e)` (non-null values).
    Count,
    /// `count(distinct e)`: exact.
    CountDistinct,
    /// `approx_count_distinct(e)`: HyperLogLog.
    ApproxCountDistinct,
    /// `sum(e)`.
    Sum,
    /// `avg(e)`.
    Avg,
    /// `min(e)`.
    Min,
    /// `max(e)`.
    Max,
    /// `first(e)`: value of the earliest event.
    First,
    /// `last(e)`: value of the latest event.
    Last,
    /// `percentile(e, q)` with 0 <= q <= 1.
    Percentile(f64),
}
