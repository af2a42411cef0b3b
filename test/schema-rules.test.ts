// Every rule of the schema, broken on purpose: each must fail with its own
// SQLSTATE or constraint name and change nothing.
import { beforeAll, describe, expect, it } from "vitest";
import type pg from "pg";
import { actAs, createUser, errorOf, useTestDatabase } from "./support/db.ts";

const db = useTestDatabase();
let alice: string;
let bob: string;

beforeAll(async () => {
  alice = await createUser(db.pool, { username: "Alice" });
  bob = await createUser(db.pool, { username: "bob" });
});

const asAlice = <T>(work: (client: pg.PoolClient) => Promise<T>) => actAs(db.pool, { role: "app_user", userId: alice }, work);
const asBob = <T>(work: (client: pg.PoolClient) => Promise<T>) => actAs(db.pool, { role: "app_user", userId: bob }, work);
// As the gateway calls it with ALLOW_REGISTRATION on.
const asAnonymous = <T>(work: (client: pg.PoolClient) => Promise<T>) => actAs(db.pool, { role: "app_anonymous" }, async (c) => {
  await c.query("select set_config('prompter.allow_registration', 'on', true)");
  return work(c);
});

async function aliceVersion(client: pg.PoolClient, source = "syntax") {
  const prompt = (await client.query("insert into app_public.prompts (text) values ('a prompt') returning id")).rows[0].id;
  const version = (await client.query(
    "insert into app_public.prompt_versions (prompt_id, text, source) values ($1, 'better', $2) returning id", [prompt, source])).rows[0].id;
  return { prompt, version };
}

const SCORE = "insert into app_public.judge_scores (prompt_version_id, clarity, specificity, actionability, structure, context_use) values ($1, $2, $3, $4, $5, $6)";

describe("accounts", () => {
  it("register returns claims for the new user, who can then authenticate with any letter case", async () => {
    const claims = await asAnonymous(async (c) => {
      const registered = (await c.query("select * from app_public.register('Carol', 'correct horse')")).rows[0];
      const authenticated = (await c.query("select * from app_public.authenticate('carol', 'correct horse')")).rows[0];
      return { registered, authenticated };
    });
    expect(claims.registered.role).toBe("app_user");
    expect(claims.authenticated.user_id).toBe(claims.registered.user_id);
    const lifetime = Number(claims.registered.exp) - Date.now() / 1000;
    expect(lifetime).toBeGreaterThan(23.9 * 3600);
    expect(lifetime).toBeLessThanOrEqual(24 * 3600 + 5);
  });

  it("the token lifetime follows prompter.jwt_ttl", async () => {
    const exp = await asAnonymous(async (c) => {
      await c.query("select set_config('prompter.jwt_ttl', '15 minutes', true)");
      return Number((await c.query("select exp from app_public.register('dave', 'correct horse')")).rows[0].exp);
    });
    expect(exp - Date.now() / 1000).toBeLessThanOrEqual(15 * 60 + 5);
  });

  it("usernames are unique regardless of case", async () => {
    // register answers null for a taken name (so its throttle's count commits; the gateway says PRTKN).
    const registered = await asAnonymous(async (c) => (await c.query("select (app_public.register('ALICE', 'correct horse')).user_id")).rows[0].user_id);
    expect(registered).toBeNull();
    const added = await errorOf(db.pool.query("select app_private.create_user('ALICE', 'correct horse')"));
    expect(added).toMatchObject({ code: "PRTKN", message: expect.stringContaining("taken") });
    const direct = await errorOf(db.pool.query("insert into app_public.users (username) values ('alice')"));
    expect(direct).toMatchObject({ code: "23505", constraint: "users_username_key" });
  });

  it("usernames must look like names", async () => {
    for (const bad of ["", "x", "1abc", "has space", "a".repeat(64)]) {
      const error = await asAnonymous((c) => errorOf(c.query("select app_public.register($1, 'correct horse')", [bad])));
      expect(error.code).toBe("PRUSN");
    }
    expect(await errorOf(db.pool.query("insert into app_public.users (username) values ('no spaces please')")))
      .toMatchObject({ code: "23514", constraint: "users_username_format" });
  });

  it("passwords must be 8 to 72 characters", async () => {
    for (const bad of ["short", "x".repeat(73)]) {
      const error = await asAnonymous((c) => errorOf(c.query("select app_public.register('erin', $1)", [bad])));
      expect(error.code).toBe("PRWKP");
    }
  });

  it("a wrong password and an unknown user get the same answer: no token", async () => {
    await asAnonymous(async (c) => {
      await c.query("select app_public.register('frank', 'correct horse')");
      const answer = async (username: string) => (await c.query("select app_public.authenticate($1, 'wrong horse') as token", [username])).rows[0];
      expect(await answer("frank")).toEqual({ token: null });
      expect(await answer("nobody")).toEqual({ token: null });
    });
  });

  it("password hashes are bcrypt, never the password", async () => {
    const hash = await asAnonymous(async (c) => {
      await c.query("select app_public.register('grace', 'correct horse')");
      await c.query("reset role");
      return (await c.query(
        "select s.password_hash from app_private.user_secrets s join app_public.users u on u.id = s.user_id where u.username = 'grace'")).rows[0].password_hash;
    });
    expect(hash).toMatch(/^\$2a\$10\$/);
    expect(hash).not.toContain("correct horse");
  });
});

