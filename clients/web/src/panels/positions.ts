// The consolidated book: one row per (instrument, product) and per held instrument, across every account.
import type { Context } from "../context";
import { card } from "../ui/card";
import { fill, h } from "../ui/dom";
import { holdingsTable, positionsTable } from "./bookTables";

export function positionsPanel(ctx: Context): HTMLElement {
  const panel = card("positions", "Positions (all accounts)");
  ctx.book.subscribe((book) =>
    fill(
      panel.body,
      positionsTable("positions-table", book.positions, true),
      h("h3", {}, "Holdings"),
      holdingsTable("holdings-table", book.holdings),
    ),
  );
  return panel.el;
}
