// One trace: a virtualised waterfall with a collapsible span tree, service
// colours, the critical path, flags for missing parents and adjusted
// clocks; a side panel with the selected span; the trace's logs inline.

import { ApiError, get } from '../api';
import { colour, duration, fill, h, notice, show, table, timestamp } from '../dom';
import { href } from '../route';
import type { Ctx, View } from '../view';
import { type LogHit, logLine } from './logs';

export interface Span {
  spanId: string;
  parentSpanId: string | null;
  depth: number;
  name: string;
  kind: string;
  service: string;
  startTimeUnixNano: string;
  durationNanos: number;
  selfNanos: number;
  criticalPath: boolean;
  status: { code: string; message: string };
  parentMissing: boolean;
  duplicates: number;
  skewAdjustmentNanos: number;
  attributes: Record<string, unknown>;
  resource: Record<string, unknown>;
  scope: { name: string; version: string };
  events: { name: string; timeUnixNano: string; attributes: Record<string, unknown> }[];
  links: { traceId: string; spanId: string; attributes: Record<string, unknown> }[];
}

interface Trace {
  traceId: string;
  startTimeUnixNano: string;
  durationNanos: number;
  spanCount: number;
  errorCount: number;
  truncated: boolean;
  services: Record<string, { spans: number; errors: number }>;
  spans: Span[];
}

const ROW = 24;
const HEAD = 22;

class Waterfall {
  readonly el = h('div', { class: 'waterfall', tabindex: 0, role: 'tree', 'aria-label': 'Spans' });
  private readonly spacer = h('div');
  private readonly t0: bigint;
  private readonly total: number;
  private readonly hasChildren: boolean[];
  private readonly collapsed = new Set<number>();
  private visible: number[] = [];
  selected = 0;

  constructor(
    private readonly trace: Trace,
    private readonly onSelect: (span: Span) => void,
  ) {
    const spans = trace.spans;
    this.t0 = spans.reduce((m, s) => (BigInt(s.startTimeUnixNano) < m ? BigInt(s.startTimeUnixNano) : m), BigInt(trace.startTimeUnixNano));
    const end = spans.reduce((m, s) => Math.max(m, this.offset(s) + s.durationNanos), 0);
    this.total = Math.max(end, trace.durationNanos, 1);
    this.hasChildren = spans.map((s, i) => i + 1 < spans.length && spans[i + 1].depth > s.depth);
    this.el.append(this.head(), this.spacer);
    this.el.addEventListener('scroll', () => this.paint());
    this.el.addEventListener('keydown', (e) => this.key(e));
    this.el.addEventListener('click', (e) => {
      const row = (e.target as HTMLElement).closest<HTMLElement>('.wf-row');
      if (!row) return;
      const i = Number(row.dataset.index);
      if ((e.target as HTMLElement).closest('.wf-toggle')) this.toggle(i);
      else this.select(i);
    });
    this.layout();
  }

  private offset(s: Span): number {
    return Number(BigInt(s.startTimeUnixNano) - this.t0);
  }

  private head(): HTMLElement {
    const ticks = [0, 0.25, 0.5, 0.75].map((f) =>
      h('span', { class: 'wf-label', style: `left:${f * 100}%` }, duration(Math.round(this.total * f))),
    );
    return h('div', { class: 'wf-head' }, h('span', { style: 'padding-left:6px' }, 'Service: span'), h('div', { class: 'wf-lane' }, ticks));
  }

  /** Recomputes which spans show after a collapse or expand. */
  private layout(): void {
    this.visible = [];
    let hideBelow = Infinity;
    this.trace.spans.forEach((s, i) => {
      if (s.depth > hideBelow) return;
      hideBelow = this.collapsed.has(i) ? s.depth : Infinity;
      this.visible.push(i);
    });
    this.spacer.style.height = `${HEAD + this.visible.length * ROW}px`;
    this.paint();
  }

  /** Draws only the rows in view: a trace of 10,000 spans costs what a screenful does. */
  paint(): void {
    this.el.querySelectorAll('.wf-row').forEach((r) => r.remove());
    const first = Math.max(0, Math.floor((this.el.scrollTop - HEAD) / ROW) - 5);
    const last = Math.min(this.visible.length, first + Math.ceil((this.el.clientHeight || 600) / ROW) + 10);
    for (let v = first; v < last; v++) this.el.append(this.row(this.visible[v], v));
  }

