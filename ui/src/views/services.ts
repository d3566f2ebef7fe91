// Services overview: request rate, error rate and latency percentiles per
// service from the span-derived metrics, with a small chart of each.

import { get, promInstant, promRange, type PromSeries } from '../api';
import { lines } from '../chart';
import { EMPTY_INGEST, colour, duration, fill, h, notice, num } from '../dom';
import { href, rateWindow, step } from '../route';
import type { Ctx, View } from '../view';

const ENTRY = 'span_kind=~"SPAN_KIND_SERVER|SPAN_KIND_CONSUMER"';

const queries = (w: string) => ({
  rate: `sum by (service) (rate(traces_spanmetrics_calls_total{${ENTRY}}[${w}]))`,
  errors: `sum by (service) (rate(traces_spanmetrics_calls_total{${ENTRY}, status_code="STATUS_CODE_ERROR"}[${w}]))`,
  p50: `histogram_quantile(0.5, sum by (service, le) (rate(traces_spanmetrics_latency_bucket{${ENTRY}}[${w}])))`,
  p95: `histogram_quantile(0.95, sum by (service, le) (rate(traces_spanmetrics_latency_bucket{${ENTRY}}[${w}])))`,
  p99: `histogram_quantile(0.99, sum by (service, le) (rate(traces_spanmetrics_latency_bucket{${ENTRY}}[${w}])))`,
});

type Figures = Record<keyof ReturnType<typeof queries>, number>;

function byService(result: PromSeries[]): Map<string, number> {
  return new Map(result.map((s) => [s.metric.service ?? '', Number(s.value?.[1] ?? NaN)]));
}

function pointsOf(result: PromSeries[], service: string): [number, number][] {
  const s = result.find((r) => r.metric.service === service);
  return (s?.values ?? []).map(([t, v]) => [t, Number(v)]);
}

export const services: View = {
  title: 'Services',
  timed: true,
  async render(ctx: Ctx) {
    const { range } = ctx;
    const w = rateWindow(range);
    const q = queries(w);
    const [names, ...instants] = await Promise.all([
      get<{ services: string[] }>('/api/services', {}),
      ...Object.values(q).map((e) => promInstant(e, range.end)),
    ]);
    const keys = Object.keys(q) as (keyof Figures)[];
    const figures = new Map<string, Figures>();
    keys.forEach((k, i) => {
      for (const [svc, v] of byService(instants[i].result)) {
        const f = figures.get(svc) ?? ({ rate: NaN, errors: 0, p50: NaN, p95: NaN, p99: NaN } as Figures);
        f[k] = v;
        figures.set(svc, f);
      }
    });
    const all = [...new Set([...names.services, ...figures.keys()])].filter(Boolean).sort();
    if (!ctx.live()) return;
    if (!all.length) {
      fill(ctx.root, h('h1', null, 'Services'), notice('empty', 'No services have sent spans yet. ', ...EMPTY_INGEST));
      return;
    }
    const s = step(range, 120);
    const [rateRange, errorRange, p95Range] = await Promise.all(
      [q.rate, q.errors, q.p95].map((e) => promRange(e, range.start, range.end, s)),
    );
    if (!ctx.live()) return;
    const cards = all.map((svc) => {
      const f = figures.get(svc);
      const errorRatio = f && f.rate > 0 ? f.errors / f.rate : NaN;
      const traffic = h('div', { class: 'chart', title: 'requests/s, errors/s' });
      const latency = h('div', { class: 'chart', title: 'p95 latency' });
      const card = h(
        'section',
        { class: 'card', 'data-service': svc },
        h('h3', null, h('span', { class: 'swatch', style: `background:${colour(svc)}` }), h('a', { href: href('traces', { service: svc }) }, svc)),
        h(
          'div',
          { class: 'figures' },
          h('span', null, h('b', null, f ? num(f.rate, '/s') : '–'), 'requests'),
          h('span', { class: errorRatio > 0.01 ? 'error-text' : '' }, h('b', null, Number.isFinite(errorRatio) ? `${(errorRatio * 100).toFixed(2)}%` : '–'), 'errors'),
          ...(['p50', 'p95', 'p99'] as const).map((p) => h('span', null, h('b', null, f && Number.isFinite(f[p]) ? duration(Math.round(f[p] * 1e9)) : '–'), p)),
        ),
        h('div', { class: 'spark' }, h('div', null, h('span', { class: 'muted' }, 'requests/s · errors/s'), traffic), h('div', null, h('span', { class: 'muted' }, 'p95 latency (s)'), latency)),
      );
      const span: [number, number] = [range.start / 1000, range.end / 1000];
      const small = { height: 90, range: span, legend: false };
      requestAnimationFrame(() => {
        lines(traffic, [{ label: 'requests/s', points: pointsOf(rateRange, svc), colour: '#1f6feb' }, { label: 'errors/s', points: pointsOf(errorRange, svc), colour: '#d1242f' }], small);
        lines(latency, [{ label: 'p95', points: pointsOf(p95Range, svc), colour: '#9a6700' }], small);
      });
      return card;
    });
    fill(
      ctx.root,
      h('h1', null, 'Services'),
      h('p', { class: 'muted' }, `Entry spans (server and consumer) per service, rates over ${w}. Select a service to see its traces.`),
      h('div', { class: 'cards' }, cards),
    );
  },
};
