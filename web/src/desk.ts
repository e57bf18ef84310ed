// The agent view: presence kept alive by a heartbeat, the live list of the agent's teams' waiting
// tickets, "take the next call" under a lease that counts down, and the ticket card with its
// actions (accept, complete with a resolution — then take the next call in the same request, if
// asked —, release, transfer).
import { Code } from "@connectrpc/connect";
import {
  Presence,
  TicketState,
  type AgentStatus,
  type Ticket,
} from "./gen/callrouter/v1/callrouter_pb";
import { codeOf, explain, type Api } from "./api";
import { clock, h, millis } from "./dom";
import { LiveQueue, type Link } from "./feed";
import {
  PRESENCE,
  STATE,
  URGENCY,
  countdown,
  dateTime,
  duration,
  historyLine,
  issue,
  timeLeft,
} from "./words";

/** How often the desk tells the server the agent is there (its presence lasts 30 s). */
const HEARTBEAT_MS = 10_000;
/** The performance mark of the first waiting call listed after the page loaded. */
const FIRST_LIST_MARK = "desk-first-list";
/** Failures after which a claim may have been made: it is asked again with the same id. */
const ANSWER_MAY_BE_LOST = [Code.Unavailable, Code.DeadlineExceeded, Code.Unknown, Code.Canceled];
/** Teams anyone may send a call back to. */
const TRIAGE_TEAM = "platform.triage";

export function urgencyBadge(urgency: number): HTMLElement {
  const u = URGENCY[urgency];
  return h(
    "span",
    { class: `urgency u${urgency}`, title: u?.title ?? "", "aria-label": u?.title ?? "" },
    h("span", { "aria-hidden": "true" }, `${u?.mark ?? "?"} ${u?.label ?? "?"}`),
  );
}

/** A team's name without its cooperator's prefix ("technical.tl-tours"), which the row shows. */
function teamName(teamId: string, cooperatorId: string): string {
  return cooperatorId && teamId.startsWith(`${cooperatorId}.`) ? teamId.slice(cooperatorId.length + 1) : teamId;
}

export class AgentDesk {
  readonly element: HTMLElement;
  private readonly queue: LiveQueue;
  private presence: Presence = Presence.AVAILABLE;
  private held: Ticket | null = null;
  private heartbeat = 0;
  private ticking = 0;
  private busy = false;
  /** The id of a claim sent whose answer did not come back (network or store trouble). */
  private unanswered: string | null = null;

  private readonly rows = h("tbody");
  private readonly count = h("span", { class: "count" });
  private readonly take = h(
    "button",
    { type: "button", class: "primary", "aria-keyshortcuts": "N", id: "take-next" },
    "Prendre l'appel suivant",
  );
  private readonly presenceSelect = h("select", { id: "presence" });
  private readonly notice = h("p", { class: "notice", role: "alert", id: "desk-notice" });
  private readonly card = h("section", { class: "card", "aria-labelledby": "card-title", id: "ticket-card" });

  constructor(
    private readonly api: Api,
    private readonly me: AgentStatus,
    private readonly leaseSeconds: number,
    private readonly onLink: (state: Link, why?: string) => void,
  ) {
    for (const p of PRESENCE) {
      if (p.value !== Presence.OFFLINE) this.presenceSelect.append(h("option", { value: p.value }, p.label));
    }
    this.presenceSelect.addEventListener("change", () => {
      void this.setPresence(Number(this.presenceSelect.value) as Presence);
    });
    this.take.addEventListener("click", () => void this.claim());

    this.element = h(
      "div",
      { class: "desk" },
      h(
        "section",
        { class: "queue", "aria-labelledby": "queue-title" },
        h(
          "div",
          { class: "queue-head" },
          h("h2", { id: "queue-title" }, "Appels en attente ", this.count),
          h("label", { class: "presence" }, "Présence ", this.presenceSelect),
          this.take,
        ),
        this.notice,
        h(
          "table",
          { id: "waiting" },
          h("caption", { class: "visually-hidden" }, "Tickets en attente de vos équipes, les plus urgents et les plus anciens d'abord"),
          h(
            "thead",
            {},
            h(
              "tr",
              {},
              ...["Urgence", "Motif", "Bailleur", "Équipe", "Attente", "Échéance"].map((t) => h("th", { scope: "col" }, t)),
            ),
          ),
          this.rows,
        ),
      ),
      this.card,
    );
    this.queue = new LiveQueue(api, me.teamIds, {
      changed: () => this.renderList(),
      link: (state, why) => this.onLink(state, why),
    });
    this.renderCard();
  }

