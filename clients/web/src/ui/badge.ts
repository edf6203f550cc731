import { h } from "./dom";

export type Tone = "ok" | "warn" | "bad" | "muted";

/** A small coloured label; `tone` picks the colour, `title` explains it on hover. */
export function badge(text: string, tone: Tone, testid?: string, title?: string): HTMLElement {
  return h("span", { class: `badge ${tone}`, "data-testid": testid, title }, text);
}
