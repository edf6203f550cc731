// One gRPC-web transport to the origin that served the page, and a typed client per service.
import { createClient, type Client, type Interceptor } from "@connectrpc/connect";
import { createGrpcWebTransport } from "@connectrpc/connect-web";
import { AccountService } from "../gen/trademaster/v1/accounts_pb";
import { OperationsService } from "../gen/trademaster/v1/operations_pb";
import { OrderService } from "../gen/trademaster/v1/orders_pb";
import { PortfolioService } from "../gen/trademaster/v1/portfolio_pb";
import { SecurityService } from "../gen/trademaster/v1/security_pb";
import { StrategyService } from "../gen/trademaster/v1/strategies_pb";
import { isUnauthenticated } from "./errors";

export interface Api {
  accounts: Client<typeof AccountService>;
  operations: Client<typeof OperationsService>;
  orders: Client<typeof OrderService>;
  portfolio: Client<typeof PortfolioService>;
  security: Client<typeof SecurityService>;
  strategies: Client<typeof StrategyService>;
}

/**
 * Every call carries the token; a call the daemon refuses as UNAUTHENTICATED (revoked or expired token)
 * reports it through `onUnauthenticated`, so the page can return to the sign-in form.
 */
export function createApi(token: string, onUnauthenticated: (err: unknown) => void): Api {
  async function* watched<T>(messages: AsyncIterable<T>): AsyncIterable<T> {
    try {
      yield* messages;
    } catch (err) {
      if (isUnauthenticated(err)) onUnauthenticated(err);
      throw err;
    }
  }
  const auth: Interceptor = (next) => async (request) => {
    request.header.set("authorization", `Bearer ${token}`);
    try {
      const response = await next(request);
      return response.stream ? { ...response, message: watched(response.message) } : response;
    } catch (err) {
      if (isUnauthenticated(err)) onUnauthenticated(err);
      throw err;
    }
  };
  const transport = createGrpcWebTransport({ baseUrl: window.location.origin, interceptors: [auth] });
  return {
    accounts: createClient(AccountService, transport),
    operations: createClient(OperationsService, transport),
    orders: createClient(OrderService, transport),
    portfolio: createClient(PortfolioService, transport),
    security: createClient(SecurityService, transport),
    strategies: createClient(StrategyService, transport),
  };
}

/** An idempotency key: a prefix and 12 random hex digits (crypto.randomUUID needs a secure context). */
export function freshId(prefix: string): string {
  const bytes = crypto.getRandomValues(new Uint8Array(6));
  return `${prefix}-${Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("")}`;
}