  async start(): Promise<void> {
    this.queue.start();
    await this.setPresence(Presence.AVAILABLE);
    this.heartbeat = window.setInterval(() => void this.beat(), HEARTBEAT_MS);
    this.ticking = window.setInterval(() => this.tick(), 1000);
    // A desk opened again mid-hold takes its tickets back, with their lease tokens.
    try {
      const held = await this.api.desk.listTickets({ heldByMe: true });
      if (held.tickets.length > 0) this.show(held.tickets[0]);
    } catch (error) {
      this.say(explain(error));
    }
  }

  async stop(): Promise<void> {
    this.queue.stop();
    window.clearInterval(this.heartbeat);
    window.clearInterval(this.ticking);
    try {
      await this.api.desk.setAgentStatus({ presence: Presence.OFFLINE });
    } catch {
      // Signing out goes on: the presence lapses by itself without heartbeats.
    }
  }

  /** Keyboard shortcuts, outside text fields: N take, A accept, T complete, R release. */
  key(event: KeyboardEvent): boolean {
    const actions: Record<string, () => void> = {
      n: () => void this.claim(),
      a: () => this.held?.state === TicketState.RESERVED && void this.accept(),
      t: () => this.held && document.getElementById("resolution")?.focus(),
      r: () => this.held && void this.release(),
    };
    const action = actions[event.key.toLowerCase()];
    if (!action) return false;
    action();
    return true;
  }

  private async setPresence(presence: Presence): Promise<void> {
    this.presence = presence;
    this.presenceSelect.value = String(presence);
    await this.beat();
  }

  private async beat(): Promise<void> {
    try {
      await this.api.desk.setAgentStatus({ presence: this.presence });
    } catch (error) {
      this.say(`Présence non transmise : ${explain(error)}`);
    }
  }

  private say(text: string): void {
    this.notice.textContent = text;
  }

  private async act(work: () => Promise<void>): Promise<void> {
    if (this.busy) return;
    this.busy = true;
    this.say("");
    try {
      await work();
    } finally {
      this.busy = false;
      this.renderCard();
    }
  }

  private async claim(): Promise<void> {
    if (this.held) {
      this.say("Terminez, remettez en file ou transférez l'appel en cours avant d'en prendre un autre.");
      return;
    }
    await this.act(async () => {
      // A claim whose answer was lost is asked again with the same id: the store gives back the
      // hold it made, instead of hiding that call behind this agent for the whole lease.
      const claimId = this.unanswered ?? crypto.randomUUID();
      this.unanswered = claimId;
      try {
        const claimed = await this.api.desk.claimNextTicket({ leaseSeconds: this.leaseSeconds, claimId });
        this.unanswered = null;
        if (!claimed.ticket) {
          this.say("Aucun appel en attente dans vos équipes : un collègue a peut-être pris le dernier.");
          return;
        }
        clock.learn(millis(claimed.ticket.leaseExpiresAt), this.leaseSeconds);
        this.show(claimed.ticket);
        // Not awaited: the card is the agent's at once (a key pressed now must act on it).
        if (this.presence === Presence.AVAILABLE) void this.setPresence(Presence.BUSY);
      } catch (error) {
        if (!ANSWER_MAY_BE_LOST.includes(codeOf(error))) this.unanswered = null;
        this.say(explain(error));
      }
    });
  }

  private show(ticket: Ticket): void {
    this.held = ticket;
    this.renderCard();
    this.fetchHistory(ticket.ticketId);
  }

