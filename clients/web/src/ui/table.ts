// Tables scroll sideways inside their own box, so a wide table never widens the page on a phone.
import { h, type Child } from "./dom";

export interface Column<T> {
  title: string;
  cell: (row: T) => Child | Child[];
  /** Right-aligned, for numbers. */
  numeric?: boolean;
  /** More classes for a row's cell, e.g. the sign of a PnL. */
  className?: (row: T) => string;
}

export function table<T>(
  testid: string,
  columns: Column<T>[],
  rows: T[],
  empty: string,
  rowAttrs?: (row: T) => Record<string, string>,
): HTMLElement {
  if (rows.length === 0) return h("p", { class: "empty", "data-testid": `${testid}-empty` }, empty);
  const head = h("tr", {}, ...columns.map((c) => h("th", { class: c.numeric ? "num" : undefined }, c.title)));
  const body = rows.map((row) =>
    h(
      "tr",
      rowAttrs?.(row) ?? {},
      ...columns.map((c) =>
        h(
          "td",
          { class: [c.numeric ? "num" : "", c.className?.(row) ?? ""].join(" ").trim() || undefined },
          c.cell(row),
        ),
      ),
    ),
  );
  return h(
    "div",
    { class: "table-wrap" },
    h("table", { "data-testid": testid }, h("thead", {}, head), h("tbody", {}, ...body)),
  );
}
