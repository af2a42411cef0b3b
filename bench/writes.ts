import { round } from "./harness.ts";
import { eightMutations, MEASURED_MS, writeLoop } from "./write-load.ts";

/** This release's eight mutations per prompt through GraphQL, 20 clients. */
export async function benchWrites(userIds: string[], gatewayPid: number) {
  const measured = await writeLoop(gatewayPid, eightMutations(userIds));
  return { clients: 20, seconds: MEASURED_MS / 1000, ...measured, mutations_per_s: round(measured.prompts_per_s * 8, 1) };
}