  /** Reads the held ticket again with its history (GetTicket), keeping this desk's hold. */
  private fetchHistory(ticketId: string): void {
    void this.api.desk.getTicket({ ticketId }).then(
      (full) => {
        const held = this.held;
        if (held?.ticketId === full.ticketId) {
          this.held = { ...held, history: full.history, decision: held.decision ?? full.decision };
          this.renderCard();
        }
      },
      () => undefined,
    );
  }

  /** Runs an action on the held ticket; a hold that is gone is said as what happened to it. */
  private async onHeld(run: (t: Ticket) => Promise<Ticket>, done: (t: Ticket) => string | null): Promise<void> {
    const ticket = this.held;
    if (!ticket) return;
    await this.act(async () => {
      try {
        const after = await run(ticket);
        const message = done(after);
        if (message === null) {
          this.held = { ...after, decision: after.decision ?? ticket.decision };
          this.fetchHistory(after.ticketId);
        } else {
          this.held = null;
          this.say(message);
          if (this.presence === Presence.BUSY) void this.setPresence(Presence.AVAILABLE);
        }
      } catch (error) {
        if (codeOf(error) === Code.FailedPrecondition) {
          this.held = null;
          this.say(await this.whyLost(ticket));
        } else {
          this.say(explain(error));
        }
      }
    });
  }

  private async whyLost(ticket: Ticket): Promise<string> {
    try {
      const now = await this.api.desk.getTicket({ ticketId: ticket.ticketId });
      if (now.agentId && now.agentId !== this.me.agentId) {
        return `Ce ticket a été pris par un collègue (${now.agentId}) : votre réservation avait expiré.`;
      }
      if (now.state === TicketState.QUEUED) {
        return "Votre réservation a expiré : le ticket est retourné dans la file d'attente.";
      }
      return `Ce ticket n'est plus à vous : il est ${STATE[now.state] ?? "dans un autre état"}.`;
    } catch (error) {
      return explain(error);
    }
  }

  private accept(): Promise<void> {
    return this.onHeld(
      (t) => this.api.desk.acceptTicket({ ticketId: t.ticketId, leaseToken: t.leaseToken }),
      () => null,
    );
  }

  private complete(resolution: string): Promise<void> {
    return this.onHeld(
      (t) => this.api.desk.completeTicket({ ticketId: t.ticketId, leaseToken: t.leaseToken, resolution }),
      () => "Appel terminé et clôturé.",
    );
  }

  /**
   * "Done, next": completes the held call and takes the next one in one request. A request whose
   * answer was lost is asked again with the same claim id (as a claim is): the completion is
   * answered as done and the hold it made given back.
   */
  private completeAndTakeNext(resolution: string): Promise<void> {
    const ticket = this.held;
    if (!ticket) return Promise.resolve();
    return this.act(async () => {
      const claimId = this.unanswered ?? crypto.randomUUID();
      this.unanswered = claimId;
      try {
        const answer = await this.api.desk.claimNextTicket({
          leaseSeconds: this.leaseSeconds,
          claimId,
          complete: { ticketId: ticket.ticketId, leaseToken: ticket.leaseToken, resolution },
        });
        this.unanswered = null;
        this.held = null;
        if (!answer.ticket) {
          this.say("Appel terminé et clôturé. Aucun appel en attente dans vos équipes.");
          if (this.presence === Presence.BUSY) void this.setPresence(Presence.AVAILABLE);
          return;
        }
        clock.learn(millis(answer.ticket.leaseExpiresAt), this.leaseSeconds);
        this.say("Appel terminé et clôturé. Voici l'appel suivant.");
        this.show(answer.ticket);
      } catch (error) {
        if (!ANSWER_MAY_BE_LOST.includes(codeOf(error))) this.unanswered = null;
        if (codeOf(error) === Code.FailedPrecondition) {
          this.held = null;
          this.say(await this.whyLost(ticket));
        } else {
          this.say(explain(error));
        }
      }
    });
  }

