// The desk's entry: sign in with a token (kept for this tab only), then the agent view and, for
// supervisors, the supervision view; a line that says whether the page is live or reconnecting.
import { Code } from "@connectrpc/connect";
import { Presence } from "./gen/callrouter/v1/callrouter_pb";
import { codeOf, connect, explain, type Api } from "./api";
import { AgentDesk } from "./desk";
import { h } from "./dom";
import type { Link } from "./feed";
import { Supervision } from "./supervisor";

const TOKEN_KEY = "callrouter.token";
const DEFAULT_LEASE_SECONDS = 300;

/** The claim lease: `?lease=<seconds>` (5 s to 4 h) lets a platform choose its own. */
function leaseSeconds(): number {
  const asked = Number(new URLSearchParams(location.search).get("lease"));
  return Number.isInteger(asked) && asked >= 5 && asked <= 14_400 ? asked : DEFAULT_LEASE_SECONDS;
}

const root = document.getElementById("app") as HTMLElement;
const link = h("p", { id: "link", role: "status", "aria-live": "polite" });

function showLink(state: Link, why?: string): void {
  const words: Record<Link, string> = {
    connecting: "Connexion…",
    live: "En direct",
    reconnecting: "Connexion perdue — reconnexion en cours…",
    refused: why ?? "Accès refusé",
    polling: "Actualisé toutes les 2 s",
  };
  link.textContent = words[state];
  link.className = state;
}

/** The sign-in form; returns where its errors are said. */
function signIn(): HTMLElement {
  const token = h("input", { id: "token", type: "password", autocomplete: "off", required: true, spellcheck: "false" });
  const error = h("p", { class: "notice", role: "alert", id: "signin-error" });
  const form = h(
    "form",
    { class: "signin", "aria-labelledby": "signin-title" },
    h("h1", { id: "signin-title" }, "Accueil des appels — connexion"),
    h("label", { for: "token" }, "Jeton d'accès"),
    token,
    h("button", { type: "submit", class: "primary" }, "Se connecter"),
    error,
  );
  form.addEventListener("submit", (e) => {
    e.preventDefault();
    void open(token.value.trim(), error);
  });
  root.replaceChildren(form);
  token.focus();
  return error;
}

/** What the token opens: the desk (agents, supervisors) and supervision (supervisors, operators). */
async function open(token: string, error: HTMLElement): Promise<void> {
  if (!token) return;
  const api = connect(token);
  const tries = await Promise.allSettled([api.desk.listTickets({ heldByMe: true }), api.ops.getQueueStats({})]);
  const [desk, supervision] = tries.map((t) => t.status === "fulfilled");
  if (!desk && !supervision) {
    sessionStorage.removeItem(TOKEN_KEY);
    const reasons = tries.flatMap((t) => (t.status === "rejected" ? [t.reason] : []));
    const unreachable = reasons.find((r) => codeOf(r) !== Code.PermissionDenied && codeOf(r) !== Code.Unauthenticated);
    error.textContent = unreachable
      ? explain(unreachable)
      : reasons.some((r) => codeOf(r) === Code.Unauthenticated)
        ? "Jeton refusé : vérifiez-le et réessayez."
        : "Ce jeton n'ouvre ni le poste agent ni la supervision.";
    return;
  }
  sessionStorage.setItem(TOKEN_KEY, token);
  await workspace(api, desk, supervision);
}

async function workspace(api: Api, desk: boolean, supervision: boolean): Promise<void> {
  let agent: AgentDesk | null = null;
  let overview: Supervision | null = null;
  const main = h("main", { id: "main" });
  const tabs = h("nav", { "aria-label": "Vues" });
  const signOut = h("button", { type: "button", id: "sign-out" }, "Se déconnecter");
  const who = h("span", { id: "who" });
  root.replaceChildren(
    h("header", {}, h("h1", {}, "Accueil des appels"), tabs, who, link, signOut),
    main,
  );

  const closeAll = async () => {
    overview?.stop();
    overview = null;
    await agent?.stop();
    agent = null;
  };
  const views: Array<{ id: string; label: string; show: () => Promise<void> }> = [];
  if (desk) {
    views.push({
      id: "view-desk",
      label: "Poste agent",
      show: async () => {
        const status = await api.desk.setAgentStatus({ presence: Presence.AVAILABLE });
        who.textContent = `${status.agentId} · ${status.cooperatorId}`;
        agent = new AgentDesk(api, status, leaseSeconds(), showLink);
        main.replaceChildren(agent.element);
        await agent.start();
      },
    });
  }
  if (supervision) {
    views.push({
      id: "view-supervision",
      label: "Supervision",
      show: async () => {
        overview = new Supervision(api, showLink);
        main.replaceChildren(overview.element);
        await overview.start();
      },
    });
  }
  const select = async (index: number) => {
    for (const [i, button] of [...tabs.children].entries()) button.setAttribute("aria-current", i === index ? "page" : "false");
    await closeAll();
    try {
      await views[index].show();
    } catch (e) {
      main.replaceChildren(h("p", { class: "notice", role: "alert" }, explain(e)));
    }
  };
  views.forEach((view, index) => {
    const button = h("button", { type: "button", id: view.id }, view.label);
    button.addEventListener("click", () => void select(index));
    tabs.append(button);
  });
  signOut.addEventListener("click", () => {
    sessionStorage.removeItem(TOKEN_KEY);
    void closeAll().then(() => signIn());
  });
  document.onkeydown = (event) => {
    const target = event.target as HTMLElement;
    if (event.ctrlKey || event.metaKey || event.altKey || ["INPUT", "TEXTAREA", "SELECT"].includes(target.tagName)) return;
    if (agent?.key(event)) event.preventDefault();
  };
  // Supervisors land on supervision; the desk is one click (or tab) away.
  await select(views.length - 1);
}

// A tab reloaded while signed in opens again with its token.
const saved = sessionStorage.getItem(TOKEN_KEY);
const signInError = signIn();
if (saved) void open(saved, signInError);
