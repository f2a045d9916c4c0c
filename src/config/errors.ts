/** One errors module (as undici's): a base class with a stable `code`; tests assert on class and code. */
export class MeshpilotError extends Error {
  readonly code: string = 'ERR_MESHPILOT';
}

/** A document that failed parsing or schema validation; names the file, the document, the object and the field. */
export class ConfigValidationError extends MeshpilotError {
  override readonly code = 'ERR_CONFIG_INVALID';
  constructor(
    readonly file: string,
    readonly docIndex: number,
    readonly kind: string | undefined,
    readonly objectName: string | undefined,
    readonly field: string,
    readonly reason: string,
  ) {
    super(
      `${file}: document ${docIndex}${kind ? ` (${kind}` : ''}${objectName ? ` ${objectName}` : ''}${kind ? ')' : ''}` +
        `: ${field ? `${field}: ` : ''}${reason}`,
    );
    this.name = 'ConfigValidationError';
  }
}

export class UsageError extends MeshpilotError {
  override readonly code = 'ERR_USAGE';
}
