// Live order updates and fills as StreamOrderEvents delivers them, newest first.
import type { Context } from "../context";
import { clock, label, price, quantity } from "../format";
import { Side } from "../gen/trademaster/v1/common_pb";
import type { Fill, Order, OrderEvent } from "../gen/trademaster/v1/orders_pb";
import { card } from "../ui/card";
import { h, tid } from "../ui/dom";
import { statusBadge } from "./orderStatus";

const KEEP = 200;

function orderLine(order: Order): HTMLElement[] {
  const filled = order.filledQuantity
    ? ` · filled ${quantity(order.filledQuantity)} @ ${price(order.averagePrice)}`
    : "";
  return [
    statusBadge(order.status),
    h(
      "span",
      { class: "event-text" },
      `${order.account || "routed"} · ${label(Side, order.side)} ${quantity(order.quantity)} ${order.instrument}${filled}`,
      order.statusMessage ? h("small", { class: "muted" }, ` — ${order.statusMessage}`) : null,
    ),
  ];
}

function fillLine(fill: Fill): HTMLElement[] {
  return [
    h("span", { class: "badge fill" }, "FILL"),
    h(
      "span",
      { class: "event-text" },
      `${fill.account} · ${label(Side, fill.side)} ${quantity(fill.quantity)} ${fill.instrument} @ ${price(fill.price)}`,
    ),
  ];
}

function row(event: OrderEvent): HTMLElement | null {
  const { event: body } = event;
  if (body.case === undefined) return null;
  const isFill = body.case === "fill";
  return h(
    "li",
    {
      class: `event ${body.case}`,
      ...tid(isFill ? "fill-row" : "event-row"),
      "data-sequence": String(event.sequence),
      "data-account": body.value.account,
      "data-instrument": body.value.instrument,
    },
    h("span", { class: "event-time" }, clock(event.time)),
    ...(isFill ? fillLine(body.value) : orderLine(body.value)),
  );
}

export function eventsPanel(ctx: Context): HTMLElement {
  const state = h("span", { class: "muted", ...tid("events-link") }, "connecting…");
  const panel = card("events", "Live orders and fills", state);
  const list = h("ol", { class: "event-list", ...tid("event-list") });
  const empty = h("p", { class: "empty" }, "Order updates and fills appear here as they happen.");
  panel.body.append(empty, list);

  ctx.events.subscribe((event) => {
    const item = row(event);
    if (!item) return;
    empty.remove();
    list.prepend(item);
    while (list.children.length > KEEP) list.lastElementChild?.remove();
  });
  ctx.eventsLink.subscribe((link) => {
    state.textContent = link.state;
    state.className = `link ${link.state}`;
    panel.error(link.state === "retrying" ? `Live updates: ${link.detail}` : null);
  });
  return panel.el;
}
