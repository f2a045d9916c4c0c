/**
 * `meshpilot validate PATH...`: schema-check Kubernetes/Istio YAML exactly as the server does when it loads it
 * (src/sources/file/parse.ts). Exit codes for CI: 0 all valid, 1 invalid documents, 2 bad invocation (e.g. a path
 * that does not exist).
 */
import fs from 'node:fs';
import path from 'node:path';
import { Command } from 'commander';
import { parseManifests, type ParseResult } from '../sources/file/parse.js';

const MANIFEST_EXT = new Set(['.yaml', '.yml', '.json']);

export const EXIT_OK = 0;
export const EXIT_INVALID = 1;
export const EXIT_USAGE = 2;

export class PathError extends Error {
  readonly code = 'ERR_PATH';
}

/** Every manifest under the given files and directories (recursively; dot-files skipped, as the file source does). */
export function manifestFiles(paths: readonly string[]): string[] {
  const out: string[] = [];
  const walk = (p: string, explicit: boolean): void => {
    let st: fs.Stats;
    try { st = fs.statSync(p); } catch { throw new PathError(`${p}: no such file or directory`); }
    if (st.isDirectory()) {
      for (const e of fs.readdirSync(p).sort()) if (!e.startsWith('.')) walk(path.join(p, e), false);
    } else if (explicit || MANIFEST_EXT.has(path.extname(p))) out.push(p);
  };
  for (const p of paths) walk(p, true);
  return out;
}

export interface FileResult { file: string; text: string; parsed: ParseResult }

export function parseFiles(paths: readonly string[]): FileResult[] {
  return manifestFiles(paths).map((file) => {
    const text = fs.readFileSync(file, 'utf8');
    return { file, text, parsed: parseManifests(file, text) };
  });
}

export function runValidate(paths: readonly string[], out: (s: string) => void): number {
  let results: FileResult[];
  try { results = parseFiles(paths); } catch (e) {
    if (e instanceof PathError) { out(`Error: ${e.message}\n`); return EXIT_USAGE; }
    throw e;
  }
  let errors = 0;
  let valid = 0;
  for (const r of results) {
    for (const e of r.parsed.errors) { out(`Error: ${e.message}\n`); errors++; }
    for (const d of r.parsed.docs) {
      const m = d.resource.metadata;
      out(`validated ${d.resource.kind} ${m.namespace ? `${m.namespace}/` : ''}${m.name} (${r.file})\n`);
      valid++;
    }
  }
  out(errors === 0
    ? `${valid} object${valid === 1 ? '' : 's'} in ${results.length} file${results.length === 1 ? '' : 's'}: valid\n`
    : `${errors} error${errors === 1 ? '' : 's'}; ${valid} valid object${valid === 1 ? '' : 's'} in ${results.length} file${results.length === 1 ? '' : 's'}\n`);
  return errors === 0 ? EXIT_OK : EXIT_INVALID;
}

export function validateCommand(): Command {
  return new Command('validate')
    .description('Schema-check Kubernetes and Istio YAML files or directories (exit 0 valid, 1 invalid, 2 bad path)')
    .argument('<paths...>', 'files or directories')
    .action((paths: string[]) => {
      process.exitCode = runValidate(paths, (s) => process.stdout.write(s));
    });
}
