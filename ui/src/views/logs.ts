// Log explorer: a query bar (errors shown at their position), a count
// histogram, the newest hits with matches highlighted and details on click,
// links to traces, and live tail.

import { ApiError, get } from '../api';
import { bars } from '../chart';
import { EMPTY_INGEST, fill, h, notice, show, table, timestamp } from '../dom';
import { href, nanos, update } from '../route';
import type { Ctx, View } from '../view';

export interface LogHit {
  timeUnixNano: string;
  severity: string;
  severityText: string;
  service: string;
  body: unknown;
  traceId: string;
  spanId: string;
  attributes: Record<string, unknown>;
  resource: Record<string, unknown>;
  scope: { name: string; version: string };
  highlights: [number, number][];
  cursor: string;
}

/** The body with the query's matches marked. */
function body(hit: LogHit): (Node | string)[] {
  const text = show(hit.body);
  if (typeof hit.body !== 'string' || !hit.highlights?.length) return [text];
  const parts: (Node | string)[] = [];
  let at = 0;
  for (const [start, end] of hit.highlights) {
    if (start < at) continue;
    parts.push(text.slice(at, start), h('mark', null, text.slice(start, end)));
    at = end;
  }
  parts.push(text.slice(at));
  return parts;
}

/** One line; clicking it shows its attributes, resource and trace link. */
export function logLine(hit: LogHit): HTMLElement {
  const el = h(
    'div',
    { class: 'logline', tabindex: 0, 'data-span-id': hit.spanId || null, 'aria-expanded': 'false' },
    h('span', { class: 'muted' }, timestamp(hit.timeUnixNano)),
    h('span', { class: `sev-${hit.severity}` }, hit.severity),
    h('span', null, hit.service),
    h('span', { class: 'body' }, ...body(hit)),
  );
  const toggle = (e: Event) => {
    if ((e.target as HTMLElement).closest('a, .logdetail')) return;
    const open = el.querySelector('.logdetail');
    el.setAttribute('aria-expanded', open ? 'false' : 'true');
    if (open) return open.remove();
    el.append(
      h(
        'div',
        { class: 'logdetail' },
        hit.traceId ? h('p', null, h('a', { href: href('trace', { id: hit.traceId, span: hit.spanId || undefined }), class: 'trace-link' }, `Trace ${hit.traceId}`), hit.spanId ? ` span ${hit.spanId}` : '') : null,
        h('h3', null, 'Attributes'),
        table(hit.attributes),
        h('h3', null, 'Resource'),
        table(hit.resource),
      ),
    );
  };
  el.addEventListener('click', toggle);
  el.addEventListener('keydown', (e) => e.key === 'Enter' && toggle(e));
  return el;
}

const HELP: [string, string][] = [
  ['timeout', 'lines containing the word'],
  ['"connection refused"', 'a phrase'],
  ['time*', 'a prefix'],
  ['service:checkout host:web-1', 'fields: service, host, scope, trace_id, event'],
  ['severity>=WARN', 'severity by name or number, with = > >= < <='],
  ['attributes.http.status_code:500', 'an attribute (also resource.x, or a bare name like order.id:42)'],
  ['a AND b, a OR b, NOT a, -a, ( … )', 'boolean operators; words side by side are ANDed'],
];

