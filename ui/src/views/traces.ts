// Trace search: the service / operation / attributes / duration form, a
// duration-over-time scatter of the hits, and the hit list.

import { get } from '../api';
import { scatter } from '../chart';
import { EMPTY_INGEST, colour, duration, fill, h, notice, timestamp } from '../dom';
import { href, nanos, update } from '../route';
import type { Ctx, View } from '../view';

export interface TraceHit {
  traceId: string;
  rootService: string;
  rootName: string;
  startTimeUnixNano: string;
  durationNanos: number;
  spanCount: number;
  errorCount: number;
  services: string[];
  truncated: boolean;
}

const FIELDS = ['service', 'operation', 'attributes', 'minDuration', 'maxDuration', 'limit', 'status'] as const;

async function form(ctx: Ctx): Promise<HTMLFormElement> {
  const p = ctx.params;
  const { services } = await get<{ services: string[] }>('/api/services');
  const service = p.get('service') ?? '';
  const ops = service
    ? (await get<{ operations: { name: string }[] }>(`/api/services/${encodeURIComponent(service)}/operations`)).operations
    : [];
  const field = (label: string, control: HTMLElement) => h('label', null, label, control);
  const input = (name: string, placeholder: string, size = 10) =>
    h('input', { name, placeholder, value: p.get(name) ?? '', size });
  const serviceSelect = h(
    'select',
    { name: 'service', onchange: (e: Event) => update({ service: (e.target as HTMLSelectElement).value, operation: null }) },
    h('option', { value: '' }, 'any service'),
    ...services.map((s) => h('option', { value: s, selected: s === service }, s)),
  );
  const opSelect = h(
    'select',
    { name: 'operation' },
    h('option', { value: '' }, 'any operation'),
    ...[...new Set(ops.map((o) => o.name))].map((o) => h('option', { value: o, selected: o === p.get('operation') }, o)),
  );
  const el = h(
    'form',
    { class: 'bar', role: 'search' },
    field('Service', serviceSelect),
    field('Operation', opSelect),
    field('Attributes', input('attributes', 'http.route=/api/cart user.id=u-1', 28)),
    field('Min duration', input('minDuration', '100ms', 7)),
    field('Max duration', input('maxDuration', '5s', 7)),
    field('Limit', input('limit', '20', 4)),
    h('label', { class: 'row' }, h('input', { type: 'checkbox', name: 'status', value: 'error', checked: p.get('status') === 'error' }), 'errors only'),
    h('button', { class: 'primary', type: 'submit' }, 'Find traces'),
  );
  el.addEventListener('submit', (e) => {
    e.preventDefault();
    const data = new FormData(el);
    update(Object.fromEntries(FIELDS.map((f) => [f, (data.get(f) as string | null) ?? null])));
  });
  return el;
}

export function hitTable(hits: TraceHit[]): HTMLElement {
  return h(
    'table',
    { class: 'list', id: 'trace-hits' },
    h('thead', null, h('tr', null, ...['Root', 'Services', 'Spans', 'Errors', 'Duration', 'Started'].map((c, i) => h('th', { class: i >= 2 && i <= 4 ? 'n' : '' }, c)))),
    h(
      'tbody',
      null,
      ...hits.map((t) =>
        h(
          'tr',
          { class: 'clickable', 'data-trace-id': t.traceId },
          h('td', null, h('a', { href: href('trace', { id: t.traceId }) }, h('b', null, t.rootService), ': ', t.rootName || '(missing root)'), t.truncated ? h('span', { class: 'badge warn' }, 'truncated') : null),
          h('td', null, ...t.services.map((s) => h('span', { class: 'badge' }, h('span', { class: 'swatch', style: `background:${colour(s)}` }), s))),
          h('td', { class: 'n' }, t.spanCount),
          h('td', { class: 'n' }, t.errorCount ? h('span', { class: 'badge error' }, t.errorCount) : '0'),
          h('td', { class: 'n' }, duration(t.durationNanos)),
          h('td', { class: 'muted' }, timestamp(t.startTimeUnixNano)),
        ),
      ),
    ),
  );
}

export function searchParams(p: URLSearchParams, start: number, end: number): Record<string, string | undefined> {
  return {
    service: p.get('service') ?? undefined,
    operation: p.get('operation') ?? undefined,
    attributes: p.get('attributes') ?? undefined,
    status: p.get('status') ?? undefined,
    minDuration: p.get('minDuration') ?? undefined,
    maxDuration: p.get('maxDuration') ?? undefined,
    limit: p.get('limit') ?? '50',
    start: nanos(start),
    end: nanos(end),
  };
}

export const traces: View = {
  title: 'Traces',
  timed: true,
  async render(ctx: Ctx) {
    const f = await form(ctx);
    const results = h('div', null, notice('loading', 'Searching…'));
    if (!ctx.live()) return;
    fill(ctx.root, h('h1', null, 'Traces'), f, results);
    let hits: TraceHit[];
    try {
      hits = (await get<{ traces: TraceHit[] }>('/api/traces', searchParams(ctx.params, ctx.range.start, ctx.range.end))).traces;
    } catch (e) {
      fill(results, notice('error', (e as Error).message));
      return;
    }
    if (!ctx.live()) return;
    if (!hits.length) {
      fill(results, notice('empty', 'No traces match in this time range. Widen the range or remove a condition. ', ...EMPTY_INGEST));
      return;
    }
    const chart = h('div', { class: 'chart', id: 'trace-scatter' });
    fill(results, h('p', { class: 'muted' }, `${hits.length} traces, newest first. Click a dot or a row to open the trace.`), chart, hitTable(hits));
    results.querySelector('tbody')!.addEventListener('click', (e) => {
      const row = (e.target as HTMLElement).closest('tr');
      if (row && !(e.target as HTMLElement).closest('a')) location.hash = href('trace', { id: row.dataset.traceId });
    });
    const dots = hits.map((t) => ({
      t: Number(BigInt(t.startTimeUnixNano) / 1_000_000n) / 1000,
      y: t.durationNanos / 1e6,
      error: t.errorCount > 0,
      id: t.traceId,
    }));
    scatter(chart, dots, (id) => (location.hash = href('trace', { id })), {
      height: 160,
      unit: 'ms',
      onSelect: (start, end) => update({ from: String(Math.floor(start)), to: String(Math.ceil(end)) }),
    });
  },
};
