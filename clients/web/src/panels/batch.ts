// One order to many accounts (BatchOrder): explicit quantities per account, or a base quantity times each
// account's multiplier over a group or every account.
import { freshId } from "../api/clients";
import type { Context } from "../context";
import { label, quantity } from "../format";
import { OrderType, Product, Side } from "../gen/trademaster/v1/common_pb";
import { confirm } from "../ui/dialog";
import { fill, h, tid } from "../ui/dom";
import { field, input, select, setChoices, type Choice } from "../ui/form";
import { legsTable } from "./legs";
import type { Operation } from "./operation";
import { orderFields, wholeQuantity } from "./orderFields";
import { describeTarget, parseTarget, scopeChoices } from "./scope";

const EVERY = "every account (base quantity × multiplier)";

function choices(ctx: Context): Choice[] {
  const scoped = scopeChoices(ctx, EVERY).filter((c) => !c.value.startsWith("account:"));
  return [{ value: "each", text: "chosen accounts, a quantity each" }, ...scoped];
}

export function batchForm(ctx: Context, op: Operation): HTMLElement {
  const order = orderFields("batch");
  const target = select("batch-target", choices(ctx));
  const perAccount = h("div", { class: "per-account", ...tid("batch-quantities") });
  const base = input("batch-base-qty", {
    type: "number",
    min: 1,
    step: 1,
    inputmode: "numeric",
    placeholder: "base quantity",
  });
  const baseField = field("Base quantity", base);
  const quantities = new Map<string, HTMLInputElement>();

  function renderAccounts(): void {
    for (const account of ctx.directory.accounts.value ?? []) {
      if (!quantities.has(account.id)) {
        quantities.set(
          account.id,
          input(`batch-qty-${account.id}`, { type: "number", min: 0, step: 1, value: 0, inputmode: "numeric" }),
        );
      }
    }
    fill(
      perAccount,
      [...quantities].map(([id, box]) => field(id, box)),
    );
  }

  function sync(): void {
    order.sync();
    const each = target.value === "each";
    perAccount.hidden = !each;
    baseField.hidden = each;
  }

  async function submit(event: Event): Promise<void> {
    event.preventDefault();
    const shape = order.read();
    if (typeof shape === "string") return op.fail(shape);
    const each = target.value === "each";
    const chosen = parseTarget(target.value);
    const explicit = [...quantities]
      .map(([id, box]) => [id, wholeQuantity(box.value) ?? 0n] as const)
      .filter(([, q]) => q > 0n);
    const baseQty = wholeQuantity(base.value);
    if (each && explicit.length === 0) return op.fail("Give at least one account a quantity.");
    if (!each && baseQty === null) return op.fail("Enter a base quantity above zero.");
    const what = `${label(Side, shape.side)} ${shape.instrument} ${label(Product, shape.product)} ${label(OrderType, shape.orderType)}${shape.price ? ` @ ${shape.price}` : ""}`;
    const to = each
      ? explicit.map(([id, q]) => `${id}: ${quantity(q)}`).join(", ")
      : `${describeTarget(chosen, "every account")}: ${quantity(baseQty ?? 0n)} × each account's multiplier`;
    if (!(await confirm("Send batch order?", [h("p", {}, what), h("p", {}, to)], "Send batch"))) return;
    await op.run(async () => {
      const reply = await ctx.api.operations.batchOrder(
        {
          ...shape,
          clientBatchId: freshId("b"),
          quantities: each ? Object.fromEntries(explicit) : {},
          baseQuantity: each ? 0n : (baseQty ?? 0n),
          group: chosen.kind === "group" ? chosen.name : "",
        },
        { signal: ctx.signal },
      );
      return [
        h(
          "p",
          { ...tid("ops-summary") },
          `Batch ${reply.clientBatchId}: ${reply.placed} placed, ${reply.failed} failed, ${reply.skipped} skipped`,
        ),
        legsTable(reply.legs),
      ];
    });
  }

  const form = h(
    "form",
    { class: "op-form", onsubmit: (e: Event) => void submit(e), onchange: sync, ...tid("batch-form") },
    ...order.fields,
    field("Send to", target, "wide"),
    baseField,
    perAccount,
    h(
      "div",
      { class: "form-actions" },
      h("button", { type: "submit", class: "primary", ...tid("batch-submit") }, "Send batch…"),
    ),
  );
  ctx.directory.accounts.subscribe(() => {
    setChoices(target, choices(ctx));
    renderAccounts();
    sync();
  });
  ctx.directory.groups.subscribe(() => setChoices(target, choices(ctx)));
  sync();
  return form;
}
