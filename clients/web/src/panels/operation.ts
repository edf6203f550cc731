// How an operation form reports: its result below the forms, or the failed call's status and message.
import type { Child } from "../ui/dom";

export interface Operation {
  /** Runs a confirmed call: shows what it returns, or its error; then refreshes the accounts. */
  run(call: () => Promise<Child[]>): Promise<void>;
  /** A form that cannot be sent as filled in. */
  fail(why: string): void;
}
