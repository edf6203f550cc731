// Multi-account operations, one tab each; every one asks for confirmation, and shows what happened.
import type { Context } from "../context";
import { card } from "../ui/card";
import { fill, h, tid } from "../ui/dom";
import { batchForm } from "./batch";
import { exitForm } from "./exit";
import { killForm } from "./kill";
import type { Operation } from "./operation";

export function operationsPanel(ctx: Context): HTMLElement {
  const panel = card("operations", "Operations");
  const result = h("div", { class: "op-result", "aria-live": "polite", ...tid("ops-result") });
  const op: Operation = {
    async run(call) {
      fill(result, h("p", { class: "muted" }, "Working…"));
      try {
        fill(result, await call());
        panel.error(null);
      } catch (err) {
        fill(result);
        panel.error(err);
      }
      await ctx.directory.refresh();
    },
    fail(why) {
      fill(result);
      panel.error(why);
    },
  };
  const forms = { batch: batchForm(ctx, op), exit: exitForm(ctx, op), kill: killForm(ctx, op) };
  const titles: Record<keyof typeof forms, string> = {
    batch: "Batch order",
    exit: "Exit by symbol",
    kill: "Kill switch",
  };
  const tabs = (Object.keys(forms) as (keyof typeof forms)[]).map((name) =>
    h(
      "button",
      {
        type: "button",
        role: "tab",
        class: "tab",
        "data-tab": name,
        onclick: () => show(name),
        ...tid(`ops-tab-${name}`),
      },
      titles[name],
    ),
  );

  function show(name: keyof typeof forms): void {
    for (const tab of tabs) tab.setAttribute("aria-selected", String(tab.dataset.tab === name));
    for (const [key, form] of Object.entries(forms)) form.hidden = key !== name;
    panel.error(null);
    fill(result);
  }

  panel.body.append(h("div", { class: "tabs", role: "tablist" }, ...tabs), ...Object.values(forms), result);
  show("batch");
  return panel.el;
}
