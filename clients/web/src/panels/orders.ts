// The current orders (ListOrders), kept up to date by the order event stream; working orders can be cancelled.
import { timestampMs } from "@bufbuild/protobuf/wkt";
import type { Context } from "../context";
import { clock, label, price, quantity } from "../format";
import { OrderType, Side } from "../gen/trademaster/v1/common_pb";
import type { Order } from "../gen/trademaster/v1/orders_pb";
import { card } from "../ui/card";
import { fill, h, refocus, tid } from "../ui/dom";
import { table } from "../ui/table";
import { isWorking, statusBadge } from "./orderStatus";

const LIMIT = 100;

export function ordersPanel(ctx: Context): HTMLElement {
  const orders = new Map<string, Order>();
  const refresh = h("button", { class: "secondary small", ...tid("orders-refresh") }, "Refresh");
  const panel = card("orders", "Orders", refresh);

  async function load(): Promise<void> {
    try {
      const reply = await ctx.api.orders.listOrders({ limit: LIMIT }, { signal: ctx.signal });
      orders.clear();
      for (const order of reply.orders) orders.set(order.orderId, order);
      panel.error(null);
      render();
    } catch (err) {
      if (!ctx.signal.aborted) panel.error(err);
    }
  }

  async function cancel(order: Order): Promise<void> {
    try {
      const updated = await ctx.api.orders.cancelOrder({ orderId: order.orderId }, { signal: ctx.signal });
      orders.set(updated.orderId, updated);
      panel.error(null);
      render();
    } catch (err) {
      panel.error(err);
    }
  }

  function render(): void {
    const rows = [...orders.values()]
      .sort((a, b) => (b.createdAt ? timestampMs(b.createdAt) : 0) - (a.createdAt ? timestampMs(a.createdAt) : 0))
      .slice(0, LIMIT);
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
    orders.set(event.event.value.orderId, event.event.value);
    render();
  });
  // Updates may have been missed while the event stream was down: read the list again as it reconnects.
  let down = false;
  ctx.eventsLink.subscribe((link) => {
    if (link.state === "connecting" && down) void load();
    down = link.state === "retrying";
  });
  void load();
  return panel.el;
}
