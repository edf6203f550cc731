// Per-broker and per-account drill-down: each broker's accounts with status, health and PnL; an account
// expands to its positions, holdings and funds.
import type { Context } from "../context";
import { sum } from "../decimal";
import { clock, label, money, percent, signClass } from "../format";
import { AccountStatus, type Account } from "../gen/trademaster/v1/accounts_pb";
import { TradingState } from "../gen/trademaster/v1/common_pb";
import type { AccountPortfolio, Portfolio } from "../gen/trademaster/v1/portfolio_pb";
import { badge, type Tone } from "../ui/badge";
import { card } from "../ui/card";
import { fill, h, refocus, tid } from "../ui/dom";
import { fundsList, holdingsTable, positionsTable } from "./bookTables";

interface Row {
  id: string;
  broker: string;
  account?: Account;
  book?: AccountPortfolio;
}

const STATUS_TONE: Record<AccountStatus, Tone> = {
  [AccountStatus.UNSPECIFIED]: "muted",
  [AccountStatus.RECONCILING]: "warn",
  [AccountStatus.ACTIVE]: "ok",
  [AccountStatus.LOGIN_REQUIRED]: "bad",
  [AccountStatus.DEGRADED]: "warn",
};

const STATE_TONE: Record<TradingState, Tone> = {
  [TradingState.UNSPECIFIED]: "muted",
  [TradingState.ACTIVE]: "ok",
  [TradingState.REDUCING]: "warn",
  [TradingState.HALTED]: "bad",
};

/** Accounts from ListAccounts joined with their part of the book, grouped by broker in first-seen order. */
function byBroker(accounts: Account[], book: Portfolio | undefined): Map<string, Row[]> {
  const rows = new Map<string, Row>();
  for (const account of accounts) rows.set(account.id, { id: account.id, broker: account.broker, account });
  for (const part of book?.accounts ?? []) {
    const row = rows.get(part.account) ?? { id: part.account, broker: part.broker };
    rows.set(part.account, { ...row, book: part });
  }
  const groups = new Map<string, Row[]>();
  for (const row of rows.values()) groups.set(row.broker, [...(groups.get(row.broker) ?? []), row]);
  return groups;
}

function pnl(part: AccountPortfolio | undefined): string {
  return sum([part?.realisedPnl, part?.unrealisedPnl]);
}

function summary(row: Row, open: boolean, toggle: () => void): HTMLElement {
  const a = row.account;
  const state = a?.tradingState ?? TradingState.UNSPECIFIED;
  return h(
    "button",
    { class: "account-summary", "aria-expanded": String(open), onclick: toggle, ...tid(`account-toggle-${row.id}`) },
    h("span", { class: "chevron", "aria-hidden": "true" }, open ? "▾" : "▸"),
    h(
      "span",
      { class: "account-name" },
      h("strong", {}, row.id),
      a?.isDefault ? h("span", { title: "the default account" }, " ★") : null,
      h("small", {}, a?.label ?? ""),
    ),
    a
      ? badge(label(AccountStatus, a.status), STATUS_TONE[a.status], `account-status-${row.id}`, "broker connection")
      : null,
    state !== TradingState.ACTIVE && state !== TradingState.UNSPECIFIED
      ? badge(label(TradingState, state), STATE_TONE[state], `account-state-${row.id}`, a?.tradingStateReason)
      : null,
    h("span", { class: `account-pnl ${signClass(pnl(row.book))}` }, money(pnl(row.book))),
  );
}

function detail(row: Row): HTMLElement {
  const a = row.account;
  const health = a?.health;
  const facts: [string, string][] = a
    ? [
        [
          "Trading state",
          `${label(TradingState, a.tradingState)}${a.tradingStateReason ? ` — ${a.tradingStateReason}` : ""}`,
        ],
        ["Groups", a.groups.join(", ") || "—"],
        ["Multiplier", a.multiplier || "1"],
        ["Circuit", health?.circuit || "—"],
        ["Ack latency", health ? `${health.ackLatencyMs.toFixed(0)} ms` : "—"],
        ["Error rate", health ? percent(health.errorRate) : "—"],
        ["Open orders", String(health?.openOrders ?? 0n)],
        ["Queued", String(health?.queueDepth ?? 0n)],
        ["Last sync", clock(health?.lastSync)],
        ["Last error", health?.lastError || "—"],
      ]
    : [];
  return h(
    "div",
    { class: "account-detail", ...tid(`account-detail-${row.id}`) },
    h(
      "dl",
      { class: "facts" },
      facts.flatMap(([k, v]) => [h("dt", {}, k), h("dd", {}, v)]),
    ),
    h("h4", {}, "Funds", h("small", { class: "muted" }, ` synced ${clock(row.book?.fundsAsOf)}`)),
    fundsList(`account-funds-${row.id}`, row.book?.funds),
    h("h4", {}, "Positions"),
    positionsTable(`account-positions-${row.id}`, row.book?.positions ?? [], false),
    h("h4", {}, "Holdings"),
    holdingsTable(`account-holdings-${row.id}`, row.book?.holdings ?? []),
  );
}

function brokerSection(broker: string, rows: Row[], expanded: Set<string>, toggle: (id: string) => void): HTMLElement {
  const brokerPnl = sum(rows.map((r) => pnl(r.book)));
  return h(
    "div",
    { class: "broker", ...tid(`broker-${broker}`) },
    h(
      "header",
      { class: "broker-head" },
      h("h3", {}, broker),
      h("span", { class: signClass(brokerPnl) }, `PnL ${money(brokerPnl)}`),
      h("span", { class: "muted" }, `funds ${money(sum(rows.map((r) => r.book?.funds?.total)))}`),
    ),
    h(
      "ul",
      { class: "account-list" },
      rows.map((row) =>
        h(
          "li",
          { class: "account", ...tid(`account-${row.id}`) },
          summary(row, expanded.has(row.id), () => toggle(row.id)),
          expanded.has(row.id) ? detail(row) : null,
        ),
      ),
    ),
  );
}

export function accountsPanel(ctx: Context): HTMLElement {
  const panel = card("accounts", "Brokers and accounts");
  const expanded = new Set<string>();

  function toggle(id: string): void {
    if (!expanded.delete(id)) expanded.add(id);
    render();
  }

  function render(): void {
    const brokers = byBroker(ctx.directory.accounts.value ?? [], ctx.book.value);
    refocus(panel.body, () =>
      fill(
        panel.body,
        [...brokers].map(([broker, rows]) => brokerSection(broker, rows, expanded, toggle)),
      ),
    );
  }

  ctx.directory.accounts.subscribe(render);
  ctx.book.subscribe(render);
  ctx.directory.problem.subscribe((err) => panel.error(err));
  return panel.el;
}
