// The URL is the view's state: `#/<view>?<params>`, so every view can be
// shared and restored. The time range is `from`/`to` (`now-1h`, `now`, or
// Unix milliseconds) and `refresh` is an auto-refresh period in seconds.

export interface Route {
  view: string;
  params: URLSearchParams;
}

export function current(): Route {
  const hash = location.hash.replace(/^#\/?/, '');
  const [view, search = ''] = hash.split('?', 2);
  return { view: view || 'services', params: new URLSearchParams(search) };
}

export function href(view: string, params: Record<string, string | undefined> | URLSearchParams = {}): string {
  const p = params instanceof URLSearchParams ? new URLSearchParams(params) : new URLSearchParams();
  if (!(params instanceof URLSearchParams)) {
    for (const [k, v] of Object.entries(params)) if (v !== undefined && v !== '') p.set(k, v);
  }
  const s = p.toString();
  return `#/${view}${s ? `?${s}` : ''}`;
}

/** Changes some parameters of the current view. `push` makes a history entry (an action), else it is replaced (typing). */
export function update(patch: Record<string, string | undefined | null>, push = true): void {
  const { view, params } = current();
  for (const [k, v] of Object.entries(patch)) {
    if (v === undefined || v === null || v === '') params.delete(k);
    else params.set(k, v);
  }
  const url = href(view, params);
  if (url === location.hash) return;
  if (push) location.hash = url;
  else {
    history.replaceState(null, '', url);
    window.dispatchEvent(new HashChangeEvent('hashchange'));
  }
}

const UNITS: Record<string, number> = { s: 1e3, m: 60e3, h: 3600e3, d: 86400e3, w: 604800e3 };

/** `now`, `now-15m`, Unix milliseconds or an ISO date, as Unix milliseconds. */
export function parseTime(text: string, now = Date.now()): number | undefined {
  const rel = /^now(?:-(\d+)([smhdw]))?$/.exec(text.trim());
  if (rel) return rel[1] ? now - Number(rel[1]) * UNITS[rel[2]] : now;
  if (/^\d+$/.test(text)) return Number(text);
  const t = Date.parse(text);
  return Number.isNaN(t) ? undefined : t;
}

export function parseDuration(text: string): number | undefined {
  const m = /^(\d+)([smhdw])$/.exec(text.trim());
  return m ? Number(m[1]) * UNITS[m[2]] : undefined;
}

export interface Range {
  start: number;
  end: number;
}

export function range(params: URLSearchParams = current().params): Range {
  const now = Date.now();
  const end = parseTime(params.get('to') ?? 'now', now) ?? now;
  const start = parseTime(params.get('from') ?? 'now-1h', now) ?? end - 3600e3;
  return start < end ? { start, end } : { start: end - 3600e3, end };
}

/** A step giving about `points` points over the range, at least 1 s, rounded to whole seconds. */
export function step(r: Range, points = 240): number {
  return Math.max(1, Math.round((r.end - r.start) / 1000 / points));
}

/** A rate window covering at least four steps and 1 m, as PromQL text. */
export function rateWindow(r: Range): string {
  return `${Math.max(60, step(r) * 4)}s`;
}

/** Milliseconds as the API's nanosecond parameters. */
export const nanos = (ms: number) => `${Math.round(ms)}000000`;
