// gRPC errors as the daemon's other clients show them: "<STATUS>: <message>".
import { Code, ConnectError } from "@connectrpc/connect";

export interface RpcProblem {
  code: string;
  message: string;
}

/** FailedPrecondition -> FAILED_PRECONDITION, the name grpcurl and the CLI print. */
function codeName(code: Code): string {
  return (Code[code] ?? "UNKNOWN").replace(/([a-z])([A-Z])/g, "$1_$2").toUpperCase();
}

export function problem(err: unknown): RpcProblem {
  const e = ConnectError.from(err);
  // fetch itself failed (a TypeError): nothing answered at the dashboard's origin, as gRPC's UNAVAILABLE means.
  if (e.code === Code.Unknown && e.cause instanceof TypeError) {
    return { code: "UNAVAILABLE", message: `the daemon did not answer (${e.cause.message})` };
  }
  return { code: codeName(e.code), message: e.rawMessage };
}

export function describe(err: unknown): string {
  const p = problem(err);
  return `${p.code}: ${p.message}`;
}

export function isUnauthenticated(err: unknown): boolean {
  return err instanceof ConnectError && err.code === Code.Unauthenticated;
}
