// A thin wrapper around uPlot: time series in, a responsive chart out.

import uPlot from 'uplot';

const COLORS = ['#1d4ed8', '#dc2626', '#059669', '#d97706', '#7c3aed', '#db2777', '#0891b2', '#65a30d', '#9333ea', '#475569'];

/**
 * Draw (or update) a chart in `el`: `xs` are unix ms, `series` are [{label, values}] aligned
 * with `xs` (null where a key has no row); `opts.xRange` [from, to] in unix ms fixes the
 * x axis, `opts.bars` draws bars, `opts.height` sets the height. Returns the uPlot instance kept on the element.
 */
export function plot(el, xs, series, opts = {}) {
  const labels = series.map((s) => s.label).join('\u0000');
  el._xr = opts.xRange ? opts.xRange.map((x) => x / 1000) : null;
  const data = [xs.map((x) => x / 1000), ...series.map((s) => s.values)];
  const width = Math.max(280, el.clientWidth || 600);
  const height = opts.height || Math.min(320, Math.max(200, Math.round(width * 0.4)));
  let u = el._uplot;
  if (u && el._labels === labels && !opts.bars === !el._bars) {
    u.setData(data);
    if (u.width !== width) u.setSize({ width, height });
    return u;
  }
  if (u) u.destroy();
  const points = xs.length < 60;
  u = new uPlot(
    {
      width,
      height,
      legend: { live: true },
      cursor: { drag: { x: true, y: false } },
      scales: { x: { time: !opts.bars, range: (self, min, max) => xRange(el, min, max) }, y: { range: (self, min, max) => [Math.min(0, min ?? 0), (max ?? 1) > 0 ? max * 1.1 : 1] } },
      axes: [{}, { size: 60 }],
      series: [
        { label: opts.bars ? 'key' : 'time' },
        ...series.map((s, i) => ({
          label: s.label,
          stroke: COLORS[i % COLORS.length],
          fill: opts.bars ? `${COLORS[i % COLORS.length]}55` : undefined,
          width: 2,
          spanGaps: false,
          points: { show: points || opts.bars, size: 6 },
          paths: opts.bars ? uPlot.paths.bars({ size: [0.6, 60] }) : undefined,
        })),
      ],
    },
    data,
    el,
  );
  el._uplot = u;
  el._labels = labels;
  el._bars = !!opts.bars;
  return u;
}

/** The x range: the one asked for (a chart's chosen time range), else the data's (widened
 * around a single point, which uPlot would otherwise stretch over years). */
function xRange(el, min, max) {
  if (el._xr) return el._xr;
  if (min === null || max === null) return [0, 1];
  return min === max ? [min - 60, max + 60] : [min, max];
}

/** Keep charts as wide as their boxes. */
export function resizeAll() {
  document.querySelectorAll('.plot').forEach((el) => {
    const u = el._uplot;
    if (u && el.clientWidth && u.width !== el.clientWidth) u.setSize({ width: el.clientWidth, height: u.height });
  });
}
window.addEventListener('resize', resizeAll);
