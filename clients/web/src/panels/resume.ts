// Shown at page load while the stored token cannot be checked (the daemon restarting, the network down): the
// token is kept and WhoAmI tried again, unless the user would rather sign in afresh.
import { showError } from "../ui/card";
import { h, tid } from "../ui/dom";

export function resumePage(err: unknown, signInAgain: () => void): HTMLElement {
  const problem = h("p", { class: "error", role: "alert", ...tid("resume-error") });
  showError(problem, err);
  return h(
    "main",
    { class: "signin" },
    h(
      "section",
      { class: "card signin-card", ...tid("resume") },
      h("h1", {}, "TradeMaster"),
      h("p", { class: "muted" }, "Could not check your session with the daemon; trying again…"),
      problem,
      h(
        "div",
        { class: "form-actions" },
        h(
          "button",
          { class: "secondary", onclick: signInAgain, ...tid("resume-signin") },
          "Sign in with another token",
        ),
      ),
    ),
  );
}
