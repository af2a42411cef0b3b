import { round } from "./harness.ts";
import type { PreviousRelease } from "./previous-release.ts";
import { addCpuUse, cpuReport, cpuUse, eightMutations, MEASURED_MS, oneRecordRun, WARM_UP_MS, writeFor, writeLoop, type CpuUse } from "./write-load.ts";

// The runs section's turns: the same 30 s per path as 3 rounds of 10 s, in
// slices short enough that both paths see the machine at the same speed.
export const TURN_MS = 3000;
export const TURNS = 10;

/**
 * recordRun (20 users) against the previous release's eight mutations (issue
 * 14's "today"), each on its own gateway and database, after WARM_UP_MS each,
 * taking TURNS turns of TURN_MS (the order alternating): how fast these
 * machines run drifts over minutes of load, and the ratio of the two paths
 * measured side by side holds where the prompts/s do not. Then recordRun by
 * 20 clients of one user, on its own.
 */
export async function benchRunsAgainstPreviousRelease(previous: PreviousRelease, userIds: string[], gatewayPid: number) {
  const paths = [
    { pid: previous.pid, write: eightMutations(await previous.writers(20), previous.base) },
    { pid: gatewayPid, write: oneRecordRun(userIds) },
  ];
  for (const path of paths) await writeFor(20, WARM_UP_MS, path.write);
  const used: (CpuUse | undefined)[] = [undefined, undefined];
  const turns: number[][] = [[], []];
  for (let turn = 0; turn < TURNS; turn++) {
    for (const index of turn % 2 === 0 ? [0, 1] : [1, 0]) {
      const slice = await cpuUse(paths[index].pid, () => writeFor(20, TURN_MS, paths[index].write));
      used[index] = used[index] ? addCpuUse(used[index]!, slice) : slice;
      turns[index].push(round(slice.prompts / slice.seconds, 0));
    }
  }
  const [previousRelease, users20] = used.map((use) => cpuReport(use!));
  return {
    users_20: { clients: 20, users: 20, seconds: round(used[1]!.seconds, 0), ...users20, turns_prompts_per_s: turns[1] },
    user_1: { clients: 20, users: 1, seconds: MEASURED_MS / 1000, ...(await writeLoop(gatewayPid, oneRecordRun(userIds.slice(0, 1)))) },
    previous_release_8_mutations: { clients: 20, seconds: round(used[0]!.seconds, 0), ...previousRelease, mutations_per_s: round(previousRelease.prompts_per_s * 8, 1), turns_prompts_per_s: turns[0] },
    vs_previous_release: round(users20.prompts_per_s / previousRelease.prompts_per_s, 1),
  };
}
