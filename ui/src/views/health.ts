// Sightline's own health from its `/metrics`: ingest rates per signal,
// refusals, queue depths, memory, WAL and store figures. Rates come from the
// difference between this scrape and the previous one.

import { ApiError, tenant } from '../api';
import { fill, h, num } from '../dom';
import { type Sample, parse, total } from '../exposition';
import type { Ctx, View } from '../view';

let previous: { at: number; samples: Sample[] } | undefined;

async function scrape(): Promise<Sample[]> {
  const headers: Record<string, string> = tenant() ? { 'X-Scope-OrgID': tenant() } : {};
  const response = await fetch('/metrics', { headers }).catch((e) => {
    throw new ApiError(`Sightline did not answer (${e.message}).`, 0);
  });
  if (!response.ok) throw new ApiError(`/metrics answered ${response.status}: ${await response.text()}`, response.status);
  return parse(await response.text());
}

const SIGNALS = ['traces', 'logs', 'metrics'];

function figure(label: string, value: string, hint = ''): HTMLElement {
  return h('div', { class: 'card', 'data-figure': label }, h('h3', null, label), h('div', { class: 'stat' }, value), hint ? h('div', { class: 'muted' }, hint) : null);
}

export const health: View = {
  title: 'Health',
  timed: true,
  async render(ctx: Ctx) {
    // The first visit scrapes twice, a second apart, so that rates show at once.
    if (!previous) previous = { at: Date.now(), samples: await scrape() };
    if (Date.now() - previous.at < 1000) await new Promise((r) => setTimeout(r, 1000 - (Date.now() - previous!.at)));
    const samples = await scrape();
    const now = Date.now();
    const before = now - previous.at >= 500 ? previous : undefined;
    if (before) previous = { at: now, samples };
    if (!ctx.live()) return;
    const rate = (name: string, match: Record<string, string>) =>
      before ? (total(samples, name, match) - total(before.samples, name, match)) / ((now - before.at) / 1000) : NaN;
    const rows = SIGNALS.map((signal) =>
      h(
        'tr',
        { 'data-signal': signal },
        h('td', null, signal),
        h('td', { class: 'n' }, num(rate('sightline_ingest_accepted_items_total', { signal }), '/s')),
        h('td', { class: 'n' }, num(total(samples, 'sightline_ingest_accepted_items_total', { signal }))),
        h('td', { class: 'n' }, num(total(samples, 'sightline_ingest_refused_items_total', { signal }))),
        h('td', { class: 'n' }, num(total(samples, 'sightline_ingest_invalid_items_total', { signal }))),
        h('td', { class: 'n' }, num(total(samples, 'sightline_ingest_queue_depth', { signal }))),
      ),
    );
    const walSeconds = total(samples, 'sightline_wal_fsync_seconds_sum');
    const walCount = total(samples, 'sightline_wal_fsync_seconds_count');
    fill(
      ctx.root,
      h('h1', null, 'Sightline health'),
      h('p', { class: 'muted' }, 'From ', h('a', { href: '/metrics' }, '/metrics'), '. Rates are measured between refreshes: turn on auto-refresh to follow them.'),
      h(
        'table',
        { class: 'list', id: 'ingest-table' },
        h('thead', null, h('tr', null, ...['Signal', 'Accepted rate', 'Accepted', 'Refused', 'Invalid', 'Queue depth'].map((c, i) => h('th', { class: i ? 'n' : '' }, c)))),
        h('tbody', null, rows),
      ),
      h('h2', null, 'Resources and stores'),
      h(
        'div',
        { class: 'cards' },
        figure('Resident memory', num(total(samples, 'sightline_process_resident_memory_bytes'), 'B')),
        figure('Ingest memory in use', num(total(samples, 'sightline_ingest_memory_in_use_bytes'), 'B'), 'requests accepted but not yet stored'),
        figure('WAL segments', num(total(samples, 'sightline_wal_segments')), `${num(total(samples, 'sightline_wal_records_total'))} records written`),
        figure('WAL fsync', walCount ? `${((walSeconds / walCount) * 1000).toFixed(2)} ms` : '–', `mean of ${num(walCount)} fsyncs`),
        figure('Span parts', num(total(samples, 'sightline_spans_parts')), `${num(total(samples, 'sightline_spans_unflushed'))} spans not yet in a part`),
        figure('Log partitions', num(total(samples, 'sightline_logs_partitions')), `${num(total(samples, 'sightline_logs_indexed_total'))} lines indexed`),
        figure('Metric series', num(total(samples, 'sightline_metrics_series')), `${num(total(samples, 'sightline_metrics_blocks'))} blocks on disk`),
        figure('Store errors', num(['sightline_spans_errors_total', 'sightline_logs_errors_total', 'sightline_metrics_errors_total'].reduce((s, n) => s + total(samples, n), 0))),
      ),
    );
  },
};
