// The shell: sign-in (when the server asks for a token), navigation, the
// time range and refresh controls, the tenant, and the router that draws
// the view named in the URL.

import './style.css';
import { h, fill, notice } from './dom';
import { ApiError, onUnauthorized, setTenant, setToken, tenant, whoami, type WhoAmI } from './api';
import { current, href, range, update, parseDuration } from './route';
import type { Ctx, View } from './view';
import { services } from './views/services';
import { traces } from './views/traces';
import { trace } from './views/trace';
import { logs } from './views/logs';
import { metrics } from './views/metrics';
import { serviceMap } from './views/map';
import { health } from './views/health';
import { dashboards } from './views/dashboards';
import { alerts, firingCount } from './views/alerts';

const VIEWS: Record<string, View> = {
  services,
  traces,
  trace,
  logs,
  metrics,
  map: serviceMap,
  dashboards,
  alerts,
  health,
};

const RANGES = ['5m', '15m', '1h', '3h', '6h', '12h', '24h', '2d', '7d'];
const REFRESH = ['', '5s', '10s', '30s', '1m', '5m'];

const root = document.getElementById('view')!;
let cleanups: (() => void)[] = [];
let generation = 0;
let refreshTimer: number | undefined;
/** Who the server says we are; `auth` false when it asks for no token. */
let session: WhoAmI | undefined;

function navigation(): void {
  const { view } = current();
  fill(
    document.getElementById('nav')!,
    ...Object.entries(VIEWS)
      .filter(([, v]) => v.nav !== false)
      .map(([name, v]) => {
        // Keep the time range when moving between views.
        const keep = new URLSearchParams();
        for (const k of ['from', 'to', 'refresh']) {
          const val = current().params.get(k);
          if (val) keep.set(k, val);
        }
        return h('a', { href: href(name, keep), 'aria-current': name === view ? 'page' : null, 'data-view': name }, v.title);
      }),
  );
  // The number of firing alerts beside "Alerts" (nothing when none, or when the rules API is not reachable).
  firingCount()
    .then((n) => {
      const link = document.querySelector('#nav a[data-view="alerts"]');
      if (!link || !n) return;
      link.querySelector('.badge')?.remove();
      link.append(' ', h('span', { class: 'badge error', id: 'alert-count', title: `${n} firing alerts` }, String(n)));
    })
    .catch(() => undefined);
}

function controls(): void {
  const { params } = current();
  const from = params.get('from') ?? 'now-1h';
  const to = params.get('to') ?? 'now';
  const relative = /^now-(\w+)$/.exec(from)?.[1];
  const rangeSelect = h(
    'select',
    {
      'aria-label': 'Time range',
      id: 'range',
      onchange: (e: Event) => update({ from: `now-${(e.target as HTMLSelectElement).value}`, to: 'now' }),
    },
    ...RANGES.map((r) => h('option', { value: r, selected: r === relative && to === 'now' }, `Last ${r}`)),
    relative && to === 'now' && RANGES.includes(relative)
      ? null
      : h('option', { selected: true, disabled: true }, describeRange(from, to)),
  );
  const refresh = h(
    'select',
    { 'aria-label': 'Auto-refresh', id: 'refresh', onchange: (e: Event) => update({ refresh: (e.target as HTMLSelectElement).value }) },
    ...REFRESH.map((r) => h('option', { value: r, selected: r === (params.get('refresh') ?? '') }, r ? `every ${r}` : 'no refresh')),
  );
  if (session?.auth) {
    const who = h('span', { id: 'session', class: 'muted' }, `tenant ${session.tenant} · ${session.role}`);
    const signOut = h('button', { id: 'sign-out', onclick: () => { setToken(''); session = undefined; signIn(); } }, 'Sign out');
    fill(document.getElementById('controls')!, rangeSelect, refresh, who, signOut);
    return;
  }
  const tenantInput = h('input', {
    'aria-label': 'Tenant',
    id: 'tenant',
    placeholder: 'tenant: default',
    value: tenant(),
    size: 12,
    onchange: (e: Event) => {
      setTenant((e.target as HTMLInputElement).value.trim());
      draw();
    },
  });
  fill(document.getElementById('controls')!, rangeSelect, refresh, tenantInput);
}

