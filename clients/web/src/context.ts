// What every panel is given: the API, the signed-in user, the live feeds and the end of the session.
import type { Api } from "./api/clients";
import type { AccountFeeds } from "./feeds/accounts";
import type { Feed } from "./feeds/feed";
import type { Link } from "./feeds/link";
import type { OrderEvent } from "./gen/trademaster/v1/orders_pb";
import type { Portfolio } from "./gen/trademaster/v1/portfolio_pb";
import type { User } from "./gen/trademaster/v1/security_pb";

export interface Context {
  api: Api;
  user: User;
  /** Aborts at sign-out: every stream and poll stops. */
  signal: AbortSignal;
  book: Feed<Portfolio>;
  bookLink: Feed<Link>;
  events: Feed<OrderEvent>;
  eventsLink: Feed<Link>;
  directory: AccountFeeds;
}