  private release(): Promise<void> {
    return this.onHeld(
      (t) => this.api.desk.releaseTicket({ ticketId: t.ticketId, leaseToken: t.leaseToken }),
      () => "Appel remis dans la file d'attente, à sa place.",
    );
  }

  private transfer(teamId: string): Promise<void> {
    return this.onHeld(
      (t) => this.api.desk.transferTicket({ ticketId: t.ticketId, leaseToken: t.leaseToken, teamId }),
      (t) => `Appel transféré à l'équipe ${t.teamId}.`,
    );
  }

  private tick(): void {
    const held = this.held;
    const lease = document.getElementById("lease");
    if (held && lease) {
      const left = millis(held.leaseExpiresAt) - clock.now();
      if (left <= 0) {
        this.held = null;
        this.say("Votre réservation a expiré : le ticket est retourné dans la file d'attente.");
        this.renderCard();
      } else {
        lease.textContent = countdown(left);
        lease.classList.toggle("short", left < 30_000);
      }
    }
    this.renderTimes();
  }

  private renderList(): void {
    const tickets = this.queue.sorted();
    // The first waiting call shown after the page loaded, for whoever measures the desk's start.
    if (tickets.length > 0 && performance.getEntriesByName(FIRST_LIST_MARK).length === 0) {
      performance.mark(FIRST_LIST_MARK);
    }
    this.count.textContent = `(${tickets.length})`;
    this.rows.replaceChildren(
      ...tickets.map((t) =>
        h(
          "tr",
          { "data-ticket": t.ticketId, class: `u${t.urgency}` },
          h("td", {}, urgencyBadge(t.urgency)),
          h("td", { title: t.issueType }, t.issueLabel || issue(t.issueType)),
          h("td", {}, t.cooperatorId || "plateforme"),
          h("td", { title: t.teamId }, teamName(t.teamId, t.cooperatorId)),
          h("td", { class: "waited", "data-since": millis(t.createdAt) }),
          h("td", { class: "due", "data-due": millis(t.slaDueAt) }),
        ),
      ),
    );
    if (tickets.length === 0) {
      this.rows.append(h("tr", {}, h("td", { colspan: 6, class: "empty" }, "Aucun appel en attente.")));
    }
    this.renderTimes();
  }

  private renderTimes(): void {
    const now = clock.now();
    for (const cell of this.rows.querySelectorAll<HTMLElement>("td.waited")) {
      cell.textContent = duration(now - Number(cell.dataset.since));
    }
    for (const cell of this.rows.querySelectorAll<HTMLElement>("td.due")) {
      const left = Number(cell.dataset.due) - now;
      cell.textContent = timeLeft(left);
      cell.classList.toggle("overdue", left < 0);
      cell.classList.toggle("near", left >= 0 && left < 3_600_000);
    }
  }

