// Browser tests of the web UI: headless Chromium driven by playwright-core
// against a running Sightline that tests/ui.rs has filled with a known
// shop (gateway → orders → payments; every fourth trace fails in payments,
// with an ERROR log line) and one trace of 10,000 spans. Every test asserts
// on what the page shows and saves a screenshot.
//
//   SIGHTLINE_URL=http://127.0.0.1:7070/ ... node --test tests/

import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { env, launch } from './browser.mjs';

const URL_ = env('SIGHTLINE_URL');
const TRACES = Number(env('SHOP_TRACES'));
const ERRORS = Math.ceil(TRACES / 4);
const ERROR_TRACE = env('ERROR_TRACE_ID');
const BIG_TRACE = env('BIG_TRACE_ID');

let browser;
let page;
let problems = [];
let screenshot;

before(async () => {
  const b = await launch(URL_);
  ({ browser, problems } = b);
  page = await b.newPage();
  screenshot = b.shot;
});

after(async () => {
  await browser?.close();
  assert.deepEqual(problems, [], 'no script errors and no external requests');
});

const open = async (hash) => {
  await page.goto(`${URL_}#/${hash}`);
  await page.waitForLoadState('networkidle');
};
const shot = (name) => screenshot(page, name);

test('services overview shows each service with its rates', async () => {
  await open('services?from=now-15m');
  for (const s of ['gateway', 'orders', 'payments']) {
    const card = page.locator(`[data-service="${s}"]`);
    await card.waitFor();
    assert.match(await card.innerText(), /requests/);
  }
  // The rate comes from the span-derived metrics: a number, not a dash.
  const rate = await page.locator('[data-service="gateway"] .figures b').first().innerText();
  assert.match(rate, /\/s$/);
  assert.notEqual(rate, '–');
  assert.equal(await page.locator('[data-service="payments"] canvas').count() > 0, true, 'charts drawn');
  await shot('services');
});

test('trace search lists the hits and filters errors', async () => {
  // Conditions hold for one span: payments spans, failing ones.
  await open('traces?service=payments&from=now-15m');
  await page.locator('#trace-hits tbody tr').first().waitFor();
  assert.equal(await page.locator('#trace-hits tbody tr').count(), TRACES);
  assert.ok(await page.locator('#trace-scatter canvas').count(), 'duration scatter drawn');
  await page.getByLabel('errors only').check();
  await page.getByRole('button', { name: 'Find traces' }).click();
  await page.waitForFunction((n) => document.querySelectorAll('#trace-hits tbody tr').length === n, ERRORS);
  assert.match(page.url(), /status=error/, 'the search is in the URL');
  const first = await page.locator('#trace-hits tbody tr').first().innerText();
  assert.match(first, /gateway: GET \/checkout/);
  await shot('traces');
});

test('a trace opens as a waterfall with collapsible spans, details and its logs', async () => {
  await open(`trace?id=${ERROR_TRACE}`);
  const rows = page.locator('.wf-row');
  await rows.first().waitFor();
  assert.equal(await rows.count(), 3);
  assert.match(await page.locator('main h1').innerText(), new RegExp(ERROR_TRACE));
  // Collapse the root: only it remains; expand again.
  await page.locator('.wf-row[aria-level="1"] .wf-toggle').click();
  assert.equal(await rows.count(), 1);
  await page.locator('.wf-row[aria-level="1"] .wf-toggle').click();
  assert.equal(await rows.count(), 3);
  // The failing span's details.
  await page.locator('.wf-row[aria-level="3"]').click();
  const side = page.locator('aside.side');
  assert.match(await side.innerText(), /POST \/charge/);
  assert.match(await side.innerText(), /error: card declined/);
  assert.match(await side.innerText(), /http\.route/);
  assert.ok(await page.locator('.wf-bar.critical').count() >= 1, 'critical path marked');
  // The trace's own log lines, inline.
  const logs = await page.locator('#trace-logs').innerText();
  assert.match(logs, /order 4 placed/);
  assert.match(logs, /card declined for order 4/);
  // Keyboard: Up moves to the parent span.
  await page.locator('.waterfall').press('ArrowUp');
  assert.match(await side.innerText(), /POST \/orders/);
  await shot('trace');
});

test('a trace of 10,000 spans renders only the rows in view', async () => {
  await open(`trace?id=${BIG_TRACE}`);
  await page.locator('.wf-row').first().waitFor();
  assert.match(await page.locator('main').innerText(), new RegExp(`${env('BIG_TRACE_SPANS')} spans`));
  const drawn = await page.locator('.wf-row').count();
  assert.ok(drawn > 10 && drawn < 200, `rows in the DOM: ${drawn}`);
  // Scroll to the end: the last grandchild is drawn, still few rows.
  await page.locator('.waterfall').evaluate((el) => (el.scrollTop = el.scrollHeight));
  await page.waitForFunction(() => [...document.querySelectorAll('.wf-row')].some((r) => r.textContent.includes('row 99')));
  assert.ok((await page.locator('.wf-row').count()) < 200);
  // Collapsing the root hides all the rest.
  await page.locator('.waterfall').evaluate((el) => (el.scrollTop = 0));
  await page.locator('.wf-row[aria-level="1"] .wf-toggle').click();
  assert.equal(await page.locator('.wf-row').count(), 1);
  await page.locator('.wf-row[aria-level="1"] .wf-toggle').click();
  await shot('big-trace');
});

