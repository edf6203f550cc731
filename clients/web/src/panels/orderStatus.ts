// How an order's status is shown: the same badge in the orders table and the live event feed.
import { label } from "../format";
import { OrderStatus } from "../gen/trademaster/v1/orders_pb";
import { badge, type Tone } from "../ui/badge";

const TONE: Record<OrderStatus, Tone> = {
  [OrderStatus.UNSPECIFIED]: "muted",
  [OrderStatus.NEW]: "muted",
  [OrderStatus.SUBMITTED]: "warn",
  [OrderStatus.OPEN]: "warn",
  [OrderStatus.PARTIALLY_FILLED]: "warn",
  [OrderStatus.PENDING_CANCEL]: "warn",
  [OrderStatus.PENDING_MODIFY]: "warn",
  [OrderStatus.FILLED]: "ok",
  [OrderStatus.CANCELLED]: "muted",
  [OrderStatus.REJECTED]: "bad",
};

const FINISHED = new Set([OrderStatus.FILLED, OrderStatus.CANCELLED, OrderStatus.REJECTED]);

export function statusBadge(status: OrderStatus, testid?: string): HTMLElement {
  return badge(label(OrderStatus, status), TONE[status], testid);
}

export function isWorking(status: OrderStatus): boolean {
  return !FINISHED.has(status);
}
