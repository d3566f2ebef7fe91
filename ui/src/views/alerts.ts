// Rules and alerts from `/prometheus/api/v1/rules`: each group with its
// rules, their state, health, last evaluation and error, and the active
// alerts of each alerting rule with their labels and since when. A rule's
// expression opens in the metrics explorer (or, for log rules, the logs
// explorer).

import { get } from '../api';
import { fill, h, notice } from '../dom';
import { href } from '../route';
import type { Ctx, View } from '../view';

interface Alert {
  labels: Record<string, string>;
  annotations: Record<string, string>;
  state: string;
  activeAt: string;
  value: string;
}

interface Rule {
  name: string;
  query: string;
  type: 'alerting' | 'recording';
  state?: string;
  health: string;
  lastError?: string;
  lastEvaluation: string;
  evaluationTime: number;
  duration?: number;
  labels?: Record<string, string>;
  alerts?: Alert[];
  logQuery?: string;
}

interface Group {
  name: string;
  file: string;
  interval: number;
  lastEvaluation: string;
  evaluationTime: number;
  source?: string;
  rules: Rule[];
}

interface Rules {
  data: { groups: Group[]; reloadError?: string };
}

const NEVER = '0001-01-01T00:00:00Z';

function when(t: string): string {
  return t === NEVER ? 'never' : new Date(t).toLocaleString(undefined, { hour12: false });
}

function plural(n: number, word: string): string {
  return `${n} ${word}${n === 1 ? '' : 's'}`;
}

function seconds(s: number): string {
  return s < 1 ? `${(s * 1000).toFixed(1)} ms` : `${s.toFixed(2)} s`;
}

function stateBadge(state: string): HTMLElement {
  const kind = state === 'firing' ? 'error' : state === 'pending' ? 'warn' : '';
  return h('span', { class: `badge ${kind}`, 'data-state': state }, state);
}

function labels(map: Record<string, string> | undefined): HTMLElement {
  return h('span', { class: 'labels' }, ...Object.entries(map ?? {}).map(([k, v]) => h('span', { class: 'badge' }, `${k}=${v}`)));
}

function expression(rule: Rule): HTMLElement {
  const link = rule.logQuery !== undefined ? href('logs', { query: rule.logQuery }) : href('metrics', { q: rule.query, mode: 'table' });
  return h('a', { href: link, class: 'mono', title: 'Open in the explorer' }, rule.query);
}

function ruleRows(rule: Rule): HTMLElement[] {
  const row = h(
    'tr',
    { 'data-rule': rule.name },
    h('td', null, h('b', null, rule.name), h('div', null, expression(rule))),
    h('td', null, rule.type === 'alerting' ? stateBadge(rule.state ?? 'inactive') : h('span', { class: 'muted' }, 'recording')),
    h('td', null, rule.health === 'err' ? h('span', { class: 'badge error' }, 'error') : rule.health),
    h('td', null, when(rule.lastEvaluation)),
    h('td', { class: 'n' }, seconds(rule.evaluationTime)),
  );
  const rows = [row];
  if (rule.lastError) rows.push(h('tr', null, h('td', { colspan: 5, class: 'error-text' }, rule.lastError)));
  for (const a of rule.alerts ?? []) {
    rows.push(
      h(
        'tr',
        { 'data-alert': rule.name, 'data-alert-state': a.state },
        h('td', null, labels(a.labels), a.annotations.summary ? h('div', { class: 'muted' }, a.annotations.summary) : null),
        h('td', null, stateBadge(a.state)),
        h('td', null, `value ${Number(a.value)}`),
        h('td', null, `since ${when(a.activeAt)}`),
        h('td'),
      ),
    );
  }
  return rows;
}

function group(g: Group): HTMLElement {
  return h(
    'section',
    { 'data-group': g.name },
    h('h2', null, g.name, ' ', h('span', { class: 'muted' }, `${g.file} · every ${g.interval} s${g.source === 'logs' ? ' · logs' : ''} · last ${when(g.lastEvaluation)} (${seconds(g.evaluationTime)})`)),
    h(
      'table',
      { class: 'list' },
      h('thead', null, h('tr', null, ...['Rule', 'State', 'Health', 'Last evaluation', 'Took'].map((c, i) => h('th', { class: i === 4 ? 'n' : '' }, c)))),
      h('tbody', null, ...g.rules.flatMap(ruleRows)),
    ),
  );
}

/** Firing alerts of the caller's tenant, for the count in the header. */
export async function firingCount(): Promise<number> {
  const body = await get<{ data: { alerts: Alert[] } }>('/prometheus/api/v1/alerts');
  return body.data.alerts.filter((a) => a.state === 'firing').length;
}

export const alerts: View = {
  title: 'Alerts',
  timed: true,
  async render(ctx: Ctx) {
    const body = await get<Rules>('/prometheus/api/v1/rules');
    if (!ctx.live()) return;
    const { groups, reloadError } = body.data;
    const firing = groups.flatMap((g) => g.rules).flatMap((r) => r.alerts ?? []).filter((a) => a.state === 'firing').length;
    fill(
      ctx.root,
      h('h1', null, 'Alerts'),
      reloadError ? notice('error', `The rule files did not reload; the previous rules run. ${reloadError}`) : null,
      groups.length
        ? h('p', { class: 'muted', id: 'alert-summary' }, `${firing} firing · ${plural(groups.length, 'group')} · ${plural(groups.reduce((n, g) => n + g.rules.length, 0), 'rule')}`)
        : notice('empty', 'No rules are loaded. Point ', h('code', null, '[rules] files'), ' at Prometheus rule files (see the README).'),
      ...groups.map(group),
    );
  },
};
