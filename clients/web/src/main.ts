// Entry point: the sign-in form until a token checks out, then the dashboard until sign-out.
import "./styles.css";
import { createApi } from "./api/clients";
import { dashboard } from "./dashboard";
import type { User } from "./gen/trademaster/v1/security_pb";
import { signInPage } from "./panels/signin";
import { forgetToken, storedToken, storeToken } from "./session";

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
  try {
    open(token, await createApi(token, () => undefined).security.whoAmI({}));
  } catch (err) {
    showSignIn(err);
  }
}

void start();
