// A child process of the noisy-neighbour bench (noisy-attacks.ts): holds
// SOCKETS connections to the gateway, spread over ADDRESSES, each sending a
// request line and then a header line every 10 s, reopened when the gateway
// closes it (after 5 s when it was closed on arrival). Its own process, so the
// attacker's sockets and timers do not slow the bench process measuring B.
// Args: port, sockets, addresses (comma-separated). "stop" on stdin ends it;
// it then prints what it saw as JSON.
import net from "node:net";

const [port, count, addresses] = [Number(process.argv[2]), Number(process.argv[3]), process.argv[4].split(",")];
const tally = { connections_opened: 0, closed_on_arrival: 0, cut_off_after_s: [] as number[] };
const open = new Set<net.Socket>();
let stopped = false;

function connect(localAddress: string): void {
  if (stopped) return;
  const socket = net.connect({ port, host: "127.0.0.1", localAddress });
  let connectedAt = 0;
  socket.on("connect", () => {
    connectedAt = performance.now();
    tally.connections_opened++;
    open.add(socket);
    socket.write("GET /healthz HTTP/1.1\r\n");
  });
  socket.on("error", () => {});
  socket.on("close", () => {
    open.delete(socket);
    const lived = connectedAt ? (performance.now() - connectedAt) / 1000 : 0;
    if (lived < 1) tally.closed_on_arrival++;
    else tally.cut_off_after_s.push(lived);
    setTimeout(() => connect(localAddress), lived < 1 ? 5000 : 0);
  });
}

// One timer for all of them: a header line to each open socket every 10 s.
const trickle = setInterval(() => {
  for (const socket of open) socket.write(`X-Slow-${Date.now()}: y\r\n`);
}, 10_000);
for (let i = 0; i < count; i++) connect(addresses[i % addresses.length]);

// The bench process gone (its end of the pipe closed): stop attacking.
process.stdin.on("end", () => process.exit(0));
process.stdin.on("data", (data) => {
  if (!data.toString().includes("stop")) return;
  stopped = true;
  clearInterval(trickle);
  const lives = tally.cut_off_after_s.sort((a, b) => a - b);
  process.stdout.write(`${JSON.stringify({
    sockets: count, addresses: addresses.length, connections_opened: tally.connections_opened, closed_on_arrival: tally.closed_on_arrival,
    open_at_stop: open.size, cpu_s: Math.round((process.cpuUsage().user + process.cpuUsage().system) / 1e5) / 10, cut_off_median_s: lives.length ? Math.round(lives[Math.floor(lives.length / 2)] * 10) / 10 : null,
  })}\n`);
  for (const socket of open) socket.destroy();
  process.exit(0);
});
