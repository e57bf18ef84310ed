// A small helper to build the page's elements, and the clock shared by every countdown.
type Child = Node | string | null | undefined | false;

export function h<K extends keyof HTMLElementTagNameMap>(
  tag: K,
  attributes: Record<string, string | boolean | number | undefined> = {},
  ...children: Child[]
): HTMLElementTagNameMap[K] {
  const element = document.createElement(tag);
  for (const [name, value] of Object.entries(attributes)) {
    if (value === undefined || value === false) continue;
    element.setAttribute(name, value === true ? "" : String(value));
  }
  for (const child of children) {
    if (child === null || child === undefined || child === false) continue;
    element.append(child);
  }
  return element;
}

/** The server's time as the page knows it: the local clock corrected by what the server said. */
export const clock = {
  offset: 0,
  now(): number {
    return Date.now() + this.offset;
  },
  /** A lease of `seconds` that expires at `expiresAt` (server time) was granted just now. */
  learn(expiresAt: number, seconds: number): void {
    this.offset = expiresAt - seconds * 1000 - Date.now();
  },
};

export function millis(t: { seconds: bigint; nanos: number } | undefined): number {
  return t ? Number(t.seconds) * 1000 + Math.floor(t.nanos / 1e6) : 0;
}
