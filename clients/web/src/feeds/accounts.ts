// Accounts (status, health, trading state) and groups change slowly: polled, and refreshed after operations.
import type { Api } from "../api/clients";
import { every } from "../api/follow";
import type { Account, Group } from "../gen/trademaster/v1/accounts_pb";
import { Feed } from "./feed";

const POLL_MS = 5000;

export interface AccountFeeds {
  accounts: Feed<Account[]>;
  groups: Feed<Group[]>;
  /** The last failure of either call, or null once both answer again. */
  problem: Feed<unknown>;
  refresh(): Promise<void>;
}

export function pollAccounts(api: Api, signal: AbortSignal): AccountFeeds {
  const feeds: AccountFeeds = {
    accounts: new Feed<Account[]>(),
    groups: new Feed<Group[]>(),
    problem: new Feed<unknown>(),
    refresh: async () => {
      try {
        const [accounts, groups] = await Promise.all([
          api.accounts.listAccounts({}, { signal }),
          api.accounts.listGroups({}, { signal }),
        ]);
        feeds.accounts.publish(accounts.accounts);
        feeds.groups.publish(groups.groups);
        feeds.problem.publish(null);
      } catch (err) {
        if (!signal.aborted) feeds.problem.publish(err);
      }
    },
  };
  void every(POLL_MS, signal, feeds.refresh);
  return feeds;
}
