//! `weir replay`: run DSL statements over an events file, with no storage and no server,
//! and write the results.
//!
//! The statements are applied to a fresh [`Engine`] and [`RuleSet`] as `POST
//! /api/statements` would apply them to an empty server; every event of the file is then fed
//! through the engine in file order, and the results are written ([`output`]):
//! - at the end, each query's rows as `GET /api/queries/{name}/result` answers them at the
//!   last event's time (sliding: the window ending there; tumbling: every retained bucket;
//!   no time window: one row per key);
//! - with `--emit windows`, before those, every window as it closes: a window (a sliding
//!   query's window at every slide position, the HOP rows, or a tumbling query's bucket) is
//!   written when the first event at or after its end is read, from the events read before
//!   that one, and the windows still open are written at the end of the file. That is what
//!   Flink's `HOP`/`TUMBLE` emits with the watermark at the largest event time read and no
//!   allowed lateness;
//! - with rules, every event goes through `add_and_check` (a denied event is counted in no
//!   query), and `--decisions` writes each event's decision in file order.
//!
//! # Layout
//! - this file: the flags, the statements, the loop and its summary.
//! - [`input`]: NDJSON and CSV events files, read line by line.
//! - [`output`]: result rows, window rows and decisions as JSON lines or CSV.

pub mod input;
pub mod output;

use std::fs::File;
use std::io::{BufRead, BufReader, BufWriter, IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use weir_core::Event;
use weir_engine::{Engine, EngineConfig, ReadRequest, TimeShape};
use weir_query_lang::ast::{RuleSource, Statement};
use weir_query_lang::{parse_and_analyze, AnalyzerConfig, Catalog, QueryShape};
use weir_rules::RuleSet;

use input::{BadLine, CsvColumns, EventReader, InputFormat};
use output::{CsvHeader, Output, OutputFormat, RowKind};

/// Events parsed per batch handed to the engine; parse and apply are
/// timed per batch, not per event.
const BATCH: usize = 4096;

/// What to write besides the final results.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Emit {
    /// Only each query's rows at the end of the file.
    Results,
    /// Also every window as it closes (HOP-style for sliding queries), before the results.
    Windows,
}

/// Flags of `weir replay`.
#[derive(Debug, clap::Args)]
pub struct ReplayArgs {
    /// The DSL statements (CREATE QUERY, CREATE RULE, the shorthand forms; `;` between).
    #[arg(long, short = 's', value_name = "FILE")]
    pub statements: PathBuf,
    /// The events: NDJSON (any event shape per line) or CSV; `-` reads stdin.
    #[arg(value_name = "EVENTS")]
    pub events: PathBuf,
    /// Format of the events (default: from the extension, `.csv` or NDJSON).
    #[arg(long, value_enum)]
    pub format: Option<InputFormat>,
    /// CSV: the event type column.
    #[arg(long, default_value = "type")]
    pub type_column: String,
    /// CSV: the event time column.
    #[arg(long, default_value = "ts")]
    pub time_column: String,
    /// Where to write the results (default stdout).
    #[arg(long, short = 'o', value_name = "FILE")]
    pub output: Option<PathBuf>,
    /// How to write them.
    #[arg(long, value_enum, default_value = "jsonl")]
    pub output_format: OutputFormat,
    /// `windows`: also write every window as it closes.
    #[arg(long, value_enum, default_value = "results")]
    pub emit: Emit,
    /// Write each event's decision (rules only).
    #[arg(long)]
    pub decisions: bool,
    /// Count and report bad lines instead of stopping at the first.
    #[arg(long)]
    pub skip_bad: bool,
    /// Threads: 1 parses and applies in turn; 2 parses on a thread of its own while the
    /// engine applies (faster only when two cores are free: on a busy machine the two
    /// threads slow each other down more than they overlap).
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u8).range(1..=2))]
    pub threads: u8,
    /// No progress lines and no summary on stderr.
    #[arg(long, short = 'q')]
    pub quiet: bool,
}

