#!/usr/bin/env node
import { main } from '../dist/cli.js';

// Output that cannot be written (a full disk, a reader gone) fails the run, with exit 1 once it
// has finished or rolled back: never an 'error' event ending the process half-way through an apply.
let lost = false;
for (const stream of [process.stdout, process.stderr]) stream.on('error', () => void (lost = true));
const code = await main(process.argv.slice(2));
await Promise.all([process.stdout, process.stderr].map((s) => new Promise((done) => s.write('', () => done()))));
process.exitCode = lost && code === 0 ? 1 : code;
