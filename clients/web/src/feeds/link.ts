import type { LinkState } from "../api/follow";

/** How a live stream is doing, for the header's indicators. `polling`: the stream is down, a unary call stands in. */
export interface Link {
  state: LinkState | "polling";
  detail: string;
}