/// The engine's queries as the analyzer sees them.
struct Shapes<'a>(&'a Engine);

impl Catalog for Shapes<'_> {
    fn query(&self, name: &str) -> Option<QueryShape> {
        self.0.query_shape(name)
    }
}

/// Apply a statements text to a fresh engine and rule set, as an empty server would: every
/// statement is checked before the next one, and anything that needs stored events (a bare
/// SELECT) or the server (SHOW) is refused.
pub fn apply_statements(engine: &Engine, rules: &RuleSet, text: &str) -> anyhow::Result<()> {
    let statements = parse_and_analyze(text, &Shapes(engine), &AnalyzerConfig::default())?;
    let located = |e: weir_engine::EngineError| match e {
        weir_engine::EngineError::Query(q) => anyhow::anyhow!("{}", q.with_source(text)),
        other => anyhow::anyhow!(other),
    };
    for (stmt, _) in statements {
        match &stmt {
            Statement::CreateQuery(q) => {
                let name = &q.name.name;
                if !q.or_replace() && engine.query(name).is_some() {
                    bail!(
                        "line {}: query '{name}' exists; use CREATE OR REPLACE QUERY to replace it",
                        q.name.span.line
                    );
                }
                engine.create_query(name, &q.select).map_err(located)?;
            }
            Statement::CreateRule(r) => {
                let name = &r.name.name;
                if let RuleSource::On(q) = &r.source {
                    if engine.query(&q.name).is_none() {
                        bail!(
                            "line {}: rule '{name}' reads query '{}', which does not exist",
                            q.span.line,
                            q.name
                        );
                    }
                }
                rules.create_rule(name, r).map_err(|e| match e {
                    weir_rules::RulesError::Engine(e) => located(e),
                    other => anyhow::anyhow!("line {}: {other}", r.name.span.line),
                })?;
            }
            Statement::DropQuery(d) => {
                let name = &d.name.name;
                let line = d.name.span.line;
                let (rule_readers, query_readers) = readers(engine, rules, name);
                let read = !rule_readers.is_empty() || !query_readers.is_empty();
                if read && !d.cascade {
                    let all: Vec<String> = rule_readers
                        .iter()
                        .map(|r| format!("rule '{r}'"))
                        .chain(query_readers.iter().map(|q| format!("query '{q}'")))
                        .collect();
                    bail!(
                        "line {line}: query '{name}' is read by {}; drop them first, or use DROP QUERY {name} CASCADE",
                        all.join(", ")
                    );
                }
                drop_cascade(engine, rules, name).with_context(|| format!("line {line}"))?;
            }
            Statement::DropRule(n) => rules
                .drop_rule(&n.name)
                .with_context(|| format!("line {}", n.span.line))?,
            Statement::Select(_) | Statement::ShowQueries | Statement::ShowRules => {
                bail!("`{stmt}`: replay runs only CREATE and DROP statements (a bare SELECT reads stored events, and replay stores none)")
            }
        }
    }
    Ok(())
}

/// The rules and the queries that read query `name` directly.
fn readers(engine: &Engine, rules: &RuleSet, name: &str) -> (Vec<String>, Vec<String>) {
    let rule_readers = rules
        .rules()
        .into_iter()
        .filter(|r| {
            let reads = if r.owns_query {
                engine.upstream_of(&r.query)
            } else {
                Some(r.query.clone())
            };
            reads.as_deref() == Some(name)
        })
        .map(|r| r.name)
        .collect();
    let query_readers = engine
        .query_names()
        .into_iter()
        .filter(|q| engine.upstream_of(q).as_deref() == Some(name))
        .collect();
    (rule_readers, query_readers)
}

/// Drop query `name` and everything that reads it, directly or through other queries.
fn drop_cascade(engine: &Engine, rules: &RuleSet, name: &str) -> anyhow::Result<()> {
    let (rule_readers, query_readers) = readers(engine, rules, name);
    for r in rule_readers {
        rules.drop_rule(&r)?;
    }
    for q in query_readers {
        drop_cascade(engine, rules, &q)?;
    }
    engine.drop_query(name)?;
    Ok(())
}

