#!/usr/bin/env node
import { agentMain } from '../dist/agent/main.js';

// Once stopped, the process ends: the API client's keep-alive connections must not hold it open.
const code = await agentMain(process.argv.slice(2));
process.stderr.write('', () => process.exit(code));
