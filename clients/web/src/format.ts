// Display formatting. Money arrives as decimal strings and is formatted as text, never through floats.
import { timestampDate, type Timestamp } from "@bufbuild/protobuf/wkt";

const INDIA = "Asia/Kolkata";

/** "-123456.7" -> "-₹1,23,456.70" (Indian digit grouping, at least two decimals). */
export function money(value: string | undefined): string {
  if (!value) return "—";
  const match = /^([+-]?)(\d*)(?:\.(\d*))?$/.exec(value.trim());
  if (!match) return value;
  const [, sign, whole = "", frac = ""] = match;
  const digits = whole.replace(/^0+(?=\d)/, "") || "0";
  const head = digits.slice(0, -3);
  const grouped = head ? `${head.replace(/\B(?=(\d{2})+(?!\d))/g, ",")},${digits.slice(-3)}` : digits;
  const cents = frac.padEnd(2, "0");
  const isZero = /^0*$/.test(digits + cents);
  return `${sign === "-" && !isZero ? "-" : ""}₹${grouped}.${cents}`;
}

/** A price: the decimal as sent, or a dash. */
export function price(value: string | undefined): string {
  return value ? value : "—";
}

/** CSS class for the sign of a decimal string. */
export function signClass(value: string | undefined): string {
  if (!value || /^[+-]?0*(\.0*)?$/.test(value)) return "flat";
  return value.trim().startsWith("-") ? "neg" : "pos";
}

export function quantity(value: bigint | number): string {
  return value.toLocaleString("en-IN");
}

/** Time of day in India, where the exchanges are. */
export function clock(ts: Timestamp | undefined): string {
  if (!ts) return "—";
  return timestampDate(ts).toLocaleTimeString("en-GB", { timeZone: INDIA, hour12: false });
}

export function dateTime(ts: Timestamp | undefined): string {
  if (!ts) return "—";
  return timestampDate(ts).toLocaleString("en-GB", { timeZone: INDIA, hour12: false });
}

/** An enum value's name as the API spells it, without its prefix: OrderStatus.PARTIALLY_FILLED -> "PARTIALLY FILLED". */
export function label(names: Record<number, string>, value: number): string {
  return (names[value] ?? String(value)).replace(/_/g, " ");
}

export function percent(fraction: number): string {
  return `${Math.round(fraction * 100)}%`;
}