/// A windowed query whose windows are written as they close.
struct Closing {
    name: String,
    time: TimeShape,
    /// The last bucket of the first window not written yet (None before the first event).
    next: Option<i64>,
}

/// Writes every window as it closes (see the module docs).
struct Windows {
    queries: Vec<Closing>,
}

impl Windows {
    fn new(engine: &Engine) -> Self {
        let queries = engine
            .query_names()
            .into_iter()
            .filter_map(|name| {
                let q = engine.query(&name)?;
                let windowed = !q.is_view() && q.plan.time.granularity().is_some();
                windowed.then(|| Closing {
                    name,
                    time: q.plan.time,
                    next: None,
                })
            })
            .collect();
        Self { queries }
    }

    /// Before the event at `ts` is applied: write the windows it closes.
    #[inline]
    fn before(&mut self, engine: &Engine, ts: i64, out: &mut Output) -> anyhow::Result<()> {
        for q in &mut self.queries {
            let b = q.time.bucket(ts);
            match q.next {
                None => q.next = Some(b),
                Some(n) if b > n => {
                    write_windows(engine, q, Some(b), out)?;
                    q.next = Some(b);
                }
                Some(_) => {}
            }
        }
        Ok(())
    }

    /// At the end of the file: every window still open.
    fn finish(&mut self, engine: &Engine, out: &mut Output) -> anyhow::Result<()> {
        for q in &mut self.queries {
            if q.next.is_some() {
                write_windows(engine, q, None, out)?;
            }
        }
        Ok(())
    }
}

/// The windows of `q` whose last bucket starts in `[q.next, to)`.
fn write_windows(
    engine: &Engine,
    q: &Closing,
    to: Option<i64>,
    out: &mut Output,
) -> anyhow::Result<()> {
    let req = ReadRequest {
        from: q.next,
        to: Some(to.unwrap_or(i64::MAX)),
        ..ReadRequest::default()
    };
    for r in engine.result(&q.name, &req)? {
        out.row(RowKind::Window, &q.name, &r)?;
    }
    Ok(())
}

fn open_events(path: &Path) -> anyhow::Result<(Box<dyn BufRead + Send>, Option<u64>)> {
    const BUF: usize = 1 << 20;
    if path == Path::new("-") {
        return Ok((
            Box::new(BufReader::with_capacity(BUF, std::io::stdin())),
            None,
        ));
    }
    let f = File::open(path).with_context(|| format!("cannot open {}", path.display()))?;
    let size = f.metadata().ok().map(|m| m.len());
    Ok((Box::new(BufReader::with_capacity(BUF, f)), size))
}

fn csv_header(engine: &Engine, rules: &RuleSet, decisions: bool) -> CsvHeader {
    let mut h = CsvHeader {
        decisions,
        ..CsvHeader::default()
    };
    let add = |list: &mut Vec<String>, s: &str| {
        if !list.iter().any(|x| x == s) {
            list.push(s.to_string());
        }
    };
    for name in engine.query_names() {
        if let Some(q) = engine.query(&name) {
            for g in &q.plan.group {
                add(&mut h.keys, g);
            }
            for (c, _) in &q.plan.columns {
                add(&mut h.values, c);
            }
        }
    }
    if decisions {
        for r in rules.rules() {
            if let Some(q) = engine.query(&r.query) {
                for g in &q.plan.group {
                    add(&mut h.keys, g);
                }
            }
        }
    }
    h
}

/// Time spent per phase.
#[derive(Default)]
struct Timings {
    /// Reading and parsing (on the parse thread, overlapping the others).
    read: Duration,
    /// Waiting for the parse thread.
    wait: Duration,
    /// In the engine (and rules).
    apply: Duration,
    /// Writing rows and decisions.
    write: Duration,
}

