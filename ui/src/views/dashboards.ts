// Dashboards: a grid of panels (PromQL chart, single stat, log query, trace
// list) with the shared time range and variables filled from label values;
// created, edited, exported and imported here, saved on the server per
// tenant.

import { get, labelValues, promInstant, promRange, request, seriesName } from '../api';
import { lines, promLines } from '../chart';
import { fill, h, notice, num } from '../dom';
import { href, nanos, update } from '../route';
import type { Ctx, View } from '../view';
import { logLine, type LogHit } from './logs';
import { hitTable, type TraceHit } from './traces';

type PanelType = 'timeseries' | 'stat' | 'logs' | 'traces';

interface Panel {
  type: PanelType;
  title: string;
  query: string;
  /** Columns of 12. */
  width: number;
}

interface Variable {
  name: string;
  /** The label whose values fill it… */
  label: string;
  /** …among the series of this selector (optional). */
  match?: string;
}

interface Dashboard {
  id?: string;
  title: string;
  variables: Variable[];
  panels: Panel[];
}

const TYPES: Record<PanelType, string> = {
  timeseries: 'Time series (PromQL)',
  stat: 'Single stat (PromQL)',
  logs: 'Log lines (log query)',
  traces: 'Traces (e.g. service=$service status=error minDuration=100ms)',
};

/** `$name` and `${name}` replaced by the variables' current values. */
function substitute(text: string, values: Record<string, string>): string {
  return text.replace(/\$\{(\w+)\}|\$(\w+)/g, (m, a, b) => values[a ?? b] ?? m);
}

async function drawPanel(el: HTMLElement, p: Panel, query: string, ctx: Ctx): Promise<void> {
  const { start, end } = ctx.range;
  switch (p.type) {
    case 'timeseries': {
      const series = promLines(await promRange(query, start, end, Math.max(1, Math.round((end - start) / 1000 / 200))));
      if (!series.length) return fill(el, notice('empty', 'No series in this range.'));
      fill(el);
      lines(el, series, { height: 180, range: [start / 1000, end / 1000], legend: series.length <= 6 });
      return;
    }
    case 'stat': {
      const r = await promInstant(query, end);
      if (!r.result.length) return fill(el, notice('empty', 'No value.'));
      fill(el, ...r.result.slice(0, 6).map((s) => h('div', null, h('div', { class: 'stat' }, num(Number(s.value?.[1]))), r.result.length > 1 ? h('div', { class: 'muted mono' }, seriesName(s.metric)) : null)));
      return;
    }
    case 'logs': {
      const r = await get<{ hits: LogHit[] }>('/api/logs', { query, start: nanos(start), end: nanos(end), limit: 30 });
      fill(el, r.hits.length ? h('div', { class: 'loglines scroll' }, r.hits.map((hit) => logLine(hit))) : notice('empty', 'No matching lines.'));
      return;
    }
    case 'traces': {
      const params = Object.fromEntries(query.split(/\s+/).filter(Boolean).map((kv) => kv.split('=', 2) as [string, string]));
      const { attributes: _ignored, ...known } = params;
      const attributes = Object.entries(params)
        .filter(([k]) => !['service', 'operation', 'status', 'minDuration', 'maxDuration', 'limit'].includes(k))
        .map(([k, v]) => `${k}=${v}`)
        .join(' ');
      const r = await get<{ traces: TraceHit[] }>('/api/traces', { limit: '10', ...known, attributes, start: nanos(start), end: nanos(end) });
      fill(el, r.traces.length ? h('div', { class: 'scroll' }, hitTable(r.traces)) : notice('empty', 'No matching traces.'));
      return;
    }
  }
}

