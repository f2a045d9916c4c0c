/** Multi-document YAML → validated resources, with an error per bad document that names file, index, object, field. */
import YAML from 'yaml';
import { validateResource, type KubeResource } from '../../config/schema/index.js';
import { ConfigValidationError } from '../../config/errors.js';

export interface ParsedDoc { index: number; resource: KubeResource }
export interface ParseResult {
  docs: ParsedDoc[];
  errors: ConfigValidationError[];
  /** kind/namespace/name of documents that were invalid but identifiable: their last good state is kept. */
  invalidKeys: Array<{ kind: string; namespace?: string; name: string }>;
}

function ident(raw: unknown): { kind?: string; name?: string; namespace?: string } {
  if (!raw || typeof raw !== 'object') return {};
  const r = raw as { kind?: unknown; metadata?: { name?: unknown; namespace?: unknown } };
  return {
    kind: typeof r.kind === 'string' ? r.kind : undefined,
    name: typeof r.metadata?.name === 'string' ? r.metadata.name : undefined,
    namespace: typeof r.metadata?.namespace === 'string' ? r.metadata.namespace : undefined,
  };
}

export function parseManifests(file: string, text: string): ParseResult {
  const out: ParseResult = { docs: [], errors: [], invalidKeys: [] };
  const documents = YAML.parseAllDocuments(text, { prettyErrors: true });
  const list = Array.isArray(documents) ? documents : [documents];
  list.forEach((doc, index) => {
    if (doc.errors.length > 0) {
      out.errors.push(new ConfigValidationError(file, index, undefined, undefined, '', `YAML: ${doc.errors[0]!.message}`));
      return;
    }
    const raw: unknown = doc.toJS({ maxAliasCount: 100 });
    if (raw === null || raw === undefined) return; // empty document between separators
    const items = (raw as { kind?: unknown }).kind === 'List' && Array.isArray((raw as { items?: unknown }).items)
      ? ((raw as { items: unknown[] }).items)
      : [raw];
    for (const item of items) {
      const result = validateResource(item);
      const id = ident(item);
      if (result.ok) {
        out.docs.push({ index, resource: result.value });
        continue;
      }
      for (const e of result.errors) {
        out.errors.push(new ConfigValidationError(file, index, id.kind, id.name, e.path, e.message));
      }
      if (id.kind && id.name) out.invalidKeys.push({ kind: id.kind, name: id.name, namespace: id.namespace });
    }
  });
  return out;
}
