// Small DOM helpers. Text always goes in as text nodes (never innerHTML), so
// file names and error messages from the server cannot inject markup.
export type Child = Node | string | number | null | undefined | false;
type Attributes = Record<string, string | number | boolean | undefined>;

function fill<E extends Element>(element: E, attributes: Attributes, children: Child[]): E {
  for (const [name, value] of Object.entries(attributes)) {
    if (value === undefined || value === false) continue;
    element.setAttribute(name, value === true ? "" : String(value));
  }
  for (const child of children) {
    if (child === null || child === undefined || child === false) continue;
    element.append(typeof child === "number" ? String(child) : child);
  }
  return element;
}

export function h<K extends keyof HTMLElementTagNameMap>(tag: K, attributes: Attributes = {}, ...children: Child[]): HTMLElementTagNameMap[K] {
  return fill(document.createElement(tag), attributes, children);
}

export function svg<K extends keyof SVGElementTagNameMap>(tag: K, attributes: Attributes = {}, ...children: Child[]): SVGElementTagNameMap[K] {
  return fill(document.createElementNS("http://www.w3.org/2000/svg", tag), attributes, children);
}

export function byId<E extends HTMLElement = HTMLElement>(id: string): E {
  const element = document.getElementById(id);
  if (!element) throw new Error(`The page has no #${id}.`);
  return element as E;
}

/** Shows `message` in `element`, or hides it when there is none. */
export function say(element: HTMLElement, message: string | undefined): void {
  element.textContent = message ?? "";
  element.hidden = !message;
}

/** A labelled table cell; on a phone the label is shown beside the content, so the content is one block. */
export function cell(label: string, ...content: Child[]): HTMLElement {
  const present = content.filter((part) => part !== false && part !== null && part !== undefined && part !== "");
  return h("td", { "data-label": label }, present.length ? h("div", {}, ...present) : null);
}
