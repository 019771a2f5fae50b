// The Weir query language for CodeMirror: highlighting and completion (keywords, functions,
// durations, query names, event types and field names from /api/keys).

import { StreamLanguage, HighlightStyle, syntaxHighlighting } from '@codemirror/language';
import { tags as t } from '@lezer/highlight';

const KEYWORDS = [
  'CREATE', 'OR', 'REPLACE', 'QUERY', 'RULE', 'AS', 'SELECT', 'FROM', 'WHERE', 'GROUP', 'BY',
  'HAVING', 'LIMIT', 'DROP', 'CASCADE', 'ON', 'DENY', 'WHEN', 'SHOW', 'QUERIES', 'RULES',
  'BACKFILL', 'NO', 'AND', 'NOT', 'IN', 'IS', 'NULL', 'DISTINCT', 'TRUE', 'FALSE',
];
const FUNCTIONS = [
  'count', 'sum', 'avg', 'min', 'max', 'first', 'last', 'percentile', 'approx_count_distinct',
  'timeseries', 'start', 'end',
];
const KW = new Set(KEYWORDS.map((k) => k.toLowerCase()));
const FN = new Set(FUNCTIONS);

const weirMode = {
  name: 'weir',
  token(stream) {
    if (stream.eatSpace()) return null;
    if (stream.match('--')) {
      stream.skipToEnd();
      return 'comment';
    }
    if (stream.match(/^'(?:[^']|'')*'?/)) return 'string';
    if (stream.match(/^\d+(?:\.\d+)?(?:ms|sec|min|hour|day|s|m|h|d|w)\b/i)) return 'unit';
    if (stream.match(/^\d+(?:\.\d+)?/)) return 'number';
    if (stream.match(/^[A-Za-z_]\w*(?:@\w+)?/)) {
      const w = stream.current().toLowerCase();
      if (KW.has(w)) return 'keyword';
      if (FN.has(w) && stream.match(/^\s*\(/, false)) return 'variableName.function';
      return 'variableName';
    }
    if (stream.match(/^(=~|<>|!=|<=|>=|[=<>+\-*/])/)) return 'operator';
    stream.next();
    return 'punctuation';
  },
  languageData: { commentTokens: { line: '--' } },
};

/** The language extension. */
export const weirLanguage = StreamLanguage.define(weirMode);

/** Colours for the tokens above. */
export const weirHighlight = syntaxHighlighting(
  HighlightStyle.define([
    { tag: t.keyword, color: '#7c3aed', fontWeight: '600' },
    { tag: t.string, color: '#047857' },
    { tag: t.number, color: '#b45309' },
    { tag: t.unit, color: '#b45309', fontWeight: '600' },
    { tag: t.comment, color: '#64748b', fontStyle: 'italic' },
    { tag: t.function(t.variableName), color: '#1d4ed8' },
    { tag: t.operator, color: '#be123c' },
  ]),
);

/**
 * A completion source: keywords, functions and the names `words()` returns (queries, event
 * types, fields), for the word before the cursor.
 */
export function completions(words) {
  return (ctx) => {
    const w = ctx.matchBefore(/[\w@:.]+/);
    if (!w || (w.from === w.to && !ctx.explicit)) return null;
    const extra = words();
    return {
      from: w.from,
      validFor: /^[\w@:.]*$/,
      options: [
        ...KEYWORDS.map((k) => ({ label: k, type: 'keyword' })),
        ...FUNCTIONS.map((f) => ({ label: f, type: 'function', apply: `${f}(` })),
        ...extra.queries.map((q) => ({ label: q, type: 'class', detail: 'query' })),
        ...extra.types.map((q) => ({ label: q, type: 'type', detail: 'event type' })),
        ...extra.fields.map((q) => ({ label: q, type: 'property', detail: 'field' })),
        ...['1s', '10s', '1min', '5min', '1h', '1d'].map((d) => ({ label: d, type: 'constant', detail: 'duration' })),
      ],
    };
  };
}
