#!/usr/bin/env node
// npx puts node_modules/.bin first on PATH, so this runs on the project's Node 24,
// which runs the TypeScript sources directly.
import "../src/cli.ts";
