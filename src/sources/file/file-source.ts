/**
 * Watches one or more directories of Kubernetes YAML and keeps ConfigStore in step with them.
 *
 * Any change (add, edit, delete, rename, an editor's write-to-temp-then-rename) triggers a short-debounced rescan;
 * a rescan re-reads only files whose size or mtime changed and diffs each file's objects against what it owned
 * before. An invalid document is reported and its object's last good state stays in force.
 */
import fs from 'node:fs';
import path from 'node:path';
import { parseManifests } from './parse.js';
import { keyOf, keyString, type ConfigKey, type ConfigStore } from '../../config/store.js';
import type { ConfigValidationError } from '../../config/errors.js';
import { CLUSTER_SCOPED } from '../../config/kinds.js';

const MANIFEST_EXT = new Set(['.yaml', '.yml', '.json']);
const RESCAN_DELAY_MS = 30;

interface FileState { mtimeMs: number; size: number; keys: Map<string, ConfigKey> }

export interface FileSourceOptions {
  dirs: string[];
  store: ConfigStore;
  onError?: (err: ConfigValidationError) => void;
  watch?: boolean;
}

export class FileSource {
  private readonly files = new Map<string, FileState>();
  /** One non-recursive watcher per directory: Node 20's recursive fs.watch on Linux misses events. */
  private readonly watchers = new Map<string, fs.FSWatcher>();
  private watching = false;
  private timer: NodeJS.Timeout | undefined;
  private scanning = false;
  private rescanPending = false;
  /** Count of rejected documents since start (exported as a metric). */
  rejected = 0;

  constructor(private readonly opts: FileSourceOptions) {}

  /** First full load; resolves once every file has been read. */
  async start(): Promise<void> {
    for (const dir of this.opts.dirs) {
      if (!fs.existsSync(dir) || !fs.statSync(dir).isDirectory()) throw new Error(`--config-dir ${dir}: not a directory`);
    }
    this.watching = this.opts.watch !== false;
    this.scan();
  }

  private watchDir(dir: string): void {
    if (!this.watching || this.watchers.has(dir)) return;
    try {
      const w = fs.watch(dir, { persistent: false }, () => this.scheduleRescan());
      w.on('error', () => { w.close(); this.watchers.delete(dir); this.scheduleRescan(); });
      this.watchers.set(dir, w);
    } catch {
      // The directory vanished between listing and watching; the next rescan settles it.
    }
  }

  stop(): void {
    this.watching = false;
    for (const w of this.watchers.values()) w.close();
    this.watchers.clear();
    if (this.timer) clearTimeout(this.timer);
  }

  private scheduleRescan(): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = setTimeout(() => {
      this.timer = undefined;
      if (this.scanning) { this.rescanPending = true; return; }
      this.scan();
    }, RESCAN_DELAY_MS);
  }

  private listFiles(dir: string, out: string[], dirs: Set<string>): void {
    dirs.add(dir);
    this.watchDir(dir);
    let entries: fs.Dirent[];
    try { entries = fs.readdirSync(dir, { withFileTypes: true }); } catch { return; }
    for (const e of entries) {
      if (e.name.startsWith('.')) continue; // editors' swap and temp files
      const p = path.join(dir, e.name);
      if (e.isDirectory()) this.listFiles(p, out, dirs);
      else if (MANIFEST_EXT.has(path.extname(e.name))) out.push(p);
    }
  }

  /** Synchronous: a scan is one consistent step, and ConfigStore events come out in file order. */
  scan(): void {
    this.scanning = true;
    try {
      const seen = new Set<string>();
      const all: string[] = [];
      const dirs = new Set<string>();
      for (const dir of this.opts.dirs) this.listFiles(path.resolve(dir), all, dirs);
      for (const [dir, w] of this.watchers) if (!dirs.has(dir)) { w.close(); this.watchers.delete(dir); }
      for (const file of all.sort()) {
        seen.add(file);
        let st: fs.Stats;
        try { st = fs.statSync(file); } catch { continue; }
        const prev = this.files.get(file);
        if (prev && prev.mtimeMs === st.mtimeMs && prev.size === st.size) continue;
        let text: string;
        try { text = fs.readFileSync(file, 'utf8'); } catch { continue; }
        this.loadFile(file, text, st, prev);
      }
      for (const [file, state] of this.files) {
        if (seen.has(file)) continue;
        for (const key of state.keys.values()) this.opts.store.delete(key, file);
        this.files.delete(file);
      }
    } finally {
      this.scanning = false;
      if (this.rescanPending) { this.rescanPending = false; this.scheduleRescan(); }
    }
  }

  private loadFile(file: string, text: string, st: fs.Stats, prev: FileState | undefined): void {
    const parsed = parseManifests(file, text);
    for (const err of parsed.errors) {
      this.rejected++;
      this.opts.onError?.(err);
    }
    const keys = new Map<string, ConfigKey>();
    for (const { resource } of parsed.docs) {
      const key = keyOf(resource);
      keys.set(keyString(key), key);
      this.opts.store.upsert(resource, file);
    }
    // An invalid document keeps its object's last good state: do not delete what it replaced.
    for (const k of parsed.invalidKeys) {
      const key: ConfigKey = { kind: k.kind, namespace: CLUSTER_SCOPED.has(k.kind) ? '' : (k.namespace ?? 'default'), name: k.name };
      const ks = keyString(key);
      if (prev?.keys.has(ks)) keys.set(ks, key);
    }
    if (prev) {
      for (const [ks, key] of prev.keys) if (!keys.has(ks)) this.opts.store.delete(key, file);
    }
    this.files.set(file, { mtimeMs: st.mtimeMs, size: st.size, keys });
  }
}
