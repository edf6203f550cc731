// The few DOM helpers the panels share: an element builder, child replacement, focus keeping, test ids.

export type Child = Node | string | number | bigint | null | undefined | false;
type Listener = (event: Event) => void;
export type Attrs = Record<string, string | number | boolean | undefined | Listener>;

/** An element with attributes, `on<event>` listeners and children; false/null/undefined children are skipped. */
export function h<K extends keyof HTMLElementTagNameMap>(
  tag: K,
  attrs: Attrs = {},
  ...children: (Child | Child[])[]
): HTMLElementTagNameMap[K] {
  const el = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (value === undefined || value === false) continue;
    if (typeof value === "function") {
      el.addEventListener(key.slice(2).toLowerCase(), value);
    } else if (key === "value" && "value" in el) {
      (el as HTMLInputElement).value = String(value);
    } else {
      el.setAttribute(key, value === true ? "" : String(value));
    }
  }
  el.append(...nodes(children.flat()));
  return el;
}

export function nodes(children: Child[]): (Node | string)[] {
  return children
    .filter((c): c is Node | string | number | bigint => c !== null && c !== undefined && c !== false)
    .map((c) => (c instanceof Node ? c : String(c)));
}

/** Replace an element's children. */
export function fill(el: Element, ...children: (Child | Child[])[]): void {
  el.replaceChildren(...nodes(children.flat()));
}

/** `data-testid`, the hook the browser test finds elements by. */
export function tid(id: string): Attrs {
  return { "data-testid": id };
}

/** Re-render `container` without losing keyboard focus: the element with the same test id gets it back. */
export function refocus(container: Element, render: () => void): void {
  const focused = document.activeElement;
  const id = focused && container.contains(focused) ? focused.getAttribute("data-testid") : null;
  render();
  if (id) container.querySelector<HTMLElement>(`[data-testid="${CSS.escape(id)}"]`)?.focus();
}
