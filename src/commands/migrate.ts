import { withDatabase } from "./connect.ts";

export default async function migrate(): Promise<void> {
  await withDatabase(async () => {});
  process.stdout.write("Database is up to date.\n");
}
