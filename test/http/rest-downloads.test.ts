// REST downloads: GET /api/exports/:id/download for its owner and an admin,
// signed links, Range and ETag, and a file gone from the export storage.
import { describe, expect, it } from "vitest";
import { createHmac } from "node:crypto";
import { rm } from "node:fs/promises";
import path from "node:path";
import { createUser } from "../support/db.ts";
import { signTestToken, TEST_JWT_SECRET } from "../support/server.ts";
import { useRestGateways } from "./rest-gateways.ts";

const { db, gateways, users, call, queueExport, recordOutcome } = useRestGateways();

describe("GET /api/exports/:id/download", () => {
  it("streams the file to its owner and an admin, with Content-Disposition and the sha256 as ETag", async () => {
    const id = await queueExport(users.waiter);
    await recordOutcome(id, { status: "succeeded", content: "request_id,original_prompt\n1,hello\n2,world\n" });
    const { rows: [row] } = await db.pool.query("select sha256, file_name from app_public.exports where id = $1", [id]);
    for (const user of [users.waiter, users.admin]) {
      const response = await call("GET", `/api/exports/${id}/download`, user.token);
      expect(response.status).toBe(200);
      expect(response.text).toBe("request_id,original_prompt\n1,hello\n2,world\n");
      expect(response.headers.get("etag")).toBe(`"${row.sha256}"`);
      expect(response.headers.get("content-disposition")?.replaceAll('"', "")).toBe(`attachment; filename=${row.file_name}`);
      expect(response.headers.get("content-type")).toMatch(/^text\/csv/);
    }
    const unchanged = await call("GET", `/api/exports/${id}/download`, users.waiter.token, { headers: { "if-none-match": `"${row.sha256}"` } });
    expect(unchanged.status).toBe(304);
    const stranger = await call("GET", `/api/exports/${id}/download`, users.b.token);
    expect(stranger).toMatchObject({ status: 404, body: { error: { code: "NOT_FOUND" } } });
    expect(stranger.text).not.toContain("hello");
  });

  it("resumes: Range and If-Range answer 206 with the part, Accept-Ranges and Last-Modified are sent", async () => {
    const content = "request_id,original_prompt\n1,hello\n2,world\n";
    const id = await queueExport(users.waiter);
    await recordOutcome(id, { status: "succeeded", content });
    const url = `/api/exports/${id}/download`;
    const whole = await call("GET", url, users.waiter.token);
    expect(whole.headers.get("accept-ranges")).toBe("bytes");
    const lastModified = whole.headers.get("last-modified")!;
    expect(Date.parse(lastModified)).toBeGreaterThan(Date.now() - 60_000);
    const etag = whole.headers.get("etag")!;

    const part = await call("GET", url, users.waiter.token, { headers: { range: "bytes=27-33" } });
    expect(part.status).toBe(206);
    expect(part.text).toBe(content.slice(27, 34));
    expect(part.headers.get("content-range")).toBe(`bytes 27-33/${content.length}`);
    const rest = await call("GET", url, users.waiter.token, { headers: { range: "bytes=27-", "if-range": etag } });
    expect(rest).toMatchObject({ status: 206, text: content.slice(27) });
    const byDate = await call("GET", url, users.waiter.token, { headers: { range: "bytes=27-", "if-range": lastModified } });
    expect(byDate).toMatchObject({ status: 206, text: content.slice(27) });
    // The file changed since the client's part: it gets the whole new file.
    const changed = await call("GET", url, users.waiter.token, { headers: { range: "bytes=27-", "if-range": '"an-older-sha256"' } });
    expect(changed).toMatchObject({ status: 200, text: content });
    const beyond = await call("GET", url, users.waiter.token, { headers: { range: `bytes=${content.length + 10}-` } });
    expect(beyond.status).toBe(416);
    expect(beyond.headers.get("content-range")).toBe(`bytes */${content.length}`);
  });

  it("POST /api/exports/:id/download-link gives a signed URL that works without a token for a minute", async () => {
    const content = "request_id\n7\n";
    const id = await queueExport(users.waiter);
    await recordOutcome(id, { status: "succeeded", content });
    const linkPath = `/api/exports/${id}/download-link`;
    const issued = await call("POST", linkPath, users.waiter.token);
    expect(issued).toMatchObject({ status: 200, body: { success: true, url: expect.stringMatching(new RegExp(`^/api/exports/${id}/download\\?`)) } });
    const { url, expires_at } = issued.body;
    expect(Date.parse(expires_at) - Date.now()).toBeGreaterThan(50_000);
    expect(Date.parse(expires_at) - Date.now()).toBeLessThanOrEqual(60_000);
    expect(url).not.toContain(users.waiter.token.split(".")[2]);
    const fetched = await call("GET", url);
    expect(fetched).toMatchObject({ status: 200, text: content });
    expect(fetched.headers.get("content-disposition")).toContain(`multi_agent_log-${id}.csv`);

    const link = new URL(url, gateways.server.baseUrl);
    const altered = (name: string, value: string) => {
      const changed = new URL(link);
      changed.searchParams.set(name, value);
      return `${changed.pathname}${changed.search}`;
    };
    // The signature, recomputed here, binds the export, the user, the role, the token's session and the expiry.
    const session = link.searchParams.get("session")!;
    expect(session).toMatch(/^0\.\d+$/); // the token's generation and issue time
    const sign = (exportId: number, user: string, as: string, expires: number) => {
      const key = createHmac("sha256", TEST_JWT_SECRET).update("prompter download links v1").digest();
      return createHmac("sha256", key).update([exportId, user, as, session, expires].join("\n")).digest("base64url");
    };
    expect(link.searchParams.get("signature")).toBe(sign(id, users.waiter.id, "user", Number(link.searchParams.get("expires"))));
    const past = Math.floor(Date.now() / 1000) - 1;
    const forged: [string, string, string][] = [
      ["another user", altered("user", users.b.id), "DOWNLOAD_LINK_INVALID"],
      ["raised to admin", altered("as", "admin"), "DOWNLOAD_LINK_INVALID"],
      ["another session", altered("session", "7."), "DOWNLOAD_LINK_INVALID"],
      ["a later expiry", altered("expires", String(Number(link.searchParams.get("expires")) + 3600)), "DOWNLOAD_LINK_INVALID"],
      ["another export", url.replace(`/exports/${id}/`, `/exports/${id - 1}/`), "DOWNLOAD_LINK_INVALID"],
      ["no signature", altered("signature", ""), "BAD_PARAMETER"],
      ["expired", `/api/exports/${id}/download?user=${users.waiter.id}&as=user&session=${session}&expires=${past}&signature=${sign(id, users.waiter.id, "user", past)}`, "DOWNLOAD_LINK_EXPIRED"],
    ];
    for (const [, forgedUrl, code] of forged) {
      const refused = await call("GET", forgedUrl);
      expect(refused).toMatchObject({ status: code === "BAD_PARAMETER" ? 400 : 403, body: { success: false, error: { code } } });
      expect(refused.text).not.toContain("request_id");
    }
    // A link stands for its user: RLS still decides, so one signed for b finds nothing of the waiter's.
    const forB = `/api/exports/${id}/download?user=${users.b.id}&as=user&session=${session}&expires=${past + 61}&signature=${sign(id, users.b.id, "user", past + 61)}`;
    expect(await call("GET", forB)).toMatchObject({ status: 404, body: { error: { code: "NOT_FOUND" } } });
    // Only the export's owner (or an admin) gets a link.
    expect(await call("POST", linkPath, users.b.token)).toMatchObject({ status: 404, body: { error: { code: "NOT_FOUND" } } });
    expect(await call("POST", linkPath)).toMatchObject({ status: 401, body: { error: { code: "SIGN_IN_REQUIRED" } } });
    expect((await call("POST", linkPath, users.admin.token)).status).toBe(200);
  });

  it("a signed link checks its user's session on download: it stops working once they sign out everywhere, are disabled or, made for an admin, are demoted", async () => {
    const content = "request_id\n8\n";
    const linkOf = async (token: string, id: number) => (await call("POST", `/api/exports/${id}/download-link`, token)).body.url as string;
    const fresh = async (admin: boolean) => {
      const id = await createUser(db.pool, { admin });
      const name = (await db.pool.query("select username from app_public.users where id = $1", [id])).rows[0].username;
      return { id, name, token: signTestToken(id, { admin }) };
    };
    const demoted = await fresh(true);
    const disabled = await fresh(true);
    const signedOut = await fresh(false);
    // An export of the waiter's, which an admin's link reads through RLS; one of the user's own.
    const waiters = await queueExport(users.waiter);
    await recordOutcome(waiters, { status: "succeeded", content });
    const own = await queueExport(signedOut);
    await recordOutcome(own, { status: "succeeded", content });
    // The admin's own export of everyone's data, and one of their own rows only (asked as a plain user).
    const everyones = await queueExport(demoted);
    await recordOutcome(everyones, { status: "succeeded", content });
    const client = await db.pool.connect();
    const { rows: [{ id: personal }] } = await client.query("begin")
      .then(() => client.query("select set_config('role', 'app_user', true), set_config('jwt.claims.user_id', $1, true)", [demoted.id]))
      .then(() => client.query("select id::int from app_public.request_export('multi_agent_log')"))
      .finally(() => client.query("commit").finally(() => client.release()));
    await recordOutcome(personal, { status: "succeeded", content });
    const links = {
      demoted: await linkOf(demoted.token, waiters),
      demotedEveryones: await linkOf(demoted.token, everyones),
      demotedPersonal: await linkOf(demoted.token, personal),
      disabled: await linkOf(disabled.token, waiters),
      signedOut: await linkOf(signedOut.token, own),
    };
    for (const url of Object.values(links)) expect(await call("GET", url)).toMatchObject({ status: 200, text: content });

    await db.pool.query("select app_private.set_user_admin($1, false)", [demoted.name]);
    await db.pool.query("select app_private.set_user_disabled($1, true)", [disabled.name]);
    await db.pool.query("select app_private.revoke_tokens($1)", [signedOut.id]);
    // Someone else's export is out of sight; their own export of everyone's data is refused, by link or
    // token, and no longer offered; a link made while admin works no more, even for their own rows.
    expect(await call("GET", links.demoted)).toMatchObject({ status: 404, body: { error: { code: "NOT_FOUND" } } });
    expect(await call("GET", links.demotedEveryones)).toMatchObject({ status: 403, body: { error: { code: "EXPORT_NOT_DOWNLOADABLE" } } });
    expect(await call("GET", `/api/exports/${everyones}/download`, demoted.token)).toMatchObject({ status: 403, body: { error: { code: "EXPORT_NOT_DOWNLOADABLE" } } });
    expect((await call("GET", `/api/exports/${everyones}`, demoted.token)).body.export.download_url).toBeNull();
    expect(await call("GET", links.demotedPersonal)).toMatchObject({ status: 403, body: { error: { code: "DOWNLOAD_LINK_INVALID" } } });
    expect(await call("GET", `/api/exports/${personal}/download`, demoted.token)).toMatchObject({ status: 200, text: content });
    expect(await call("GET", links.disabled)).toMatchObject({ status: 401, body: { error: { code: "PRSES" } } });
    expect(await call("GET", links.signedOut)).toMatchObject({ status: 401, body: { error: { code: "PRSES" } } });
    // A link made after signing in again works.
    const again = signTestToken(signedOut.id, { claims: { token_generation: 1 } });
    expect(await call("GET", await linkOf(again, own))).toMatchObject({ status: 200, text: content });
  });

  it("answers 409 for an export that has not succeeded, and 410 once the file is gone", async () => {
    const id = await queueExport(users.waiter);
    expect(await call("GET", `/api/exports/${id}/download`, users.waiter.token)).toMatchObject({
      status: 409, body: { success: false, error: { code: "EXPORT_NOT_READY" } },
    });
    await recordOutcome(id, { status: "succeeded", content: "request_id\n" });
    expect((await call("GET", `/api/exports/${id}/download`, users.waiter.token)).status).toBe(200);
    const { rows: [row] } = await db.pool.query("select file_name from app_public.exports where id = $1", [id]);
    await rm(path.join(gateways.server.exportDir, row.file_name));
    expect(await call("GET", `/api/exports/${id}/download`, users.waiter.token)).toMatchObject({
      status: 410, body: { success: false, error: { code: "EXPORT_FILE_GONE" } },
    });
  });
});
