// What every browser test file shares: its settings from the environment
// (tests/ui.rs sets them), and a headless Chromium page that records script
// errors and requests to any origin but Sightline's.

import assert from 'node:assert/strict';
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { chromium } from 'playwright-core';

export const env = (name) => {
  const v = process.env[name];
  assert.ok(v, `${name} must be set (tests/ui.rs sets it)`);
  return v;
};

/** Launches Chromium; `problems` collects page errors and external requests. */
export async function launch(url) {
  const shots = env('SCREENSHOTS');
  mkdirSync(shots, { recursive: true });
  const browser = await chromium.launch({ executablePath: env('CHROMIUM'), args: ['--headless', '--no-sandbox'] });
  const problems = [];
  const newPage = async () => {
    const context = await browser.newContext({ viewport: { width: 1400, height: 900 }, acceptDownloads: true });
    const page = await context.newPage();
    page.setDefaultTimeout(15_000);
    page.on('pageerror', (e) => problems.push(`page error: ${e.message}`));
    page.on('request', (r) => {
      const u = r.url();
      if (!u.startsWith(url) && !u.startsWith('blob:') && !u.startsWith('data:')) problems.push(`external request: ${u}`);
    });
    return page;
  };
  const shot = (page, name) => page.screenshot({ path: join(shots, `${name}.png`) });
  return { browser, problems, newPage, shot };
}
