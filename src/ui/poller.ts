// A page that re-reads its data every second while something on it is still
// changing (a queued or running export or feed run), and only while it is shown.
const POLL_MILLISECONDS = 1000;

export function poller(read: () => Promise<void>) {
  let timer: number | undefined;
  let visible = false;
  return {
    /** Whether the page is shown: an answer that arrives after it was left is not rendered. */
    get visible() { return visible; },
    /** Reads again in a second, if the page is still shown then. */
    soon() {
      window.clearTimeout(timer);
      timer = visible ? window.setTimeout(() => void read(), POLL_MILLISECONDS) : undefined;
    },
    async show() {
      visible = true;
      await read();
    },
    hide() {
      visible = false;
      window.clearTimeout(timer);
      timer = undefined;
    },
  };
}
