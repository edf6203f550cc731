// Order updates and fills from StreamOrderEvents, resumed after the last sequence seen on every reconnect.
import type { Api } from "../api/clients";
import { follow } from "../api/follow";
import type { OrderEvent } from "../gen/trademaster/v1/orders_pb";
import { Feed } from "./feed";
import type { Link } from "./link";

export function followOrderEvents(api: Api, signal: AbortSignal): { events: Feed<OrderEvent>; link: Feed<Link> } {
  const events = new Feed<OrderEvent>();
  const link = new Feed<Link>();
  let last: bigint | undefined; // unset until the first event: the first stream starts from now
  void follow({
    signal,
    open: (s, onOpen) => api.orders.streamOrderEvents({ afterSequence: last }, { signal: s, onHeader: onOpen }),
    onMessage: (event) => {
      last = event.sequence;
      events.publish(event);
    },
    onState: (state, detail) => link.publish({ state, detail }),
  });
  return { events, link };
}
