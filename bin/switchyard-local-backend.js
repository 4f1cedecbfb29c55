#!/usr/bin/env node
// The standalone local-model server. Flags: see `switchyard-local-backend --help`.
import { launch } from './launch.js';

await launch('local-backend/cli.ts', 'dist/local-backend/cli.js');