/// Parsed events and the file line of each.
struct Batch {
    events: Vec<Event>,
    lines: Vec<u64>,
    /// Bytes of the file read up to the end of this batch.
    bytes: u64,
}

/// From the parse thread, in file order.
enum Msg {
    Batch(Batch),
    Bad(BadLine),
    Io(std::io::Error),
    /// The end of the file, with the time spent reading and parsing.
    End(Duration),
}

/// Fill `b` with up to [`BATCH`] events; what ended it early, if anything: `Some(None)` at
/// the end of the file, `Some(Some(msg))` for a bad line or a read error.
fn fill(reader: &mut EventReader, b: &mut Batch) -> Option<Option<Msg>> {
    while b.events.len() < BATCH {
        let before = b.events.len();
        match reader.next_into(&mut b.events) {
            Ok(Some(line)) => b
                .lines
                .resize(b.lines.len() + b.events.len() - before, line),
            Ok(None) => return Some(None),
            Err(Ok(bad)) => return Some(Some(Msg::Bad(bad))),
            Err(Err(e)) => return Some(Some(Msg::Io(e))),
        }
    }
    None
}

fn empty_batch() -> Batch {
    Batch {
        events: Vec::with_capacity(BATCH + 64),
        lines: Vec::with_capacity(BATCH + 64),
        bytes: 0,
    }
}

/// The parse thread: batches of up to [`BATCH`] events, bad lines and the end, in file
/// order, until the file ends or the engine side stops listening.
fn parse_loop(
    mut reader: EventReader,
    to_engine: std::sync::mpsc::SyncSender<Msg>,
    empties: std::sync::mpsc::Receiver<Batch>,
) {
    let mut busy = Duration::ZERO;
    loop {
        let t0 = Instant::now();
        let mut b = empties.try_recv().unwrap_or_else(|_| empty_batch());
        b.events.clear();
        b.lines.clear();
        let end = fill(&mut reader, &mut b);
        b.bytes = reader.bytes();
        busy += t0.elapsed();
        if !b.events.is_empty() && to_engine.send(Msg::Batch(b)).is_err() {
            return;
        }
        let stop = match end {
            None => false,
            Some(Some(msg)) => to_engine.send(msg).is_err(),
            Some(None) => {
                let _ = to_engine.send(Msg::End(busy));
                true
            }
        };
        if stop {
            return;
        }
    }
}

/// Where parsed batches come from: the parse thread, or this thread between batches.
enum Source {
    Thread {
        batches: std::sync::mpsc::Receiver<Msg>,
        give_back: std::sync::mpsc::Sender<Batch>,
        parser: std::thread::JoinHandle<()>,
    },
    Inline {
        reader: Box<EventReader>,
        pending: Option<Msg>,
        spare: Option<Batch>,
        busy: Duration,
    },
}

impl Source {
    fn new(reader: EventReader, thread: bool) -> std::io::Result<Self> {
        if !thread {
            return Ok(Source::Inline {
                reader: Box::new(reader),
                pending: None,
                spare: None,
                busy: Duration::ZERO,
            });
        }
        let (to_engine, batches) = std::sync::mpsc::sync_channel::<Msg>(4);
        let (give_back, empties) = std::sync::mpsc::channel::<Batch>();
        let parser = std::thread::Builder::new()
            .name("replay-parse".into())
            .spawn(move || parse_loop(reader, to_engine, empties))?;
        Ok(Source::Thread {
            batches,
            give_back,
            parser,
        })
    }

    fn next(&mut self) -> Msg {
        match self {
            Source::Thread { batches, .. } => batches.recv().unwrap_or(Msg::End(Duration::ZERO)),
            Source::Inline {
                reader,
                pending,
                spare,
                busy,
            } => {
                if let Some(m) = pending.take() {
                    return m;
                }
                let t0 = Instant::now();
                let mut b = spare.take().unwrap_or_else(empty_batch);
                b.events.clear();
                b.lines.clear();
                let end = fill(reader, &mut b);
                b.bytes = reader.bytes();
                *busy += t0.elapsed();
                let after = match end {
                    None => None,
                    Some(Some(msg)) => Some(msg),
                    Some(None) => Some(Msg::End(*busy)),
                };
                if b.events.is_empty() {
                    *spare = Some(b);
                    return after.expect("a batch ends early only for a reason");
                }
                *pending = after;
                Msg::Batch(b)
            }
        }
    }

