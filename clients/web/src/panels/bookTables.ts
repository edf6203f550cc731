// Position, holding and funds tables, shared by the consolidated book and each account's drill-down.
import { money, price, quantity, signClass, label } from "../format";
import { Product } from "../gen/trademaster/v1/common_pb";
import type { Funds, Holding, Position } from "../gen/trademaster/v1/portfolio_pb";
import { h, tid } from "../ui/dom";
import { table, type Column } from "../ui/table";

export function positionsTable(testid: string, positions: Position[], consolidated: boolean): HTMLElement {
  const columns: Column<Position>[] = [
    { title: "Instrument", cell: (p) => p.instrument },
    { title: "Product", cell: (p) => label(Product, p.product) },
    { title: "Qty", cell: (p) => quantity(p.quantity), numeric: true, className: (p) => signClass(String(p.quantity)) },
    { title: "Avg", cell: (p) => price(p.averagePrice), numeric: true },
    { title: "LTP", cell: (p) => price(p.lastPrice), numeric: true },
    { title: "Realised", cell: (p) => money(p.realisedPnl), numeric: true, className: (p) => signClass(p.realisedPnl) },
    {
      title: "Unrealised",
      cell: (p) => money(p.unrealisedPnl),
      numeric: true,
      className: (p) => signClass(p.unrealisedPnl),
    },
  ];
  if (consolidated) columns.push({ title: "Accounts", cell: (p) => p.accounts.join(", ") });
  return table(testid, columns, positions, "No positions today.", (p) => ({
    "data-testid": `${testid}-row`,
    "data-instrument": p.instrument,
  }));
}

export function holdingsTable(testid: string, holdings: Holding[]): HTMLElement {
  const columns: Column<Holding>[] = [
    { title: "Instrument", cell: (x) => x.instrument },
    { title: "Qty", cell: (x) => quantity(x.quantity), numeric: true },
    { title: "Avg", cell: (x) => price(x.averagePrice), numeric: true },
    { title: "LTP", cell: (x) => price(x.lastPrice), numeric: true },
    {
      title: "Unrealised",
      cell: (x) => money(x.unrealisedPnl),
      numeric: true,
      className: (x) => signClass(x.unrealisedPnl),
    },
  ];
  return table(testid, columns, holdings, "No holdings.", (x) => ({
    "data-testid": `${testid}-row`,
    "data-instrument": x.instrument,
  }));
}

export function fundsList(testid: string, funds: Funds | undefined): HTMLElement {
  return h(
    "dl",
    { class: "funds", ...tid(testid) },
    h("dt", {}, "Available"),
    h("dd", {}, money(funds?.available)),
    h("dt", {}, "Used margin"),
    h("dd", {}, money(funds?.usedMargin)),
    h("dt", {}, "Total"),
    h("dd", {}, money(funds?.total)),
  );
}