test('log explorer searches, highlights, explains errors and links to traces', async () => {
  await open('logs?from=now-15m&query=severity%3E%3DERROR');
  await page.locator('#log-hits .logline').first().waitFor();
  assert.equal(await page.locator('#log-hits .logline').count(), ERRORS);
  assert.ok(await page.locator('#log-histogram canvas').count(), 'histogram drawn');
  assert.match(await page.locator('#log-hits .sev-ERROR').first().innerText(), /ERROR/);
  // Matched words are marked.
  await page.getByLabel('Log query').fill('declined');
  await page.getByLabel('Log query').press('Enter');
  await page.waitForFunction(() => document.querySelector('#log-hits mark')?.textContent === 'declined');
  // A query that does not parse: the message points at the position.
  await page.getByLabel('Log query').fill('severity>=LOUD');
  await page.getByLabel('Log query').press('Enter');
  const error = page.locator('.query-error');
  await error.waitFor();
  assert.match(await error.innerText(), /^ {10}\^ /);
  await shot('logs-error');
  // From a line to its trace.
  await open('logs?from=now-15m&query=%22card%20declined%20for%20order%204%22');
  await page.locator('#log-hits .logline').first().click();
  await page.locator('.trace-link').click();
  await page.locator('.wf-row').first().waitFor();
  assert.match(page.url(), new RegExp(`trace\\?id=${ERROR_TRACE}`));
  await open('logs?from=now-15m');
  await page.locator('#log-hits .logline').first().waitFor();
  await shot('logs');
});

test('live tail shows a line as it arrives', async () => {
  await open('logs?from=now-15m&live=1');
  await page.locator('#log-hits .logline').first().waitFor();
  const body = `tail check ${Date.now()}`;
  const now = `${Date.now()}000000`;
  const r = await fetch(`${env('SIGHTLINE_OTLP_HTTP')}/v1/logs`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({
      resourceLogs: [{ resource: { attributes: [{ key: 'service.name', value: { stringValue: 'orders' } }] }, scopeLogs: [{ logRecords: [{ timeUnixNano: now, severityNumber: 13, body: { stringValue: body } }] }] }],
    }),
  });
  assert.equal(r.status, 200);
  await page.waitForFunction((b) => document.querySelector('#log-hits .logline .body')?.textContent === b, body, { timeout: 20_000 });
  assert.equal(await page.locator('#live').getAttribute('aria-pressed'), 'true');
});

test('metrics explorer completes names and charts the expected series', async () => {
  await open('metrics?from=now-15m');
  const editor = page.getByLabel('PromQL query 1');
  await editor.click();
  await editor.pressSequentially('traces_spanmetrics_ca');
  const option = page.locator('.suggest li', { hasText: 'traces_spanmetrics_calls_total' });
  await option.first().waitFor();
  await editor.press('Tab');
  assert.equal(await editor.inputValue(), 'traces_spanmetrics_calls_total');
  await editor.fill('sum by (service) (traces_spanmetrics_calls_total{span_kind="SPAN_KIND_SERVER"})');
  await editor.press('Enter');
  const chart = page.locator('#metrics-chart');
  await chart.waitFor();
  assert.equal(await chart.getAttribute('data-series'), '3');
  const legend = await page.locator('.u-legend').innerText();
  for (const s of ['gateway', 'orders', 'payments']) assert.match(legend, new RegExp(s));
  await shot('metrics');
  // The same query as a table of instant values: one per service.
  await page.getByRole('button', { name: 'Table' }).click();
  await page.locator('#instant-table').waitFor();
  const rows = await page.locator('#instant-table tbody tr').allInnerTexts();
  assert.equal(rows.length, 3);
  assert.ok(rows.some((r) => /service="payments"/.test(r) && new RegExp(`\\b${TRACES}\\b`).test(r)), rows.join('\n'));
  // A query that does not parse says why.
  await page.getByLabel('PromQL query 1').fill('sum(');
  await page.getByLabel('PromQL query 1').press('Enter');
  await page.locator('.notice.error').waitFor();
});