    fn give_back(&mut self, b: Batch) {
        match self {
            Source::Thread { give_back, .. } => {
                let _ = give_back.send(b);
            }
            Source::Inline { spare, .. } => *spare = Some(b),
        }
    }

    fn close(self) {
        if let Source::Thread {
            batches, parser, ..
        } = self
        {
            drop(batches);
            let _ = parser.join();
        }
    }
}

/// Run `weir replay`.
pub fn run(args: ReplayArgs) -> anyhow::Result<()> {
    let started = Instant::now();
    let text = std::fs::read_to_string(&args.statements)
        .with_context(|| format!("cannot read {}", args.statements.display()))?;
    // One shard: replay is one thread, so the shards' locks never contend.
    let engine = Arc::new(Engine::new(EngineConfig {
        shards: 1,
        ..EngineConfig::default()
    }));
    let rules = RuleSet::new(engine.clone());
    apply_statements(&engine, &rules, &text)
        .with_context(|| format!("in {}", args.statements.display()))?;
    if engine.query_names().is_empty() && rules.rule_names().is_empty() {
        bail!("{} defines no query and no rule", args.statements.display());
    }
    let has_rules = !rules.rule_names().is_empty();
    if args.decisions && !has_rules {
        bail!("--decisions: {} defines no rule", args.statements.display());
    }
    let format = args.format.unwrap_or_else(|| {
        let csv = args
            .events
            .extension()
            .is_some_and(|e| e.eq_ignore_ascii_case("csv"));
        if csv {
            InputFormat::Csv
        } else {
            InputFormat::Ndjson
        }
    });
    let (src, size) = open_events(&args.events)?;
    let columns = CsvColumns {
        kind: args.type_column.clone(),
        time: args.time_column.clone(),
    };
    let reader = EventReader::new(src, format, columns);
    let sink: Box<dyn Write> = match &args.output {
        None => Box::new(BufWriter::with_capacity(1 << 20, std::io::stdout().lock())),
        Some(p) => Box::new(BufWriter::with_capacity(
            1 << 20,
            File::create(p).with_context(|| format!("cannot create {}", p.display()))?,
        )),
    };
    let header = (args.output_format == OutputFormat::Csv)
        .then(|| csv_header(&engine, &rules, args.decisions));
    let mut out = Output::new(sink, header)?;
    let mut windows = (args.emit == Emit::Windows).then(|| Windows::new(&engine));

    let mut t = Timings::default();
    let mut events: u64 = 0;
    let mut bad: u64 = 0;
    let mut first_bad: Option<BadLine> = None;
    let mut progress = ProgressLine::new(!args.quiet, size);
    // With --threads 2, lines are read and parsed on their own thread, a batch at a time,
    // while this one applies the previous batch; emptied batches go back to be refilled.
    let mut source = Source::new(reader, args.threads > 1)?;
    let result = (|| -> anyhow::Result<()> {
        loop {
            let t0 = Instant::now();
            let msg = source.next();
            t.wait += t0.elapsed();
            let b = match msg {
                Msg::Batch(b) => b,
                Msg::Bad(b) if args.skip_bad => {
                    bad += 1;
                    first_bad.get_or_insert(b);
                    continue;
                }
                Msg::Bad(b) => bail!("{}: {b}", args.events.display()),
                Msg::Io(e) => {
                    return Err(e).with_context(|| format!("reading {}", args.events.display()))
                }
                Msg::End(parse) => {
                    t.read = parse;
                    return Ok(());
                }
            };
            let t1 = Instant::now();
            let mut wrote = Duration::ZERO;
            for (ev, &line) in b.events.iter().zip(&b.lines) {
                if let Some(w) = &mut windows {
                    let n = out.counts[0];
                    let tw = Instant::now();
                    w.before(&engine, ev.ts, &mut out)?;
                    if out.counts[0] != n {
                        wrote += tw.elapsed();
                    }
                }
                if has_rules {
                    let (_, d) = rules.add_and_check(ev, |_| 0);
                    if args.decisions {
                        let tw = Instant::now();
                        out.decision(line, &d)?;
                        wrote += tw.elapsed();
                    }
                } else {
                    engine.apply(ev, || 0);
                }
            }
            events += b.events.len() as u64;
            t.apply += t1.elapsed().saturating_sub(wrote);
            t.write += wrote;
            progress.tick(events, b.bytes);
            // The batch goes back whole: its events are freed on the thread that made them
            // (freeing another thread's allocations is markedly slower).
            source.give_back(b);
        }
    })();
    source.close();
    result?;
    if args.threads <= 1 {
        // Inline, the wait for a batch was the parsing itself.
        t.wait = Duration::ZERO;
    }
    let tw = Instant::now();
    if let Some(w) = &mut windows {
        w.finish(&engine, &mut out)?;
    }
    for name in engine.query_names() {
        for r in engine.result(&name, &ReadRequest::default())? {
            out.row(RowKind::Result, &name, &r)?;
        }
    }
    out.flush()?;
    t.write += tw.elapsed();

    progress.done();
    if !args.quiet {
        let secs = started.elapsed().as_secs_f64();
        let late: u64 = engine.metrics().iter().map(|m| m.late_dropped).sum();
        eprintln!(
            "replay: {events} events in {secs:.2} s ({:.0} events/s); reading and parsing {:.2} s{}, \
             engine {:.2} s, waiting for parsed events {:.2} s, writing {:.2} s; \
             wrote {} windows, {} result rows, {} decisions{}",
            events as f64 / secs.max(1e-9),
            t.read.as_secs_f64(),
            if args.threads > 1 { " (on its own thread)" } else { "" },
            t.apply.as_secs_f64(),
            t.wait.as_secs_f64(),
            t.write.as_secs_f64(),
            out.counts[0],
            out.counts[1],
            out.counts[2],
            if late > 0 {
                format!("; {late} late events dropped (older than their query's retention)")
            } else {
                String::new()
            }
        );
    }
    if bad > 0 {
        eprintln!(
            "replay: skipped {bad} bad line(s); the first: {}",
            first_bad.expect("a bad line")
        );
    }
    Ok(())
}

