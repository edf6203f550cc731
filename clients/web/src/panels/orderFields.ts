// The order fields the ticket and the batch form share: instrument, side, type, price, trigger, product.
import { OrderType, Product, Side } from "../gen/trademaster/v1/common_pb";
import { enumChoices, field, input, select } from "../ui/form";

export interface OrderShape {
  instrument: string;
  side: Side;
  product: Product;
  orderType: OrderType;
  price: string;
  triggerPrice: string;
}

export interface OrderFields {
  fields: HTMLElement[];
  instrument: HTMLInputElement;
  /** The order's shape, or why it is incomplete. */
  read(): OrderShape | string;
  /** Enables price and trigger for the types that take them; call on every change. */
  sync(): void;
}

const needsPrice = (t: OrderType): boolean => t === OrderType.LIMIT || t === OrderType.SL;
const needsTrigger = (t: OrderType): boolean => t === OrderType.SL || t === OrderType.SL_M;

/** `prefix` names the test ids: `<prefix>-instrument`, `<prefix>-side`, ... */
export function orderFields(prefix: string, instrumentList?: string): OrderFields {
  const instrument = input(`${prefix}-instrument`, {
    value: "NSE:INFY",
    list: instrumentList,
    autocomplete: "off",
    autocapitalize: "characters",
    spellcheck: "false",
  });
  const side = select(`${prefix}-side`, enumChoices(Side, [Side.BUY, Side.SELL]));
  const type = select(
    `${prefix}-type`,
    enumChoices(OrderType, [OrderType.MARKET, OrderType.LIMIT, OrderType.SL, OrderType.SL_M]),
  );
  const limit = input(`${prefix}-price`, { inputmode: "decimal", placeholder: "limit price" });
  const trigger = input(`${prefix}-trigger`, { inputmode: "decimal", placeholder: "trigger price" });
  const product = select(`${prefix}-product`, enumChoices(Product, [Product.MIS, Product.CNC, Product.NRML]));
  const orderType = (): OrderType => Number(type.value) as OrderType;

  return {
    instrument,
    fields: [
      field("Instrument", instrument, "wide"),
      field("Side", side),
      field("Type", type),
      field("Product", product),
      field("Price", limit),
      field("Trigger", trigger),
    ],
    read() {
      const name = instrument.value.trim().toUpperCase();
      if (!name) return "Enter an instrument, e.g. NSE:INFY.";
      return {
        instrument: name,
        side: Number(side.value) as Side,
        product: Number(product.value) as Product,
        orderType: orderType(),
        price: needsPrice(orderType()) ? limit.value.trim() : "",
        triggerPrice: needsTrigger(orderType()) ? trigger.value.trim() : "",
      };
    },
    sync() {
      limit.disabled = !needsPrice(orderType());
      trigger.disabled = !needsTrigger(orderType());
    },
  };
}

/** A positive whole number typed into a field, or null. */
export function wholeQuantity(text: string): bigint | null {
  return /^\s*[1-9]\d*\s*$/.test(text) ? BigInt(text.trim()) : null;
}