/** A dialog with a form; resolves with its fields, or undefined if cancelled. */
function ask(title: string, fields: [string, string, HTMLElement][]): Promise<Record<string, string> | undefined> {
  return new Promise((resolve) => {
    const formEl = h(
      'form',
      { method: 'dialog' },
      h('h2', null, title),
      ...fields.map(([, label, control]) => h('label', null, label, control)),
      h('div', { class: 'row' }, h('button', { class: 'primary', value: 'ok' }, 'OK'), h('button', { value: 'cancel', formnovalidate: true }, 'Cancel')),
    );
    fields.forEach(([name, , control]) => control.setAttribute('name', name));
    const dialog = h('dialog', null, formEl);
    dialog.addEventListener('close', () => {
      const data = new FormData(formEl);
      dialog.remove();
      resolve(dialog.returnValue === 'ok' ? Object.fromEntries([...data.entries()].map(([k, v]) => [k, String(v)])) : undefined);
    });
    document.body.append(dialog);
    dialog.showModal();
  });
}

function panelFields(p?: Panel): [string, string, HTMLElement][] {
  return [
    ['title', 'Title', h('input', { value: p?.title ?? '', required: true })],
    ['type', 'Type', h('select', null, ...Object.entries(TYPES).map(([v, l]) => h('option', { value: v, selected: v === p?.type }, l)))],
    ['query', 'Query ($variables allowed)', h('textarea', { rows: 3, class: 'mono' }, p?.query ?? '')],
    ['width', 'Width (1–12 columns)', h('input', { type: 'number', min: 1, max: 12, value: p?.width ?? 6 })],
  ];
}

const toPanel = (f: Record<string, string>): Panel => ({
  title: f.title,
  type: f.type as PanelType,
  query: f.query,
  width: Math.min(12, Math.max(1, Number(f.width) || 6)),
});

async function save(d: Dashboard): Promise<void> {
  await request('PUT', `/api/dashboards/${encodeURIComponent(d.id!)}`, {}, d);
}

function download(d: Dashboard): void {
  const { id: _id, ...doc } = d;
  const a = h('a', { href: URL.createObjectURL(new Blob([JSON.stringify(doc, null, 2)], { type: 'application/json' })), download: `${d.id}.json` });
  a.click();
  URL.revokeObjectURL(a.href);
}

async function showList(ctx: Ctx): Promise<void> {
  const { dashboards } = await get<{ dashboards: { id: string; title: string }[] }>('/api/dashboards');
  if (!ctx.live()) return;
  const create = async () => {
    const f = await ask('New dashboard', [['title', 'Title', h('input', { required: true })]]);
    if (!f) return;
    const { id } = await request<{ id: string }>('POST', '/api/dashboards', {}, { title: f.title, variables: [], panels: [] });
    location.hash = href('dashboards', { id, edit: '1' });
  };
  const file = h('input', { type: 'file', accept: 'application/json,.json', 'aria-label': 'Import a dashboard file', hidden: true });
  file.addEventListener('change', async () => {
    const text = await file.files?.[0]?.text();
    if (!text) return;
    try {
      const { id: _id, ...doc } = JSON.parse(text);
      const { id } = await request<{ id: string }>('POST', '/api/dashboards', {}, doc);
      location.hash = href('dashboards', { id });
    } catch (e) {
      fill(status, notice('error', `Cannot import: ${(e as Error).message}`));
    }
  });
  const status = h('div');
  fill(
    ctx.root,
    h('h1', null, 'Dashboards'),
    h('div', { class: 'row' }, h('button', { class: 'primary', onclick: create }, 'New dashboard'), h('button', { onclick: () => file.click() }, 'Import JSON'), file),
    status,
    dashboards.length
      ? h('ul', { id: 'dashboard-list' }, ...dashboards.map((d) => h('li', null, h('a', { href: href('dashboards', { id: d.id }) }, d.title))))
      : notice('empty', 'No dashboards yet. Create one, or import a JSON file exported from another Sightline.'),
  );
}

