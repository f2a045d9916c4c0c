/**
 * Watches one or more directories of Kubernetes YAML and keeps ConfigStore in step with them.
 *
 * Any change (add, edit, delete, rename, an editor's write-to-temp-then-rename) triggers a short-debounced rescan of
 * the directories the watcher reported (a watcher error rescans everything); a rescan re-reads only files whose
 * size or mtime changed and diffs each file's objects against what it owned before. An invalid document is reported
 * and its object's last good state stays in force.
 */
import fs from 'node:fs';
import path from 'node:path';
import { parseManifests } from './parse.js';
import { keyOf, keyString, type ConfigKey, type ConfigStore } from '../../config/store.js';
import type { ConfigValidationError } from '../../config/errors.js';
import { CLUSTER_SCOPED } from '../../config/kinds.js';

const MANIFEST_EXT = new Set(['.yaml', '.yml', '.json']);
/** Coalesces the events of one write (and of an editor's temp-file rename) into one rescan. */
const RESCAN_DELAY_MS = 15;

interface FileState { mtimeMs: number; size: number; keys: Map<string, ConfigKey> }

export interface FileSourceOptions {
  dirs: string[];
  store: ConfigStore;
  onError?: (err: ConfigValidationError) => void;
  watch?: boolean;
}

export class FileSource {
  private readonly files = new Map<string, FileState>();
  /** The files of each directory (its direct children), so a rescan of one directory does not walk every file. */
  private readonly filesByDir = new Map<string, Set<string>>();
  /** One non-recursive watcher per directory: Node 20's recursive fs.watch on Linux misses events. */
  private readonly watchers = new Map<string, fs.FSWatcher>();
  private watching = false;
  private timer: NodeJS.Timeout | undefined;
  /** When the first watcher event of the pending rescan arrived: the time the changes it finds were observed. */
  private firstEventAt: number | undefined;
  /** While a rescan runs: that time, passed on with every store change it makes. */
  private observedAt: number | undefined;
  /** Directories with events since the last rescan; `fullRescan` when something needs the whole tree read. */
  private readonly dirty = new Set<string>();
  private fullRescan = false;
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
      const w = fs.watch(dir, { persistent: false }, () => this.scheduleRescan(dir));
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

  private scheduleRescan(dir?: string): void {
    if (dir === undefined) this.fullRescan = true; else this.dirty.add(dir);
    this.firstEventAt ??= performance.now();
    if (this.timer) clearTimeout(this.timer);
    // Scans are synchronous, so a rescan never overlaps another.
    this.timer = setTimeout(() => {
      this.timer = undefined;
      this.rescan();
    }, RESCAN_DELAY_MS);
  }

  private rescan(): void {
    const dirs = [...this.dirty].sort();
    const full = this.fullRescan;
    this.dirty.clear();
    this.fullRescan = false;
    this.observedAt = this.firstEventAt;
    this.firstEventAt = undefined;
    try {
      if (full) this.scan(); else this.scanDirs(dirs);
    } finally {
      this.observedAt = undefined;
    }
  }

  /**
   * Rescan only directories that had events: their files (changed ones re-read), subdirectories that appeared
   * (read whole and watched) and ones that went (their files' objects deleted). With thousands of files this is
   * what keeps a one-file edit from costing a walk and a stat of the whole tree.
   */
  private scanDirs(dirs: string[]): void {
    for (const dir of dirs) {
      let entries: fs.Dirent[];
      try { entries = fs.readdirSync(dir, { withFileTypes: true }); } catch { this.dropUnder(dir); continue; }
      const files = new Set<string>();
      const subdirs = new Set<string>();
      for (const e of entries) {
        if (e.name.startsWith('.')) continue;
        const p = path.join(dir, e.name);
        if (e.isDirectory()) {
          subdirs.add(p);
          if (this.watchers.has(p)) continue;
          const inside: string[] = [];
          this.listFiles(p, inside, new Set());
          for (const f of inside.sort()) this.consider(f);
        } else if (MANIFEST_EXT.has(path.extname(e.name))) {
          files.add(p);
          this.consider(p);
        }
      }
      for (const file of [...(this.filesByDir.get(dir) ?? [])]) if (!files.has(file)) this.dropFile(file);
      for (const w of [...this.watchers.keys()]) if (path.dirname(w) === dir && w !== dir && !subdirs.has(w)) this.dropUnder(w);
    }
  }

  /** Re-read one file if its size or mtime changed. */
  private consider(file: string): void {
    let st: fs.Stats;
    try { st = fs.statSync(file); } catch { return; }
    const prev = this.files.get(file);
    if (prev && prev.mtimeMs === st.mtimeMs && prev.size === st.size) return;
    let text: string;
    try { text = fs.readFileSync(file, 'utf8'); } catch { return; }
    this.loadFile(file, text, st, prev);
  }

  private dropFile(file: string): void {
    const state = this.files.get(file);
    if (!state) return;
    for (const key of state.keys.values()) this.opts.store.delete(key, file, this.observedAt);
    this.files.delete(file);
    const inDir = this.filesByDir.get(path.dirname(file));
    inDir?.delete(file);
    if (inDir?.size === 0) this.filesByDir.delete(path.dirname(file));
  }

  /** A directory went away: forget its files and stop watching it and everything under it. */
  private dropUnder(dir: string): void {
    const prefix = dir + path.sep;
    for (const file of [...this.files.keys()]) if (file.startsWith(prefix)) this.dropFile(file);
    for (const [d, w] of [...this.watchers]) {
      if (d === dir || d.startsWith(prefix)) { w.close(); this.watchers.delete(d); }
    }
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
    const seen = new Set<string>();
    const all: string[] = [];
    const dirs = new Set<string>();
    for (const dir of this.opts.dirs) this.listFiles(path.resolve(dir), all, dirs);
    for (const [dir, w] of this.watchers) if (!dirs.has(dir)) { w.close(); this.watchers.delete(dir); }
    for (const file of all.sort()) {
      seen.add(file);
      this.consider(file);
    }
    for (const file of [...this.files.keys()]) if (!seen.has(file)) this.dropFile(file);
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
      this.opts.store.upsert(resource, file, this.observedAt);
    }
    // An invalid document keeps its object's last good state: do not delete what it replaced.
    for (const k of parsed.invalidKeys) {
      const key: ConfigKey = { kind: k.kind, namespace: CLUSTER_SCOPED.has(k.kind) ? '' : (k.namespace ?? 'default'), name: k.name };
      const ks = keyString(key);
      if (prev?.keys.has(ks)) keys.set(ks, key);
    }
    if (prev) {
      for (const [ks, key] of prev.keys) if (!keys.has(ks)) this.opts.store.delete(key, file, this.observedAt);
    }
    this.files.set(file, { mtimeMs: st.mtimeMs, size: st.size, keys });
    const dir = path.dirname(file);
    let inDir = this.filesByDir.get(dir);
    if (!inDir) this.filesByDir.set(dir, (inDir = new Set()));
    inDir.add(file);
  }
}