describe("agents", () => {
  it("agent names are identifiers, since they become CSV columns", async () => {
    for (const bad of ["Syntax", "with space", "1st", "semi;colon"]) {
      expect(await errorOf(db.pool.query("insert into app_public.agents (name) values ($1)", [bad])))
        .toMatchObject({ code: "23514", constraint: "agents_name_format" });
    }
  });

  it("an agent with versions cannot be deleted", async () => {
    await asAlice(async (c) => {
      await aliceVersion(c, "domain");
      await c.query("reset role");
      expect(await errorOf(c.query("delete from app_public.agents where name = 'domain'")))
        .toMatchObject({ code: "23503", constraint: "prompt_versions_source_fkey" });
    });
  });
});

describe("prompts and versions", () => {
  it("text cannot be empty or blank", async () => {
    await asAlice(async (c) => {
      await c.query("savepoint s");
      expect(await errorOf(c.query("insert into app_public.prompts (text) values ('  \n ')")))
        .toMatchObject({ code: "23514", constraint: "prompts_text_not_blank" });
      await c.query("rollback to savepoint s");
      const { prompt } = await aliceVersion(c);
      await c.query("savepoint s");
      expect(await errorOf(c.query("insert into app_public.prompt_versions (prompt_id, text, source) values ($1, '', 'syntax')", [prompt])))
        .toMatchObject({ code: "23514", constraint: "prompt_versions_text_not_blank" });
      await c.query("rollback to savepoint s");
      expect(await errorOf(c.query("insert into app_public.prompt_versions (prompt_id, text, explanation, source) values ($1, 'ok', ' ', 'syntax')", [prompt])))
        .toMatchObject({ code: "23514", constraint: "prompt_versions_explanation_not_blank" });
    });
  });

  it("the owner defaults to the signed-in user and cannot be set to someone else", async () => {
    await asAlice(async (c) => {
      const { rows } = await c.query("insert into app_public.prompts (text) values ('mine') returning user_id");
      expect(rows[0].user_id).toBe(alice);
      expect(await errorOf(c.query("insert into app_public.prompts (user_id, text) values ($1, 'theirs')", [bob])))
        .toMatchObject({ code: "42501" });
    });
    await asAlice(async (c) => {
      const { prompt } = await aliceVersion(c);
      expect(await errorOf(c.query("update app_public.prompts set user_id = $1 where id = $2", [bob, prompt])))
        .toMatchObject({ code: "42501" });
    });
  });

  it("created_at cannot be changed", async () => {
    await asAlice(async (c) => {
      const { prompt, version } = await aliceVersion(c);
      await c.query("savepoint s");
      expect(await errorOf(c.query("update app_public.prompts set created_at = now() - interval '1 year' where id = $1", [prompt])))
        .toMatchObject({ code: "42501" });
      await c.query("rollback to savepoint s");
      expect(await errorOf(c.query("update app_public.prompt_versions set created_at = now() where id = $1", [version])))
        .toMatchObject({ code: "42501" });
    });
  });

  it("a version's source must be a registered agent", async () => {
    await asAlice(async (c) => {
      const { prompt } = await aliceVersion(c);
      expect(await errorOf(c.query("insert into app_public.prompt_versions (prompt_id, text, source) values ($1, 'x', 'nobody')", [prompt])))
        .toMatchObject({ code: "23503", constraint: "prompt_versions_source_fkey" });
    });
  });

  it("a version can only belong to one of its author's prompts", async () => {
    const bobsPrompt = await asBob(async (c) => {
      const id = (await c.query("insert into app_public.prompts (text) values ('bob''s') returning id")).rows[0].id;
      await c.query("commit");
      return id;
    });
    await asAlice(async (c) => {
      expect(await errorOf(c.query("insert into app_public.prompt_versions (prompt_id, text, source) values ($1, 'x', 'syntax')", [bobsPrompt])))
        .toMatchObject({ code: "23503", constraint: "prompt_versions_prompt_fkey" });
    });
    await db.pool.query("delete from app_public.prompts where id = $1", [bobsPrompt]);
  });

  it("deleting a prompt removes its versions, scores and best head", async () => {
    await asAlice(async (c) => {
      const { prompt, version } = await aliceVersion(c);
      await c.query(SCORE, [version, 1, 2, 3, 4, 5]);
      await c.query("select app_public.set_best_head($1)", [version]);
      await c.query("delete from app_public.prompts where id = $1", [prompt]);
      const { rows } = await c.query(`select
        (select count(*) from app_public.prompt_versions where prompt_id = $1)::int as versions,
        (select count(*) from app_public.judge_scores where prompt_version_id = $2)::int as scores,
        (select count(*) from app_public.best_heads where prompt_id = $1)::int as heads`, [prompt, version]);
      expect(rows[0]).toEqual({ versions: 0, scores: 0, heads: 0 });
    });
  });
});

