#!/usr/bin/env node
/** The `meshpilot` command. */
import { Command } from 'commander';
import { serveCommand } from './serve.js';
import { proxyStatusCommand } from './proxy-status.js';
import { proxyConfigCommand } from './proxy-config.js';
import { validateCommand } from './validate.js';
import { analyzeCommand } from './analyze.js';
import { loadCommand } from './load.js';

const program = new Command('meshpilot')
  .description('An Istio Pilot-compatible xDS control plane')
  .version('0.1.0')
  .showHelpAfterError()
  .enablePositionalOptions()
  .addCommand(serveCommand())
  .addCommand(proxyStatusCommand())
  .addCommand(proxyConfigCommand())
  .addCommand(validateCommand())
  .addCommand(analyzeCommand())
  .addCommand(loadCommand());

program.parseAsync(process.argv).catch((e: Error) => {
  process.stderr.write(`meshpilot: ${e.message}\n`);
  process.exit(2);
});
