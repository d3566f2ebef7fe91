// The HTTP API, as the UI uses it. Every call carries the API token given
// at sign-in (when authentication is on) and the tenant chosen in the header
// bar (X-Scope-OrgID, which the server ignores when the token names one);
// errors become ApiError with the server's message and, for query errors,
// the position in the query.

export class ApiError extends Error {
  constructor(
    message: string,
    readonly status: number,
    readonly position?: number,
  ) {
    super(message);
  }
}

const TENANT_KEY = 'sightline.tenant';

export function tenant(): string {
  return sessionStorage.getItem(TENANT_KEY) ?? '';
}

export function setTenant(t: string): void {
  if (t) sessionStorage.setItem(TENANT_KEY, t);
  else sessionStorage.removeItem(TENANT_KEY);
}

const TOKEN_KEY = 'sightline.token';

/** The API token of this browser session (sessionStorage: gone when the tab closes). */
export function token(): string {
  return sessionStorage.getItem(TOKEN_KEY) ?? '';
}

export function setToken(t: string): void {
  if (t) sessionStorage.setItem(TOKEN_KEY, t);
  else sessionStorage.removeItem(TOKEN_KEY);
}

let unauthorized: (message: string) => void = () => {};

/** Called with the server's message whenever a request is answered 401. */
export function onUnauthorized(handler: (message: string) => void): void {
  unauthorized = handler;
}

export interface WhoAmI {
  auth: boolean;
  tenant: string;
  role: string;
}

type Params = Record<string, string | number | undefined | null | string[]>;

export function query(params: Params): string {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) {
    if (v === undefined || v === null || v === '') continue;
    for (const one of Array.isArray(v) ? v : [v]) q.append(k, String(one));
  }
  const s = q.toString();
  return s ? `?${s}` : '';
}

export async function request<T>(method: string, path: string, params: Params = {}, body?: unknown): Promise<T> {
  const headers: Record<string, string> = {};
  if (tenant()) headers['X-Scope-OrgID'] = tenant();
  if (token()) headers['Authorization'] = `Bearer ${token()}`;
  if (body !== undefined) headers['Content-Type'] = 'application/json';
  let response: Response;
  try {
    response = await fetch(path + query(params), {
      method,
      headers,
      body: body === undefined ? undefined : JSON.stringify(body),
    });
  } catch (e) {
    throw new ApiError(`Sightline did not answer (${(e as Error).message}). Is it running?`, 0);
  }
  const text = await response.text();
  let json: Record<string, unknown> | undefined;
  try {
    json = text ? JSON.parse(text) : undefined;
  } catch {
    json = undefined;
  }
  if (!response.ok || (json && json.status === 'error')) {
    const message = (json?.error as string) ?? text ?? response.statusText;
    const position = typeof json?.position === 'number' ? json.position : undefined;
    const error = new ApiError(message || `HTTP ${response.status}`, response.status, position);
    if (response.status === 401 && path !== '/api/whoami') unauthorized(error.message);
    throw error;
  }
  return json as T;
}

export const get = <T>(path: string, params: Params = {}) => request<T>('GET', path, params);

export const whoami = () => get<WhoAmI>('/api/whoami');

// Prometheus API

export interface PromSeries {
  metric: Record<string, string>;
  values?: [number, string][];
  value?: [number, string];
}

interface PromData {
  data: { resultType: string; result: PromSeries[] | [number, string] };
}

export async function promRange(expr: string, startMs: number, endMs: number, stepS: number): Promise<PromSeries[]> {
  const r = await get<PromData>('/prometheus/api/v1/query_range', {
    query: expr,
    start: (startMs / 1000).toFixed(3),
    end: (endMs / 1000).toFixed(3),
    step: stepS,
  });
  return r.data.result as PromSeries[];
}

export async function promInstant(expr: string, timeMs?: number): Promise<{ type: string; result: PromSeries[] }> {
  const r = await get<PromData>('/prometheus/api/v1/query', {
    query: expr,
    time: timeMs === undefined ? undefined : (timeMs / 1000).toFixed(3),
  });
  if (r.data.resultType === 'scalar' || r.data.resultType === 'string') {
    return { type: r.data.resultType, result: [{ metric: {}, value: r.data.result as [number, string] }] };
  }
  return { type: r.data.resultType, result: r.data.result as PromSeries[] };
}

export async function labelValues(label: string, match?: string): Promise<string[]> {
  const r = await get<{ data: string[] }>(`/prometheus/api/v1/label/${encodeURIComponent(label)}/values`, {
    'match[]': match ? [match] : undefined,
  });
  return r.data;
}

/** A series' name as a legend shows it: `name{a="b"}`. */
export function seriesName(metric: Record<string, string>): string {
  const { __name__: name = '', ...labels } = metric;
  const inner = Object.entries(labels)
    .map(([k, v]) => `${k}="${v}"`)
    .join(', ');
  return inner ? `${name}{${inner}}` : name || '{}';
}