test('service map draws the edges and opens a service', async () => {
  await open('map?from=now-15m');
  await page.locator('.map svg').waitFor();
  for (const edge of ['gateway->orders', 'orders->payments']) assert.equal(await page.locator(`[data-edge="${edge}"]`).count(), 1, edge);
  assert.match(await page.locator('[data-edge="orders->payments"] text').textContent(), /% err/);
  await shot('map');
  await page.locator('[data-service="orders"]').click();
  await page.waitForURL(/#\/traces\?service=orders/);
  await page.locator('#trace-hits tbody tr').first().waitFor();
});

test('health shows ingest figures from /metrics', async () => {
  await open('health');
  const rows = page.locator('#ingest-table tbody tr');
  await rows.first().waitFor();
  assert.equal(await rows.count(), 3);
  const traces = await page.locator('[data-signal="traces"]').innerText();
  assert.match(traces, /10k|10\.\d+k/, traces);
  await shot('health');
});

test('a dashboard is built, saved, exported and shown with its variable', async () => {
  await open('dashboards?from=now-15m');
  await page.getByRole('button', { name: 'New dashboard' }).click();
  await page.getByLabel('Title').fill('Checkout health');
  await page.getByRole('button', { name: 'OK' }).click();
  await page.waitForURL(/id=checkout-health&edit=1/);
  await page.getByRole('button', { name: '+ Variable' }).click();
  await page.getByLabel('Name (used as $name)').fill('service');
  await page.getByLabel('Label whose values fill it').fill('service');
  await page.getByLabel('Among series matching (optional)').fill('traces_spanmetrics_calls_total');
  await page.getByRole('button', { name: 'OK' }).click();
  await page.getByLabel('Variable service').waitFor();
  await page.getByRole('button', { name: '+ Panel' }).click();
  await page.getByLabel('Title').fill('Calls of $service');
  await page.getByLabel('Query ($variables allowed)').fill('sum(traces_spanmetrics_calls_total{service="$service"})');
  await page.getByRole('button', { name: 'OK' }).click();
  await page.locator('[data-panel-type="timeseries"] canvas').waitFor();
  await page.getByRole('button', { name: '+ Panel' }).click();
  await page.getByLabel('Title').fill('Lines of $service');
  await page.getByLabel('Type').selectOption('logs');
  await page.getByLabel('Query ($variables allowed)').fill('service:$service');
  await page.getByLabel('Width (1–12 columns)').fill('12');
  await page.getByRole('button', { name: 'OK' }).click();
  await page.locator('[data-panel-type="logs"]').waitFor();
  await page.getByRole('button', { name: 'Done' }).click();
  await page.getByRole('button', { name: 'Export JSON' }).waitFor();
  // Pick the variable: the panels follow it.
  await page.getByLabel('Variable service').selectOption('orders');
  await page.waitForFunction(() => document.querySelector('[data-panel-type="logs"] h3')?.textContent?.includes('Lines of orders'));
  await page.locator('[data-panel-type="logs"] .logline').first().waitFor();
  const lines = await page.locator('[data-panel-type="logs"] .logline').allInnerTexts();
  assert.ok(lines.every((l) => /orders/.test(l)), lines.join('\n'));
  // Export downloads the dashboard as JSON.
  const [download] = await Promise.all([page.waitForEvent('download'), page.getByRole('button', { name: 'Export JSON' }).click()]);
  const chunks = [];
  for await (const c of await download.createReadStream()) chunks.push(c);
  const exported = JSON.parse(Buffer.concat(chunks).toString());
  assert.equal(exported.title, 'Checkout health');
  assert.equal(exported.panels.length, 2);
  // A reload restores the same view from the URL.
  await page.reload();
  await page.locator('[data-panel-type="logs"] .logline').first().waitFor();
  assert.equal(await page.getByLabel('Variable service').inputValue(), 'orders');
  await shot('dashboard');
});

test('another tenant sees empty states that say what to do', async () => {
  await open('services');
  await page.getByLabel('Tenant').fill('nobody');
  await page.getByLabel('Tenant').press('Enter');
  const empty = page.locator('.notice.empty');
  await empty.waitFor();
  assert.match(await empty.innerText(), /4317/);
  await page.getByLabel('Tenant').fill('');
  await page.getByLabel('Tenant').press('Enter');
});

test('the alerts view shows a firing trace-based alert, its labels, and the count in the header', async () => {
  await open('alerts');
  const alert = page.locator('[data-alert="PaymentsFailing"][data-alert-state="firing"]');
  await alert.waitFor();
  const text = await alert.innerText();
  assert.match(text, /service=payments/);
  assert.match(text, /severity=page/);
  assert.match(text, /alertname=PaymentsFailing/);
  assert.match(text, /payments has failing calls/);
  assert.match(await page.locator('#alert-summary').innerText(), /^1 firing/);
  // The header counts firing alerts (fetched when a view is drawn).
  await open('alerts');
  assert.equal(await page.locator('#alert-count').innerText(), '1');
  // A rule's expression opens in the metrics explorer.
  const link = page.locator('[data-rule="PaymentsFailing"] a.mono');
  assert.match(await link.getAttribute('href'), /^#\/metrics\?q=sum/);
  await shot('alerts');
});
