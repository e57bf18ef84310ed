// The French words and formats the desk shows: urgencies, states, presences, durations, times.
import { Presence, TicketState, Urgency } from "./gen/callrouter/v1/callrouter_pb";

export const URGENCY: Record<number, { label: string; mark: string; title: string }> = {
  [Urgency.U1]: { label: "U1", mark: "▲", title: "U1 — danger : sous 4 h, jour et nuit" },
  [Urgency.U2]: { label: "U2", mark: "◆", title: "U2 — sous 24 h" },
  [Urgency.U3]: { label: "U3", mark: "●", title: "U3 — sous 5 jours ouvrés" },
};

export const STATE: Record<number, string> = {
  [TicketState.QUEUED]: "en attente",
  [TicketState.RESERVED]: "réservé",
  [TicketState.IN_PROGRESS]: "en cours",
  [TicketState.COMPLETED]: "terminé",
  [TicketState.CANCELLED]: "annulé (l'appelant a raccroché)",
  [TicketState.MOVED]: "transféré à un autre bailleur",
};

export const PRESENCE: Array<{ value: Presence; label: string }> = [
  { value: Presence.AVAILABLE, label: "Disponible" },
  { value: Presence.BUSY, label: "En communication" },
  { value: Presence.WRAP_UP, label: "Après-appel" },
  { value: Presence.BREAK, label: "Pause" },
  { value: Presence.OFFLINE, label: "Hors ligne" },
];

export function presenceLabel(p: Presence): string {
  return PRESENCE.find((x) => x.value === p)?.label ?? String(p);
}

/** A duration in words: "45 s", "12 min", "2 h 05", "3 j 4 h". */
export function duration(ms: number): string {
  const s = Math.max(0, Math.floor(ms / 1000));
  if (s < 60) return `${s} s`;
  const m = Math.floor(s / 60);
  if (m < 60) return `${m} min`;
  const h = Math.floor(m / 60);
  if (h < 24) return `${h} h ${String(m % 60).padStart(2, "0")}`;
  return `${Math.floor(h / 24)} j ${h % 24} h`;
}

/** Time left to a due time: "reste 3 h 12", or "dépassé de 10 min". */
export function timeLeft(ms: number): string {
  return ms >= 0 ? `reste ${duration(ms)}` : `dépassé de ${duration(-ms)}`;
}

/** A lease countdown: "4:32". */
export function countdown(ms: number): string {
  const s = Math.max(0, Math.ceil(ms / 1000));
  return `${Math.floor(s / 60)}:${String(s % 60).padStart(2, "0")}`;
}

const CLOCK = new Intl.DateTimeFormat("fr-FR", {
  timeZone: "Europe/Paris",
  weekday: "short",
  day: "numeric",
  month: "short",
  hour: "2-digit",
  minute: "2-digit",
});

const TIME = new Intl.DateTimeFormat("fr-FR", {
  timeZone: "Europe/Paris",
  hour: "2-digit",
  minute: "2-digit",
  second: "2-digit",
});

/** A time of day in Paris: "21:38:24". */
export function timeOfDay(ms: number): string {
  return TIME.format(new Date(ms));
}

export function dateTime(ms: number): string {
  return CLOCK.format(new Date(ms));
}

/** A taxonomy code, made readable: "technical.plumbing.leak" → "technical › plumbing › leak". */
export function issue(code: string): string {
  return code.split(".").join(" › ");
}

/** A line of a ticket's history, as the store recorded it, said in French. */
const HISTORY: Array<[RegExp, (m: RegExpMatchArray) => string]> = [
  [/^created in (.+)$/, (m) => `Créé dans la file ${m[1]}`],
  [/^claimed by (\S+)( lease \d+)?$/, (m) => `Réservé par ${m[1]}`],
  [/^accepted by (\S+)$/, (m) => `Accepté par ${m[1]}`],
  [/^released by (\S+)$/, (m) => `Remis en file par ${m[1]}`],
  [/^completed by (\S+): (.*)$/, (m) => `Terminé par ${m[1]} : ${m[2]}`],
  [/^transferred by (\S+) from (\S+) to (\S+)$/, (m) => `Transféré par ${m[1]} de ${m[2]} vers ${m[3]}`],
  [/^transfer by (\S+) to (\S+)$/, (m) => `Transféré par ${m[1]} vers ${m[2]}`],
  [/^lease of (\S+) expired, attempt (\d+)$/, (m) => `Réservation de ${m[1]} expirée (reprise ${m[2]})`],
  [/^escalated to (\S+)$/, (m) => `Remonté aux superviseurs (${m[1]})`],
  [/^incident call (\S+)$/, (m) => `Nouvel appel pour cet incident (${m[1]})`],
  [/^caller (\S+) hung up, (\d+) still waiting$/, (m) => `Un appelant a raccroché (${m[2]} encore en attente)`],
  [/^cancelled: caller (\S+) hung up$/, () => "Annulé : l'appelant a raccroché"],
  [/^moved to (\S+)$/, (m) => `Confié au bailleur (ticket ${m[1]})`],
  [/^moved in from (\S+)$/, (m) => `Reçu de la plateforme (ticket ${m[1]})`],
];

export function historyLine(what: string): string {
  for (const [pattern, say] of HISTORY) {
    const m = what.match(pattern);
    if (m) return say(m);
  }
  return what;
}
