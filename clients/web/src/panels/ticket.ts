// The order ticket: builds a PlaceOrderRequest, previews its routing as it changes, and places it.
import type { MessageInitShape } from "@bufbuild/protobuf";
import { timestampMs } from "@bufbuild/protobuf/wkt";
import { freshId } from "../api/clients";
import { describe } from "../api/errors";
import type { Context } from "../context";
import { label, price, quantity } from "../format";
import { Side } from "../gen/trademaster/v1/common_pb";
import {
  RoutingMode,
  type Order,
  type PlaceOrderRequestSchema,
  type PlaceOrderResponse,
} from "../gen/trademaster/v1/orders_pb";
import { card } from "../ui/card";
import { fill, h, tid } from "../ui/dom";
import { field, input, select, setChoices, type Choice } from "../ui/form";
import { orderFields, wholeQuantity } from "./orderFields";
import { statusBadge } from "./orderStatus";
import { routePreview } from "./routePreview";

type Request = MessageInitShape<typeof PlaceOrderRequestSchema>;

const PREVIEW_DELAY_MS = 300;
const AUTO = "auto";

/** "auto" routes among every account, "group:<name>" among a group's; "account:<id>" names the account. */
function targets(ctx: Context): Choice[] {
  const accounts = ctx.directory.accounts.value ?? [];
  const groups = ctx.directory.groups.value ?? [];
  return [
    { value: AUTO, text: "auto (routed)" },
    ...groups.map((g) => ({ value: `group:${g.name}`, text: `auto within group ${g.name}` })),
    ...accounts.map((a) => ({ value: `account:${a.id}`, text: `${a.id}${a.isDefault ? " (default)" : ""}` })),
  ];
}

function placed(reply: PlaceOrderResponse): HTMLElement {
  const order = reply.order;
  return h(
    "div",
    { class: "placed", ...tid("ticket-result") },
    h(
      "p",
      {},
      reply.duplicate ? "Already placed: " : "Placed ",
      h("code", { ...tid("ticket-result-order") }, order?.orderId ?? ""),
      " ",
      order ? statusBadge(order.status, "ticket-result-status") : null,
    ),
    order
      ? h(
          "p",
          { class: "muted" },
          `${order.account || "routed"} · ${label(Side, order.side)} ${quantity(order.quantity)} ${order.instrument}`,
          order.filledQuantity ? ` · filled ${quantity(order.filledQuantity)} @ ${price(order.averagePrice)}` : "",
          order.statusMessage ? ` — ${order.statusMessage}` : "",
        )
      : null,
    reply.legs.length
      ? h(
          "ul",
          { class: "route-legs" },
          reply.legs.map((leg) =>
            h("li", {}, h("strong", {}, leg.account), ` × ${quantity(leg.quantity)} `, statusBadge(leg.status)),
          ),
        )
      : null,
  );
}

const updatedMs = (order: Order): number => (order.updatedAt ? timestampMs(order.updatedAt) : 0);
const newer = (update: Order, current: Order): boolean =>
  update.orderId === current.orderId && updatedMs(update) >= updatedMs(current);

/** The reply with `update` in place of its order or one of its legs; null when it is about neither, or older. */
function withUpdate(reply: PlaceOrderResponse, update: Order): PlaceOrderResponse | null {
  if (reply.order && newer(update, reply.order)) return { ...reply, order: update };
  if (!reply.legs.some((leg) => newer(update, leg))) return null;
  return { ...reply, legs: reply.legs.map((leg) => (newer(update, leg) ? update : leg)) };
}

