// Time charts on uPlot: line series, count bars and a duration scatter.

import uPlot from 'uplot';
import 'uplot/dist/uPlot.min.css';
import { colour, num } from './dom';
import type { PromSeries } from './api';
import { seriesName } from './api';

// Canvas strokes cannot use CSS variables.
const MUTED = '#656d76';
const GRID = '#eaeef2';

export interface Line {
  label: string;
  points: [number, number][]; // [unix seconds, value]
  colour?: string;
}

interface Common {
  height?: number;
  unit?: string;
  /** Called with a range (Unix ms) when the user drags across the chart. */
  onSelect?: (start: number, end: number) => void;
  legend?: boolean;
}

function base(el: HTMLElement, o: Common): Partial<uPlot.Options> {
  return {
    width: Math.max(200, el.clientWidth || 600),
    height: o.height ?? 200,
    legend: { show: o.legend ?? true },
    cursor: { drag: { x: true, y: false } },
    axes: [
      { stroke: MUTED, grid: { stroke: GRID }, ticks: { stroke: GRID } },
      { stroke: MUTED, grid: { stroke: GRID }, ticks: { stroke: GRID }, size: 56, values: (_u, vals) => vals.map((v) => num(v, o.unit)) },
    ],
    hooks: {
      setSelect: [
        (u) => {
          if (!o.onSelect || u.select.width < 4) return;
          const start = u.posToVal(u.select.left, 'x') * 1000;
          const end = u.posToVal(u.select.left + u.select.width, 'x') * 1000;
          u.setSelect({ left: 0, top: 0, width: 0, height: 0 }, false);
          o.onSelect(start, end);
        },
      ],
    },
  };
}

/** Keeps a chart as wide as its container. */
function track(el: HTMLElement, plot: uPlot): uPlot {
  const observer = new ResizeObserver(() => {
    if (!el.isConnected) return observer.disconnect();
    if (el.clientWidth && Math.abs(el.clientWidth - plot.width) > 2) plot.setSize({ width: el.clientWidth, height: plot.height });
  });
  observer.observe(el);
  return plot;
}

/** Line series on a shared time axis; points missing from a series are gaps. */
export function lines(el: HTMLElement, series: Line[], o: Common & { range?: [number, number] } = {}): uPlot {
  const times = [...new Set(series.flatMap((s) => s.points.map((p) => p[0])))].sort((a, b) => a - b);
  const index = new Map(times.map((t, i) => [t, i]));
  const data: (number | null)[][] = [times];
  for (const s of series) {
    const ys: (number | null)[] = new Array(times.length).fill(null);
    for (const [t, v] of s.points) ys[index.get(t)!] = Number.isFinite(v) ? v : null;
    data.push(ys);
  }
  const opts = {
    ...base(el, o),
    scales: o.range ? { x: { time: true, range: o.range } } : { x: { time: true } },
    series: [
      {},
      ...series.map((s) => ({
        label: s.label,
        stroke: s.colour ?? colour(s.label),
        width: 1.5,
        spanGaps: false,
        value: (_u: uPlot, v: number | null) => (v === null ? '–' : num(v, o.unit)),
      })),
    ],
  } as uPlot.Options;
  return track(el, new uPlot(opts, data as uPlot.AlignedData, el));
}

/** Prometheus range results as chart lines. */
export function promLines(result: PromSeries[], prefix = ''): Line[] {
  return result.map((s) => ({
    label: prefix + seriesName(s.metric),
    points: (s.values ?? []).map(([t, v]) => [t, Number(v)] as [number, number]),
  }));
}

/** Counts per time bucket as bars (log histogram). */
export function bars(el: HTMLElement, times: number[], counts: number[], o: Common = {}): uPlot {
  const opts = {
    ...base(el, { ...o, legend: false }),
    scales: { x: { time: true } },
    series: [{}, { label: 'lines', fill: '#1f6feb66', stroke: '#1f6feb', paths: uPlot.paths.bars!({ size: [0.9, 40] }), points: { show: false } }],
  } as uPlot.Options;
  return track(el, new uPlot(opts, [times, counts], el));
}

export interface Dot {
  t: number; // unix seconds
  y: number; // value (duration in ms)
  error: boolean;
  id: string;
}

/** Points on a time axis (trace durations); clicking one calls `onPick` with its id. */
export function scatter(el: HTMLElement, dots: Dot[], onPick: (id: string) => void, o: Common = {}): uPlot {
  const sorted = [...dots].sort((a, b) => a.t - b.t);
  const ok = sorted.map((d) => (d.error ? null : d.y));
  const failed = sorted.map((d) => (d.error ? d.y : null));
  const point = (stroke: string) => ({ stroke, fill: stroke, paths: () => null, points: { show: true, size: 7 } });
  const opts = {
    ...base(el, o),
    scales: { x: { time: true } },
    cursor: { drag: { x: true, y: false }, points: { size: 9 } },
    series: [{}, { label: 'ok', ...point('#1f6feb') }, { label: 'error', ...point('#d1242f') }],
  } as uPlot.Options;
  const plot = new uPlot(opts, [sorted.map((d) => d.t), ok, failed] as uPlot.AlignedData, el);
  plot.over.addEventListener('click', () => {
    const i = plot.cursor.idx;
    if (i !== null && i !== undefined && sorted[i]) onPick(sorted[i].id);
  });
  return track(el, plot);
}