function describeRange(from: string, to: string): string {
  const r = range(new URLSearchParams({ from, to }));
  const fmt = (ms: number) => new Date(ms).toLocaleString(undefined, { hour12: false });
  return `${fmt(r.start)} – ${fmt(r.end)}`;
}

async function draw(): Promise<void> {
  cleanups.forEach((f) => f());
  cleanups = [];
  window.clearInterval(refreshTimer);
  const mine = ++generation;
  const { view, params } = current();
  const v = VIEWS[view];
  navigation();
  controls();
  if (!v) {
    fill(root, notice('error', `There is no view called “${view}”. `, h('a', { href: '#/services' }, 'Go to services')));
    return;
  }
  document.title = `${v.title} · Sightline`;
  const ctx: Ctx = {
    root,
    params,
    range: range(params),
    cleanup: (fn) => cleanups.push(fn),
    live: () => mine === generation,
  };
  const period = parseDuration(params.get('refresh') ?? '');
  if (v.timed && period) refreshTimer = window.setInterval(() => redraw(v, mine), period);
  try {
    await v.render(ctx);
  } catch (e) {
    if (ctx.live()) fill(root, notice('error', (e as Error).message));
  }
}

/** An auto-refresh tick: the same view again with the range moved to now. */
async function redraw(v: View, mine: number): Promise<void> {
  if (mine !== generation || document.hidden) return;
  const cleanupsBefore = cleanups;
  cleanups = [];
  const ctx: Ctx = { root, params: current().params, range: range(), cleanup: (fn) => cleanups.push(fn), live: () => mine === generation };
  try {
    await v.render(ctx);
    cleanupsBefore.forEach((f) => f());
  } catch (e) {
    cleanups.push(...cleanupsBefore);
    if (ctx.live()) fill(root, notice('error', (e as Error).message));
  }
}

/** Asks for an API token, checks it with /api/whoami, then draws the view. */
function signIn(message = ''): void {
  cleanups.forEach((f) => f());
  cleanups = [];
  window.clearInterval(refreshTimer);
  generation++;
  fill(document.getElementById('nav')!);
  fill(document.getElementById('controls')!);
  document.title = 'Sign in · Sightline';
  const input = h('input', { type: 'password', id: 'token', autocomplete: 'off', required: true });
  const error = h('p', { id: 'sign-in-error', class: 'error-text', role: 'alert' }, message);
  const form = h(
    'form',
    {
      id: 'sign-in',
      class: 'sign-in',
      onsubmit: async (e: Event) => {
        e.preventDefault();
        setToken(input.value.trim());
        try {
          session = await whoami();
          void draw();
        } catch (err) {
          setToken('');
          error.textContent = (err as Error).message;
        }
      },
    },
    h('h2', null, 'Sign in'),
    h('p', null, 'This Sightline asks for an API token. It is kept for this browser tab only.'),
    h('label', null, 'API token', input),
    h('button', { class: 'primary', type: 'submit' }, 'Sign in'),
    error,
  );
  fill(root, form);
  input.focus();
}

async function start(): Promise<void> {
  onUnauthorized((message) => {
    session = undefined;
    setToken('');
    signIn(message);
  });
  window.addEventListener('hashchange', () => {
    if (!document.getElementById('sign-in')) void draw();
  });
  try {
    session = await whoami();
  } catch (e) {
    if (e instanceof ApiError && e.status === 401) return signIn();
    session = undefined;
  }
  void draw();
}

if (!location.hash) history.replaceState(null, '', href('services'));
void start();
