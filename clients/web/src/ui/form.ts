// Labelled form controls.
import { h, tid, type Attrs } from "./dom";

export interface Choice {
  value: string;
  text: string;
}

export function field(title: string, control: HTMLElement, extra = ""): HTMLElement {
  return h("label", { class: `field ${extra}`.trim() }, h("span", {}, title), control);
}

export function select(testid: string, choices: Choice[], attrs: Attrs = {}): HTMLSelectElement {
  const el = h("select", { ...tid(testid), ...attrs });
  setChoices(el, choices);
  return el;
}

/** Replace a select's options, keeping the selected value when it is still offered. */
export function setChoices(el: HTMLSelectElement, choices: Choice[]): void {
  const kept = el.value;
  el.replaceChildren(...choices.map((c) => h("option", { value: c.value }, c.text)));
  if (choices.some((c) => c.value === kept)) el.value = kept;
}

export function input(testid: string, attrs: Attrs = {}): HTMLInputElement {
  return h("input", { ...tid(testid), ...attrs });
}

/** Choices for an enum's values, UNSPECIFIED (0) left out: [{value: "1", text: "BUY"}, ...]. */
export function enumChoices(names: Record<number, string>, values: number[]): Choice[] {
  return values.map((v) => ({ value: String(v), text: (names[v] ?? String(v)).replace(/_/g, "-") }));
}
