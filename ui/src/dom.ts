// A few helpers to build DOM nodes without a framework.

type Child = Node | string | number | null | undefined | false | Child[];
type Attrs = Record<string, string | number | boolean | EventListener | null | undefined>;

/** Creates an element: `h('a', { href: '#/x', onclick: fn }, 'text', child)`. */
export function h<K extends keyof HTMLElementTagNameMap>(
  tag: K,
  attrs: Attrs | null = null,
  ...children: Child[]
): HTMLElementTagNameMap[K] {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs ?? {})) {
    if (v === null || v === undefined || v === false) continue;
    if (typeof v === 'function') el.addEventListener(k.replace(/^on/, ''), v);
    else if (k in el && typeof v !== 'string') (el as unknown as Record<string, unknown>)[k] = v;
    else el.setAttribute(k, v === true ? '' : String(v));
  }
  append(el, children);
  return el;
}

export function append(el: Node, children: Child[]): void {
  for (const c of children) {
    if (c === null || c === undefined || c === false) continue;
    if (Array.isArray(c)) append(el, c);
    else el.appendChild(c instanceof Node ? c : document.createTextNode(String(c)));
  }
}

/** Replaces an element's children. */
export function fill(el: Element, ...children: Child[]): void {
  el.replaceChildren();
  append(el, children);
}

/** A message in place of content: what went wrong, or what to do next. */
export function notice(kind: 'error' | 'empty' | 'loading', ...text: Child[]): HTMLElement {
  return h('div', { class: `notice ${kind}`, role: kind === 'error' ? 'alert' : 'status' }, ...text);
}

export const EMPTY_INGEST = [
  'Point an OpenTelemetry SDK or Collector at OTLP/gRPC ',
  h('code', null, 'http://<this host>:4317'),
  ' or OTLP/HTTP ',
  h('code', null, ':4318'),
  ', or run the demo shop: ',
  h('code', null, 'cargo run --release --example demo'),
  '.',
];

/** Nanoseconds as a short duration: `850µs`, `12.3ms`, `4.56s`. */
export function duration(ns: number): string {
  if (ns < 1e3) return `${ns}ns`;
  if (ns < 1e6) return `${(ns / 1e3).toFixed(ns < 1e4 ? 1 : 0)}µs`;
  if (ns < 1e9) return `${(ns / 1e6).toFixed(ns < 1e7 ? 2 : 1)}ms`;
  if (ns < 60e9) return `${(ns / 1e9).toFixed(2)}s`;
  return `${Math.floor(ns / 60e9)}m${Math.round((ns % 60e9) / 1e9)}s`;
}

/** Unix nanoseconds (as the API's decimal string) as local date and time. */
export function timestamp(ns: string | number, withDate = true): string {
  const ms = Number(BigInt(ns) / 1_000_000n);
  const d = new Date(ms);
  const time = d.toLocaleTimeString(undefined, { hour12: false }) + '.' + String(ms % 1000).padStart(3, '0');
  return withDate ? `${d.toLocaleDateString()} ${time}` : time;
}

/** A number with up to 3 significant digits and a unit suffix. */
export function num(v: number, unit = ''): string {
  if (!Number.isFinite(v)) return '–';
  const abs = Math.abs(v);
  const [div, suffix] = abs >= 1e9 ? [1e9, 'G'] : abs >= 1e6 ? [1e6, 'M'] : abs >= 1e3 ? [1e3, 'k'] : [1, ''];
  const x = v / div;
  const digits = Math.abs(x) >= 100 || x === Math.trunc(x) ? 0 : Math.abs(x) >= 10 ? 1 : 2;
  return `${x.toFixed(digits)}${suffix}${unit}`;
}

const PALETTE = ['#1f77b4', '#ff7f0e', '#2ca02c', '#9467bd', '#8c564b', '#e377c2', '#17becf', '#bcbd22', '#7f7f7f', '#393b79', '#637939', '#8c6d31'];

/** A stable colour for a name (services in charts and waterfalls). */
export function colour(name: string): string {
  let hash = 0;
  for (let i = 0; i < name.length; i++) hash = (hash * 31 + name.charCodeAt(i)) >>> 0;
  return PALETTE[hash % PALETTE.length];
}

/** A value from the API's attribute maps as text. */
export function show(v: unknown): string {
  return typeof v === 'string' ? v : JSON.stringify(v);
}

/** Key/value rows for attributes, resource and the like. */
export function table(map: Record<string, unknown> | undefined): HTMLElement {
  const entries = Object.entries(map ?? {}).sort(([a], [b]) => a.localeCompare(b));
  if (!entries.length) return h('p', { class: 'muted' }, 'none');
  return h('table', { class: 'kv' }, ...entries.map(([k, v]) => h('tr', null, h('th', null, k), h('td', null, show(v)))));
}