async function showDashboard(ctx: Ctx, id: string): Promise<void> {
  const d = await get<Dashboard>(`/api/dashboards/${encodeURIComponent(id)}`);
  d.variables ??= [];
  d.panels ??= [];
  const editing = ctx.params.get('edit') === '1';
  const values: Record<string, string> = {};
  const pickers = await Promise.all(
    d.variables.map(async (v) => {
      const options = await labelValues(v.label, v.match || undefined).catch(() => [] as string[]);
      values[v.name] = ctx.params.get(`var-${v.name}`) ?? options[0] ?? '';
      return h(
        'label',
        null,
        `$${v.name} `,
        h('select', { 'aria-label': `Variable ${v.name}`, onchange: (e: Event) => update({ [`var-${v.name}`]: (e.target as HTMLSelectElement).value }) }, ...options.map((o) => h('option', { value: o, selected: o === values[v.name] }, o))),
      );
    }),
  );
  if (!ctx.live()) return;
  const persist = async () => {
    await save(d);
    // Whatever is in the address bar now is drawn again with what was saved:
    // someone who moved on while it saved (Done, a variable) keeps where they went.
    window.dispatchEvent(new HashChangeEvent('hashchange'));
  };
  const addPanel = async () => {
    const f = await ask('Add panel', panelFields());
    if (f) (d.panels.push(toPanel(f)), await persist());
  };
  const addVariable = async () => {
    const f = await ask('Add variable', [
      ['name', 'Name (used as $name)', h('input', { required: true, pattern: '\\w+' })],
      ['label', 'Label whose values fill it', h('input', { required: true, placeholder: 'service' })],
      ['match', 'Among series matching (optional)', h('input', { placeholder: 'traces_spanmetrics_calls_total' })],
    ]);
    if (f) (d.variables.push({ name: f.name, label: f.label, match: f.match || undefined }), await persist());
  };
  const remove = async () => {
    if (!confirm(`Delete the dashboard “${d.title}”?`)) return;
    await request('DELETE', `/api/dashboards/${encodeURIComponent(id)}`);
    location.hash = href('dashboards');
  };
  const panels = d.panels.map((p, i) => {
    const body = h('div', { class: 'panel-body' }, notice('loading', 'Loading…'));
    const tools = editing
      ? [
          h('button', { 'aria-label': `Edit ${p.title}`, onclick: async () => { const f = await ask('Edit panel', panelFields(p)); if (f) (d.panels[i] = toPanel(f), await persist()); } }, 'Edit'),
          h('button', { 'aria-label': `Remove ${p.title}`, onclick: async () => (d.panels.splice(i, 1), await persist()) }, 'Remove'),
        ]
      : [];
    drawPanel(body, p, substitute(p.query, values), ctx).catch((e) => fill(body, notice('error', (e as Error).message)));
    return h('section', { class: 'panel', style: `grid-column: span ${p.width}`, 'data-panel-type': p.type }, h('h3', null, h('span', null, substitute(p.title, values)), ...tools), body);
  });
  fill(
    ctx.root,
    h('h1', null, d.title),
    h(
      'div',
      { class: 'row', style: 'margin-bottom:12px' },
      ...pickers,
      h('span', { class: 'grow' }),
      editing
        ? [h('button', { onclick: addPanel }, '+ Panel'), h('button', { onclick: addVariable }, '+ Variable'), h('button', { onclick: remove }, 'Delete'), h('button', { class: 'primary', onclick: () => update({ edit: null }) }, 'Done')]
        : [h('button', { onclick: () => update({ edit: '1' }) }, 'Edit'), h('button', { onclick: () => download(d) }, 'Export JSON'), h('a', { href: href('dashboards') }, 'All dashboards')],
    ),
    panels.length ? h('div', { class: 'grid' }, panels) : notice('empty', editing ? 'Add a panel to start.' : 'This dashboard has no panels yet: select Edit, then + Panel.'),
  );
}

export const dashboards: View = {
  title: 'Dashboards',
  timed: true,
  async render(ctx: Ctx) {
    const id = ctx.params.get('id');
    return id ? showDashboard(ctx, id) : showList(ctx);
  },
};
