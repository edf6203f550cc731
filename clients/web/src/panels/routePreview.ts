// A RouteDecision as the ticket shows it: where the order would go, why, and how each candidate scored.
import { label, money, quantity } from "../format";
import { RoutingMode, type RouteCandidate, type RouteDecision } from "../gen/trademaster/v1/orders_pb";
import { h, tid } from "../ui/dom";
import { table } from "../ui/table";

const score = (value: number): string => value.toFixed(2);

export function routePreview(decision: RouteDecision): HTMLElement[] {
  const legs = h(
    "ul",
    { class: "route-legs", ...tid("ticket-preview-legs") },
    decision.legs.map((leg) =>
      h(
        "li",
        { "data-account": leg.account },
        h("strong", {}, leg.account),
        ` × ${quantity(leg.quantity)}`,
        leg.slices.length > 1 ? h("small", { class: "muted" }, ` in ${leg.slices.length} slices`) : null,
      ),
    ),
  );
  const parts: HTMLElement[] = [
    h("p", { class: "route-mode muted" }, `${label(RoutingMode, decision.mode).toLowerCase()} routing`),
    h("p", { class: "route-reason", ...tid("ticket-preview-reason") }, decision.reason),
    legs,
  ];
  if (decision.candidates.length > 0) {
    parts.push(
      table<RouteCandidate>(
        "ticket-preview-candidates",
        [
          { title: "Account", cell: (c) => c.account },
          { title: "Score", cell: (c) => (c.excluded ? "—" : score(c.score)), numeric: true },
          { title: "Margin", cell: (c) => score(c.marginScore), numeric: true },
          { title: "Health", cell: (c) => score(c.healthScore), numeric: true },
          { title: "Latency", cell: (c) => score(c.latencyScore), numeric: true },
          { title: "Fees", cell: (c) => score(c.feeScore), numeric: true },
          { title: "Pref.", cell: (c) => score(c.preferenceScore), numeric: true },
          { title: "Capacity", cell: (c) => quantity(c.capacity), numeric: true },
          { title: "Charges", cell: (c) => money(c.fee), numeric: true },
          { title: "Gets", cell: (c) => quantity(c.quantity), numeric: true },
          { title: "Excluded", cell: (c) => c.excluded, className: () => "message" },
        ],
        decision.candidates,
        "",
        (c) => ({ class: c.excluded ? "excluded" : c.quantity > 0n ? "chosen" : "" }),
      ),
    );
  }
  return parts;
}
