// Metrics explorer: one or more PromQL queries charted together over the
// time range (or as a table of instant results), with completion.

import { promInstant, promRange, seriesName, type PromSeries } from '../api';
import { lines, promLines } from '../chart';
import { fill, h, notice } from '../dom';
import { promqlEditor } from '../promql-editor';
import { current, href, step as autoStep, update } from '../route';
import type { Ctx, View } from '../view';

function resultTable(rows: { query: number; series: PromSeries }[]): HTMLElement {
  return h(
    'table',
    { class: 'list', id: 'instant-table' },
    h('thead', null, h('tr', null, h('th', null, '#'), h('th', null, 'Series'), h('th', { class: 'n' }, 'Value'))),
    h(
      'tbody',
      null,
      ...rows.map(({ query, series }) => h('tr', null, h('td', { class: 'muted' }, query + 1), h('td', { class: 'mono' }, seriesName(series.metric)), h('td', { class: 'n mono' }, series.value?.[1] ?? ''))),
    ),
  );
}

export const metrics: View = {
  title: 'Metrics',
  timed: true,
  async render(ctx: Ctx) {
    const p = ctx.params;
    const exprs = p.getAll('q').length ? p.getAll('q') : [''];
    const mode = p.get('mode') === 'table' ? 'table' : 'graph';
    const stepParam = p.get('step') ?? '';
    const run = () => {
      const params = new URLSearchParams(current().params);
      params.delete('q');
      editors.map((e) => e.input.value.trim()).filter(Boolean).forEach((q) => params.append('q', q));
      params.set('step', stepInput.value.trim());
      if (!params.get('step')) params.delete('step');
      location.hash = href('metrics', params);
    };
    const editors = exprs.map((e, i) => promqlEditor(e, run, `PromQL query ${i + 1}`));
    const stepInput = h('input', { name: 'step', value: stepParam, placeholder: 'auto', size: 6, 'aria-label': 'Step in seconds' });
    const controls = h(
      'div',
      { class: 'row' },
      h('button', { class: 'primary', onclick: run }, 'Run'),
      h('button', { onclick: () => (editors.push(promqlEditor('', run, `PromQL query ${editors.length + 1}`)), queriesEl.append(editors[editors.length - 1].el)) }, '+ Query'),
      h('label', null, 'Step (s) ', stepInput),
      h('span', { role: 'group', 'aria-label': 'Display' }, ...(['graph', 'table'] as const).map((m) => h('button', { 'aria-pressed': String(mode === m), onclick: () => update({ mode: m === 'graph' ? null : m }) }, m === 'graph' ? 'Graph' : 'Table'))),
    );
    const queriesEl = h('div', null, ...editors.map((e) => e.el));
    const out = h('div', { id: 'metrics-result' });
    fill(ctx.root, h('h1', null, 'Metrics'), queriesEl, controls, out);
    const todo = exprs.filter(Boolean);
    if (!todo.length) {
      fill(out, notice('empty', 'Type a PromQL expression (completion offers metric names, labels and values) and press Enter. For example ', h('code', null, 'sum by (service) (rate(traces_spanmetrics_calls_total[5m]))'), '.'));
      return;
    }
    const { range } = ctx;
    const step = Number(stepParam) > 0 ? Number(stepParam) : autoStep(range);
    try {
      if (mode === 'table') {
        const results = await Promise.all(todo.map((q) => promInstant(q, range.end)));
        if (!ctx.live()) return;
        const rows = results.flatMap((r, query) => r.result.map((series) => ({ query, series })));
        fill(out, rows.length ? resultTable(rows) : notice('empty', 'The queries return no series at the end of the range.'));
      } else {
        const results = await Promise.all(todo.map((q) => promRange(q, range.start, range.end, step)));
        if (!ctx.live()) return;
        const series = results.flatMap((r, i) => promLines(r, todo.length > 1 ? `#${i + 1} ` : ''));
        if (!series.length) return fill(out, notice('empty', 'The queries return no series in this time range.'));
        const chart = h('div', { class: 'chart', id: 'metrics-chart', 'data-series': series.length });
        fill(out, h('p', { class: 'muted' }, `${series.length} series, step ${step}s. Drag across the chart to zoom.`), chart);
        lines(chart, series, { height: 320, range: [range.start / 1000, range.end / 1000], onSelect: (s, e) => update({ from: String(Math.floor(s)), to: String(Math.ceil(e)) }) });
      }
    } catch (e) {
      if (ctx.live()) fill(out, notice('error', (e as Error).message));
    }
  },
};
