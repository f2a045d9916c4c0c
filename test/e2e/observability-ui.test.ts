/**
 * The /debug/ui status page in a real headless Chromium (Debian's /usr/bin/chromium driven by playwright-core):
 * it renders live data — connected proxies with their sync state, push rate, the convergence histogram, worker
 * utilisation — follows changes without a reload, loads nothing from outside, and changes the log level.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { chromium, type BrowserContext, type Page } from 'playwright-core';
import { startMeshpilot, serviceYaml, type TestMesh } from '../helpers/meshpilot.js';
import { AdsTestClient } from '../helpers/ads-client.js';
import { CLUSTER_TYPE, LISTENER_TYPE } from '../../src/proto/type-urls.js';

const CHROMIUM = '/usr/bin/chromium';
const haveChromium = fs.existsSync(CHROMIUM);
const NODE = (pod: string): string => `sidecar~10.1.0.1~${pod}.default~default.svc.cluster.local`;
const META = { NAMESPACE: 'default', INTERCEPTION_MODE: 'NONE' };

let mesh: TestMesh;
let browser: BrowserContext | undefined;
let profile: string;
const clients: AdsTestClient[] = [];

before(async () => {
  if (!haveChromium) return;
  mesh = await startMeshpilot({ 'reviews.yaml': serviceYaml({ name: 'reviews', port: 9080, endpoints: [{ ip: '10.0.0.1', port: 9080 }] }) }, { pushAckTimeoutMs: 200 });
  profile = fs.mkdtempSync(path.join(os.tmpdir(), 'meshpilot-chromium-'));
  // A fresh profile directory (playwright passes it as --user-data-dir).
  browser = await chromium.launchPersistentContext(profile, {
    executablePath: CHROMIUM,
    headless: true,
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking',
      '--disable-component-update', '--disable-sync'],
  });
});

after(async () => {
  for (const c of clients) c.close();
  await browser?.close();
  await mesh?.stop();
  if (profile) fs.rmSync(profile, { recursive: true, force: true });
});

async function cellText(page: Page, proxy: string, column: number): Promise<string> {
  return page.locator(`tr[data-proxy="${proxy}"] td`).nth(column).innerText();
}

test('the status page renders live proxies, sync state, push rate, convergence and utilisation', { skip: haveChromium ? false : `no ${CHROMIUM} (scripts/install-test-peers.sh installs Debian's chromium)` }, async () => {
  const page = await browser!.newPage();
  const external: string[] = [];
  const base = `http://127.0.0.1:${mesh.server.monitoringPort}`;
  page.on('request', (r) => { if (!r.url().startsWith(base)) external.push(r.url()); });
  await page.goto(`${base}/debug/ui`);

  // A proxy that ACKs and one that never does.
  const acker = new AdsTestClient(mesh.xdsAddress, NODE('ui-acker'), META);
  const silent = new AdsTestClient(mesh.xdsAddress, NODE('ui-silent'), META);
  clients.push(acker, silent);
  for (const t of [CLUSTER_TYPE, LISTENER_TYPE]) {
    acker.send({ type_url: t });
    acker.ack(await acker.next(t));
  }
  silent.send({ type_url: CLUSTER_TYPE });
  await silent.next(CLUSTER_TYPE);

  // The page polls once a second: the rows appear without a reload.
  await page.locator(`tr[data-proxy="${NODE('ui-acker')}"]`).waitFor({ timeout: 5000 });
  await page.waitForFunction((id) => document.querySelector(`tr[data-proxy="${id}"] td:nth-child(3)`)?.textContent === 'SYNCED', NODE('ui-acker'), { timeout: 5000 });
  assert.equal(await cellText(page, NODE('ui-acker'), 2), 'SYNCED');
  assert.equal(await cellText(page, NODE('ui-acker'), 3), 'SYNCED');
  assert.equal(await cellText(page, NODE('ui-acker'), 4), 'NOT SENT');
  assert.equal(await cellText(page, NODE('ui-silent'), 2), 'STALE');
  assert.equal(await page.locator('#proxy-count').innerText(), '2');
  assert.ok(Number(await page.locator('#push-rate').innerText()) > 0, 'responses were sent in the last 10 s');

  // A config change: a push to both proxies lands in the convergence histogram, and the page shows it.
  mesh.write('reviews.yaml', serviceYaml({ name: 'reviews', port: 9081, endpoints: [{ ip: '10.0.0.1', port: 9080 }] }));
  await mesh.settle();
  await page.waitForFunction(() => [...document.querySelectorAll('#convergence .bar')].reduce((a, b) => a + Number(b.getAttribute('data-count')), 0) >= 2, undefined, { timeout: 5000 });
  assert.equal(await page.locator('#convergence .bar').count(), 9, 'istiod\'s 8 buckets and +Inf');
  assert.match(await page.locator('#utilization').innerText(), /^\d+ %$/);
  const version = await page.locator('#push-version').innerText();
  assert.equal(version, mesh.server.engine.pushContext.version);

  // Runtime log level change from the page.
  assert.equal(mesh.server.log.level, 'silent');
  await page.selectOption('#log-level', 'debug');
  await page.locator('#log-result').filter({ hasText: 'now debug' }).waitFor({ timeout: 5000 });
  assert.equal(mesh.server.log.level, 'debug');
  mesh.server.log.level = 'silent';

  // A disconnect disappears from the page.
  silent.close();
  await page.locator(`tr[data-proxy="${NODE('ui-silent')}"]`).waitFor({ state: 'detached', timeout: 5000 });
  assert.deepEqual(external, [], 'the page is self-contained');
  await page.close();
});
