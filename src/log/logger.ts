/** Structured JSON logs (pino). One root logger; components take children with their scope. */
import { pino, type Logger } from 'pino';

export type { Logger };

export const LOG_LEVELS = ['trace', 'debug', 'info', 'warn', 'error', 'fatal', 'silent'] as const;

export function createLogger(level: string = process.env.MESHPILOT_LOG_LEVEL ?? 'info'): Logger {
  if (!(LOG_LEVELS as readonly string[]).includes(level)) throw new Error(`--log-level ${level}: expected one of ${LOG_LEVELS.join(', ')}`);
  return pino({ level, base: { pid: process.pid }, timestamp: pino.stdTimeFunctions.isoTime });
}
