// The newest order event's sequence, for a stream that must resume from a known point. No call returns it, and
// reading the whole event log (catch-up from 0) costs as much as the log is long; so it is searched for instead,
// each probe a catch_up_only stream read for its first event only: about 2·log2(head) short calls.
import type { Api } from "../api/clients";

/** The first event's sequence after `after`, or undefined when none was recorded when the call began. */
async function firstAfter(api: Api, after: bigint, signal: AbortSignal): Promise<bigint | undefined> {
  const probe = new AbortController(); // ends the call once its first event is in: the rest is not wanted
  try {
    const events = api.orders.streamOrderEvents(
      { afterSequence: after, catchUpOnly: true },
      { signal: AbortSignal.any([signal, probe.signal]) },
    );
    for await (const event of events) return event.sequence;
    return undefined;
  } finally {
    probe.abort();
  }
}

export async function headSequence(api: Api, signal: AbortSignal): Promise<bigint> {
  // The head lies in [lo, hi]: lo is an event seen (or 0), hi is a point with nothing after it (unknown at first,
  // so lo doubles until one is found). Sequences may skip numbers, so lo moves to the event a probe returns.
  let lo = 0n;
  let hi: bigint | undefined;
  while (hi === undefined || lo < hi) {
    const at = hi === undefined ? (lo === 0n ? 1n : 2n * lo) : (lo + hi) / 2n;
    const next = await firstAfter(api, at, signal);
    if (next === undefined) hi = at;
    else lo = next;
  }
  return lo;
}
