/** What the app does with a page: show it (and read its data), leave it, forget what it showed. */
export interface Page {
  show(): Promise<void>;
  hide(): void;
  /** On sign-out: nothing of the previous user may stay in the document. */
  clear(): void;
}
