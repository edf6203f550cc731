// The consolidated book: StreamPortfolio, with GetPortfolio standing in while the stream is down.
import type { Api } from "../api/clients";
import { describe } from "../api/errors";
import { follow } from "../api/follow";
import type { Portfolio } from "../gen/trademaster/v1/portfolio_pb";
import { Feed } from "./feed";
import type { Link } from "./link";

const INTERVAL_MS = 1000;

export function followPortfolio(api: Api, signal: AbortSignal): { book: Feed<Portfolio>; link: Feed<Link> } {
  const book = new Feed<Portfolio>();
  const link = new Feed<Link>();
  void follow({
    signal,
    open: (s, onOpen) => api.portfolio.streamPortfolio({ minIntervalMs: INTERVAL_MS }, { signal: s, onHeader: onOpen }),
    onMessage: (portfolio) => book.publish(portfolio),
    onState: (state, detail) => link.publish({ state, detail }),
    onDown: async (detail) => {
      try {
        book.publish(await api.portfolio.getPortfolio({}, { signal }));
        link.publish({ state: "polling", detail: `${detail} (showing GetPortfolio meanwhile)` });
      } catch (err) {
        if (!signal.aborted) link.publish({ state: "retrying", detail: describe(err) });
      }
    },
  });
  return { book, link };
}
