/**
 * Conversion of zod issues into flat `{ path, message }` field errors with
 * dotted paths such as `spec.http[0].route[1].weight`.
 */
import { z } from "zod";

export interface FieldError {
  path: string;
  message: string;
}

const IDENT_RE = /^[A-Za-z_$][A-Za-z0-9_$-]*$/;

/** Format a zod path: numbers become `[i]`, odd keys become `["a.b/c"]`. */
export function formatPath(path: ReadonlyArray<string | number>, prefix = ""): string {
  let out = prefix;
  for (const seg of path) {
    if (typeof seg === "number") out += `[${seg}]`;
    else if (IDENT_RE.test(seg)) out += out.length === 0 ? seg : `.${seg}`;
    else out += `[${JSON.stringify(seg)}]`;
  }
  return out;
}

const ZOD_DEFAULT_TYPE_MSG = /^(Required|Expected .*, received .*)$/;

function describeType(t: string): string {
  switch (t) {
    case "float":
      return "non-integer number";
    case "nan":
      return "NaN";
    default:
      return t;
  }
}

function lastKey(path: ReadonlyArray<string | number>): string | undefined {
  const k = path[path.length - 1];
  return typeof k === "string" ? k : undefined;
}

function issueToErrors(issue: z.ZodIssue, prefix: string): FieldError[] {
  const path = formatPath(issue.path, prefix);
  switch (issue.code) {
    case z.ZodIssueCode.unrecognized_keys:
      return issue.keys.map((k) => ({ path: formatPath([...issue.path, k], prefix), message: `unknown field "${k}"` }));
    case z.ZodIssueCode.invalid_type: {
      if (!ZOD_DEFAULT_TYPE_MSG.test(issue.message)) return [{ path, message: issue.message }];
      if (issue.received === "undefined") {
        const key = lastKey(issue.path);
        return [{ path, message: key ? `missing required field "${key}"` : "missing required value" }];
      }
      return [{ path, message: `expected ${describeType(issue.expected)}, got ${describeType(issue.received)}` }];
    }
    case z.ZodIssueCode.invalid_enum_value:
      if (issue.message.startsWith("Invalid enum value")) {
        return [
          {
            path,
            message: `invalid value ${JSON.stringify(issue.received)}; expected one of ${issue.options.map(String).join(", ")}`,
          },
        ];
      }
      return [{ path, message: issue.message }];
    case z.ZodIssueCode.invalid_union:
      if (issue.message === "Invalid input") {
        // Prefer the branch with the fewest issues.
        const best = [...issue.unionErrors].sort((a, b) => a.issues.length - b.issues.length)[0];
        if (best) return best.issues.flatMap((i) => issueToErrors(i, prefix));
        return [{ path, message: "invalid value" }];
      }
      return [{ path, message: issue.message }];
    case z.ZodIssueCode.too_small:
      if (/^(Number|Array|String|Set) must (contain|be)/.test(issue.message)) {
        if (issue.type === "array") return [{ path, message: `must have at least ${issue.minimum} item(s)` }];
        if (issue.type === "string") return [{ path, message: Number(issue.minimum) === 1 ? "must not be empty" : `must be at least ${issue.minimum} characters` }];
        return [{ path, message: `must be ${issue.inclusive ? ">=" : ">"} ${issue.minimum}` }];
      }
      return [{ path, message: issue.message }];
    case z.ZodIssueCode.too_big:
      if (/^(Number|Array|String|Set) must (contain|be)/.test(issue.message)) {
        if (issue.type === "array") return [{ path, message: `must have at most ${issue.maximum} item(s)` }];
        if (issue.type === "string") return [{ path, message: `must be at most ${issue.maximum} characters` }];
        return [{ path, message: `must be ${issue.inclusive ? "<=" : "<"} ${issue.maximum}` }];
      }
      return [{ path, message: issue.message }];
    default:
      return [{ path, message: issue.message }];
  }
}

/** Convert a ZodError into field errors. `prefix` is prepended to every path. */
export function zodErrorToFieldErrors(err: z.ZodError, prefix = ""): FieldError[] {
  const out: FieldError[] = [];
  const seen = new Set<string>();
  for (const issue of err.issues) {
    for (const fe of issueToErrors(issue, prefix)) {
      const key = `${fe.path}\u0000${fe.message}`;
      if (seen.has(key)) continue;
      seen.add(key);
      out.push(fe);
    }
  }
  return out;
}
