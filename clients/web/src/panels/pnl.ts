// The intraday PnL curve: the day's samples (GetPnlHistory), then a point per live portfolio snapshot.
import { timestampMs } from "@bufbuild/protobuf/wkt";
import { every } from "../api/follow";
import { lineChart, type Point } from "../chart/lineChart";
import type { Context } from "../context";
import { money } from "../format";
import { card } from "../ui/card";
import { fill, h, tid } from "../ui/dom";

const HISTORY_MS = 5 * 60_000; // the daemon samples every minute by default: re-read now and then
const MAX_LIVE = 5000;
const MIN_WIDTH = 240;

const rupees = (v: number): string => money(v.toFixed(2));
const hhmm = (ms: number): string =>
  new Date(ms).toLocaleTimeString("en-GB", {
    timeZone: "Asia/Kolkata",
    hour: "2-digit",
    minute: "2-digit",
    hour12: false,
  });

export function pnlPanel(ctx: Context): HTMLElement {
  const panel = card("pnl", "Today's PnL");
  const frame = h("div", { class: "chart-frame", ...tid("pnl-chart") });
  panel.body.append(frame);
  let history: Point[] = [];
  let live: Point[] = [];

  function render(): void {
    const since = history.length ? history[history.length - 1].at : -Infinity;
    const points = [...history, ...live.filter((p) => p.at > since)];
    fill(frame, lineChart(points, { value: rupees, time: hhmm }, Math.max(MIN_WIDTH, frame.clientWidth), "pnl-svg"));
  }

  async function loadHistory(): Promise<void> {
    try {
      const reply = await ctx.api.portfolio.getPnlHistory({}, { signal: ctx.signal });
      history = reply.points.flatMap((p) => (p.at ? [{ at: timestampMs(p.at), value: Number(p.totalPnl) }] : []));
      // Live snapshots alone draw a curve too: this tells (the browser test, devtools) the history was read.
      frame.dataset.historyPoints = String(history.length);
      panel.error(null);
      render();
    } catch (err) {
      if (!ctx.signal.aborted) panel.error(err);
    }
  }

  ctx.book.subscribe((book) => {
    if (!book.asOf || !book.totals) return;
    live.push({ at: timestampMs(book.asOf), value: Number(book.totals.totalPnl) });
    if (live.length > MAX_LIVE) live = live.slice(-MAX_LIVE);
    render();
  });
  // Redrawn at the frame's width, so the labels stay legible on a phone.
  let drawnWidth = 0;
  const resized = new ResizeObserver(() => {
    if (frame.clientWidth === drawnWidth) return;
    drawnWidth = frame.clientWidth;
    render();
  });
  resized.observe(frame);
  ctx.signal.addEventListener("abort", () => resized.disconnect());
  void every(HISTORY_MS, ctx.signal, loadHistory);
  return panel.el;
}
