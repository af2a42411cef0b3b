// The default path (`npm start` with no DATABASE_URL) is the least-privilege
// path: the embedded cluster's superuser only makes the owner and the
// authenticator, with generated passwords kept in DATA_DIR; the gateway signs
// with a secret generated once per data directory, never a constant.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { execFileSync } from "node:child_process";
import { chmod, mkdtemp, readFile, rm, stat } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import jwt from "jsonwebtoken";
import pg from "pg";
import { ConfigError, loadConfig } from "../../src/config.ts";
import { graphql, startServer, type RunningServer } from "../support/server.ts";
import { freePort } from "../support/ports.ts";

const projectRoot = fileURLToPath(new URL("../..", import.meta.url));


describe("the development JWT secret", () => {
  const dirs: string[] = [];
  const dataDir = async () => {
    const dir = await mkdtemp(path.join(tmpdir(), "prompter-data-"));
    dirs.push(dir);
    return dir;
  };
  afterAll(async () => {
    for (const dir of dirs) await rm(dir, { recursive: true, force: true });
  });

  it("is made once per data directory, kept private, and read again on every start", async () => {
    const first = await dataDir();
    const secret = loadConfig({ DATA_DIR: first }).jwtSecret;
    expect(secret.length).toBeGreaterThanOrEqual(64);
    expect(loadConfig({ DATA_DIR: first }).jwtSecret).toBe(secret);
    expect((await stat(path.join(first, "jwt-secret"))).mode & 0o777).toBe(0o600);
    expect(loadConfig({ DATA_DIR: await dataDir() }).jwtSecret).not.toBe(secret);
  });

  it("is refused in production, as is a weak JWT_SECRET; and the listener is loopback unless HOST says otherwise", () => {
    const refusal = (env: Record<string, string>) => {
      try {
        loadConfig({ NODE_ENV: "production", ...env });
      } catch (error) {
        if (error instanceof ConfigError) return error.message;
        throw error;
      }
      return "accepted";
    };
    expect(refusal({})).toMatch(/^JWT_SECRET must be set/);
    // Long phrases of words pass a character count or a character-frequency entropy; zxcvbn sees the words.
    const phrases = ["your-super-secret-jwt-key-change-me-please", "correct-horse-battery-staple-correct-horse", "prompter-bench-secret-0123456789abcdef"];
    for (const weak of ["a".repeat(32), "ab".repeat(20), "0123456789".repeat(3), "short", ...phrases]) {
      expect(refusal({ JWT_SECRET: weak })).toMatch(/^JWT_SECRET is too weak for production: zxcvbn estimates it at about \d+ bits of guessing \(128 needed\); use a random secret/);
    }
    expect(refusal({ JWT_SECRET: "hL3bV0q9xWkZr7Tn2YpC8uF1mJ5sD4gA6eR0tK9oQzNwXyE3" })).toBe("accepted");
    expect(loadConfig({ DATA_DIR: tmpdir() }).host).toBe("127.0.0.1");
    expect(loadConfig({ DATA_DIR: tmpdir(), HOST: "0.0.0.0" }).host).toBe("0.0.0.0");
  });
});

describe("npm start on a fresh machine (embedded PostgreSQL, no DATABASE_URL, no JWT_SECRET)", () => {
  let dataDir: string;
  let server: RunningServer;
  let env: Record<string, string | undefined>;
  const start = () => startServer({ databaseUrl: "", args: ["start"], env, readyTimeoutMs: 120_000 });

  beforeAll(async () => {
    dataDir = await mkdtemp(path.join(tmpdir(), "prompter-embedded-"));
    // As .data would be: the embedded cluster runs as the postgres user, who must reach its data directory.
    await chmod(dataDir, 0o755);
    env = {
      DATABASE_URL: undefined,
      AUTH_DATABASE_URL: undefined,
      JWT_SECRET: undefined,
      DATA_DIR: dataDir,
      EMBEDDED_PG_PORT: String(await freePort()),
    };
    server = await start();
  }, 180_000);
  afterAll(async () => {
    await server?.stop();
    await rm(dataDir, { recursive: true, force: true });
  });

  const superuser = async () => {
    const password = (await readFile(path.join(dataDir, "pg/superuser-password"), "utf8")).trim();
    const client = new pg.Client({ connectionString: `postgres://postgres:${encodeURIComponent(password)}@127.0.0.1:${env.EMBEDDED_PG_PORT}/prompter` });
    await client.connect();
    return client;
  };

  it("runs the gateway as the authenticator and the worker as a plain owner, with generated passwords", async () => {
    for (const file of ["pg/owner-password", "pg/authenticator-password", "jwt-secret"]) {
      expect((await stat(path.join(dataDir, file))).mode & 0o777).toBe(0o600);
    }
    await graphql(server, "{ currentUserId }");
    const client = await superuser();
    try {
      const { rows } = await client.query(
        `select split_part(a.application_name, ' ', 1) as application, a.usename, r.rolsuper
           from pg_stat_activity a join pg_roles r on r.rolname = a.usename
          where a.datname = 'prompter' and a.application_name like 'prompter-%'
          group by 1, 2, 3 order by 1`,
      );
      expect(rows).toEqual([
        { application: "prompter-gateway", usename: "authenticator", rolsuper: false },
        { application: "prompter-worker", usename: "prompter_owner", rolsuper: false },
      ]);
      expect((await client.query("select pg_get_userbyid(datdba) as owner from pg_database where datname = 'prompter'")).rows)
        .toEqual([{ owner: "prompter_owner" }]);
    } finally {
      await client.end();
    }
  });

  it("refuses a token signed with any constant in the repository, and its own tokens survive a restart", async () => {
    const register = await graphql(server, 'mutation { register(input: {username: "dev_alice", password: "dev alice password"}) { result } }');
    const token = register.data!.register.result as string;
    const userId = String((jwt.decode(token) as { user_id: string }).user_id);
    const files = execFileSync("git", ["ls-files", "src", "test", "bench", "README.md", ".ci"], { cwd: projectRoot, encoding: "utf8" })
      .split("\n").filter(Boolean);
    const constants = new Set<string>();
    for (const file of files) {
      const text = await readFile(path.join(projectRoot, file), "utf8").catch(() => "");
      for (const match of text.matchAll(/["'`]([^"'`\n]{16,200})["'`]/g)) constants.add(match[1]);
    }
    // The previous release's development secret, once a constant in src/config.ts.
    constants.add("prompter-development-secret-do-not-use-in-production");
    expect(constants.size).toBeGreaterThan(100);
    const accepted: string[] = [];
    for (const secret of constants) {
      const forged = jwt.sign({ role: "app_admin", user_id: userId, exp: Math.floor(Date.now() / 1000) + 600 }, secret,
        { algorithm: "HS256", audience: "prompter", issuer: "prompter" });
      if ((await graphql(server, "{ currentUserId }", {}, forged)).status !== 401) accepted.push(secret);
    }
    expect(accepted).toEqual([]);

    await server.stop();
    server = await start();
    expect(await graphql(server, "{ currentUserId }", {}, token)).toMatchObject({ status: 200, data: { currentUserId: userId } });
  }, 120_000);
});
