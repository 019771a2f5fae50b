//! `SELECT items FROM source [WHERE c] [GROUP BY g, …] [HAVING c] [LIMIT n]`.

use super::expr::expr;
use super::lexical::{duration, ident, kw, peek_kw, peek_word, sym, whole_number};
use super::{expect, failure, span_of, Input, PResult};
use crate::ast::{FieldRef, GroupItem, Select, SelectItem, Source};

/// A select, starting at the `SELECT` keyword.
pub fn select(i: Input<'_>) -> PResult<'_, Select> {
    let span = span_of(&i);
    let (i, _) = kw("select")(i)?;
    let (mut i, first) = expect("expected '*' or an expression after SELECT", item)(i)?;
    let mut items = vec![first];
    while let Ok((rest, _)) = sym(",")(i) {
        let (rest, it) = expect("expected '*' or an expression after ','", item)(rest)?;
        items.push(it);
        i = rest;
    }
    let (i, _) = expect("expected ',', AS or FROM after the select list", kw("from"))(i)?;
    let (i, from) = expect(
        "expected an event type, 'events' or a query name after FROM",
        source,
    )(i)?;

    let (i, where_clause) = match kw("where")(i) {
        Ok((rest, _)) => {
            let (rest, c) = expect("expected a condition after WHERE", expr)(rest)?;
            (rest, Some(c))
        }
        Err(_) => (i, None),
    };
    let (i, group_by) = match kw("group")(i) {
        Ok((rest, _)) => {
            let (rest, _) = expect("expected BY after GROUP", kw("by"))(rest)?;
            group_list(rest)?
        }
        Err(_) => (i, Vec::new()),
    };
    let (i, having) = match kw("having")(i) {
        Ok((rest, _)) => {
            let (rest, c) = expect("expected a condition after HAVING", expr)(rest)?;
            (rest, Some(c))
        }
        Err(_) => (i, None),
    };
    let (i, limit) = match kw("limit")(i) {
        Ok((rest, _)) => {
            let (rest, n) = expect("expected a whole number after LIMIT", whole_number)(rest)?;
            (rest, Some(n))
        }
        Err(_) => (i, None),
    };
    for clause in ["where", "group", "having", "limit"] {
        if peek_kw(&i, clause) {
            return Err(failure(
                i,
                format!(
                    "{} is out of place: clauses go in the order WHERE, GROUP BY, HAVING, LIMIT",
                    clause.to_ascii_uppercase()
                ),
            ));
        }
    }
    Ok((
        i,
        Select {
            span,
            items,
            from,
            where_clause,
            group_by,
            having,
            limit,
        },
    ))
}

/// `*` or `expr [AS alias]`.
fn item(i: Input<'_>) -> PResult<'_, SelectItem> {
    if let Ok((rest, _)) = sym("*")(i) {
        return Ok((rest, SelectItem::Wildcard(span_of(&i))));
    }
    let (rest, e) = expr(i)?;
    match kw("as")(rest) {
        Ok((rest, _)) => {
            let (rest, alias) = expect("expected a name after AS", ident)(rest)?;
            Ok((
                rest,
                SelectItem::Expr {
                    expr: e,
                    alias: Some(alias),
                },
            ))
        }
        Err(_) => Ok((
            rest,
            SelectItem::Expr {
                expr: e,
                alias: None,
            },
        )),
    }
}

/// `events`, or a name with an optional `(window)`.
fn source(i: Input<'_>) -> PResult<'_, Source> {
    if i.fragment().starts_with(|c: char| c.is_ascii_alphabetic()) && peek_kw(&i, "events") {
        let (rest, _) = kw("events")(i)?;
        if rest.fragment().starts_with('(') {
            return Err(failure(
                rest,
                "'events' cannot have a window; only a query source can",
            ));
        }
        return Ok((rest, Source::AllEvents(span_of(&i))));
    }
    let (rest, name) = ident(i)?;
    match sym("(")(rest) {
        Ok((rest, _)) => {
            let (rest, w) = expect("expected a window duration such as 30min", duration)(rest)?;
            let (rest, _) = expect("expected ')' after the window duration", sym(")"))(rest)?;
            Ok((
                rest,
                Source::Named {
                    name,
                    window: Some(w),
                },
            ))
        }
        Err(_) => Ok((rest, Source::Named { name, window: None })),
    }
}

fn group_list(i: Input<'_>) -> PResult<'_, Vec<GroupItem>> {
    let (mut i, first) = expect(
        "expected timeseries(…) or a field after GROUP BY",
        group_item,
    )(i)?;
    let mut out = vec![first];
    while let Ok((rest, _)) = sym(",")(i) {
        let (rest, g) = expect("expected timeseries(…) or a field after ','", group_item)(rest)?;
        out.push(g);
        i = rest;
    }
    Ok((i, out))
}

fn group_item(i: Input<'_>) -> PResult<'_, GroupItem> {
    let span = span_of(&i);
    if peek_word(&i).eq_ignore_ascii_case("timeseries") {
        let (after, _) = ident(i)?;
        if let Ok((rest, _)) = sym("(")(after) {
            return timeseries(span, rest);
        }
    }
    let (mut rest, first) = ident(i)?;
    let mut path = vec![first.name];
    while rest.fragment().starts_with('.') {
        let (r, _) = sym(".")(rest)?;
        let (r, seg) = expect("expected a field name after '.'", ident)(r)?;
        path.push(seg.name);
        rest = r;
    }
    if rest.fragment().starts_with('(') {
        return Err(failure(
            i,
            "only fields and timeseries(time, g[, w]) can be grouped by",
        ));
    }
    Ok((rest, GroupItem::Field(FieldRef { path, span })))
}

/// The inside of `timeseries(time, g [, w])`, after the `(`.
fn timeseries<'a>(span: crate::ast::Span, i: Input<'a>) -> PResult<'a, GroupItem> {
    let (i, time_field) = expect(
        "expected the time field in timeseries(time, granularity[, window])",
        ident,
    )(i)?;
    let (i, _) = expect(
        "expected ',' and a granularity in timeseries(time, granularity[, window])",
        sym(","),
    )(i)?;
    let (i, granularity) = expect("expected a granularity such as 5min", duration)(i)?;
    let (i, window) = match sym(",")(i) {
        Ok((rest, _)) => {
            let (rest, w) = expect("expected a window such as 30min", duration)(rest)?;
            (rest, Some(w))
        }
        Err(_) => (i, None),
    };
    let (i, _) = expect("expected ')' to close timeseries(…)", sym(")"))(i)?;
    Ok((
        i,
        GroupItem::Timeseries {
            span,
            time_field,
            granularity,
            window,
        },
    ))
}
