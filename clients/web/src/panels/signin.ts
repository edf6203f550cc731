// Sign-in: the API token is checked with WhoAmI before the dashboard opens.
import { createApi } from "../api/clients";
import { showError } from "../ui/card";
import { h, tid } from "../ui/dom";
import type { User } from "../gen/trademaster/v1/security_pb";

/** The sign-in form; `onSignedIn` gets the token and who it belongs to. `notice` explains a forced sign-out. */
export function signInPage(onSignedIn: (token: string, user: User) => void, notice: unknown = null): HTMLElement {
  const token = h("input", {
    type: "password",
    autocomplete: "current-password",
    placeholder: "tm_…",
    required: true,
    ...tid("signin-token"),
  });
  const problem = h("p", { class: "error", role: "alert", ...tid("signin-error") });
  const submit = h("button", { type: "submit", class: "primary", ...tid("signin-submit") }, "Sign in");
  showError(problem, notice);

  async function signIn(event: Event): Promise<void> {
    event.preventDefault();
    const secret = token.value.trim();
    submit.disabled = true;
    try {
      const user = await createApi(secret, () => undefined).security.whoAmI({});
      onSignedIn(secret, user);
    } catch (err) {
      showError(problem, err);
    } finally {
      submit.disabled = false;
    }
  }

  return h(
    "main",
    { class: "signin" },
    h(
      "form",
      { class: "card signin-card", onsubmit: (e: Event) => void signIn(e), ...tid("signin-form") },
      h("h1", {}, "TradeMaster"),
      h(
        "p",
        { class: "muted" },
        "Sign in with an API token. The daemon's first start wrote the admin's to ",
        h("code", {}, "<data-dir>/admin.token"),
        ".",
      ),
      h("label", { class: "field" }, h("span", {}, "API token"), token),
      problem,
      h("div", { class: "form-actions" }, submit),
    ),
  );
}
