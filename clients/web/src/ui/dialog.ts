// The confirmation every operation with consequences goes through: a modal the user must answer.
import { h, tid, type Child } from "./dom";

export function confirm(title: string, details: Child[], action: string, danger = false): Promise<boolean> {
  return new Promise((resolve) => {
    const dialog = h(
      "dialog",
      { class: "confirm", ...tid("confirm-dialog") },
      h(
        "form",
        { method: "dialog" },
        h("h3", {}, title),
        h("div", { class: "confirm-text", ...tid("confirm-text") }, ...details),
        h(
          "div",
          { class: "confirm-buttons" },
          h("button", { value: "cancel", class: "secondary", ...tid("confirm-cancel") }, "Cancel"),
          h("button", { value: "ok", class: danger ? "danger" : "primary", ...tid("confirm-ok") }, action),
        ),
      ),
    );
    dialog.addEventListener("close", () => {
      dialog.remove();
      resolve(dialog.returnValue === "ok");
    });
    document.body.append(dialog);
    dialog.showModal();
  });
}
