// Exact sums of the API's decimal strings (scaled bigints), for per-broker subtotals.

function parse(value: string): { units: bigint; scale: number } {
  const match = /^([+-]?)(\d*)(?:\.(\d*))?$/.exec(value.trim());
  if (!match) return { units: 0n, scale: 0 };
  const [, sign, whole = "", frac = ""] = match;
  const units = BigInt(`${whole || "0"}${frac}`);
  return { units: sign === "-" ? -units : units, scale: frac.length };
}

export function sum(values: (string | undefined)[]): string {
  const parts = values.filter((v): v is string => !!v).map(parse);
  const scale = Math.max(0, ...parts.map((p) => p.scale));
  const total = parts.reduce((acc, p) => acc + p.units * 10n ** BigInt(scale - p.scale), 0n);
  const digits = (total < 0n ? -total : total).toString().padStart(scale + 1, "0");
  const whole = digits.slice(0, digits.length - scale);
  const frac = scale ? `.${digits.slice(-scale)}` : "";
  return `${total < 0n ? "-" : ""}${whole}${frac}`;
}
