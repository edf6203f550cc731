// The kill switch (Kill): HALTED at a scope and its open orders cancelled, optionally flattening first;
// and the way back (SetTradingState ACTIVE at the same scope).
import { freshId } from "../api/clients";
import type { Context } from "../context";
import { dateTime, label } from "../format";
import { ScopeKind, TradingState } from "../gen/trademaster/v1/common_pb";
import type { TradingStateEntry } from "../gen/trademaster/v1/operations_pb";
import { Role } from "../gen/trademaster/v1/security_pb";
import { confirm } from "../ui/dialog";
import { h, tid } from "../ui/dom";
import { field, input, select, setChoices } from "../ui/form";
import { cancelledList, legsTable } from "./legs";
import type { Operation } from "./operation";
import { parseTarget, scopeChoices } from "./scope";

const EVERY = "every account (global)";

/** A Scope's fields, as sent and as received. */
interface ScopeFields {
  kind: ScopeKind;
  name: string;
}

function scopeOf(value: string): ScopeFields {
  const target = parseTarget(value);
  if (target.kind === "all") return { kind: ScopeKind.GLOBAL, name: "" };
  return { kind: target.kind === "group" ? ScopeKind.GROUP : ScopeKind.ACCOUNT, name: target.name };
}

function scopeText(scope: ScopeFields | undefined): string {
  if (!scope || scope.kind === ScopeKind.GLOBAL) return "every account";
  return `${scope.kind === ScopeKind.GROUP ? "group" : "account"} ${scope.name}`;
}

function stateLine(entry: TradingStateEntry | undefined): HTMLElement {
  const text = entry
    ? `${scopeText(entry.scope)}: ${label(TradingState, entry.state)} by ${entry.setBy}${entry.reason ? ` (${entry.reason})` : ""} at ${dateTime(entry.setAt)} IST`
    : "no state returned";
  return h("p", { ...tid("ops-summary") }, text);
}

export function killForm(ctx: Context, op: Operation): HTMLElement {
  const everything = ctx.user.role === Role.ADMIN ? EVERY : null;
  const scope = select("kill-scope", scopeChoices(ctx, everything));
  const reason = input("kill-reason", { placeholder: "shown with every refusal", value: "kill switch (dashboard)" });
  const flatten = input("kill-flatten", { type: "checkbox" });

  async function kill(event: Event): Promise<void> {
    event.preventDefault();
    const target = scopeOf(scope.value);
    const details = [
      h(
        "p",
        {},
        h("strong", {}, `Halt ${scopeText(target)}`),
        ": no new orders will be accepted, and every open order there is cancelled.",
      ),
      flatten.checked ? h("p", {}, "Positions (not holdings) are closed with market orders first.") : null,
      h("p", { class: "muted" }, "Undo with “Resume trading”."),
    ];
    if (!(await confirm("Press the kill switch?", details, "Kill", true))) return;
    await op.run(async () => {
      const reply = await ctx.api.operations.kill(
        {
          scope: target,
          reason: reason.value.trim(),
          flatten: flatten.checked,
          clientKillId: flatten.checked ? freshId("k") : "",
        },
        { signal: ctx.signal },
      );
      return [stateLine(reply.state), cancelledList(reply.cancelled), reply.exits ? legsTable(reply.exits.legs) : null];
    });
  }

  async function resume(): Promise<void> {
    const target = scopeOf(scope.value);
    if (!(await confirm("Resume trading?", [h("p", {}, `Set ${scopeText(target)} back to ACTIVE.`)], "Resume"))) return;
    await op.run(async () => {
      const entry = await ctx.api.operations.setTradingState(
        { scope: target, state: TradingState.ACTIVE, reason: "resumed from the dashboard" },
        { signal: ctx.signal },
      );
      return [stateLine(entry)];
    });
  }

  const refresh = (): void => setChoices(scope, scopeChoices(ctx, everything));
  ctx.directory.accounts.subscribe(refresh);
  ctx.directory.groups.subscribe(refresh);
  return h(
    "form",
    { class: "op-form", onsubmit: (e: Event) => void kill(e), ...tid("kill-form") },
    field("Scope", scope, "wide"),
    field("Reason", reason, "wide"),
    h("label", { class: "check" }, flatten, "Close positions first (flatten)"),
    h(
      "div",
      { class: "form-actions" },
      h(
        "button",
        { type: "button", class: "secondary", onclick: () => void resume(), ...tid("kill-resume") },
        "Resume trading…",
      ),
      h("button", { type: "submit", class: "danger kill", ...tid("kill-switch") }, "Kill switch"),
    ),
  );
}
