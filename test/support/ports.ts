import { createServer } from "node:net";

// Below Linux's ephemeral range (32768-60999): no outgoing connection of the
// busy suite can take the port between this check and the server's bind, nor
// while a test restarts its server on the same port.
const LOWEST = 20000;
const SPAN = 12000;

/** A TCP port on 127.0.0.1 no one listens on, outside the kernel's range for outgoing connections. */
export async function freePort(): Promise<number> {
  for (;;) {
    const port = LOWEST + Math.floor(Math.random() * SPAN);
    if (await canListen(port)) return port;
  }
}

function canListen(port: number): Promise<boolean> {
  const server = createServer();
  return new Promise((resolve) => {
    server.once("error", () => resolve(false));
    server.listen(port, "127.0.0.1", () => server.close(() => resolve(true)));
  });
}