/// A progress line on stderr at most once a second: events, events/s and how much of the
/// file is read.
struct ProgressLine {
    on: bool,
    size: Option<u64>,
    start: Instant,
    last: Instant,
    tty: bool,
    shown: bool,
}

impl ProgressLine {
    fn new(on: bool, size: Option<u64>) -> Self {
        let now = Instant::now();
        Self {
            on,
            size,
            start: now,
            last: now,
            tty: std::io::stderr().is_terminal(),
            shown: false,
        }
    }

    fn tick(&mut self, events: u64, bytes: u64) {
        if !self.on || self.last.elapsed() < Duration::from_secs(1) {
            return;
        }
        self.last = Instant::now();
        let rate = events as f64 / self.start.elapsed().as_secs_f64();
        let pct = self
            .size
            .filter(|s| *s > 0)
            .map(|s| format!(", {:.0}% of the file", 100.0 * bytes as f64 / s as f64))
            .unwrap_or_default();
        let text = format!("replay: {events} events, {rate:.0} events/s{pct}");
        if self.tty {
            eprint!("\r{text}\x1b[K");
            self.shown = true;
        } else {
            eprintln!("{text}");
        }
    }
}

impl ProgressLine {
    /// End the line a terminal was showing.
    fn done(&mut self) {
        if self.shown {
            eprintln!();
            self.shown = false;
        }
    }
}

impl Drop for ProgressLine {
    fn drop(&mut self) {
        self.done();
    }
}