export const logs: View = {
  title: 'Logs',
  timed: true,
  async render(ctx: Ctx) {
    const q = ctx.params.get('query') ?? '';
    const live = ctx.params.get('live') === '1';
    const input = h('input', { class: 'query-input', name: 'query', value: q, placeholder: 'service:orders severity>=WARN timeout', 'aria-label': 'Log query', autocomplete: 'off', spellcheck: false });
    const error = h('div', { 'aria-live': 'polite' });
    const formEl = h(
      'form',
      { class: 'bar', role: 'search' },
      h('div', { class: 'grow' }, input, error),
      h('button', { class: 'primary', type: 'submit' }, 'Search'),
      h('button', { type: 'button', id: 'live', 'aria-pressed': String(live), onclick: () => update({ live: live ? null : '1' }) }, live ? '■ Stop live tail' : '▶ Live tail'),
    );
    formEl.addEventListener('submit', (e) => {
      e.preventDefault();
      update({ query: input.value.trim() || null });
    });
    const help = h('details', null, h('summary', null, 'Query syntax'), h('table', { class: 'kv' }, ...HELP.map(([ex, what]) => h('tr', null, h('th', { class: 'mono' }, ex), h('td', { style: 'font-family:inherit' }, what)))));
    const chart = h('div', { class: 'chart', id: 'log-histogram' });
    const summary = h('p', { class: 'muted' });
    const list = h('div', { class: 'loglines', id: 'log-hits' });
    const body = h('div', null, chart, summary, list);
    fill(ctx.root, h('h1', null, 'Logs'), formEl, help, body);

    const range = { start: nanos(ctx.range.start), end: nanos(ctx.range.end) };
    let hits: { hits: LogHit[]; cursor?: string };
    let histogram: { step: string; total: number; buckets: { time: string; count: number }[] };
    try {
      [hits, histogram] = await Promise.all([
        get<{ hits: LogHit[]; cursor?: string }>('/api/logs', { query: q, ...range, limit: 200 }),
        get<typeof histogram>('/api/logs/histogram', { query: q, ...range }),
      ]);
    } catch (e) {
      if (!ctx.live()) return;
      if (e instanceof ApiError && e.position !== undefined) {
        // Point at the character the parser stopped at.
        fill(error, h('div', { class: 'query-error', role: 'alert' }, `${' '.repeat(e.position)}^ ${e.message}`));
        input.focus();
        input.setSelectionRange(e.position, e.position);
        fill(body);
      } else fill(body, notice('error', (e as Error).message));
      return;
    }
    if (!ctx.live()) return;
    if (!hits.hits.length && !live) {
      fill(body, notice('empty', q ? 'No lines match in this time range. Widen the range or loosen the query.' : 'No log lines in this time range. ', q ? null : EMPTY_INGEST));
      return;
    }
    summary.textContent = `${histogram.total} lines match; the newest ${hits.hits.length} below, newest first. Drag across the chart to zoom.`;
    list.append(...hits.hits.map((hit) => logLine(hit)));
    bars(
      chart,
      histogram.buckets.map((b) => Number(BigInt(b.time) / 1_000_000n) / 1000),
      histogram.buckets.map((b) => b.count),
      { height: 120, onSelect: (start, end) => update({ from: String(Math.floor(start)), to: String(Math.ceil(end)) }) },
    );
    if (live) tail(ctx, q, hits.hits[0]?.cursor, list, summary);
  },
};

/** Live tail: every second, the lines after the newest one shown, on top. */
function tail(ctx: Ctx, q: string, after: string | undefined, list: HTMLElement, summary: HTMLElement): void {
  const start = nanos(Date.now() - 3600e3);
  let cursor = after;
  let busy = false;
  const timer = window.setInterval(async () => {
    if (busy || !ctx.live()) return;
    busy = true;
    try {
      const r = await get<{ hits: LogHit[] }>('/api/logs', { query: q, start, end: nanos(Date.now() + 60e3), order: 'oldest', cursor, limit: 500 });
      if (!ctx.live() || !r.hits.length) return;
      cursor = r.hits[r.hits.length - 1].cursor;
      list.prepend(...r.hits.reverse().map((hit) => logLine(hit)));
      while (list.childElementCount > 1000) list.lastElementChild?.remove();
      summary.textContent = `Live: ${list.childElementCount} newest lines, newest first.`;
    } catch (e) {
      summary.textContent = `Live tail paused: ${(e as Error).message}`;
    } finally {
      busy = false;
    }
  }, 1000);
  ctx.cleanup(() => window.clearInterval(timer));
}
