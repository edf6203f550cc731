// The book's totals across every account: PnL, holdings value and funds.
import type { Context } from "../context";
import { clock, money, signClass } from "../format";
import type { Portfolio } from "../gen/trademaster/v1/portfolio_pb";
import { card } from "../ui/card";
import { fill, h, tid } from "../ui/dom";

interface Figure {
  key: string;
  title: string;
  value: (p: Portfolio) => string | undefined;
  signed?: boolean;
}

const FIGURES: Figure[] = [
  { key: "total-pnl", title: "Total PnL", value: (p) => p.totals?.totalPnl, signed: true },
  { key: "realised", title: "Realised", value: (p) => p.totals?.realisedPnl, signed: true },
  { key: "unrealised", title: "Unrealised", value: (p) => p.totals?.unrealisedPnl, signed: true },
  { key: "holdings-value", title: "Holdings value", value: (p) => p.totals?.holdingsValue },
  { key: "funds-available", title: "Funds available", value: (p) => p.totals?.funds?.available },
  { key: "used-margin", title: "Used margin", value: (p) => p.totals?.funds?.usedMargin },
  { key: "funds-total", title: "Funds total", value: (p) => p.totals?.funds?.total },
];

export function totalsPanel(ctx: Context): HTMLElement {
  const asOf = h("span", { class: "muted", ...tid("totals-as-of") }, "waiting for the book…");
  const panel = card("totals", "Book", asOf);
  const grid = h("dl", { class: "figures" });
  panel.body.append(grid);
  ctx.book.subscribe((book) => {
    asOf.textContent = `as of ${clock(book.asOf)} IST`;
    fill(
      grid,
      FIGURES.map((f) => {
        const value = f.value(book);
        const cls = f.signed ? signClass(value) : "";
        return h(
          "div",
          { class: "figure" },
          h("dt", {}, f.title),
          h("dd", { class: cls, ...tid(`total-${f.key}`) }, money(value)),
        );
      }),
    );
  });
  ctx.bookLink.subscribe((link) => {
    if (link.state !== "connecting") panel.error(link.state === "live" ? null : `Live updates: ${link.detail}`);
  });
  return panel.el;
}
