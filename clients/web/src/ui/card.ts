// A titled panel with a slot for gRPC errors, the building block of the dashboard's layout.
import { describe } from "../api/errors";
import { h, tid, type Child } from "./dom";

export interface Card {
  el: HTMLElement;
  body: HTMLElement;
  /** Shows a failed call's "<STATUS>: <message>" (or a ready-made text), or clears it with null. */
  error(err: unknown): void;
}

export function card(name: string, title: string, ...actions: Child[]): Card {
  const problem = h("p", { class: "error", role: "alert", hidden: true, ...tid(`${name}-error`) });
  const body = h("div", { class: "card-body" });
  const el = h(
    "section",
    { class: `card card-${name}`, ...tid(name) },
    h("header", { class: "card-head" }, h("h2", {}, title), h("div", { class: "card-actions" }, ...actions)),
    problem,
    body,
  );
  return { el, body, error: (err) => showError(problem, err) };
}

export function showError(target: HTMLElement, err: unknown): void {
  target.hidden = err === null || err === undefined;
  target.textContent = target.hidden ? "" : typeof err === "string" ? err : describe(err);
}
