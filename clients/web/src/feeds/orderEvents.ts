// Order updates and fills from StreamOrderEvents, always opened with after_sequence set: at first the head the
// daemon has when the page connects, then the last sequence seen. An unset one means "from now", so a stream that
// dropped before its first event would reconnect past whatever happened while it was down.
import type { Api } from "../api/clients";
import { follow } from "../api/follow";
import type { OrderEvent } from "../gen/trademaster/v1/orders_pb";
import { Feed } from "./feed";
import { headSequence } from "./headSequence";
import type { Link } from "./link";

export function followOrderEvents(api: Api, signal: AbortSignal): { events: Feed<OrderEvent>; link: Feed<Link> } {
  const events = new Feed<OrderEvent>();
  const link = new Feed<Link>();
  let last: bigint | undefined; // unset until the head is learned, on the first connect that gets that far
  void follow({
    signal,
    open: async function* (s, onOpen) {
      last ??= await headSequence(api, s);
      yield* api.orders.streamOrderEvents({ afterSequence: last }, { signal: s, onHeader: onOpen });
    },
    onMessage: (event) => {
      last = event.sequence;
      events.publish(event);
    },
    onState: (state, detail) => link.publish({ state, detail }),
  });
  return { events, link };
}
