// Test hygiene: a process a test spawns does not outlive the test, even when
// the test fails before stopping it; one a beforeAll spawns lives until the
// file's tests are done (test/support/server.ts).
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { afterAll, beforeAll, expect, it } from "vitest";
import { useTestDatabase } from "../support/db.ts";
import { type PrompterProcess } from "../support/server.ts";
import { spawnWorker } from "../exports/support.ts";

const db = useTestDatabase();
let exportDir: string;
let forTheFile: PrompterProcess;
let forOneTest: PrompterProcess | undefined;

const isRunning = (process: PrompterProcess) => process.child.exitCode === null && process.child.signalCode === null;

beforeAll(async () => {
  exportDir = await mkdtemp(path.join(tmpdir(), "prompter-exports-"));
  forTheFile = await spawnWorker(db.url, exportDir);
});
afterAll(() => rm(exportDir, { recursive: true, force: true }));

it("a test spawns a worker and leaves it running (as a failing test would)", async () => {
  forOneTest = await spawnWorker(db.url, exportDir);
  expect(isRunning(forOneTest)).toBe(true);
});

it("the next test finds that worker killed, and the beforeAll's worker still running", () => {
  expect(forOneTest!.child.signalCode).toBe("SIGKILL");
  expect(isRunning(forTheFile)).toBe(true);
});
