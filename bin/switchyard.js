#!/usr/bin/env node
// The gateway: `switchyard [--config FILE]`, `switchyard check FILE`.
import { launch } from './launch.js';

await launch('gateway/main.ts', 'dist/gateway/main.js');
