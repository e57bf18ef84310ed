// The supervisor view: the cooperator's queues per team and urgency, live (depth, oldest wait,
// tickets near or past their due time), the holds in progress, and agents by presence.
import { type GetQueueStatsResponse, type ListAgentsResponse, Urgency } from "./gen/callrouter/v1/callrouter_pb";
import { explain, type Api } from "./api";
import { clock, h, millis } from "./dom";
import { LiveQueue, type Link } from "./feed";
import { urgencyBadge } from "./desk";
import { PRESENCE, duration, presenceLabel, timeOfDay } from "./words";

const REFRESH_MS = 2000;
/** Near due: within the hour for U1, 6 h for U2, a day for U3 (as the operators' alerts say). */
const NEAR_MS: Record<number, number> = {
  [Urgency.U1]: 3_600_000,
  [Urgency.U2]: 6 * 3_600_000,
  [Urgency.U3]: 24 * 3_600_000,
};
const URGENCIES = [Urgency.U1, Urgency.U2, Urgency.U3];

/** A count, muted when it is zero so that what needs a look stands out. */
function count(n: bigint): HTMLElement {
  return h("td", { class: n === 0n ? "zero" : undefined }, String(n));
}

export class Supervision {
  readonly element: HTMLElement;
  private queue: LiveQueue | null = null;
  private stats: GetQueueStatsResponse | null = null;
  private agents: ListAgentsResponse | null = null;
  private timer = 0;
  private readonly queues = h("tbody");
  private readonly people = h("tbody");
  private readonly presenceSummary = h("p", { id: "presence-summary" });
  private readonly notice = h("p", { class: "notice", role: "alert" });

  constructor(
    private readonly api: Api,
    private readonly onLink: (state: Link, why?: string) => void,
  ) {
    const head = (...titles: string[]) => h("thead", {}, h("tr", {}, ...titles.map((t) => h("th", { scope: "col" }, t))));
    this.element = h(
      "div",
      { class: "supervision" },
      this.notice,
      h(
        "section",
        { "aria-labelledby": "queues-title" },
        h("h2", { id: "queues-title" }, "Files par équipe et urgence"),
        this.presenceSummary,
        h(
          "table",
          { id: "queues" },
          h(
            "thead",
            {},
            h(
              "tr",
              {},
              h("th", { scope: "col" }, "Équipe"),
              ...URGENCIES.map((u) => h("th", { scope: "col" }, "En attente ", urgencyBadge(u))),
              ...["Plus ancienne attente", "Proches de l'échéance", "Échéance dépassée", "Réservés", "En cours", "Agents disponibles"].map((t) =>
                h("th", { scope: "col" }, t),
              ),
            ),
          ),
          this.queues,
        ),
      ),
      h(
        "section",
        { "aria-labelledby": "agents-title" },
        h("h2", { id: "agents-title" }, "Agents"),
        h("table", { id: "agents" }, head("Agent", "Présence", "Équipes", "Vu à"), this.people),
      ),
    );
  }

  async start(): Promise<void> {
    await this.refresh();
    const teams = [...new Set(this.stats?.teams.map((t) => t.teamId) ?? [])];
    this.queue = new LiveQueue(this.api, teams, {
      changed: () => this.render(),
      link: (state, why) => {
        if (state !== "refused") {
          this.onLink(state, why);
          return;
        }
        // A token that oversees without working tickets (an operator) may not watch: the
        // figures come from the statistics read every 2 s instead.
        this.queue?.stop();
        this.queue = null;
        this.onLink("polling");
        this.render();
      },
    });
    this.queue.start();
    this.timer = window.setInterval(() => void this.refresh(), REFRESH_MS);
  }

  stop(): void {
    this.queue?.stop();
    window.clearInterval(this.timer);
  }

  private async refresh(): Promise<void> {
    try {
      [this.stats, this.agents] = await Promise.all([this.api.ops.getQueueStats({}), this.api.ops.listAgents({})]);
      this.notice.textContent = "";
    } catch (error) {
      this.notice.textContent = explain(error);
    }
    this.render();
  }

  private render(): void {
    const now = clock.now();
    const waiting = this.queue?.sorted() ?? [];
    const rows: HTMLElement[] = [];
    for (const team of this.stats?.teams ?? []) {
      const partition = team.cooperatorId || "platform";
      const here = waiting.filter((t) => t.teamId === team.teamId && (t.cooperatorId || "platform") === partition);
      const cells = URGENCIES.map((urgency) => {
        const mine = here.filter((t) => t.urgency === urgency);
        const stat = this.stats?.queues.find((q) => q.teamId === team.teamId && q.cooperatorId === team.cooperatorId && q.urgency === urgency);
        const depth = this.queue ? mine.length : Number(stat?.depth ?? 0n);
        const overdue = mine.some((t) => millis(t.slaDueAt) < now);
        const near = mine.some((t) => millis(t.slaDueAt) >= now && millis(t.slaDueAt) - now < NEAR_MS[urgency]);
        return h("td", { class: `depth${overdue ? " overdue" : near ? " near" : depth === 0 ? " zero" : ""}`, "data-urgency": urgency }, String(depth));
      });
      const live = this.queue !== null;
      const statOldest = Math.max(
        0,
        ...(this.stats?.queues ?? [])
          .filter((q) => q.teamId === team.teamId && q.cooperatorId === team.cooperatorId)
          .map((q) => Number(q.oldestWaitSeconds) * 1000),
      );
      const oldest = live ? (here.length > 0 ? now - Math.min(...here.map((t) => millis(t.createdAt))) : 0) : statOldest;
      const overdue = here.filter((t) => millis(t.slaDueAt) < now).length;
      const near = here.filter((t) => millis(t.slaDueAt) >= now && millis(t.slaDueAt) - now < NEAR_MS[t.urgency]).length;
      rows.push(
        h(
          "tr",
          { "data-team": team.teamId, "data-cooperator": partition, class: overdue > 0 ? "overdue" : near > 0 ? "near" : undefined },
          h("th", { scope: "row" }, team.teamId),
          ...cells,
          h("td", {}, oldest > 0 || here.length > 0 ? duration(oldest) : "—"),
          // Due times are the watch's: without it, they are not known here.
          h("td", { class: near > 0 ? "near" : "zero" }, live ? String(near) : "—"),
          h("td", { class: overdue > 0 ? "overdue" : "zero" }, live ? String(overdue) : "—"),
          count(team.reserved),
          count(team.inProgress),
          count(team.agentsByPresence["AVAILABLE"] ?? 0n),
        ),
      );
    }
    this.queues.replaceChildren(...rows);

    const agents = this.agents?.agents ?? [];
    const counts = PRESENCE.map((p) => `${p.label} : ${agents.filter((a) => a.presence === p.value).length}`);
    this.presenceSummary.textContent = counts.join(" · ");
    this.people.replaceChildren(
      ...agents.map((a) =>
        h(
          "tr",
          { "data-agent": a.agentId },
          h("th", { scope: "row" }, a.agentId),
          h("td", {}, presenceLabel(a.presence)),
          h("td", {}, a.teamIds.join(", ")),
          h("td", {}, a.lastSeen ? timeOfDay(millis(a.lastSeen)) : "—"),
        ),
      ),
    );
  }
}
