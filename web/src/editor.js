// The DSL editor: CodeMirror 6 with Weir highlighting and completion. "Apply" (or Ctrl/Cmd
// + Enter) posts the text to /api/statements; an error is marked at the line and column the
// API answers, with its message; while a create backfills, its progress is shown here.

import { EditorState } from '@codemirror/state';
import { EditorView, keymap, lineNumbers, highlightActiveLine, drawSelection } from '@codemirror/view';
import { defaultKeymap, history, historyKeymap, indentWithTab } from '@codemirror/commands';
import { autocompletion, completionKeymap, closeBrackets } from '@codemirror/autocomplete';
import { setDiagnostics, lintGutter } from '@codemirror/lint';
import { bracketMatching } from '@codemirror/language';
import { api } from './api.js';
import { h, fill, num, table, keyText } from './dom.js';
import { state, refresh } from './live.js';
import { weirLanguage, weirHighlight, completions } from './dsl.js';
import { statusCell } from './progress.js';
import { ruleQuery } from './model.js';

const DRAFT = 'weir.editorDraft';
const EXAMPLE = `-- Orders per seller, one row per minute (a tumbling series).
CREATE OR REPLACE QUERY orders_per_minute AS
  SELECT count(*) AS orders, sum(amount) AS sales
  FROM neworder
  GROUP BY seller, timeseries(time, 1min);
`;

let view;
let root;
let words = { queries: [], types: [], fields: [] };

export function mount(el) {
  root = el;
  const applyBtn = h('button', { id: 'apply', type: 'button', class: 'primary', onclick: apply }, 'Apply');
  fill(
    el,
    h('h2', { id: 'h-editor' }, 'Editor'),
    h('p', { class: 'muted', id: 'editor-help' },
      'Statements separated by ; — CREATE [OR REPLACE] QUERY, CREATE RULE, DROP, SHOW, or a bare SELECT over the stored events. ',
      h('kbd', {}, 'Ctrl'), '+', h('kbd', {}, 'Enter'), ' applies; ', h('kbd', {}, 'Ctrl'), '+', h('kbd', {}, 'Space'),
      ' completes; ', h('kbd', {}, 'Esc'), ' then ', h('kbd', {}, 'Tab'), ' leaves the editor.'),
    h('div', { class: 'editor-label', id: 'editor-label' }, 'Statements'),
    h('div', { id: 'editor', class: 'editor' }),
    h('div', { class: 'row' }, applyBtn,
      h('button', { type: 'button', onclick: () => setText(EXAMPLE) }, 'Insert example')),
    h('div', { id: 'editor-error', class: 'error-box', role: 'alert', hidden: true }),
    h('div', { id: 'editor-progress', 'aria-live': 'polite' }),
    h('div', { id: 'editor-results', class: 'table-wrap', 'aria-live': 'polite' }),
  );
  let draft = '';
  try {
    draft = localStorage.getItem(DRAFT) || '';
  } catch {
    draft = '';
  }
  view = new EditorView({
    parent: el.querySelector('#editor'),
    state: EditorState.create({
      doc: draft || EXAMPLE,
      extensions: [
        lineNumbers(),
        history(),
        drawSelection(),
        highlightActiveLine(),
        bracketMatching(),
        closeBrackets(),
        lintGutter(),
        weirLanguage,
        weirHighlight,
        autocompletion({ override: [completions(() => words)] }),
        keymap.of([
          { key: 'Mod-Enter', run: () => { apply(); return true; } },
          ...completionKeymap,
          ...defaultKeymap,
          ...historyKeymap,
          indentWithTab,
        ]),
        EditorView.contentAttributes.of({ 'aria-labelledby': 'editor-label', 'aria-describedby': 'editor-help' }),
        EditorView.updateListener.of((u) => {
          if (u.docChanged) {
            try {
              localStorage.setItem(DRAFT, u.state.doc.toString());
            } catch {
              /* storage full or off: the draft is just not kept */
            }
          }
        }),
      ],
    }),
  });
  loadWords();
}

export function show(arg = []) {
  if (arg[0]) {
    const q = state.queries.find((x) => x.name === arg[0]) || state.rules.find((r) => r.name === arg[0] || ruleQuery(r) === arg[0]);
    if (q) setText(q.text.trim().endsWith(';') ? `${q.text.trim()}\n` : `${q.text.trim()};\n`);
  }
  loadWords();
  setTimeout(() => view && view.focus(), 0);
}

