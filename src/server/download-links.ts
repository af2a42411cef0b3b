// Short-lived signed download URLs. The web UI hands one to the browser, which
// streams the file to disk itself (no blob in the page's memory). The URL names
// what it downloads (an export, or a feed run's file), who may download it (user id and whether as admin, so RLS still
// decides), the session of the token it was made with, and until when; it
// carries no bearer token, and its signature uses a key derived from JWT_SECRET
// for this purpose alone, so it cannot sign tokens. The session is checked in
// SQL on download as a token's is: a link stops working when its user signs out
// everywhere or is disabled, and one made for an admin when they are demoted.
import { createHmac, timingSafeEqual } from "node:crypto";
import type { Caller, SignedInRole } from "./caller.ts";
import { DATABASE_ID } from "./caller.ts";
import { HttpError } from "./errors.ts";

/** How long a download link works. */
export const DOWNLOAD_LINK_SECONDS = 60;

/** The query parameters of a signed download URL, each with its pattern. */
export const DOWNLOAD_LINK_PARAMETERS = {
  user: DATABASE_ID,
  as: /^(user|admin)$/,
  // The token's generation and issue time (either may be empty): see TokenSession.
  session: /^\d{0,10}\.\d{0,12}$/,
  expires: /^\d{1,12}$/,
  signature: /^[A-Za-z0-9_-]{43}$/,
};

type LinkParameters = Partial<Record<keyof typeof DOWNLOAD_LINK_PARAMETERS, string>>;

/**
 * What a link downloads: an export's id, or `feed:<feed>/<run>/<file>`. The
 * two never look alike (an export's id is digits only), so a link for one
 * never opens the other.
 */
export const feedFileSubject = (feedId: string, run: string | number, name: string) => `feed:${feedId}/${run}/${name}`;

function signature(secret: string, subject: string, parameters: Required<Omit<LinkParameters, "signature">>): Buffer {
  const key = createHmac("sha256", secret).update("prompter download links v1").digest();
  return createHmac("sha256", key).update([subject, parameters.user, parameters.as, parameters.session, parameters.expires].join("\n")).digest();
}

/** A URL that lets `caller` download `subject` (an export's id by default) at `path` for the next DOWNLOAD_LINK_SECONDS. */
export function downloadLink(secret: string, subject: string, caller: Caller, now = Date.now(), path = `/api/exports/${subject}/download`): { url: string; expiresAt: Date } {
  const expiresAt = new Date((Math.floor(now / 1000) + DOWNLOAD_LINK_SECONDS) * 1000);
  const parameters = {
    user: caller.userId,
    as: caller.role === "app_admin" ? "admin" : "user",
    session: `${caller.session?.generation ?? ""}.${caller.session?.issuedAt ?? ""}`,
    expires: String(expiresAt.getTime() / 1000),
  };
  const query = new URLSearchParams({ ...parameters, signature: signature(secret, subject, parameters).toString("base64url") });
  return { url: `${path}?${query}`, expiresAt };
}

/**
 * The caller a signed download URL for `subject` stands for, with the session SQL checks;
 * refused with 403 when forged, altered or expired. `linkedRole` is the role
 * the link was made for: see linkStillHolds.
 */
export function linkedCaller(secret: string, subject: string, parameters: LinkParameters, now = Date.now()): Caller & { linkedRole: SignedInRole } {
  const { user, as, session, expires, signature: given } = parameters;
  if (!user || !as || session === undefined || !expires || !given) {
    throw new HttpError(403, "DOWNLOAD_LINK_INVALID", "A download link needs user, as, session, expires and signature; ask for a new link.");
  }
  const expected = signature(secret, subject, { user, as, session, expires });
  const received = Buffer.from(given, "base64url");
  if (received.length !== expected.length || !timingSafeEqual(received, expected)) {
    throw new HttpError(403, "DOWNLOAD_LINK_INVALID", "The download link is not valid; ask for a new link.");
  }
  if (Number(expires) * 1000 <= now) {
    throw new HttpError(403, "DOWNLOAD_LINK_EXPIRED", "The download link has expired; ask for a new link.");
  }
  const [generation, issuedAt] = session.split(".").map((part) => (part === "" ? null : Number(part)));
  return { userId: user, session: { generation, issuedAt, expiresAt: Number(expires) }, linkedRole: as === "admin" ? "app_admin" : "app_user" };
}

/**
 * Once the session check has decided the caller's role: a link made for an
 * admin works only while its user still is one (a demoted admin's own
 * exports of everyone's data are not theirs to download any more).
 */
export function linkStillHolds(caller: Caller & { linkedRole: SignedInRole }): void {
  if (caller.linkedRole === "app_admin" && caller.role !== "app_admin") {
    throw new HttpError(403, "DOWNLOAD_LINK_INVALID", "This download link was made for an admin, and its user no longer is one.");
  }
}