describe("judge scores", () => {
  it("total is the sum of the five criteria and cannot be written", async () => {
    await asAlice(async (c) => {
      const { version } = await aliceVersion(c);
      const { rows } = await c.query(`${SCORE} returning total`, [version, 1.5, 2, 3, 4, 9.5]);
      expect(Number(rows[0].total)).toBe(20);
      await c.query("savepoint s");
      expect(await errorOf(c.query("update app_public.judge_scores set total = 50 where prompt_version_id = $1", [version])))
        .toMatchObject({ code: "428C9" });
      await c.query("rollback to savepoint s");
      await c.query("update app_public.judge_scores set clarity = 10 where prompt_version_id = $1", [version]);
      expect(Number((await c.query("select total from app_public.judge_scores where prompt_version_id = $1", [version])).rows[0].total)).toBe(28.5);
    });
  });

  it.each(["clarity", "specificity", "actionability", "structure", "context_use"])("%s must be within 0..10", async (criterion) => {
    await asAlice(async (c) => {
      const { version } = await aliceVersion(c);
      for (const bad of [-0.1, 10.01]) {
        const values = [5, 5, 5, 5, 5];
        values[["clarity", "specificity", "actionability", "structure", "context_use"].indexOf(criterion)] = bad;
        await c.query("savepoint s");
        expect(await errorOf(c.query(SCORE, [version, ...values])))
          .toMatchObject({ code: "23514", constraint: `judge_scores_${criterion}_range` });
        await c.query("rollback to savepoint s");
      }
    });
  });

  it("a version has at most one score", async () => {
    await asAlice(async (c) => {
      const { version } = await aliceVersion(c);
      await c.query(SCORE, [version, 1, 1, 1, 1, 1]);
      expect(await errorOf(c.query(SCORE, [version, 2, 2, 2, 2, 2])))
        .toMatchObject({ code: "23505", constraint: "judge_scores_prompt_version_id_key" });
    });
  });
});

describe("scores and best heads of versions that do not exist", () => {
  it("are refused as not found, not as a missing source", async () => {
    await asAlice(async (c) => {
      const { version } = await aliceVersion(c);
      await c.query("delete from app_public.prompt_versions where id = $1", [version]);
      expect((await errorOf(c.query(SCORE, [version, 1, 1, 1, 1, 1]))).code).toBe("PRNFD");
    });
    await asAlice(async (c) => {
      const { prompt, version } = await aliceVersion(c);
      await c.query("delete from app_public.prompt_versions where id = $1", [version]);
      expect((await errorOf(c.query("insert into app_public.best_heads (prompt_id, prompt_version_id) values ($1, $2)", [prompt, version]))).code)
        .toBe("PRNFD");
    });
  });
});

describe("best heads", () => {
  it("the winning version must belong to that prompt", async () => {
    await asAlice(async (c) => {
      const first = await aliceVersion(c);
      const second = await aliceVersion(c);
      expect(await errorOf(c.query("insert into app_public.best_heads (prompt_id, prompt_version_id) values ($1, $2)", [first.prompt, second.version])))
        .toMatchObject({ code: "23503", constraint: "best_heads_version_fkey" });
    });
  });

  it("set_best_head moves the head and refuses versions that are not yours", async () => {
    await asAlice(async (c) => {
      const { prompt, version } = await aliceVersion(c);
      const other = (await c.query(
        "insert into app_public.prompt_versions (prompt_id, text, source) values ($1, 'even better', 'domain') returning id", [prompt])).rows[0].id;
      await c.query("select app_public.set_best_head($1)", [version]);
      const { rows } = await c.query("select prompt_version_id, source from app_public.set_best_head($1)", [other]);
      expect(rows[0]).toEqual({ prompt_version_id: other, source: "domain" });
      await c.query("commit");
    });
    const aliceId = (await db.pool.query("select max(id) as id from app_public.prompt_versions")).rows[0].id;
    const bobTriesAlices = await asBob((c) => errorOf(c.query("select app_public.set_best_head($1)", [aliceId])));
    expect(bobTriesAlices.code).toBe("PRNFD");
    await db.pool.query("delete from app_public.prompts where user_id = $1", [alice]);
  });
});
