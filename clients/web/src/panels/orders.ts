// The current orders (ListOrders), kept up to date by the order event stream; working orders can be cancelled.
import { timestampMs, type Timestamp } from "@bufbuild/protobuf/wkt";
import type { Context } from "../context";
import { clock, label, price, quantity } from "../format";
import { OrderType, Side } from "../gen/trademaster/v1/common_pb";
import type { Order } from "../gen/trademaster/v1/orders_pb";
import { card } from "../ui/card";
import { fill, h, refocus, tid } from "../ui/dom";
import { table } from "../ui/table";
import { isWorking, statusBadge } from "./orderStatus";

const LIMIT = 100;

/** In nanoseconds, so two updates within a millisecond still order; unset counts as the oldest. */
function nanos(t: Timestamp | undefined): bigint {
  return t ? t.seconds * 1_000_000_000n + BigInt(t.nanos) : -1n;
}

const createdMs = (o: Order): number => (o.createdAt ? timestampMs(o.createdAt) : 0);

export function ordersPanel(ctx: Context): HTMLElement {
  const orders = new Map<string, Order>();
  const refresh = h("button", { class: "secondary small", ...tid("orders-refresh") }, "Refresh");
  const panel = card("orders", "Orders", refresh);

  // ListOrders, CancelOrder and the stream race one another: a reply read before an update the stream has
  // already shown must not put the older state back (OPEN after FILLED). The latest updated_at wins.
  function keep(order: Order): void {
    const known = orders.get(order.orderId);
    if (!known || nanos(order.updatedAt) >= nanos(known.updatedAt)) orders.set(order.orderId, order);
  }

  async function load(): Promise<void> {
    try {
      const reply = await ctx.api.orders.listOrders({ limit: LIMIT }, { signal: ctx.signal });
      for (const order of reply.orders) keep(order);
      panel.error(null);
      render();
    } catch (err) {
      if (!ctx.signal.aborted) panel.error(err);
    }
  }

  async function cancel(order: Order): Promise<void> {
    try {
      const updated = await ctx.api.orders.cancelOrder({ orderId: order.orderId }, { signal: ctx.signal });
      keep(updated);
      panel.error(null);
      render();
    } catch (err) {
      panel.error(err);
    }
  }

  /** The newest LIMIT orders; older ones are dropped, as ListOrders would no longer return them. */
  function newest(): Order[] {
    const rows = [...orders.values()].sort((a, b) => createdMs(b) - createdMs(a)).slice(0, LIMIT);
    if (rows.length < orders.size) {
      orders.clear();
      for (const order of rows) orders.set(order.orderId, order);
    }
    return rows;
  }

  function render(): void {
    const rows = newest();
    refocus(panel.body, () =>
      fill(
        panel.body,
        table(
          "orders-table",
          [
            { title: "Time", cell: (o) => clock(o.createdAt) },
            { title: "Account", cell: (o) => o.account || h("em", {}, "routed") },
            { title: "Instrument", cell: (o) => o.instrument },
            {
              title: "Side",
              cell: (o) => label(Side, o.side),
              className: (o) => (o.side === Side.BUY ? "buy" : "sell"),
            },
            { title: "Qty", cell: (o) => quantity(o.quantity), numeric: true },
            { title: "Filled", cell: (o) => quantity(o.filledQuantity), numeric: true },
            { title: "Type", cell: (o) => label(OrderType, o.orderType) },
            { title: "Price", cell: (o) => price(o.price), numeric: true },
            { title: "Avg", cell: (o) => price(o.averagePrice), numeric: true },
            { title: "Status", cell: (o) => statusBadge(o.status, `order-status-${o.orderId}`) },
            { title: "Message", cell: (o) => o.statusMessage, className: () => "message" },
            {
              title: "",
              cell: (o) =>
                isWorking(o.status)
                  ? h(
                      "button",
                      { class: "secondary small", onclick: () => void cancel(o), ...tid(`order-cancel-${o.orderId}`) },
                      "Cancel",
                    )
                  : null,
            },
          ],
          rows,
          "No orders yet.",
          (o) => ({ "data-testid": "order-row", "data-order-id": o.orderId, "data-client-order-id": o.clientOrderId }),
        ),
      ),
    );
  }

  refresh.addEventListener("click", () => void load());
  ctx.events.subscribe((event) => {
    if (event.event.case !== "order") return;
    keep(event.event.value);
    render();
  });
  // Read the list again each time the event stream comes up: the first time, it starts from the head the daemon
  // had then, after this first read; later, updates may have been missed while it was down.
  let live = false;
  ctx.eventsLink.subscribe((link) => {
    if (link.state === "live" && !live) void load();
    live = link.state === "live";
  });
  void load();
  return panel.el;
}
