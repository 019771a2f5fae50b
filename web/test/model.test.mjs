// Unit tests of what the console reads from query texts and /metrics (no browser needed).

import { it } from 'node:test';
import assert from 'node:assert/strict';
import { durationMs, queryShape, ruleQuery, ruleCondition, parseMetrics, metricSum } from '../src/model.js';

it('reads durations in every unit the language accepts', () => {
  const cases = { '500ms': 500, '10s': 10000, '10sec': 10000, '5min': 300000, '5m': 300000, '1h': 3600000, '2hour': 7200000, '1d': 86400000, '1day': 86400000, '1w': 604800000 };
  for (const [t, ms] of Object.entries(cases)) assert.equal(durationMs(t), ms, t);
  assert.equal(durationMs('5 parsecs'), undefined);
  assert.equal(durationMs(''), undefined);
});

it('tells sliding windows, series, views and totals apart', () => {
  assert.deepEqual(queryShape("CREATE RULE r AS SELECT count(*) AS n FROM neworder WHERE seller = 'a,b' GROUP BY seller, timeseries(time, 1s, 1min) DENY WHEN n > 100"), { kind: 'sliding', g: 1000, w: 60000 });
  assert.deepEqual(queryShape('CREATE QUERY q AS SELECT count(*) FROM x GROUP BY seller, TimeSeries( time ,1min )'), { kind: 'series', g: 60000, w: undefined });
  assert.deepEqual(queryShape('series@5min = select start(time), symbol, price from raw group by timeseries(time, 5min), symbol'), { kind: 'series', g: 300000, w: undefined });
  assert.deepEqual(queryShape('last30min@5min = select * from series_5min(30min)'), { kind: 'view', source: 'series_5min', w: 1800000, g: 300000 });
  assert.deepEqual(queryShape('CREATE QUERY v AS SELECT * FROM series_5min(30min)'), { kind: 'view', source: 'series_5min', w: 1800000, g: undefined });
  assert.deepEqual(queryShape('CREATE QUERY t AS SELECT count(*) FROM x GROUP BY k -- timeseries(time, 1s)'), { kind: 'total' });
});

it('finds the query a rule reads and its condition', () => {
  assert.equal(ruleQuery({ name: 'r', text: 'CREATE RULE r ON orders_1min DENY WHEN orders > 5' }), 'orders_1min');
  assert.equal(ruleQuery({ name: 'r', text: 'CREATE RULE r AS SELECT count(*) AS n FROM on_x GROUP BY k DENY WHEN n > 5' }), 'rule:r');
  assert.equal(ruleCondition({ text: 'CREATE RULE r AS SELECT x FROM y\n  DENY WHEN sales >\n 10000;' }), 'sales > 10000');
});

it('parses Prometheus text and sums samples by label', () => {
  const m = parseMetrics('# HELP x\n# TYPE weir_decisions_total counter\nweir_decisions_total{decision="allow"} 7\nweir_decisions_total{decision="deny",rule="a\\"b"} 2\nweir_log_records 1.5e3\n');
  assert.equal(metricSum(m, 'weir_decisions_total'), 9);
  assert.equal(metricSum(m, 'weir_decisions_total', { decision: 'deny' }), 2);
  assert.equal(metricSum(m, 'weir_log_records'), 1500);
  assert.equal(metricSum(m, 'missing'), 0);
});
