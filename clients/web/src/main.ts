// Entry point: the sign-in form until a token checks out (a reload checks the stored one), then the dashboard
// until sign-out.
import "./styles.css";
import { createApi } from "./api/clients";
import { isUnauthenticated } from "./api/errors";
import { sleep } from "./api/follow";
import { dashboard } from "./dashboard";
import type { User } from "./gen/trademaster/v1/security_pb";
import { resumePage } from "./panels/resume";
import { signInPage } from "./panels/signin";
import { forgetToken, storedToken, storeToken } from "./session";

const RETRY_MS = 3000;

const root = document.getElementById("app") as HTMLElement;
let session: AbortController | null = null;

function showSignIn(notice: unknown = null): void {
  session?.abort();
  session = null;
  forgetToken();
  root.replaceChildren(signInPage(open, notice));
}

function open(token: string, user: User): void {
  storeToken(token);
  session?.abort();
  const mine = new AbortController();
  session = mine;
  // A token revoked mid-session: back to the sign-in form, once, saying why.
  const api = createApi(token, (err) => {
    if (session === mine) showSignIn(err);
  });
  root.replaceChildren(dashboard(api, user, mine.signal, () => showSignIn()));
}

async function start(): Promise<void> {
  const token = storedToken();
  if (!token) return showSignIn();
  // Only a token the daemon refuses is forgotten: a reload while it restarts (UNAVAILABLE) keeps the token and
  // asks again until it answers or the user signs in afresh (which aborts this, as any new session does).
  const waiting = new AbortController();
  session = waiting;
  const api = createApi(token, () => undefined);
  while (!waiting.signal.aborted) {
    try {
      return open(token, await api.security.whoAmI({}, { signal: waiting.signal }));
    } catch (err) {
      if (waiting.signal.aborted) return;
      if (isUnauthenticated(err)) return showSignIn(err);
      root.replaceChildren(resumePage(err, () => showSignIn()));
      await sleep(RETRY_MS, waiting.signal);
    }
  }
}

void start();
