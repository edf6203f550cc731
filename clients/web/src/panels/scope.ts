// Which accounts an operation covers: everything, a group or one account, as a select.
import type { Context } from "../context";
import type { Choice } from "../ui/form";

export type Target = { kind: "all" } | { kind: "group"; name: string } | { kind: "account"; name: string };

/** `everything` labels the first choice, or leaves it out when null (not the caller's to use). */
export function scopeChoices(ctx: Context, everything: string | null): Choice[] {
  return [
    ...(everything === null ? [] : [{ value: "all", text: everything }]),
    ...(ctx.directory.groups.value ?? []).map((g) => ({
      value: `group:${g.name}`,
      text: `group ${g.name} (${g.accounts.join(", ")})`,
    })),
    ...(ctx.directory.accounts.value ?? []).map((a) => ({ value: `account:${a.id}`, text: `account ${a.id}` })),
  ];
}

export function parseTarget(value: string): Target {
  const [kind, ...rest] = value.split(":");
  const name = rest.join(":");
  if (kind === "group" || kind === "account") return { kind, name };
  return { kind: "all" };
}

export function describeTarget(target: Target, everything: string): string {
  return target.kind === "all" ? everything : `${target.kind} ${target.name}`;
}
