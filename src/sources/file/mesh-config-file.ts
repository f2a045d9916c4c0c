/**
 * `--mesh-config FILE` (istiod's `--meshConfig`): the file is read at start and watched. The parent directory is
 * watched, not the file, so editors' write-to-temp-then-rename and a mounted ConfigMap's `..data` symlink swap are
 * seen too. `onChange` gets the new text (undefined when the file is gone) only when the content changed.
 */
import fs from 'node:fs';
import path from 'node:path';

export class MeshConfigFile {
  private watcher: fs.FSWatcher | undefined;
  private timer: NodeJS.Timeout | undefined;
  private last: string | undefined;

  constructor(readonly file: string, private readonly onChange: (text: string | undefined) => void, private readonly settleMs = 20) {}

  /** The current text; throws when the file cannot be read (a missing file at start is a start error, as istiod). */
  readNow(): string {
    this.last = fs.readFileSync(this.file, 'utf8');
    return this.last;
  }

  watch(): void {
    const dir = path.dirname(path.resolve(this.file));
    this.watcher = fs.watch(dir, { persistent: false }, () => this.schedule());
    this.watcher.on('error', () => this.schedule());
  }

  private schedule(): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = setTimeout(() => this.reread(), this.settleMs);
    this.timer.unref();
  }

  private reread(): void {
    let text: string | undefined;
    try { text = fs.readFileSync(this.file, 'utf8'); } catch { text = undefined; }
    if (text === this.last) return;
    this.last = text;
    this.onChange(text);
  }

  stop(): void {
    if (this.timer) clearTimeout(this.timer);
    this.watcher?.close();
    this.watcher = undefined;
  }
}
