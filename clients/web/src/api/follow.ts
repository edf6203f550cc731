// Keeps a server stream open: reconnects with backoff after an error or an ended stream, until aborted.
import { describe, isUnauthenticated } from "./errors";

export type LinkState = "connecting" | "live" | "retrying";

export interface FollowOptions<T> {
  /** Opens the stream; `onOpen` runs when the daemon's response headers arrive. */
  open: (signal: AbortSignal, onOpen: () => void) => AsyncIterable<T>;
  onMessage: (message: T) => void;
  onState: (state: LinkState, detail: string) => void;
  /** Runs while the stream is down, before each retry (e.g. a unary fallback); `detail` says why it is down. */
  onDown?: (detail: string) => Promise<void>;
  signal: AbortSignal;
}

const FIRST_DELAY_MS = 1000;
const MAX_DELAY_MS = 15000;

export async function follow<T>(options: FollowOptions<T>): Promise<void> {
  const { signal } = options;
  let delay = FIRST_DELAY_MS;
  while (!signal.aborted) {
    options.onState("connecting", "");
    let detail = "the stream ended";
    const live = (): void => {
      delay = FIRST_DELAY_MS;
      options.onState("live", "");
    };
    try {
      let first = true;
      for await (const message of options.open(signal, live)) {
        if (first) live();
        first = false;
        options.onMessage(message);
      }
    } catch (err) {
      // Only our own abort ends it: a CANCELLED the daemon sends (e.g. as it shuts down) is retried like any error.
      if (signal.aborted || isUnauthenticated(err)) return;
      detail = describe(err);
    }
    if (signal.aborted) return;
    options.onState("retrying", detail);
    if (options.onDown) await options.onDown(detail);
    await sleep(delay, signal);
    delay = Math.min(delay * 2, MAX_DELAY_MS);
  }
}

/** Resolves after `ms`, or at once when the signal aborts. */
export function sleep(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    const timer = setTimeout(done, ms);
    function done(): void {
      clearTimeout(timer);
      signal.removeEventListener("abort", done);
      resolve();
    }
    signal.addEventListener("abort", done);
  });
}

/** Calls `task` now and then every `ms` until aborted; a failing task is retried at the next tick. */
export async function every(ms: number, signal: AbortSignal, task: () => Promise<void>): Promise<void> {
  while (!signal.aborted) {
    await task();
    await sleep(ms, signal);
  }
}
