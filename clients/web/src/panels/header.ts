// The top bar: who is signed in, how the live streams are doing, and sign-out.
import type { Context } from "../context";
import type { Feed } from "../feeds/feed";
import type { Link } from "../feeds/link";
import { label } from "../format";
import { Role } from "../gen/trademaster/v1/security_pb";
import { h, tid } from "../ui/dom";

function indicator(name: string, feed: Feed<Link>): HTMLElement {
  const dot = h("span", { class: "link connecting", title: "connecting", ...tid(`link-${name}`) }, name);
  feed.subscribe((link) => {
    dot.className = `link ${link.state}`;
    dot.title = link.detail ? `${link.state}: ${link.detail}` : link.state;
  });
  return dot;
}

export function header(ctx: Context, signOut: () => void): HTMLElement {
  return h(
    "header",
    { class: "topbar" },
    h("h1", {}, "TradeMaster"),
    h("div", { class: "links" }, indicator("portfolio", ctx.bookLink), indicator("orders", ctx.eventsLink)),
    h(
      "div",
      { class: "who" },
      h("span", { ...tid("whoami") }, h("strong", {}, ctx.user.name), ` · ${label(Role, ctx.user.role).toLowerCase()}`),
      h("button", { class: "secondary small", onclick: signOut, ...tid("signout") }, "Sign out"),
    ),
  );
}