function setText(text) {
  view.dispatch({ changes: { from: 0, to: view.state.doc.length, insert: text } });
  view.dispatch(setDiagnostics(view.state, []));
}

async function loadWords() {
  try {
    const k = await api('/api/keys');
    words = {
      queries: state.queries.map((q) => q.name),
      types: ((k && k.types) || []).map((x) => x.type),
      fields: ((k && k.keys) || []).map((x) => x.key),
    };
  } catch {
    words = { ...words, queries: state.queries.map((q) => q.name) };
  }
}

/** The document offset of a 1-based line and column (clamped into the document). */
function offsetOf(doc, line, column) {
  const l = doc.line(Math.min(Math.max(1, line), doc.lines));
  return Math.min(l.from + Math.max(0, column - 1), l.to);
}

let applying = false;
async function apply() {
  if (applying) return;
  applying = true;
  const btn = root.querySelector('#apply');
  btn.disabled = true;
  btn.textContent = 'Applying…';
  const errBox = root.querySelector('#editor-error');
  errBox.hidden = true;
  view.dispatch(setDiagnostics(view.state, []));
  const text = view.state.doc.toString();
  const poll = setInterval(showProgress, 300);
  try {
    const res = await api('/api/statements', { text });
    showResults((res && res.results) || []);
  } catch (e) {
    showError(e);
  } finally {
    clearInterval(poll);
    fill(root.querySelector('#editor-progress'));
    applying = false;
    btn.disabled = false;
    btn.textContent = 'Apply';
    refresh();
    loadWords();
  }
}

async function showProgress() {
  try {
    const list = ((await api('/api/queries')) || {}).queries || [];
    const running = list.filter((q) => q.status === 'backfilling');
    fill(root.querySelector('#editor-progress'), running.map((q) => h('p', {}, h('code', {}, q.name), ' ', statusCell(q))));
  } catch {
    /* the next poll will tell */
  }
}

function showError(e) {
  const errBox = root.querySelector('#editor-error');
  const b = e.body || {};
  const where = b.line ? `line ${b.line}, column ${b.column}: ` : '';
  fill(errBox, h('p', { id: 'editor-error-message' }, h('strong', {}, `Error (HTTP ${e.status})`), ' ', where, e.message),
    b.detail ? h('pre', {}, b.detail) : null);
  errBox.dataset.line = b.line || '';
  errBox.dataset.column = b.column || '';
  errBox.hidden = false;
  fill(root.querySelector('#editor-results'));
  if (b.line) {
    const doc = view.state.doc;
    const from = offsetOf(doc, b.line, b.column || 1);
    const lineEnd = doc.lineAt(from).to;
    const word = /^[\w@:.']+/.exec(doc.sliceString(from, lineEnd));
    const to = Math.min(lineEnd, from + (word ? word[0].length : 1));
    view.dispatch(setDiagnostics(view.state, [{ from, to: Math.max(to, from), severity: 'error', message: e.message }]));
    view.dispatch({ selection: { anchor: from }, scrollIntoView: true });
  }
}

function showResults(results) {
  fill(
    root.querySelector('#editor-results'),
    h('h3', {}, 'Applied'),
    h('ul', { id: 'statement-results' }, results.map((r) =>
      h('li', {}, h('code', {}, r.statement), r.name ? [' ', h('b', {}, r.name)] : null,
        r.replaced ? ' (replaced)' : null,
        r.backfilled !== undefined ? ` · backfilled ${num(r.backfilled)} events` : null,
        r.status ? ` · ${r.status}` : null))),
    results.filter((r) => r.rows).map((r) => {
      const cols = [...new Set(r.rows.flatMap((x) => Object.keys(x.values || {})))];
      return table(`${r.rows.length} rows`, [['key', (x) => keyText(x.key)], ...cols.map((c) => [c, (x) => num((x.values || {})[c])])], r.rows.slice(0, 500));
    }),
    results.filter((r) => r.queries || r.rules).map((r) => h('pre', {}, (r.queries || r.rules).map((x) => x.text).join('\n\n'))),
  );
}
