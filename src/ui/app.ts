// The page's entry point: sign-in, and the pages behind it, chosen by the
// URL's hash (#/effectiveness, #/trends, #/exports, #/feeds, #/account) so back/forward and bookmarks work.
import { accountPage } from "./account.ts";
import { ApiError, graphql, whenSessionEnds } from "./api.ts";
import { byId, say } from "./dom.ts";
import { effectivenessPage } from "./effectiveness.ts";
import { exportsPage } from "./exports.ts";
import { feedsPage } from "./feeds.ts";
import { trendsPage } from "./trends.ts";
import type { Page } from "./page.ts";
import { clearSession, currentSession, saveSession } from "./session.ts";

type PageName = "effectiveness" | "trends" | "exports" | "feeds" | "account";
const PAGE_NAMES: PageName[] = ["effectiveness", "trends", "exports", "feeds", "account"];

const SIGN_IN = {
  authenticate: `mutation SignIn($username: String!, $password: String!) {
    authenticate(input: { username: $username, password: $password }) { result }
  }`,
  register: `mutation Register($username: String!, $password: String!) {
    register(input: { username: $username, password: $password }) { result }
  }`,
};

const pages: Record<PageName, Page> = {
  effectiveness: effectivenessPage(), trends: trendsPage(), exports: exportsPage(), feeds: feedsPage(), account: accountPage(signOut),
};
const signInSection = byId("sign-in");
const signInForm = byId<HTMLFormElement>("sign-in-form");
const signInError = byId("sign-in-error");
const username = byId<HTMLInputElement>("username");
const password = byId<HTMLInputElement>("password");
const notice = byId("notice");
const nav = byId("nav");
const accountBar = byId("account-bar");
const accountName = byId("account-name");
let shown: PageName | "sign-in" | undefined;

function pageFromHash(): PageName {
  return PAGE_NAMES.find((name) => location.hash === `#/${name}`) ?? "effectiveness";
}

function showOnly(name: PageName | "sign-in"): void {
  if (shown && shown !== "sign-in" && shown !== name) pages[shown].hide();
  shown = name;
  signInSection.hidden = name !== "sign-in";
  for (const page of Object.keys(pages) as PageName[]) byId(page).hidden = page !== name;
  nav.querySelectorAll<HTMLAnchorElement>("a[data-page]").forEach((link) => {
    if (link.dataset.page === name) link.setAttribute("aria-current", "page");
    else link.removeAttribute("aria-current");
  });
}

/** Shows the sign-in form; a message replaces the notice, none keeps it. */
function showSignIn(message?: string): void {
  showOnly("sign-in");
  nav.hidden = true;
  accountBar.hidden = true;
  if (message !== undefined) say(notice, message);
  document.title = "Sign in · prompter";
  username.focus();
}

function route(): void {
  const session = currentSession();
  if (!session) {
    showSignIn();
    return;
  }
  const name = pageFromHash();
  const changed = shown !== name;
  showOnly(name);
  nav.hidden = false;
  accountBar.hidden = false;
  // A token from elsewhere (`prompter token`, an identity provider) comes without the username typed here.
  accountName.textContent = [session.username || "Signed in", session.isAdmin && "(admin)"].filter(Boolean).join(" ");
  document.title = `${byId(`${name}-title`).textContent} · prompter`;
  if (changed) byId(`${name}-title`).focus();
  void pages[name].show();
}

function signOut(message: string): void {
  clearSession();
  for (const page of Object.values(pages)) {
    page.hide();
    page.clear();
  }
  showSignIn(message);
}

signInForm.addEventListener("submit", async (event) => {
  event.preventDefault();
  const action = (event.submitter as HTMLButtonElement | null)?.dataset.action === "register" ? "register" : "authenticate";
  const buttons = Array.from(signInForm.querySelectorAll("button"));
  say(signInError, undefined);
  if (!username.value.trim() || !password.value) {
    say(signInError, "Enter a username and a password.");
    return;
  }
  for (const button of buttons) button.disabled = true;
  try {
    const name = username.value.trim();
    const data = await graphql<Record<string, { result: string | null } | null>>(SIGN_IN[action], { username: name, password: password.value });
    const token = data[action]?.result;
    if (!token) throw new ApiError("NO_TOKEN", "The server did not return a token.");
    saveSession(token, name);
    password.value = "";
    say(notice, undefined);
    route();
  } catch (failure) {
    say(signInError, (failure as Error).message);
  } finally {
    for (const button of buttons) button.disabled = false;
  }
});

byId("sign-out").addEventListener("click", () => signOut("You have signed out."));
whenSessionEnds((message) => signOut(`Your session has ended: ${message}`));
window.addEventListener("hashchange", route);
route();