  private renderCard(): void {
    this.take.disabled = this.busy || this.held !== null;
    const t = this.held;
    if (!t) {
      this.card.replaceChildren(
        h("h2", { id: "card-title" }, "Appel en cours"),
        h("p", { class: "empty" }, "Aucun appel. « Prendre l'appel suivant » (touche N) réserve le plus urgent."),
      );
      return;
    }
    const decision = t.decision;
    const match = decision?.addressMatch;
    const fields: Array<[string, Node | string]> = [
      ["Urgence", urgencyBadge(t.urgency)],
      ["Motif", t.issueLabel ? `${t.issueLabel} (${t.issueType})` : issue(t.issueType)],
      ["Bailleur", t.cooperatorId || "plateforme (à orienter)"],
      ["Équipe", t.teamId],
      ["Adresse", t.address || "non localisée"],
      ["Bâtiment", t.buildingId || "—"],
      ["Appelant", t.callerNumber ? h("a", { href: `tel:${t.callerNumber.replace(/\s/g, "")}`, id: "caller" }, t.callerNumber) : "numéro non transmis"],
      ["Appel", t.callId],
      ["Reçu", dateTime(millis(t.createdAt))],
      ["Échéance", `${dateTime(millis(t.slaDueAt))} (${timeLeft(millis(t.slaDueAt) - clock.now())})`],
    ];
    if (t.description) fields.push(["Description", h("span", { id: "description" }, t.description)]);
    if (t.incidentId) fields.push(["Incident", `${t.incidentId} — ${t.incidentCalls} appel(s)`]);
    if (t.attempts > 0) fields.push(["Reprises", `${t.attempts} réservation(s) expirée(s)`]);
    if (t.transferredFrom) fields.push(["Transféré de", t.transferredFrom]);
    if (decision) {
      fields.push(["Règle", decision.ruleId || "—"]);
      if (match) fields.push(["Localisation", `${["aucune", "commune", "rue", "bâtiment"][match.level] ?? ""} (${Math.round(match.confidence * 100)} %)`]);
    }
    const teams = [...new Set([...this.me.teamIds, TRIAGE_TEAM])].filter((id) => id !== t.teamId);
    const resolution = h("textarea", {
      id: "resolution",
      rows: 2,
      maxlength: 256,
      required: true,
      "aria-keyshortcuts": "T",
    });
    const transferTo = h("select", { id: "transfer-team" }, ...teams.map((id) => h("option", { value: id }, id)));
    const reserved = t.state === TicketState.RESERVED;
    const completeForm = h(
      "form",
      { class: "complete", "aria-label": "Terminer l'appel" },
      h("label", { for: "resolution" }, "Résolution (ce qui a été fait)"),
      resolution,
      h(
        "div",
        { class: "complete-buttons" },
        h("button", { type: "submit", class: "primary", id: "complete" }, "Terminer l'appel"),
        h("button", { type: "submit", id: "complete-next" }, "Terminer et prendre le suivant"),
      ),
    );
    completeForm.addEventListener("submit", (e) => {
      e.preventDefault();
      const text = resolution.value.trim();
      if (!text) {
        this.say("Indiquez la résolution avant de terminer l'appel.");
        resolution.focus();
        return;
      }
      const next = (e as SubmitEvent).submitter?.id === "complete-next";
      void (next ? this.completeAndTakeNext(text) : this.complete(text));
    });
    const accept = h("button", { type: "button", id: "accept", "aria-keyshortcuts": "A", disabled: !reserved }, "Accepter");
    accept.addEventListener("click", () => void this.accept());
    const release = h("button", { type: "button", id: "release", "aria-keyshortcuts": "R" }, "Remettre en file");
    release.addEventListener("click", () => void this.release());
    const transfer = h("button", { type: "button", id: "transfer" }, "Transférer");
    transfer.addEventListener("click", () => void this.transfer(transferTo.value));
    const left = millis(t.leaseExpiresAt) - clock.now();

    const why =
      decision && decision.reasons.length > 0
        ? h("details", { open: true }, h("summary", {}, "Pourquoi cette équipe"), h("ul", {}, ...decision.reasons.map((r) => h("li", {}, r))))
        : "";
    this.card.replaceChildren(
      h("h2", { id: "card-title" }, "Appel en cours — ", h("span", { id: "ticket-state" }, STATE[t.state] ?? "")),
      h(
        "p",
        { class: "lease" },
        reserved ? "Réservé pour vous encore " : "À vous encore ",
        h("span", { id: "lease", role: "timer", "aria-live": "off" }, countdown(left)),
        reserved ? " — acceptez pour le garder." : "",
      ),
      h("dl", {}, ...fields.flatMap(([k, v]) => [h("dt", {}, k), h("dd", {}, v)])),
      why,
      t.history.length > 0
        ? h(
            "details",
            { id: "history" },
            h("summary", {}, `Historique (${t.history.length})`),
            h("ol", {}, ...t.history.map((e) => h("li", {}, h("time", {}, dateTime(millis(e.at))), " ", historyLine(e.what)))),
          )
        : "",
      h("div", { class: "actions" }, accept, release),
      completeForm,
      h(
        "div",
        { class: "transfer" },
        h("label", { for: "transfer-team" }, "Transférer à l'équipe "),
        transferTo,
        transfer,
      ),
    );
  }
}