  private row(i: number, v: number): HTMLElement {
    const s = this.trace.spans[i];
    const left = (this.offset(s) / this.total) * 100;
    const width = (s.durationNanos / this.total) * 100;
    const failed = s.status.code === 'error';
    const flags = [
      failed ? h('span', { class: 'badge error' }, '!') : null,
      s.parentMissing ? h('span', { class: 'badge warn', title: 'The parent span never arrived' }, 'missing parent') : null,
      s.skewAdjustmentNanos ? h('span', { class: 'badge warn', title: `Clock adjusted by ${duration(Math.abs(s.skewAdjustmentNanos))}` }, 'clock adjusted') : null,
    ];
    return h(
      'div',
      {
        class: `wf-row${i === this.selected ? ' selected' : ''}`,
        style: `top:${HEAD + v * ROW}px`,
        'data-index': i,
        'data-span-id': s.spanId,
        role: 'treeitem',
        'aria-level': s.depth + 1,
        'aria-selected': i === this.selected ? 'true' : 'false',
        'aria-expanded': this.hasChildren[i] ? String(!this.collapsed.has(i)) : null,
      },
      h(
        'div',
        { class: 'wf-name', style: `padding-left:${4 + s.depth * 14}px`, title: `${s.service}: ${s.name}` },
        h('button', { class: 'wf-toggle', tabindex: -1, 'aria-label': 'Collapse or expand' }, this.hasChildren[i] ? (this.collapsed.has(i) ? '▸' : '▾') : ''),
        h('span', { class: 'swatch', style: `background:${colour(s.service)}` }),
        h('b', null, s.service),
        ' ',
        s.name,
        ' ',
        flags,
      ),
      h(
        'div',
        { class: 'wf-lane' },
        h('div', {
          class: `wf-bar${s.criticalPath ? ' critical' : ''}`,
          style: `left:${left}%;width:${width}%;background:${failed ? 'var(--error)' : colour(s.service)}`,
        }),
        h('span', { class: 'wf-label', style: left + width > 80 ? `right:${100 - left + 0.5}%` : `left:${left + width + 0.5}%` }, duration(s.durationNanos)),
      ),
    );
  }

  toggle(i: number): void {
    if (!this.hasChildren[i]) return;
    if (this.collapsed.has(i)) this.collapsed.delete(i);
    else this.collapsed.add(i);
    this.layout();
  }

  select(i: number): void {
    this.selected = i;
    const v = this.visible.indexOf(i);
    if (v >= 0) {
      const top = HEAD + v * ROW;
      if (top < this.el.scrollTop + HEAD || top + ROW > this.el.scrollTop + this.el.clientHeight) this.el.scrollTop = top - this.el.clientHeight / 2;
    }
    this.paint();
    this.onSelect(this.trace.spans[i]);
  }

  /** Arrow keys move, Left/Right collapse and expand, as in a file tree. */
  private key(e: KeyboardEvent): void {
    const v = this.visible.indexOf(this.selected);
    const moves: Record<string, () => void> = {
      ArrowDown: () => v + 1 < this.visible.length && this.select(this.visible[v + 1]),
      ArrowUp: () => v > 0 && this.select(this.visible[v - 1]),
      ArrowLeft: () => !this.collapsed.has(this.selected) && this.toggle(this.selected),
      ArrowRight: () => this.collapsed.has(this.selected) && this.toggle(this.selected),
    };
    if (moves[e.key]) {
      e.preventDefault();
      moves[e.key]();
    }
  }
}

