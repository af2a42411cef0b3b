// The signed-in user of this tab. sessionStorage, not localStorage: the token
// lives as long as the tab and is not shared with other tabs.
const TOKEN_KEY = "prompter.token";
const USERNAME_KEY = "prompter.username";

export interface Session {
  token: string;
  username: string;
  isAdmin: boolean;
}

function claimsOf(token: string): { role?: unknown } {
  try {
    const payload = token.split(".")[1].replace(/-/g, "+").replace(/_/g, "/");
    return JSON.parse(atob(payload)) as { role?: unknown };
  } catch {
    return {};
  }
}

export function currentSession(): Session | undefined {
  const token = sessionStorage.getItem(TOKEN_KEY);
  if (!token) return undefined;
  // The role only changes what the page says; the server decides what the token may see.
  return { token, username: sessionStorage.getItem(USERNAME_KEY) ?? "", isAdmin: claimsOf(token).role === "app_admin" };
}

export function saveSession(token: string, username: string): void {
  sessionStorage.setItem(TOKEN_KEY, token);
  sessionStorage.setItem(USERNAME_KEY, username);
}

export function clearSession(): void {
  sessionStorage.removeItem(TOKEN_KEY);
  sessionStorage.removeItem(USERNAME_KEY);
}
