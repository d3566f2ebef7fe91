// The UI against a Sightline with authentication on (tests/ui.rs starts
// it with a keys file): it asks for a token, refuses a wrong one with the
// server's message, keeps a good one for the tab (not for a new one), shows
// the key's tenant and role, and signs out.
//
//   SIGHTLINE_URL=... READ_TOKEN=... node --test tests/sign-in.test.mjs

import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { env, launch } from './browser.mjs';

const URL_ = env('SIGHTLINE_URL');
const READ_TOKEN = env('READ_TOKEN');

let b;

before(async () => {
  b = await launch(URL_);
});

after(async () => {
  await b?.browser.close();
  assert.deepEqual(b?.problems ?? [], [], 'no script errors and no external requests');
});

test('the UI asks for a token, keeps it for the tab, and signs out', async () => {
  const page = await b.newPage();
  await page.goto(`${URL_}#/services`);
  const form = page.locator('#sign-in');
  await form.waitFor();
  await b.shot(page, 'sign-in');

  await page.getByLabel('API token').fill('not-a-real-token-000000');
  await page.getByRole('button', { name: 'Sign in' }).click();
  await page.locator('#sign-in-error').filter({ hasText: /not valid/ }).waitFor();

  await page.getByLabel('API token').fill(READ_TOKEN);
  await page.getByRole('button', { name: 'Sign in' }).click();
  await page.locator('#session').filter({ hasText: 'tenant shop · read' }).waitFor();
  // The key's tenant's data: a service the test sent with tenant shop's ingest key.
  await page.locator('.card[data-service="gateway"]').waitFor();
  assert.equal(await page.locator('#tenant').count(), 0, 'no tenant field when the key names the tenant');
  await b.shot(page, 'signed-in');

  // A reload keeps the session; another tab (a new context) does not share it.
  await page.reload();
  await page.locator('#session').waitFor();
  const other = await b.newPage();
  await other.goto(`${URL_}#/logs`);
  await other.locator('#sign-in').waitFor();

  await page.getByRole('button', { name: 'Sign out' }).click();
  await form.waitFor();
  await page.goto(`${URL_}#/traces`);
  await page.locator('#sign-in').waitFor();
});
