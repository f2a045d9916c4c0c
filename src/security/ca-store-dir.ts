/**
 * The CA's store in a directory (file mode, `--ca-dir`): Istio's `cacerts` files directly in the directory make a
 * plugged-in CA; otherwise the self-signed root lives in `DIR/istio-ca-secret/` with istio-ca-secret's keys as
 * file names (ca-key.pem mode 0600). One process writes it; there is no leader.
 */
import fs from 'node:fs';
import path from 'node:path';
import { CACERTS_FILES, CaError, SELF_SIGNED_SECRET_DIR, type CaRootRecord, type CaStore, type CacertsFile, type PluggedInMaterial } from './ca.js';

function readIfExists(p: string): string | undefined {
  try { return fs.readFileSync(p, 'utf8'); } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw e;
  }
}

function writeAtomic(p: string, text: string, mode: number): void {
  const tmp = `${p}.tmp-${process.pid}`;
  fs.writeFileSync(tmp, text, { mode });
  fs.renameSync(tmp, p);
}

export class DirCaStore implements CaStore {
  readonly description: string;

  constructor(readonly dir: string) {
    this.description = `--ca-dir ${path.join(dir, SELF_SIGNED_SECRET_DIR)}`;
  }

  private get secretDir(): string { return path.join(this.dir, SELF_SIGNED_SECRET_DIR); }

  where(key: string): string { return path.join(this.secretDir, key); }

  async pluggedIn(): Promise<PluggedInMaterial | undefined> {
    const present = CACERTS_FILES.filter((f) => fs.existsSync(path.join(this.dir, f)));
    if (present.length === 0) return undefined;
    const missing = CACERTS_FILES.filter((f) => !present.includes(f));
    if (missing.length > 0) throw new CaError(`--ca-dir ${this.dir}: plugged-in CA (cacerts) is missing ${missing.join(', ')}`);
    const files = Object.fromEntries(CACERTS_FILES.map((f) => [f, fs.readFileSync(path.join(this.dir, f), 'utf8')])) as Record<CacertsFile, string>;
    return { files, where: (f) => path.join(this.dir, f), source: `--ca-dir ${this.dir}` };
  }

  private read(): CaRootRecord | undefined {
    const caCertPem = readIfExists(this.where('ca-cert.pem'));
    const caKeyPem = readIfExists(this.where('ca-key.pem'));
    if (!caCertPem || !caKeyPem) return undefined;
    return { caCertPem, caKeyPem, rootCertPem: readIfExists(this.where('root-cert.pem')) ?? caCertPem };
  }

  async obtain(mint: () => Promise<CaRootRecord>): Promise<CaRootRecord> {
    const stored = this.read();
    if (stored) return stored;
    const rec = await mint();
    await this.save(rec);
    return rec;
  }

  async save(rec: CaRootRecord): Promise<void> {
    fs.mkdirSync(this.secretDir, { recursive: true, mode: 0o700 });
    writeAtomic(this.where('ca-key.pem'), rec.caKeyPem, 0o600);
    writeAtomic(this.where('ca-cert.pem'), rec.caCertPem, 0o644);
    writeAtomic(this.where('root-cert.pem'), rec.rootCertPem, 0o644);
  }

  canWrite(): boolean { return true; }

  /** One process owns the directory: nobody else rotates it. */
  onChange(): void {}

  close(): void {}
}
