// The signed-in page: starts the feeds, then lays out the panels. On a wide screen there are two columns;
// on a phone the columns dissolve and the panels stack in the order the CSS gives them.
import type { Api } from "./api/clients";
import type { Context } from "./context";
import { pollAccounts } from "./feeds/accounts";
import { followOrderEvents } from "./feeds/orderEvents";
import { followPortfolio } from "./feeds/portfolio";
import type { User } from "./gen/trademaster/v1/security_pb";
import { accountsPanel } from "./panels/accounts";
import { eventsPanel } from "./panels/events";
import { header } from "./panels/header";
import { operationsPanel } from "./panels/operations";
import { ordersPanel } from "./panels/orders";
import { pnlPanel } from "./panels/pnl";
import { positionsPanel } from "./panels/positions";
import { strategiesPanel } from "./panels/strategies";
import { ticketPanel } from "./panels/ticket";
import { totalsPanel } from "./panels/totals";
import { h } from "./ui/dom";

export function dashboard(api: Api, user: User, signal: AbortSignal, signOut: () => void): HTMLElement {
  const portfolio = followPortfolio(api, signal);
  const orderEvents = followOrderEvents(api, signal);
  const ctx: Context = {
    api,
    user,
    signal,
    book: portfolio.book,
    bookLink: portfolio.link,
    events: orderEvents.events,
    eventsLink: orderEvents.link,
    directory: pollAccounts(api, signal),
  };
  return h(
    "div",
    { class: "app" },
    header(ctx, signOut),
    h(
      "main",
      { class: "layout" },
      totalsPanel(ctx),
      h(
        "div",
        { class: "column main-column" },
        pnlPanel(ctx),
        positionsPanel(ctx),
        accountsPanel(ctx),
        ordersPanel(ctx),
        strategiesPanel(ctx),
      ),
      h("div", { class: "column side-column" }, ticketPanel(ctx), eventsPanel(ctx), operationsPanel(ctx)),
    ),
  );
}