export function ticketPanel(ctx: Context): HTMLElement {
  const panel = card("ticket", "Order ticket");
  const known = h("datalist", { id: "ticket-instruments" });
  const order = orderFields("ticket", "ticket-instruments");
  const qty = input("ticket-quantity", { type: "number", min: 1, step: 1, value: 1, inputmode: "numeric" });
  const target = select("ticket-account", targets(ctx));
  const place = h("button", { type: "submit", class: "primary", ...tid("ticket-place") }, "Place order");
  const preview = h("div", { class: "preview", "aria-live": "polite", ...tid("ticket-preview") });
  const result = h("div", { class: "result" });
  let shown: PlaceOrderResponse | null = null; // the placed order on show, kept current by the event stream
  // Updates seen while PlaceOrder is in flight: a fill may stream in before the reply does.
  const early = new Map<string, Order>();
  let placing = false;

  /** The request the ticket describes, or why it cannot be sent yet. */
  function request(clientOrderId: string): Request | string {
    const shape = order.read();
    if (typeof shape === "string") return shape;
    const units = wholeQuantity(qty.value);
    if (units === null) return "Enter a whole quantity above zero.";
    const chosen = target.value;
    return {
      ...shape,
      clientOrderId,
      quantity: units,
      account: chosen.startsWith("account:") ? chosen.slice("account:".length) : "",
      group: chosen.startsWith("group:") ? chosen.slice("group:".length) : "",
      mode: chosen.startsWith("account:") ? RoutingMode.UNSPECIFIED : RoutingMode.ORCHESTRATOR,
    };
  }

  let asked = 0; // only the newest preview's answer is shown
  let timer: ReturnType<typeof setTimeout> | undefined;

  async function refreshPreview(): Promise<void> {
    const mine = ++asked;
    const req = request(freshId("preview"));
    if (typeof req === "string") {
      fill(preview, h("p", { class: "muted" }, req));
      return;
    }
    preview.classList.add("stale");
    try {
      const decision = await ctx.api.orders.previewRoute(req, { signal: ctx.signal });
      if (mine === asked) fill(preview, routePreview(decision));
    } catch (err) {
      if (mine === asked && !ctx.signal.aborted) {
        fill(preview, h("p", { class: "error", ...tid("ticket-preview-error") }, describe(err)));
      }
    } finally {
      if (mine === asked) preview.classList.remove("stale");
    }
  }

  function schedulePreview(): void {
    order.sync();
    clearTimeout(timer);
    timer = setTimeout(() => void refreshPreview(), PREVIEW_DELAY_MS);
  }

  async function submit(event: Event): Promise<void> {
    event.preventDefault();
    const req = request(freshId("web"));
    if (typeof req === "string") {
      panel.error(req);
      return;
    }
    place.disabled = placing = true;
    shown = null;
    early.clear();
    fill(result);
    try {
      const reply = await ctx.api.orders.placeOrder(req, { signal: ctx.signal });
      panel.error(null);
      shown = [...early.values()].reduce((current, update) => withUpdate(current, update) ?? current, reply);
      fill(result, placed(shown));
    } catch (err) {
      panel.error(err);
    } finally {
      place.disabled = placing = false;
      schedulePreview();
    }
  }

  const [instrumentField, ...shapeFields] = order.fields;
  const form = h(
    "form",
    { class: "ticket", onsubmit: (e: Event) => void submit(e), ...tid("ticket-form") },
    instrumentField,
    known,
    field("Quantity", qty),
    ...shapeFields,
    field("Account", target, "wide"),
    h("div", { class: "form-actions" }, place),
  );
  form.addEventListener("input", schedulePreview);
  form.addEventListener("change", schedulePreview);
  panel.body.append(form, result, h("h3", {}, "Routing preview"), preview);

  ctx.directory.accounts.subscribe(() => {
    setChoices(target, targets(ctx));
    schedulePreview();
  });
  ctx.directory.groups.subscribe(() => setChoices(target, targets(ctx)));
  ctx.events.subscribe((event) => {
    if (event.event.case !== "order") return;
    if (placing) early.set(event.event.value.orderId, event.event.value);
    const updated = shown ? withUpdate(shown, event.event.value) : null;
    if (!updated) return;
    shown = updated;
    fill(result, placed(updated));
  });
  // The instruments in the book, offered as the instrument field's suggestions.
  ctx.book.subscribe((book) => {
    const seen = [...new Set([...book.positions, ...book.holdings].map((p) => p.instrument))].sort();
    if (seen.join() !== known.dataset.list) {
      known.dataset.list = seen.join();
      fill(
        known,
        seen.map((i) => h("option", { value: i })),
      );
    }
  });
  schedulePreview();
  return panel.el;
}
