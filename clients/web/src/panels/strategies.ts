// The strategies the daemon runs (ListStrategies), polled.
import { every } from "../api/follow";
import type { Context } from "../context";
import { dateTime, label } from "../format";
import { StrategyStatus, type Strategy } from "../gen/trademaster/v1/strategies_pb";
import { badge, type Tone } from "../ui/badge";
import { card } from "../ui/card";
import { fill, h, tid } from "../ui/dom";
import { table } from "../ui/table";

const POLL_MS = 10000;

const TONE: Record<StrategyStatus, Tone> = {
  [StrategyStatus.UNSPECIFIED]: "muted",
  [StrategyStatus.RUNNING]: "ok",
  [StrategyStatus.PAUSED]: "warn",
  [StrategyStatus.STOPPED]: "muted",
  [StrategyStatus.COMPLETED]: "muted",
  [StrategyStatus.FAILED]: "bad",
};

export function strategiesPanel(ctx: Context): HTMLElement {
  const activeOnly = h("input", { type: "checkbox", ...tid("strategies-active-only") });
  const panel = card("strategies", "Strategies", h("label", { class: "check small" }, activeOnly, "active only"));

  async function load(): Promise<void> {
    try {
      const reply = await ctx.api.strategies.listStrategies({ activeOnly: activeOnly.checked }, { signal: ctx.signal });
      panel.error(null);
      fill(
        panel.body,
        table<Strategy>(
          "strategies-table",
          [
            { title: "Name", cell: (s) => s.name || s.id },
            { title: "Kind", cell: (s) => s.kind.replace(/_/g, " ") },
            { title: "Status", cell: (s) => badge(label(StrategyStatus, s.status), TONE[s.status]) },
            { title: "Owner", cell: (s) => s.owner },
            { title: "Orders", cell: (s) => s.orderIds.length, numeric: true },
            { title: "Updated", cell: (s) => dateTime(s.updatedAt) },
            { title: "Latest", cell: (s) => s.message, className: () => "message" },
          ],
          reply.strategies,
          "No strategies.",
          (s) => ({ "data-testid": "strategy-row", "data-strategy-id": s.id }),
        ),
      );
    } catch (err) {
      if (!ctx.signal.aborted) panel.error(err);
    }
  }

  activeOnly.addEventListener("change", () => void load());
  void every(POLL_MS, ctx.signal, load);
  return panel.el;
}
