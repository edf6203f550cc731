// What a batch, an exit or a kill did: one row per leg, failures with their gRPC status.
import { label, quantity } from "../format";
import { LegOutcome, type BatchLeg, type CancelOpenOrdersResponse } from "../gen/trademaster/v1/operations_pb";
import { badge, type Tone } from "../ui/badge";
import { h, tid } from "../ui/dom";
import { table } from "../ui/table";
import { statusBadge } from "./orderStatus";

const TONE: Record<LegOutcome, Tone> = {
  [LegOutcome.UNSPECIFIED]: "muted",
  [LegOutcome.PLACED]: "ok",
  [LegOutcome.DUPLICATE]: "muted",
  [LegOutcome.FAILED]: "bad",
  [LegOutcome.SKIPPED]: "muted",
};

export function legsTable(legs: BatchLeg[]): HTMLElement {
  return table(
    "ops-legs",
    [
      { title: "Account", cell: (l) => l.account },
      { title: "Qty", cell: (l) => quantity(l.quantity), numeric: true },
      { title: "Outcome", cell: (l) => badge(label(LegOutcome, l.outcome), TONE[l.outcome]) },
      {
        title: "Order",
        cell: (l) => (l.order ? [h("code", {}, l.order.orderId), " ", statusBadge(l.order.status)] : "—"),
      },
      {
        title: "Why",
        cell: (l) => (l.error ? `${l.errorCode ? `${l.errorCode}: ` : ""}${l.error}` : ""),
        className: () => "message",
      },
    ],
    legs,
    "No legs: nothing to do.",
    (l) => ({ "data-testid": "ops-leg", "data-account": l.account, "data-outcome": LegOutcome[l.outcome] ?? "" }),
  );
}

export function cancelledList(cancelled: CancelOpenOrdersResponse | undefined): HTMLElement {
  const done = cancelled?.cancelled ?? [];
  const failed = cancelled?.failed ?? [];
  return h(
    "div",
    { class: "cancelled", ...tid("ops-cancelled") },
    h("p", {}, `Open orders cancelled: ${done.length}`, failed.length ? `; could not cancel ${failed.length}` : ""),
    failed.length
      ? h(
          "ul",
          { class: "failures" },
          failed.map((f) => h("li", {}, `${f.account} ${f.orderId}: ${f.error}`)),
        )
      : null,
  );
}
