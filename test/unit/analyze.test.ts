/**
 * `meshpilot validate` and `meshpilot analyze` over the broken-YAML corpus in test/fixtures/broken: the expected
 * messages (Istio's codes, object, file:line, field) and the exit codes CI relies on, from the real CLI process.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import path from 'node:path';
import { runAnalyze } from '../../src/cli/analyze.js';
import { runValidate } from '../../src/cli/validate.js';

const CORPUS = 'test/fixtures/broken';
const CLI = path.resolve('dist/src/cli/main.js');

function cli(...args: string[]): { code: number; out: string } {
  const r = spawnSync(process.execPath, [CLI, ...args], { encoding: 'utf8' });
  return { code: r.status ?? -1, out: r.stdout + r.stderr };
}

function analyze(dir: string, opts: Partial<Parameters<typeof runAnalyze>[1]> = {}): { code: number; lines: string[] } {
  let text = '';
  const code = runAnalyze([path.join(CORPUS, dir)], { failureThreshold: 'Error', outputThreshold: 'Info', ...opts }, (s) => { text += s; });
  return { code, lines: text.trimEnd().split('\n') };
}

test('semantic problems: unknown host, subset and gateway; subset without pods; conflicting gateways; unreachable rule', () => {
  const { code, lines } = analyze('semantic');
  assert.equal(code, 79);
  const expected = [
    `Error [IST0101] (VirtualService default/ratings-typo ${CORPUS}/semantic/virtual-services.yaml:2) Referenced host not found: "ratinsg"`,
    `Error [IST0101] (VirtualService default/reviews ${CORPUS}/semantic/virtual-services.yaml:11) Referenced gateway not found: "bookinfo-gateway-typo"`,
    `Error [IST0101] (VirtualService default/reviews ${CORPUS}/semantic/virtual-services.yaml:11) Referenced host+subset in destinationrule not found: "reviews+v3"`,
    `Warning [IST0173] (DestinationRule default/reviews ${CORPUS}/semantic/destination-rule.yaml:2) The Subset v2 defined in the DestinationRule does not select any pods.`,
    `Error [IST0145] (Gateway default/bookinfo-a ${CORPUS}/semantic/gateways.yaml:2) Conflict with gateways default/bookinfo-b (workload selector istio=ingressgateway, port 80, hosts *.example.com).`,
    `Error [IST0145] (Gateway default/bookinfo-b ${CORPUS}/semantic/gateways.yaml:11) Conflict with gateways default/bookinfo-a (workload selector istio=ingressgateway, port 80, hosts bookinfo.example.com).`,
    `Warning [IST0130] (VirtualService default/productpage ${CORPUS}/semantic/unreachable.yaml:2) VirtualService rule #1 not used (rule #0 before it matches every request).`,
    `Info [IST0131] (VirtualService default/productpage-api ${CORPUS}/semantic/duplicate-match.yaml:2) VirtualService rule #1 match #0 is not used (duplicate/overlapping match in rule #0).`,
  ];
  assert.deepEqual([...lines].sort(), [...expected].sort());
  // Subset v1 selects reviews-v1-0, and the existing hosts are not reported.
  assert.ok(!lines.some((l) => l.includes('Subset v1') || l.includes('"reviews"') || l.includes('"productpage"')));
});

test('thresholds: warnings alone pass by default and fail with --failure-threshold Warning', () => {
  const onlyWarnings = analyze('semantic', { outputThreshold: 'Warning' });
  assert.ok(onlyWarnings.lines.every((l) => !l.startsWith('Info')));
  const errorsOnly = analyze('semantic', { outputThreshold: 'Error' });
  assert.equal(errorsOnly.lines.length, 5);
  const r = cli('analyze', path.join(CORPUS, 'semantic/destination-rule.yaml'), path.join(CORPUS, 'semantic/mesh.yaml'));
  assert.equal(r.code, 0, r.out);
  assert.match(r.out, /IST0173/);
  const strict = cli('analyze', '--failure-threshold', 'Warning', path.join(CORPUS, 'semantic/destination-rule.yaml'), path.join(CORPUS, 'semantic/mesh.yaml'));
  assert.equal(strict.code, 79);
});

test('schema errors name file, line, object and field (IST0106); validate exits 1', () => {
  const { code, lines } = analyze('schema');
  assert.equal(code, 79);
  assert.deepEqual(lines, [
    `Error [IST0106] (VirtualService reviews-weights ${CORPUS}/schema/bad-weight.yaml:2) Schema validation error: spec.http[0].route[0].weight: expected number, got string`,
    `Error [IST0106] (document 0 ${CORPUS}/schema/no-kind.yaml:1) Schema validation error: kind: missing required field "kind"`,
    `Error [IST0106] (DestinationRule ratings ${CORPUS}/schema/unknown-field.yaml:2) Schema validation error: spec.trafficPolcy: unknown field "trafficPolcy"`,
  ]);
  const v = cli('validate', path.join(CORPUS, 'schema'));
  assert.equal(v.code, 1);
  assert.match(v.out, /bad-weight\.yaml: document 0 \(VirtualService reviews-weights\): spec\.http\[0\]\.route\[0\]\.weight: expected number, got string/);
  assert.match(v.out, /unknown-field\.yaml: document 0 \(DestinationRule ratings\): spec\.trafficPolcy: unknown field "trafficPolcy"/);
  assert.match(v.out, /3 errors; 0 valid objects in 3 files/);
});

test('unparseable YAML: analyze exits 78 (data error), validate 1, both saying where', () => {
  const a = cli('analyze', path.join(CORPUS, 'syntax'));
  assert.equal(a.code, 78);
  assert.match(a.out, /Could not parse: YAML: .*line 4, column 9/);
  const v = cli('validate', path.join(CORPUS, 'syntax'));
  assert.equal(v.code, 1);
  assert.match(v.out, /bad-indent\.yaml: document 0: YAML: /);
});

test('a clean mesh passes both; a missing path is a usage error (2)', () => {
  const a = cli('analyze', path.join(CORPUS, 'valid'));
  assert.equal(a.code, 0, a.out);
  assert.equal(a.out, '✔ No validation issues found when analyzing 1 file.\n');
  let text = '';
  assert.equal(runValidate([path.join(CORPUS, 'valid')], (s) => { text += s; }), 0);
  assert.match(text, /5 objects in 1 file: valid/);
  assert.equal(cli('validate', 'no/such/dir').code, 2);
  assert.equal(cli('analyze', 'no/such/dir').code, 2);
  const json = cli('analyze', '-o', 'json', path.join(CORPUS, 'semantic'));
  assert.equal(json.code, 79);
  const parsed = JSON.parse(json.out) as Array<{ code: string; level: string }>;
  assert.equal(parsed.filter((m) => m.code === 'IST0101').length, 3);
});

test('all broken directories at once: every kind of problem, the parse error decides the exit code', () => {
  const r = cli('analyze', ...['semantic', 'schema', 'syntax'].map((d) => path.join(CORPUS, d)));
  assert.equal(r.code, 78);
  for (const code of ['IST0101', 'IST0106', 'IST0130', 'IST0145', 'IST0173']) assert.match(r.out, new RegExp(code));
});