function details(trace: Trace, s: Span, logs: LogHit[]): HTMLElement[] {
  const t0 = BigInt(trace.startTimeUnixNano);
  const at = (ns: string) => `+${duration(Math.max(0, Number(BigInt(ns) - t0)))}`;
  const own = logs.filter((l) => l.spanId === s.spanId);
  return [
    h('h2', null, s.name),
    h(
      'table',
      { class: 'kv' },
      ...Object.entries({
        service: s.service,
        kind: s.kind,
        status: s.status.code + (s.status.message ? `: ${s.status.message}` : ''),
        duration: duration(s.durationNanos),
        'self time': duration(s.selfNanos),
        start: `${at(s.startTimeUnixNano)} (${timestamp(s.startTimeUnixNano)})`,
        'span id': s.spanId,
        'parent id': s.parentSpanId ?? '(root)',
        'critical path': s.criticalPath ? 'yes' : 'no',
        ...(s.skewAdjustmentNanos ? { 'clock adjusted by': duration(s.skewAdjustmentNanos) } : {}),
        ...(s.duplicates ? { duplicates: String(s.duplicates) } : {}),
      }).map(([k, v]) => h('tr', null, h('th', null, k), h('td', { class: k === 'status' && s.status.code === 'error' ? 'error-text' : '' }, v))),
    ),
    h('h3', null, 'Attributes'),
    table(s.attributes),
    h('h3', null, `Events (${s.events.length})`),
    ...s.events.map((e) => h('div', null, h('b', null, e.name), ' ', h('span', { class: 'muted' }, at(e.timeUnixNano)), table(e.attributes))),
    h('h3', null, `Links (${s.links.length})`),
    ...s.links.map((l) => h('div', null, h('a', { href: href('trace', { id: l.traceId }) }, `${l.traceId} / ${l.spanId}`), table(l.attributes))),
    h('h3', null, `Logs (${own.length})`),
    ...own.map((l) => h('div', { class: 'mono' }, h('span', { class: `sev-${l.severity}` }, l.severity), ' ', show(l.body))),
    h('h3', null, 'Resource'),
    table(s.resource),
    h('h3', null, 'Scope'),
    h('p', { class: 'mono' }, `${s.scope.name} ${s.scope.version}`),
  ];
}

export const trace: View = {
  title: 'Trace',
  nav: false,
  async render(ctx: Ctx) {
    const id = ctx.params.get('id') ?? '';
    fill(ctx.root, notice('loading', `Loading trace ${id}…`));
    let t: Trace;
    try {
      t = await get<Trace>(`/api/traces/${encodeURIComponent(id)}`);
    } catch (e) {
      const missing = e instanceof ApiError && e.status === 404;
      fill(ctx.root, notice('error', missing ? `No trace ${id} in this tenant. It may have expired, or not arrived yet.` : (e as Error).message));
      return;
    }
    const logs = await get<{ logs: LogHit[] }>(`/api/traces/${encodeURIComponent(id)}/logs`).then((r) => r.logs, () => [] as LogHit[]);
    if (!ctx.live()) return;
    const side = h('aside', { class: 'side', 'aria-label': 'Span details' });
    const select = (s: Span) => {
      fill(side, ...details(t, s, logs));
      const p = new URLSearchParams(ctx.params);
      p.set('span', s.spanId);
      history.replaceState(null, '', href('trace', p));
    };
    const wf = new Waterfall(t, select);
    const services = Object.entries(t.services).map(([name, c]) =>
      h('span', { class: 'badge' }, h('span', { class: 'swatch', style: `background:${colour(name)}` }), `${name} ${c.spans}`, c.errors ? h('span', { class: 'error-text' }, ` (${c.errors} failed)`) : null),
    );
    const logList = h(
      'div',
      { class: 'loglines', id: 'trace-logs' },
      logs.length ? logs.map((l) => logLine(l)) : h('p', { class: 'muted' }, 'No log lines carry this trace id.'),
    );
    fill(
      ctx.root,
      h('h1', null, 'Trace ', h('span', { class: 'mono' }, t.traceId)),
      h(
        'p',
        { class: 'row' },
        h('span', null, `${t.spanCount} spans · ${duration(t.durationNanos)} · started ${timestamp(t.startTimeUnixNano)}`),
        t.errorCount ? h('span', { class: 'badge error' }, `${t.errorCount} errors`) : null,
        ...services,
        h('a', { href: `/api/traces/${t.traceId}`, download: `trace-${t.traceId}.json` }, 'JSON'),
      ),
      t.truncated ? notice('error', `This trace is larger than the server's limit; only its first ${t.spans.length} spans are shown.`) : null,
      h('p', { class: 'muted' }, 'Outlined bars are on the critical path. Arrow keys move between spans; Left and Right collapse and expand.'),
      h('div', { class: 'trace-layout' }, wf.el, side),
      h('h2', null, `Logs of this trace (${logs.length})`),
      logList,
    );
    const wanted = t.spans.findIndex((s) => s.spanId === ctx.params.get('span'));
    wf.select(Math.max(0, wanted));
    logList.addEventListener('click', (e) => {
      const line = (e.target as HTMLElement).closest<HTMLElement>('[data-span-id]');
      const i = t.spans.findIndex((s) => s.spanId === line?.dataset.spanId);
      if (i >= 0) wf.select(i);
    });
  },
};
