// Exit by symbol (ExitPositions): close an instrument's positions, or everything, across accounts.
import { freshId } from "../api/clients";
import type { Context } from "../context";
import { label } from "../format";
import { Product } from "../gen/trademaster/v1/common_pb";
import { confirm } from "../ui/dialog";
import { h, tid } from "../ui/dom";
import { enumChoices, field, input, select, setChoices } from "../ui/form";
import { cancelledList, legsTable } from "./legs";
import type { Operation } from "./operation";
import { describeTarget, parseTarget, scopeChoices } from "./scope";

const EVERY = "all my accounts";

export function exitForm(ctx: Context, op: Operation): HTMLElement {
  const instrument = input("exit-instrument", {
    placeholder: "blank: every position",
    autocapitalize: "characters",
    spellcheck: "false",
  });
  const scope = select("exit-scope", scopeChoices(ctx, EVERY));
  const product = select("exit-product", [
    { value: "0", text: "every product" },
    ...enumChoices(Product, [Product.MIS, Product.CNC, Product.NRML]),
  ]);
  const holdings = input("exit-holdings", { type: "checkbox" });
  const cancelOrders = input("exit-cancel-orders", { type: "checkbox", checked: true });

  async function submit(event: Event): Promise<void> {
    event.preventDefault();
    const name = instrument.value.trim().toUpperCase();
    const target = parseTarget(scope.value);
    const productValue = Number(product.value) as Product;
    const what = [
      name ? `Close every ${name} position` : "Square off every position",
      productValue ? ` in ${label(Product, productValue)}` : "",
      ` in ${describeTarget(target, EVERY)} with market orders`,
      holdings.checked ? ", selling delivery holdings too" : "",
      cancelOrders.checked ? ", after cancelling the open orders" : "",
      ".",
    ].join("");
    if (!(await confirm("Exit positions?", [h("p", {}, what)], "Exit", true))) return;
    await op.run(async () => {
      const reply = await ctx.api.operations.exitPositions(
        {
          clientExitId: freshId("x"),
          instrument: name,
          accounts: target.kind === "account" ? [target.name] : [],
          group: target.kind === "group" ? target.name : "",
          product: productValue,
          includeHoldings: holdings.checked,
          cancelOpenOrders: cancelOrders.checked,
        },
        { signal: ctx.signal },
      );
      return [
        h("p", { ...tid("ops-summary") }, `Exit: ${reply.legs.length} exit order(s)`),
        cancelledList(reply.cancelled),
        legsTable(reply.legs),
      ];
    });
  }

  const refresh = (): void => setChoices(scope, scopeChoices(ctx, EVERY));
  ctx.directory.accounts.subscribe(refresh);
  ctx.directory.groups.subscribe(refresh);
  return h(
    "form",
    { class: "op-form", onsubmit: (e: Event) => void submit(e), ...tid("exit-form") },
    field("Instrument", instrument, "wide"),
    field("Accounts", scope, "wide"),
    field("Product", product),
    h("label", { class: "check" }, holdings, "Sell holdings too"),
    h("label", { class: "check" }, cancelOrders, "Cancel open orders first"),
    h(
      "div",
      { class: "form-actions" },
      h("button", { type: "submit", class: "danger", ...tid("exit-submit") }, "Exit…"),
    ),
  );
}
