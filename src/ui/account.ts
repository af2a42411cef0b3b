// The account page: change the password (which signs out every other session
// and hands this tab a fresh token) and sign out everywhere. Its forms exist
// only while the page is shown, so no password field lingers in the document.
import { graphql, SessionEnded } from "./api.ts";
import { byId, h, say } from "./dom.ts";
import type { Page } from "./page.ts";
import { currentSession, saveSession } from "./session.ts";

const CHANGE_PASSWORD = `mutation ChangePassword($oldPassword: String!, $newPassword: String!) {
  changePassword(input: { oldPassword: $oldPassword, newPassword: $newPassword }) { result }
}`;
const SIGN_OUT_EVERYWHERE = `mutation SignOutEverywhere { signOutEverywhere(input: {}) { clientMutationId } }`;

function passwordField(id: string, label: string, autocomplete: string, hint?: string): [HTMLElement, HTMLInputElement, ...HTMLElement[]] {
  const input = h("input", { id, type: "password", autocomplete, required: true, ...(hint ? { "aria-describedby": `${id}-hint` } : {}) });
  return [h("label", { for: id }, label), input, ...(hint ? [h("p", { id: `${id}-hint`, class: "hint" }, hint)] : [])];
}

export function accountPage(signOut: (message: string) => void): Page {
  const container = byId("account-forms");

  function passwordForm(): HTMLElement {
    const [currentLabel, current] = passwordField("current-password", "Current password", "current-password");
    const [freshLabel, fresh, freshHint] = passwordField("new-password", "New password", "new-password", "8 to 72 characters. Every other session is signed out.");
    const [repeatLabel, repeat] = passwordField("repeat-password", "New password again", "new-password");
    const error = h("p", { class: "error", role: "alert", hidden: true });
    const status = h("p", { class: "meta", role: "status", hidden: true });
    const button = h("button", { type: "submit" }, "Change password");
    const form = h("form", { class: "card narrow", novalidate: true, "aria-labelledby": "change-password-title" },
      h("h2", { id: "change-password-title" }, "Change password"),
      currentLabel, current, freshLabel, fresh, freshHint, repeatLabel, repeat, error, status,
      h("div", { class: "actions" }, button));
    form.addEventListener("submit", async (event) => {
      event.preventDefault();
      say(error, undefined);
      say(status, undefined);
      if (!current.value || !fresh.value) return say(error, "Enter your current password and a new one.");
      if (fresh.value !== repeat.value) return say(error, "The new password and its repetition differ.");
      button.disabled = true;
      try {
        const data = await graphql<{ changePassword: { result: string } }>(CHANGE_PASSWORD, { oldPassword: current.value, newPassword: fresh.value });
        saveSession(data.changePassword.result, currentSession()?.username ?? "");
        form.reset();
        say(status, "Your password is changed. Every other session is signed out; this one goes on.");
      } catch (failure) {
        if (!(failure instanceof SessionEnded)) say(error, (failure as Error).message);
      } finally {
        button.disabled = false;
      }
    });
    return form;
  }

  function signOutEverywhereCard(): HTMLElement {
    const error = h("p", { class: "error", role: "alert", hidden: true });
    const button = h("button", { type: "button", class: "secondary" }, "Sign out everywhere");
    button.addEventListener("click", async () => {
      button.disabled = true;
      say(error, undefined);
      try {
        await graphql(SIGN_OUT_EVERYWHERE, {});
        signOut("You have signed out everywhere.");
      } catch (failure) {
        if (!(failure instanceof SessionEnded)) say(error, (failure as Error).message);
      } finally {
        button.disabled = false;
      }
    });
    return h("div", { class: "card narrow" },
      h("h2", {}, "Sign out everywhere"),
      h("p", { class: "hint" }, "Ends every session of your account, on every device, this one included."),
      error, h("div", { class: "actions" }, button));
  }

  const clear = () => container.replaceChildren();
  return {
    async show() {
      if (!container.hasChildNodes()) container.append(passwordForm(), signOutEverywhereCard());
    },
    hide: clear,
    clear,
  };
}
