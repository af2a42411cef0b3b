// The web UI at `/`. Its TypeScript and CSS (src/ui) are bundled by esbuild
// in memory when the gateway starts, so a fresh clone runs with `npm start`
// and no build step, and nothing generated is kept in the repository.
// Asset names carry a hash of their content and are cached for good; the page
// itself is revalidated with its ETag on every load. The page is public: the
// data comes from the API, which needs the token.
import { createHash } from "node:crypto";
import { readFile } from "node:fs/promises";
import { fileURLToPath } from "node:url";
import { Router, type Response } from "express";

const UI_DIR = fileURLToPath(new URL("../ui/", import.meta.url));

/** Same origin only, no inline script or style, no plugins, no framing. */
const CONTENT_SECURITY_POLICY = [
  "default-src 'none'",
  "script-src 'self'",
  "style-src 'self'",
  "img-src 'self'",
  "connect-src 'self'",
  "base-uri 'none'",
  "form-action 'self'",
  "frame-ancestors 'none'",
].join("; ");

const SECURITY_HEADERS = {
  "Content-Security-Policy": CONTENT_SECURITY_POLICY,
  "X-Content-Type-Options": "nosniff",
  "Referrer-Policy": "no-referrer",
  "Cross-Origin-Opener-Policy": "same-origin",
  "Cross-Origin-Resource-Policy": "same-origin",
};

interface Asset {
  body: Buffer;
  contentType: string;
  cacheControl: string;
  /** sha256 of the body, hex. */
  digest: string;
}

function asset(body: Buffer | string, contentType: string, cacheControl: string): Asset {
  const content = Buffer.from(body);
  return { body: content, contentType, cacheControl, digest: createHash("sha256").update(content).digest("hex") };
}

async function bundle(): Promise<{ script: string; styles: string }> {
  const esbuild = await import("esbuild").catch((error: NodeJS.ErrnoException) => {
    if (error.code !== "ERR_MODULE_NOT_FOUND") throw error;
    throw new Error("The web UI is built when the gateway starts, with esbuild: install it with `npm install` (or `npm ci`).");
  });
  const result = await esbuild.build({
    entryPoints: [`${UI_DIR}app.ts`, `${UI_DIR}styles.css`],
    bundle: true,
    write: false,
    outdir: "/ui",
    format: "esm",
    target: ["chrome115", "firefox115", "safari16"],
    minify: true,
    legalComments: "none",
    logLevel: "silent",
  });
  const output = (extension: string) => {
    const file = result.outputFiles.find((candidate) => candidate.path.endsWith(extension));
    if (!file) throw new Error(`esbuild wrote no ${extension} file for the UI`);
    return file.text;
  };
  return { script: output(".js"), styles: output(".css") };
}

/** Builds the UI and returns the router that serves it; fails at start when the UI does not build. */
export async function uiRoutes(): Promise<Router> {
  const [{ script, styles }, icon, template] = await Promise.all([
    bundle(),
    readFile(`${UI_DIR}icon.svg`),
    readFile(`${UI_DIR}index.html`, "utf8"),
  ]);
  const immutable = "public, max-age=31536000, immutable";
  const sources: [string, Buffer | string, string][] = [
    ["app.js", script, "text/javascript; charset=utf-8"],
    ["styles.css", styles, "text/css; charset=utf-8"],
    ["icon.svg", icon, "image/svg+xml"],
  ];
  const assets = new Map<string, Asset>();
  let html = template;
  for (const [name, body, contentType] of sources) {
    const served = asset(body, contentType, immutable);
    // `/assets/<name>.<hash>.<ext>`: a new build gets new names, so old copies can be cached for good.
    const dot = name.lastIndexOf(".");
    const servedPath = `/assets/${name.slice(0, dot)}.${served.digest.slice(0, 12)}${name.slice(dot)}`;
    const reference = `"/assets/${name}"`;
    if (!html.includes(reference)) throw new Error(`src/ui/index.html does not refer to ${reference}`);
    html = html.replace(reference, `"${servedPath}"`);
    assets.set(servedPath, served);
  }
  const page = asset(html, "text/html; charset=utf-8", "no-cache");

  // res.send answers 304 itself when If-None-Match matches the ETag set here.
  const send = (res: Response, served: Asset) => {
    res.set({ ...SECURITY_HEADERS, ETag: `"${served.digest}"`, "Cache-Control": served.cacheControl, "Content-Type": served.contentType });
    res.send(served.body);
  };

  const router = Router();
  router.get("/", (_req, res) => send(res, page));
  router.get("/assets/:file", (req, res, next) => {
    const served = assets.get(req.path);
    if (!served) return next();
    send(res, served);
  });
  return router;
}
